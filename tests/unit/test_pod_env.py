"""A container's environment (service links, envFrom names, the downward API), its
managed /etc/hosts, and the API's validation of downward API references."""

from __future__ import annotations

import base64

from kybernetes.agent import etchosts, podspec
from kybernetes.agent.volumes import downward_files
from kybernetes.api import downward


def svc(name: str, ns: str, ip: str, *ports: dict) -> dict:
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": ip, "ports": list(ports)}}


API = svc("kubernetes", "default", "10.43.0.1", {"name": "https", "port": 443, "protocol": "TCP"})
WEB = svc("my-web", "app", "10.43.0.9", {"port": 80}, {"name": "dns-udp", "port": 53, "protocol": "UDP"})
HEADLESS = svc("headless", "app", "None", {"port": 1})
OTHER_NS = svc("elsewhere", "other", "10.43.0.7", {"port": 81})


def pod(**spec: object) -> dict:
    return {"metadata": {"name": "p", "namespace": "app", "uid": "u-1", "labels": {"app": "x", "b": 'q"n'}},
            "spec": {"nodeName": "n1", "serviceAccountName": "default", "containers": [{"name": "c"}], **spec}}


def test_service_links_cover_the_namespace_and_always_the_api():
    env = dict(podspec.service_link_env([API, WEB, HEADLESS, OTHER_NS], "app"))
    assert env["KUBERNETES_SERVICE_HOST"] == "10.43.0.1" and env["KUBERNETES_PORT_443_TCP_PORT"] == "443"
    assert env["MY_WEB_SERVICE_HOST"] == "10.43.0.9" and env["MY_WEB_SERVICE_PORT"] == "80"
    assert env["MY_WEB_SERVICE_PORT_DNS_UDP"] == "53" and "MY_WEB_SERVICE_PORT_" not in "".join(
        k for k in env if k.endswith("_")), env
    assert env["MY_WEB_PORT"] == "tcp://10.43.0.9:80"
    assert env["MY_WEB_PORT_53_UDP"] == "udp://10.43.0.9:53" and env["MY_WEB_PORT_53_UDP_PROTO"] == "udp"
    assert env["MY_WEB_PORT_53_UDP_ADDR"] == "10.43.0.9" and env["MY_WEB_PORT_80_TCP_PORT"] == "80"
    assert not any(k.startswith(("HEADLESS_", "ELSEWHERE_")) for k in env)
    # enableServiceLinks: false keeps only the API's.
    off = dict(podspec.service_link_env([API, WEB], "app", enable_links=False))
    assert "KUBERNETES_SERVICE_HOST" in off and not any(k.startswith("MY_WEB") for k in off)
    # A namespace's own `kubernetes` Service wins over the API's.
    mine = svc("kubernetes", "app", "10.43.0.50", {"port": 8080})
    assert dict(podspec.service_link_env([API, mine], "app"))["KUBERNETES_SERVICE_HOST"] == "10.43.0.50"
    assert dict(podspec.service_link_env([mine, API], "app"))["KUBERNETES_SERVICE_HOST"] == "10.43.0.50"


def test_ipv6_service_addresses_are_bracketed_in_urls():
    env = dict(podspec.service_env(svc("v6", "app", "fd00::10", {"port": 80})))
    assert env["V6_PORT"] == "tcp://[fd00::10]:80" and env["V6_PORT_80_TCP_ADDR"] == "fd00::10"


def test_own_variables_come_first_win_and_expand_service_variables():
    c = {"name": "c", "env": [{"name": "MY_WEB_SERVICE_HOST", "value": "mine"},
                              {"name": "URL", "value": "http://$(KUBERNETES_SERVICE_HOST):$(MY_WEB_SERVICE_PORT)"}]}
    links = podspec.service_link_env([API, WEB], "app")
    env = podspec.container_env(pod(), c, {}, {}, {}, links)
    names = [k for k, _ in env]
    assert names[:2] == ["MY_WEB_SERVICE_HOST", "URL"] and len(names) == len(set(names))
    values = dict(env)
    assert values["MY_WEB_SERVICE_HOST"] == "mine" and values["URL"] == "http://10.43.0.1:80"


def test_env_from_takes_relaxed_names_and_reports_invalid_ones():
    cm = {"data": {"data-1": "v1", "a.b": "v2", "1st": "v3", "ok": "v4", "x=y": "bad", "tab\tkey": "bad"}}
    secret = {"data": {"s.k": base64.b64encode(b"sv").decode()}}
    c = {"name": "c", "envFrom": [{"configMapRef": {"name": "cm"}}, {"prefix": "p-", "configMapRef": {"name": "cm"}},
                                  {"secretRef": {"name": "s"}}]}
    skipped: list = []
    env = dict(podspec.container_env(pod(), c, {"cm": cm}, {"s": secret}, skipped=skipped))
    assert env["data-1"] == "v1" and env["a.b"] == "v2" and env["1st"] == "v3" and env["p-data-1"] == "v1"
    assert env["s.k"] == "sv" and "x=y" not in env and "tab\tkey" not in env
    assert skipped == [("ConfigMap", "cm", ["tab\tkey", "x=y"]), ("ConfigMap", "cm", ["p-tab\tkey", "p-x=y"])]


def test_pod_ips_come_from_the_sandbox_and_the_node():
    c = {"name": "c", "env": [{"name": k, "valueFrom": {"fieldRef": {"fieldPath": f}}} for k, f in [
        ("IP", "status.podIP"), ("IPS", "status.podIPs"), ("HOST", "status.hostIP"), ("HOSTS", "status.hostIPs"),
        ("NODE", "spec.nodeName"), ("SA", "spec.serviceAccountName"), ("UID", "metadata.uid"),
        ("L", "metadata.labels['app']"), ("A", "metadata.annotations['none']")]]}
    view = podspec.with_runtime_ips(pod(), ["10.42.1.5", "fd00::5"], ["192.0.2.1"])
    env = dict(podspec.container_env(view, c, {}, {}))
    assert env == {"IP": "10.42.1.5", "IPS": "10.42.1.5,fd00::5", "HOST": "192.0.2.1", "HOSTS": "192.0.2.1",
                   "NODE": "n1", "SA": "default", "UID": "u-1", "L": "x", "A": ""}


def test_resource_references_round_up_by_divisor_and_default_limits_to_allocatable():
    c = {"name": "c", "resources": {"requests": {"cpu": "250m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}}}
    other = {"name": "side", "resources": {"limits": {"cpu": "1500m"}}}
    p = pod(containers=[c, other])
    alloc = {"cpu": "2", "memory": "8Gi", "ephemeral-storage": "10Gi"}

    def ref(resource: str, divisor: str = "", container: str = "") -> str:
        r = {"resource": resource, **({"divisor": divisor} if divisor else {}),
             **({"containerName": container} if container else {})}
        return dict(podspec.container_env(p, {**c, "env": [{"name": "V", "valueFrom": {"resourceFieldRef": r}}]},
                                          {}, {}, alloc))["V"]

    assert ref("requests.cpu") == "1" and ref("requests.cpu", "1m") == "250"
    assert ref("limits.cpu") == "2" and ref("limits.cpu", "1m") == "2000"  # allocatable
    assert ref("limits.memory", "1Mi") == "64" and ref("requests.memory", "1Gi") == "1"
    assert ref("limits.ephemeral-storage", "1Gi") == "10" and ref("requests.ephemeral-storage") == "0"
    assert ref("limits.cpu", "1m", "side") == "1500" and ref("limits.cpu", "", "side") == "2"


def test_downward_files_of_labels_quote_values_like_go():
    files = downward_files(pod(), [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                                   {"path": "cpu", "resourceFieldRef": {"containerName": "c",
                                                                        "resource": "limits.cpu", "divisor": "1m"}}],
                           0o644, {"cpu": "3"})
    assert files["labels"] == (b'app="x"\nb="q\\"n"', 0o644) and files["cpu"][0] == b"3000"


def test_managed_hosts_file_names_the_pod_and_its_aliases():
    p = pod(hostname="web-0", subdomain="web", hostAliases=[{"ip": "1.2.3.4", "hostnames": ["foo.local", "bar"]}])
    text = etchosts.hosts_content(p, ["10.42.1.5"], "cluster.local", "ignored")
    lines = text.splitlines()
    assert lines[0] == "# Kubernetes-managed hosts file." and lines[1] == "127.0.0.1\tlocalhost"
    assert "::1\tlocalhost ip6-localhost ip6-loopback" in lines
    assert "10.42.1.5\tweb-0.web.app.svc.cluster.local\tweb-0" in lines
    assert lines[-3:] == ["", "# Entries added by HostAliases.", "1.2.3.4\tfoo.local\tbar"]
    plain = etchosts.hosts_content(pod(), ["10.42.1.5"], "cluster.local", "")
    assert "10.42.1.5\tp" in plain.splitlines() and "HostAliases" not in plain
    host = etchosts.hosts_content(pod(hostNetwork=True, hostAliases=[{"ip": "5.6.7.8", "hostnames": ["z"]}]),
                                  ["192.0.2.1"], "cluster.local", "127.0.0.1 node\n")
    assert host == ("# Kubernetes-managed hosts file (host network).\n127.0.0.1 node\n\n"
                    "# Entries added by HostAliases.\n5.6.7.8\tz\n")
    assert etchosts.mounts_own_hosts({"volumeMounts": [{"name": "v", "mountPath": "/etc/hosts"}]})
    assert not etchosts.mounts_own_hosts({"volumeMounts": [{"name": "v", "mountPath": "/etc"}]})


def test_hosts_file_is_rewritten_in_place(tmp_path):
    path = etchosts.write_hosts_file(str(tmp_path), "a\n")
    inode = (tmp_path / "etc-hosts").stat().st_ino
    assert etchosts.write_hosts_file(str(tmp_path), "b\n") == path
    assert (tmp_path / "etc-hosts").read_text() == "b\n" and (tmp_path / "etc-hosts").stat().st_ino == inode


def _messages(errs: list) -> list[str]:
    return [f"{e.field}: {e.message()}" for e in errs]


def test_validation_of_downward_references():
    def env_err(frm: dict) -> list[str]:
        return _messages(downward.env_errors("spec.containers[0].env[0]", {"name": "X", "valueFrom": frm}))

    assert env_err({"fieldRef": {"fieldPath": "status.podIPs"}}) == []
    assert env_err({"fieldRef": {"fieldPath": "metadata.labels['app']"}}) == []
    bad = env_err({"fieldRef": {"fieldPath": "metadata.labels"}})
    assert bad and bad[0].startswith("spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: "
                                     '"metadata.labels": supported values: "metadata.name"'), bad
    assert "field label not supported: spec.bogus" in env_err({"fieldRef": {"fieldPath": "spec.bogus"}})[0]
    assert env_err({"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}) == []
    assert "only divisor's values 1m, 1 are supported with the cpu resource" in env_err(
        {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "2"}})[0]
    assert "Unsupported value" in env_err({"resourceFieldRef": {"resource": "limits.pods"}})[0]
    assert "more than one field" in env_err({"fieldRef": {"fieldPath": "metadata.name"},
                                             "configMapKeyRef": {"name": "a", "key": "b"}})[0]
    vol = {"name": "v", "downwardAPI": {"items": [
        {"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}},
        {"path": "cpu", "resourceFieldRef": {"resource": "limits.cpu"}},
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "none"}]}}
    errs = _messages(downward.volume_errors("spec.volumes[0]", vol))
    assert len(errs) == 3 and "items[0].fieldRef.fieldPath: Unsupported value" in errs[0], errs
    assert errs[1] == "spec.volumes[0].downwardAPI.items[1].resourceFieldRef.containerName: Required value"
    assert errs[2].endswith("items[3]: Required value: one of fieldRef and resourceFieldRef is required")
    projected = {"name": "v", "projected": {"sources": [{"downwardAPI": {"items": [
        {"path": "n", "fieldRef": {"fieldPath": "spec.nodeName"}}]}}]}}
    assert "projected.sources[0].downwardAPI.items[0].fieldRef.fieldPath" in _messages(
        downward.volume_errors("spec.volumes[0]", projected))[0]
    assert downward.env_from_errors("p", {"prefix": "p-", "configMapRef": {"name": "x"}}) == []
    assert downward.env_from_errors("p", {"prefix": "a=b", "configMapRef": {"name": "x"}})


def test_host_aliases_need_an_ip_and_dns_names():
    ok = [{"ip": "1.2.3.4", "hostnames": ["foo.local", "bar"]}, {"ip": "fd00::1", "hostnames": ["v6"]}]
    assert downward.host_aliases_errors("spec.hostAliases", ok) == []
    errs = _messages(downward.host_aliases_errors("spec.hostAliases", [
        {"ip": "1.2.3", "hostnames": ["ok"]}, {"hostnames": ["a\tb", "Upper"]}]))
    assert errs[0] == ('spec.hostAliases[0].ip: Invalid value: "1.2.3": must be a valid IP address, '
                       "(e.g. 10.9.8.7 or 2001:db8::ffff)")
    assert errs[1] == "spec.hostAliases[1].ip: Required value"
    assert errs[2].startswith("spec.hostAliases[1].hostnames[0]: Invalid value: ") and "RFC 1123 subdomain" in errs[2]
    assert errs[3].startswith("spec.hostAliases[1].hostnames[1]") and len(errs) == 4
