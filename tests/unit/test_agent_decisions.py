"""The node agent's pure decisions: pod sync plans and status, container specs, the
CNI network, CRI log parsing, probe verdicts, pull credentials."""

from __future__ import annotations

import base64
import json

from kybernetes.agent import logs, podspec, podsync
from kybernetes.agent.agent import image_registry, pull_credentials
from kybernetes.agent.node import cni_conflist
from kybernetes.agent.probes import READINESS, STARTUP, ProbeResult, verdicts_kept_over_restart
from kybernetes.agent.volumes import object_files, safe_relative
from kybernetes.testing import fakes


def pod(**spec):
    return fakes.pod("p", "ns", uid="u1", labels={"app": "x"}, image="busybox:1.35", **spec)


def running(name="c", restarts=0, cid="id1"):
    return podsync.ContainerState(cid, name, podsync.RUNNING, restarts, "", started_at=100.0)


def exited(name="c", restarts=0, code=1, finished=110.0, cid="id0"):
    return podsync.ContainerState(cid, name, podsync.EXITED, restarts, "", started_at=100.0, finished_at=finished,
                                  exit_code=code)


SANDBOX = podsync.SandboxState("sb", True, 0, 90.0, "10.42.0.5", ["10.42.0.5"])


def test_new_pod_gets_a_sandbox_then_its_containers():
    plan = podsync.plan_pod(pod(), None, [], 100.0)
    assert plan.new_sandbox and [c["name"] for c, _, _ in plan.start] == ["c"]


def test_init_containers_run_one_at_a_time_in_order():
    p = pod(initContainers=[{"name": "i1"}, {"name": "i2"}])
    assert [c["name"] for c, init, _ in podsync.plan_pod(p, SANDBOX, [], 100).start] == ["i1"]
    done = [exited("i1", code=0)]
    done[0].init = True
    assert [c["name"] for c, _, _ in podsync.plan_pod(p, SANDBOX, done, 200).start] == ["i2"]


def test_crash_loop_back_off_doubles_and_caps():
    assert [podsync.backoff_seconds(n) for n in (1, 2, 3, 6, 10)] == [10, 20, 40, 300, 300]
    plan = podsync.plan_pod(pod(), SANDBOX, [exited(restarts=2, finished=100.0)], 105.0)
    assert plan.start == [] and plan.waiting["c"][0] == "CrashLoopBackOff" and plan.requeue_after == 15.0
    plan = podsync.plan_pod(pod(), SANDBOX, [exited(restarts=2, finished=100.0)], 121.0)
    assert [(c["name"], n) for c, _, n in plan.start] == [("c", 3)]
    # The first restart is at once, as the kubelet's.
    assert [n for _c, _i, n in podsync.plan_pod(pod(), SANDBOX, [exited(finished=100.0)], 100.5).start] == [1]


def test_restart_policies():
    assert not podsync.plan_pod(pod(restartPolicy="Never"), SANDBOX, [exited(code=1)], 500).start
    assert not podsync.plan_pod(pod(restartPolicy="OnFailure"), SANDBOX, [exited(code=0)], 500).start
    assert podsync.plan_pod(pod(restartPolicy="OnFailure"), SANDBOX, [exited(code=1)], 500).start


def test_pod_status_phase_conditions_and_container_states():
    p = pod()
    st = podsync.pod_status(p, SANDBOX, [running()], podsync.Plan(), "192.0.2.1", 120.0)
    assert st["phase"] == "Running" and st["podIP"] == "10.42.0.5" and st["qosClass"] == "BestEffort"
    assert {c["type"]: c["status"] for c in st["conditions"]}["Ready"] == "True"
    assert st["containerStatuses"][0]["containerID"] == "containerd://id1"
    done = podsync.pod_status(pod(restartPolicy="Never"), SANDBOX, [exited(code=0)], podsync.Plan(), "h", 200.0)
    assert done["phase"] == "Succeeded"
    assert done["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    not_ready = podsync.pod_status(p, SANDBOX, [running()], podsync.Plan(), "h", 120.0, {"c": (False, True)})
    assert {c["type"]: c["status"] for c in not_ready["conditions"]}["Ready"] == "False"


def test_env_expansion_and_sources():
    p = pod()
    c = {"name": "c", "env": [{"name": "A", "value": "x"}, {"name": "B", "value": "$(A)-$(MISSING)-$$(A)"},
                              {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}}],
         "envFrom": [{"prefix": "S_", "secretRef": {"name": "s"}}]}
    secrets = {"s": {"data": {"k": base64.b64encode(b"v").decode()}}}
    assert podspec.container_env(p, c, {}, secrets) == [("S_k", "v"), ("A", "x"), ("B", "x-$(MISSING)-$(A)"),
                                                        ("N", "x")]


def test_cpu_and_memory_map_onto_cgroups():
    c = {"resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "64Mi"}}}
    assert podspec.linux_resources(c) == (256, 50_000, 100_000, 64 * 1024 * 1024)
    assert podspec.linux_resources({}) == (2, 0, 0, 0)


def test_cni_network_for_the_node_cidr():
    conf = cni_conflist("10.42.3.0/24", "/var/lib/x/ipam")
    bridge = conf["plugins"][0]
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.42.3.0/24", "gateway": "10.42.3.1"}]]
    assert bridge["ipam"]["dataDir"] == "/var/lib/x/ipam" and conf["plugins"][1]["type"] == "portmap"
    # The network of pods without host ports, beside a runtime twin's with portmap.
    assert [p["type"] for p in cni_conflist("10.42.3.0/24", "/x", portmap=False)["plugins"]] == ["bridge"]


def test_cri_log_lines_join_partials_and_keep_the_tail():
    data = (b"2026-01-01T00:00:00.1Z stdout P hel\n2026-01-01T00:00:00.2Z stdout F lo\n"
            b"2026-01-01T00:00:01Z stderr F oops\n2026-01-01T00:00:02Z stdout F unfini")
    lines, rest = logs.parse_lines(data)
    assert [ln.text for ln in lines] == [b"hello\n", b"oops\n"] and rest.endswith(b"unfini")
    assert lines[0].timestamp == "2026-01-01T00:00:00.1Z"
    tail = logs.select(lines, logs.LogOptions(tail_lines=1))
    assert [logs.render(ln, logs.LogOptions(timestamps=True)) for ln in tail] == [b"2026-01-01T00:00:01Z oops\n"]


def test_probe_verdicts_follow_the_thresholds():
    r = ProbeResult(success_threshold=2, failure_threshold=3)
    assert [r.record(x) for x in (True, True, False, False, False, True)] == [False, True, False, False, True, False]
    assert r.ok is False


def test_a_restarted_agent_keeps_what_the_pod_status_last_said():
    seen = {"containerID": "containerd://c1", "state": {"running": {}}, "ready": True, "started": True}
    assert verdicts_kept_over_restart(seen, "c1", 100.0, 200.0, pod_ready=True) == {READINESS: True, STARTUP: True}
    # Ready only with the pod's Ready condition; started on its own.
    assert verdicts_kept_over_restart(seen, "c1", 100.0, 200.0, pod_ready=False) == {STARTUP: True}
    # Nothing for a container started after the agent, a replaced container, or one
    # the status did not report running or ready.
    assert verdicts_kept_over_restart(seen, "c1", 300.0, 200.0, pod_ready=True) == {}
    assert verdicts_kept_over_restart(seen, "c2", 100.0, 200.0, pod_ready=True) == {}
    assert verdicts_kept_over_restart({**seen, "state": {"waiting": {}}}, "c1", 100.0, 200.0, True) == {}
    assert verdicts_kept_over_restart({**seen, "ready": False, "started": False}, "c1", 100.0, 200.0, True) == {}
    assert verdicts_kept_over_restart(None, "c1", 100.0, 200.0, pod_ready=True) == {}


def test_configmap_volume_items_and_paths():
    cm = {"data": {"a": "1", "b": "2"}}
    assert object_files("ConfigMap", "cm", cm, {}, 0o644) == {"a": (b"1", 0o644), "b": (b"2", 0o644)}
    assert object_files("ConfigMap", "cm", cm, {"items": [{"key": "a", "path": "x/y", "mode": 0o400}]}, 0o644) == {
        "x/y": (b"1", 0o400)}
    assert object_files("ConfigMap", "cm", None, {"optional": True}, 0o644) == {}
    assert not safe_relative("../etc") and not safe_relative("/abs") and safe_relative("a/b")


def test_pull_credentials_from_docker_config_secrets():
    assert image_registry("busybox:1.35") == "docker.io"
    assert image_registry("127.0.0.1:5000/x/y:1") == "127.0.0.1:5000"
    assert image_registry("registry.example.com/app") == "registry.example.com"
    cfg = {"auths": {"https://index.docker.io/v1/": {"auth": base64.b64encode(b"u:p").decode()},
                     "127.0.0.1:5000": {"username": "a", "password": "b"}}}
    secret = {"data": {".dockerconfigjson": base64.b64encode(json.dumps(cfg).encode()).decode()}}
    assert pull_credentials(secret, "docker.io") == ("u", "p", "index.docker.io")
    assert pull_credentials(secret, "127.0.0.1:5000") == ("a", "b", "127.0.0.1:5000")
    assert pull_credentials(secret, "quay.io") is None


def _dns_pod(**spec):
    return {"metadata": {"name": "p", "namespace": "shop"}, "spec": spec}


HOST_DNS = (["10.0.0.53"], ["corp.example"], ["edns0"])


def test_cluster_first_points_pods_at_the_cluster_dns():
    from kybernetes.agent.podspec import pod_dns

    assert pod_dns(_dns_pod(), ["10.43.0.10"], "cluster.local", HOST_DNS) == (
        ["10.43.0.10"], ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"], ["ndots:5"])
    # On the host network ClusterFirst means the host's settings; ClusterFirstWithHostNet does not.
    assert pod_dns(_dns_pod(hostNetwork=True), ["10.43.0.10"], "cluster.local", HOST_DNS) == ([], [], [])
    assert pod_dns(_dns_pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"), ["10.43.0.10"],
                   "cluster.local", HOST_DNS)[0] == ["10.43.0.10"]
    # Without a cluster DNS the runtime's default (the host's resolv.conf) stays.
    assert pod_dns(_dns_pod(), [], "cluster.local", HOST_DNS) == ([], [], [])


def test_dns_config_is_merged_and_none_takes_it_alone():
    from kybernetes.agent.podspec import pod_dns

    cfg = {"nameservers": ["1.1.1.1", "10.43.0.10"], "searches": ["extra.example"],
           "options": [{"name": "ndots", "value": "2"}, {"name": "rotate"}]}
    assert pod_dns(_dns_pod(dnsConfig=cfg), ["10.43.0.10"], "cluster.local", HOST_DNS) == (
        ["10.43.0.10", "1.1.1.1"], ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "extra.example"],
        ["ndots:2", "rotate"])
    assert pod_dns(_dns_pod(dnsPolicy="None", dnsConfig=cfg), ["10.43.0.10"], "cluster.local", HOST_DNS) == (
        ["1.1.1.1", "10.43.0.10"], ["extra.example"], ["ndots:2", "rotate"])
    assert pod_dns(_dns_pod(dnsPolicy="Default", dnsConfig={"searches": ["x.example"]}), ["10.43.0.10"],
                   "cluster.local", HOST_DNS) == (["10.0.0.53"], ["corp.example", "x.example"], ["edns0"])
    assert pod_dns(_dns_pod(dnsPolicy="Default"), ["10.43.0.10"], "cluster.local", HOST_DNS) == ([], [], [])


def test_host_resolv_conf_is_read():
    from kybernetes.agent.podspec import read_resolv_conf

    text = "# comment\nnameserver 10.0.0.53\nnameserver 10.0.0.54 # second\nsearch a.example b.example\noptions ndots:1\n"
    assert read_resolv_conf(text) == (["10.0.0.53", "10.0.0.54"], ["a.example", "b.example"], ["ndots:1"])


def test_a_deleted_pod_is_probed_for_readiness_while_a_probed_container_runs():
    p = pod()
    p["spec"]["containers"][0]["readinessProbe"] = {"exec": {"command": ["true"]}}
    name = p["spec"]["containers"][0]["name"]
    assert not podsync.probes_readiness_while_terminating(p, [running(name)])  # not deleted
    p["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert podsync.probes_readiness_while_terminating(p, [running(name)])
    assert not podsync.probes_readiness_while_terminating(p, [exited(name)])
    del p["spec"]["containers"][0]["readinessProbe"]
    assert not podsync.probes_readiness_while_terminating(p, [running(name)])
