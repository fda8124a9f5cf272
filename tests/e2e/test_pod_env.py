"""What a container sees of its pod on a real node agent: the downward API in env and
files, service-link variables, envFrom keys under the relaxed name rule, a projected
volume combining secret, configMap, downwardAPI and a token, and the kubelet-managed
/etc/hosts with hostAliases (pod network and host network)."""

from __future__ import annotations

import json
import os
import time

import pytest

from kybernetes.testing.agent import TEST_TAINT, AgentProcess, agent_prerequisites, node_cluster
from kybernetes.testing.cluster import ServerProcess

NS = "env-e2e"
NODE = "kyb-h2-node"
POD_CIDR = "10.42.234.0/24"
IMAGE = "busybox:1.35"
END = "---END"

pytestmark = pytest.mark.skipif(agent_prerequisites() is not None, reason=agent_prerequisites() or "")

# The environment as the runtime gave it (a shell's `env` would drop names like `data-1`).
PRINT = ("tr '\\0' '\\n' </proc/1/environ | sort; echo ---HOSTS; cat /etc/hosts; echo ---FILES; "
         "if [ -d /proj ]; then for f in /proj/*; do "
         "echo \"$(basename $f) $(stat -L -c %a $f) $(cat $f | tr '\\n' '|')\"; done; fi; "
         f"echo {END}; sleep 3600")


def _pod(name: str, **spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
            "spec": {"terminationGracePeriodSeconds": 1, "nodeSelector": {"kubernetes.io/hostname": NODE},
                     "tolerations": [{"key": TEST_TAINT, "operator": "Exists"}], **spec}}


def _objects() -> list[dict]:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": NS},
          "data": {"data-1": "value-1", "a.b": "dotted", "plain": "p", "configmap-data": "cm-value-1"}}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": NS},
              "stringData": {"s.key": "secret-value-1"}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "my-web", "namespace": NS},
           "spec": {"ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}}
    field = [("MY_POD_IP", "status.podIP"), ("MY_POD_IPS", "status.podIPs"), ("MY_HOST_IP", "status.hostIP"),
             ("MY_HOST_IPS", "status.hostIPs"), ("MY_NODE", "spec.nodeName"), ("MY_SA", "spec.serviceAccountName"),
             ("MY_UID", "metadata.uid"), ("MY_NAME", "metadata.name"), ("MY_NS", "metadata.namespace"),
             ("MY_LABEL", "metadata.labels['app']")]
    resource = [("MEM_MI", "limits.memory", "1Mi"), ("CPU_REQ_M", "requests.cpu", "1m"),
                ("CPU_LIMIT_M", "limits.cpu", "1m")]
    env = ([{"name": n, "valueFrom": {"fieldRef": {"fieldPath": f}}} for n, f in field]
           + [{"name": n, "valueFrom": {"resourceFieldRef": {"resource": r, "divisor": d}}} for n, r, d in resource]
           + [{"name": "MY_WEB_SERVICE_PORT", "value": "mine"},
              {"name": "URL", "value": "$(MY_WEB_SERVICE_HOST):$(MY_WEB_SERVICE_PORT_HTTP)"}])
    projected = {"name": "all", "projected": {"defaultMode": 0o440, "sources": [
        {"secret": {"name": "s", "items": [{"key": "s.key", "path": "secret-data", "mode": 0o400}]}},
        {"configMap": {"name": "cm", "items": [{"key": "configmap-data", "path": "configmap-data"}]}},
        {"downwardAPI": {"items": [
            {"path": "podname", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "cpu_limit", "resourceFieldRef": {"containerName": "c", "resource": "limits.cpu",
                                                        "divisor": "1m"}}]}},
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}]}}
    main = _pod("envpod", hostname="web-0", subdomain="sub",
                hostAliases=[{"ip": "1.2.3.4", "hostnames": ["foo.local", "bar.local"]}],
                volumes=[projected],
                containers=[{"name": "c", "image": IMAGE, "command": ["sh", "-c", PRINT], "env": env,
                             "envFrom": [{"configMapRef": {"name": "cm"}},
                                         {"prefix": "p-", "configMapRef": {"name": "cm"}},
                                         {"secretRef": {"name": "s"}}],
                             "resources": {"requests": {"cpu": "100m", "memory": "32Mi"},
                                           "limits": {"memory": "64Mi"}},
                             "volumeMounts": [{"name": "all", "mountPath": "/proj"}]}])
    host = _pod("hostpod", hostNetwork=True, enableServiceLinks=False, automountServiceAccountToken=False,
                hostAliases=[{"ip": "5.6.7.8", "hostnames": ["h2-alias"]}],
                containers=[{"name": "c", "image": IMAGE, "command": ["sh", "-c", PRINT],
                             "env": [{"name": "MY_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                                     {"name": "MY_SA", "valueFrom": {"fieldRef": {
                                         "fieldPath": "spec.serviceAccountName"}}}]}])
    # Kubernetes' conformance spec "Projected combined should project all components": a pod that exits at once.
    combined = _pod("combined", restartPolicy="Never", volumes=[{"name": "all", "projected": {"sources": [
        {"secret": {"name": "s", "items": [{"key": "s.key", "path": "secret-data"}]}},
        {"configMap": {"name": "cm", "items": [{"key": "configmap-data", "path": "configmap-data"}]}},
        {"downwardAPI": {"items": [{"path": "podname", "fieldRef": {"apiVersion": "v1",
                                                                    "fieldPath": "metadata.name"}}]}}]}}],
        containers=[{"name": "c", "image": IMAGE, "volumeMounts": [{"name": "all", "mountPath": "/all"}],
                     "command": ["sh", "-c", "cat /all/podname && cat /all/secret-data && cat /all/configmap-data"]}])
    return [cm, secret, svc, main, host, combined]


@pytest.fixture(scope="module")
def cluster():
    with node_cluster(NODE, "kyb234", POD_CIDR, NS) as (srv, agent):
        objs = _objects()
        # The Service first, as on Kubernetes: links name the Services there when a container starts.
        r = srv.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs[:3]}))
        assert r.returncode == 0, r.stderr
        time.sleep(1)
        r = srv.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs[3:]}))
        assert r.returncode == 0, r.stderr
        yield srv, agent


def _get(srv: ServerProcess, kind: str, name: str) -> dict:
    r = srv.kubectl("-n", NS, "get", kind, name, "-o", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _output(srv: ServerProcess, agent: AgentProcess, name: str) -> tuple[dict[str, str], list[str], dict[str, str]]:
    """The pod's env, /etc/hosts lines and projected files (name -> "mode content") as printed."""
    deadline = time.monotonic() + 120
    out = ""
    while time.monotonic() < deadline and END not in out:
        out = srv.kubectl("-n", NS, "logs", name).stdout
        time.sleep(1)
    assert END in out, (out, json.dumps(_get(srv, "pod", name).get("status")), agent.log_tail(2000))
    env_part, rest = out.split("---HOSTS\n", 1)
    hosts, files_part = rest.split("---FILES\n", 1)
    env = dict(line.split("=", 1) for line in env_part.splitlines() if "=" in line)
    files = {}
    for line in files_part.split(END, 1)[0].splitlines():
        fname, _, rest_ = line.partition(" ")
        files[fname] = rest_
    return env, hosts.splitlines(), files


def test_container_sees_downward_api_service_links_env_from_and_hosts(cluster):
    srv, agent = cluster
    env, hosts, files = _output(srv, agent, "envpod")
    pod = _get(srv, "pod", "envpod")
    ip = pod["status"]["podIP"]
    host_ip = pod["status"]["hostIP"]
    assert ip.startswith("10.42.234.")
    # The downward API: the sandbox's IP even on the first start, the node, the account.
    assert env["MY_POD_IP"] == ip and env["MY_POD_IPS"] == ip
    assert env["MY_HOST_IP"] == host_ip and env["MY_HOST_IPS"] == host_ip
    assert env["MY_NODE"] == NODE and env["MY_SA"] == "default" == pod["spec"]["serviceAccountName"]
    assert env["MY_UID"] == pod["metadata"]["uid"] and env["MY_NAME"] == "envpod" and env["MY_NS"] == NS
    assert env["MY_LABEL"] == "envpod"
    assert env["MEM_MI"] == "64" and env["CPU_REQ_M"] == "100"
    assert env["CPU_LIMIT_M"] == str(os.cpu_count() * 1000)  # no limit: the node's allocatable
    # Service links: the API's and the namespace's Service, the container's own value wins.
    svc = _get(srv, "service", "my-web")["spec"]["clusterIP"]
    api_ip = json.loads(srv.kubectl("-n", "default", "get", "service", "kubernetes", "-o", "json").stdout)[
        "spec"]["clusterIP"]
    assert env["KUBERNETES_SERVICE_HOST"] == api_ip and env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["MY_WEB_SERVICE_HOST"] == svc and env["MY_WEB_SERVICE_PORT"] == "mine"
    assert env["MY_WEB_SERVICE_PORT_HTTP"] == "80" and env["MY_WEB_SERVICE_PORT_DNS"] == "53"
    assert env["MY_WEB_PORT"] == f"tcp://{svc}:80" and env["MY_WEB_PORT_53_UDP"] == f"udp://{svc}:53"
    assert env["MY_WEB_PORT_53_UDP_PROTO"] == "udp" and env["MY_WEB_PORT_80_TCP_ADDR"] == svc
    assert env["URL"] == f"{svc}:80"
    # envFrom: keys with a dash or a dot pass, with and without a prefix.
    assert env["data-1"] == "value-1" and env["a.b"] == "dotted" and env["p-data-1"] == "value-1"
    assert env["p-a.b"] == "dotted" and env["s.key"] == "secret-value-1"
    # The managed /etc/hosts: the pod's name on its IP in its subdomain, then the aliases.
    assert hosts[0] == "# Kubernetes-managed hosts file." and "127.0.0.1\tlocalhost" in hosts
    assert f"{ip}\tweb-0.sub.{NS}.svc.cluster.local\tweb-0" in hosts
    assert hosts[-2:] == ["# Entries added by HostAliases.", "1.2.3.4\tfoo.local\tbar.local"], hosts
    # The projected volume renders all its sources, with their modes.
    assert files["secret-data"] == "400 secret-value-1", files
    assert files["configmap-data"] == "440 cm-value-1" and files["podname"] == "440 envpod"
    assert files["labels"] == '440 app="envpod"' and files["cpu_limit"] == f"440 {os.cpu_count() * 1000}"
    mode, token = files["token"].split(" ", 1)
    assert mode == "440" and token.count(".") == 2, files["token"]


def test_a_projected_volume_of_all_kinds_is_there_for_a_pod_that_exits_at_once(cluster):
    srv, agent = cluster
    deadline = time.monotonic() + 90
    phase = ""
    while time.monotonic() < deadline and phase not in ("Succeeded", "Failed"):
        phase = _get(srv, "pod", "combined").get("status", {}).get("phase", "")
        time.sleep(0.5)
    assert phase == "Succeeded", (phase, agent.log_tail(1500))
    r = srv.kubectl("-n", NS, "logs", "combined")
    assert r.stdout == "combinedsecret-value-1cm-value-1", r.stdout


def test_projected_files_follow_their_sources(cluster):
    srv, agent = cluster
    _output(srv, agent, "envpod")
    r = srv.kubectl("-n", NS, "patch", "configmap", "cm", "-p", '{"data":{"configmap-data":"cm-value-2"}}')
    assert r.returncode == 0, r.stderr
    r = srv.kubectl("-n", NS, "label", "pod", "envpod", "extra=yes")
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 45
    seen = ("", "")
    while time.monotonic() < deadline:
        seen = (srv.kubectl("-n", NS, "exec", "envpod", "--", "cat", "/proj/configmap-data").stdout,
                srv.kubectl("-n", NS, "exec", "envpod", "--", "cat", "/proj/labels").stdout)
        if seen == ("cm-value-2", 'app="envpod"\nextra="yes"'):
            break
        time.sleep(1)
    assert seen == ("cm-value-2", 'app="envpod"\nextra="yes"'), seen


def test_host_network_pod_gets_the_node_hosts_and_no_service_links(cluster):
    srv, agent = cluster
    env, hosts, files = _output(srv, agent, "hostpod")
    pod = _get(srv, "pod", "hostpod")
    assert pod["spec"]["serviceAccountName"] == "default" == env["MY_SA"]
    assert not any(v.get("projected") for v in pod["spec"].get("volumes") or [])
    assert env["MY_POD_IP"] == pod["status"]["podIP"] == pod["status"]["hostIP"]
    assert "KUBERNETES_SERVICE_HOST" in env and not any(k.startswith("MY_WEB_") for k in env)
    assert hosts[0] == "# Kubernetes-managed hosts file (host network)."
    with open("/etc/hosts") as f:
        node_lines = f.read().splitlines()
    assert hosts[1:1 + len(node_lines)] == node_lines
    assert hosts[-2:] == ["# Entries added by HostAliases.", "5.6.7.8\th2-alias"], hosts
    assert files == {}


def test_downward_api_references_and_host_aliases_limited_to_what_kubernetes_allows(cluster):
    srv, _agent = cluster
    bad = _pod("bad", hostAliases=[{"ip": "not-an-ip", "hostnames": ["x"]}], volumes=[{"name": "d", "downwardAPI": {"items": [
        {"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}}]}}],
        containers=[{"name": "c", "image": IMAGE, "env": [{"name": "L", "valueFrom": {
            "fieldRef": {"fieldPath": "metadata.labels"}}}]}])
    r = srv.kubectl("apply", "-f", "-", stdin=json.dumps(bad))
    assert r.returncode != 0
    assert "spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath: Unsupported value: \"status.podIP\"" in r.stderr
    assert "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: \"metadata.labels\"" \
        in r.stderr, r.stderr
    assert 'spec.hostAliases[0].ip: Invalid value: "not-an-ip": must be a valid IP address' in r.stderr
    assert srv.kubectl("-n", NS, "get", "pod", "bad").returncode != 0
