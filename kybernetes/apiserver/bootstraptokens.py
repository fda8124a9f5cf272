"""Bearer bootstrap tokens checked against their Secrets in the watch cache.

The rules are `api/bootstraptoken.py`'s; this shell finds the Secret
`kube-system/bootstrap-token-<id>` for a token and asks them, on every request (a
token stops working the moment its Secret is deleted or expires).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from kybernetes.api import bootstraptoken
from kybernetes.apiserver.auth import UserInfo
from kybernetes.apiserver.watchcache import WatchCache


class BootstrapTokens:
    def __init__(self, cache: WatchCache, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.cache = cache
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def authenticate(self, token: str) -> UserInfo | None:
        parsed = bootstraptoken.parse_token(token)
        if parsed is None:
            return None
        co = self.cache.get(f"/registry/core/secrets/{bootstraptoken.NAMESPACE}/"
                            f"{bootstraptoken.secret_name(parsed[0])}")
        found = bootstraptoken.authenticate(token, co.obj if co is not None else None, self.clock())
        return UserInfo(username=found.username, groups=list(found.groups)) if found is not None else None
