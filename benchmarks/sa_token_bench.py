"""ServiceAccount token cost per request (issue 14): run by hand.

    .venv/bin/python benchmarks/sa_token_bench.py

Prints microseconds per token for signing (TokenRequest), a first check (ECDSA P-256
signature verify plus the liveness checks against the watch cache) and a repeated
check of a token already seen (the verified-signature memo: only the expiry, audience
and ServiceAccount/Pod lookups), which is what a client reusing its token pays.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass

from kybernetes.api import serviceaccounts as sat
from kybernetes.apiserver import serviceaccounts as srv

SA = {"metadata": {"name": "bot", "namespace": "team", "uid": "sa-uid"}}
POD = {"metadata": {"name": "p", "namespace": "team", "uid": "pod-uid"}, "spec": {"serviceAccountName": "bot"}}


@dataclass
class _Co:
    obj: dict


class _Cache:
    def __init__(self) -> None:
        self.objs = {"/registry/core/serviceaccounts/team/bot": _Co(SA), "/registry/core/pods/team/p": _Co(POD)}

    def get(self, key: str) -> _Co | None:
        return self.objs.get(key)


def _per_call(fn, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        srv.ensure_signing_key(d)
        tokens = srv.ServiceAccountTokens(srv.SigningKeys(d), _Cache())  # type: ignore[arg-type]
        now = int(time.time())
        n = 2000
        claims = [sat.bound_claims(SA, [sat.DEFAULT_ISSUER], 3600, now, sat.DEFAULT_ISSUER, pod=POD)
                  for _ in range(n)]
        signed: list[str] = []
        sign_us = _per_call(lambda i: signed.append(tokens.sign(claims[i])), n)
        first_us = _per_call(lambda i: tokens.authenticate(signed[i]), n)
        again_us = _per_call(lambda i: tokens.authenticate(signed[i % 100]), n)
    print(f"sign (TokenRequest)        {sign_us:8.1f} us/token")
    print(f"first check (verify)       {first_us:8.1f} us/token")
    print(f"repeated check (memo)      {again_us:8.1f} us/token")


if __name__ == "__main__":
    main()
