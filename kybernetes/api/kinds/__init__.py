"""Every kind's rules, one module per kind or small family, found by (group, kind).

`Strategies` is the lookup the API server's pipeline and the Table printer use:
`for_info(info)` gives the kind's `KindStrategy`, the custom-resource strategy for
kinds served from a CRD, and the generic strategy for built-in kinds without rules
of their own. A server builds its own `Strategies` with its configuration
(`new_strategies(default_toleration_seconds=...)`); `DEFAULT` serves the pure
functions (`validation.validate`, `defaults.apply_defaults`, `tables.build_table`)
with the defaults.
"""

from __future__ import annotations

from collections.abc import Iterable

from kybernetes.api.kinds import (
    admission,
    apiregistration,
    autoscaling,
    batch,
    certificates,
    componentstatus,
    config,
    crd,
    csi,
    custom,
    events,
    flowcontrol,
    namespace,
    networking,
    node,
    nodeapi,
    pod,
    policy,
    rbac,
    resource,
    reviews,
    service,
    servicecidr,
    storage,
    workloads,
)
from kybernetes.api.kinds.base import Allocation, DeletionListener, KindRef, KindStrategy
from kybernetes.api.registry import ResourceInfo

__all__ = ["DEFAULT", "KindRef", "KindStrategy", "Strategies", "new_strategies", "strategy_for"]


class Strategies:
    """The strategies of one API server, by (group, kind)."""

    def __init__(self, strategies: Iterable[KindStrategy]) -> None:
        self._by_ref: dict[KindRef, KindStrategy] = {}
        for s in strategies:
            for ref in s.refs:
                if ref in self._by_ref:
                    raise ValueError(f"{ref} has two strategies")
                self._by_ref[ref] = s
        # Looked up on every request: a plain tuple key is cheaper to build and hash.
        self._by_key = {(ref.group, ref.kind): s for ref, s in self._by_ref.items()}
        self.generic = KindStrategy()
        self.custom = custom.CustomResourceStrategy()

    def for_info(self, info: ResourceInfo) -> KindStrategy:
        if info.is_custom:
            return self.custom
        return self._by_key.get((info.group, info.kind), self.generic)

    def get(self, ref: KindRef) -> KindStrategy:
        return self._by_ref.get(ref, self.generic)

    def attach_allocation(self, ref: KindRef, allocation: Allocation) -> None:
        """Draw `ref`'s server-assigned values from `allocation` (a kind has at most one)."""
        strategy = self._by_ref[ref]
        if strategy.allocation is not None:
            raise ValueError(f"{ref} already has an allocation")
        strategy.allocation = allocation

    def add_deletion_listener(self, ref: KindRef, listener: DeletionListener) -> None:
        """Call `listener` with each object of `ref` that gets its deletionTimestamp."""
        self._by_ref[ref].deletion_listeners.append(listener)


def new_strategies(*, default_toleration_seconds: int = pod.DEFAULT_TOLERATION_SECONDS) -> Strategies:
    """The strategies of every built-in kind, configured for one server."""
    return Strategies([
        pod.PodStrategy(default_toleration_seconds=default_toleration_seconds),
        workloads.DeploymentStrategy(), workloads.ReplicaSetStrategy(), workloads.StatefulSetStrategy(),
        workloads.DaemonSetStrategy(), workloads.ControllerRevisionStrategy(),
        workloads.ReplicationControllerStrategy(), workloads.PodTemplateStrategy(),
        batch.JobStrategy(), batch.CronJobStrategy(),
        service.ServiceStrategy(), service.EndpointsStrategy(), service.EndpointSliceStrategy(),
        config.ConfigMapStrategy(), config.SecretStrategy(), config.ServiceAccountStrategy(),
        namespace.NamespaceStrategy(),
        node.NodeStrategy(), node.LeaseStrategy(),
        storage.PersistentVolumeStrategy(), storage.PersistentVolumeClaimStrategy(), storage.StorageClassStrategy(),
        csi.CSIDriverStrategy(), csi.CSINodeStrategy(), csi.VolumeAttachmentStrategy(),
        csi.CSIStorageCapacityStrategy(), csi.VolumeAttributesClassStrategy(),
        admission.ValidatingWebhookConfigurationStrategy(), admission.MutatingWebhookConfigurationStrategy(),
        admission.ValidatingAdmissionPolicyStrategy(), admission.ValidatingAdmissionPolicyBindingStrategy(),
        admission.MutatingAdmissionPolicyStrategy(), admission.MutatingAdmissionPolicyBindingStrategy(),
        nodeapi.RuntimeClassStrategy(),
        rbac.RoleStrategy(), rbac.RoleBindingStrategy(), rbac.ClusterRoleBindingStrategy(),
        networking.IngressStrategy(), networking.IngressClassStrategy(), networking.NetworkPolicyStrategy(),
        events.EventStrategy(),
        policy.LimitRangeStrategy(), policy.ResourceQuotaStrategy(), policy.PodDisruptionBudgetStrategy(),
        policy.PriorityClassStrategy(),
        autoscaling.HorizontalPodAutoscalerStrategy(),
        certificates.CertificateSigningRequestStrategy(),
        crd.CustomResourceDefinitionStrategy(),
        apiregistration.APIServiceStrategy(),
        flowcontrol.FlowSchemaStrategy(), flowcontrol.PriorityLevelConfigurationStrategy(),
        resource.DeviceClassStrategy(), resource.ResourceClaimStrategy(), resource.ResourceClaimTemplateStrategy(),
        resource.ResourceSliceStrategy(), resource.DeviceTaintRuleStrategy(),
        servicecidr.ServiceCIDRStrategy(), servicecidr.IPAddressStrategy(),
        componentstatus.ComponentStatusStrategy(), reviews.LocalSubjectAccessReviewStrategy(),
        reviews.SelfSubjectReviewStrategy(), reviews.TokenReviewStrategy(), reviews.AccessReviewStrategy(),
        reviews.SelfSubjectAccessReviewStrategy(),
        reviews.SelfSubjectRulesReviewStrategy(),
    ])


DEFAULT = new_strategies()


def strategy_for(info: ResourceInfo) -> KindStrategy:
    """The kind's strategy with the default configuration."""
    return DEFAULT.for_info(info)
