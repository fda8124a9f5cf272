"""Everyday kubectl object work against a real `kyb server`."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import pytest

DEPLOY = textwrap.dedent("""
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: {name}
      labels: {{app: {name}}}
    spec:
      replicas: {replicas}
      selector:
        matchLabels: {{app: {name}}}
      template:
        metadata:
          labels: {{app: {name}}}
        spec:
          containers:
          - name: web
            image: {image}
            ports:
            - containerPort: 80
    """)


def test_version_and_health(kubectl, server):
    out = kubectl.ok("version", "-o", "json")
    info = json.loads(out)
    assert info["serverVersion"]["major"] == "1"
    assert info["serverVersion"]["minor"] == "37"
    assert kubectl.ok("get", "--raw", "/readyz") == "ok"
    assert kubectl.ok("get", "--raw", "/livez") == "ok"
    assert kubectl.ok("get", "--raw", "/healthz") == "ok"


def test_bootstrap_namespaces(kubectl):
    out = kubectl.ok("get", "namespaces", "-o", "name")
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert f"namespace/{ns}" in out.split()


def test_api_resources_and_versions(kubectl):
    out = kubectl.ok("api-resources")
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "deploy" in lines["deployments"] and "apps/v1" in lines["deployments"]
    assert "po" in lines["pods"]
    for res in ("cronjobs", "endpointslices", "leases", "clusterroles", "storageclasses", "ingresses",
                "networkpolicies", "horizontalpodautoscalers", "poddisruptionbudgets",
                "customresourcedefinitions", "persistentvolumeclaims", "limitranges", "resourcequotas",
                "controllerrevisions", "statefulsets", "daemonsets"):
        assert res in lines, res
    versions = kubectl.ok("api-versions").split()
    for gv in ("v1", "apps/v1", "batch/v1", "autoscaling/v2", "policy/v1", "rbac.authorization.k8s.io/v1",
               "discovery.k8s.io/v1", "coordination.k8s.io/v1", "networking.k8s.io/v1", "storage.k8s.io/v1",
               "events.k8s.io/v1", "apiextensions.k8s.io/v1"):
        assert gv in versions


def test_apply_create_unchanged_configured(kubectl, tmp_path):
    f = tmp_path / "d.yaml"
    f.write_text(DEPLOY.format(name="applyweb", replicas=2, image="busybox:1.36"))
    assert "deployment.apps/applyweb created" in kubectl.ok("apply", "-f", str(f))
    assert "deployment.apps/applyweb unchanged" in kubectl.ok("apply", "-f", str(f))
    f.write_text(DEPLOY.format(name="applyweb", replicas=3, image="busybox:1.37"))
    assert "deployment.apps/applyweb configured" in kubectl.ok("apply", "-f", str(f))
    obj = json.loads(kubectl.ok("get", "deploy", "applyweb", "-o", "json"))
    assert obj["spec"]["replicas"] == 3
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1.37"
    # Defaults applied as Kubernetes does.
    assert obj["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": "25%"}
    assert obj["spec"]["revisionHistoryLimit"] == 10
    assert obj["spec"]["progressDeadlineSeconds"] == 600
    c = obj["spec"]["template"]["spec"]["containers"][0]
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["ports"][0]["protocol"] == "TCP"
    assert obj["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert obj["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"
    assert obj["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in obj["metadata"]["annotations"]
    kubectl.ok("delete", "-f", str(f))


def test_apply_multidoc_directory_and_kustomize(kubectl, tmp_path):
    d = tmp_path / "dir"
    d.mkdir()
    (d / "a.yaml").write_text(textwrap.dedent("""
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: multi-a}
        data: {k: v}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: multi-b}
        data: {k: v}
        """))
    (d / "b.yaml").write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: multi-s}\nstringData: {p: q}\n")
    out = kubectl.ok("apply", "-f", str(d))
    assert "configmap/multi-a created" in out and "configmap/multi-b created" in out
    assert "secret/multi-s created" in out
    sec = json.loads(kubectl.ok("get", "secret", "multi-s", "-o", "json"))
    assert sec["data"] == {"p": "cQ=="} and sec["type"] == "Opaque"
    k = tmp_path / "kust"
    k.mkdir()
    (k / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kcm}\ndata: {x: y}\n")
    (k / "kustomization.yaml").write_text("resources: [cm.yaml]\nnamePrefix: pre-\ncommonLabels: {team: a}\n")
    assert "configmap/pre-kcm created" in kubectl.ok("apply", "-k", str(k))
    assert kubectl.ok("get", "cm", "-l", "team=a", "-o", "name").split() == ["configmap/pre-kcm"]
    kubectl.ok("delete", "-f", str(d))
    kubectl.ok("delete", "-k", str(k))


def test_server_side_apply_and_conflicts(kubectl, tmp_path):
    f = tmp_path / "cm.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa-cm}\ndata: {a: '1'}\n")
    assert "serverside-applied" in kubectl.ok("apply", "--server-side", "-f", str(f))
    obj = json.loads(kubectl.ok("get", "cm", "ssa-cm", "-o", "json", "--show-managed-fields"))
    managers = {m["manager"]: m for m in obj["metadata"]["managedFields"]}
    assert managers["kubectl"]["operation"] == "Apply"
    assert "f:a" in managers["kubectl"]["fieldsV1"]["f:data"]
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa-cm}\ndata: {a: '2'}\n")
    r = kubectl("apply", "--server-side", "--field-manager=other", "-f", str(f))
    assert r.returncode != 0 and "conflict" in (r.stderr + r.stdout).lower()
    assert ".data.a" in r.stderr
    kubectl.ok("apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", str(f))
    obj = json.loads(kubectl.ok("get", "cm", "ssa-cm", "-o", "json"))
    assert obj["data"]["a"] == "2"
    kubectl.ok("delete", "cm", "ssa-cm")


def test_diff(kubectl, tmp_path):
    f = tmp_path / "cm.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: diff-cm}\ndata: {a: '1'}\n")
    kubectl.ok("apply", "-f", str(f))
    assert kubectl("diff", "-f", str(f)).returncode == 0
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: diff-cm}\ndata: {a: '2'}\n")
    r = kubectl("diff", "-f", str(f))
    assert r.returncode == 1, r.stderr
    assert "+  a: \"2\"" in r.stdout and "-  a: \"1\"" in r.stdout
    # diff is a dry run: nothing changed.
    assert json.loads(kubectl.ok("get", "cm", "diff-cm", "-o", "json"))["data"]["a"] == "1"
    kubectl.ok("delete", "cm", "diff-cm")


def test_get_output_formats(kubectl):
    kubectl.ok("create", "configmap", "fmt-cm", "--from-literal=key=value")
    kubectl.ok("label", "cm", "fmt-cm", "tier=gold")
    out = kubectl.ok("get", "cm", "fmt-cm")
    assert out.split("\n")[0].split() == ["NAME", "DATA", "AGE"]
    assert out.split("\n")[1].split()[:2] == ["fmt-cm", "1"]
    assert "tier: gold" in kubectl.ok("get", "cm", "fmt-cm", "-o", "yaml")
    assert kubectl.ok("get", "cm", "fmt-cm", "-o", "jsonpath={.data.key}") == "value"
    assert kubectl.ok("get", "cm", "fmt-cm", "-o", "name").strip() == "configmap/fmt-cm"
    cc = kubectl.ok("get", "cm", "fmt-cm", "-o", "custom-columns=N:.metadata.name,V:.data.key")
    assert cc.split() == ["N", "V", "fmt-cm", "value"]
    wide = kubectl.ok("get", "cm", "-l", "tier=gold", "--show-labels")
    assert "tier=gold" in wide
    all_ns = kubectl.ok("get", "cm", "-A")
    assert all_ns.split("\n")[0].split()[0] == "NAMESPACE"
    assert any(line.split()[:2] == ["default", "fmt-cm"] for line in all_ns.splitlines())
    fs = kubectl.ok("get", "cm", "--field-selector", "metadata.name=fmt-cm", "-o", "name")
    assert fs.split() == ["configmap/fmt-cm"]
    kubectl.ok("delete", "cm", "fmt-cm")


def test_pods_table_columns(kubectl):
    kubectl.ok("run", "tabpod", "--image=busybox", "--labels=app=tab", "--", "sleep", "3600")
    out = kubectl.ok("get", "pods", "tabpod")
    header = out.splitlines()[0].split()
    assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    row = out.splitlines()[1].split()
    assert row[:4] == ["tabpod", "0/1", "Pending", "0"]
    wide = kubectl.ok("get", "pods", "tabpod", "-o", "wide").splitlines()[0].split()
    assert wide[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    pod = json.loads(kubectl.ok("get", "pod", "tabpod", "-o", "json"))
    assert pod["spec"]["containers"][0]["args"] == ["sleep", "3600"]
    assert pod["status"]["phase"] == "Pending"
    assert pod["spec"]["terminationGracePeriodSeconds"] == 30
    kubectl.ok("delete", "pod", "tabpod")


def test_deployment_and_service_columns(kubectl):
    kubectl.ok("create", "deployment", "coldep", "--image=busybox", "--replicas=2")
    out = kubectl.ok("get", "deploy", "coldep").splitlines()
    assert out[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    # READY counts ready pods; with no nodes in this test none can be ready.
    assert out[1].split()[:2] == ["coldep", "0/2"] and out[1].split()[3] == "0"
    wide = kubectl.ok("get", "deploy", "coldep", "-o", "wide").splitlines()
    assert wide[0].split()[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert "app=coldep" in wide[1]
    kubectl.ok("create", "service", "clusterip", "colsvc", "--tcp=80:8080")
    svc = kubectl.ok("get", "svc", "colsvc").splitlines()
    assert svc[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert svc[1].split()[1] == "ClusterIP" and svc[1].split()[4] == "80/TCP"
    kubectl.ok("delete", "deploy", "coldep")
    kubectl.ok("delete", "svc", "colsvc")


def test_create_generators_protobuf(kubectl):
    kubectl.ok("create", "namespace", "gen-ns")
    kubectl.ok("create", "configmap", "gen-cm", "-n", "gen-ns", "--from-literal=a=b", "--from-literal=c=d")
    cm = json.loads(kubectl.ok("get", "cm", "gen-cm", "-n", "gen-ns", "-o", "json"))
    assert cm["data"] == {"a": "b", "c": "d"}
    kubectl.ok("create", "secret", "generic", "gen-sec", "-n", "gen-ns", "--from-literal=pw=s3cret")
    sec = json.loads(kubectl.ok("get", "secret", "gen-sec", "-n", "gen-ns", "-o", "json"))
    assert sec["data"] == {"pw": "czNjcmV0"}
    kubectl.ok("create", "deployment", "gen-dep", "-n", "gen-ns", "--image=busybox", "--replicas=3",
               "--port=80")
    dep = json.loads(kubectl.ok("get", "deploy", "gen-dep", "-n", "gen-ns", "-o", "json"))
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["selector"] == {"matchLabels": {"app": "gen-dep"}}
    assert dep["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] == 80
    kubectl.ok("create", "service", "clusterip", "gen-svc", "-n", "gen-ns", "--tcp=80:8080")
    svc = json.loads(kubectl.ok("get", "svc", "gen-svc", "-n", "gen-ns", "-o", "json"))
    assert svc["spec"]["ports"][0]["port"] == 80 and svc["spec"]["ports"][0]["targetPort"] == 8080
    assert svc["spec"]["type"] == "ClusterIP"
    assert kubectl.ok("auth", "can-i", "create", "pods").strip() == "yes"
    assert "kybernetes-admin" in kubectl.ok("auth", "whoami")
    kubectl.ok("delete", "namespace", "gen-ns", timeout=60)
    r = kubectl("get", "namespace", "gen-ns")
    assert r.returncode != 0 and "NotFound" in r.stderr


def test_label_annotate_patch_replace_scale(kubectl, tmp_path):
    kubectl.ok("create", "deployment", "pat", "--image=busybox:1", "--replicas=1")
    kubectl.ok("label", "deploy", "pat", "env=prod")
    kubectl.ok("annotate", "deploy", "pat", "owner=team-a")
    kubectl.ok("patch", "deploy", "pat", "-p",
               '{"spec":{"template":{"spec":{"containers":[{"name":"busybox","image":"busybox:2"}]}}}}')
    kubectl.ok("patch", "deploy", "pat", "--type=merge", "-p", '{"metadata":{"labels":{"merge":"yes"}}}')
    kubectl.ok("patch", "deploy", "pat", "--type=json", "-p",
               '[{"op":"replace","path":"/spec/replicas","value":2}]')
    dep = json.loads(kubectl.ok("get", "deploy", "pat", "-o", "json"))
    assert dep["metadata"]["labels"]["env"] == "prod" and dep["metadata"]["labels"]["merge"] == "yes"
    assert dep["metadata"]["annotations"]["owner"] == "team-a"
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:2"
    assert len(dep["spec"]["template"]["spec"]["containers"]) == 1
    assert dep["spec"]["replicas"] == 2
    kubectl.ok("scale", "deploy", "pat", "--replicas=5")
    assert json.loads(kubectl.ok("get", "deploy", "pat", "-o", "json"))["spec"]["replicas"] == 5
    r = kubectl("scale", "deploy", "pat", "--replicas=1", "--current-replicas=3")
    assert r.returncode != 0
    dep = json.loads(kubectl.ok("get", "deploy", "pat", "-o", "json"))
    dep["spec"]["replicas"] = 4
    f = tmp_path / "r.json"
    f.write_text(json.dumps(dep))
    kubectl.ok("replace", "-f", str(f))
    assert json.loads(kubectl.ok("get", "deploy", "pat", "-o", "json"))["spec"]["replicas"] == 4
    # A replace with the old resourceVersion now conflicts.
    r = kubectl("replace", "-f", str(f))
    assert r.returncode != 0 and "Conflict" in r.stderr
    kubectl.ok("delete", "deploy", "pat")


def test_delete_by_label_and_all(kubectl):
    for i in range(3):
        kubectl.ok("create", "configmap", f"del-{i}", "--from-literal=a=b")
    kubectl.ok("label", "cm", "del-0", "del-1", "grp=x")
    out = kubectl.ok("delete", "cm", "-l", "grp=x")
    assert "del-0" in out and "del-1" in out
    names = kubectl.ok("get", "cm", "-o", "name").split()
    assert "configmap/del-2" in names and "configmap/del-0" not in names
    kubectl.ok("create", "namespace", "delall")
    kubectl.ok("create", "configmap", "x1", "-n", "delall")
    kubectl.ok("create", "configmap", "x2", "-n", "delall")
    kubectl.ok("delete", "cm", "--all", "-n", "delall")
    # The controller manager publishes kube-root-ca.crt again, as in Kubernetes; ours are gone.
    left = kubectl.ok("get", "cm", "-n", "delall", "-o", "name").split()
    assert "configmap/x1" not in left and "configmap/x2" not in left
    kubectl.ok("delete", "cm", "del-2")
    kubectl.ok("delete", "ns", "delall")


def test_describe_and_explain(kubectl):
    kubectl.ok("create", "configmap", "desc-cm", "--from-literal=a=b")
    out = kubectl.ok("describe", "cm", "desc-cm")
    assert "Name:" in out and "desc-cm" in out and "Data" in out
    kubectl.ok("delete", "cm", "desc-cm")
    ex = kubectl.ok("explain", "pod.spec.containers")
    assert "FIELDS:" in ex and "image\t<string>" in ex
    ex = kubectl.ok("explain", "deployment.spec.strategy")
    assert "rollingUpdate" in ex


def test_wait_for_jsonpath_and_watch(kubectl, server):
    kubectl.ok("create", "configmap", "wait-cm", "--from-literal=state=old")
    w = subprocess.Popen([*_kubectl_argv(server), "get", "cm", "wait-cm", "-w", "-o", "jsonpath={.data.state}{\"\\n\"}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(server))
    waiter = subprocess.Popen([*_kubectl_argv(server), "wait", "--for=jsonpath={.data.state}=new", "cm/wait-cm",
                               "--timeout=30s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_env(server))
    # The watcher prints the current state first; change it only after that line came.
    lines = _line_reader(w)
    first = lines.get(timeout=30).strip()
    assert first == "old"
    kubectl.ok("patch", "cm", "wait-cm", "--type=merge", "-p", '{"data":{"state":"new"}}')
    out, err = waiter.communicate(timeout=40)
    assert waiter.returncode == 0, err
    assert "condition met" in out
    second = lines.get(timeout=30).strip()
    w.terminate()
    w.communicate(timeout=10)
    assert second == "new"
    kubectl.ok("delete", "cm", "wait-cm")


def _line_reader(proc):
    """Lines of a subprocess's stdout through a queue, so a test can wait with a timeout."""
    import queue
    import threading

    q: queue.Queue[str] = queue.Queue()

    def pump():
        for line in proc.stdout:
            q.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return q


def _kubectl_argv(server):
    from kybernetes.testing.cluster import kubectl_binary

    return [kubectl_binary(), "--cache-dir", server.cache_dir]


def _env(server):
    env = dict(os.environ)
    env["KUBECONFIG"] = server.kubeconfig
    env["HOME"] = server.data_dir
    return env


def test_crd_and_custom_resource(kubectl, tmp_path):
    crd = tmp_path / "crd.yaml"
    crd.write_text(textwrap.dedent("""
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {name: widgets.example.com}
        spec:
          group: example.com
          scope: Namespaced
          names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
          versions:
          - name: v1
            served: true
            storage: true
            subresources:
              status: {}
              scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
            additionalPrinterColumns:
            - {name: Size, type: integer, jsonPath: .spec.size}
            schema:
              openAPIV3Schema:
                type: object
                properties:
                  spec:
                    type: object
                    properties:
                      size: {type: integer, minimum: 1}
                      replicas: {type: integer}
                  status:
                    type: object
                    properties:
                      replicas: {type: integer}
        """))
    kubectl.ok("apply", "-f", str(crd))
    kubectl.ok("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=20s")
    cr = tmp_path / "cr.yaml"
    cr.write_text("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3, replicas: 1}\n")
    assert "widget.example.com/w1 created" in kubectl.ok("apply", "-f", str(cr))
    out = kubectl.ok("get", "wd")
    assert out.splitlines()[0].split() == ["NAME", "SIZE"]
    assert out.splitlines()[1].split()[:2] == ["w1", "3"]
    cr.write_text("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 5, replicas: 1}\n")
    assert "configured" in kubectl.ok("apply", "-f", str(cr))
    kubectl.ok("scale", "widget", "w1", "--replicas=4")
    w = json.loads(kubectl.ok("get", "widget", "w1", "-o", "json"))
    assert w["spec"] == {"size": 5, "replicas": 4}
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: 0}\n")
    r = kubectl("apply", "-f", str(bad))
    assert r.returncode != 0 and "spec.size" in r.stderr
    kubectl.ok("delete", "-f", str(crd), timeout=60)
    r = kubectl("get", "widgets.example.com")
    assert r.returncode != 0


@pytest.mark.parametrize("manifest,expect", [
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec: {containers: [{name: c, image: busybox}]}\n",
     'The Pod "Bad_Name" is invalid'),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: noimage}\nspec: {containers: [{name: c}]}\n",
     "spec.containers[0].image: Required value"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: strict}\nbogus: 1\ndata: {a: b}\n",
     'unknown field "bogus"'),
])
def test_invalid_objects_rejected(kubectl, tmp_path, manifest, expect):
    f = tmp_path / "bad.yaml"
    f.write_text(manifest)
    r = kubectl("apply", "-f", str(f))
    assert r.returncode != 0
    assert expect in r.stderr, r.stderr


def test_errors_notfound_alreadyexists(kubectl):
    r = kubectl("get", "pod", "nope")
    assert r.returncode == 1 and 'Error from server (NotFound): pods "nope" not found' in r.stderr
    kubectl.ok("create", "configmap", "dup")
    r = kubectl("create", "configmap", "dup")
    assert r.returncode == 1 and 'configmaps "dup" already exists' in r.stderr
    r = kubectl("create", "configmap", "x", "-n", "no-such-ns")
    assert r.returncode == 1 and 'namespaces "no-such-ns" not found' in r.stderr
    kubectl.ok("delete", "cm", "dup")
    r = kubectl("get", "foos")
    assert 'the server doesn\'t have a resource type "foos"' in r.stderr


def test_dry_run_server(kubectl):
    out = kubectl.ok("create", "configmap", "dry", "--from-literal=a=b", "--dry-run=server", "-o", "json")
    assert json.loads(out)["data"] == {"a": "b"}
    r = kubectl("get", "cm", "dry")
    assert r.returncode == 1


def test_unauthenticated_rejected(server):
    from kybernetes.testing.cluster import kubectl_binary

    env = _env(server)
    p = subprocess.run([kubectl_binary(), "--cache-dir", server.cache_dir, "--server", server.url,
                        "--insecure-skip-tls-verify", "--token", "wrong-token", "--kubeconfig", "/dev/null",
                        "get", "pods"], capture_output=True, text=True, env=env, timeout=30)
    assert p.returncode == 1
    assert "You must be logged in to the server" in p.stderr
