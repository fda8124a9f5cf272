#!/bin/sh
# Regenerates the Python modules for the etcd v3 API protos (rpc.proto, kv.proto).
# The generated files, *_pb2.py and *_pb2_grpc.py, are committed; this is the
# command that made them (grpcio-tools from the project's .venv). No .pyi is made:
# ruff excludes only kybernetes/storage/etcdpb/*_pb2*.py.
#
# The protos are etcd's (api/etcdserverpb/rpc.proto, api/mvccpb/kv.proto) trimmed
# to the services and messages kybernetes calls, with the gogoproto, grpc-gateway
# and version annotations removed; package names and field numbers are etcd's, so
# the wire format and the gRPC method paths (/etcdserverpb.KV/Range, ...) match.
# They are compiled with the repository root as the include path, so the modules
# import each other as `from kybernetes.storage.etcdpb import kv_pb2`.
#
# Run from anywhere:  sh kybernetes/storage/etcdpb/generate.sh
set -eu

root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"

.venv/bin/python -m grpc_tools.protoc \
    -I . \
    --python_out=. \
    --grpc_python_out=. \
    kybernetes/storage/etcdpb/kv.proto \
    kybernetes/storage/etcdpb/rpc.proto
