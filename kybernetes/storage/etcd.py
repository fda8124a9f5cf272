"""The `Store` protocol on an etcd v3 cluster, over etcd's gRPC API.

Each `Store` method maps onto one etcd call: revisions are etcd's revisions,
preconditions are transactions comparing a key's create/mod revision, reads at a
past revision are etcd ranges at that revision, watches are etcd watches (all
multiplexed on one bidirectional stream of one channel), compaction is etcd's.
`prefix` is prepended to every key, so several clusters can share one etcd.

Several endpoints are members of one etcd cluster: a call that finds its member
UNAVAILABLE moves to the next one, and open watches resume where they were.
"""

from __future__ import annotations

from kybernetes.storage.interface import KeyValue, ListResult, WatchStream


class EtcdStore:
    """A `Store` on etcd.

    `endpoints` are client URLs of the members of one etcd cluster
    ("https://127.0.0.1:2379" or "http://..."); calls fail over between them.
    With `ca_file` the server certificate is verified against that CA; with
    `cert_file`/`key_file` this client presents that certificate (etcd's
    --client-cert-auth). `prefix` is prepended to every key on the wire and
    stripped from every key returned.
    """

    def __init__(
        self,
        endpoints: list[str],
        *,
        ca_file: str = "",
        cert_file: str = "",
        key_file: str = "",
        prefix: str = "",
    ) -> None:
        if not endpoints:
            raise ValueError("EtcdStore needs at least one endpoint")
        self.endpoints = list(endpoints)
        self.ca_file = ca_file
        self.cert_file = cert_file
        self.key_file = key_file
        self.prefix = prefix

    async def start(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def current_revision(self) -> int:
        raise NotImplementedError

    def compacted_revision(self) -> int:
        raise NotImplementedError

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        raise NotImplementedError

    async def list(self, prefix: str, revision: int = 0, limit: int = 0, start_after: str = "") -> ListResult:
        raise NotImplementedError

    async def create(self, key: str, value: bytes) -> KeyValue:
        raise NotImplementedError

    async def update(self, key: str, value: bytes, expected_revision: int = 0) -> KeyValue:
        raise NotImplementedError

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        raise NotImplementedError

    def watch(self, prefix: str, from_revision: int) -> WatchStream:
        raise NotImplementedError

    async def compact(self, revision: int) -> None:
        raise NotImplementedError
