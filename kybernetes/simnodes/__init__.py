"""Simulated nodes (like kwok): fake kubelets that register Nodes, renew their
Leases and move bound pods to Running, so the control plane can be exercised
and measured at scale on one machine."""

from kybernetes.simnodes.model import NodeTemplate
from kybernetes.simnodes.sim import SimulatedNodes

__all__ = ["NodeTemplate", "SimulatedNodes"]
