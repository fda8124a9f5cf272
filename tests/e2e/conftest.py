"""Fixtures of the end-to-end tests only (the session's server is in tests/conftest.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

MINUTELY = "minutely"


@pytest.fixture(scope="session", autouse=True)
def minutely_cronjob(request: pytest.FixtureRequest) -> Iterator[str]:
    """A CronJob scheduled every minute, made when the session's first e2e test starts: the
    test of its first Job (tests/e2e/test_cronjobs.py) then finds it without waiting for a
    minute to turn. Its Jobs are suspended and it forbids overlap, so it makes just one.
    Yields its namespace; a session without that module makes nothing (and starts no server)."""
    if not any("test_cronjobs.py" in item.nodeid for item in request.session.items):
        yield ""
        return
    kubectl = request.getfixturevalue("kubectl")
    ns = "cron-minutely-" + uuid.uuid4().hex[:6]
    kubectl.ok("create", "namespace", ns)
    cronjob = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": MINUTELY, "namespace": ns},
               "spec": {"schedule": "* * * * *", "concurrencyPolicy": "Forbid",
                        "jobTemplate": {"metadata": {"labels": {"cron": MINUTELY}},
                                        "spec": {"suspend": True, "template": {"spec": {
                                            "restartPolicy": "Never",
                                            "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}}}}}
    kubectl.ok("create", "-f", "-", stdin=json.dumps(cronjob))
    yield ns
    kubectl("delete", "namespace", ns, "--wait=false")
