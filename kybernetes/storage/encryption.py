"""Encryption at rest: kube-apiserver's EncryptionConfiguration over any `Store`.

This module owns the envelope (what an encrypted value looks like in the store),
the configuration file, and `EncryptingStore`, the `Store` wrapper that encrypts
the values of configured resources on the way in and decrypts them on the way out,
so everything above it (the watch cache, the request pipeline) only sees plain
objects, and everything below it (SQLite, its WAL, an etcd) only sees ciphertext.

The envelope is kube-apiserver's, byte for byte: `k8s:enc:<provider>:v1:<key name>:`
followed by the provider's output, `aescbc` (random 16-byte IV, then AES-CBC with
PKCS#7 padding), `aesgcm` (random 12-byte nonce, then AES-GCM sealed with the storage
key as authenticated data), `secretbox` (random 24-byte nonce, then XSalsa20-Poly1305);
`identity` stores the bytes as they are. The first provider of a resource encrypts
writes; reads pick the provider and key named by the stored prefix, so objects written
under older keys stay readable while their keys stay in the file.

A value that cannot be decrypted (its key was removed or changed) does not stop the
server: the object is left out of lists and watches, recorded in `unreadable`, and a
GET of it answers with the reason (see `unreadable_reason`).
"""

from __future__ import annotations

import abc
import asyncio
import base64
import contextlib
import dataclasses
import logging
import os
import re
import sqlite3
import urllib.parse
from collections.abc import AsyncIterator, Iterable
from typing import Any

import yaml
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kybernetes.storage.interface import (
    Event,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    RevisionMismatchError,
    Store,
    StoreError,
    WatchStream,
)

log = logging.getLogger(__name__)

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"
DEFAULT_CONFIG_NAME = "encryption-config.yaml"
ENC_PREFIX = b"k8s:enc:"
IDENTITY = "identity"
PROVIDERS = ("aescbc", "aesgcm", "secretbox", IDENTITY)
_AES_SIZES = (16, 24, 32)


class EncryptionConfigError(ValueError):
    """The encryption configuration file is not one kube-apiserver would accept."""


class TransformError(StoreError):
    """A stored value that the configured providers cannot turn back into an object."""


# -- the envelope (pure) --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Key:
    name: str
    secret: bytes


class KeyProvider(abc.ABC):
    """One provider with its keys: the first key encrypts, any of them decrypts. Each
    provider (AES-CBC, AES-GCM, secretbox) says how one key seals and opens."""

    name = ""

    def __init__(self, keys: list[Key]) -> None:
        self.keys = keys
        self._by_name = {k.name: self._cipher(k.secret) for k in keys}
        self._first = self._by_name[keys[0].name]
        self._prefix = ENC_PREFIX + f"{self.name}:v1:{keys[0].name}:".encode()

    def label(self) -> str:
        return f"{self.name}:{self.keys[0].name}"

    def _cipher(self, secret: bytes) -> Any:
        return secret

    @abc.abstractmethod
    def seal(self, cipher: Any, data: bytes, aad: bytes) -> bytes: ...

    @abc.abstractmethod
    def open(self, cipher: Any, data: bytes, aad: bytes) -> bytes: ...

    def encrypt(self, data: bytes, aad: bytes) -> bytes:
        return self._prefix + self.seal(self._first, data, aad)

    def decrypt(self, key_name: str, body: bytes, aad: bytes) -> bytes:
        cipher = self._by_name.get(key_name)
        if cipher is None:
            raise TransformError(f"no matching key was found for the provided {self.name} transformer "
                                 f"(the value is under key {key_name!r})")
        return self.open(cipher, body, aad)


class AESCBC(KeyProvider):
    name = "aescbc"

    def _cipher(self, secret: bytes) -> Any:
        return algorithms.AES(secret)

    def seal(self, cipher: Any, data: bytes, aad: bytes) -> bytes:
        iv = os.urandom(16)
        pad = 16 - len(data) % 16
        enc = Cipher(cipher, modes.CBC(iv)).encryptor()
        return iv + enc.update(data + bytes((pad,)) * pad) + enc.finalize()

    def open(self, cipher: Any, data: bytes, aad: bytes) -> bytes:
        if len(data) < 32 or len(data) % 16:
            raise TransformError("the stored data is not a multiple of the block size")
        dec = Cipher(cipher, modes.CBC(data[:16])).decryptor()
        out = dec.update(data[16:]) + dec.finalize()
        pad = out[-1]
        if not 1 <= pad <= 16 or out[-pad:] != bytes((pad,)) * pad:
            raise TransformError("invalid padding on input (wrong key?)")
        return out[:-pad]


class AESGCM_(KeyProvider):  # noqa: N801 - cryptography's class is AESGCM
    name = "aesgcm"

    def _cipher(self, secret: bytes) -> Any:
        return AESGCM(secret)

    def seal(self, cipher: Any, data: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + cipher.encrypt(nonce, data, aad)

    def open(self, cipher: Any, data: bytes, aad: bytes) -> bytes:
        if len(data) < 12 + 16:
            raise TransformError("the stored data was shorter than the required size")
        try:
            return cipher.decrypt(data[:12], data[12:], aad)
        except Exception:  # noqa: BLE001 - cryptography's InvalidTag
            raise TransformError("cipher: message authentication failed (wrong key?)") from None


class Secretbox(KeyProvider):
    name = "secretbox"

    def _cipher(self, secret: bytes) -> Any:
        import nacl.secret

        return nacl.secret.SecretBox(secret)

    def seal(self, cipher: Any, data: bytes, aad: bytes) -> bytes:
        return bytes(cipher.encrypt(data, os.urandom(24)))

    def open(self, cipher: Any, data: bytes, aad: bytes) -> bytes:
        if len(data) < 24 + 16:
            raise TransformError("the stored data was shorter than the required size")
        try:
            return bytes(cipher.decrypt(data))
        except Exception:  # noqa: BLE001 - nacl's CryptoError
            raise TransformError("secretbox: message authentication failed (wrong key?)") from None


_KEY_PROVIDERS: dict[str, type[KeyProvider]] = {"aescbc": AESCBC, "aesgcm": AESGCM_, "secretbox": Secretbox}


def split_envelope(value: bytes) -> tuple[str, str, bytes] | None:
    """(provider, key name, ciphertext) of an encrypted value; None for a plain one."""
    if value[:8] != ENC_PREFIX:
        return None
    parts = value[8:].split(b":", 3)
    if len(parts) < 4 or parts[1] != b"v1":
        return parts[0].decode(errors="replace"), "", b""
    return parts[0].decode(errors="replace"), parts[2].decode(errors="replace"), parts[3]


def value_label(value: bytes) -> str:
    """Which provider and key a stored value is under: `aescbc:key1`, or `identity`."""
    env = split_envelope(value)
    if env is None:
        return IDENTITY
    return f"{env[0]}:{env[1]}"


class Transformer:
    """The providers of one resource entry, in order: the first writes, all read."""

    def __init__(self, providers: list[KeyProvider | None]) -> None:
        self.providers = providers  # None: identity
        self.writer = providers[0]
        self.reads_plain = None in providers
        self._by_name = {p.name: p for p in providers if p is not None}

    def write_label(self) -> str:
        return self.writer.label() if self.writer is not None else IDENTITY

    def to_storage(self, key: str, data: bytes) -> bytes:
        if self.writer is None:
            return data
        return self.writer.encrypt(data, key.encode())

    def from_storage(self, key: str, value: bytes) -> bytes:
        env = split_envelope(value)
        if env is None:
            if not self.reads_plain:
                raise TransformError("no matching prefix found: the value is not encrypted and the identity "
                                     "provider is not configured for it")
            return value
        provider = self._by_name.get(env[0])
        if provider is None:
            raise TransformError(f"no matching prefix found: the value is under k8s:enc:{env[0]}:v1:, "
                                 "a provider not configured for it")
        out = provider.decrypt(env[1], env[2], key.encode())
        if out[:1] != b"{":
            # AES-CBC is not authenticated: a wrong key of the right size mostly fails the
            # padding check, and otherwise yields bytes that are not a stored object.
            raise TransformError(f"the value decrypted with {env[0]} key {env[1]!r} is not an object (wrong key?)")
        return out

    def stale(self, value: bytes) -> bool:
        """Whether a stored value is not under the key writes use now."""
        return value_label(value) != self.write_label()


# -- the configuration file ---------------------------------------------------------------------


def _matcher(resource: str) -> tuple[str, str]:
    """(group, plural) of a configured resource; `*` matches any. `secrets` is the core
    group's, `deployments.apps` the apps group's, `*.apps` every resource of apps,
    `*.` every core resource and `*.*` everything."""
    if resource in ("*", ""):
        raise EncryptionConfigError(f"resource {resource!r} is not valid: use '*.*' for every resource")
    plural, _, group = resource.partition(".")
    if plural != "*" and not re.fullmatch(r"[a-z0-9][a-z0-9-]*", plural):
        raise EncryptionConfigError(f"resource {resource!r} is not valid: expected <resource>.<group>")
    return group, plural


def _key_group(key: str) -> tuple[str, str] | None:
    """(group, plural) of a storage key `/registry/<group|core>/<plural>/...`."""
    parts = key.split("/", 4)
    if len(parts) < 4 or parts[1] != "registry":
        return None
    return ("" if parts[2] == "core" else parts[2]), parts[3]


def _decode_key(provider: str, raw: Any, where: str) -> Key:
    if not isinstance(raw, dict) or not raw.get("name") or not raw.get("secret"):
        raise EncryptionConfigError(f"{where}: each key needs a name and a secret")
    name = str(raw["name"])
    if ":" in name:
        raise EncryptionConfigError(f"{where}: key name {name!r} may not contain ':'")
    try:
        secret = base64.b64decode(str(raw["secret"]), validate=True)
    except ValueError:
        raise EncryptionConfigError(f"{where}: could not obtain secret for named key {name}: "
                                    "not valid base64") from None
    sizes = (32,) if provider == "secretbox" else _AES_SIZES
    if len(secret) not in sizes:
        raise EncryptionConfigError(f"{where}: key {name} is {len(secret)} bytes; {provider} needs "
                                    + " or ".join(str(s) for s in sizes))
    return Key(name, secret)


def _decode_provider(raw: Any, where: str) -> KeyProvider | None:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise EncryptionConfigError(f"{where}: a provider is one of {', '.join(PROVIDERS)}")
    (kind, body), = raw.items()
    if kind == IDENTITY:
        return None
    if kind == "kms":
        raise EncryptionConfigError(f"{where}: the kms provider is not supported")
    if kind not in _KEY_PROVIDERS:
        raise EncryptionConfigError(f"{where}: unknown provider {kind!r} (one of {', '.join(PROVIDERS)})")
    keys_raw = (body or {}).get("keys") if isinstance(body, dict) else None
    if not keys_raw or not isinstance(keys_raw, list):
        raise EncryptionConfigError(f"{where}: {kind} provider has no valid keys")
    keys = [_decode_key(kind, k, f"{where}.{kind}.keys[{i}]") for i, k in enumerate(keys_raw)]
    names = [k.name for k in keys]
    if len(set(names)) != len(names):
        raise EncryptionConfigError(f"{where}: {kind} key names must be unique")
    return _KEY_PROVIDERS[kind](keys)


class EncryptionConfig:
    """Which resources are encrypted and how: the parsed file."""

    def __init__(self, entries: list[tuple[list[tuple[str, str]], Transformer]]) -> None:
        self.entries = entries
        self._cache: dict[tuple[str, str], Transformer | None] = {}

    def for_resource(self, group: str, plural: str) -> Transformer | None:
        gp = (group, plural)
        try:
            return self._cache[gp]
        except KeyError:
            pass
        found = None
        for matchers, transformer in self.entries:
            if any((g == "*" or g == group) and (p == "*" or p == plural) for g, p in matchers):
                found = transformer
                break
        self._cache[gp] = found
        return found

    def for_key(self, key: str) -> Transformer | None:
        gp = _key_group(key)
        return self.for_resource(*gp) if gp is not None else None

    def prefixes(self) -> list[str]:
        """Store prefixes that hold every configured resource (may hold others too)."""
        out: set[str] = set()
        for matchers, _t in self.entries:
            for group, plural in matchers:
                if group == "*":
                    return ["/registry/"]
                base = f"/registry/{group or 'core'}/"
                out.add(base if plural == "*" else f"{base}{plural}/")
        # A prefix inside another is already covered by it.
        return sorted(p for p in out if not any(p != q and p.startswith(q) for q in out))


def parse_config(text: str) -> EncryptionConfig:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise EncryptionConfigError(f"not YAML: {e}") from None
    return config_from_dict(doc)


def config_from_dict(doc: Any) -> EncryptionConfig:
    if not isinstance(doc, dict):
        raise EncryptionConfigError("the file is empty or not an object")
    if doc.get("kind") != KIND or doc.get("apiVersion") != API_VERSION:
        raise EncryptionConfigError(f"expected apiVersion {API_VERSION} and kind {KIND}, got "
                                    f"{doc.get('apiVersion')!r} {doc.get('kind')!r}")
    entries = []
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(doc.get("resources") or []):
        where = f"resources[{i}]"
        if not isinstance(item, dict) or not item.get("resources") or not item.get("providers"):
            raise EncryptionConfigError(f"{where}: needs resources and providers")
        matchers = [_matcher(str(r)) for r in item["resources"]]
        for m in matchers:
            if m in seen:
                raise EncryptionConfigError(f"{where}: resource {m[1] + ('.' + m[0] if m[0] else '')!r} "
                                            "is listed twice")
            seen.add(m)
        providers = [_decode_provider(p, f"{where}.providers[{j}]") for j, p in enumerate(item["providers"])]
        entries.append((matchers, Transformer(providers)))
    return EncryptionConfig(entries)


def load_config(path: str) -> EncryptionConfig:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise EncryptionConfigError(f"error opening encryption provider configuration file {path!r}: "
                                    f"{e.strerror or e}") from None
    if not text.strip():
        raise EncryptionConfigError(f"encryption provider configuration file {path!r} is empty")
    try:
        return parse_config(text)
    except EncryptionConfigError as e:
        raise EncryptionConfigError(f"{path}: {e}") from None


def new_secret(provider: str = "aescbc") -> str:
    del provider  # every provider takes a 32-byte key
    return base64.b64encode(os.urandom(32)).decode()


def default_config_doc(resources: Iterable[str] = ("secrets",)) -> dict[str, Any]:
    """What `kyb server` writes at first start: a fresh AES-CBC key for Secrets, and
    identity last so Secrets stored before encryption was on stay readable (the
    server rewrites them under the key)."""
    return {"apiVersion": API_VERSION, "kind": KIND, "resources": [{
        "resources": list(resources),
        "providers": [{"aescbc": {"keys": [{"name": "key1", "secret": new_secret()}]}}, {IDENTITY: {}}],
    }]}


def write_private(path: str, text: str) -> None:
    """Replace `path` with `text`, readable by its owner only, atomically."""
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def ensure_default_config(path: str) -> bool:
    """Write the default configuration if `path` does not exist; True when written."""
    if os.path.exists(path):
        return False
    write_private(path, yaml.safe_dump(default_config_doc(), sort_keys=False))
    return True


def _next_key_name(names: Iterable[str]) -> str:
    numbers = [int(m.group(1)) for n in names if (m := re.fullmatch(r"key(\d+)", n))]
    return f"key{max(numbers, default=0) + 1}"


def rotate_doc(doc: dict[str, Any]) -> list[str]:
    """Put a new random key first in the first provider of every resource entry (the
    old keys stay, for reads); returns the new `provider:key` labels. Refuses an entry
    whose first provider is identity: it stores plain text and has no key to rotate."""
    config_from_dict(doc)  # refuse a file the server would not load
    labels = []
    for i, item in enumerate(doc.get("resources") or []):
        first = item["providers"][0]
        (kind, body), = first.items()
        if kind == IDENTITY:
            raise EncryptionConfigError(
                f"resources[{i}] ({', '.join(map(str, item['resources']))}): the first provider is identity, which "
                "stores plain text; put an aescbc, aesgcm or secretbox provider first to encrypt")
        all_names = [k["name"] for p in item["providers"] for b in p.values() if isinstance(b, dict)
                     for k in b.get("keys") or []]
        name = _next_key_name(all_names)
        body["keys"].insert(0, {"name": name, "secret": new_secret(kind)})
        labels.append(f"{kind}:{name}")
    config_from_dict(doc)
    return labels


# -- the store wrapper --------------------------------------------------------------------------


def _transform_message(key: str, e: Exception) -> str:
    return f'unable to transform key "{key}": {e}'


class EncryptingStore:
    """A `Store` whose configured resources are encrypted in the store below it."""

    def __init__(self, inner: Store, config: EncryptionConfig, path: str = "") -> None:
        self.inner = inner
        self.config = config
        self.path = path  # the file `config` came from: reloaded when it changes
        self._stamp = config_stamp(path) if path else None
        self.generation = 0  # configurations loaded since the first
        # key -> why it cannot be read: left out of lists and watches, a GET tells why.
        self.unreadable: dict[str, str] = {}
        self.current_revision = inner.current_revision
        self.compacted_revision = inner.compacted_revision

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def set_config(self, config: EncryptionConfig) -> None:
        self.config = config

    def reload_if_changed(self) -> bool:
        """Load the file again if it changed since it was last read; True when a new
        configuration is in force (a bad file is logged and the last good one kept)."""
        if not self.path:
            return False
        stamp = config_stamp(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            self.config = load_config(self.path)
        except EncryptionConfigError as e:
            log.error("encryption at rest: keeping the last configuration: %s", e)
            return False
        self.generation += 1
        log.warning("encryption at rest: reloaded %s", self.path)
        return True

    # -- value transforms -------------------------------------------------------------

    def _encrypt(self, key: str, value: bytes) -> bytes:
        t = self.config.for_key(key)
        return value if t is None else t.to_storage(key, value)

    def _decrypt(self, key: str, value: bytes) -> bytes:
        """Raises TransformError."""
        try:
            return self._decrypt_once(key, value)
        except TransformError:
            # Another process (the primary, `kyb secrets rotate`) may have moved to a
            # key this one has not loaded yet.
            if not self.reload_if_changed():
                raise
        return self._decrypt_once(key, value)

    def _decrypt_once(self, key: str, value: bytes) -> bytes:
        t = self.config.for_key(key)
        if t is None:
            if value[:8] == ENC_PREFIX:
                raise TransformError("the value is encrypted but its resource is not in the encryption "
                                     "configuration")
            return value
        return t.from_storage(key, value)

    def _plain_kv(self, kv: KeyValue) -> KeyValue | None:
        """`kv` with its value decrypted; None (and recorded) when it cannot be."""
        try:
            plain = self._decrypt(kv.key, kv.value)
        except TransformError as e:
            self._unreadable(kv.key, e)
            return None
        if self.unreadable:
            self.unreadable.pop(kv.key, None)
        return kv if plain is kv.value else KeyValue(kv.key, plain, kv.mod_revision, kv.create_revision)

    def _unreadable(self, key: str, e: Exception) -> None:
        msg = _transform_message(key, e)
        if self.unreadable.get(key) != msg:
            log.error("%s", msg)
        self.unreadable[key] = msg

    def _mismatch(self, e: RevisionMismatchError) -> RevisionMismatchError:
        cur = self._plain_kv(e.current)
        return RevisionMismatchError(cur if cur is not None else dataclasses.replace(e.current, value=b""))

    # -- Store ------------------------------------------------------------------------

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        kv = await self.inner.get(key, revision)
        if kv is None:
            return None
        try:
            plain = self._decrypt(key, kv.value)
        except TransformError as e:
            self._unreadable(key, e)
            raise TransformError(_transform_message(key, e)) from None
        return kv if plain is kv.value else KeyValue(key, plain, kv.mod_revision, kv.create_revision)

    async def list(self, prefix: str, revision: int = 0, limit: int = 0, start_after: str = "") -> ListResult:
        items: list[KeyValue] = []
        while True:
            res = await self.inner.list(prefix, revision, limit - len(items) if limit else 0, start_after)
            for kv in res.items:
                plain = self._plain_kv(kv)
                if plain is not None:
                    items.append(plain)
            # A page short of unreadable objects is filled from the same snapshot, so a
            # caller paging by the last key it got always moves on.
            if not res.more or not res.items or len(items) >= limit:
                return ListResult(items, res.revision, res.more)
            revision, start_after = res.revision, res.items[-1].key

    async def create(self, key: str, value: bytes) -> KeyValue:
        kv = await self.inner.create(key, self._encrypt(key, value))
        self.unreadable.pop(key, None)
        return KeyValue(key, value, kv.mod_revision, kv.create_revision)

    async def update(self, key: str, value: bytes, expected_revision: int = 0) -> KeyValue:
        try:
            kv = await self.inner.update(key, self._encrypt(key, value), expected_revision)
        except RevisionMismatchError as e:
            raise self._mismatch(e) from None
        self.unreadable.pop(key, None)
        return KeyValue(key, value, kv.mod_revision, kv.create_revision)

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        try:
            kv = await self.inner.delete(key, expected_revision)
        except RevisionMismatchError as e:
            raise self._mismatch(e) from None
        self.unreadable.pop(key, None)
        try:
            plain = self._decrypt(key, kv.value)
        except TransformError:
            plain = b""  # deleting an unreadable object works; its last value is unknown
        return KeyValue(key, plain, kv.mod_revision, kv.create_revision)

    def watch(self, prefix: str, from_revision: int) -> WatchStream:
        return _DecryptingWatch(self, self.inner.watch(prefix, from_revision))

    async def compact(self, revision: int) -> None:
        await self.inner.compact(revision)

    def plain_event(self, ev: Event) -> Event:
        kv = ev.kv
        plain = self._plain_kv(kv) if kv.value else kv
        prev = self._plain_kv(ev.prev) if ev.prev is not None and ev.prev.value else ev.prev
        if plain is None:
            # Watchers see it go: it is left out of lists too, and a GET tells why.
            return Event("DELETE", KeyValue(kv.key, b"", kv.mod_revision, kv.create_revision), prev)
        if plain is kv and prev is ev.prev:
            return ev
        return Event(ev.type, plain, prev, ev.created)


class _DecryptingWatch:
    def __init__(self, store: EncryptingStore, inner: WatchStream) -> None:
        self._store = store
        self._inner = inner

    def __aiter__(self) -> AsyncIterator[list[Event]]:
        return self

    async def __anext__(self) -> list[Event]:
        batch = await self._inner.__anext__()
        plain = self._store.plain_event
        return [plain(ev) for ev in batch]

    @property
    def progress_revision(self) -> int:
        # The inner watch's bookmark, when it has them (etcd's progress notifications).
        return int(getattr(self._inner, "progress_revision", 0))

    async def aclose(self) -> None:
        await self._inner.aclose()


def unreadable_reason(store: object, key: str) -> str | None:
    """Why the object at `key` cannot be read, when the store could not decrypt it."""
    unreadable = getattr(store, "unreadable", None)
    return unreadable.get(key) if unreadable else None


# -- rewriting objects under older keys --------------------------------------------------------


async def rewrite_stale(enc: EncryptingStore, writer: Store | None = None, page: int = 500,
                        parallel: int = 32) -> tuple[int, int]:
    """Store again, under the key writes use now, every configured object that is under
    another key (or plain while a key provider is first, or encrypted while identity is
    first). `writer` is the store the server writes through (it may publish revisions);
    its values go through `enc`. Returns (rewritten, unreadable)."""
    writer = writer if writer is not None else enc
    rewritten = 0
    failed = 0
    config = enc.config

    async def rewrite(kv: KeyValue, plain: bytes) -> int:
        try:
            await writer.update(kv.key, plain, expected_revision=kv.mod_revision)
        except (RevisionMismatchError, KeyNotFoundError):
            return 0  # written or deleted meanwhile, under the current key
        return 1

    for prefix in config.prefixes():
        after = ""
        while True:
            res = await enc.inner.list(prefix, limit=page, start_after=after)
            jobs = []
            for kv in res.items:
                t = config.for_key(kv.key)
                if t is None or (not t.stale(kv.value) and kv.key not in enc.unreadable):
                    continue
                try:
                    plain = t.from_storage(kv.key, kv.value)
                except TransformError as e:
                    enc._unreadable(kv.key, e)
                    failed += 1
                    continue
                jobs.append(rewrite(kv, plain))
            for i in range(0, len(jobs), parallel):
                rewritten += sum(await asyncio.gather(*jobs[i:i + parallel]))
            if not res.more or not res.items:
                break
            after = res.items[-1].key
    return rewritten, failed


def config_stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


async def follow_config(enc: EncryptingStore, writer: Store | None, interval: float = 1.0) -> None:
    """Keep `enc` on its file's configuration: reload it when it changes (a bad file is
    logged and the last good configuration kept) and, with a `writer` (the primary
    server), rewrite the objects under older keys after each load, the first included."""
    while True:
        seen = enc.generation
        if writer is not None:
            try:
                done, failed = await rewrite_stale(enc, writer)
                if done or failed:
                    log.warning("encryption at rest: rewrote %d objects under the current keys; %d cannot be "
                                "decrypted", done, failed)
            except StoreError as e:
                log.error("encryption at rest: rewriting objects under older keys failed: %s", e)
            except Exception:  # noqa: BLE001 - the next configuration change tries again
                log.exception("encryption at rest: rewriting objects under older keys failed")
        while True:
            await asyncio.sleep(interval)
            enc.reload_if_changed()
            if enc.generation != seen:
                break


# -- status: which key each stored object is under ----------------------------------------------


def stored_labels(db_path: str, prefix: str = "/registry/") -> list[tuple[str, str]]:
    """(key, provider:key label) of every live object under `prefix` in a SQLite store,
    read from the file (a running server's store is read alongside it, read-only)."""
    uri = "file:" + urllib.parse.quote(os.path.abspath(db_path)) + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        conn.execute("PRAGMA busy_timeout=10000")
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        rows = conn.execute(
            "SELECT k.name, substr(k.value, 1, 80) FROM kv AS k WHERE k.name >= ? AND k.name < ? AND k.deleted = 0"
            " AND k.id = (SELECT MAX(m.id) FROM kv AS m WHERE m.name = k.name) ORDER BY k.name",
            (prefix, end)).fetchall()
    finally:
        conn.close()
    return [(name, value_label(bytes(head or b""))) for name, head in rows]


@dataclasses.dataclass
class StatusRow:
    resource: str
    label: str
    objects: int
    current: bool


def resource_name(key: str) -> str:
    gp = _key_group(key)
    if gp is None:
        return key
    return gp[1] if not gp[0] else f"{gp[1]}.{gp[0]}"


def summarize(labels: list[tuple[str, str]], config: EncryptionConfig) -> list[StatusRow]:
    """Objects per resource and provider:key, for configured resources (and encrypted
    objects of resources no longer configured); `current` when writes use that key."""
    counts: dict[tuple[str, str], int] = {}
    current: dict[tuple[str, str], bool] = {}
    for key, label in labels:
        t = config.for_key(key)
        if t is None and label == IDENTITY:
            continue
        gk = (resource_name(key), label)
        counts[gk] = counts.get(gk, 0) + 1
        current[gk] = t is not None and t.write_label() == label
    return [StatusRow(r, lab, n, current[(r, lab)]) for (r, lab), n in sorted(counts.items())]
