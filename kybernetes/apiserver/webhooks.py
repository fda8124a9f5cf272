"""Dynamic admission webhooks, the shell: the webhook configurations compiled from the
watch cache, and the HTTPS calls to them.

Mutating webhooks run after the built-in mutating admission, in order, each patch
applied before the next is called (and the object re-defaulted); with
`reinvocationPolicy: IfNeeded` a webhook is called once more when a later one changed
the object. Validating webhooks run concurrently after the built-in validation. The
decisions (matching, the review, the answer) are `kybernetes.api.webhooks`.

Where a call goes: a `service` reference is resolved to a ready endpoint of its
EndpointSlices (as kube-apiserver's service resolver with aggregator routing does: the
server need not be on the pod network's service proxy), dialled with the service's DNS
name `NAME.NS.svc` as the TLS server name and checked against the configuration's
caBundle; a `url` is dialled at the address its host resolves to. Both kinds of
address must pass the server's rules for dialling on a client's behalf
(`agentdial.refusal`: no loopback, link-local or the server's own endpoint)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import ssl
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from kybernetes.api import validation
from kybernetes.api import webhooks as wh
from kybernetes.api.errors import ApiError
from kybernetes.api.registry import Registry, ResourceInfo
from kybernetes.apiserver import objectmeta as om
from kybernetes.apiserver.agentdial import is_local_ip, no_redirects, refusal, resolve_host
from kybernetes.apiserver.resources import ResourceService, WriteContext
from kybernetes.apiserver.watchcache import CacheEvent, WatchCache

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ADMISSION_GROUP = "admissionregistration.k8s.io"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# Who the server's own writes (no request behind them) are, as upstream's loopback client.
_SERVER_USER = wh.user_info("system:apiserver", "", ["system:authenticated", "system:masters"], {})


class CallFailed(Exception):
    """A webhook could not be called, or answered nonsense: `reason` as upstream words it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _why(exc: BaseException, address: str) -> str:
    """Go's words for a failed dial or request, which upstream's message carries."""
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return "context deadline exceeded"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"tls: failed to verify certificate: {exc.certificate_error}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return f"dial tcp {address}: connect: connection refused"
        return f"dial tcp {address}: {exc.os_error.strerror or exc.os_error}"
    return str(exc) or type(exc).__name__


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class WebhookAdmission:
    """The server's webhook admission: appended to a ResourceService's external admission."""

    def __init__(self, registry: Registry, cache: WatchCache, service: ResourceService,
                 own_port: int | None = None, resolve: Callable[[str], Awaitable[list[str]]] = resolve_host,
                 local: Callable[[str], bool] = is_local_ip) -> None:
        self.registry = registry
        self.cache = cache
        self.service = service
        self._own = ("", own_port) if own_port else None
        self._resolve = resolve
        self._local = local
        self._prefixes = {
            f"/registry/{ADMISSION_GROUP}/mutatingwebhookconfigurations/": True,
            f"/registry/{ADMISSION_GROUP}/validatingwebhookconfigurations/": False,
        }
        self._watched = tuple(self._prefixes)
        self._dirty = True
        self._hooks: dict[bool, list[wh.Webhook]] = {True: [], False: []}
        self._tls: dict[bytes, ssl.SSLContext] = {}
        self._session: aiohttp.ClientSession | None = None
        cache.add_listener(self._on_event)
        service.external_mutation.append(self.mutate)
        service.external_validation.append(self.validate)

    # -- configurations ---------------------------------------------------------------------

    def _on_event(self, ev: CacheEvent) -> None:
        if not self._dirty and ev.key.startswith(self._watched):
            self._dirty = True

    def hooks(self, mutating: bool) -> list[wh.Webhook]:
        if self._dirty:
            self._dirty = False
            for prefix, is_mutating in self._prefixes.items():
                self._hooks[is_mutating] = wh.compile_configurations(
                    [co.obj for co in self.cache.list(prefix)], is_mutating)
        return self._hooks[mutating]

    # -- admission --------------------------------------------------------------------------

    def _attributes(self, operation: str, info: ResourceInfo, subresource: str, new: Obj | None,
                    old: Obj | None, ctx: WriteContext) -> wh.Attributes:
        served = ctx.served or info
        target = wh.Target(served.group, served.version, served.plural, served.kind)
        meta = (new if new is not None else old or {}).get("metadata") or {}
        name = str(meta.get("name") or "")
        namespace = str(meta.get("namespace") or "") if info.namespaced else ""
        if not info.namespaced and served.group == "" and served.plural == "namespaces" and operation != "CREATE":
            namespace = name  # a request on a namespace names it as its namespace (its URL does)
        req = ctx.requester
        user = _SERVER_USER if req is None else wh.user_info(req.username, req.uid, req.groups, dict(req.extra))
        return wh.Attributes(operation, target, subresource, name, namespace, new, old, ctx.dry_run, user,
                             self._options(operation, ctx))

    @staticmethod
    def _options(operation: str, ctx: WriteContext) -> Obj:
        kind = {"CREATE": "CreateOptions", "DELETE": "DeleteOptions"}.get(
            operation, "PatchOptions" if ctx.patch_type else "UpdateOptions")
        options: Obj = {"kind": kind, "apiVersion": "meta.k8s.io/v1"}
        if ctx.dry_run:
            options["dryRun"] = ["All"]
        if ctx.field_manager and operation != "DELETE":
            options["fieldManager"] = ctx.field_manager
        if ctx.patch_type == "apply" and ctx.force:
            options["force"] = True
        return options

    def _equivalents(self, info: ResourceInfo) -> Callable[[], Sequence[wh.Target]]:
        def found() -> Sequence[wh.Target]:
            stored = self.registry.storage_info(info)
            return [wh.Target(i.group, i.version, i.plural, i.kind) for i in self.registry.all()
                    if i.plural == info.plural and self.registry.storage_info(i).group == stored.group]
        return found

    def _namespace_labels(self, name: str) -> Mapping[str, str] | None:
        co = self.cache.get(f"/registry/core/namespaces/{name}")
        if co is None:
            return None
        labels = (co.obj.get("metadata") or {}).get("labels")
        return labels if isinstance(labels, dict) else {}

    def _should_call(self, hook: wh.Webhook, attrs: wh.Attributes, info: ResourceInfo) -> wh.Target | None:
        seen = wh.matched_target(hook, attrs, self._equivalents(info))
        if seen is None:
            return None
        if not wh.namespace_selected(hook, attrs, self._namespace_labels):
            return None
        if not wh.object_selected(hook, attrs):
            return None
        if hook.match_conditions and not wh.conditions_match(
                hook, attrs, wh.review_request("", hook, attrs, seen, None, None)["request"]):
            return None
        if attrs.dry_run and not wh.supports_dry_run(hook):
            raise wh.dry_run_unsupported(hook.name)
        return seen

    def _as(self, info: ResourceInfo, obj: Obj | None, seen: wh.Target) -> Obj | None:
        """`obj` (in `info`'s version) as `seen`'s version shows it."""
        if obj is None or (seen.group, seen.version) == (info.group, info.version):
            return obj
        return self.service.kinds.for_info(info).convert(obj, seen.version, seen.group)

    async def mutate(self, operation: str, info: ResourceInfo, subresource: str, new: Obj | None,
                     old: Obj | None, ctx: WriteContext) -> None:
        hooks = self.hooks(True)
        if not hooks:
            return
        attrs = self._attributes(operation, info, subresource, new, old, ctx)
        if wh.exempt(attrs.target):
            return
        previously: set[tuple[str, int]] = set()  # reinvocable webhooks called before a change
        reinvoke: set[tuple[str, int]] = set()
        changed_any = False
        for round_ in (0, 1):
            if round_ == 1 and not (changed_any and reinvoke):
                return
            for hook in hooks:
                if round_ == 1 and hook.uid not in reinvoke:
                    continue
                seen = self._should_call(hook, attrs, info)
                if seen is None:
                    continue
                changed = await self._call_mutating(hook, attrs, seen, info, ctx)
                if changed:
                    changed_any = True
                    reinvoke |= previously
                    previously = set()
                if hook.reinvocation == "IfNeeded":
                    previously.add(hook.uid)

    async def _call_mutating(self, hook: wh.Webhook, attrs: wh.Attributes, seen: wh.Target, info: ResourceInfo,
                             ctx: WriteContext) -> bool:
        obj = self._as(info, attrs.obj, seen)
        verdict = await self._call(hook, attrs, seen, obj, self._as(info, attrs.old, seen), ctx)
        if verdict is None or not verdict.patch:
            return False
        if attrs.obj is None or obj is None:
            raise ApiError.internal(f'admission webhook "{hook.name}" attempted to modify the object, '
                                    "which is not supported for this operation")
        patched = wh.apply_patch(hook.name, obj, verdict.patch)
        seen_info = self.registry.get(seen.group, seen.version, seen.resource) or info
        if not validation.fields_clean(seen_info, patched):
            # As upstream decodes the patched JSON into the kind's type: a wrongly typed
            # value is the server's error, an unknown field is dropped.
            message = validation.type_error_message(seen_info, patched)
            if message:
                raise ApiError.internal(message)
            for path in validation.unknown_fields(seen_info, patched):
                om.remove_path(patched, om.parse_field_path(path))
        if (seen.group, seen.version) != (info.group, info.version):
            patched = self.service.kinds.for_info(info).convert(patched, info.version, info.group)
        self.service.apply_defaults(info, patched)
        if patched == attrs.obj:
            return False
        # The pipeline holds this very dict: the next step sees the patched object.
        attrs.obj.clear()
        attrs.obj.update(patched)
        return True

    async def validate(self, operation: str, info: ResourceInfo, subresource: str, new: Obj | None,
                       old: Obj | None, ctx: WriteContext) -> None:
        hooks = self.hooks(False)
        if not hooks:
            return
        attrs = self._attributes(operation, info, subresource, new, old, ctx)
        if wh.exempt(attrs.target):
            return
        calls = []
        for hook in hooks:
            seen = self._should_call(hook, attrs, info)
            if seen is not None:
                calls.append(self._call(hook, attrs, seen, self._as(info, attrs.obj, seen),
                                        self._as(info, attrs.old, seen), ctx))
        if not calls:
            return
        results = await asyncio.gather(*calls, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def connect(self, info: ResourceInfo, subresource: str, name: str, namespace: str, options: Obj,
                      requester: Any) -> list[str]:
        """A CONNECT request (pods/exec, attach, portforward): validating webhooks see its
        options object (PodExecOptions, ...) as upstream sends it, before any node is
        dialled. A refusal raises its Status; the webhooks' warnings are returned."""
        hooks = self.hooks(False)
        if not hooks:
            return []
        target = wh.Target(info.group, info.version, info.plural, str(options.get("kind") or info.kind))
        user = wh.user_info(requester.username, requester.uid, requester.groups, dict(requester.extra))
        attrs = wh.Attributes("CONNECT", target, subresource, name, namespace, options, None, False, user, None)
        ctx = WriteContext(requester=requester)
        calls = [self._call(hook, attrs, seen, options, None, ctx) for hook in hooks
                 if (seen := self._should_call(hook, attrs, info)) is not None]
        for result in await asyncio.gather(*calls, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result
        return ctx.warnings

    async def _call(self, hook: wh.Webhook, attrs: wh.Attributes, seen: wh.Target, obj: Obj | None,
                    old: Obj | None, ctx: WriteContext) -> wh.Verdict | None:
        """One webhook's verdict; None when it failed and its failurePolicy ignores that.
        A refusal raises its Status."""
        uid = str(uuid.uuid4())
        review = wh.review_request(uid, hook, attrs, seen, obj, old)
        try:
            verdict = wh.parse_response(await self._post(hook, review), uid, hook)
        except (CallFailed, wh.BadResponse) as e:
            reason = e.reason if isinstance(e, CallFailed) else f"received invalid webhook response: {e}"
            if hook.failure_policy == "Ignore":
                log.warning("failed calling webhook, failing open %s: %s", hook.name, reason)
                return None
            log.warning("failed calling webhook, failing closed %s: %s", hook.name, reason)
            raise wh.call_failure(hook.name, reason) from None
        ctx.warnings.extend(verdict.warnings)
        annotations = getattr(ctx, "audit_annotations", None)
        if isinstance(annotations, dict):
            for key, value in verdict.audit_annotations.items():
                annotations[f"{hook.name}/{key}"] = value
        if not verdict.allowed:
            raise wh.denial(hook.name, verdict.status)
        return verdict

    # -- calling ----------------------------------------------------------------------------

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar(),
                trace_configs=[no_redirects()])
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _tls_context(self, ca_bundle: bytes) -> ssl.SSLContext:
        found = self._tls.get(ca_bundle)
        if found is None:
            found = ssl.create_default_context()
            if ca_bundle:
                found = ssl.create_default_context(cadata=ca_bundle.decode("ascii", errors="replace"))
            if len(self._tls) > 64:
                self._tls.clear()
            self._tls[ca_bundle] = found
        return found

    def service_address(self, ref: wh.ServiceRef) -> tuple[str, int]:
        """A ready endpoint behind the Service's port (upstream's endpoint service resolver)."""
        svc = self.cache.get(f"/registry/core/services/{ref.namespace}/{ref.name}")
        if svc is None:
            raise CallFailed(f'service "{ref.name}" not found')
        ports = [p for p in (svc.obj.get("spec") or {}).get("ports") or [] if p.get("port") == ref.port]
        if not ports:
            raise CallFailed(f'no service port {ref.port} found for service "{ref.name}"')
        port_name = ports[0].get("name") or ""
        candidates: list[tuple[str, int]] = []
        for co in self.cache.list(f"/registry/discovery.k8s.io/endpointslices/{ref.namespace}/"):
            sl = co.obj
            if ((sl.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL) != ref.name:
                continue
            number = next((p.get("port") for p in sl.get("ports") or [] if (p.get("name") or "") == port_name), None)
            if not isinstance(number, int):
                continue
            for ep in sl.get("endpoints") or []:
                if (ep.get("conditions") or {}).get("ready") is False:
                    continue
                candidates += [(a, number) for a in ep.get("addresses") or []]
        if not candidates:
            raise CallFailed(f'no endpoints available for service "{ref.name}"')
        return random.choice(candidates)

    async def _address(self, hook: wh.Webhook) -> tuple[str, int, str, str]:
        """(address, port, TLS server name, path) of a webhook, the address checked."""
        if hook.service is not None:
            address, port = self.service_address(hook.service)
            host, path = hook.service.host, hook.service.path
            addresses = [address]
        else:
            parts = urlsplit(str(hook.url))
            host, port, path = parts.hostname or "", parts.port or 443, parts.path
            try:
                addresses = [host] if _is_ip(host) else await self._resolve(host)
            except OSError as e:
                raise CallFailed(f"dial tcp: lookup {host}: {e.strerror or e}") from None
            address = addresses[0] if addresses else ""
        if refusal(addresses, port, self._own, self._local) is not None:
            raise CallFailed(f"dial tcp {_netloc(address, port)}: address not allowed")
        return address, port, host, path

    async def _post(self, hook: wh.Webhook, review: Obj) -> Any:
        def failed(why: str) -> CallFailed:
            return CallFailed(wh.post_failure(hook.endpoint, hook.timeout, why))

        try:
            address, port, host, path = await asyncio.wait_for(self._address(hook), hook.timeout)
        except CallFailed as e:
            raise failed(e.reason) from None
        except TimeoutError:
            raise failed("context deadline exceeded") from None
        try:
            tls = self._tls_context(hook.ca_bundle)
        except (ssl.SSLError, ValueError) as e:
            raise CallFailed(f"could not get REST client: unable to load root certificates: {e}") from None
        url = f"https://{_netloc(address, port)}{path}?timeout={hook.timeout}s"
        try:
            async with self.session().post(
                    url, data=orjson.dumps(review), ssl=tls, server_hostname=host,
                    headers={"Content-Type": "application/json", "Accept": "application/json",
                             "Host": _netloc(host, port)},
                    timeout=aiohttp.ClientTimeout(total=hook.timeout), allow_redirects=False) as resp:
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise failed(_why(e, _netloc(address, port))) from None
        if not 200 <= status < 300:
            text = body.decode(errors="replace").strip()
            raise failed(f'an error on the server ("{text[:200]}") has prevented the request from succeeding'
                         if text else f"the server responded with the status code {status} but did not "
                                      "return more information")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise CallFailed(f"received invalid webhook response: {e}") from None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
