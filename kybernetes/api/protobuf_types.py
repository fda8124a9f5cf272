"""Field tables of the Kubernetes protobuf messages our API server reads and writes.

kubectl's typed clients send request bodies as Kubernetes protobuf, and ask for
responses (objects, lists, watch events, errors) in it. The field
numbers below are protocol facts taken from the upstream `generated.proto`
files of k8s.io/api and k8s.io/apimachinery; the JSON names are those of the
JSON API. The kinds in `KINDS` cover what kubectl's generators and auth
commands send, what Go clients create in conformance runs (Pod with every
volume plugin, workloads, storage, nodes, events, ...) and the subresource
bodies (DeleteOptions, Eviction, Scale, reviews); unknown field numbers are
skipped by the decoder. Every kind sampled from a real kube-apiserver 1.28
(`compat/samples/wire-1.28`) decodes to its JSON twin, and that JSON encodes to the
sample's exact bytes (tests/unit/test_protobuf_golden.py); `<Kind>List` of every kind is
implied (ListMeta = 1, items = 2);
the volume plugin sources were checked against upstream core/v1 `generated.proto`.

Every entry was checked against upstream `generated.proto` files: k8s.io/api
`core/v1`, `apps/v1`, `batch/v1`, `autoscaling/v2`, `networking/v1`,
`rbac/v1`, `policy/v1`, `scheduling/v1`, `authentication/v1` and
`authorization/v1` from recent kubernetes/kubernetes master commits (1.35 to
1.37 development, `staging/src/k8s.io/api`), and k8s.io/apimachinery
`pkg/apis/meta/v1` as of v0.26 (unchanged since for the messages used here).
`SelfSubjectReview` numbers come from its Go `protobuf:` tags (identical in
v1alpha1, v1beta1 and v1), `unhealthyPodEvictionPolicy` from k8s.io/api v0.26.
Field numbers are never reused upstream, so newer releases only add fields.

Each message is one string of `;`-separated fields: `<number> <jsonName> [<type>]`.

* `<type>` defaults to `s` (string). Scalars: `s`, `i32`, `i64`, `b` (bool),
  `by` (bytes). Anything else names a message in `MESSAGES` or a well-known
  type (`Time`, `MicroTime`, `IOS` IntOrString, `Q` Quantity, `FieldsV1`,
  `ExtraValue`, `Raw` runtime.RawExtension holding JSON bytes).
* `[]T` is a repeated field, `{}T` a `map<string, T>`.
* A trailing `!` on the name keeps zero values. Go's JSON encoder drops `""`,
  `0` and `false` for `omitempty` value fields, but keeps them for pointer
  fields and non-omitempty fields, while protobuf always writes value fields;
  the flag tells the two apart.
* A trailing `^` on the type marks an embedded Go struct whose fields JSON
  inlines into the parent (e.g. `LocalObjectReference` in `ConfigMapKeySelector`).
* A leading `*` on `Time`/`MicroTime`/`Raw` marks a Go pointer (`*metav1.Time`):
  protobuf writes it only when set, where a value `Time` is always written (an
  empty message when zero).

Encoding (`protobuf.encode_object_message`) follows Go's gogo-protobuf marshalling,
checked byte for byte against every wire-1.28 sample: fields in ascending number
order; a scalar without `!` is always written (zero when JSON omits it, as Go's
`omitempty` value fields are); a scalar with `!` is written exactly when JSON has
a non-null value (pointers are in Go's JSON exactly when set, non-omitempty value
fields always); `by` bytes when present; messages when JSON has them (Go's JSON
never omits a struct value); inlined `^` structs always; repeated fields one tag
per element (never packed); map entries sorted by key, key and value always written.

A zero `creationTimestamp` decodes as absent, where Go's JSON writes `null`
(pod templates): both mean unset, and kubectl's own request captures omit it.

A `!` on a repeated or map field means Go's JSON writes `null` when it is
absent (a nil slice without `omitempty`); a `!` on a `Time` likewise keeps
the zero time as `null`.
"""

from __future__ import annotations

MESSAGES: dict[str, str] = {
    # --- k8s.io/apimachinery/pkg/apis/meta/v1 ---------------------------------------
    "ObjectMeta": (
        "1 name; 2 generateName; 3 namespace; 4 selfLink; 5 uid; 6 resourceVersion; 7 generation i64;"
        " 8 creationTimestamp Time; 9 deletionTimestamp *Time; 10 deletionGracePeriodSeconds! i64;"
        " 11 labels {}s; 12 annotations {}s; 13 ownerReferences []OwnerReference; 14 finalizers []s;"
        " 17 managedFields []ManagedFieldsEntry"
    ),
    "OwnerReference": (
        "5 apiVersion!; 1 kind!; 3 name!; 4 uid!; 6 controller! b; 7 blockOwnerDeletion! b"
    ),
    "ManagedFieldsEntry": (
        "1 manager; 2 operation; 3 apiVersion; 4 time *Time; 6 fieldsType; 7 fieldsV1 FieldsV1; 8 subresource"
    ),
    "LabelSelector": "1 matchLabels {}s; 2 matchExpressions []LabelSelectorRequirement",
    "LabelSelectorRequirement": "1 key!; 2 operator!; 3 values []s",
    "FieldSelectorRequirement": "1 key!; 2 operator!; 3 values []s",
    "DeleteOptions": (
        "1 gracePeriodSeconds! i64; 2 preconditions Preconditions; 3 orphanDependents! b;"
        " 4 propagationPolicy! s; 5 dryRun []s; 6 ignoreStoreReadErrorWithClusterBreakingPotential! b"
    ),
    "Preconditions": "1 uid! s; 2 resourceVersion! s",
    "Status": (
        "1 metadata ListMeta; 2 status; 3 message; 4 reason; 5 details StatusDetails; 6 code i32"
    ),
    "ListMeta": "1 selfLink; 2 resourceVersion; 3 continue; 4 remainingItemCount! i64",
    "StatusDetails": "1 name; 2 group; 3 kind; 6 uid; 4 causes []StatusCause; 5 retryAfterSeconds i32",
    "StatusCause": "1 reason; 2 message; 3 field",
    "Condition": (
        "1 type!; 2 status!; 3 observedGeneration i64; 4 lastTransitionTime Time; 5 reason!; 6 message!"
    ),
    # What `Accept: ...;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1` answers with.
    "PartialObjectMetadata": "1 metadata ObjectMeta",
    # --- k8s.io/api/core/v1 ---------------------------------------------------------
    "ConfigMap": "1 metadata ObjectMeta; 4 immutable! b; 2 data {}s; 3 binaryData {}by",
    "Secret": "1 metadata ObjectMeta; 5 immutable! b; 2 data {}by; 4 stringData {}s; 3 type",
    "Namespace": "1 metadata ObjectMeta; 2 spec NamespaceSpec; 3 status NamespaceStatus",
    "NamespaceSpec": "1 finalizers []s",
    "NamespaceStatus": "1 phase; 2 conditions []NamespaceCondition",
    "NamespaceCondition": "1 type!; 2 status!; 4 lastTransitionTime Time; 5 reason; 6 message",
    "ServiceAccount": (
        "1 metadata ObjectMeta; 2 secrets []ObjectReference; 3 imagePullSecrets []LocalObjectReference;"
        " 4 automountServiceAccountToken! b"
    ),
    "ObjectReference": (
        "1 kind; 2 namespace; 3 name; 4 uid; 5 apiVersion; 6 resourceVersion; 7 fieldPath"
    ),
    "LocalObjectReference": "1 name",
    "TypedLocalObjectReference": "1 apiGroup! s; 2 kind!; 3 name!",
    "Service": "1 metadata ObjectMeta; 2 spec ServiceSpec; 3 status ServiceStatus",
    "ServiceSpec": (
        "1 ports []ServicePort; 2 selector {}s; 3 clusterIP; 18 clusterIPs []s; 4 type; 5 externalIPs []s;"
        " 7 sessionAffinity; 8 loadBalancerIP; 9 loadBalancerSourceRanges []s; 10 externalName;"
        " 11 externalTrafficPolicy; 12 healthCheckNodePort i32; 13 publishNotReadyAddresses b;"
        " 14 sessionAffinityConfig SessionAffinityConfig; 19 ipFamilies []s; 17 ipFamilyPolicy! s;"
        " 20 allocateLoadBalancerNodePorts! b; 21 loadBalancerClass! s; 22 internalTrafficPolicy! s;"
        " 23 trafficDistribution! s"
    ),
    "ServicePort": "1 name; 2 protocol; 6 appProtocol! s; 3 port! i32; 4 targetPort IOS; 5 nodePort i32",
    "SessionAffinityConfig": "1 clientIP ClientIPConfig",
    "ClientIPConfig": "1 timeoutSeconds! i32",
    "ServiceStatus": "1 loadBalancer LoadBalancerStatus; 2 conditions []Condition",
    "LoadBalancerStatus": "1 ingress []LoadBalancerIngress",
    "LoadBalancerIngress": "1 ip; 2 hostname; 3 ipMode! s; 4 ports []PortStatus",
    "PortStatus": "1 port! i32; 2 protocol!; 3 error! s",
    "ResourceQuota": "1 metadata ObjectMeta; 2 spec ResourceQuotaSpec; 3 status ResourceQuotaStatus",
    "ResourceQuotaSpec": "1 hard {}Q; 2 scopes []s; 3 scopeSelector ScopeSelector",
    "ScopeSelector": "1 matchExpressions []ScopedResourceSelectorRequirement",
    "ScopedResourceSelectorRequirement": "1 scopeName!; 2 operator!; 3 values []s",
    "ResourceQuotaStatus": "1 hard {}Q; 2 used {}Q",
    "PodTemplateSpec": "1 metadata ObjectMeta; 2 spec PodSpec",
    "PodSpec": (
        "1 volumes []Volume; 20 initContainers []Container; 2 containers []Container;"
        " 34 ephemeralContainers []EphemeralContainer; 3 restartPolicy;"
        " 4 terminationGracePeriodSeconds! i64; 5 activeDeadlineSeconds! i64; 6 dnsPolicy; 7 nodeSelector {}s;"
        " 8 serviceAccountName; 9 serviceAccount; 21 automountServiceAccountToken! b; 10 nodeName;"
        " 11 hostNetwork b; 12 hostPID b; 13 hostIPC b; 27 shareProcessNamespace! b;"
        " 14 securityContext PodSecurityContext; 15 imagePullSecrets []LocalObjectReference; 16 hostname;"
        " 17 subdomain; 18 affinity Affinity; 19 schedulerName; 22 tolerations []Toleration;"
        " 23 hostAliases []HostAlias; 24 priorityClassName; 25 priority! i32; 26 dnsConfig PodDNSConfig;"
        " 28 readinessGates []PodReadinessGate; 29 runtimeClassName! s; 30 enableServiceLinks! b;"
        " 31 preemptionPolicy! s; 32 overhead {}Q; 33 topologySpreadConstraints []TopologySpreadConstraint;"
        " 35 setHostnameAsFQDN! b; 36 os PodOS; 37 hostUsers! b; 38 schedulingGates []PodSchedulingGate;"
        " 39 resourceClaims []PodResourceClaim; 40 resources ResourceRequirements; 41 hostnameOverride! s"
    ),
    "Container": (
        "1 name!; 2 image; 3 command []s; 4 args []s; 5 workingDir; 6 ports []ContainerPort;"
        " 19 envFrom []EnvFromSource; 7 env []EnvVar; 8 resources ResourceRequirements;"
        " 23 resizePolicy []ContainerResizePolicy; 24 restartPolicy! s;"
        " 25 restartPolicyRules []ContainerRestartRule; 9 volumeMounts []VolumeMount;"
        " 21 volumeDevices []VolumeDevice; 10 livenessProbe Probe; 11 readinessProbe Probe;"
        " 22 startupProbe Probe; 12 lifecycle Lifecycle; 13 terminationMessagePath;"
        " 20 terminationMessagePolicy; 14 imagePullPolicy; 15 securityContext SecurityContext;"
        " 16 stdin b; 17 stdinOnce b; 18 tty b"
    ),
    "ContainerPort": "1 name; 2 hostPort i32; 3 containerPort! i32; 4 protocol; 5 hostIP",
    "ContainerResizePolicy": "1 resourceName!; 2 restartPolicy!",
    "ContainerRestartRule": "1 action!; 2 exitCodes ContainerRestartRuleOnExitCodes",
    "ContainerRestartRuleOnExitCodes": "1 operator!; 2 values []i32",
    "EnvFromSource": "1 prefix; 2 configMapRef ConfigMapEnvSource; 3 secretRef SecretEnvSource",
    "ConfigMapEnvSource": "1 localObjectReference LocalObjectReference^; 2 optional! b",
    "SecretEnvSource": "1 localObjectReference LocalObjectReference^; 2 optional! b",
    "EnvVar": "1 name!; 2 value; 3 valueFrom EnvVarSource",
    "EnvVarSource": (
        "1 fieldRef ObjectFieldSelector; 2 resourceFieldRef ResourceFieldSelector;"
        " 3 configMapKeyRef ConfigMapKeySelector; 4 secretKeyRef SecretKeySelector; 5 fileKeyRef FileKeySelector"
    ),
    "ObjectFieldSelector": "1 apiVersion; 2 fieldPath!",
    "ResourceFieldSelector": "1 containerName; 2 resource!; 3 divisor Q",
    "ConfigMapKeySelector": "1 localObjectReference LocalObjectReference^; 2 key!; 3 optional! b",
    "SecretKeySelector": "1 localObjectReference LocalObjectReference^; 2 key!; 3 optional! b",
    "FileKeySelector": "1 volumeName!; 2 path!; 3 key!; 4 optional! b",
    "ResourceRequirements": "1 limits {}Q; 2 requests {}Q; 3 claims []ResourceClaim",
    "ResourceClaim": "1 name!; 2 request",
    "VolumeMount": (
        "1 name!; 2 readOnly b; 7 recursiveReadOnly! s; 3 mountPath!; 4 subPath; 5 mountPropagation! s;"
        " 6 subPathExpr"
    ),
    "VolumeDevice": "1 name!; 2 devicePath!",
    "Probe": (
        "1 handler ProbeHandler^; 2 initialDelaySeconds i32; 3 timeoutSeconds i32; 4 periodSeconds i32;"
        " 5 successThreshold i32; 6 failureThreshold i32; 7 terminationGracePeriodSeconds! i64"
    ),
    "ProbeHandler": "1 exec ExecAction; 2 httpGet HTTPGetAction; 3 tcpSocket TCPSocketAction; 4 grpc GRPCAction",
    "ExecAction": "1 command []s",
    "HTTPGetAction": "1 path; 2 port! IOS; 3 host; 4 scheme; 5 httpHeaders []HTTPHeader",
    "HTTPHeader": "1 name!; 2 value!",
    "TCPSocketAction": "1 port! IOS; 2 host",
    "GRPCAction": "1 port! i32; 2 service! s",
    "Lifecycle": "1 postStart LifecycleHandler; 2 preStop LifecycleHandler; 3 stopSignal! s",
    "LifecycleHandler": (
        "1 exec ExecAction; 2 httpGet HTTPGetAction; 3 tcpSocket TCPSocketAction; 4 sleep SleepAction"
    ),
    "SleepAction": "1 seconds! i64",
    "SecurityContext": (
        "1 capabilities Capabilities; 2 privileged! b; 3 seLinuxOptions SELinuxOptions;"
        " 10 windowsOptions WindowsSecurityContextOptions; 4 runAsUser! i64; 8 runAsGroup! i64;"
        " 5 runAsNonRoot! b; 6 readOnlyRootFilesystem! b; 7 allowPrivilegeEscalation! b; 9 procMount! s;"
        " 11 seccompProfile SeccompProfile; 12 appArmorProfile AppArmorProfile"
    ),
    "PodSecurityContext": (
        "1 seLinuxOptions SELinuxOptions; 8 windowsOptions WindowsSecurityContextOptions; 2 runAsUser! i64;"
        " 6 runAsGroup! i64; 3 runAsNonRoot! b; 4 supplementalGroups []i64; 12 supplementalGroupsPolicy! s;"
        " 5 fsGroup! i64; 7 sysctls []Sysctl; 9 fsGroupChangePolicy! s; 10 seccompProfile SeccompProfile;"
        " 11 appArmorProfile AppArmorProfile; 13 seLinuxChangePolicy! s"
    ),
    "Capabilities": "1 add []s; 2 drop []s",
    "SELinuxOptions": "1 user; 2 role; 3 type; 4 level",
    "WindowsSecurityContextOptions": (
        "1 gmsaCredentialSpecName! s; 2 gmsaCredentialSpec! s; 3 runAsUserName! s; 4 hostProcess! b"
    ),
    "SeccompProfile": "1 type!; 2 localhostProfile! s",
    "AppArmorProfile": "1 type!; 2 localhostProfile! s",
    "Sysctl": "1 name!; 2 value!",
    "Volume": "1 name!; 2 volumeSource VolumeSource^",
    "VolumeSource": (
        "1 hostPath HostPathVolumeSource; 2 emptyDir EmptyDirVolumeSource; 6 secret SecretVolumeSource;"
        " 7 nfs NFSVolumeSource; 10 persistentVolumeClaim PersistentVolumeClaimVolumeSource;"
        " 16 downwardAPI DownwardAPIVolumeSource; 19 configMap ConfigMapVolumeSource;"
        " 26 projected ProjectedVolumeSource; 28 csi CSIVolumeSource; 30 image ImageVolumeSource;"
        " 3 gcePersistentDisk GCEPersistentDiskVolumeSource; 4 awsElasticBlockStore AWSElasticBlockStoreVolumeSource;"
        " 5 gitRepo GitRepoVolumeSource; 8 iscsi ISCSIVolumeSource; 9 glusterfs GlusterfsVolumeSource;"
        " 11 rbd RBDVolumeSource; 12 flexVolume FlexVolumeSource; 13 cinder CinderVolumeSource;"
        " 14 cephfs CephFSVolumeSource; 15 flocker FlockerVolumeSource; 17 fc FCVolumeSource;"
        " 18 azureFile AzureFileVolumeSource; 20 vsphereVolume VsphereVirtualDiskVolumeSource;"
        " 21 quobyte QuobyteVolumeSource; 22 azureDisk AzureDiskVolumeSource;"
        " 23 photonPersistentDisk PhotonPersistentDiskVolumeSource; 24 portworxVolume PortworxVolumeSource;"
        " 25 scaleIO ScaleIOVolumeSource; 27 storageos StorageOSVolumeSource; 29 ephemeral EphemeralVolumeSource"
    ),
    # Volume plugins kept for old manifests; `Persistent*` variants name a namespaced
    # SecretReference where the pod-level ones use a LocalObjectReference.
    "GCEPersistentDiskVolumeSource": "1 pdName!; 2 fsType; 3 partition i32; 4 readOnly b",
    "AWSElasticBlockStoreVolumeSource": "1 volumeID!; 2 fsType; 3 partition i32; 4 readOnly b",
    "GitRepoVolumeSource": "1 repository!; 2 revision; 3 directory",
    "ISCSIVolumeSource": (
        "1 targetPortal!; 2 iqn!; 3 lun! i32; 4 iscsiInterface; 5 fsType; 6 readOnly b; 7 portals []s;"
        " 8 chapAuthDiscovery b; 11 chapAuthSession b; 10 secretRef LocalObjectReference; 12 initiatorName! s"
    ),
    "ISCSIPersistentVolumeSource": (
        "1 targetPortal!; 2 iqn!; 3 lun! i32; 4 iscsiInterface; 5 fsType; 6 readOnly b; 7 portals []s;"
        " 8 chapAuthDiscovery b; 11 chapAuthSession b; 10 secretRef SecretReference; 12 initiatorName! s"
    ),
    "GlusterfsVolumeSource": "1 endpoints!; 2 path!; 3 readOnly b",
    "GlusterfsPersistentVolumeSource": "1 endpoints!; 2 path!; 3 readOnly b; 4 endpointsNamespace! s",
    "RBDVolumeSource": (
        "1 monitors! []s; 2 image!; 3 fsType; 4 pool; 5 user; 6 keyring; 7 secretRef LocalObjectReference;"
        " 8 readOnly b"
    ),
    "RBDPersistentVolumeSource": (
        "1 monitors! []s; 2 image!; 3 fsType; 4 pool; 5 user; 6 keyring; 7 secretRef SecretReference; 8 readOnly b"
    ),
    "FlexVolumeSource": "1 driver!; 2 fsType; 3 secretRef LocalObjectReference; 4 readOnly b; 5 options {}s",
    "FlexPersistentVolumeSource": "1 driver!; 2 fsType; 3 secretRef SecretReference; 4 readOnly b; 5 options {}s",
    "CinderVolumeSource": "1 volumeID!; 2 fsType; 3 readOnly b; 4 secretRef LocalObjectReference",
    "CinderPersistentVolumeSource": "1 volumeID!; 2 fsType; 3 readOnly b; 4 secretRef SecretReference",
    "CephFSVolumeSource": (
        "1 monitors! []s; 2 path; 3 user; 4 secretFile; 5 secretRef LocalObjectReference; 6 readOnly b"
    ),
    "CephFSPersistentVolumeSource": (
        "1 monitors! []s; 2 path; 3 user; 4 secretFile; 5 secretRef SecretReference; 6 readOnly b"
    ),
    "FlockerVolumeSource": "1 datasetName; 2 datasetUUID",
    "FCVolumeSource": "1 targetWWNs []s; 2 lun! i32; 3 fsType; 4 readOnly b; 5 wwids []s",
    "AzureFileVolumeSource": "1 secretName!; 2 shareName!; 3 readOnly b",
    "AzureFilePersistentVolumeSource": "1 secretName!; 2 shareName!; 3 readOnly b; 4 secretNamespace! s",
    "VsphereVirtualDiskVolumeSource": "1 volumePath!; 2 fsType; 3 storagePolicyName; 4 storagePolicyID",
    "QuobyteVolumeSource": "1 registry!; 2 volume!; 3 readOnly b; 4 user; 5 group; 6 tenant",
    "AzureDiskVolumeSource": (
        "1 diskName!; 2 diskURI!; 3 cachingMode! s; 4 fsType! s; 5 readOnly! b; 6 kind! s"
    ),
    "PhotonPersistentDiskVolumeSource": "1 pdID!; 2 fsType",
    "PortworxVolumeSource": "1 volumeID!; 2 fsType; 3 readOnly b",
    "ScaleIOVolumeSource": (
        "1 gateway!; 2 system!; 3 secretRef LocalObjectReference; 4 sslEnabled b; 5 protectionDomain;"
        " 6 storagePool; 7 storageMode; 8 volumeName; 9 fsType; 10 readOnly b"
    ),
    "ScaleIOPersistentVolumeSource": (
        "1 gateway!; 2 system!; 3 secretRef SecretReference; 4 sslEnabled b; 5 protectionDomain;"
        " 6 storagePool; 7 storageMode; 8 volumeName; 9 fsType; 10 readOnly b"
    ),
    "StorageOSVolumeSource": (
        "1 volumeName; 2 volumeNamespace; 3 fsType; 4 readOnly b; 5 secretRef LocalObjectReference"
    ),
    "StorageOSPersistentVolumeSource": (
        "1 volumeName; 2 volumeNamespace; 3 fsType; 4 readOnly b; 5 secretRef ObjectReference"
    ),
    "EphemeralVolumeSource": "1 volumeClaimTemplate PersistentVolumeClaimTemplate",
    "PersistentVolumeClaimTemplate": "1 metadata ObjectMeta; 2 spec PersistentVolumeClaimSpec",
    "SecretReference": "1 name; 2 namespace",
    "LocalVolumeSource": "1 path!; 2 fsType! s",
    "CSIPersistentVolumeSource": (
        "1 driver!; 2 volumeHandle!; 3 readOnly b; 4 fsType; 5 volumeAttributes {}s;"
        " 6 controllerPublishSecretRef SecretReference; 7 nodeStageSecretRef SecretReference;"
        " 8 nodePublishSecretRef SecretReference; 9 controllerExpandSecretRef SecretReference;"
        " 10 nodeExpandSecretRef SecretReference"
    ),
    # --- Pod ---
    "Pod": "1 metadata ObjectMeta; 2 spec PodSpec; 3 status PodStatus",
    "EphemeralContainer": "1 ephemeralContainerCommon Container^; 2 targetContainerName",
    "PodStatus": (
        "17 observedGeneration i64; 1 phase; 2 conditions []PodCondition; 3 message; 4 reason;"
        " 11 nominatedNodeName; 5 hostIP; 16 hostIPs []HostIP; 6 podIP; 12 podIPs []PodIP; 7 startTime *Time;"
        " 10 initContainerStatuses []ContainerStatus; 8 containerStatuses []ContainerStatus; 9 qosClass;"
        " 13 ephemeralContainerStatuses []ContainerStatus; 14 resize; 15 resourceClaimStatuses []PodResourceClaimStatus"
    ),
    "PodCondition": (
        "1 type!; 7 observedGeneration i64; 2 status!; 3 lastProbeTime! Time; 4 lastTransitionTime! Time;"
        " 5 reason; 6 message"
    ),
    "HostIP": "1 ip!",
    "PodIP": "1 ip!",
    "PodResourceClaimStatus": "1 name!; 2 resourceClaimName! s",
    "ContainerStatus": (
        "1 name!; 2 state ContainerState; 3 lastState ContainerState; 4 ready! b; 5 restartCount! i32;"
        " 6 image!; 7 imageID!; 8 containerID; 9 started! b; 10 allocatedResources {}Q;"
        " 11 resources ResourceRequirements; 12 volumeMounts []VolumeMountStatus; 13 user ContainerUser;"
        " 14 allocatedResourcesStatus []ResourceStatus; 15 stopSignal! s"
    ),
    "ContainerState": (
        "1 waiting ContainerStateWaiting; 2 running ContainerStateRunning; 3 terminated ContainerStateTerminated"
    ),
    "ContainerStateWaiting": "1 reason; 2 message",
    "ContainerStateRunning": "1 startedAt! Time",
    "ContainerStateTerminated": (
        "1 exitCode! i32; 2 signal i32; 3 reason; 4 message; 5 startedAt! Time; 6 finishedAt! Time; 7 containerID"
    ),
    "VolumeMountStatus": "1 name!; 2 mountPath!; 3 readOnly b; 4 recursiveReadOnly! s",
    "ContainerUser": "1 linux LinuxContainerUser",
    "LinuxContainerUser": "1 uid! i64; 2 gid! i64; 3 supplementalGroups []i64",
    "ResourceStatus": "1 name!; 2 resources []ResourceHealth",
    "ResourceHealth": "1 resourceID!; 2 health",
    "HostPathVolumeSource": "1 path!; 2 type! s",
    "EmptyDirVolumeSource": "1 medium; 2 sizeLimit Q",
    "SecretVolumeSource": "1 secretName; 2 items []KeyToPath; 3 defaultMode! i32; 4 optional! b",
    "ConfigMapVolumeSource": (
        "1 localObjectReference LocalObjectReference^; 2 items []KeyToPath; 3 defaultMode! i32; 4 optional! b"
    ),
    "KeyToPath": "1 key!; 2 path!; 3 mode! i32",
    "NFSVolumeSource": "1 server!; 2 path!; 3 readOnly b",
    "PersistentVolumeClaimVolumeSource": "1 claimName!; 2 readOnly b",
    "DownwardAPIVolumeSource": "1 items []DownwardAPIVolumeFile; 2 defaultMode! i32",
    "DownwardAPIVolumeFile": (
        "1 path!; 2 fieldRef ObjectFieldSelector; 3 resourceFieldRef ResourceFieldSelector; 4 mode! i32"
    ),
    "DownwardAPIProjection": "1 items []DownwardAPIVolumeFile",
    "ProjectedVolumeSource": "1 sources []VolumeProjection; 2 defaultMode! i32",
    "VolumeProjection": (
        "1 secret SecretProjection; 2 downwardAPI DownwardAPIProjection; 3 configMap ConfigMapProjection;"
        " 4 serviceAccountToken ServiceAccountTokenProjection"
    ),
    "SecretProjection": "1 localObjectReference LocalObjectReference^; 2 items []KeyToPath; 4 optional! b",
    "ConfigMapProjection": "1 localObjectReference LocalObjectReference^; 2 items []KeyToPath; 4 optional! b",
    "ServiceAccountTokenProjection": "1 audience; 2 expirationSeconds! i64; 3 path!",
    "CSIVolumeSource": (
        "1 driver!; 2 readOnly! b; 3 fsType! s; 4 volumeAttributes {}s; 5 nodePublishSecretRef LocalObjectReference"
    ),
    "ImageVolumeSource": "1 reference; 2 pullPolicy",
    "Toleration": "1 key; 2 operator; 3 value; 4 effect; 5 tolerationSeconds! i64",
    "HostAlias": "1 ip!; 2 hostnames []s",
    "PodDNSConfig": "1 nameservers []s; 2 searches []s; 3 options []PodDNSConfigOption",
    "PodDNSConfigOption": "1 name; 2 value! s",
    "PodReadinessGate": "1 conditionType!",
    "PodOS": "1 name!",
    "PodSchedulingGate": "1 name!",
    "PodResourceClaim": "1 name!; 3 resourceClaimName! s; 4 resourceClaimTemplateName! s",
    "TopologySpreadConstraint": (
        "1 maxSkew! i32; 2 topologyKey!; 3 whenUnsatisfiable!; 4 labelSelector LabelSelector;"
        " 5 minDomains! i32; 6 nodeAffinityPolicy! s; 7 nodeTaintsPolicy! s; 8 matchLabelKeys []s"
    ),
    "Affinity": "1 nodeAffinity NodeAffinity; 2 podAffinity PodAffinity; 3 podAntiAffinity PodAntiAffinity",
    "NodeAffinity": (
        "1 requiredDuringSchedulingIgnoredDuringExecution NodeSelector;"
        " 2 preferredDuringSchedulingIgnoredDuringExecution []PreferredSchedulingTerm"
    ),
    "NodeSelector": "1 nodeSelectorTerms []NodeSelectorTerm",
    "NodeSelectorTerm": "1 matchExpressions []NodeSelectorRequirement; 2 matchFields []NodeSelectorRequirement",
    "NodeSelectorRequirement": "1 key!; 2 operator!; 3 values []s",
    "PreferredSchedulingTerm": "1 weight! i32; 2 preference NodeSelectorTerm",
    "PodAffinity": (
        "1 requiredDuringSchedulingIgnoredDuringExecution []PodAffinityTerm;"
        " 2 preferredDuringSchedulingIgnoredDuringExecution []WeightedPodAffinityTerm"
    ),
    "PodAntiAffinity": (
        "1 requiredDuringSchedulingIgnoredDuringExecution []PodAffinityTerm;"
        " 2 preferredDuringSchedulingIgnoredDuringExecution []WeightedPodAffinityTerm"
    ),
    "PodAffinityTerm": (
        "1 labelSelector LabelSelector; 2 namespaces []s; 3 topologyKey!; 4 namespaceSelector LabelSelector;"
        " 5 matchLabelKeys []s; 6 mismatchLabelKeys []s"
    ),
    "WeightedPodAffinityTerm": "1 weight! i32; 2 podAffinityTerm PodAffinityTerm",
    # --- storage, controllers, nodes and events of core/v1 ---
    "PersistentVolumeClaim": (
        "1 metadata ObjectMeta; 2 spec PersistentVolumeClaimSpec; 3 status PersistentVolumeClaimStatus"
    ),
    "PersistentVolumeClaimSpec": (
        "1 accessModes []s; 4 selector LabelSelector; 2 resources VolumeResourceRequirements; 3 volumeName;"
        " 5 storageClassName! s; 6 volumeMode! s; 7 dataSource TypedLocalObjectReference;"
        " 8 dataSourceRef TypedObjectReference; 9 volumeAttributesClassName! s"
    ),
    "VolumeResourceRequirements": "1 limits {}Q; 2 requests {}Q",
    "TypedObjectReference": "1 apiGroup! s; 2 kind!; 3 name!; 4 namespace! s",
    "PersistentVolumeClaimStatus": (
        "1 phase; 2 accessModes []s; 3 capacity {}Q; 4 conditions []PersistentVolumeClaimCondition;"
        " 5 allocatedResources {}Q; 7 allocatedResourceStatuses {}s; 8 currentVolumeAttributesClassName! s;"
        " 9 modifyVolumeStatus ModifyVolumeStatus"
    ),
    "PersistentVolumeClaimCondition": (
        "1 type!; 2 status!; 3 lastProbeTime Time; 4 lastTransitionTime Time; 5 reason; 6 message"
    ),
    "ModifyVolumeStatus": "1 targetVolumeAttributesClassName; 2 status!",
    "PersistentVolume": "1 metadata ObjectMeta; 2 spec PersistentVolumeSpec; 3 status PersistentVolumeStatus",
    "PersistentVolumeSpec": (
        "1 capacity {}Q; 2 persistentVolumeSource PersistentVolumeSource^; 3 accessModes []s;"
        " 4 claimRef ObjectReference; 5 persistentVolumeReclaimPolicy; 6 storageClassName; 7 mountOptions []s;"
        " 8 volumeMode! s; 9 nodeAffinity VolumeNodeAffinity; 10 volumeAttributesClassName! s"
    ),
    "PersistentVolumeSource": (
        "1 gcePersistentDisk GCEPersistentDiskVolumeSource; 2 awsElasticBlockStore AWSElasticBlockStoreVolumeSource;"
        " 3 hostPath HostPathVolumeSource; 4 glusterfs GlusterfsPersistentVolumeSource; 5 nfs NFSVolumeSource;"
        " 6 rbd RBDPersistentVolumeSource; 7 iscsi ISCSIPersistentVolumeSource;"
        " 8 cinder CinderPersistentVolumeSource; 9 cephfs CephFSPersistentVolumeSource; 10 fc FCVolumeSource;"
        " 11 flocker FlockerVolumeSource; 12 flexVolume FlexPersistentVolumeSource;"
        " 13 azureFile AzureFilePersistentVolumeSource; 14 vsphereVolume VsphereVirtualDiskVolumeSource;"
        " 15 quobyte QuobyteVolumeSource; 16 azureDisk AzureDiskVolumeSource;"
        " 17 photonPersistentDisk PhotonPersistentDiskVolumeSource; 18 portworxVolume PortworxVolumeSource;"
        " 19 scaleIO ScaleIOPersistentVolumeSource; 20 local LocalVolumeSource;"
        " 21 storageos StorageOSPersistentVolumeSource; 22 csi CSIPersistentVolumeSource"
    ),
    "VolumeNodeAffinity": "1 required NodeSelector",
    "PersistentVolumeStatus": "1 phase; 2 message; 3 reason; 4 lastPhaseTransitionTime *Time",
    "ReplicationController": (
        "1 metadata ObjectMeta; 2 spec ReplicationControllerSpec; 3 status ReplicationControllerStatus"
    ),
    "ReplicationControllerSpec": (
        "1 replicas! i32; 4 minReadySeconds i32; 2 selector {}s; 3 template PodTemplateSpec"
    ),
    "ReplicationControllerStatus": (
        "1 replicas! i32; 2 fullyLabeledReplicas i32; 4 readyReplicas i32; 5 availableReplicas i32;"
        " 3 observedGeneration i64; 6 conditions []ReplicationControllerCondition"
    ),
    "ReplicationControllerCondition": "1 type!; 2 status!; 3 lastTransitionTime Time; 4 reason; 5 message",
    "PodTemplate": "1 metadata ObjectMeta; 2 template PodTemplateSpec",
    "Binding": "1 metadata ObjectMeta; 2 target ObjectReference",
    "LimitRange": "1 metadata ObjectMeta; 2 spec LimitRangeSpec",
    "LimitRangeSpec": "1 limits! []LimitRangeItem",
    "LimitRangeItem": (
        "1 type!; 2 max {}Q; 3 min {}Q; 4 default {}Q; 5 defaultRequest {}Q; 6 maxLimitRequestRatio {}Q"
    ),
    "Node": "1 metadata ObjectMeta; 2 spec NodeSpec; 3 status NodeStatus",
    "NodeSpec": (
        "1 podCIDR; 7 podCIDRs []s; 3 providerID; 4 unschedulable b; 5 taints []Taint;"
        " 6 configSource NodeConfigSource; 2 externalID"
    ),
    "NodeConfigSource": "2 configMap ConfigMapNodeConfigSource",
    "ConfigMapNodeConfigSource": (
        "1 namespace!; 2 name!; 3 uid; 4 resourceVersion; 5 kubeletConfigKey!"
    ),
    "Taint": "1 key!; 2 value; 3 effect!; 4 timeAdded *Time",
    "NodeStatus": (
        "1 capacity {}Q; 2 allocatable {}Q; 3 phase; 4 conditions []NodeCondition; 5 addresses []NodeAddress;"
        " 6 daemonEndpoints NodeDaemonEndpoints; 7 nodeInfo NodeSystemInfo; 8 images []ContainerImage;"
        " 9 volumesInUse []s; 10 volumesAttached []AttachedVolume; 12 runtimeHandlers []NodeRuntimeHandler;"
        " 13 features NodeFeatures"
    ),
    "NodeCondition": (
        "1 type!; 2 status!; 3 lastHeartbeatTime Time; 4 lastTransitionTime Time; 5 reason; 6 message"
    ),
    "NodeAddress": "1 type!; 2 address!",
    "NodeDaemonEndpoints": "1 kubeletEndpoint DaemonEndpoint",
    "DaemonEndpoint": "1 Port! i32",
    "NodeSystemInfo": (
        "1 machineID!; 2 systemUUID!; 3 bootID!; 4 kernelVersion!; 5 osImage!; 6 containerRuntimeVersion!;"
        " 7 kubeletVersion!; 8 kubeProxyVersion!; 9 operatingSystem!; 10 architecture!; 11 swap NodeSwapStatus"
    ),
    "NodeSwapStatus": "1 capacity! i64",
    "ContainerImage": "1 names []s; 2 sizeBytes i64",
    "AttachedVolume": "1 name!; 2 devicePath!",
    "NodeRuntimeHandler": "1 name!; 2 features NodeRuntimeHandlerFeatures",
    "NodeRuntimeHandlerFeatures": "1 recursiveReadOnlyMounts! b; 2 userNamespaces! b",
    "NodeFeatures": "1 supplementalGroupsPolicy! b",
    "Event": (
        "1 metadata ObjectMeta; 2 involvedObject ObjectReference; 3 reason; 4 message; 5 source EventSource;"
        " 6 firstTimestamp! Time; 7 lastTimestamp! Time; 8 count i32; 9 type; 10 eventTime! MicroTime;"
        " 11 series EventSeries; 12 action; 13 related ObjectReference; 14 reportingComponent!;"
        " 15 reportingInstance!"
    ),
    "EventSource": "1 component; 2 host",
    "EventSeries": "1 count i32; 2 lastObservedTime MicroTime",
    "Endpoints": "1 metadata ObjectMeta; 2 subsets []EndpointSubset",
    "EndpointSubset": (
        "1 addresses []EndpointAddress; 2 notReadyAddresses []EndpointAddress; 3 ports []CoreEndpointPort"
    ),
    "EndpointAddress": "1 ip!; 3 hostname; 4 nodeName! s; 2 targetRef ObjectReference",
    "CoreEndpointPort": "1 name; 2 port! i32; 3 protocol; 4 appProtocol! s",
    # --- k8s.io/api/discovery/v1 ----------------------------------------------------
    "EndpointSlice": (
        "1 metadata ObjectMeta; 4 addressType!; 2 endpoints! []Endpoint; 3 ports! []EndpointPort"
    ),
    "Endpoint": (
        "1 addresses! []s; 2 conditions EndpointConditions; 3 hostname! s; 4 targetRef ObjectReference;"
        " 5 deprecatedTopology {}s; 6 nodeName! s; 7 zone! s; 8 hints EndpointHints"
    ),
    "EndpointConditions": "1 ready! b; 2 serving! b; 3 terminating! b",
    "EndpointHints": "1 forZones []ForZone; 2 forNodes []ForNode",
    "ForZone": "1 name!",
    "ForNode": "1 name!",
    "EndpointPort": "1 name! s; 2 protocol! s; 3 port! i32; 4 appProtocol! s",
    # --- k8s.io/api/coordination/v1 -------------------------------------------------
    "Lease": "1 metadata ObjectMeta; 2 spec LeaseSpec",
    "LeaseSpec": (
        "1 holderIdentity! s; 2 leaseDurationSeconds! i32; 3 acquireTime! *MicroTime; 4 renewTime! *MicroTime;"
        " 5 leaseTransitions! i32; 6 strategy! s; 7 preferredHolder! s"
    ),
    # --- k8s.io/api/storage/v1 ------------------------------------------------------
    "StorageClass": (
        "1 metadata ObjectMeta; 2 provisioner!; 3 parameters {}s; 4 reclaimPolicy! s; 5 mountOptions []s;"
        " 6 allowVolumeExpansion! b; 7 volumeBindingMode! s; 8 allowedTopologies []TopologySelectorTerm"
    ),
    "CSIDriver": "1 metadata ObjectMeta; 2 spec CSIDriverSpec",
    "CSIDriverSpec": (
        "1 attachRequired! b; 2 podInfoOnMount! b; 3 volumeLifecycleModes []s; 4 storageCapacity! b;"
        " 5 fsGroupPolicy! s; 6 tokenRequests []StorageTokenRequest; 7 requiresRepublish! b;"
        " 8 seLinuxMount! b; 9 nodeAllocatableUpdatePeriodSeconds! i64; 10 serviceAccountTokenInSecrets! b"
    ),
    "StorageTokenRequest": "1 audience!; 2 expirationSeconds! i64",
    "CSINode": "1 metadata ObjectMeta; 2 spec CSINodeSpec",
    "CSINodeSpec": "1 drivers! []CSINodeDriver",
    "CSINodeDriver": "1 name!; 2 nodeID!; 3 topologyKeys! []s; 4 allocatable VolumeNodeResources",
    "VolumeNodeResources": "1 count! i32",
    "CSIStorageCapacity": (
        "1 metadata ObjectMeta; 2 nodeTopology LabelSelector; 3 storageClassName!; 4 capacity Q;"
        " 5 maximumVolumeSize Q"
    ),
    "VolumeAttachment": "1 metadata ObjectMeta; 2 spec VolumeAttachmentSpec; 3 status VolumeAttachmentStatus",
    "VolumeAttachmentSpec": "1 attacher!; 2 source VolumeAttachmentSource; 3 nodeName!",
    "VolumeAttachmentSource": "1 persistentVolumeName! s; 2 inlineVolumeSpec PersistentVolumeSpec",
    "VolumeAttachmentStatus": (
        "1 attached! b; 2 attachmentMetadata {}s; 3 attachError VolumeError; 4 detachError VolumeError"
    ),
    "VolumeError": "1 time Time; 2 message; 3 errorCode! i32",
    "VolumeAttributesClass": "1 metadata ObjectMeta; 2 driverName!; 3 parameters {}s",
    "TopologySelectorTerm": "1 matchLabelExpressions []TopologySelectorLabelRequirement",
    "TopologySelectorLabelRequirement": "1 key!; 2 values! []s",
    # --- k8s.io/api/events/v1 -------------------------------------------------------
    "EventsEvent": (
        "1 metadata ObjectMeta; 2 eventTime! MicroTime; 3 series EventsEventSeries; 4 reportingController;"
        " 5 reportingInstance; 6 action; 7 reason; 8 regarding ObjectReference; 9 related ObjectReference;"
        " 10 note; 11 type; 12 deprecatedSource EventSource; 13 deprecatedFirstTimestamp! Time;"
        " 14 deprecatedLastTimestamp! Time; 15 deprecatedCount i32"
    ),
    "EventsEventSeries": "1 count! i32; 2 lastObservedTime! MicroTime",
    # --- k8s.io/api/admissionregistration/v1 ----------------------------------------
    "ValidatingWebhookConfiguration": "1 metadata ObjectMeta; 2 webhooks []ValidatingWebhook",
    "ValidatingWebhook": (
        "1 name!; 2 clientConfig WebhookClientConfig; 3 rules []RuleWithOperations; 4 failurePolicy! s;"
        " 9 matchPolicy! s; 5 namespaceSelector LabelSelector; 10 objectSelector LabelSelector;"
        " 6 sideEffects! s; 7 timeoutSeconds! i32; 8 admissionReviewVersions! []s;"
        " 11 matchConditions []MatchCondition"
    ),
    "WebhookClientConfig": "3 url! s; 1 service ServiceReference; 2 caBundle by",
    "ServiceReference": "1 namespace!; 2 name!; 3 path! s; 4 port! i32",
    "RuleWithOperations": "1 operations []s; 2 rule Rule^",
    "Rule": "1 apiGroups []s; 2 apiVersions []s; 3 resources []s; 4 scope! s",
    "MatchCondition": "1 name!; 2 expression!",
    "MutatingWebhookConfiguration": "1 metadata ObjectMeta; 2 webhooks []MutatingWebhook",
    "MutatingWebhook": (
        "1 name!; 2 clientConfig WebhookClientConfig; 3 rules []RuleWithOperations; 4 failurePolicy! s;"
        " 9 matchPolicy! s; 5 namespaceSelector LabelSelector; 11 objectSelector LabelSelector;"
        " 6 sideEffects! s; 7 timeoutSeconds! i32; 8 admissionReviewVersions! []s;"
        " 10 reinvocationPolicy! s; 12 matchConditions []MatchCondition"
    ),
    # --- k8s.io/api/node/v1 ---------------------------------------------------------
    "RuntimeClass": "1 metadata ObjectMeta; 2 handler!; 3 overhead Overhead; 4 scheduling Scheduling",
    "Overhead": "1 podFixed {}Q",
    "Scheduling": "1 nodeSelector {}s; 2 tolerations []Toleration",
    # --- k8s.io/api/networking/v1: IngressClass -------------------------------------
    "IngressClass": "1 metadata ObjectMeta; 2 spec IngressClassSpec",
    "IngressClassSpec": "1 controller; 2 parameters IngressClassParametersReference",
    "IngressClassParametersReference": "1 apiGroup! s; 2 kind!; 3 name!; 4 scope! s; 5 namespace! s",
    # --- k8s.io/api/networking/v1: NetworkPolicy -------------------------------------
    "NetworkPolicy": "1 metadata ObjectMeta; 2 spec NetworkPolicySpec",
    "NetworkPolicySpec": (
        "1 podSelector LabelSelector; 2 ingress []NetworkPolicyIngressRule; 3 egress []NetworkPolicyEgressRule;"
        " 4 policyTypes []s"
    ),
    "NetworkPolicyIngressRule": "1 ports []NetworkPolicyPort; 2 from []NetworkPolicyPeer",
    "NetworkPolicyEgressRule": "1 ports []NetworkPolicyPort; 2 to []NetworkPolicyPeer",
    "NetworkPolicyPort": "1 protocol! s; 2 port IOS; 3 endPort! i32",
    "NetworkPolicyPeer": "1 podSelector LabelSelector; 2 namespaceSelector LabelSelector; 3 ipBlock IPBlock",
    "IPBlock": "1 cidr!; 2 except []s",
    # --- k8s.io/api/autoscaling/v1 --------------------------------------------------
    "HorizontalPodAutoscalerV1": (
        "1 metadata ObjectMeta; 2 spec HorizontalPodAutoscalerSpecV1; 3 status HorizontalPodAutoscalerStatusV1"
    ),
    "HorizontalPodAutoscalerSpecV1": (
        "1 scaleTargetRef CrossVersionObjectReference; 2 minReplicas! i32; 3 maxReplicas! i32;"
        " 4 targetCPUUtilizationPercentage! i32"
    ),
    "HorizontalPodAutoscalerStatusV1": (
        "1 observedGeneration! i64; 2 lastScaleTime *Time; 3 currentReplicas! i32; 4 desiredReplicas! i32;"
        " 5 currentCPUUtilizationPercentage! i32"
    ),
    "Scale": "1 metadata ObjectMeta; 2 spec ScaleSpec; 3 status ScaleStatus",
    "ScaleSpec": "1 replicas i32",
    "ScaleStatus": "1 replicas! i32; 2 selector",
    # --- k8s.io/api/certificates/v1 ------------------------------------------------
    "CertificateSigningRequest": (
        "1 metadata ObjectMeta; 2 spec CertificateSigningRequestSpec; 3 status CertificateSigningRequestStatus"
    ),
    "CertificateSigningRequestSpec": (
        "1 request! by; 7 signerName!; 8 expirationSeconds! i32; 5 usages []s; 2 username; 3 uid; 4 groups []s;"
        " 6 extra {}ExtraValue"
    ),
    "CertificateSigningRequestStatus": "1 conditions []CertificateSigningRequestCondition; 2 certificate by",
    "CertificateSigningRequestCondition": (
        "1 type!; 6 status!; 2 reason; 3 message; 4 lastUpdateTime Time; 5 lastTransitionTime Time"
    ),
    # --- subresource bodies ---------------------------------------------------------
    "Eviction": "1 metadata ObjectMeta; 2 deleteOptions DeleteOptions",
    "TokenReview": "1 metadata ObjectMeta; 2 spec TokenReviewSpec; 3 status TokenReviewStatus",
    "TokenReviewSpec": "1 token; 2 audiences []s",
    "TokenReviewStatus": "1 authenticated b; 2 user UserInfo; 4 audiences []s; 3 error",
    "SubjectAccessReview": (
        "1 metadata ObjectMeta; 2 spec SubjectAccessReviewSpec; 3 status SubjectAccessReviewStatus"
    ),
    "SubjectAccessReviewSpec": (
        "1 resourceAttributes ResourceAttributes; 2 nonResourceAttributes NonResourceAttributes; 3 user;"
        " 4 groups []s; 5 extra {}ExtraValue; 6 uid"
    ),
    # --- k8s.io/api/apps/v1 ---------------------------------------------------------
    "Deployment": "1 metadata ObjectMeta; 2 spec DeploymentSpec; 3 status DeploymentStatus",
    "DeploymentSpec": (
        "1 replicas! i32; 2 selector LabelSelector; 3 template PodTemplateSpec; 4 strategy DeploymentStrategy;"
        " 5 minReadySeconds i32; 6 revisionHistoryLimit! i32; 7 paused b; 9 progressDeadlineSeconds! i32"
    ),
    "DeploymentStrategy": "1 type; 2 rollingUpdate RollingUpdateDeployment",
    "RollingUpdateDeployment": "1 maxUnavailable IOS; 2 maxSurge IOS",
    "DeploymentStatus": (
        "1 observedGeneration i64; 2 replicas i32; 3 updatedReplicas i32; 7 readyReplicas i32;"
        " 4 availableReplicas i32; 5 unavailableReplicas i32; 9 terminatingReplicas! i32;"
        " 6 conditions []DeploymentCondition; 8 collisionCount! i32"
    ),
    "DeploymentCondition": (
        "1 type!; 2 status!; 6 lastUpdateTime Time; 7 lastTransitionTime Time; 4 reason; 5 message"
    ),
    "DaemonSet": "1 metadata ObjectMeta; 2 spec DaemonSetSpec; 3 status DaemonSetStatus",
    "DaemonSetSpec": (
        "1 selector LabelSelector; 2 template PodTemplateSpec; 3 updateStrategy DaemonSetUpdateStrategy;"
        " 4 minReadySeconds i32; 6 revisionHistoryLimit! i32"
    ),
    "DaemonSetUpdateStrategy": "1 type; 2 rollingUpdate RollingUpdateDaemonSet",
    "RollingUpdateDaemonSet": "1 maxUnavailable IOS; 2 maxSurge IOS",
    "DaemonSetStatus": (
        "1 currentNumberScheduled! i32; 2 numberMisscheduled! i32; 3 desiredNumberScheduled! i32;"
        " 4 numberReady! i32; 5 observedGeneration i64; 6 updatedNumberScheduled i32; 7 numberAvailable i32;"
        " 8 numberUnavailable i32; 9 collisionCount! i32; 10 conditions []AppsCondition"
    ),
    # `data` is a runtime.RawExtension: the JSON bytes of the recorded template patch.
    "ControllerRevision": "1 metadata ObjectMeta; 2 data! Raw; 3 revision! i64",
    # DaemonSet, StatefulSet and ReplicaSet conditions share one layout.
    "AppsCondition": "1 type!; 2 status!; 3 lastTransitionTime Time; 4 reason; 5 message",
    "StatefulSet": "1 metadata ObjectMeta; 2 spec StatefulSetSpec; 3 status StatefulSetStatus",
    "StatefulSetSpec": (
        "1 replicas! i32; 2 selector LabelSelector; 3 template PodTemplateSpec;"
        " 4 volumeClaimTemplates []PersistentVolumeClaim; 5 serviceName; 6 podManagementPolicy;"
        " 7 updateStrategy StatefulSetUpdateStrategy; 8 revisionHistoryLimit! i32; 9 minReadySeconds i32;"
        " 10 persistentVolumeClaimRetentionPolicy StatefulSetPersistentVolumeClaimRetentionPolicy;"
        " 11 ordinals StatefulSetOrdinals"
    ),
    "StatefulSetUpdateStrategy": "1 type; 2 rollingUpdate RollingUpdateStatefulSetStrategy",
    "RollingUpdateStatefulSetStrategy": "1 partition! i32; 2 maxUnavailable IOS",
    "StatefulSetPersistentVolumeClaimRetentionPolicy": "1 whenDeleted; 2 whenScaled",
    "StatefulSetOrdinals": "1 start i32",
    "StatefulSetStatus": (
        "1 observedGeneration i64; 2 replicas! i32; 3 readyReplicas i32; 4 currentReplicas i32;"
        " 5 updatedReplicas i32; 6 currentRevision; 7 updateRevision; 9 collisionCount! i32;"
        " 10 conditions []AppsCondition; 11 availableReplicas! i32"
    ),
    "ReplicaSet": "1 metadata ObjectMeta; 2 spec ReplicaSetSpec; 3 status ReplicaSetStatus",
    "ReplicaSetSpec": "1 replicas! i32; 4 minReadySeconds i32; 2 selector LabelSelector; 3 template PodTemplateSpec",
    "ReplicaSetStatus": (
        "1 replicas! i32; 2 fullyLabeledReplicas i32; 4 readyReplicas i32; 5 availableReplicas i32;"
        " 7 terminatingReplicas! i32; 3 observedGeneration i64; 6 conditions []AppsCondition"
    ),
    # --- k8s.io/api/batch/v1 --------------------------------------------------------
    "Job": "1 metadata ObjectMeta; 2 spec JobSpec; 3 status JobStatus",
    "JobSpec": (
        "1 parallelism! i32; 2 completions! i32; 3 activeDeadlineSeconds! i64; 11 podFailurePolicy PodFailurePolicy;"
        " 16 successPolicy SuccessPolicy; 7 backoffLimit! i32; 12 backoffLimitPerIndex! i32;"
        " 13 maxFailedIndexes! i32; 4 selector LabelSelector; 5 manualSelector! b; 6 template PodTemplateSpec;"
        " 8 ttlSecondsAfterFinished! i32; 9 completionMode! s; 10 suspend! b; 14 podReplacementPolicy! s;"
        " 15 managedBy! s"
    ),
    "PodFailurePolicy": "1 rules []PodFailurePolicyRule",
    "PodFailurePolicyRule": (
        "1 action!; 2 onExitCodes PodFailurePolicyOnExitCodesRequirement;"
        " 3 onPodConditions []PodFailurePolicyOnPodConditionsPattern"
    ),
    "PodFailurePolicyOnExitCodesRequirement": "1 containerName! s; 2 operator!; 3 values []i32",
    "PodFailurePolicyOnPodConditionsPattern": "1 type!; 2 status",
    "SuccessPolicy": "1 rules []SuccessPolicyRule",
    "SuccessPolicyRule": "1 succeededIndexes! s; 2 succeededCount! i32",
    "JobStatus": (
        "1 conditions []JobCondition; 2 startTime *Time; 3 completionTime *Time; 4 active i32; 5 succeeded i32;"
        " 6 failed i32; 9 terminating! i32; 7 completedIndexes; 10 failedIndexes! s;"
        " 8 uncountedTerminatedPods UncountedTerminatedPods; 11 ready! i32"
    ),
    "JobCondition": (
        "1 type!; 2 status!; 3 lastProbeTime Time; 4 lastTransitionTime Time; 5 reason; 6 message"
    ),
    "UncountedTerminatedPods": "1 succeeded []s; 2 failed []s",
    "CronJob": "1 metadata ObjectMeta; 2 spec CronJobSpec; 3 status CronJobStatus",
    "CronJobSpec": (
        "1 schedule!; 8 timeZone! s; 2 startingDeadlineSeconds! i64; 3 concurrencyPolicy; 4 suspend! b;"
        " 5 jobTemplate JobTemplateSpec; 6 successfulJobsHistoryLimit! i32; 7 failedJobsHistoryLimit! i32"
    ),
    "JobTemplateSpec": "1 metadata ObjectMeta; 2 spec JobSpec",
    "CronJobStatus": "1 active []ObjectReference; 4 lastScheduleTime *Time; 5 lastSuccessfulTime *Time",
    # --- k8s.io/api/rbac/v1 ---------------------------------------------------------
    "Role": "1 metadata ObjectMeta; 2 rules! []PolicyRule",
    "ClusterRole": "1 metadata ObjectMeta; 2 rules! []PolicyRule; 3 aggregationRule AggregationRule",
    "AggregationRule": "1 clusterRoleSelectors []LabelSelector",
    "PolicyRule": "1 verbs! []s; 2 apiGroups []s; 3 resources []s; 4 resourceNames []s; 5 nonResourceURLs []s",
    "RoleBinding": "1 metadata ObjectMeta; 2 subjects []Subject; 3 roleRef RoleRef",
    "ClusterRoleBinding": "1 metadata ObjectMeta; 2 subjects []Subject; 3 roleRef RoleRef",
    "Subject": "1 kind!; 2 apiGroup; 3 name!; 4 namespace",
    "RoleRef": "1 apiGroup!; 2 kind!; 3 name!",
    # --- k8s.io/api/policy/v1 -------------------------------------------------------
    "PodDisruptionBudget": (
        "1 metadata ObjectMeta; 2 spec PodDisruptionBudgetSpec; 3 status PodDisruptionBudgetStatus"
    ),
    "PodDisruptionBudgetSpec": (
        "1 minAvailable IOS; 2 selector LabelSelector; 3 maxUnavailable IOS; 4 unhealthyPodEvictionPolicy! s"
    ),
    "PodDisruptionBudgetStatus": (
        "1 observedGeneration i64; 2 disruptedPods {}Time; 3 disruptionsAllowed! i32; 4 currentHealthy! i32;"
        " 5 desiredHealthy! i32; 6 expectedPods! i32; 7 conditions []Condition"
    ),
    # --- k8s.io/api/scheduling/v1 ---------------------------------------------------
    "PriorityClass": (
        "1 metadata ObjectMeta; 2 value! i32; 3 globalDefault b; 4 description; 5 preemptionPolicy! s"
    ),
    # --- k8s.io/api/networking/v1 ---------------------------------------------------
    "Ingress": "1 metadata ObjectMeta; 2 spec IngressSpec; 3 status IngressStatus",
    "IngressSpec": (
        "4 ingressClassName! s; 1 defaultBackend IngressBackend; 2 tls []IngressTLS; 3 rules []IngressRule"
    ),
    "IngressBackend": "4 service IngressServiceBackend; 3 resource TypedLocalObjectReference",
    "IngressServiceBackend": "1 name!; 2 port ServiceBackendPort",
    "ServiceBackendPort": "1 name; 2 number i32",
    "IngressTLS": "1 hosts []s; 2 secretName",
    "IngressRule": "1 host; 2 ingressRuleValue IngressRuleValue^",
    "IngressRuleValue": "1 http HTTPIngressRuleValue",
    "HTTPIngressRuleValue": "1 paths! []HTTPIngressPath",
    "HTTPIngressPath": "1 path; 3 pathType! s; 2 backend IngressBackend",
    "IngressStatus": "1 loadBalancer IngressLoadBalancerStatus",
    "IngressLoadBalancerStatus": "1 ingress []IngressLoadBalancerIngress",
    "IngressLoadBalancerIngress": "1 ip; 2 hostname; 4 ports []IngressPortStatus",
    "IngressPortStatus": "1 port! i32; 2 protocol!; 3 error! s",
    # --- k8s.io/api/autoscaling/v2 --------------------------------------------------
    "HorizontalPodAutoscaler": (
        "1 metadata ObjectMeta; 2 spec HorizontalPodAutoscalerSpec; 3 status HorizontalPodAutoscalerStatus"
    ),
    "HorizontalPodAutoscalerSpec": (
        "1 scaleTargetRef CrossVersionObjectReference; 2 minReplicas! i32; 3 maxReplicas! i32;"
        " 4 metrics []MetricSpec; 5 behavior HorizontalPodAutoscalerBehavior"
    ),
    "CrossVersionObjectReference": "1 kind!; 2 name!; 3 apiVersion",
    "MetricSpec": (
        "1 type!; 2 object ObjectMetricSource; 3 pods PodsMetricSource; 4 resource ResourceMetricSource;"
        " 7 containerResource ContainerResourceMetricSource; 5 external ExternalMetricSource"
    ),
    "ObjectMetricSource": (
        "1 describedObject CrossVersionObjectReference; 2 target MetricTarget; 3 metric MetricIdentifier"
    ),
    "PodsMetricSource": "1 metric MetricIdentifier; 2 target MetricTarget",
    "ResourceMetricSource": "1 name!; 2 target MetricTarget",
    "ContainerResourceMetricSource": "1 name!; 2 target MetricTarget; 3 container!",
    "ExternalMetricSource": "1 metric MetricIdentifier; 2 target MetricTarget",
    "MetricIdentifier": "1 name!; 2 selector LabelSelector",
    "MetricTarget": "1 type!; 2 value Q; 3 averageValue Q; 4 averageUtilization! i32",
    "HorizontalPodAutoscalerBehavior": "1 scaleUp HPAScalingRules; 2 scaleDown HPAScalingRules",
    "HPAScalingRules": (
        "3 stabilizationWindowSeconds! i32; 1 selectPolicy! s; 2 policies []HPAScalingPolicy; 4 tolerance Q"
    ),
    "HPAScalingPolicy": "1 type!; 2 value! i32; 3 periodSeconds! i32",
    "HorizontalPodAutoscalerStatus": (
        "1 observedGeneration! i64; 2 lastScaleTime *Time; 3 currentReplicas i32; 4 desiredReplicas! i32;"
        " 5 currentMetrics! []MetricStatus; 6 conditions []HorizontalPodAutoscalerCondition"
    ),
    "MetricStatus": (
        "1 type!; 2 object ObjectMetricStatus; 3 pods PodsMetricStatus; 4 resource ResourceMetricStatus;"
        " 7 containerResource ContainerResourceMetricStatus; 5 external ExternalMetricStatus"
    ),
    "ObjectMetricStatus": (
        "1 metric MetricIdentifier; 2 current MetricValueStatus; 3 describedObject CrossVersionObjectReference"
    ),
    "PodsMetricStatus": "1 metric MetricIdentifier; 2 current MetricValueStatus",
    "ResourceMetricStatus": "1 name!; 2 current MetricValueStatus",
    "ContainerResourceMetricStatus": "1 name!; 2 current MetricValueStatus; 3 container!",
    "ExternalMetricStatus": "1 metric MetricIdentifier; 2 current MetricValueStatus",
    "MetricValueStatus": "1 value Q; 2 averageValue Q; 3 averageUtilization! i32",
    "HorizontalPodAutoscalerCondition": (
        "1 type!; 2 status!; 3 lastTransitionTime Time; 4 reason; 5 message"
    ),
    # --- k8s.io/api/authentication/v1 -----------------------------------------------
    "TokenRequest": "1 metadata ObjectMeta; 2 spec TokenRequestSpec; 3 status TokenRequestStatus",
    "TokenRequestSpec": (
        "1 audiences! []s; 4 expirationSeconds! i64; 3 boundObjectRef BoundObjectReference"
    ),
    "BoundObjectReference": "1 kind; 2 apiVersion; 3 name; 4 uid",
    "TokenRequestStatus": "1 token!; 2 expirationTimestamp! Time",
    "SelfSubjectReview": "1 metadata ObjectMeta; 2 status SelfSubjectReviewStatus",
    "SelfSubjectReviewStatus": "1 userInfo UserInfo",
    "UserInfo": "1 username; 2 uid; 3 groups []s; 4 extra {}ExtraValue",
    # --- k8s.io/api/flowcontrol/v1 --------------------------------------------------
    "FlowSchema": "1 metadata ObjectMeta; 2 spec FlowSchemaSpec; 3 status FlowSchemaStatus",
    "FlowSchemaSpec": (
        "1 priorityLevelConfiguration PriorityLevelConfigurationReference; 2 matchingPrecedence i32;"
        " 3 distinguisherMethod FlowDistinguisherMethod; 4 rules []PolicyRulesWithSubjects"
    ),
    "PriorityLevelConfigurationReference": "1 name!",
    "FlowDistinguisherMethod": "1 type!",
    "PolicyRulesWithSubjects": (
        "1 subjects! []FlowSubject; 2 resourceRules []ResourcePolicyRule; 3 nonResourceRules []NonResourcePolicyRule"
    ),
    "FlowSubject": "1 kind!; 2 user UserSubject; 3 group GroupSubject; 4 serviceAccount ServiceAccountSubject",
    "UserSubject": "1 name!",
    "GroupSubject": "1 name!",
    "ServiceAccountSubject": "1 namespace!; 2 name!",
    "ResourcePolicyRule": "1 verbs! []s; 2 apiGroups! []s; 3 resources! []s; 4 clusterScope b; 5 namespaces []s",
    "NonResourcePolicyRule": "1 verbs! []s; 6 nonResourceURLs! []s",
    "FlowSchemaStatus": "1 conditions []FlowSchemaCondition",
    "FlowSchemaCondition": "1 type; 2 status; 3 lastTransitionTime Time; 4 reason; 5 message",
    "PriorityLevelConfiguration": (
        "1 metadata ObjectMeta; 2 spec PriorityLevelConfigurationSpec; 3 status PriorityLevelConfigurationStatus"
    ),
    "PriorityLevelConfigurationSpec": (
        "1 type!; 2 limited LimitedPriorityLevelConfiguration; 3 exempt ExemptPriorityLevelConfiguration"
    ),
    "LimitedPriorityLevelConfiguration": (
        "1 nominalConcurrencyShares! i32; 2 limitResponse LimitResponse; 3 lendablePercent! i32;"
        " 4 borrowingLimitPercent! i32"
    ),
    "ExemptPriorityLevelConfiguration": "1 nominalConcurrencyShares! i32; 2 lendablePercent! i32",
    "LimitResponse": "1 type!; 2 queuing QueuingConfiguration",
    "QueuingConfiguration": "1 queues! i32; 2 handSize! i32; 3 queueLengthLimit! i32",
    "PriorityLevelConfigurationStatus": "1 conditions []PriorityLevelConfigurationCondition",
    "PriorityLevelConfigurationCondition": "1 type; 2 status; 3 lastTransitionTime Time; 4 reason; 5 message",
    # --- k8s.io/api/networking/v1: IPAddress and ServiceCIDR ------------------------
    "IPAddress": "1 metadata ObjectMeta; 2 spec IPAddressSpec",
    "IPAddressSpec": "1 parentRef ParentReference",
    "ParentReference": "1 group; 2 resource; 3 namespace; 4 name",
    "ServiceCIDR": "1 metadata ObjectMeta; 2 spec ServiceCIDRSpec; 3 status ServiceCIDRStatus",
    "ServiceCIDRSpec": "1 cidrs []s",
    "ServiceCIDRStatus": "1 conditions []Condition",
    # --- k8s.io/kube-aggregator/pkg/apis/apiregistration/v1 -------------------------
    "APIService": "1 metadata ObjectMeta; 2 spec APIServiceSpec; 3 status APIServiceStatus",
    "APIServiceSpec": (
        "1 service APIServiceReference; 2 group; 3 version; 4 insecureSkipTLSVerify b; 5 caBundle by;"
        " 7 groupPriorityMinimum! i32; 8 versionPriority! i32"
    ),
    "APIServiceReference": "1 namespace; 2 name; 3 port! i32",
    "APIServiceStatus": "1 conditions []APIServiceCondition",
    "APIServiceCondition": "1 type!; 2 status!; 3 lastTransitionTime Time; 4 reason; 5 message",
    # --- k8s.io/api/resource/v1 (DRA; ResourceClaim is `DRAResourceClaim` here) -----
    "DeviceClass": "1 metadata ObjectMeta; 2 spec DeviceClassSpec",
    "DeviceClassSpec": (
        "1 selectors []DeviceSelector; 2 config []DeviceClassConfiguration; 4 extendedResourceName! s"
    ),
    "DeviceSelector": "1 cel CELDeviceSelector",
    "CELDeviceSelector": "1 expression!",
    "DeviceClassConfiguration": "1 deviceConfiguration DeviceConfiguration^",
    "DeviceConfiguration": "1 opaque OpaqueDeviceConfiguration",
    "OpaqueDeviceConfiguration": "1 driver!; 2 parameters Raw",
    "DRAResourceClaim": "1 metadata ObjectMeta; 2 spec ResourceClaimSpec; 3 status ResourceClaimStatus",
    "ResourceClaimSpec": "1 devices DeviceClaim",
    "DeviceClaim": "1 requests []DeviceRequest; 2 constraints []DeviceConstraint; 3 config []DeviceClaimConfiguration",
    "DeviceRequest": "1 name!; 2 exactly ExactDeviceRequest; 3 firstAvailable []DeviceSubRequest",
    "ExactDeviceRequest": (
        "1 deviceClassName!; 2 selectors []DeviceSelector; 3 allocationMode; 4 count i64; 5 adminAccess! b;"
        " 6 tolerations []DeviceToleration; 7 capacity CapacityRequirements"
    ),
    "DeviceSubRequest": (
        "1 name!; 2 deviceClassName!; 3 selectors []DeviceSelector; 4 allocationMode; 5 count i64;"
        " 6 tolerations []DeviceToleration; 7 capacity CapacityRequirements"
    ),
    "DeviceToleration": "1 key; 2 operator; 3 value; 4 effect; 5 tolerationSeconds! i64",
    "CapacityRequirements": "1 requests {}Q",
    "DeviceConstraint": "1 requests []s; 2 matchAttribute! s; 3 distinctAttribute! s",
    "DeviceClaimConfiguration": "1 requests []s; 2 deviceConfiguration DeviceConfiguration^",
    "ResourceClaimStatus": (
        "1 allocation AllocationResult; 2 reservedFor []ResourceClaimConsumerReference;"
        " 4 devices []AllocatedDeviceStatus"
    ),
    "AllocationResult": (
        "1 devices DeviceAllocationResult; 3 nodeSelector NodeSelector; 5 allocationTimestamp *Time"
    ),
    "DeviceAllocationResult": "1 results []DeviceRequestAllocationResult; 2 config []DeviceAllocationConfiguration",
    "DeviceRequestAllocationResult": (
        "1 request!; 2 driver!; 3 pool!; 4 device!; 5 adminAccess! b; 6 tolerations []DeviceToleration;"
        " 7 bindingConditions []s; 8 bindingFailureConditions []s; 9 shareID! s; 10 consumedCapacity {}Q"
    ),
    "DeviceAllocationConfiguration": "1 source!; 2 requests []s; 3 deviceConfiguration DeviceConfiguration^",
    "ResourceClaimConsumerReference": "1 apiGroup; 3 resource!; 4 name!; 5 uid!",
    "AllocatedDeviceStatus": (
        "1 driver!; 2 pool!; 3 device!; 7 shareID! s; 4 conditions []Condition; 5 data *Raw;"
        " 6 networkData NetworkDeviceData"
    ),
    "NetworkDeviceData": "1 interfaceName; 2 ips []s; 3 hardwareAddress",
    "ResourceClaimTemplate": "1 metadata ObjectMeta; 2 spec ResourceClaimTemplateSpec",
    "ResourceClaimTemplateSpec": "1 metadata ObjectMeta; 2 spec ResourceClaimSpec",
    "ResourceSlice": "1 metadata ObjectMeta; 2 spec ResourceSliceSpec",
    "ResourceSliceSpec": (
        "1 driver!; 2 pool ResourcePool; 3 nodeName! s; 4 nodeSelector NodeSelector; 5 allNodes! b;"
        " 6 devices []Device; 7 perDeviceNodeSelection! b; 8 sharedCounters []CounterSet"
    ),
    "ResourcePool": "1 name!; 2 generation! i64; 3 resourceSliceCount! i64",
    "Device": (
        "1 name!; 2 attributes {}DeviceAttribute; 3 capacity {}DeviceCapacity;"
        " 4 consumesCounters []DeviceCounterConsumption; 5 nodeName! s; 6 nodeSelector NodeSelector;"
        " 7 allNodes! b; 8 taints []DeviceTaint; 9 bindsToNode! b; 10 bindingConditions []s;"
        " 11 bindingFailureConditions []s; 12 allowMultipleAllocations! b"
    ),
    "DeviceAttribute": "2 int! i64; 3 bool! b; 4 string! s; 5 version! s",
    "DeviceCapacity": "1 value Q; 2 requestPolicy CapacityRequestPolicy",
    "CapacityRequestPolicy": "1 default Q; 3 validValues []Q; 4 validRange CapacityRequestPolicyRange",
    "CapacityRequestPolicyRange": "1 min Q; 2 max Q; 3 step Q",
    "DeviceCounterConsumption": "1 counterSet!; 2 counters {}Counter",
    "CounterSet": "1 name!; 2 counters {}Counter",
    "Counter": "1 value Q",
    "DeviceTaint": "1 key!; 2 value; 3 effect!; 4 timeAdded *Time",
    # Fields 1 (deviceClassName) and 5 (selectors) of the alpha selector are gone in v1.
    "DeviceTaintRule": "1 metadata ObjectMeta; 2 spec DeviceTaintRuleSpec; 3 status DeviceTaintRuleStatus",
    "DeviceTaintRuleSpec": "1 deviceSelector DeviceTaintSelector; 2 taint DeviceTaint",
    "DeviceTaintSelector": "2 driver! s; 3 pool! s; 4 device! s",
    "DeviceTaintRuleStatus": "1 conditions []Condition",
    # --- k8s.io/api/authorization/v1 ------------------------------------------------
    "SelfSubjectAccessReview": (
        "1 metadata ObjectMeta; 2 spec SelfSubjectAccessReviewSpec; 3 status SubjectAccessReviewStatus"
    ),
    "SelfSubjectAccessReviewSpec": (
        "1 resourceAttributes ResourceAttributes; 2 nonResourceAttributes NonResourceAttributes"
    ),
    "ResourceAttributes": (
        "1 namespace; 2 verb; 3 group; 4 version; 5 resource; 6 subresource; 7 name;"
        " 8 fieldSelector FieldSelectorAttributes; 9 labelSelector LabelSelectorAttributes"
    ),
    "FieldSelectorAttributes": "1 rawSelector; 2 requirements []FieldSelectorRequirement",
    "LabelSelectorAttributes": "1 rawSelector; 2 requirements []LabelSelectorRequirement",
    "NonResourceAttributes": "1 path; 2 verb",
    "SubjectAccessReviewStatus": "1 allowed! b; 4 denied b; 2 reason; 3 evaluationError",
    "SelfSubjectRulesReview": (
        "1 metadata ObjectMeta; 2 spec SelfSubjectRulesReviewSpec; 3 status SubjectRulesReviewStatus"
    ),
    "SelfSubjectRulesReviewSpec": "1 namespace",
    "SubjectRulesReviewStatus": (
        "1 resourceRules! []ResourceRule; 2 nonResourceRules! []NonResourceRule; 3 incomplete! b;"
        " 4 evaluationError"
    ),
    "ResourceRule": "1 verbs! []s; 2 apiGroups []s; 3 resources []s; 4 resourceNames []s",
    "NonResourceRule": "1 verbs! []s; 2 nonResourceURLs []s",
}

# (apiVersion, kind) of a top-level object -> its message.
KINDS: dict[tuple[str, str], str] = {
    ("v1", "Pod"): "Pod",
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Secret"): "Secret",
    ("v1", "Namespace"): "Namespace",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "Service"): "Service",
    ("v1", "ResourceQuota"): "ResourceQuota",
    ("v1", "PersistentVolumeClaim"): "PersistentVolumeClaim",
    ("v1", "PersistentVolume"): "PersistentVolume",
    ("v1", "ReplicationController"): "ReplicationController",
    ("v1", "PodTemplate"): "PodTemplate",
    ("v1", "Binding"): "Binding",
    ("v1", "LimitRange"): "LimitRange",
    ("v1", "Node"): "Node",
    ("v1", "Event"): "Event",
    ("apps/v1", "DaemonSet"): "DaemonSet",
    ("apps/v1", "StatefulSet"): "StatefulSet",
    ("apps/v1", "ReplicaSet"): "ReplicaSet",
    ("apps/v1", "ControllerRevision"): "ControllerRevision",
    ("meta.k8s.io/v1", "PartialObjectMetadata"): "PartialObjectMetadata",
    ("v1", "Endpoints"): "Endpoints",
    ("v1", "Status"): "Status",
    ("discovery.k8s.io/v1", "EndpointSlice"): "EndpointSlice",
    ("coordination.k8s.io/v1", "Lease"): "Lease",
    ("storage.k8s.io/v1", "StorageClass"): "StorageClass",
    ("events.k8s.io/v1", "Event"): "EventsEvent",
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"): "ValidatingWebhookConfiguration",
    ("networking.k8s.io/v1", "NetworkPolicy"): "NetworkPolicy",
    ("autoscaling/v1", "HorizontalPodAutoscaler"): "HorizontalPodAutoscalerV1",
    ("autoscaling/v1", "Scale"): "Scale",
    ("certificates.k8s.io/v1", "CertificateSigningRequest"): "CertificateSigningRequest",
    ("policy/v1", "Eviction"): "Eviction",
    ("authentication.k8s.io/v1", "TokenReview"): "TokenReview",
    ("authorization.k8s.io/v1", "SubjectAccessReview"): "SubjectAccessReview",
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"): "SubjectAccessReview",
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"): "MutatingWebhookConfiguration",
    ("node.k8s.io/v1", "RuntimeClass"): "RuntimeClass",
    ("networking.k8s.io/v1", "IngressClass"): "IngressClass",
    ("storage.k8s.io/v1", "CSIDriver"): "CSIDriver",
    ("storage.k8s.io/v1", "CSINode"): "CSINode",
    ("storage.k8s.io/v1", "CSIStorageCapacity"): "CSIStorageCapacity",
    ("storage.k8s.io/v1", "VolumeAttachment"): "VolumeAttachment",
    ("storage.k8s.io/v1", "VolumeAttributesClass"): "VolumeAttributesClass",
    ("apps/v1", "Deployment"): "Deployment",
    ("batch/v1", "Job"): "Job",
    ("batch/v1", "CronJob"): "CronJob",
    ("rbac.authorization.k8s.io/v1", "Role"): "Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "ClusterRoleBinding",
    ("policy/v1", "PodDisruptionBudget"): "PodDisruptionBudget",
    ("scheduling.k8s.io/v1", "PriorityClass"): "PriorityClass",
    ("networking.k8s.io/v1", "Ingress"): "Ingress",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "HorizontalPodAutoscaler",
    ("authentication.k8s.io/v1", "TokenRequest"): "TokenRequest",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "SelfSubjectReview",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): "SelfSubjectRulesReview",
    ("flowcontrol.apiserver.k8s.io/v1", "FlowSchema"): "FlowSchema",
    ("flowcontrol.apiserver.k8s.io/v1", "PriorityLevelConfiguration"): "PriorityLevelConfiguration",
    ("networking.k8s.io/v1", "IPAddress"): "IPAddress",
    ("networking.k8s.io/v1", "ServiceCIDR"): "ServiceCIDR",
    ("apiregistration.k8s.io/v1", "APIService"): "APIService",
    ("resource.k8s.io/v1", "DeviceClass"): "DeviceClass",
    ("resource.k8s.io/v1", "ResourceClaim"): "DRAResourceClaim",
    ("resource.k8s.io/v1", "ResourceClaimTemplate"): "ResourceClaimTemplate",
    ("resource.k8s.io/v1", "ResourceSlice"): "ResourceSlice",
    ("resource.k8s.io/v1", "DeviceTaintRule"): "DeviceTaintRule",
}

# Kinds every group version registers (metav1.AddToGroupVersion): clients send them
# under the apiVersion of the resource they address, so any apiVersion is accepted.
ANY_VERSION_KINDS: dict[str, str] = {
    "DeleteOptions": "DeleteOptions",
}
