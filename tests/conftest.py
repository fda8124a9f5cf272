"""Shared fixtures: one real `kyb server` per test session, driven by real kubectl."""

from __future__ import annotations

import pytest

from kybernetes.testing.cluster import KubectlResult, ServerProcess


class Kubectl:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 60.0,
                 env: dict[str, str] | None = None) -> KubectlResult:
        return self.server.kubectl(*args, stdin=stdin, timeout=timeout, env=env)

    def ok(self, *args: str, stdin: str | None = None, timeout: float = 60.0) -> str:
        r = self(*args, stdin=stdin, timeout=timeout)
        assert r.returncode == 0, f"kubectl {' '.join(args)} failed ({r.returncode}): {r.stderr}{r.stdout}"
        return r.stdout


@pytest.fixture(scope="session")
def server():
    # A short node grace period so the dead-node test does not wait 40 s.
    srv = ServerProcess(extra_args=["--node-monitor-grace-period", "4"])
    srv.start()
    yield srv
    srv.cleanup()


@pytest.fixture(scope="session")
def kubectl(server) -> Kubectl:
    return Kubectl(server)


@pytest.fixture(scope="session")
def k8s_client(server):
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=server.kubeconfig, client_configuration=cfg)
    api = client.ApiClient(cfg)
    yield api
    api.close()
