"""Which OCI runtime the agent's private containerd defaults to, from the host's cgroup
layout, and the containerd config that offers both runtimes (and their twins without portmap)."""

import os
import tomllib

from kybernetes.agent.cgroupmode import (
    CgroupLayout,
    cgroup_layout,
    choose_runtime,
    claim_v1,
    containerd_runtime_name,
    controllers_to_claim,
    v1_hierarchy,
    v1_subsystems,
)
from kybernetes.agent.containerd import (
    ContainerdLayout,
    containerd_config,
    crun_handlers,
    mount_tmpfs_if_empty,
    nohostport_handlers,
)

HYBRID = """tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""
UNIFIED = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n"
LEGACY = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n"
PROC_CGROUPS = """#subsys_name	hierarchy	num_cgroups	enabled
cpuset	3	1	1
cpu	1	1	1
blkio	7	1	1
memory	4	50	1
hugetlb	0	1	1
rdma	0	1	0
"""


def test_layouts():
    assert cgroup_layout(UNIFIED, "") == CgroupLayout("unified")
    assert cgroup_layout(LEGACY, "") == CgroupLayout("legacy")
    assert cgroup_layout(HYBRID, "hugetlb\n") == CgroupLayout("hybrid", ("hugetlb",))
    assert cgroup_layout(HYBRID, "") == CgroupLayout("hybrid", ())
    # A cgroup2 mount elsewhere (a container's view of another tree) is not this host's.
    assert cgroup_layout(LEGACY + "cgroup2 /mnt/x cgroup2 rw 0 0\n", "") == CgroupLayout("legacy")


def test_v1_subsystems_and_hierarchies():
    assert v1_subsystems(PROC_CGROUPS) == {"cpuset", "cpu", "blkio", "memory", "hugetlb"}
    assert v1_hierarchy(PROC_CGROUPS, "memory") == 4
    assert v1_hierarchy(PROC_CGROUPS, "hugetlb") == 0
    assert v1_hierarchy(PROC_CGROUPS, "nonesuch") == 0


def test_controllers_to_claim():
    v1 = v1_subsystems(PROC_CGROUPS)
    assert controllers_to_claim(CgroupLayout("unified"), v1) == []
    assert controllers_to_claim(CgroupLayout("legacy"), v1) == []
    assert controllers_to_claim(CgroupLayout("hybrid"), v1) == []
    assert controllers_to_claim(CgroupLayout("hybrid", ("hugetlb",)), v1) == ["hugetlb"]
    # The v2 tree's "io" is v1's "blkio".
    assert controllers_to_claim(CgroupLayout("hybrid", ("io", "hugetlb")), v1) == ["blkio", "hugetlb"]
    # A controller with no v1 form here (rdma is disabled) keeps crun out.
    assert controllers_to_claim(CgroupLayout("hybrid", ("rdma",)), v1) is None


def test_runtime_name():
    assert containerd_runtime_name(True, []) == "crun"
    assert containerd_runtime_name(True, ["hugetlb"]) == "crun"
    assert containerd_runtime_name(True, None) == "runc"
    assert containerd_runtime_name(False, []) == "runc"


def test_containerd_config_offers_both_runtimes():
    layout = ContainerdLayout("/var/lib/kyb/containerd")
    both = containerd_config(layout, "/usr/lib/cni", crun="/usr/bin/crun", default_runtime="crun")
    assert 'default_runtime_name = "crun"' in both
    assert '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]' in both
    assert 'BinaryName = "/usr/bin/crun"' in both
    # Each runtime keeps its state apart: the two binaries' state formats differ.
    assert 'Root = "/var/lib/kyb/containerd/st/runc"' in both
    assert 'Root = "/var/lib/kyb/containerd/st/crun"' in both
    only_runc = containerd_config(layout, "/usr/lib/cni")
    assert 'default_runtime_name = "runc"' in only_runc
    assert "crun" not in only_runc


def test_pods_without_host_ports_run_on_a_twin_whose_network_lacks_portmap():
    layout = ContainerdLayout("/var/lib/kyb/containerd")
    config = tomllib.loads(containerd_config(layout, "/usr/lib/cni", crun="/usr/bin/crun", default_runtime="crun"))
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    runtimes = cri["containerd"]["runtimes"]
    assert sorted(runtimes) == ["crun", "crun-nohostport", "runc", "runc-nohostport"]
    # The twins are their runtime but for the network: the one in the nohostport dir. The
    # handlers keep the default network (with portmap): sandboxes made on them before the
    # twins existed are torn down with the network they were set up with.
    for name in ("runc", "crun"):
        twin = runtimes[name + "-nohostport"]
        assert twin["cni_conf_dir"] == layout.cni_nohostport_conf_dir and twin["cni_max_conf_num"] == 1
        assert {k: v for k, v in twin.items() if not k.startswith("cni_")} == runtimes[name]
        assert "cni_conf_dir" not in runtimes[name]
    assert cri["cni"]["conf_dir"] == layout.cni_conf_dir != layout.cni_nohostport_conf_dir
    assert nohostport_handlers("/usr/bin/crun", "crun") == {"": "crun-nohostport", "runc": "runc-nohostport",
                                                            "crun": "crun-nohostport"}
    assert nohostport_handlers("", "runc") == {"": "runc-nohostport", "runc": "runc-nohostport"}
    assert set(crun_handlers("/usr/bin/crun", "runc")) == {"crun", "crun-nohostport"}
    assert "runc-nohostport" in tomllib.loads(containerd_config(layout, "/usr/lib/cni"))[
        "plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]

def test_a_controller_the_kernel_will_not_mount_leaves_nothing_behind(tmp_path):
    # No such controller: the mount fails (or, without root, the mount command does), so
    # containers stay on runc, and the mount point made for it is gone again.
    assert claim_v1("kyb-no-such-controller", root=str(tmp_path)) is False
    assert os.listdir(tmp_path) == []
    # A directory that was there before is not the claim's to remove.
    (tmp_path / "kyb-no-such-controller").mkdir()
    assert claim_v1("kyb-no-such-controller", root=str(tmp_path)) is False
    assert os.listdir(tmp_path) == ["kyb-no-such-controller"]


def test_without_crun_on_the_path_containers_run_on_runc(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert choose_runtime(root=str(tmp_path)) == "runc"
    assert os.listdir(tmp_path) == []


def test_containerds_volatile_dirs_go_on_tmpfs_only_when_fresh(tmp_path):
    import subprocess

    layout = ContainerdLayout(str(tmp_path))
    assert layout.state in layout.volatile_dirs
    # A state dir an older agent's containers use (on disk) stays as it is.
    busy = tmp_path / "busy"
    (busy / "io.containerd.runtime.v2.task").mkdir(parents=True)
    assert mount_tmpfs_if_empty(str(busy), "") == "in use on disk"
    # One mounted before (a restarted agent's) is used again.
    assert mount_tmpfs_if_empty(str(busy), f"41 30 0:51 / {busy} rw - tmpfs tmpfs rw\n") == "mounted before"
    fresh = tmp_path / "fresh"
    outcome = mount_tmpfs_if_empty(str(fresh), "")
    if outcome != "mounted":  # not root: the mount command says why
        assert outcome and os.listdir(fresh) == []
        return
    try:
        with open("/proc/self/mountinfo") as f:
            [line] = [line for line in f if line.split()[4] == str(fresh)]
        assert " - tmpfs " in line and "nosuid" in line and "nodev" in line
        assert oct(os.stat(fresh).st_mode & 0o777) == "0o711"
    finally:
        subprocess.run(["umount", str(fresh)], check=True)
