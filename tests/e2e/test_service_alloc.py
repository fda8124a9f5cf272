"""Service cluster IPs and node ports, seen through the real kubectl and the Python client:
allocation from the service CIDR and the node port range, the real server's messages
for conflicts and out-of-range requests, release on delete and on type changes, the
`kubernetes` and `kube-dns` Services the server keeps, and repair across a restart."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time

import orjson
import pytest

from kybernetes.agent.host import primary_ip
from kybernetes.testing.cluster import ServerProcess

NS = "svc-alloc"
CIDR = ipaddress.ip_network("10.43.0.0/16")


@pytest.fixture(scope="module", autouse=True)
def namespace(kubectl):
    kubectl.ok("create", "namespace", NS)
    yield
    kubectl("delete", "namespace", NS, "--wait=false")


def get_svc(kubectl, name: str, ns: str = NS) -> dict:
    return json.loads(kubectl.ok("get", "svc", name, "-n", ns, "-o", "json"))


def create_svc(kubectl, *args: str):
    return kubectl("create", "service", *args, "-n", NS)


def apply(kubectl, obj: dict):
    obj = {"apiVersion": "v1", "kind": "Service", **obj}
    obj.setdefault("metadata", {})["namespace"] = NS
    return kubectl("apply", "-f", "-", stdin=json.dumps(obj))


def free_node_ports(kubectl, count: int = 1) -> list[int]:
    """Node ports no Service in the cluster holds now: the session's other tests take random ones."""
    taken = {p.get("nodePort") for svc in json.loads(kubectl.ok("get", "svc", "-A", "-o", "json"))["items"]
             for p in svc["spec"].get("ports") or []}
    return [port for port in range(31870, 32767) if port not in taken][:count]


def assert_allocated_ip(spec: dict) -> str:
    ip = spec["clusterIP"]
    assert ipaddress.ip_address(ip) in CIDR
    assert ip not in ("10.43.0.0", "10.43.0.1", "10.43.255.255")
    assert spec["clusterIPs"] == [ip]
    return ip


# -- allocation -------------------------------------------------------------------------------------


def test_clusterip_service_gets_an_address_and_the_real_defaults(kubectl):
    assert create_svc(kubectl, "clusterip", "plain", "--tcp=80:8080").ok
    spec = get_svc(kubectl, "plain")["spec"]
    ip = assert_allocated_ip(spec)
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["sessionAffinity"] == "None" and spec["internalTrafficPolicy"] == "Cluster"
    assert "externalTrafficPolicy" not in spec
    row = kubectl.ok("get", "svc", "plain", "-n", NS).splitlines()[1].split()
    assert row[:3] == ["plain", "ClusterIP", ip]


def test_nodeport_service_gets_a_port_from_the_range(kubectl):
    assert create_svc(kubectl, "nodeport", "np", "--tcp=80:8080").ok
    spec = get_svc(kubectl, "np")["spec"]
    assert_allocated_ip(spec)
    node_port = spec["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767
    assert spec["externalTrafficPolicy"] == "Cluster"
    row = kubectl.ok("get", "svc", "np", "-n", NS).splitlines()[1].split()
    assert row[1] == "NodePort" and row[4] == f"80:{node_port}/TCP"


def test_expose_a_deployment(kubectl):
    kubectl.ok("create", "deployment", "exposed", "--image=busybox", "-n", NS)
    out = kubectl.ok("expose", "deployment", "exposed", "--port=80", "--target-port=8080", "--type=NodePort",
                     "-n", NS)
    assert "service/exposed exposed" in out
    spec = get_svc(kubectl, "exposed")["spec"]
    assert_allocated_ip(spec)
    assert spec["selector"] == {"app": "exposed"}
    assert 30000 <= spec["ports"][0]["nodePort"] <= 32767


def test_load_balancer_with_local_traffic_gets_a_health_check_port(kubectl):
    r = apply(kubectl, {"metadata": {"name": "lb"}, "spec": {
        "type": "LoadBalancer", "externalTrafficPolicy": "Local", "selector": {"app": "lb"},
        "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}})
    assert r.ok, r.stderr
    spec = get_svc(kubectl, "lb")["spec"]
    assert spec["allocateLoadBalancerNodePorts"] is True
    udp, tcp = (p["nodePort"] for p in spec["ports"])
    assert udp == tcp  # one port number, two protocols: one node port
    assert 30000 <= spec["healthCheckNodePort"] <= 32767 and spec["healthCheckNodePort"] != udp


def test_headless_and_external_name_get_no_address(kubectl):
    assert create_svc(kubectl, "clusterip", "headless", "--clusterip=None").ok
    assert get_svc(kubectl, "headless")["spec"]["clusterIP"] == "None"
    assert create_svc(kubectl, "externalname", "ext", "--external-name=example.com").ok
    spec = get_svc(kubectl, "ext")["spec"]
    assert "clusterIP" not in spec and "ipFamilies" not in spec and spec["externalName"] == "example.com"


def test_python_client_sees_the_cluster_ip(k8s_client):
    from kubernetes import client

    core = client.CoreV1Api(k8s_client)
    made = core.create_namespaced_service(NS, client.V1Service(
        metadata=client.V1ObjectMeta(name="pyclient"),
        spec=client.V1ServiceSpec(type="NodePort", selector={"app": "py"},
                                  ports=[client.V1ServicePort(port=80, target_port=8080)])))
    assert ipaddress.ip_address(made.spec.cluster_ip) in CIDR
    assert made.spec.cluster_ips == [made.spec.cluster_ip]
    assert 30000 <= made.spec.ports[0].node_port <= 32767
    read = core.read_namespaced_service("pyclient", NS)
    assert read.spec.cluster_ip == made.spec.cluster_ip
    assert core.read_namespaced_service("kubernetes", "default").spec.cluster_ip == "10.43.0.1"


def test_server_side_dry_run_shows_an_address_and_keeps_nothing(kubectl):
    [port] = free_node_ports(kubectl)
    out = kubectl.ok("create", "service", "nodeport", "dry", "--tcp=80", f"--node-port={port}", "-n", NS,
                     "--dry-run=server", "-o", "json")
    spec = json.loads(out)["spec"]
    assert_allocated_ip(spec)
    assert spec["ports"][0]["nodePort"] == port
    assert kubectl("get", "svc", "dry", "-n", NS).returncode != 0
    assert create_svc(kubectl, "nodeport", "wet", "--tcp=80", f"--node-port={port}").ok


# -- requested values and their messages ------------------------------------------------------------------


def test_requested_address_is_honoured_then_refused_to_the_next_one(kubectl):
    assert create_svc(kubectl, "clusterip", "fixed", "--tcp=80", "--clusterip=10.43.201.7").ok
    assert get_svc(kubectl, "fixed")["spec"]["clusterIP"] == "10.43.201.7"
    r = create_svc(kubectl, "clusterip", "fixed2", "--tcp=80", "--clusterip=10.43.201.7")
    assert r.returncode != 0
    assert ('Service "fixed2" is invalid: spec.clusterIPs: Invalid value: []string{"10.43.201.7"}: failed to allocate '
            "IP 10.43.201.7: provided IP is already allocated") in r.stderr
    assert kubectl("get", "svc", "fixed2", "-n", NS).returncode != 0


def test_address_of_kube_dns_is_taken(kubectl):
    r = create_svc(kubectl, "clusterip", "dnsthief", "--tcp=53", "--clusterip=10.43.0.10")
    assert "failed to allocate IP 10.43.0.10: provided IP is already allocated" in r.stderr


def test_address_outside_the_range_is_refused(kubectl):
    r = create_svc(kubectl, "clusterip", "faraway", "--tcp=80", "--clusterip=10.99.0.5")
    assert r.returncode != 0
    assert ('Service "faraway" is invalid: spec.clusterIPs: Invalid value: []string{"10.99.0.5"}: failed to allocate '
            "IP 10.99.0.5: the provided IP (10.99.0.5) is not in the valid range. The range of valid IPs is "
            "10.43.0.0/16") in r.stderr
    r = create_svc(kubectl, "clusterip", "notip", "--tcp=80", "--clusterip=10.43.1")
    assert 'spec.clusterIPs[0]: Invalid value: "10.43.1": must be a valid IP address' in r.stderr


def test_node_port_conflict_and_range_messages(kubectl):
    [port] = free_node_ports(kubectl)
    assert create_svc(kubectl, "nodeport", "port1", "--tcp=80:8080", f"--node-port={port}").ok
    r = create_svc(kubectl, "nodeport", "port2", "--tcp=80:8080", f"--node-port={port}")
    assert r.returncode != 0
    assert (f'Service "port2" is invalid: spec.ports[0].nodePort: Invalid value: {port}: provided port is already '
            "allocated") in r.stderr
    r = create_svc(kubectl, "nodeport", "port3", "--tcp=80:8080", "--node-port=40000")
    assert ('Service "port3" is invalid: spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the '
            "valid range. The range of valid ports is 30000-32767") in r.stderr
    assert kubectl("get", "svc", "port2", "-n", NS).returncode != 0


def test_a_refused_create_stores_and_holds_nothing(kubectl):
    [port] = free_node_ports(kubectl)
    assert create_svc(kubectl, "nodeport", "holder", "--tcp=80", f"--node-port={port}").ok
    # The requested address is free and is claimed before the node port is found taken.
    r = apply(kubectl, {"metadata": {"name": "loser"}, "spec": {
        "type": "NodePort", "clusterIP": "10.43.201.9", "ports": [{"port": 80, "nodePort": port}]}})
    assert "provided port is already allocated" in r.stderr
    assert kubectl("get", "svc", "loser", "-n", NS).returncode != 0
    # ...and went back: another Service can have it.
    assert create_svc(kubectl, "clusterip", "winner", "--tcp=80", "--clusterip=10.43.201.9").ok


def test_deleting_releases_address_and_port(kubectl):
    [port] = free_node_ports(kubectl)
    assert create_svc(kubectl, "nodeport", "tmp", "--tcp=80", f"--node-port={port}").ok
    ip = get_svc(kubectl, "tmp")["spec"]["clusterIP"]
    kubectl.ok("delete", "svc", "tmp", "-n", NS)
    assert create_svc(kubectl, "nodeport", "again", "--tcp=80", f"--node-port={port}").ok
    assert apply(kubectl, {"metadata": {"name": "sameip"}, "spec": {"clusterIP": ip, "ports": [{"port": 80}]}}).ok
    assert get_svc(kubectl, "sameip")["spec"]["clusterIP"] == ip


# -- updates ----------------------------------------------------------------------------------------------


def test_type_changes_allocate_and_release(kubectl):
    assert create_svc(kubectl, "clusterip", "morph", "--tcp=80:8080").ok
    ip = get_svc(kubectl, "morph")["spec"]["clusterIP"]
    kubectl.ok("patch", "svc", "morph", "-n", NS, "-p", '{"spec":{"type":"NodePort"}}')
    spec = get_svc(kubectl, "morph")["spec"]
    node_port = spec["ports"][0]["nodePort"]
    assert spec["clusterIP"] == ip and 30000 <= node_port <= 32767
    r = create_svc(kubectl, "nodeport", "morphthief", "--tcp=80", f"--node-port={node_port}")
    assert "provided port is already allocated" in r.stderr

    kubectl.ok("patch", "svc", "morph", "-n", NS, "-p", '{"spec":{"type":"ClusterIP"}}')
    spec = get_svc(kubectl, "morph")["spec"]
    assert "nodePort" not in spec["ports"][0] and "externalTrafficPolicy" not in spec and spec["clusterIP"] == ip
    assert create_svc(kubectl, "nodeport", "morphthief", "--tcp=80", f"--node-port={node_port}").ok

    kubectl.ok("patch", "svc", "morph", "-n", NS, "-p", '{"spec":{"type":"ExternalName","externalName":"example.com"}}')
    spec = get_svc(kubectl, "morph")["spec"]
    assert "clusterIP" not in spec and "clusterIPs" not in spec
    assert apply(kubectl, {"metadata": {"name": "ipthief"}, "spec": {"clusterIP": ip, "ports": [{"port": 80}]}}).ok

    kubectl.ok("patch", "svc", "morph", "-n", NS, "-p", '{"spec":{"type":"ClusterIP","externalName":null}}')
    assert_allocated_ip(get_svc(kubectl, "morph")["spec"])


def test_changing_a_node_port_moves_the_allocation(kubectl):
    first, second = free_node_ports(kubectl, 2)
    assert create_svc(kubectl, "nodeport", "mover", "--tcp=80", f"--node-port={first}").ok
    kubectl.ok("patch", "svc", "mover", "-n", NS, "--type=json",
               "-p", f'[{{"op":"replace","path":"/spec/ports/0/nodePort","value":{second}}}]')
    assert get_svc(kubectl, "mover")["spec"]["ports"][0]["nodePort"] == second
    assert create_svc(kubectl, "nodeport", "movedin", "--tcp=80", f"--node-port={first}").ok
    r = create_svc(kubectl, "nodeport", "movedout", "--tcp=80", f"--node-port={second}")
    assert "provided port is already allocated" in r.stderr
    # Taking a port someone else holds fails, and the Service keeps what it had.
    r = kubectl("patch", "svc", "mover", "-n", NS, "--type=json",
                "-p", f'[{{"op":"replace","path":"/spec/ports/0/nodePort","value":{first}}}]')
    assert f"spec.ports[0].nodePort: Invalid value: {first}: provided port is already allocated" in r.stderr
    assert get_svc(kubectl, "mover")["spec"]["ports"][0]["nodePort"] == second


def test_cluster_ip_is_kept_by_a_replace_without_it_and_cannot_change(kubectl):
    assert create_svc(kubectl, "clusterip", "keeper", "--tcp=80").ok
    svc = get_svc(kubectl, "keeper")
    ip = svc["spec"]["clusterIP"]
    svc["spec"].pop("clusterIP")
    svc["spec"].pop("clusterIPs")
    kubectl.ok("replace", "-f", "-", stdin=json.dumps(svc))
    assert get_svc(kubectl, "keeper")["spec"]["clusterIP"] == ip
    r = kubectl("patch", "svc", "keeper", "-n", NS, "-p", '{"spec":{"clusterIP":"10.43.201.99"}}')
    assert r.returncode != 0 and "field is immutable" in r.stderr


# -- the Services the server keeps ---------------------------------------------------------------------------


def test_kubernetes_service_and_its_endpoints(kubectl, server):
    svc = get_svc(kubectl, "kubernetes", "default")
    assert svc["spec"]["clusterIP"] == "10.43.0.1"
    assert "selector" not in svc["spec"]
    assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": server.port}]
    # The test server binds loopback, so it advertises the host's primary address.
    address = f"{primary_ip()}:{server.port}"
    row = kubectl.ok("get", "endpoints", "kubernetes").splitlines()[1].split()
    assert row[:2] == ["kubernetes", address]
    ep = json.loads(kubectl.ok("get", "endpoints", "kubernetes", "-o", "json"))
    assert ep["subsets"] == [{"addresses": [{"ip": primary_ip()}],
                              "ports": [{"name": "https", "port": server.port, "protocol": "TCP"}]}]
    slices = kubectl.ok("get", "endpointslices").splitlines()
    assert any(line.split()[:4] == ["kubernetes", "IPv4", str(server.port), primary_ip()] for line in slices)
    es = json.loads(kubectl.ok("get", "endpointslice", "kubernetes", "-o", "json"))
    assert es["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
    assert es["endpoints"] == [{"addresses": [primary_ip()], "conditions": {"ready": True}}]


def test_kubernetes_endpoints_come_back_when_deleted(kubectl, server):
    kubectl.ok("delete", "endpoints", "kubernetes")
    deadline = time.monotonic() + 30
    while kubectl("get", "endpoints", "kubernetes").returncode != 0:
        assert time.monotonic() < deadline, "the API server did not recreate the kubernetes endpoints"
        time.sleep(0.5)


def test_kube_dns_service(kubectl):
    svc = get_svc(kubectl, "kube-dns", "kube-system")
    assert svc["spec"]["clusterIP"] == "10.43.0.10"
    assert svc["metadata"]["labels"]["k8s-app"] == "kube-dns"
    assert "selector" not in svc["spec"]
    assert [(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]] == [
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")]
    assert kubectl.ok("get", "svc", "-n", "kube-system", "kube-dns").splitlines()[1].split()[2] == "10.43.0.10"


# -- flags, exhaustion and repair across a restart, on a server of its own ---------------------------------


def _put_leaked_record(data_dir: str, port: int) -> None:
    from kybernetes.apiserver.serviceips import PORT_PREFIX
    from kybernetes.storage.sqlite import SQLiteStore

    async def put() -> None:
        store = SQLiteStore(f"{data_dir}/state.db")
        await store.start()
        try:
            await store.create(f"{PORT_PREFIX}{port}", orjson.dumps({
                "metadata": {"name": str(port)}, "owner": {"namespace": "default", "name": "ghost", "uid": "x"},
                "allocatedAt": time.time() - 3600}))
        finally:
            await store.close()

    asyncio.run(put())


def test_flags_range_exhaustion_and_repair_after_restart():
    srv = ServerProcess(extra_args=["--disable-controllers", "--disable-scheduler",
                                    "--service-cidr", "10.50.0.0/24", "--service-node-port-range", "31000-31010",
                                    "--cluster-dns", "10.50.0.53", "--advertise-address", "192.0.2.77"])
    try:
        srv.start()
        k = srv.kubectl
        assert json.loads(k("get", "svc", "kubernetes", "-o", "json").stdout)["spec"]["clusterIP"] == "10.50.0.1"
        dns = json.loads(k("get", "svc", "kube-dns", "-n", "kube-system", "-o", "json").stdout)
        assert dns["spec"]["clusterIP"] == "10.50.0.53"
        assert k("get", "endpoints", "kubernetes").stdout.splitlines()[1].split()[1] == f"192.0.2.77:{srv.port}"

        assert k("create", "service", "nodeport", "first", "--tcp=80").ok
        first = json.loads(k("get", "svc", "first", "-o", "json").stdout)["spec"]
        assert ipaddress.ip_address(first["clusterIP"]) in ipaddress.ip_network("10.50.0.0/24")
        assert 31000 <= first["ports"][0]["nodePort"] <= 31010
        r = k("create", "service", "nodeport", "far", "--tcp=80", "--node-port=30080")
        assert "The range of valid ports is 31000-31010" in r.stderr

        # 10 ports are left: 11 do not fit, and the failed create gives back what it took.
        many = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "many"}, "spec": {
            "type": "NodePort", "ports": [{"name": f"p{i}", "port": 1000 + i} for i in range(11)]}}
        r = k("create", "-f", "-", stdin=json.dumps(many))
        assert "Internal error occurred: failed to allocate a nodePort: range is full" in r.stderr
        many["spec"]["ports"].pop()
        assert k("create", "-f", "-", stdin=json.dumps(many)).ok
        k("delete", "svc", "many")
        srv.stop()

        free = next(p for p in range(31000, 31011) if p != first["ports"][0]["nodePort"])
        _put_leaked_record(srv.data_dir, free)
        srv.start()
        # Repair dropped the leaked record; the live Service's port is still held.
        assert k("create", "service", "nodeport", "reuse", "--tcp=80", f"--node-port={free}").ok, srv.log_tail()
        r = k("create", "service", "nodeport", "dup", "--tcp=80", f"--node-port={first['ports'][0]['nodePort']}")
        assert "provided port is already allocated" in r.stderr
        again = json.loads(k("get", "svc", "first", "-o", "json").stdout)["spec"]
        assert again["clusterIP"] == first["clusterIP"]
        names = k("get", "svc", "-A", "-o", "name").stdout.split()
        assert names.count("service/kubernetes") == 1 and names.count("service/kube-dns") == 1
    finally:
        srv.cleanup()
