"""The node agent: the kubelet's job (see DESIGN.md)."""
