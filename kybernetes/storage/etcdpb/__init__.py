"""Generated etcd v3 gRPC API modules (see generate.sh)."""
