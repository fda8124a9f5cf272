"""Client side of the Kubernetes Container Runtime Interface (CRI v1) for the node agent."""
