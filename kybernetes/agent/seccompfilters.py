"""Seccomp filters handed to crun already compiled.

crun compiles a container's seccomp profile with libseccomp at every `crun create`: for
containerd's RuntimeDefault profile that is ~11 ms of CPU, on the critical path of every
container start (Debian's crun 1.8 has no cache of its own; later versions keep one). crun
takes a compiled filter instead from the OCI annotation `run.oci.seccomp_bpf_data`, which
the private containerd lets through for containers (`container_annotations`) and for pod
sandboxes, the pause container (`pod_annotations`).

This module owns which containers share a filter, the filters learned, and the check of
every container that was given one:

- containerd derives a RuntimeDefault profile from the container's capabilities alone (the
  profile allows some syscalls only with some capabilities), so containers whose CRI
  capabilities are the same get the same profile (`filter_key`); every pause container has
  containerd's own capabilities, so all RuntimeDefault sandboxes share one
  (`sandbox_filter_key`);
- a filter is learned from crun's own output: after a container crun compiled for has
  started, its `seccomp.bpf` (in crun's state dir) is what crun made of the profile in the
  container's OCI spec (its bundle's `config.json`), and is kept with that profile's digest;
- a container started with a learned filter has its spec's profile compared with the one
  the filter was made from (whose digest it carries as a CRI annotation). Should they ever
  differ, the container is stopped and no more filters are handed out (the agent's caller
  does the stopping).

Nothing else is cached: Localhost profiles (a file that may change), Unconfined, and
privileged containers are left to crun as before.

containerd copies a sandbox config's pass-through annotations into every container created
with that config too (CreateContainer carries the sandbox config again, and containerd reads
the annotations from there, not from the sandbox it stored). So only the config sent with
RunPodSandbox carries the sandbox's filter (`annotate_sandbox` returns a copy); a container's
own annotation, when it has one, is applied after the pod's in any case.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from dataclasses import dataclass

from kybernetes.agent.cri import runtime_pb2 as pb

log = logging.getLogger(__name__)

ANNOTATION = "run.oci.seccomp_bpf_data"
# Beside it, in CRI only (containerd lets no other annotation into the OCI spec): the digest
# of the profile the filter was compiled from, which the container's own must match.
DIGEST_ANNOTATION = "io.kybernetes.seccomp.filterDigest"
BPF_FILE = "seccomp.bpf"
SPEC_FILE = "config.json"

# Filters kept at most (~8 KB each): one per capability set in use, so a few in practice;
# the bound keeps pods with ever new capability sets from growing the agent.
MAX_FILTERS = 64

FilterKey = tuple[str, ...]


def filter_key(config: pb.ContainerConfig) -> FilterKey | None:
    """What containerd makes a container's seccomp profile from, when that is its
    RuntimeDefault profile; None for any other profile."""
    security = config.linux.security_context
    if security.privileged or security.seccomp.profile_type != pb.SecurityProfile.RuntimeDefault:
        return None
    caps = security.capabilities
    return ("add", *sorted(caps.add_capabilities), "drop", *sorted(caps.drop_capabilities))


SANDBOX_KEY: FilterKey = ("sandbox",)


def sandbox_filter_key(config: pb.PodSandboxConfig) -> FilterKey | None:
    """What containerd makes a pod sandbox's seccomp profile from, when that is its
    RuntimeDefault profile: the pause container's capabilities are containerd's defaults,
    not the pod's, so it is the same key for every such sandbox; None for any other."""
    security = config.linux.security_context
    if security.privileged or security.seccomp.profile_type != pb.SecurityProfile.RuntimeDefault:
        return None
    return SANDBOX_KEY


def _key_of(config: pb.ContainerConfig | pb.PodSandboxConfig) -> FilterKey | None:
    return sandbox_filter_key(config) if isinstance(config, pb.PodSandboxConfig) else filter_key(config)


def seccomp_digest(oci_spec: dict) -> str:
    """A digest of the spec's seccomp section ("" without one)."""
    section = (oci_spec.get("linux") or {}).get("seccomp")
    if not section:
        return ""
    return hashlib.sha256(json.dumps(section, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class LearnedFilter:
    digest: str  # of the seccomp section the filter was compiled from
    data: str  # the filter, base64 as the annotation takes it


@dataclass(frozen=True)
class Pending:
    key: FilterKey | None  # None: a profile no filter is learned for
    given: str  # the digest of the profile its handed filter came from ("": crun compiled one)


class SeccompFilters:
    """The filters learned on one node. `crun_dir` is crun's state dir for containerd's
    Kubernetes namespace, `task_dir` containerd's task bundles (where each container's OCI
    spec is); `handlers` are the CRI runtime handlers that run crun ("" for the default)."""

    def __init__(self, crun_dir: str, task_dir: str, handlers: frozenset[str]) -> None:
        self.crun_dir = crun_dir
        self.task_dir = task_dir
        self.handlers = handlers
        self.enabled = bool(crun_dir and task_dir and handlers)
        self._learned: dict[FilterKey, LearnedFilter] = {}
        self._pending: dict[str, Pending] = {}

    def annotate(self, config: pb.ContainerConfig, handler: str) -> None:
        """Give the container a learned filter when one fits."""
        learned = self._fitting(config, handler)
        if learned is not None:
            config.annotations[ANNOTATION] = learned.data
            config.annotations[DIGEST_ANNOTATION] = learned.digest

    def annotate_sandbox(self, config: pb.PodSandboxConfig, handler: str) -> pb.PodSandboxConfig:
        """The config to send with RunPodSandbox: a copy given the learned filter when one
        fits, else `config` itself. Never send the copy with CreateContainer (see above)."""
        learned = self._fitting(config, handler)
        if learned is None:
            return config
        given = pb.PodSandboxConfig()
        given.CopyFrom(config)
        given.annotations[ANNOTATION] = learned.data
        given.annotations[DIGEST_ANNOTATION] = learned.digest
        return given

    def _fitting(self, config: pb.ContainerConfig | pb.PodSandboxConfig, handler: str) -> LearnedFilter | None:
        key = _key_of(config) if self.enabled and handler in self.handlers else None
        return self._learned.get(key) if key is not None else None

    def created(self, container_id: str, config: pb.ContainerConfig | pb.PodSandboxConfig, handler: str) -> None:
        """Note a container (or a pod sandbox) just created from `config`: once started, it
        is checked or learned from (one given a filter is checked even once handing out has
        ended)."""
        if handler in self.handlers and (self.enabled or DIGEST_ANNOTATION in config.annotations):
            # Noted even without a key of its own (Unconfined, Localhost, privileged): its
            # check makes sure no filter reached it that it was not given.
            self._pending[container_id] = Pending(_key_of(config), config.annotations.get(DIGEST_ANNOTATION, ""))

    def to_check(self, container_id: str) -> bool:
        """Whether the container, once started, has a check to run."""
        return container_id in self._pending

    def teaches(self, container_id: str) -> bool:
        """Whether the container, once started, is the one to learn its key's filter from
        (crun compiled its profile and nothing is learned for it yet)."""
        pending = self._pending.get(container_id)
        return pending is not None and not pending.given and self._learns(pending)

    def _learns(self, pending: Pending) -> bool:
        return self.enabled and pending.key is not None and pending.key not in self._learned

    def forget(self, container_id: str) -> None:
        """The container will not be started (or failed to)."""
        self._pending.pop(container_id, None)

    def check(self, container_id: str) -> bool:
        """After the container started (blocking file reads: call in a thread). False when
        crun ran it with a filter not made from its own profile: the caller stops it."""
        pending = self._pending.pop(container_id, None)
        if pending is None:
            return True
        try:
            with open(os.path.join(self.task_dir, container_id, SPEC_FILE)) as f:
                spec = json.load(f)
        except (OSError, ValueError):
            return True  # gone already: nothing runs to check or learn from
        digest = seccomp_digest(spec)
        if pending.given:
            if pending.given == digest:
                return True
            return self._wrong(container_id, "was given a seccomp filter not made from its own profile")
        if ANNOTATION in (spec.get("annotations") or {}):
            # Say, a containerd that copies a sandbox's annotation into its containers.
            return self._wrong(container_id, "runs with a compiled seccomp filter it was not given")
        if digest and self._learns(pending):
            try:
                with open(os.path.join(self.crun_dir, container_id, BPF_FILE), "rb") as f:
                    data = f.read()
            except OSError:
                return True
            if data and len(data) % 8 == 0:  # whole BPF instructions
                while len(self._learned) >= MAX_FILTERS:
                    del self._learned[next(iter(self._learned))]  # the oldest learned
                self._learned[pending.key] = LearnedFilter(digest, base64.b64encode(data).decode())
        return True

    def _wrong(self, container_id: str, what: str) -> bool:
        log.error("container %s %s; no compiled filters are handed out from now on", container_id, what)
        self.enabled = False
        self._learned.clear()
        return False
