"""Well-known label keys and values that several components agree on."""

from __future__ import annotations

# EndpointSlices: the Service a slice belongs to, and who writes it.
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
# The kube-dns endpoint each node agent publishes for its own DNS server.
NODE_DNS_MANAGER = "kybernetes-node-dns"
# On an Endpoints object: "true" keeps the EndpointSlice mirroring controller away
# (the endpoints controller sets it, since the EndpointSlice controller covers those).
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
