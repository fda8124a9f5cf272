"""Every built-in kind the server serves, read back through the official Python client's
typed APIs. Its models are strict (pydantic): a missing always-present field, an enum
value Kubernetes would not send or a required field left out makes `read_*` / `list_*`
raise, so each round trip here is what a user of that client sees.

`EXAMPLES` holds one realistic object per served (group, version, kind), mostly the
Kubernetes documentation's example manifests. `test_every_served_kind_has_an_example`
reads discovery, so a kind served later without an example here fails."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

NS = "pyk-kinds"
# A self-signed CA certificate (ClusterTrustBundle holds CA certificates only).
PYK_CA = ("-----BEGIN CERTIFICATE-----\n"
          "MIIBdzCCAR2gAwIBAgIUIGQavBBb9CtHgYp6ukNwAZQ5cYIwCgYIKoZIzj0EAwIw\n"
          "ETEPMA0GA1UEAwwGcHlrLWNhMB4XDTI2MTIwNjA4MTg1N1oXDTM2MTIwMzA4MTg1\n"
          "N1owETEPMA0GA1UEAwwGcHlrLWNhMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n"
          "vKxH1pC1Kx5LOgX6+6F1KJCbo9cmKcXp0zoZCA2BPfg8jM1AeDnFZVbjyp2N5Kif\n"
          "fw9u7ngPBFmYSmstbuNt6KNTMFEwHQYDVR0OBBYEFKrjwp1Tmv8wNC55MEQJi1Nl\n"
          "oHPvMB8GA1UdIwQYMBaAFKrjwp1Tmv8wNC55MEQJi1NloHPvMA8GA1UdEwEB/wQF\n"
          "MAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIgQ1a84Cp+79JMuiBSakPDpBsiQhE7GHfq\n"
          "Az3sQTp98AICIQD+qjsWdq+y5lN7tnECYYcRAxW5yxCXrBhprBKZb/eKFg==\n"
          "-----END CERTIFICATE-----\n")
POD_SPEC = {"containers": [{"name": "nginx", "image": "nginx:1.14.2", "ports": [{"containerPort": 80}]}]}


@dataclass(frozen=True)
class Example:
    manifest: dict[str, Any]
    # camelCase paths compared between the manifest and what the typed read gives back
    checks: tuple[str, ...] = ()
    # What DELETE answers: the object itself (kube's ReturnDeletedObject registries, and
    # objects a DELETE only marks: orphan-by-default kinds, namespaces, CRDs) or a Status.
    delete_returns_object: bool = False


def ex(api_version: str, kind: str, name: str, body: dict[str, Any], *checks: str,
       meta: dict[str, Any] | None = None, returns_object: bool = False) -> tuple[tuple[str, str], Example]:
    manifest = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, **(meta or {})}, **body}
    return (api_version, kind), Example(manifest, checks, returns_object)


# One line (or a few) per kind: (apiVersion, kind) -> example.
EXAMPLES: dict[tuple[str, str], Example] = dict([
    # -- core/v1
    ex("v1", "ConfigMap", "game-demo", {"data": {
        "player_initial_lives": "3", "ui_properties_file_name": "user-interface.properties",
        "game.properties": "enemy.types=aliens,monsters\nplayer.maximum-lives=5\n"}}, "data"),
    ex("v1", "Endpoints", "my-service", {"subsets": [
        {"addresses": [{"ip": "192.0.2.42"}], "ports": [{"port": 9376, "protocol": "TCP"}]}]}, "subsets"),
    ex("v1", "Event", "pyk-event.17a1", {
        "involvedObject": {"kind": "Pod", "name": "nginx", "namespace": NS, "apiVersion": "v1"},
        "reason": "Scheduled", "message": "Successfully assigned pyk-kinds/nginx to node-1", "type": "Normal",
        "source": {"component": "default-scheduler"}, "count": 1,
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z"},
        "reason", "message", "involvedObject.name", "count"),
    ex("v1", "LimitRange", "cpu-resource-constraint", {"spec": {"limits": [{
        "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "500m"}, "max": {"cpu": "1"}, "min": {"cpu": "100m"},
        "type": "Container"}]}}, "spec.limits"),
    ex("v1", "Namespace", "pyk-kinds-extra", {}, meta={"labels": {"name": "development"}}, returns_object=True),
    ex("v1", "Node", "pyk-node-10-240-79-157", {}, meta={"labels": {"name": "my-first-k8s-node"}}),
    ex("v1", "PersistentVolumeClaim", "myclaim", {"spec": {
        "accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem", "resources": {"requests": {"storage": "8Gi"}},
        "storageClassName": "slow", "selector": {"matchLabels": {"release": "stable"}}}},
        "spec.accessModes", "spec.resources", "spec.storageClassName", returns_object=True),
    ex("v1", "PersistentVolume", "pyk-pv0003", {"spec": {
        "capacity": {"storage": "5Gi"}, "volumeMode": "Filesystem", "accessModes": ["ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Recycle", "storageClassName": "slow",
        "mountOptions": ["hard", "nfsvers=4.1"], "nfs": {"path": "/tmp", "server": "172.17.0.2"}}},
        "spec.capacity", "spec.nfs", "spec.mountOptions", returns_object=True),
    ex("v1", "Pod", "nginx", {"spec": POD_SPEC}, "spec.containers.0.image", returns_object=True),
    ex("v1", "PodTemplate", "nginx-template", {"template": {"metadata": {"labels": {"app": "nginx"}}, "spec": POD_SPEC}},
       "template.metadata.labels", returns_object=True),
    ex("v1", "ReplicationController", "nginx", {"spec": {
        "replicas": 1, "selector": {"app": "nginx-rc"},
        "template": {"metadata": {"name": "nginx", "labels": {"app": "nginx-rc"}}, "spec": POD_SPEC}}},
        "spec.replicas", "spec.selector", returns_object=True),
    ex("v1", "ResourceQuota", "compute-resources", {"spec": {"hard": {
        "requests.cpu": "1", "requests.memory": "1Gi", "limits.cpu": "2", "limits.memory": "2Gi",
        "requests.nvidia.com/gpu": "4"}}}, "spec.hard", returns_object=True),
    ex("v1", "Secret", "secret-basic-auth", {"type": "kubernetes.io/basic-auth",
                                              "data": {"username": "YWRtaW4=", "password": "dDBwLVNlY3JldA=="}},
       "type", "data"),
    ex("v1", "ServiceAccount", "build-robot", {"automountServiceAccountToken": False},
       "automountServiceAccountToken", returns_object=True),
    ex("v1", "Service", "my-service", {"spec": {
        "selector": {"app.kubernetes.io/name": "MyApp"},
        "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 9376}]}},
        "spec.selector", "spec.ports.0.port", "spec.ports.0.targetPort", returns_object=True),
    # -- admissionregistration.k8s.io (matching nothing the other tests create)
    ex("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy", "pyk-demo-policy.example.com", {"spec": {
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                                                "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]}]},
        "validations": [{"expression": "object.spec.replicas <= 5"}]}}, "spec.validations", "spec.failurePolicy"),
    ex("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding", "pyk-demo-binding.example.com", {"spec": {
        "policyName": "pyk-demo-policy.example.com", "validationActions": ["Deny"],
        "matchResources": {"namespaceSelector": {"matchLabels": {"environment": "pyk-never"}}}}},
        "spec.policyName", "spec.validationActions"),
    ex("admissionregistration.k8s.io/v1", "MutatingAdmissionPolicy", "pyk-sidecar-policy.example.com", {"spec": {
        "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                "operations": ["CREATE"], "resources": ["pods"]}]},
        "matchConditions": [{"name": "does-not-already-have-sidecar",
                             "expression": "!object.spec.initContainers.exists(ic, ic.name == \"mesh-proxy\")"}],
        "failurePolicy": "Fail", "reinvocationPolicy": "IfNeeded",
        "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {
            "expression": "Object{spec: Object.spec{initContainers: [Object.spec.initContainers{"
                          "name: \"mesh-proxy\", image: \"mesh/proxy:v1.0.0\"}]}}"}}]}},
        "spec.matchConditions", "spec.reinvocationPolicy"),
    ex("admissionregistration.k8s.io/v1", "MutatingAdmissionPolicyBinding", "pyk-sidecar-binding.example.com", {"spec": {
        "policyName": "pyk-sidecar-policy.example.com",
        "matchResources": {"namespaceSelector": {"matchLabels": {"environment": "pyk-never"}}}}}, "spec.policyName"),
    ex("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "pyk-pod-policy.example.com", {"webhooks": [{
        "name": "pod-policy.example.com",
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"],
                   "scope": "Namespaced"}],
        "clientConfig": {"service": {"namespace": "example-namespace", "name": "example-service"}},
        "objectSelector": {"matchLabels": {"pyk-never": "true"}},
        "admissionReviewVersions": ["v1"], "sideEffects": "None", "timeoutSeconds": 5}]},
        "webhooks.0.rules", "webhooks.0.clientConfig.service.name", "webhooks.0.sideEffects"),
    ex("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "pyk-mutate.example.com", {"webhooks": [{
        "name": "my-webhook.example.com",
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"],
                   "scope": "Namespaced"}],
        "clientConfig": {"url": "https://my-webhook.example.com:9443/my-webhook-path"},
        "objectSelector": {"matchLabels": {"pyk-never": "true"}},
        "admissionReviewVersions": ["v1"], "sideEffects": "None", "reinvocationPolicy": "IfNeeded"}]},
        "webhooks.0.clientConfig.url", "webhooks.0.reinvocationPolicy"),
    # -- apiextensions.k8s.io
    ex("apiextensions.k8s.io/v1", "CustomResourceDefinition", "crontabs.pyk.example.com", {"spec": {
        "group": "pyk.example.com", "scope": "Namespaced",
        "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["pykct"]},
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
            "type": "object", "properties": {"spec": {"type": "object", "properties": {
                "cronSpec": {"type": "string"}, "image": {"type": "string"}, "replicas": {"type": "integer"}}}}}}}]}},
        "spec.names.kind", "spec.versions.0.name", returns_object=True),
    # -- apps/v1
    ex("apps/v1", "ControllerRevision", "nginx-7b4b8c9d5", {"revision": 1, "data": {
        "spec": {"template": {"spec": POD_SPEC}}}}, "revision", "data"),
    ex("apps/v1", "DaemonSet", "fluentd-elasticsearch", {"spec": {
        "selector": {"matchLabels": {"name": "fluentd-elasticsearch"}},
        "template": {"metadata": {"labels": {"name": "fluentd-elasticsearch"}}, "spec": {
            "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                             "effect": "NoSchedule"}],
            "containers": [{"name": "fluentd-elasticsearch", "image": "quay.io/fluentd_elasticsearch/fluentd:v2.5.2",
                            "resources": {"limits": {"memory": "200Mi"}, "requests": {"cpu": "100m", "memory": "200Mi"}},
                            "volumeMounts": [{"name": "varlog", "mountPath": "/var/log"}]}],
            "terminationGracePeriodSeconds": 30,
            "volumes": [{"name": "varlog", "hostPath": {"path": "/var/log"}}]}}}},
        "spec.selector", "spec.template.spec.volumes.0.hostPath.path", meta={"labels": {"k8s-app": "fluentd-logging"}}),
    ex("apps/v1", "Deployment", "nginx-deployment", {"spec": {
        "replicas": 1, "selector": {"matchLabels": {"app": "nginx"}},
        "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": POD_SPEC}}},
        "spec.replicas", "spec.selector", meta={"labels": {"app": "nginx"}}),
    ex("apps/v1", "ReplicaSet", "frontend", {"spec": {
        "replicas": 1, "selector": {"matchLabels": {"tier": "frontend"}},
        "template": {"metadata": {"labels": {"tier": "frontend"}}, "spec": {"containers": [
            {"name": "php-redis", "image": "us-docker.pkg.dev/google-samples/containers/gke/gb-frontend:v5"}]}}}},
        "spec.replicas", "spec.selector", meta={"labels": {"app": "guestbook", "tier": "frontend"}}),
    ex("apps/v1", "StatefulSet", "web", {"spec": {
        "selector": {"matchLabels": {"app": "nginx-sts"}}, "serviceName": "nginx", "replicas": 1, "minReadySeconds": 10,
        "template": {"metadata": {"labels": {"app": "nginx-sts"}}, "spec": {
            "terminationGracePeriodSeconds": 10,
            "containers": [{"name": "nginx", "image": "registry.k8s.io/nginx-slim:0.24",
                            "ports": [{"containerPort": 80, "name": "web"}],
                            "volumeMounts": [{"name": "www", "mountPath": "/usr/share/nginx/html"}]}]}},
        "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": "my-storage-class",
            "resources": {"requests": {"storage": "1Gi"}}}}]}},
        "spec.serviceName", "spec.volumeClaimTemplates.0.metadata.name", "spec.minReadySeconds"),
    # -- autoscaling
    ex("autoscaling/v2", "HorizontalPodAutoscaler", "php-apache", {"spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "php-apache"},
        "minReplicas": 1, "maxReplicas": 10,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                                                      "target": {"type": "Utilization", "averageUtilization": 50}}}]}},
        "spec.scaleTargetRef", "spec.metrics", "spec.maxReplicas"),
    ex("autoscaling/v1", "HorizontalPodAutoscaler", "php-apache-v1", {"spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "php-apache"},
        "minReplicas": 1, "maxReplicas": 10, "targetCPUUtilizationPercentage": 50}},
        "spec.scaleTargetRef", "spec.targetCPUUtilizationPercentage"),
    # -- batch/v1
    ex("batch/v1", "CronJob", "hello", {"spec": {"schedule": "0 0 1 1 *", "jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "hello", "image": "busybox:1.28", "imagePullPolicy": "IfNotPresent",
                        "command": ["/bin/sh", "-c", "date; echo Hello from the Kubernetes cluster"]}],
        "restartPolicy": "OnFailure"}}}}}}, "spec.schedule", "spec.jobTemplate.spec.template.spec.restartPolicy"),
    ex("batch/v1", "Job", "pi", {"spec": {"backoffLimit": 4, "template": {"spec": {
        "containers": [{"name": "pi", "image": "perl:5.34.0", "command": ["perl", "-Mbignum=bpi", "-wle", "print bpi(2000)"]}],
        "restartPolicy": "Never"}}}}, "spec.backoffLimit", returns_object=True),
    # -- coordination.k8s.io/v1
    ex("coordination.k8s.io/v1", "Lease", "pyk-leader", {"spec": {
        "holderIdentity": "pyk-leader-0", "leaseDurationSeconds": 15, "leaseTransitions": 0,
        "acquireTime": "2026-01-01T00:00:00.000000Z", "renewTime": "2026-01-01T00:00:05.000000Z"}},
        "spec.holderIdentity", "spec.leaseDurationSeconds"),
    # -- discovery.k8s.io/v1
    ex("discovery.k8s.io/v1", "EndpointSlice", "example-abc", {
        "addressType": "IPv4", "ports": [{"name": "http", "protocol": "TCP", "port": 80}],
        "endpoints": [{"addresses": ["10.1.2.3"], "conditions": {"ready": True}, "hostname": "pod-1",
                       "nodeName": "node-1", "zone": "us-west2-a"}]},
        "addressType", "ports", "endpoints.0.addresses", meta={"labels": {"kubernetes.io/service-name": "example"}}),
    # -- events.k8s.io/v1
    ex("events.k8s.io/v1", "Event", "pyk-events-event.17a2", {
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "example.com/pyk-controller",
        "reportingInstance": "pyk-controller-0", "action": "Scheduling", "reason": "Scheduled", "type": "Normal",
        "regarding": {"kind": "Pod", "name": "nginx", "namespace": NS, "apiVersion": "v1"},
        "note": "Successfully assigned pyk-kinds/nginx to node-1"}, "reason", "note", "regarding.name", "action"),
    # -- networking.k8s.io/v1
    ex("networking.k8s.io/v1", "IngressClass", "pyk-external-lb", {"spec": {
        "controller": "example.com/ingress-controller",
        "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}},
        "spec.controller", "spec.parameters"),
    ex("networking.k8s.io/v1", "Ingress", "minimal-ingress", {"spec": {
        "ingressClassName": "nginx-example",
        "rules": [{"http": {"paths": [{"path": "/testpath", "pathType": "Prefix",
                                       "backend": {"service": {"name": "test", "port": {"number": 80}}}}]}}]}},
        "spec.rules", "spec.ingressClassName",
        meta={"annotations": {"nginx.ingress.kubernetes.io/rewrite-target": "/"}}),
    ex("networking.k8s.io/v1", "NetworkPolicy", "test-network-policy", {"spec": {
        "podSelector": {"matchLabels": {"role": "db"}}, "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"ipBlock": {"cidr": "172.17.0.0/16", "except": ["172.17.1.0/24"]}},
                              {"namespaceSelector": {"matchLabels": {"project": "myproject"}}},
                              {"podSelector": {"matchLabels": {"role": "frontend"}}}],
                     "ports": [{"protocol": "TCP", "port": 6379}]}],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}], "ports": [{"protocol": "TCP", "port": 5978}]}]}},
        "spec.podSelector", "spec.ingress", "spec.egress", "spec.policyTypes"),
    ex("networking.k8s.io/v1", "IPAddress", "192.168.250.77", {"spec": {"parentRef": {
        "group": "", "resource": "services", "name": "pyk-ipaddress-owner", "namespace": NS}}}, "spec.parentRef.name"),
    ex("networking.k8s.io/v1", "ServiceCIDR", "pyk-newcidr1", {"spec": {"cidrs": ["10.96.100.0/24"]}}, "spec.cidrs"),
    # -- node.k8s.io/v1
    ex("node.k8s.io/v1", "RuntimeClass", "pyk-myclass", {"handler": "myconfiguration",
                                                         "overhead": {"podFixed": {"memory": "120Mi", "cpu": "250m"}}},
       "handler", "overhead"),
    # -- policy/v1
    ex("policy/v1", "PodDisruptionBudget", "zk-pdb", {"spec": {
        "minAvailable": 2, "selector": {"matchLabels": {"app": "zookeeper"}}}}, "spec.minAvailable", "spec.selector"),
    # -- rbac.authorization.k8s.io/v1
    ex("rbac.authorization.k8s.io/v1", "ClusterRole", "pyk-secret-reader", {"rules": [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "watch", "list"]}]}, "rules"),
    ex("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "pyk-read-secrets-global", {
        "subjects": [{"kind": "Group", "name": "manager", "apiGroup": "rbac.authorization.k8s.io"}],
        "roleRef": {"kind": "ClusterRole", "name": "pyk-secret-reader", "apiGroup": "rbac.authorization.k8s.io"}},
        "subjects", "roleRef"),
    ex("rbac.authorization.k8s.io/v1", "Role", "pod-reader", {"rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "watch", "list"]}]}, "rules"),
    ex("rbac.authorization.k8s.io/v1", "RoleBinding", "read-pods", {
        "subjects": [{"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"}],
        "roleRef": {"kind": "Role", "name": "pod-reader", "apiGroup": "rbac.authorization.k8s.io"}},
        "subjects", "roleRef"),
    # -- scheduling.k8s.io/v1
    ex("scheduling.k8s.io/v1", "PriorityClass", "pyk-high-priority", {
        "value": 1000000, "globalDefault": False,
        "description": "This priority class should be used for XYZ service pods only."}, "value", "description"),
    # -- storage.k8s.io/v1
    ex("storage.k8s.io/v1", "CSIDriver", "mycsidriver.example.com", {"spec": {
        "attachRequired": True, "podInfoOnMount": True, "fsGroupPolicy": "File",
        "volumeLifecycleModes": ["Persistent", "Ephemeral"]}},
        "spec.attachRequired", "spec.podInfoOnMount", "spec.volumeLifecycleModes", returns_object=True),
    ex("storage.k8s.io/v1", "CSINode", "pyk-node-1", {"spec": {"drivers": [
        {"name": "mycsidriver.example.com", "nodeID": "storageNodeID1",
         "topologyKeys": ["mycsidriver.example.com/regions", "mycsidriver.example.com/zones"]}]}}, "spec.drivers",
       returns_object=True),
    ex("storage.k8s.io/v1", "CSIStorageCapacity", "pyk-capacity-1", {
        "storageClassName": "standard", "capacity": "10Gi", "maximumVolumeSize": "5Gi",
        "nodeTopology": {"matchLabels": {"topology.kubernetes.io/zone": "us-east-1a"}}},
        "storageClassName", "capacity", "nodeTopology"),
    ex("storage.k8s.io/v1", "StorageClass", "pyk-standard", {
        "provisioner": "kubernetes.io/aws-ebs", "parameters": {"type": "gp2"}, "reclaimPolicy": "Retain",
        "allowVolumeExpansion": True, "mountOptions": ["debug"], "volumeBindingMode": "Immediate"},
        "provisioner", "parameters", "reclaimPolicy", "volumeBindingMode", returns_object=True),
    ex("storage.k8s.io/v1", "VolumeAttachment", "pyk-csi-attachment-1", {"spec": {
        "attacher": "mycsidriver.example.com", "nodeName": "node-1",
        "source": {"persistentVolumeName": "pyk-pv0003"}}}, "spec.attacher", "spec.source", returns_object=True),
    ex("storage.k8s.io/v1", "VolumeAttributesClass", "pyk-silver", {
        "driverName": "pd.csi.storage.gke.io", "parameters": {"provisioned-iops": "3000", "provisioned-throughput": "50"}},
        "driverName", "parameters", returns_object=True),
    # -- flowcontrol.apiserver.k8s.io/v1
    ex("flowcontrol.apiserver.k8s.io/v1", "PriorityLevelConfiguration", "pyk-plc", {"spec": {
        "type": "Limited", "limited": {"nominalConcurrencyShares": 10, "lendablePercent": 0,
                                       "limitResponse": {"type": "Queue", "queuing": {
                                           "queues": 16, "handSize": 4, "queueLengthLimit": 50}}}}},
        "spec.type", "spec.limited.nominalConcurrencyShares"),
    ex("flowcontrol.apiserver.k8s.io/v1", "FlowSchema", "pyk-fs", {"spec": {
        "priorityLevelConfiguration": {"name": "pyk-plc"}, "matchingPrecedence": 9000,
        "distinguisherMethod": {"type": "ByUser"},
        "rules": [{"subjects": [{"kind": "User", "user": {"name": "pyk-nobody"}}],
                   "resourceRules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"],
                                      "namespaces": ["pyk-none"]}]}]}},
        "spec.priorityLevelConfiguration", "spec.matchingPrecedence", "spec.rules"),
    # -- resource.k8s.io/v1
    ex("resource.k8s.io/v1", "DeviceClass", "pyk-gpu.example.com", {"spec": {"selectors": [
        {"cel": {"expression": "device.driver == 'gpu.example.com'"}}]}}, "spec.selectors", returns_object=True),
    ex("resource.k8s.io/v1", "ResourceClaim", "pyk-single-gpu", {"spec": {"devices": {"requests": [
        {"name": "req-0", "exactly": {"deviceClassName": "pyk-gpu.example.com", "allocationMode": "ExactCount",
                                      "count": 1}}]}}}, "spec.devices.requests.0.name", returns_object=True),
    ex("resource.k8s.io/v1", "ResourceClaimTemplate", "pyk-gpu-template", {"spec": {"spec": {"devices": {"requests": [
        {"name": "req-0", "exactly": {"deviceClassName": "pyk-gpu.example.com"}}]}}}},
        "spec.spec.devices.requests.0.name", returns_object=True),
    ex("resource.k8s.io/v1", "ResourceSlice", "pyk-node-1-gpu.example.com", {"spec": {
        "driver": "gpu.example.com", "nodeName": "node-1", "pool": {"name": "node-1", "generation": 1,
                                                                     "resourceSliceCount": 1},
        "devices": [{"name": "gpu-0", "attributes": {"model": {"string": "LATEST-GPU-MODEL"}},
                     "capacity": {"memory": {"value": "80Gi"}}}]}},
        "spec.driver", "spec.pool", returns_object=True),
    ex("resource.k8s.io/v1", "DeviceTaintRule", "pyk-taint-rule", {"spec": {
        "deviceSelector": {"driver": "gpu.example.com", "pool": "node-1", "device": "gpu-0"},
        "taint": {"key": "example.com/unhealthy", "value": "true", "effect": "NoSchedule"}}}, "spec.taint.key"),
    # -- apiregistration.k8s.io/v1
    ex("apiregistration.k8s.io/v1", "APIService", "v1alpha1.pyk.example.com", {"spec": {
        "group": "pyk.example.com", "version": "v1alpha1", "groupPriorityMinimum": 1000, "versionPriority": 15,
        "service": {"namespace": "pyk-none", "name": "pyk-api", "port": 443}, "insecureSkipTLSVerify": True}},
        "spec.group", "spec.version", "spec.service"),
    # -- certificates.k8s.io
    ex("certificates.k8s.io/v1", "CertificateSigningRequest", "pyk-myuser", {"spec": {
        "request": (
            "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KTUlJQ1ZqQ0NBVDRDQVFBd0VURVBNQTBHQTFVRUF3d0dZVzVuWld4aE1JSUJJakFOQmdrcWhraUc5dzBCQVFFRgpBQU9DQVE4QU1JSUJDZ0tDQVFFQTByczhJTHRHdTYxakx2dHhWTTJSVlRWMDNHWlJTWWw0dWluVWo4RElaWjBOCnR2MUZtRVFSd3VoaUZsOFEzcWl0Qm0wMUFSMkNJVXBGd2ZzSjZ4MXF3ckJzVkhZbGlBNVhwRVpZM3ExcGswSDQKM3Z3aGJlK1o2MVNrVHF5SVBYUUwrTWM5T1Nsbm0xb0R2N0NtSkZNMUlMRVI3QTVGZnZKOEdFRjJ6dHBoaUlFMwpub1dtdHNZb3JuT2wzc2lHQ2ZGZzR4Zmd4eW8ybmlneFNVekl1bXNnVm9PM2ttT0x1RVF6cXpkakJ3TFJXbWlECklmMXBMWnoyalVnald4UkhCM1gyWnVVV1d1T09PZnpXM01LaE8ybHEvZi9DdS8wYk83c0x0MCt3U2ZMSU91TFcKcW90blZtRmxMMytqTy82WDNDKzBERHk5aUtwbXJjVDBnWGZLemE1dHJRSURBUUFCb0FBd0RRWUpLb1pJaHZjTgpBUUVMQlFBRGdnRUJBR05WdmVIOGR4ZzNvK21VeVRkbmFjVmQ1N24zSkExdnZEU1JWREkyQTZ1eXN3ZFp1L1BVCkkwZXpZWFV0RVNnSk1IRmQycVVNMjNuNVJsSXJ3R0xuUXFISUh5VStWWHhsdnZsRnpNOVpEWllSTmU3QlJvYXgKQVlEdUI5STZXT3FYbkFvczFqRmxNUG5NbFpqdU5kSGxpT1BjTU1oNndLaTZzZFhpVStHYTJ2RUVLY01jSVUyRgpvU2djUWdMYTk0aEpacGk3ZnNMdm1OQUxoT045UHdNMGM1dVJVejV4T0dGMUtCbWRSeEgvbUNOS2JKYjFRQm1HCkkwYitEUEdaTktXTU0xMzhIQXdoV0tkNjVoVHdYOWl4V3ZHMkh4TG1WQzg0L1BHT0tWQW9FNkpsYWFHdTlQVmkKdjlOSjVaZlZrcXdCd0hKbzZXdk9xVlA3SVFjZmg3d0drWm89Ci0tLS0tRU5EIENFUlRJRklDQVRFIFJFUVVFU1QtLS0tLQo="),  # noqa: E501
        "signerName": "kubernetes.io/kube-apiserver-client", "expirationSeconds": 86400, "usages": ["client auth"]}},
        "spec.signerName", "spec.usages", "spec.expirationSeconds"),
    ex("certificates.k8s.io/v1", "ClusterTrustBundle", "pyk-trust-bundle", {"spec": {"trustBundle": PYK_CA}},
       "spec.trustBundle"),
    # -- storagemigration.k8s.io/v1
    ex("storagemigration.k8s.io/v1", "StorageVersionMigration", "pyk-secrets-migration", {"spec": {
        "resource": {"group": "", "resource": "secrets"}}}, "spec.resource"),
])

# Cluster-scoped objects another example refers to by name, created first and deleted last.
ORDER_FIRST = {("resource.k8s.io/v1", "DeviceClass"), ("flowcontrol.apiserver.k8s.io/v1", "PriorityLevelConfiguration")}


def snake(kind: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", kind).lower()


def typed_api(api_client: client.ApiClient, api_version: str) -> Any:
    group, _, version = api_version.rpartition("/")
    parts = group.removesuffix(".k8s.io").split(".") if group else ["core"]
    name = "".join(p.capitalize() for p in parts) + version.capitalize() + "Api"
    return getattr(client, name)(api_client)


def method(api: Any, verb: str, kind: str, namespaced: bool) -> Any:
    return getattr(api, f"{verb}_{'namespaced_' if namespaced else ''}{snake(kind)}")


def at(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = obj[int(part)] if isinstance(obj, list) else obj.get(part)
    return obj


def covers(got: Any, want: Any) -> bool:
    """`got` holds everything `want` says; the server may add defaults (a port's protocol,
    an IngressClass parameters' scope, a namespace's name label) but change nothing."""
    if want is None:
        return True
    if isinstance(want, dict):
        return isinstance(got, dict) and all(covers(got.get(k), v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(covers, got, want))
    return bool(got == want)


def get_json(api_client: client.ApiClient, path: str) -> Any:
    r = api_client.rest_client.request("GET", api_client.configuration.host + path,
                                       headers={"Accept": "application/json"})
    r.read()
    assert r.status == 200, (path, r.status)
    return json.loads(r.data)


@dataclass(frozen=True)
class Served:
    namespaced: bool
    subresources: frozenset[str]


def served_kinds(api_client: client.ApiClient) -> dict[tuple[str, str], Served]:
    """(apiVersion, kind) -> how it is served, for every resource served in any version (not
    only the preferred one) that a client can create, get, list and delete."""
    # Custom resources (other tests' CRDs) are not built-in kinds.
    custom = {c["spec"]["group"] for c in get_json(api_client, "/apis/apiextensions.k8s.io/v1/"
                                                               "customresourcedefinitions")["items"]}
    groups = [g for g in get_json(api_client, "/apis")["groups"] if g["name"] not in custom]
    gvs = [("", "v1")] + [(g["name"], v["version"]) for g in groups for v in g["versions"]]
    out: dict[tuple[str, str], Served] = {}
    for group, version in gvs:
        path = f"/apis/{group}/{version}" if group else "/api/v1"
        resources = get_json(api_client, path)["resources"]
        for r in resources:
            if "/" not in r["name"] and {"create", "get", "list", "delete"} <= set(r["verbs"]):
                subs = frozenset(s["name"].split("/", 1)[1] for s in resources
                                 if s["name"].startswith(r["name"] + "/"))
                out[(f"{group}/{version}" if group else version, r["kind"])] = Served(r["namespaced"], subs)
    return out


@pytest.fixture(scope="module")
def served(k8s_client) -> dict[tuple[str, str], Served]:
    return served_kinds(k8s_client)


@pytest.fixture(scope="module")
def namespace(k8s_client):
    core = client.CoreV1Api(k8s_client)
    core.create_namespace({"metadata": {"name": NS}})
    yield NS
    core.delete_namespace(NS)


def test_every_served_kind_has_an_example(served):
    missing = sorted(f"{av} {k}" for av, k in served if (av, k) not in EXAMPLES)
    assert not missing, f"served kinds without an example in EXAMPLES: {missing}"
    # The check is not vacuous: the core kinds are there.
    assert ("v1", "Pod") in served and ("apps/v1", "Deployment") in served


def ordered_keys() -> list[tuple[str, str]]:
    first = [k for k in EXAMPLES if k in ORDER_FIRST]
    return first + [k for k in EXAMPLES if k not in ORDER_FIRST]


@pytest.mark.parametrize("key", ordered_keys(), ids=lambda k: f"{k[0]}-{k[1]}")
def test_a_kind_round_trips_through_the_typed_client(key, served, namespace, k8s_client):
    if key not in served:
        pytest.skip(f"{key[0]} {key[1]} is not served")
    namespaced = served[key].namespaced
    example = EXAMPLES[key]
    api_version, kind = key
    manifest = example.manifest
    name = manifest["metadata"]["name"]
    api = typed_api(k8s_client, api_version)
    args: tuple[str, ...] = (namespace,) if namespaced else ()
    serialize = k8s_client.sanitize_for_serialization

    created = method(api, "create", kind, namespaced)(*args, manifest)
    assert (created.kind, created.metadata.name) == (kind, name)
    try:
        got = method(api, "read", kind, namespaced)(name, *args)
        assert (got.api_version, got.kind, got.metadata.name) == (api_version, kind, name)
        assert got.metadata.uid == created.metadata.uid and got.metadata.creation_timestamp is not None
        as_json = serialize(got)
        for path in ("metadata.labels", "metadata.annotations", *example.checks):
            want = at(manifest, path)
            assert covers(at(as_json, path), want), f"{kind} {path}: {at(as_json, path)!r} lacks {want!r}"

        # What the client read goes back unchanged (a typed read-modify-write with no change;
        # a controller may write the object meanwhile, so a conflict means read again).
        current = got
        for _ in range(5):
            try:
                replaced = method(api, "replace", kind, namespaced)(name, *args, current)
                break
            except ApiException as e:
                assert e.status == 409, e.body
                current = method(api, "read", kind, namespaced)(name, *args)
        else:
            pytest.fail(f"{kind}: replace kept conflicting")
        assert replaced.metadata.uid == created.metadata.uid

        # The subresources a typed client reads deserialize too (status and scale models
        # have required fields of their own).
        if "status" in served[key].subresources:
            status = method(api, "read", f"{kind}Status", namespaced)(name, *args)
            assert status.metadata.uid == created.metadata.uid
            for _ in range(5):
                try:
                    method(api, "replace", f"{kind}Status", namespaced)(name, *args, status)
                    break
                except ApiException as e:
                    assert e.status == 409, e.body
                    status = method(api, "read", f"{kind}Status", namespaced)(name, *args)
            else:
                pytest.fail(f"{kind}: status replace kept conflicting")
        if "scale" in served[key].subresources:
            scale = method(api, "read", f"{kind}Scale", namespaced)(name, *args)
            assert scale.kind == "Scale" and scale.status.replicas >= 0

        list_fn = method(api, "list", kind, namespaced)
        listed = list_fn(*args, field_selector=f"metadata.name={name}")
        assert listed.kind == f"{kind}List" and listed.metadata.resource_version
        assert [i.metadata.uid for i in listed.items] == [created.metadata.uid]
        assert serialize(listed.items[0])["metadata"]["name"] == name
        assert list_fn(*args, field_selector="metadata.name=pyk-none").items == []

        # A watch from just before the create delivers it, decoded into the same model.
        # (The model is named, not guessed from the list's type: the client's guess misses
        # models named with a group prefix, e.g. ResourceV1ResourceClaim.)
        stream = watch.Watch(return_type=type(got))
        before = str(int(created.metadata.resource_version) - 1)
        events = []
        for event in stream.stream(list_fn, *args, field_selector=f"metadata.name={name}",
                                   resource_version=before, timeout_seconds=10):
            events.append(event)
            stream.stop()
        assert events and events[0]["type"] in ("ADDED", "MODIFIED") and type(events[0]["object"]) is type(got)
        assert events[0]["object"].metadata.uid == created.metadata.uid
    finally:
        answer = method(api, "delete", kind, namespaced)(name, *args)
    answer_json = answer if isinstance(answer, dict) else serialize(answer)
    if example.delete_returns_object:
        assert (answer_json["kind"], answer_json["metadata"]["name"]) == (kind, name)
    else:
        assert (answer_json["kind"], answer_json["status"]) == ("Status", "Success"), answer_json
        assert answer_json["details"]["name"] == name
    # Gone, or only marked for deletion (an orphaning or finalizing delete answers with the marked object).
    try:
        after = method(api, "read", kind, namespaced)(name, *args)
    except ApiException as e:
        assert e.status == 404
    else:
        assert after.metadata.deletion_timestamp is not None



# The kinds a client only creates (the server answers instead of storing): typed create
# call, and a check on the answer's status.
REVIEWS: dict[tuple[str, str], tuple[str, dict[str, Any], Any]] = {
    ("authentication.k8s.io/v1", "SelfSubjectReview"): (
        "create_self_subject_review", {}, lambda a: a.status.user_info.username),
    ("authentication.k8s.io/v1", "TokenReview"): (
        "create_token_review", {"spec": {"token": "not-a-token"}}, lambda a: not a.status.authenticated),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): (
        "create_self_subject_access_review",
        {"spec": {"resourceAttributes": {"namespace": NS, "verb": "get", "resource": "pods"}}},
        lambda a: a.status.allowed is True),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): (
        "create_self_subject_rules_review", {"spec": {"namespace": NS}},
        lambda a: a.status.incomplete is not None and a.status.resource_rules),
    ("authorization.k8s.io/v1", "SubjectAccessReview"): (
        "create_subject_access_review",
        {"spec": {"user": "jane", "resourceAttributes": {"namespace": NS, "verb": "delete", "resource": "pods"}}},
        lambda a: isinstance(a.status.allowed, bool)),
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"): (
        "create_namespaced_local_subject_access_review",
        {"metadata": {"namespace": NS},
         "spec": {"user": "jane", "resourceAttributes": {"namespace": NS, "verb": "get", "resource": "pods"}}},
        lambda a: isinstance(a.status.allowed, bool) and a.metadata.namespace == NS),
}


def created_only_kinds(api_client: client.ApiClient) -> set[tuple[str, str]]:
    groups = get_json(api_client, "/apis")["groups"]
    out = set()
    for g in groups:
        for v in g["versions"]:
            for r in get_json(api_client, f"/apis/{g['name']}/{v['version']}")["resources"]:
                if "/" not in r["name"] and r["verbs"] == ["create"]:
                    out.add((v["groupVersion"], r["kind"]))
    return out


@pytest.mark.parametrize("key", list(REVIEWS), ids=lambda k: f"{k[0]}-{k[1]}")
def test_a_review_kind_answers_in_the_typed_model(key, namespace, k8s_client):
    served = created_only_kinds(k8s_client)
    assert set(served) <= set(REVIEWS), f"create-only kinds without an entry in REVIEWS: {served - set(REVIEWS)}"
    if key not in served:
        pytest.skip(f"{key[0]} {key[1]} is not served")
    create, body, check = REVIEWS[key]
    api = typed_api(k8s_client, key[0])
    args = (namespace,) if "namespaced" in create else ()
    answer = getattr(api, create)(*args, {"apiVersion": key[0], "kind": key[1], **body})
    assert answer.kind == key[1] and answer.status is not None
    assert check(answer), answer


def test_quantities_given_as_numbers_read_back_as_canonical_strings(namespace, k8s_client, kubectl):
    # YAML's `pods: 10` and `requests.cpu: 2.5` are JSON numbers (the client's own models
    # refuse them, kubectl sends them); kube-apiserver stores every quantity as its
    # canonical string, which the client's models then read.
    kubectl.ok("-n", namespace, "apply", "-f", "-", stdin=(
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: numeric-quota}\n"
        "spec: {hard: {pods: 10, requests.cpu: 2.5, requests.memory: 1024Mi}}\n"))
    core = client.CoreV1Api(k8s_client)
    try:
        got = core.read_namespaced_resource_quota("numeric-quota", namespace)
        assert got.spec.hard == {"pods": "10", "requests.cpu": "2500m", "requests.memory": "1Gi"}
        kubectl.ok("-n", namespace, "patch", "quota", "numeric-quota", "--type=merge", "-p",
                   '{"spec":{"hard":{"pods":2000}}}')
        listed = core.list_namespaced_resource_quota(namespace, field_selector="metadata.name=numeric-quota")
        assert listed.items[0].spec.hard["pods"] == "2k"
    finally:
        core.delete_namespaced_resource_quota("numeric-quota", namespace)


def test_every_stored_object_reads_through_the_typed_lists(served, k8s_client):
    # What the controllers wrote meanwhile (ReplicaSets, pods, events, EndpointSlices,
    # node and namespace status, ...) must read as well as what clients created.
    counted = 0
    for (api_version, kind), how in sorted(served.items()):
        api = typed_api(k8s_client, api_version)
        name = f"list_{snake(kind)}_for_all_namespaces" if how.namespaced else f"list_{snake(kind)}"
        items = getattr(api, name)().items
        assert all(i.metadata.name for i in items), kind
        counted += len(items)
    assert counted > len(served)
