"""The node agent's resource figures (agent.stats): CPU rates from two samples, the
kubelet's statsapi Summary, the Prometheus text of /metrics/resource and /metrics, and
the parsing of /proc and cgroup files."""

from __future__ import annotations

from kybernetes.agent import stats

S = stats.NS_PER_S
T0 = 1_700_000_000 * S


def container(name="c", cid="cid1", usage=0, at=T0, ws=1000):
    return stats.ContainerSample(name, cid, 1_700_000_000.0, stats.CpuSample(at, usage),
                                 stats.MemorySample(at, ws + 500, ws, ws // 2, 7, 1))


def pod(*containers, uid="u1", sandbox_usage=0, at=T0):
    return stats.PodSample("p", "ns", uid, 1_699_999_990.0, tuple(containers), stats.CpuSample(at, sandbox_usage),
                           stats.MemorySample(at, 100, 50, 40), None)


def node(usage=0, at=T0):
    return stats.NodeSample("n1", 1_600_000_000.0, stats.CpuSample(at, usage),
                            stats.MemorySample(at, 8000, 6000, 3000, 9, 2, limit=10000))


def test_cpu_rate_needs_two_samples_a_second_apart_and_restarts_when_the_counter_goes_back():
    w = stats.advance(None, stats.CpuSample(T0, 0))
    assert w.nano_cores is None
    # Half a core over two seconds.
    w = stats.advance(w, stats.CpuSample(T0 + 2 * S, S))
    assert w.nano_cores == 500_000_000
    # Too soon after: the last rate stays, and so does the sample it is measured from.
    soon = stats.advance(w, stats.CpuSample(T0 + 2 * S + S // 10, S + S // 10))
    assert soon == w
    assert stats.advance(w, stats.CpuSample(T0 + 3 * S, 0)).nano_cores is None


def test_windows_follow_containers_pods_and_the_node_and_forget_what_is_gone():
    first = stats.Snapshot(node(0), (pod(container(usage=0), container("d", "cid2", 5 * S)),))
    windows = stats.advance_all({}, stats.cpu_counters(first))
    assert set(windows) == {"node", "pods", "pod/u1", "cid1", "cid2"}
    second = stats.Snapshot(node(2 * S, T0 + S), (pod(container(usage=S, at=T0 + S), sandbox_usage=S // 10,
                                                      at=T0 + S),))
    windows = stats.advance_all(windows, stats.cpu_counters(second))
    assert set(windows) == {"node", "pods", "pod/u1", "cid1"}
    assert windows["cid1"].nano_cores == S and windows["node"].nano_cores == 2 * S
    # The pod's counter is its containers' and sandbox's together: it went back when cid2 left.
    assert windows["pod/u1"].nano_cores is None


def test_summary_has_the_kubelets_shape_and_figures():
    snaps = [stats.Snapshot(node(usage=0), (pod(container(usage=0)),)),
             stats.Snapshot(node(usage=S, at=T0 + 4 * S), (pod(container(usage=2 * S, at=T0 + 4 * S),
                                                               at=T0 + 4 * S),))]
    windows: dict[str, stats.CpuWindow] = {}
    for snap in snaps:
        windows = stats.advance_all(windows, stats.cpu_counters(snap))
    doc = stats.summary(snaps[1], windows)
    n = doc["node"]
    assert n["nodeName"] == "n1" and n["startTime"] == "2020-09-13T12:26:40Z"
    assert n["cpu"] == {"time": "2023-11-14T22:13:24Z", "usageNanoCores": 250_000_000, "usageCoreNanoSeconds": S}
    assert n["memory"] == {"time": "2023-11-14T22:13:24Z", "availableBytes": 4000, "usageBytes": 8000,
                           "workingSetBytes": 6000, "rssBytes": 3000, "pageFaults": 9, "majorPageFaults": 2}
    assert [c["name"] for c in n["systemContainers"]] == ["pods"]
    (p,) = doc["pods"]
    assert p["podRef"] == {"name": "p", "namespace": "ns", "uid": "u1"}
    assert p["startTime"] == "2023-11-14T22:13:10Z"
    (c,) = p["containers"]
    assert c["name"] == "c" and c["startTime"] == "2023-11-14T22:13:20Z"
    assert c["cpu"]["usageNanoCores"] == 500_000_000 and c["cpu"]["usageCoreNanoSeconds"] == 2 * S
    # No limit: no availableBytes, as the kubelet leaves it out.
    assert c["memory"] == {"time": "2023-11-14T22:13:24Z", "usageBytes": 1500, "workingSetBytes": 1000,
                           "rssBytes": 500, "pageFaults": 7, "majorPageFaults": 1}
    # The pod is its containers and its sandbox.
    assert p["cpu"]["usageCoreNanoSeconds"] == 2 * S and p["memory"]["workingSetBytes"] == 1050
    only = stats.summary(snaps[1], windows, cpu_and_memory_only=True)
    assert "network" not in only["node"] and "fs" not in only["node"] and "cpu" in only["pods"][0]


def test_summary_of_filesystems_networks_and_rlimits():
    fs = stats.FsSample(T0, capacity=100, available=40, used=60, inodes=10, inodes_free=4, inodes_used=6)
    net = stats.NetworkSample(T0, (stats.InterfaceSample("eth0", 1, 2, 3, 4), stats.InterfaceSample("eth1", 5, 0, 6, 0)))
    logs = stats.FsSample(T0, capacity=100, available=40, used=12, inodes_used=1)
    c = stats.ContainerSample("c", "cid", 1.0, logs=logs)
    p = stats.PodSample("p", "ns", "u", 1.0, (c,), network=net)
    n = stats.NodeSample("n", 1.0, fs=fs, image_fs=fs, network=net, max_pid=32768, cur_proc=100, rlimit_time_ns=T0)
    doc = stats.summary(stats.Snapshot(n, (p,)), {})
    assert doc["node"]["fs"] == {"time": "2023-11-14T22:13:20Z", "availableBytes": 40, "capacityBytes": 100,
                                 "usedBytes": 60, "inodesFree": 4, "inodes": 10, "inodesUsed": 6}
    assert doc["node"]["runtime"]["imageFs"]["usedBytes"] == 60
    assert doc["node"]["rlimit"] == {"time": "2023-11-14T22:13:20Z", "maxpid": 32768, "curproc": 100}
    assert doc["node"]["network"]["name"] == "eth0" and doc["node"]["network"]["rxBytes"] == 1
    assert [i["name"] for i in doc["node"]["network"]["interfaces"]] == ["eth0", "eth1"]
    pod_doc = doc["pods"][0]
    assert pod_doc["containers"][0]["logs"]["usedBytes"] == 12
    assert pod_doc["ephemeral-storage"]["usedBytes"] == 12 and pod_doc["ephemeral-storage"]["capacityBytes"] == 100
    assert pod_doc["network"]["txBytes"] == 3


def test_resource_metrics_are_what_metrics_server_reads():
    snap = stats.Snapshot(node(usage=3 * S // 2), (pod(container(usage=S // 4)),))
    text = stats.resource_metrics(snap)
    lines = text.splitlines()
    ts = str(T0 // 1_000_000)
    assert f'container_cpu_usage_seconds_total{{container="c",namespace="ns",pod="p"}} 0.25 {ts}' in lines
    assert f'container_memory_working_set_bytes{{container="c",namespace="ns",pod="p"}} 1000 {ts}' in lines
    assert 'container_start_time_seconds{container="c",namespace="ns",pod="p"} 1700000000' in lines
    assert f"node_cpu_usage_seconds_total 1.5 {ts}" in lines
    assert f"node_memory_working_set_bytes 6000 {ts}" in lines
    assert f'pod_cpu_usage_seconds_total{{namespace="ns",pod="p"}} 0.25 {ts}' in lines
    assert f'pod_memory_working_set_bytes{{namespace="ns",pod="p"}} 1050 {ts}' in lines
    assert "resource_scrape_error 0" in lines and "scrape_error 0" in lines
    assert "# TYPE node_cpu_usage_seconds_total counter" in lines
    assert "# TYPE container_memory_working_set_bytes gauge" in lines
    names = [line.split()[2] for line in lines if line.startswith("# TYPE")]
    assert names == sorted(names)
    failed = stats.resource_metrics(stats.Snapshot(stats.NodeSample("n", 0.0), (), 1))
    assert failed.splitlines()[-1] == "scrape_error 1"


def test_prometheus_text_escapes_labels_and_formats_values():
    fam = stats.Family("x_total", "a\\b\nc", "counter")
    fam.add(1e20, {"b": 'q"\\\n', "a": "1"})
    fam.add(float("inf"))
    fam.add(0.5, timestamp_ns=2_500_000)
    assert stats.render([fam, stats.Family("empty", "nothing")]) == (
        "# HELP x_total a\\\\b\\nc\n# TYPE x_total counter\n"
        'x_total{a="1",b="q\\"\\\\\\n"} 1e+20\nx_total +Inf\nx_total 0.5 2\n')


def test_agent_metrics_name_the_process_and_the_container_states():
    proc = stats.ProcessSample(1.25, 4096, 8192, 1_700_000_000.5, 12, 1024)
    text = stats.agent_metrics("n1", proc, 3, {"running": 4, "exited": 1})
    lines = text.splitlines()
    for line in ("process_cpu_seconds_total 1.25", "process_resident_memory_bytes 4096",
                 "process_start_time_seconds 1700000000.5", "kubelet_running_pods 3",
                 'kubelet_running_containers{container_state="running"} 4',
                 'kubelet_running_containers{container_state="exited"} 1',
                 'kubelet_running_containers{container_state="created"} 0', 'kubelet_node_name{node="n1"} 1'):
        assert line in lines


MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 /outer /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""


def test_cgroup_dirs_on_v1_hybrid_and_v2_hosts():
    proc = "4:memory:/outer/k8s.io/abc\n2:cpu,cpuacct:/k8s.io/abc\n0::/k8s.io/abc\n"
    assert stats.cgroup_dirs(MOUNTINFO, proc) == {
        "memory": "/sys/fs/cgroup/memory/k8s.io/abc", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct/k8s.io/abc",
        "unified": "/sys/fs/cgroup/unified/k8s.io/abc"}
    v2 = "29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"
    assert stats.cgroup_dirs(v2, "0::/system.slice/x.scope\n") == {"unified": "/sys/fs/cgroup/system.slice/x.scope"}
    assert stats.cgroup_dirs(v2, "0::/\n") == {"unified": "/sys/fs/cgroup"}


def test_the_writable_layer_is_the_overlay_at_the_root():
    mountinfo = ("1 0 0:1 / /proc rw - proc proc rw\n"
                 "2 1 0:9 / / rw,relatime - overlay overlay rw,lowerdir=/s/1/fs:/s/2/fs,upperdir=/s/3/fs,workdir=/s/3/work\n")
    assert stats.overlay_upperdir(mountinfo) == "/s/3/fs"
    assert stats.overlay_upperdir("2 1 8:1 / / rw - ext4 /dev/sda1 rw\n") is None


def test_memory_working_set_leaves_out_inactive_page_cache():
    v1 = stats.memory_v1(1000, {"total_inactive_file": 300, "total_rss": 600, "total_pgfault": 5,
                                "total_pgmajfault": 1}, 9223372036854771712, T0)
    assert (v1.usage, v1.working_set, v1.rss, v1.page_faults, v1.limit) == (1000, 700, 600, 5, 0)
    v2 = stats.memory_v2(1000, {"inactive_file": 1200, "anon": 400}, 2000, T0)
    assert (v2.working_set, v2.rss, v2.limit) == (0, 400, 2000)
    assert stats.memory_stats(v2)["availableBytes"] == 2000


def test_node_figures_from_proc():
    proc_stat = "cpu  100 5 50 1000 7 3 2 1 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\nbtime 1600000000\n"
    assert stats.node_cpu(proc_stat, T0, 100) == stats.CpuSample(T0, 161 * S // 100)
    assert stats.boot_time(proc_stat) == 1_600_000_000.0
    mem = stats.node_memory(stats.parse_meminfo("MemTotal: 1000 kB\nMemFree: 200 kB\nInactive(file): 100 kB\n"
                                                "AnonPages: 300 kB\nHugePages_Total: 0\n"),
                            stats.parse_flat_keyed("pgfault 9\npgmajfault 2\n"), T0)
    assert (mem.usage, mem.working_set, mem.rss, mem.limit, mem.page_faults) == (819200, 716800, 307200, 1024000, 9)
    dev = ("Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|...\n"
           "    lo: 9 1 0 0 0 0 0 0 9 1 0 0 0 0 0 0\n"
           "  eth0: 100 2 3 0 0 0 0 0 200 4 5 0 0 0 0 0\n"
           "vethab: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n")
    assert stats.parse_net_dev(dev, T0).interfaces == (stats.InterfaceSample("eth0", 100, 3, 200, 5),)
    route = "Iface\tDestination\tGateway\nkyb0\t00002A0A\t00000000\nens3\t00000000\t010200C0\n"
    assert stats.default_interface(route) == "ens3"


def test_process_figures_from_proc_self():
    stat = "42 (py thon (x)) S 1 42 42 0 -1 4194560 10 0 0 0 150 50 0 0 20 0 3 0 500 123456 789"
    p = stats.process_sample(stat, "1000 250 10 1 0 100 0", 4096, 100, 1_600_000_000.0, 7, 1024)
    assert (p.cpu_seconds, p.resident_bytes, p.virtual_bytes, p.start_time) == (2.0, 250 * 4096, 123456,
                                                                                1_600_000_005.0)


# -- where the stats find a container's first process --------------------------------------

def test_a_bundle_pid_is_read_from_the_shims_init_pid(tmp_path):
    from kybernetes.agent.statsreader import bundle_pid
    (tmp_path / "abc").mkdir()
    (tmp_path / "abc" / "init.pid").write_text("4242")
    assert bundle_pid(str(tmp_path), "abc") == 4242
    assert bundle_pid(str(tmp_path), "missing") == 0
    assert bundle_pid("", "abc") == 0
    # An id is a name in the bundle dir, never a path out of it.
    (tmp_path / "init.pid").write_text("1")
    assert bundle_pid(str(tmp_path / "abc"), "..") == 0
    assert bundle_pid(str(tmp_path), "abc/../") == 0


class _Runtime:
    """The CRI calls a stats round makes, counting the verbose ones."""

    def __init__(self, pid: int) -> None:
        from kybernetes.agent.cri import runtime_pb2 as pb
        self.pb = pb
        self.pid = pid
        self.verbose_calls = 0

    async def list_pod_sandboxes(self, state=None):
        sb = self.pb.PodSandbox(id="sb1", created_at=T0)
        sb.metadata.name, sb.metadata.namespace, sb.metadata.uid = "p", "ns", "u1"
        return [sb]

    async def list_containers(self, state=None):
        c = self.pb.Container(id="c1", pod_sandbox_id="sb1", created_at=T0)
        c.metadata.name = "app"
        return [c]

    def _info(self, verbose):
        import json
        self.verbose_calls += verbose
        return {"info": json.dumps({"pid": self.pid})} if verbose else {}

    async def pod_sandbox_status(self, sandbox_id, verbose=False):
        resp = self.pb.PodSandboxStatusResponse(info=self._info(verbose))
        resp.status.created_at = T0
        return resp

    async def container_status(self, container_id, verbose=False):
        resp = self.pb.ContainerStatusResponse(info=self._info(verbose))
        resp.status.started_at = T0
        return resp

    async def image_fs_info(self):
        return self.pb.ImageFsInfoResponse()


def _round(task_dir):
    import asyncio
    import os

    from kybernetes.agent.statsreader import StatsReader
    cri = _Runtime(os.getpid())
    snap = asyncio.run(StatsReader(cri, "n1", task_dir=task_dir).snapshot())
    return cri.verbose_calls, snap


def test_with_the_runtimes_bundles_a_round_reads_pids_without_verbose_status_calls(tmp_path):
    import os
    for rid in ("sb1", "c1"):
        (tmp_path / rid).mkdir()
        (tmp_path / rid / "init.pid").write_text(str(os.getpid()))
    verbose, snap = _round(str(tmp_path))
    assert verbose == 0
    [p] = snap.pods
    # The pid found leads to a cgroup: this test process's own, which has CPU and memory.
    assert p.sandbox_cpu is not None and p.sandbox_memory is not None
    assert p.containers[0].cpu is not None


def test_without_them_the_pid_comes_from_verbose_status(tmp_path):
    verbose, snap = _round(str(tmp_path))  # no init.pid files there
    assert verbose == 2
    assert snap.pods[0].containers[0].cpu is not None


def test_later_rounds_read_fresh_figures_from_the_cgroups_found_in_the_first(tmp_path):
    import asyncio

    from kybernetes.agent.statsreader import StatsReader
    proc, cg, tasks = tmp_path / "proc", tmp_path / "cg", tmp_path / "tasks"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mountinfo").write_text(
        f"30 25 0:26 / {cg}/memory rw - cgroup cgroup rw,memory\n"
        f"31 25 0:27 / {cg}/cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n")
    (proc / "123").mkdir()
    (proc / "123" / "cgroup").write_text("4:memory:/k8s.io/c1\n2:cpu,cpuacct:/k8s.io/c1\n")
    mem, cpu = cg / "memory" / "k8s.io" / "c1", cg / "cpuacct" / "k8s.io" / "c1"
    mem.mkdir(parents=True)
    cpu.mkdir(parents=True)
    (mem / "memory.stat").write_text("total_inactive_file 0\n")
    (mem / "memory.limit_in_bytes").write_text("1048576\n")
    for rid in ("sb1", "c1"):
        (tasks / rid).mkdir(parents=True)
        (tasks / rid / "init.pid").write_text("123")
    reader = StatsReader(_Runtime(123), "n1", proc=str(proc), task_dir=str(tasks))

    def round_(usage: int, cpu_ns: int):
        (mem / "memory.usage_in_bytes").write_text(f"{usage}\n")
        (cpu / "cpuacct.usage").write_text(f"{cpu_ns}\n")
        [pod] = asyncio.run(reader.snapshot(fresh_seconds=0)).pods
        return pod.containers[0]

    first = round_(4096, 1000)
    assert first.memory is not None and first.memory.usage == 4096 and first.cpu.usage_core_ns == 1000
    # The process's own cgroup file is not read again; its cgroup's figures are.
    (proc / "123" / "cgroup").unlink()
    second = round_(8192, 5000)
    assert second.memory.usage == 8192 and second.cpu.usage_core_ns == 5000
