"""Servers joining servers on embedded etcd (`kyb server --server URL --token T`), and the
cluster's bootstrap data kept in the store.

Owns the API server's ``/v1-kyb/server-bootstrap`` endpoint (answered only to a request
carrying the server token: GET gives the sealed bootstrap data, POST also adds the caller as
an etcd learner), the joining side (the CA pinned by the token's hash, then the endpoint),
the reconciliation of a server's shared files with the store's copy at every start, learner
promotion, and member removal (a deleted server Node's, and `kyb etcd remove-member`).

The joiner cannot reach the other members' etcd client ports (they listen on loopback), so the
server it joins through adds it as a member; each API server then talks to its own member
only, as k3s' do.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from kybernetes.api import bootstraptoken
from kybernetes.storage import bootstrapdata as bd
from kybernetes.storage.etcd import EtcdStore
from kybernetes.storage.etcdpb import rpc_pb2
from kybernetes.storage.interface import KeyExistsError, RevisionMismatchError, StoreError

log = logging.getLogger("kybernetes.serverjoin")

PATH = "/v1-kyb/server-bootstrap"
# On a server's Node (its embedded agent registers with it): deleting that Node removes the
# server's etcd member, as k3s does.
MEMBER_LABEL = "etcd.kybernetes.io/member"
NODES = "/registry/core/nodes/"


class JoinError(RuntimeError):
    """Joining failed; the message says why and what to do."""


# -- decisions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    id: int
    name: str  # empty until the member has started
    peer_urls: tuple[str, ...]
    is_learner: bool = False


def to_promote(members: Iterable[Member]) -> list[Member]:
    """Learners that have started (they have a name): promotion succeeds once one has caught
    up with the leader, and is refused (harmlessly) before."""
    return [m for m in members if m.is_learner and m.name]


def plan_member_add(members: Iterable[Member], name: str, peer_url: str) -> tuple[list[int], bool]:
    """(members to remove first, whether to add) so that `name` at `peer_url` is a member.

    Asking again (a joiner that died before its member started) finds its member there;
    a member of another name at the same peer URL is a server that ran there before and
    whose data dir is gone: it can never start again, and would count against quorum.
    """
    remove: list[int] = []
    for m in members:
        if peer_url in m.peer_urls:
            if m.name in ("", name):
                return remove, False
            remove.append(m.id)
    return remove, True


def initial_members(members: Iterable[Member], name: str, peer_url: str) -> tuple[tuple[str, str], ...]:
    """The --initial-cluster list of a joining member: every member by name (the joiner's own,
    not started yet, has none) and first peer URL."""
    out = []
    for m in members:
        if not m.peer_urls:
            continue
        out.append((name if peer_url in m.peer_urls else m.name, m.peer_urls[0]))
    return tuple(out)


def departed_member(event_type: str, key: str, old: dict[str, Any] | None, own: str) -> str:
    """The etcd member to remove for this change: a deleted Node's member label, unless it
    names this server's own member (a server never removes itself); "" otherwise."""
    if event_type != "DELETED" or not key.startswith(NODES) or old is None:
        return ""
    name = str(((old.get("metadata") or {}).get("labels") or {}).get(MEMBER_LABEL, ""))
    return name if name and name != own else ""


def bearer(header: str | None) -> str:
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip()
    return ""


# -- etcd membership ---------------------------------------------------------------------------


def _members(resp: Any) -> list[Member]:
    return [Member(m.ID, m.name, tuple(m.peerURLs), m.isLearner) for m in resp.members]


async def list_members(store: EtcdStore) -> list[Member]:
    resp = await store.rpc(lambda s: s.cluster.MemberList(rpc_pb2.MemberListRequest(linearizable=True),
                                                          timeout=store.call_timeout))
    return _members(resp)


async def promote_learners(store: EtcdStore) -> list[str]:
    """Promote every started learner that has caught up; the names promoted."""
    done = []
    for m in to_promote(await list_members(store)):
        try:
            await store.rpc(lambda s, mid=m.id: s.cluster.MemberPromote(rpc_pb2.MemberPromoteRequest(ID=mid),
                                                                        timeout=store.call_timeout))
        except StoreError as e:
            log.info("etcd learner %s not promoted yet: %s", m.name, e)
            continue
        log.warning("promoted etcd learner %s to a voting member", m.name)
        done.append(m.name)
    return done


class MemberRemover:
    """Removes the etcd member of a server whose Node was deleted (k3s' way to remove a
    server: stop it for good, then `kubectl delete node`). Every server runs one; the
    first to act wins and the others find the member gone."""

    def __init__(self, cache: Any, store: EtcdStore, own: str) -> None:
        self.store = store
        self.own = own
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        cache.add_listener(self._on_event)

    def _on_event(self, ev: Any) -> None:
        name = departed_member(ev.type, ev.key, ev.old.obj if ev.old is not None else None, self.own)
        if name:
            self.queue.put_nowait(name)

    async def run(self) -> None:
        while True:
            name = await self.queue.get()
            try:
                m = await remove_member(self.store, name)
            except LookupError:
                continue  # another server removed it, or it never was a member
            except StoreError as e:
                log.error("could not remove etcd member %s of a deleted Node: %s", name, e)
                continue
            log.warning("removed etcd member %s (%x): its server's Node was deleted", name, m.id)


async def keep_promoting(store: EtcdStore, interval: float = 1.0) -> None:
    """A server's loop promoting the learners other servers' joins added (as k3s' servers do)."""
    while True:
        try:
            await promote_learners(store)
        except StoreError as e:
            log.info("cannot list etcd members: %s", e)
        await asyncio.sleep(interval)


async def add_member(store: EtcdStore, name: str, peer_url: str) -> tuple[tuple[str, str], ...]:
    """Make `name` at `peer_url` a learner (see `plan_member_add`); the joiner's --initial-cluster.

    A learner does not count towards quorum, so a joiner that never starts its member costs
    the cluster nothing; the servers promote it once it has caught up (`keep_promoting`)."""
    remove, add = plan_member_add(await list_members(store), name, peer_url)
    for mid in remove:
        log.warning("removing etcd member %x: another server's member now at %s", mid, peer_url)
        await remove_member_id(store, mid)
    if add:
        await store.rpc(lambda s: s.cluster.MemberAdd(rpc_pb2.MemberAddRequest(peerURLs=[peer_url], isLearner=True),
                                                      timeout=store.call_timeout))
        log.warning("added etcd learner %s at %s", name, peer_url)
    return initial_members(await list_members(store), name, peer_url)


async def remove_member_id(store: EtcdStore, member_id: int) -> None:
    await store.rpc(lambda s: s.cluster.MemberRemove(rpc_pb2.MemberRemoveRequest(ID=member_id),
                                                     timeout=store.call_timeout))


async def remove_member(store: EtcdStore, name: str) -> Member:
    """Remove the member called `name` (or whose id in hex it is); LookupError if none."""
    for m in await list_members(store):
        if name in (m.name, f"{m.id:x}"):
            await remove_member_id(store, m.id)
            return m
    raise LookupError(f"no etcd member {name!r}")


# -- the endpoint ------------------------------------------------------------------------------


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    return web.Response(status=code, body=json.dumps(body), content_type="application/json")


class BootstrapEndpoint:
    """``/v1-kyb/server-bootstrap`` of a server on etcd. Outside the API's authentication:
    the server token is the only credential it takes, and every other gets 401."""

    def __init__(self, store: EtcdStore, secret: str, *, membership: bool) -> None:
        self.store = store
        self.secret = secret
        self.membership = membership  # this server runs an embedded member (can add others)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not bd.token_matches(self.secret, bearer(request.headers.get("Authorization"))):
            return _status(401, "Unauthorized", "this endpoint needs the cluster's server token")
        if request.method not in ("GET", "POST"):
            return _status(405, "MethodNotAllowed", f"{request.method} is not supported here")
        found = await self.store.get(bd.storage_key(self.secret))
        if found is None:
            return _status(503, "ServiceUnavailable", "the cluster's bootstrap data is not stored yet")
        out: dict[str, Any] = {"bootstrap": base64.b64encode(found.value).decode()}
        if self.membership and request.method == "GET":
            out["learners"] = [m.name for m in await list_members(self.store) if m.is_learner]
        if request.method == "POST":
            if not self.membership:
                return _status(400, "BadRequest", "this server runs on an external etcd: no member to join")
            try:
                body = await request.json()
                name, peer_url = str(body["name"]), str(body["peerURL"])
            except (ValueError, KeyError, TypeError):
                return _status(400, "BadRequest", 'want {"name": ..., "peerURL": "https://HOST:PORT"}')
            if not name or not peer_url.startswith("https://"):
                return _status(400, "BadRequest", "name must not be empty and peerURL must be https://HOST:PORT")
            out["members"] = [list(m) for m in await add_member(self.store, name, peer_url)]
        return web.Response(body=json.dumps(out), content_type="application/json")


# -- the joining side --------------------------------------------------------------------------


def _unverified() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass(frozen=True)
class Joined:
    files: dict[str, bytes]
    members: tuple[tuple[str, str], ...]
    ca_pem: bytes


async def join_cluster(server: str, token: str, name: str, peer_url: str, ca_cert_hash: str = "",
                       timeout: float = 60.0) -> Joined:
    """Fetch the cluster's bootstrap data from `server` and become an etcd member through it."""
    try:
        tok = bd.parse_token(token)
    except ValueError as e:
        raise JoinError(str(e)) from None
    pin = ca_cert_hash or tok.ca_hash
    if not pin:
        raise JoinError("refusing to trust the server's CA unverified: give the full token "
                        "(K10<hash>::server:<secret>, in the first server's <data-dir>/token) or --ca-cert-hash")
    t = aiohttp.ClientTimeout(total=timeout)
    try:
        async with aiohttp.ClientSession(timeout=t) as s:
            async with s.get(server + "/cacerts", ssl=_unverified()) as resp:
                if resp.status != 200:
                    raise JoinError(f"{server}/cacerts answered {resp.status}")
                ca_pem = await resp.read()
            try:
                pinned = bootstraptoken.hash_matches(ca_pem, pin)
            except ValueError as e:
                raise JoinError(str(e)) from None
            if not pinned:
                raise JoinError(f"the server's CA certificate does not match {pin}: not joining")
            verified = ssl.create_default_context(cadata=ca_pem.decode())
            async with s.post(server + PATH, json={"name": name, "peerURL": peer_url}, ssl=verified,
                              headers={"Authorization": f"Bearer {token}"}) as resp:
                body = await resp.read()
                if resp.status == 401:
                    raise JoinError(f"{server} refused the token: it is not this cluster's server token")
                if resp.status != 200:
                    raise JoinError(f"{server}{PATH} answered {resp.status}: {body[:500].decode(errors='replace')}")
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        raise JoinError(f"cannot reach {server}: {e}") from None
    doc = json.loads(body)
    try:
        files = bd.unseal(base64.b64decode(doc["bootstrap"]), tok.secret)
    except bd.BootstrapError as e:
        raise JoinError(str(e)) from None
    return Joined(files, tuple((str(n), str(u)) for n, u in doc.get("members", [])), ca_pem)


async def wait_promoted(server: str, token: str, name: str, ca_pem: bytes, timeout: float = 120.0,
                        interval: float = 0.5) -> None:
    """Wait until the servers have promoted this server's learner `name` (its member serves no
    client reads or writes before): asked of `server`, which lists its cluster's learners."""
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = ""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        while True:
            try:
                async with s.get(server + PATH, ssl=ctx, headers={"Authorization": f"Bearer {token}"}) as resp:
                    if resp.status == 200:
                        if name not in (await resp.json()).get("learners", [name]):
                            return
                        last = "still a learner"
                    else:
                        last = f"{server}{PATH} answered {resp.status}"
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as e:
                last = f"cannot reach {server}: {e}"
            if loop.time() > deadline:
                raise JoinError(f"etcd member {name} not promoted after {timeout:.0f}s ({last})")
            await asyncio.sleep(interval)


# -- the files on disk and the store's copy ----------------------------------------------------


def read_local(data_dir: str) -> dict[str, bytes]:
    out = {}
    for rel in bd.SHARED_FILES:
        try:
            with open(os.path.join(data_dir, rel), "rb") as f:
                out[rel] = f.read()
        except FileNotFoundError:
            pass
    return out


def _write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = path + ".tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_files(data_dir: str, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        if rel in bd.SHARED_FILES:
            _write(os.path.join(data_dir, rel), data)


def read_synced(data_dir: str) -> dict[str, str]:
    try:
        with open(os.path.join(data_dir, bd.SYNCED_FILE), "rb") as f:
            return dict(json.load(f))
    except (FileNotFoundError, ValueError, TypeError):
        return {}


def write_synced(data_dir: str, files: dict[str, bytes]) -> None:
    _write(os.path.join(data_dir, bd.SYNCED_FILE),
           json.dumps({p: bd.digest(d) for p, d in sorted(files.items())}).encode())


def read_token(data_dir: str) -> str:
    try:
        with open(os.path.join(data_dir, bd.TOKEN_FILE), encoding="utf-8") as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


def write_token(data_dir: str, token: str) -> None:
    _write(os.path.join(data_dir, bd.TOKEN_FILE), (token + "\n").encode())


async def sync_bootstrap(store: EtcdStore, data_dir: str, secret: str) -> str:
    """Make the server's shared files and the store's sealed copy agree (see `bootstrapdata.plan`);
    returns what happened, for the log. BootstrapError when the store holds another token's
    cluster or a file changed on both sides."""
    key = bd.storage_key(secret)
    found = await store.get(key)
    if found is None:
        others = await store.list(bd.PREFIX)
        if others.items:
            raise bd.WrongToken("the store already holds a cluster whose bootstrap data this token does not "
                                "open: give that cluster's --token (its first server's <data-dir>/token)")
    stored = bd.unseal(found.value, secret) if found is not None else None
    local = read_local(data_dir)
    p = bd.plan(local, stored, read_synced(data_dir))
    if p.conflicts:
        raise bd.BootstrapError(
            f"{', '.join(p.conflicts)} changed both here and in the cluster since this server last synced: "
            f"keep one copy (remove this server's to take the cluster's)")
    merged = p.merged(local)
    write_files(data_dir, p.to_disk)
    what = []
    if p.to_disk:
        what.append("took " + ", ".join(sorted(p.to_disk)) + " from the cluster")
    if p.to_store:
        blob = bd.seal(merged, secret)
        try:
            if found is None:
                await store.create(key, blob)
            else:
                await store.update(key, blob, found.mod_revision)
        except (KeyExistsError, RevisionMismatchError):
            # Another server wrote it meanwhile: start over from its copy.
            return await sync_bootstrap(store, data_dir, secret)
        what.append("stored the shared files in the cluster" if found is None
                    else "stored this server's newer shared files in the cluster")
    write_synced(data_dir, merged)
    return "; ".join(what) or "shared files agree with the cluster's"
