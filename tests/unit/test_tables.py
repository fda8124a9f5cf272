"""Server-side Table printing: columns, cells and the Table envelope."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kybernetes.api import tables
from kybernetes.api.errors import ApiError
from kybernetes.api.registry import Registry, ResourceInfo

SAMPLES = Path("/work/shared/compat/samples")
# The captured Tables were taken at this instant (cj1 created 17:40:00 shows "2m8s").
CAPTURE_NOW = datetime(2026, 11, 24, 17, 42, 8, tzinfo=UTC)
NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
REG = Registry()


def info(plural: str, group: str = "", version: str = "v1") -> ResourceInfo:
    found = REG.get(group, version, plural)
    assert found is not None, plural
    return found


def ago(**kw: float) -> str:
    return (NOW - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


def sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


def names(cols: list[dict]) -> list[tuple[str, int]]:
    return [(c["name"], c["priority"]) for c in cols]


# -- ages -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds,expected", [
    (0, "0s"), (5, "5s"), (119, "119s"), (128, "2m8s"), (120, "2m"), (599, "9m59s"), (600, "10m"),
    (179 * 60 + 59, "179m"), (3 * 3600, "3h"), (3 * 3600 + 5 * 60, "3h5m"), (8 * 3600, "8h"),
    (47 * 3600, "47h"), (48 * 3600, "2d"), (51 * 3600, "2d3h"), (8 * 86400, "8d"), (729 * 86400, "729d"),
    (730 * 86400, "2y"), (740 * 86400, "2y10d"), (8 * 365 * 86400 + 86400, "8y"), (-1, "0s"), (-5, "<invalid>"),
])
def test_human_duration_follows_kubernetes_rules(seconds: int, expected: str) -> None:
    assert tables.human_duration(seconds) == expected
    assert tables.human_age(ago(seconds=seconds), NOW) == expected


def test_human_age_without_timestamp_is_unknown() -> None:
    assert tables.human_age(None, NOW) == "<unknown>"
    assert tables.human_age("not a time", NOW) == "<unknown>"


def test_human_age_accepts_naive_now_and_micro_times() -> None:
    assert tables.human_age("2029-12-31T12:00:00.123456Z", NOW.replace(tzinfo=None)) == "23h"


# -- column definitions ------------------------------------------------------------------------


@pytest.mark.parametrize("sample_name,plural,group", [
    ("table-pods.json", "pods", ""),
    ("table-deployments.json", "deployments", "apps"),
    ("table-configmaps-includeObject-Object-limit2.json", "configmaps", ""),
])
def test_columns_match_captured_tables(sample_name: str, plural: str, group: str) -> None:
    real = sample(sample_name)["columnDefinitions"]
    mine = tables.column_definitions(info(plural, group))
    assert [(c["name"], c["type"], c["format"], c["priority"]) for c in mine] == \
        [(c["name"], c["type"], c["format"], c["priority"]) for c in real]
    # Descriptions that did not change between 1.28 and 1.37 must be identical.
    by_name = {c["name"]: c for c in mine}
    for col in real:
        if col["name"] in ("Name", "Age", "Ready", "Status", "Restarts", "Data", "Containers", "Images"):
            assert by_name[col["name"]]["description"] == col["description"]


def test_no_builtin_table_has_a_namespace_column() -> None:
    for res in REG.all():
        cols = tables.column_definitions(res)
        assert "Namespace" not in [c["name"] for c in cols], res.kind
        assert any(c["name"] == "Name" and c["format"] == "name" for c in cols), res.kind
        assert all(set(c) == {"name", "type", "format", "description", "priority"} for c in cols)


@pytest.mark.parametrize("plural,group,version,expected", [
    ("replicasets", "apps", "v1", [("Name", 0), ("Desired", 0), ("Current", 0), ("Ready", 0), ("Age", 0),
                                   ("Containers", 1), ("Images", 1), ("Selector", 1)]),
    ("statefulsets", "apps", "v1", [("Name", 0), ("Ready", 0), ("Age", 0), ("Containers", 1), ("Images", 1)]),
    ("jobs", "batch", "v1", [("Name", 0), ("Status", 0), ("Completions", 0), ("Duration", 0), ("Age", 0),
                             ("Containers", 1), ("Images", 1), ("Selector", 1)]),
    ("services", "", "v1", [("Name", 0), ("Type", 0), ("Cluster-IP", 0), ("External-IP", 0), ("Port(s)", 0),
                            ("Age", 0), ("Selector", 1)]),
    ("nodes", "", "v1", [("Name", 0), ("Status", 0), ("Roles", 0), ("Age", 0), ("Version", 0),
                         ("Internal-IP", 1), ("External-IP", 1), ("OS-Image", 1), ("Kernel-Version", 1),
                         ("Container-Runtime", 1)]),
    ("events", "", "v1", [("Last Seen", 0), ("Type", 0), ("Reason", 0), ("Object", 0), ("Subobject", 1),
                          ("Source", 1), ("Message", 0), ("First Seen", 1), ("Count", 1), ("Name", 1)]),
    ("serviceaccounts", "", "v1", [("Name", 0), ("Age", 0)]),
    ("secrets", "", "v1", [("Name", 0), ("Type", 0), ("Data", 0), ("Age", 0)]),
    ("namespaces", "", "v1", [("Name", 0), ("Status", 0), ("Age", 0)]),
    ("leases", "coordination.k8s.io", "v1", [("Name", 0), ("Holder", 0), ("Age", 0)]),
    ("roles", "rbac.authorization.k8s.io", "v1", [("Name", 0), ("Created At", 0)]),
    ("customresourcedefinitions", "apiextensions.k8s.io", "v1", [("Name", 0), ("Created At", 0)]),
])
def test_builtin_columns(plural: str, group: str, version: str, expected: list) -> None:
    assert names(tables.column_definitions(info(plural, group, version))) == expected


# -- pods -------------------------------------------------------------------------------------


def pod(status: dict | None = None, *, containers: int = 1, init: list[dict] | None = None,
        meta: dict | None = None, spec: dict | None = None) -> dict:
    full_spec = {"containers": [{"name": f"c{i}", "image": "nginx"} for i in range(containers)]}
    if init is not None:
        full_spec["initContainers"] = init
    full_spec.update(spec or {})
    metadata = {"name": "p", "namespace": "default", "creationTimestamp": ago(minutes=30)}
    metadata.update(meta or {})
    return {"metadata": metadata, "spec": full_spec, "status": status or {"phase": "Pending"}}


def running(name: str = "c0", ready: bool = True, restarts: int = 0, finished: str | None = None) -> dict:
    cs = {"name": name, "ready": ready, "restartCount": restarts, "state": {"running": {"startedAt": ago(hours=1)}}}
    if finished:
        cs["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": finished}}
    return cs


def pod_cells(p: dict) -> list:
    return tables.row_cells(info("pods"), p, NOW)


def test_pending_pod_row() -> None:
    assert pod_cells(pod()) == ["p", "0/1", "Pending", "0", "30m", "<none>", "<none>", "<none>", "<none>"]


def test_running_pod_with_ip_node_and_readiness_gates() -> None:
    p = pod({"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}], "nominatedNodeName": "n2",
             "containerStatuses": [running("c0"), running("c1", ready=False)],
             "conditions": [{"type": "Ready", "status": "False"}, {"type": "example.com/gate", "status": "True"}]},
            containers=2, spec={"nodeName": "n1", "readinessGates": [{"conditionType": "example.com/gate"},
                                                                     {"conditionType": "other"}]})
    assert pod_cells(p) == ["p", "1/2", "Running", "0", "30m", "10.0.0.5", "n1", "n2", "1/2"]


def test_restarts_show_time_since_last_termination() -> None:
    p = pod({"phase": "Running", "containerStatuses": [
        {"name": "c0", "ready": False, "restartCount": 3,
         "state": {"waiting": {"reason": "CrashLoopBackOff"}},
         "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(minutes=5)}}}]})
    ready, status, restarts = pod_cells(p)[1:4]
    assert (ready, status, restarts) == ("0/1", "CrashLoopBackOff", "3 (5m ago)")


def test_terminating_pod_and_node_lost() -> None:
    p = pod({"phase": "Running", "containerStatuses": [running()]}, meta={"deletionTimestamp": ago(seconds=1)})
    assert pod_cells(p)[2] == "Terminating"
    lost = pod({"phase": "Running", "reason": "NodeLost"}, meta={"deletionTimestamp": ago(seconds=1)})
    assert pod_cells(lost)[2] == "Unknown"
    done = pod({"phase": "Succeeded"}, meta={"deletionTimestamp": ago(seconds=1)})
    assert pod_cells(done)[2] == "Succeeded"


def test_completed_and_failed_containers() -> None:
    completed = pod({"phase": "Succeeded", "containerStatuses": [
        {"name": "c0", "ready": False, "restartCount": 0,
         "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]})
    assert pod_cells(completed)[1:3] == ["0/1", "Completed"]
    no_reason = pod({"phase": "Failed", "containerStatuses": [
        {"name": "c0", "state": {"terminated": {"exitCode": 2}}}]})
    assert pod_cells(no_reason)[2] == "ExitCode:2"
    signal = pod({"phase": "Failed", "containerStatuses": [
        {"name": "c0", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]})
    assert pod_cells(signal)[2] == "Signal:9"


def test_completed_container_beside_running_one_is_running_or_not_ready() -> None:
    statuses = [{"name": "c0", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}, running("c1")]
    p = pod({"phase": "Running", "containerStatuses": statuses,
             "conditions": [{"type": "Ready", "status": "True"}]}, containers=2)
    assert pod_cells(p)[1:3] == ["1/2", "Running"]
    p["status"]["conditions"] = []
    assert pod_cells(p)[2] == "NotReady"


def test_pod_status_reason_and_scheduling_gate() -> None:
    evicted = pod({"phase": "Failed", "reason": "Evicted"})
    assert pod_cells(evicted)[2] == "Evicted"
    gated = pod({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]})
    assert pod_cells(gated)[2] == "SchedulingGated"


def test_init_container_states() -> None:
    inits = [{"name": "i0", "image": "busybox"}, {"name": "i1", "image": "busybox"}]
    waiting = pod({"phase": "Pending", "initContainerStatuses": [
        {"name": "i0", "state": {"waiting": {"reason": "PodInitializing"}}}]}, init=inits)
    assert pod_cells(waiting)[2] == "Init:0/2"
    second = pod({"phase": "Pending", "initContainerStatuses": [
        {"name": "i0", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
        {"name": "i1", "state": {"running": {}}}]}, init=inits)
    assert pod_cells(second)[2] == "Init:1/2"
    crash = pod({"phase": "Pending", "initContainerStatuses": [
        {"name": "i0", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
         "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(minutes=2)}}}]}, init=inits)
    assert pod_cells(crash)[2:4] == ["Init:CrashLoopBackOff", "4 (2m ago)"]
    failed = pod({"phase": "Failed", "initContainerStatuses": [
        {"name": "i0", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}, init=inits)
    assert pod_cells(failed)[2] == "Init:Error"


def test_sidecar_init_containers_count_towards_ready() -> None:
    p = pod({"phase": "Running",
             "initContainerStatuses": [{"name": "side", "started": True, "ready": True, "restartCount": 1,
                                        "state": {"running": {}}}],
             "containerStatuses": [running("c0")],
             "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}]},
            init=[{"name": "side", "image": "envoy", "restartPolicy": "Always"}])
    assert pod_cells(p)[1:4] == ["2/2", "Running", "1"]


def test_captured_pods_table_is_reproduced() -> None:
    real = sample("table-pods.json")
    pods = []
    for row in real["rows"]:
        meta = row["object"]["metadata"]
        node = row["cells"][6]
        spec = {"containers": [{"name": "c", "image": "x"}]}
        if node != "<none>":
            spec["nodeName"] = node
        pods.append({"metadata": meta, "spec": spec, "status": {"phase": "Pending"}})
    table = tables.build_table(info("pods"), pods, CAPTURE_NOW, list_meta=real["metadata"])
    assert [r["cells"] for r in table["rows"]] == [r["cells"] for r in real["rows"]]
    assert [r["object"] for r in table["rows"]] == [r["object"] for r in real["rows"]]
    assert table["metadata"] == real["metadata"]


def test_pod_rows_carry_completion_conditions() -> None:
    table = tables.build_table(info("pods"), [pod({"phase": "Succeeded"}), pod()], NOW)
    assert table["rows"][0]["conditions"] == [{"type": "Completed", "status": "True", "reason": "Succeeded",
                                               "message": "The pod has completed successfully."}]
    assert "conditions" not in table["rows"][1]


# -- workloads ---------------------------------------------------------------------------------


def test_deployment_row_matches_capture() -> None:
    dep = {"metadata": {"name": "web", "creationTimestamp": "2026-11-24T17:27:37Z"},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.26"}]}}},
           "status": {"replicas": 1, "updatedReplicas": 1}}
    real = next(r["cells"] for r in sample("table-deployments.json")["rows"] if r["cells"][0] == "web")
    assert tables.row_cells(info("deployments", "apps"), dep, CAPTURE_NOW) == real


def test_replicaset_statefulset_daemonset_rows() -> None:
    tmpl = {"spec": {"containers": [{"name": "a", "image": "i:1"}, {"name": "b", "image": "i:2"}]}}
    rs = {"metadata": {"name": "rs", "creationTimestamp": ago(days=3)},
          "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "x"},
                                               "matchExpressions": [{"key": "t", "operator": "In",
                                                                     "values": ["b", "a"]}]},
                   "template": tmpl},
          "status": {"replicas": 3, "readyReplicas": 2}}
    assert tables.row_cells(info("replicasets", "apps"), rs, NOW) == \
        ["rs", 3, 3, 2, "3d", "a,b", "i:1,i:2", "app=x,t in (a,b)"]
    sts = {"metadata": {"name": "db"}, "spec": {"replicas": 2, "template": tmpl}, "status": {"readyReplicas": 1}}
    assert tables.row_cells(info("statefulsets", "apps"), sts, NOW) == ["db", "1/2", "<unknown>", "a,b", "i:1,i:2"]
    ds = {"metadata": {"name": "ds", "creationTimestamp": ago(hours=2)},
          "spec": {"selector": {}, "template": {"spec": {"nodeSelector": {"os": "linux"}, "containers": []}}},
          "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1}}
    assert tables.row_cells(info("daemonsets", "apps"), ds, NOW) == \
        ["ds", 2, 2, 1, 0, 0, "os=linux", "120m", "", "", "<none>"]


def test_job_rows() -> None:
    job = {"metadata": {"name": "j", "creationTimestamp": ago(minutes=20)},
           "spec": {"completions": 3, "selector": {"matchLabels": {"job-name": "j"}},
                    "template": {"spec": {"containers": [{"name": "w", "image": "busybox"}]}}},
           "status": {"succeeded": 1, "startTime": ago(minutes=19)}}
    assert tables.row_cells(info("jobs", "batch"), job, NOW) == \
        ["j", "Running", "1/3", "19m", "20m", "w", "busybox", "job-name=j"]
    done = copy.deepcopy(job)
    done["status"].update({"succeeded": 3, "completionTime": ago(minutes=17), "conditions": [
        {"type": "Complete", "status": "True"}]})
    assert tables.row_cells(info("jobs", "batch"), done, NOW)[1:4] == ["Complete", "3/3", "2m"]
    parallel = {"metadata": {"name": "p"}, "spec": {"parallelism": 4}, "status": {}}
    assert tables.row_cells(info("jobs", "batch"), parallel, NOW)[1:4] == ["Running", "0/1 of 4", ""]


def test_cronjob_row() -> None:
    cj = {"metadata": {"name": "cj", "creationTimestamp": ago(hours=1)},
          "spec": {"schedule": "*/5 * * * *", "suspend": False,
                   "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}},
          "status": {"active": [{"name": "x"}], "lastScheduleTime": ago(minutes=3)}}
    assert tables.row_cells(info("cronjobs", "batch"), cj, NOW) == \
        ["cj", "*/5 * * * *", "<none>", "False", 1, "3m", "60m", "c", "i", "<none>"]


# -- services and networking ---------------------------------------------------------------------


def svc(spec: dict, status: dict | None = None) -> dict:
    return {"metadata": {"name": "s", "creationTimestamp": ago(seconds=42)}, "spec": spec, "status": status or {}}


def test_service_rows() -> None:
    svc_info = info("services")
    cluster = svc({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                   "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                   "selector": {"app": "web", "a": "b"}})
    assert tables.row_cells(svc_info, cluster, NOW) == \
        ["s", "ClusterIP", "10.96.0.10", "<none>", "80/TCP,53/UDP", "42s", "a=b,app=web"]
    node_port = svc({"type": "NodePort", "clusterIPs": ["10.96.0.11"], "externalIPs": ["1.2.3.4"],
                     "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]})
    assert tables.row_cells(svc_info, node_port, NOW)[2:5] == ["10.96.0.11", "1.2.3.4", "80:30080/TCP"]
    pending = svc({"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"], "ports": [{"port": 443}]})
    assert tables.row_cells(svc_info, pending, NOW)[3:5] == ["<pending>", "443/TCP"]
    lb = svc({"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"], "ports": []},
             {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example.com"}]}})
    assert tables.row_cells(svc_info, lb, NOW)[3:5] == ["5.6.7.8,lb.example.com", "<none>"]
    external = svc({"type": "ExternalName", "externalName": "db.example.com"})
    assert tables.row_cells(svc_info, external, NOW)[1:6] == \
        ["ExternalName", "<none>", "db.example.com", "<none>", "42s"]
    headless = svc({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 80}]})
    assert tables.row_cells(svc_info, headless, NOW)[2] == "None"


def test_endpoints_and_slices() -> None:
    ep = {"metadata": {"name": "e"}, "subsets": [
        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "fd00::1"}],
         "ports": [{"port": 80}, {"port": 443}]}]}
    assert tables.row_cells(info("endpoints"), ep, NOW)[1] == "10.0.0.1:80,10.0.0.2:80,[fd00::1]:80 + 3 more..."
    assert tables.row_cells(info("endpoints"), {"metadata": {"name": "e"}}, NOW)[1] == "<none>"
    es = {"metadata": {"name": "es"}, "addressType": "IPv4", "ports": [{"port": 80}, {"name": "x"}],
          "endpoints": [{"addresses": ["10.0.0.1"]}]}
    assert tables.row_cells(info("endpointslices", "discovery.k8s.io"), es, NOW)[:4] == \
        ["es", "IPv4", "80,x", "10.0.0.1"]
    empty = {"metadata": {"name": "es"}, "addressType": "IPv4"}
    assert tables.row_cells(info("endpointslices", "discovery.k8s.io"), empty, NOW)[2:4] == ["<unset>", "<unset>"]


def test_ingress_and_networkpolicy() -> None:
    ing = {"metadata": {"name": "i"}, "spec": {"ingressClassName": "nginx", "rules": [{"host": "a.com"}, {}],
                                               "tls": [{"hosts": ["a.com"]}]},
           "status": {"loadBalancer": {"ingress": [{"ip": "1.1.1.1"}]}}}
    assert tables.row_cells(info("ingresses", "networking.k8s.io"), ing, NOW)[:5] == \
        ["i", "nginx", "a.com", "1.1.1.1", "80, 443"]
    many = {"metadata": {"name": "i"}, "spec": {"rules": [{}, {"host": "a"}, {"host": "b"}, {"host": "c"},
                                                         {"host": "d"}]}}
    assert tables.row_cells(info("ingresses", "networking.k8s.io"), many, NOW)[1:5] == \
        ["<none>", "a,b,c + 2 more...", "", "80"]
    no_hosts = {"metadata": {"name": "i"}, "spec": {"rules": [{}]}}
    assert tables.row_cells(info("ingresses", "networking.k8s.io"), no_hosts, NOW)[2] == "*"
    np = {"metadata": {"name": "deny"}, "spec": {"podSelector": {}}}
    assert tables.row_cells(info("networkpolicies", "networking.k8s.io"), np, NOW)[1] == "<none>"


# -- cluster, config, storage ----------------------------------------------------------------------


def test_configmap_table_with_full_objects_matches_capture() -> None:
    real = sample("table-configmaps-includeObject-Object-limit2.json")
    objects = [{k: v for k, v in r["object"].items() if k not in ("kind", "apiVersion")} for r in real["rows"]]
    table = tables.build_table(info("configmaps"), objects, CAPTURE_NOW, include_object="Object",
                               list_meta=real["metadata"])
    assert table == real


def test_secret_namespace_lease_serviceaccount_rows() -> None:
    sec = {"metadata": {"name": "s", "creationTimestamp": ago(days=10)}, "type": "Opaque", "data": {"a": "", "b": ""}}
    assert tables.row_cells(info("secrets"), sec, NOW) == ["s", "Opaque", 2, "10d"]
    ns = {"metadata": {"name": "default", "creationTimestamp": ago(days=400)}, "status": {"phase": "Active"}}
    assert tables.row_cells(info("namespaces"), ns, NOW) == ["default", "Active", "400d"]
    lease = {"metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1"}}
    assert tables.row_cells(info("leases", "coordination.k8s.io"), lease, NOW) == ["n1", "n1", "<unknown>"]
    sa = {"metadata": {"name": "default", "creationTimestamp": ago(seconds=3)}, "secrets": [{"name": "x"}]}
    assert tables.row_cells(info("serviceaccounts"), sa, NOW) == ["default", "3s"]


def test_node_rows() -> None:
    node = {"metadata": {"name": "n1", "creationTimestamp": ago(hours=5),
                         "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker"}},
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                      {"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "192.168.1.10"},
                                     {"type": "Hostname", "address": "n1"}],
                       "nodeInfo": {"kubeletVersion": "v1.37.0", "osImage": "Debian", "kernelVersion": "6.1",
                                    "containerRuntimeVersion": "kybernetes://0.1"}}}
    assert tables.row_cells(info("nodes"), node, NOW) == \
        ["n1", "Ready,SchedulingDisabled", "control-plane,worker", "5h", "v1.37.0", "192.168.1.10", "<none>",
         "Debian", "6.1", "kybernetes://0.1"]
    bare = {"metadata": {"name": "n2"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}
    assert tables.row_cells(info("nodes"), bare, NOW)[1:3] == ["NotReady", "<none>"]
    assert tables.row_cells(info("nodes"), {"metadata": {"name": "n3"}}, NOW)[1] == "Unknown"
    assert tables.row_cells(info("nodes"), bare, NOW)[7:] == ["<unknown>"] * 3


def test_event_rows_core_and_events_api() -> None:
    core = {"metadata": {"name": "web.1"}, "type": "Normal", "reason": "Scheduled", "message": " Assigned \n",
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{c}"},
            "source": {"component": "default-scheduler"}, "firstTimestamp": ago(minutes=4),
            "lastTimestamp": ago(minutes=1), "count": 3}
    assert tables.row_cells(info("events"), core, NOW) == \
        ["60s", "Normal", "Scheduled", "pod/web", "spec.containers{c}", "default-scheduler", "Assigned", "4m", 3,
         "web.1"]
    new = {"metadata": {"name": "e2"}, "type": "Warning", "reason": "BackOff", "note": "back-off",
           "regarding": {"kind": "Pod", "name": "web"}, "eventTime": "2030-01-01T11:59:50.000000Z",
           "reportingController": "kubelet", "reportingInstance": "n1"}
    assert tables.row_cells(info("events", "events.k8s.io"), new, NOW) == \
        ["10s", "Warning", "BackOff", "pod/web", "", "kubelet, n1", "back-off", "10s", 1, "e2"]


def test_pv_pvc_storageclass_rows() -> None:
    pv = {"metadata": {"name": "pv1", "creationTimestamp": ago(minutes=3)},
          "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                   "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "local",
                   "claimRef": {"namespace": "default", "name": "data"}, "volumeMode": "Filesystem"},
          "status": {"phase": "Bound"}}
    assert tables.row_cells(info("persistentvolumes"), pv, NOW) == \
        ["pv1", "1Gi", "RWO,RWX", "Retain", "Bound", "default/data", "local", "<unset>", "", "3m", "Filesystem"]
    pvc = {"metadata": {"name": "data"}, "spec": {"storageClassName": "local"}, "status": {"phase": "Pending"}}
    assert tables.row_cells(info("persistentvolumeclaims"), pvc, NOW)[:6] == \
        ["data", "Pending", "", "", "", "local"]
    sc = {"metadata": {"name": "local", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
          "provisioner": "kybernetes.io/local"}
    assert tables.row_cells(info("storageclasses", "storage.k8s.io"), sc, NOW)[:5] == \
        ["local (default)", "kybernetes.io/local", "Delete", "Immediate", False]


def test_rbac_quota_pdb_hpa_revision_rows() -> None:
    rb = {"metadata": {"name": "rb"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
          "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
                       {"kind": "ServiceAccount", "namespace": "ci", "name": "bot"},
                       {"kind": "User", "name": "bob"}]}
    assert tables.row_cells(info("rolebindings", "rbac.authorization.k8s.io"), rb, NOW) == \
        ["rb", "ClusterRole/view", "<unknown>", "alice, bob", "devs", "ci/bot"]
    role = {"metadata": {"name": "r", "creationTimestamp": "2029-06-01T10:00:00Z"}}
    assert tables.row_cells(info("roles", "rbac.authorization.k8s.io"), role, NOW) == ["r", "2029-06-01T10:00:00Z"]
    quota = {"metadata": {"name": "q"}, "status": {"hard": {"pods": "10", "limits.cpu": "2", "requests.cpu": "1"},
                                                   "used": {"pods": "3"}}}
    assert tables.row_cells(info("resourcequotas"), quota, NOW)[:3] == \
        ["q", "pods: 3/10, requests.cpu: 0/1", "limits.cpu: 0/2"]
    pdb = {"metadata": {"name": "pdb"}, "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}}
    assert tables.row_cells(info("poddisruptionbudgets", "policy"), pdb, NOW)[:4] == ["pdb", "50%", "N/A", 1]
    hpa = {"metadata": {"name": "h"},
           "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                        "type": "Utilization", "averageUtilization": 80}}}]},
           "status": {"currentReplicas": 2, "currentMetrics": [{"type": "Resource", "resource": {
               "name": "cpu", "current": {"averageUtilization": 12}}}]}}
    assert tables.row_cells(info("horizontalpodautoscalers", "autoscaling", "v2"), hpa, NOW)[:6] == \
        ["h", "Deployment/web", "cpu: 12%/80%", "1", 5, 2]
    cr = {"metadata": {"name": "web-1", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": True}]}, "revision": 4}
    assert tables.row_cells(info("controllerrevisions", "apps"), cr, NOW)[:3] == ["web-1", "statefulset.apps/web", 4]


# -- custom resources ---------------------------------------------------------------------------


def widget_info(columns: list[dict] | None) -> ResourceInfo:
    return ResourceInfo(group="example.com", version="v1", kind="Widget", plural="widgets", singular="widget",
                        namespaced=True, crd_schema={"type": "object"}, printer_columns=columns)


WIDGET = {"apiVersion": "example.com/v1", "kind": "Widget",
          "metadata": {"name": "w1", "creationTimestamp": ago(minutes=7), "labels": {"app.kubernetes.io/name": "w"}},
          "spec": {"size": 3, "color": "red", "tags": ["a", "b"], "enabled": True, "ratio": 0.5},
          "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}],
                     "since": ago(hours=2)}}


def test_custom_resource_printer_columns() -> None:
    cols = [
        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
        {"name": "Color", "type": "string", "jsonPath": ".spec.color", "description": "paint"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Tags", "type": "string", "jsonPath": ".spec.tags", "priority": 1},
        {"name": "First", "type": "string", "jsonPath": ".spec.tags[0]"},
        {"name": "Enabled", "type": "boolean", "jsonPath": ".spec.enabled"},
        {"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio"},
        {"name": "Since", "type": "date", "jsonPath": ".status.since"},
        {"name": "Missing", "type": "string", "jsonPath": ".spec.nope"},
        {"name": "App", "type": "string", "jsonPath": ".metadata.labels.app\\.kubernetes\\.io/name"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    wi = widget_info(cols)
    defs = tables.column_definitions(wi)
    assert [c["name"] for c in defs] == ["Name"] + [c["name"] for c in cols]
    assert defs[2]["description"] == "paint"
    assert defs[1]["description"] == "Custom resource definition column (in JSONPath format): .spec.size"
    assert defs[4]["priority"] == 1 and defs[1]["type"] == "integer"
    assert tables.row_cells(wi, WIDGET, NOW) == \
        ["w1", 3, "red", "True", '["a","b"]', "a", True, 0.5, "120m", None, "w", "7m"]


def test_custom_resource_without_columns_gets_name_and_age() -> None:
    wi = widget_info(None)
    assert names(tables.column_definitions(wi)) == [("Name", 0), ("Age", 0)]
    assert tables.row_cells(wi, WIDGET, NOW) == ["w1", "7m"]


def test_jsonpath_helpers() -> None:
    assert tables.jsonpath_first(WIDGET, "{.spec.size}") == (True, 3)
    assert tables.jsonpath_first(WIDGET, ".status.conditions[*].type") == (True, "Synced")
    assert tables.jsonpath_first(WIDGET, ".status.conditions[-1].type") == (True, "Ready")
    assert tables.jsonpath_first(WIDGET, ".metadata.labels['app.kubernetes.io/name']") == (True, "w")
    assert tables.jsonpath_first(WIDGET, '.status.conditions[?(@.type!="Ready")].type') == (True, "Synced")
    assert tables.jsonpath_first(WIDGET, ".spec.tags[5]") == (False, None)


# -- the Table envelope -------------------------------------------------------------------------


def test_build_table_include_object_variants() -> None:
    cm = {"metadata": {"name": "c", "namespace": "d", "labels": {"a": "b"}}, "data": {"x": "1"}}
    cm_info = info("configmaps")
    meta = tables.build_table(cm_info, [cm], NOW)
    assert meta["rows"][0]["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                         "metadata": cm["metadata"]}
    assert meta["kind"] == "Table" and meta["apiVersion"] == "meta.k8s.io/v1" and meta["metadata"] == {}
    full = tables.build_table(cm_info, [cm], NOW, include_object="Object")
    assert full["rows"][0]["object"] == {"kind": "ConfigMap", "apiVersion": "v1", **cm}
    assert "kind" not in cm  # the caller's object is left alone
    none = tables.build_table(cm_info, [cm], NOW, include_object="None", with_columns=False)
    assert none["rows"] == [{"cells": ["c", 1, "<unknown>"]}]
    assert none["columnDefinitions"] is None
    with pytest.raises(ApiError) as err:
        tables.build_table(cm_info, [cm], NOW, include_object="Everything")
    assert err.value.code == 400


def test_build_table_list_meta_keeps_only_table_fields() -> None:
    table = tables.build_table(info("configmaps"), [], NOW,
                               list_meta={"resourceVersion": "9", "continue": "", "remainingItemCount": None})
    assert table["metadata"] == {"resourceVersion": "9"}
    assert table["rows"] == []
