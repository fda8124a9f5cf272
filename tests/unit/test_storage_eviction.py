"""Local storage eviction decisions (agent.eviction): which limits a pod has, and the
kubelet's message for the first one it is over."""

from __future__ import annotations

from kybernetes.agent import eviction
from kybernetes.agent.eviction import PodUsage

MI = 1024 * 1024


def _pod(containers=None, volumes=None, init=None, **spec) -> dict:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": {"containers": containers or [{"name": "c"}], "initContainers": init or [],
                     "volumes": volumes or [], **spec},
            "status": {"phase": "Running"}}


def _limit(name: str, amount: str) -> dict:
    return {"name": name, "resources": {"limits": {"ephemeral-storage": amount}}}


SCRATCH = {"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}


def test_a_pod_without_limits_is_not_measured():
    pod = _pod(volumes=[{"name": "v", "emptyDir": {}}])
    assert not eviction.has_storage_limit(pod) and not eviction.evictable(pod)
    assert eviction.eviction_message(pod, PodUsage({"v": 100 * MI}, {"c": 100 * MI})) is None


def test_an_empty_dir_over_its_size_limit_evicts_with_the_kubelets_message():
    pod = _pod(volumes=[SCRATCH])
    assert eviction.evictable(pod)
    assert eviction.eviction_message(pod, PodUsage({"scratch": MI})) is None  # at the limit is within it
    assert eviction.eviction_message(pod, PodUsage({"scratch": 5 * MI})) == \
        'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". '


def test_a_memory_empty_dir_is_sized_at_mount_not_measured():
    pod = _pod(volumes=[{"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}])
    assert not eviction.has_storage_limit(pod)
    assert eviction.disk_empty_dirs(pod) == []


def test_a_container_over_its_limit_evicts_the_pod():
    pod = _pod(containers=[_limit("c", "1Mi"), _limit("d", "100Mi")])
    assert eviction.eviction_message(pod, PodUsage({}, {"c": 512 * 1024, "d": 2 * MI})) is None
    assert eviction.eviction_message(pod, PodUsage({}, {"c": 2 * MI, "d": 0})) == \
        'Container c exceeded its local ephemeral storage limit "1Mi". '


def test_the_pods_total_counts_empty_dirs_against_the_containers_limits_summed():
    pod = _pod(containers=[_limit("a", "1Mi"), _limit("b", "1Mi")], volumes=[{"name": "v", "emptyDir": {}}])
    assert eviction.pod_limit(pod) == (2 * MI, "2Mi")
    assert eviction.disk_empty_dirs(pod) == ["v"]
    # Each container within its own limit, the emptyDir (no sizeLimit) tips the pod over.
    usage = PodUsage({"v": 3 * MI}, {"a": 10, "b": 10})
    assert eviction.eviction_message(pod, usage) == \
        "Pod ephemeral local storage usage exceeds the total limit of containers 2Mi. "


def test_the_empty_dir_check_comes_first():
    pod = _pod(containers=[_limit("c", "1Mi")], volumes=[SCRATCH])
    msg = eviction.eviction_message(pod, PodUsage({"scratch": 5 * MI}, {"c": 5 * MI}))
    assert msg is not None and msg.startswith("Usage of EmptyDir volume")


def test_pod_limit_takes_the_largest_init_container_and_overhead():
    pod = _pod(containers=[_limit("c", "1Mi")], init=[_limit("i", "4Mi")], overhead={"ephemeral-storage": "1Mi"})
    assert eviction.pod_limit(pod) == (5 * MI, "5Mi")
    decimal = _pod(containers=[_limit("a", "1M"), _limit("b", "500k")])
    assert eviction.pod_limit(decimal) == (1_500_000, "1500k")


def test_finished_terminating_and_critical_pods_are_left_alone():
    done = _pod(volumes=[SCRATCH])
    done["status"]["phase"] = "Failed"
    deleting = _pod(volumes=[SCRATCH])
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    critical = _pod(volumes=[SCRATCH], priority=2_000_001_000)
    assert not any(eviction.evictable(p) for p in (done, deleting, critical))


def test_evicted_status():
    assert eviction.evicted_status("m") == {"phase": "Failed", "reason": "Evicted", "message": "m"}


def test_a_memory_empty_dir_is_sized_as_the_kubelet_sizes_it():
    node = "4Gi"
    limited = _pod(containers=[{"name": "a", "resources": {"limits": {"memory": "64Mi"}}},
                               {"name": "b", "resources": {"limits": {"memory": "64Mi"}}}])
    # Every container has a memory limit: the pod's (128Mi) caps the tmpfs; a smaller sizeLimit caps it more.
    assert eviction.memory_empty_dir_size(limited, None, node) == 128 * MI
    assert eviction.memory_empty_dir_size(limited, "1Mi", node) == MI
    assert eviction.memory_empty_dir_size(limited, "1Gi", node) == 128 * MI
    # One container without a limit: the pod may use the node's allocatable memory.
    partly = _pod(containers=[{"name": "a", "resources": {"limits": {"memory": "64Mi"}}}, {"name": "b"}])
    assert eviction.memory_empty_dir_size(partly, None, node) == 4096 * MI
    assert eviction.memory_empty_dir_size(partly, "8Gi", node) == 4096 * MI
