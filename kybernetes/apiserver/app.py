"""The API server process: wiring store, watch cache, verbs and HTTP(S) together.

`ApiServer` owns start-up (PKI, store, cache, bootstrap namespaces and Services,
CRDs, Service IP and node port allocation), the
aiohttp application with its middleware (authentication, errors as `Status`),
and the non-resource endpoints: health, version, discovery and OpenAPI. Connections get
a TLS handshake and request-header deadline and an idle timeout (`ServingOptions`);
requests pass flow control (`flowcontrol.py`) after authentication.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from kybernetes.api import bootstraptoken, protobuf
from kybernetes.api.errors import ApiError
from kybernetes.api.kinds import Strategies
from kybernetes.api.kinds.base import Allocation
from kybernetes.api.kinds.service import SERVICE
from kybernetes.api.registry import Registry
from kybernetes.apiserver import (
    auth,
    codec,
    discovery,
    openapi,
    openapi_v2_proto,
    pki,
    serviceaccounts,
    servicealloc,
)
from kybernetes.apiserver.admissionpolicy import PolicyAdmission
from kybernetes.apiserver.audit import PANIC, Auditor
from kybernetes.apiserver.authz import Authorizer, reconcile_bootstrap
from kybernetes.apiserver.bootstrapobjects import BootstrapObjects
from kybernetes.apiserver.bootstraptokens import BootstrapTokens
from kybernetes.apiserver.crds import CrdController
from kybernetes.apiserver.flowcontrol import FlowControlConfig, FlowController
from kybernetes.apiserver.limitranger import LimitRanger
from kybernetes.apiserver.namespaces import ensure_system_namespaces
from kybernetes.apiserver.podsecurity import PodSecurityAdmission
from kybernetes.apiserver.priority import PriorityAdmission
from kybernetes.apiserver.quota import QuotaAdmission, QuotaStatus
from kybernetes.apiserver.resources import ResourceService
from kybernetes.apiserver.rest import RestHandler, json_response
from kybernetes.apiserver.runtimeclass import RuntimeClassAdmission
from kybernetes.apiserver.serviceips import ServiceAllocator
from kybernetes.apiserver.storageadmission import StorageAdmission
from kybernetes.apiserver.systemservices import ApiEndpoint, SystemServices, choose_advertise_address
from kybernetes.apiserver.virtual import VirtualHandler
from kybernetes.apiserver.watchcache import WatchCache
from kybernetes.apiserver.webhooks import WebhookAdmission
from kybernetes.storage.interface import StorageFullError, Store

log = logging.getLogger("kybernetes.apiserver")

VERSION_INFO = {
    "major": "1",
    "minor": "37",
    "emulationMajor": "1",
    "emulationMinor": "37",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "36",
    "gitVersion": "v1.37.0+kyb",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-11-25T00:00:00Z",
    "goVersion": "python",
    "compiler": "cpython",
    "platform": "linux/amd64",
}

# /cacerts: the cluster CA for a joining node, which pins it by hash before it sends its token (as k3s).
_PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version", "/cacerts")
_FORWARDED = "kyb.forwarded"


def _impersonating(headers: Any) -> bool:
    return any(k[:12].lower() == "impersonate-" for k in headers)


@dataclass(frozen=True)
class ServingOptions:
    """How long a connection may take to say something, and the request limits."""

    # A new connection must finish its TLS handshake and send its first request line and
    # headers within this (Go's ReadHeaderTimeout; kube-apiserver uses 32 s).
    header_timeout: float = 10.0
    # A kept-alive connection with no request in progress is closed after this
    # (kube-apiserver's IdleTimeout, and client-go's idle timeout).
    idle_timeout: float = 90.0
    flow: FlowControlConfig = field(default_factory=FlowControlConfig)
    # Several processes listen on the port (SO_REUSEPORT; `--api-workers`), and the kernel
    # spreads new connections over them.
    reuse_port: bool = False
_HEALTH_CHECKS = ("ping", "log", "etcd", "poststarthook/start-apiextensions-controllers")


class ApiServer:
    def __init__(self, data_dir: str, store: Store, port: int = 6443, bind: str = "0.0.0.0",
                 hosts: list[str] | None = None, tls: bool = True,
                 service_network: servicealloc.ServiceNetwork | None = None,
                 advertise_address: str | None = None, serving: ServingOptions | None = None,
                 kinds: Strategies | None = None, gc_enabled: bool = False,
                 service_accounts: serviceaccounts.TokenOptions | None = None) -> None:
        self.data_dir = data_dir
        # Who signs ServiceAccount tokens and who is accepted (`kyb server` flags).
        self.sa_options = service_accounts or serviceaccounts.TokenOptions()
        self.serving = serving or ServingOptions()
        self.store = store
        self.port = port
        self.bind = bind
        self.hosts = hosts or []
        self.tls = tls
        self.registry = Registry()
        self.cache = WatchCache(store)
        # `kinds`: every kind's rules, configured by the caller (`kyb server` flags).
        # `gc_enabled`: a garbage collector runs, so foreground/orphan deletes get its finalizers.
        self.service = ResourceService(store, self.cache, kinds, gc_enabled=gc_enabled, registry=self.registry)
        self.ready = False
        self.runner: web.AppRunner | None = None
        self.pki: pki.Pki | None = None
        self.authenticator: auth.Authenticator | None = None
        self.crds = CrdController(self.registry, self.cache, self.service)
        priority_admission = PriorityAdmission(self.registry, self.cache)
        self.service.create_mutation.append(priority_admission.mutate_create)
        self.service.update_admission.append(priority_admission.check_update)
        # LimitRanger and PodSecurity judge before quota, which reserves what it admits.
        limit_ranger = LimitRanger(self.registry, self.cache)
        self.service.create_mutation.append(limit_ranger.mutate_create)
        self.service.create_admission.append(limit_ranger.check_create)
        self.service.update_admission.append(limit_ranger.check_update)
        # RuntimeClass after LimitRanger, as upstream orders them; its checks before quota reserves.
        runtime_class_admission = RuntimeClassAdmission(self.registry, self.cache)
        self.service.create_mutation.append(runtime_class_admission.mutate_create)
        self.service.create_admission.append(runtime_class_admission.check_create)
        # Every level privileged until namespaces are labelled (`kyb server
        # --admission-control-config-file` sets other defaults and exemptions).
        self.pod_security = PodSecurityAdmission(self.registry, self.cache)
        self.service.context_admission.append(self.pod_security.admit)
        quota_admission = QuotaAdmission(self.cache)
        self.service.create_admission.append(quota_admission.check_create)
        self.service.update_admission.append(quota_admission.check_update)
        storage_admission = StorageAdmission(self.registry, self.cache)
        self.service.create_admission.append(storage_admission.check_create)
        self.service.update_admission.append(storage_admission.check_update)
        self.quota_status = QuotaStatus(self.registry, self.cache, self.service)
        # RBAC for every request (system:masters without a lookup), kept from the watch cache.
        self.authorizer = Authorizer(self.cache)
        self.service.write_checks.append(
            lambda info, obj, ctx, old: self.authorizer.check_escalation(info, obj, ctx.requester, old))
        self.service.requester_admission.append(self.authorizer.nodes.admit)
        # ValidatingAdmissionPolicy: CEL validations kept compiled from the watch cache.
        self.policy_admission = PolicyAdmission(self.cache, self.registry, self.authorizer)
        self.service.context_admission.append(self.policy_admission.admit)
        self.service.external_validation.append(self.policy_admission.admit_delete)
        # Dynamic admission webhooks, configured by the cluster's MutatingWebhookConfigurations
        # and ValidatingWebhookConfigurations.
        self.webhooks = WebhookAdmission(self.registry, self.cache, self.service, own_port=port)
        self.service_network = service_network or servicealloc.service_network()
        # The caller (`kyb server`) knows the host's address; without it, loopback.
        self.advertise_address = advertise_address or choose_advertise_address(None, bind, "127.0.0.1")
        self.service_allocator = ServiceAllocator(store, self.cache, self.service_network)
        self.service.kinds.attach_allocation(
            SERVICE, Allocation(self.service_allocator, prepare=servicealloc.prepare_service))
        self.system_services = SystemServices(self.registry, store, self.cache, self.service,
                                              self.service_allocator, self.service_network,
                                              ApiEndpoint(self.advertise_address, port))
        self._system_services_started = False
        self.bootstrap_objects = BootstrapObjects(self.registry, self.cache, self.service,
                                                  [str(self.service_network.cidr)])
        self._bootstrap_started = False
        self.started_at = time.monotonic()
        self._conn_users: weakref.WeakKeyDictionary[Any, tuple[str | None, auth.UserInfo | None]] = (
            weakref.WeakKeyDictionary())
        self.flow = FlowController(self.serving.flow, self._count_objects)
        # Who sent a request an API worker process forwarded (apiserver/workers.py): asked
        # first, it answers only for requests on the workers' private socket.
        self.trusted_identity: Callable[[web.Request], auth.UserInfo | None] | None = None
        # The audit log (apiserver/audit.py), set by the caller before start; None: no auditing.
        self.audit: Auditor | None = None
        # Paths with their own credential, answered before authentication (the server token's
        # /v1-kyb/server-bootstrap, apiserver/serverjoin.py), set by the caller before start.
        self.own_auth_routes: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] = {}

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        os.makedirs(self.data_dir, exist_ok=True)
        hosts = list(self.hosts)
        if self.bind not in ("0.0.0.0", "::", ""):
            hosts.append(self.bind)
        self.pki = await asyncio.to_thread(pki.ensure_pki, self.data_dir, hosts)
        self.authenticator = auth.Authenticator(self.pki)
        self._start_service_accounts(ensure_key=True)
        await self.store.start()
        await self.cache.start()
        self.crds.start()
        await ensure_system_namespaces(self.registry, self.cache, self.service)
        # Before serving: a user's first request is judged by the default roles.
        await reconcile_bootstrap(self.registry, self.cache, self.service)
        await self.system_services.start()
        self._system_services_started = True
        host = f"[{self.advertise_address}]" if ":" in self.advertise_address else self.advertise_address
        self.bootstrap_objects.cluster_info = bootstraptoken.cluster_info_configmap(
            f"{'https' if self.tls else 'http'}://{host}:{self.port}", await asyncio.to_thread(pki.read_ca_pem, self.pki))
        await self.bootstrap_objects.start()
        self._bootstrap_started = True
        self.quota_status.start()
        self.virtual = VirtualHandler(self.cache, self.authenticator,
                                      await asyncio.to_thread(pki.agent_client_ssl_context, self.pki))
        self.virtual.authorizer = self.authorizer
        self.virtual.sa_tokens = self.sa_tokens
        self.virtual.connect_admission = self.webhooks.connect
        self.rest = RestHandler(self.registry, self.store, self.cache, self.service, self.virtual)
        await asyncio.to_thread(protobuf.compile_codecs)
        if self.audit is not None:
            await self.audit.start()
        await self._serve()
        self.ready = True

    async def _serve(self) -> None:
        """Listen: the aiohttp application on the configured address, TLS unless disabled."""
        assert self.pki is not None
        app = web.Application(middlewares=[self._middleware], client_max_size=4 * 1024 * 1024,
                              handler_args={"max_field_size": 65536})
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        if self.audit is not None:
            app.on_response_prepare.append(self.audit.on_prepare)
        # Called once no new request can come: watches would otherwise hold the shutdown for
        # its whole timeout, as no watch ends by itself.
        app.on_shutdown.append(self._end_watches)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0,
                                    keepalive_timeout=self.serving.idle_timeout)
        await self.runner.setup()
        ssl_ctx = pki.server_ssl_context(self.pki) if self.tls else None
        site = _DeadlineSite(self.runner, self.bind, self.port, ssl_ctx, self.serving.header_timeout,
                             reuse_port=self.serving.reuse_port)
        await site.start()

    async def _end_watches(self, _app: web.Application) -> None:
        self.cache.end_watches()

    async def stop(self) -> None:
        self.ready = False
        await self.quota_status.stop()
        await self.webhooks.close()
        if self._bootstrap_started:
            self._bootstrap_started = False
            await self.bootstrap_objects.stop()
        if self._system_services_started:
            self._system_services_started = False
            await self.system_services.stop()
        if self.runner is not None:
            await self.runner.cleanup()
        if self.audit is not None:
            await self.audit.stop()
        if getattr(self, "virtual", None) is not None:
            await self.virtual.close()
        await self.cache.close()
        await self.store.close()

    def server_url(self) -> str:
        host = self.bind if self.bind not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def _start_service_accounts(self, ensure_key: bool) -> None:
        """ServiceAccount tokens: signing (TokenRequest), checking (bearer tokens,
        TokenReview) and the admission that mounts them into pods."""
        assert self.pki is not None and self.authenticator is not None
        if ensure_key:
            serviceaccounts.ensure_signing_key(self.pki.dir)
        self.sa_tokens = serviceaccounts.ServiceAccountTokens(
            serviceaccounts.SigningKeys(self.pki.dir), self.cache, self.sa_options,
            jwks_uri=f"https://{self.advertise_address}:{self.port}/openid/v1/jwks")
        self.authenticator.service_accounts = self.sa_tokens
        self.authenticator.bootstrap_tokens = BootstrapTokens(self.cache)
        self.service.create_mutation.append(serviceaccounts.ServiceAccountAdmission(self.sa_tokens).mutate_create)

    def write_kubeconfig(self, path: str, use_token: bool = False) -> None:
        assert self.pki is not None
        pki.write_kubeconfig(self.pki, path, self.server_url(), use_token=use_token)

    # -- middleware ------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        own = self.own_auth_routes.get(request.path) if self.own_auth_routes else None
        if own is not None:
            return await own(request)
        if self.audit is not None:
            return await self.audit.observe(request, self._serve_request(request, handler))
        return await self._serve_request(request, handler)

    async def _serve_request(self, request: web.Request, handler: Any) -> web.StreamResponse:
        audit = None
        try:
            user = self._authenticate(request)
            request["user"] = user
            if self.audit is not None:
                audit = self.audit.begin(request, user)
            if user is None:
                raise ApiError.unauthorized()
            if not request.get(_FORWARDED) and _impersonating(request.headers):
                user = request["user"] = self.authorizer.impersonate(user, request.headers, request.headers.getall)
                if audit is not None:
                    audit.impersonate(user)
            if not request.path.startswith(_PUBLIC_PATHS):
                if audit is not None:
                    audit.authz = ("forbid", "")
                reason = self.authorizer.check_request(user, request.method, request.path, request.query,
                                                       request.query_string)
                if audit is not None:
                    audit.authz = ("allow", reason)
            ticket = self.flow.ticket(request.method, request.path, request.query, user.username, user.groups,
                                      request.headers.get("User-Agent", ""))
            if ticket is None:
                return await handler(request)
            if not self.flow.try_start(ticket):
                await self.flow.wait(ticket)
            try:
                return await handler(request)
            finally:
                self.flow.finish(ticket)
        except ApiError as e:
            return _error_response(e, request)
        except web.HTTPException:
            raise
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except StorageFullError as e:
            # Not a bug: the store logged the cause once; each refused write is a clear 500.
            return _error_response(ApiError.internal(str(e)), request)
        except Exception as e:  # noqa: BLE001 - a bug must answer 500, never kill the server
            log.exception("internal error on %s %s", request.method, request.path)
            request[PANIC] = f"{type(e).__name__}: {e}"
            return _error_response(ApiError.internal(type(e).__name__ + ": " + str(e)), request)

    def _authenticate(self, request: web.Request) -> auth.UserInfo | None:
        assert self.authenticator is not None
        if self.trusted_identity is not None:
            forwarded = self.trusted_identity(request)
            if forwarded is not None:
                # Already impersonated by the worker that forwarded it.
                request[_FORWARDED] = True
                return forwarded
        header = request.headers.get("Authorization")
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        # A TLS connection's client certificate cannot change, and clients send the same
        # header on every request of a kept-alive connection: remember the answer per
        # connection (its TLS object, dropped with it) and header.
        cacheable = self.authenticator.cacheable(header)
        if ssl_object is not None and cacheable:
            cached = self._conn_users.get(ssl_object)
            if cached is not None and cached[0] == header:
                return cached[1]
        peercert = ssl_object.getpeercert() or None if ssl_object is not None else None
        user = self.authenticator.authenticate(peercert, header)
        if ssl_object is not None and cacheable:
            self._conn_users[ssl_object] = (header, user)
        return user

    def _service_account_issuer(self, path: str) -> web.Response:
        """The ServiceAccount issuer's OIDC discovery document and public keys (JWKS)."""
        if path == "/openid/v1/jwks":
            return web.Response(body=orjson.dumps(self.sa_tokens.jwks()), content_type="application/jwk-set+json")
        return json_response(orjson.dumps(self.sa_tokens.openid_configuration()))

    def _count_objects(self, group: str, version: str, resource: str) -> int:
        """How many objects a LIST of this resource may return (its flow-control width)."""
        info = self.registry.get(group, version, resource)
        if info is None:
            return 0
        return self.cache.count(info.storage_prefix())

    # -- routing ---------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        if path in ("/healthz", "/livez", "/readyz") or path.startswith(("/healthz/", "/livez/", "/readyz/")):
            return self._health(request, path)
        if path == "/version":
            return json_response(orjson.dumps(VERSION_INFO))
        if path == "/cacerts" and self.pki is not None:
            return web.Response(body=await asyncio.to_thread(pki.read_ca_pem, self.pki),
                                content_type="application/x-pem-file")
        if path == "/api":
            return self._discovery_api(request)
        if path == "/apis":
            return self._discovery_apis(request)
        if parts[:1] == ["api"] and len(parts) == 2:
            return self._resource_list("", parts[1])
        if parts[:1] == ["apis"] and len(parts) == 2:
            return self._api_group(parts[1])
        if parts[:1] == ["apis"] and len(parts) == 3:
            return self._resource_list(parts[1], parts[2])
        if parts[:1] in (["api"], ["apis"]):
            return await self.rest.handle(request)
        if path in ("/.well-known/openid-configuration", "/openid/v1/jwks"):
            return self._service_account_issuer(path)
        if path == "/openapi/v3":
            return self._openapi_root(request)
        if path.startswith("/openapi/v3/"):
            return self._openapi_doc(request, path[len("/openapi/v3/"):])
        if path == "/openapi/v2":
            return self._openapi_v2(request)
        if path == "/":
            paths = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version", "/openapi/v3"]
            paths += [f"/apis/{g}/{v}" for g, vs in self.registry.group_versions().items() if g for v in vs]
            return json_response(orjson.dumps({"paths": sorted(paths)}))
        if path == "/debug/api_priority_and_fairness/dump_priority_levels":
            # Who is throttled, and how much: seats in use, queued and refused per level.
            return web.Response(text=self.flow.dump(), content_type="text/plain")
        raise ApiError.path_not_found()

    def _health(self, request: web.Request, path: str) -> web.Response:
        ok = self.ready
        if "verbose" in request.query:
            name = path.strip("/").split("/")[0]
            lines = [f"[+]{c} ok" for c in _HEALTH_CHECKS]
            lines.append(f"{name} check {'passed' if ok else 'failed'}")
            return web.Response(text="\n".join(lines) + "\n", status=200 if ok else 500)
        if not ok:
            return web.Response(text="not ready", status=500)
        return web.Response(text="ok", content_type="text/plain")

    def _discovery_api(self, request: web.Request) -> web.Response:
        if discovery.wants_aggregated(request.headers.get("Accept", "")):
            body = orjson.dumps(discovery.aggregated_discovery(self.registry, core=True))
            return web.Response(body=body, headers={"Content-Type": discovery.AGGREGATED_CONTENT_TYPE})
        host = request.host or f"127.0.0.1:{self.port}"
        return json_response(orjson.dumps(discovery.legacy_api_versions(host)))

    def _discovery_apis(self, request: web.Request) -> web.Response:
        if discovery.wants_aggregated(request.headers.get("Accept", "")):
            body = orjson.dumps(discovery.aggregated_discovery(self.registry, core=False))
            return web.Response(body=body, headers={"Content-Type": discovery.AGGREGATED_CONTENT_TYPE})
        return json_response(orjson.dumps(discovery.legacy_api_group_list(self.registry)))

    def _resource_list(self, group: str, version: str) -> web.Response:
        doc = discovery.api_resource_list(self.registry, group, version)
        if doc is None:
            raise ApiError.path_not_found()
        return json_response(orjson.dumps(doc))

    def _api_group(self, group: str) -> web.Response:
        for g in discovery.legacy_api_group_list(self.registry)["groups"]:
            if g["name"] == group:
                return json_response(orjson.dumps(dict(g, kind="APIGroup", apiVersion="v1")))
        raise ApiError.path_not_found()

    def _openapi_root(self, request: web.Request) -> web.Response:
        body = orjson.dumps(openapi.openapi_v3_root(self.registry))
        return web.Response(body=body, content_type="application/json",
                            headers={"Cache-Control": "no-cache, private"})

    def _openapi_v2(self, request: web.Request) -> web.Response:
        # Go clients (kubectl's client-side validation) take only gnostic protobuf.
        media = openapi_v2_proto.negotiate(request.headers.get("Accept", ""))
        if media is None:
            raise ApiError.not_acceptable("only application/json and gnostic protobuf are served")
        if media == "application/json":
            body, digest = openapi.openapi_v2_document(self.registry)
        else:
            body, digest = openapi_v2_proto.openapi_v2_protobuf(self.registry)
        headers = {"ETag": f'"{digest}"', "Cache-Control": "no-cache, private", "Vary": "Accept"}
        if request.headers.get("If-None-Match") == f'"{digest}"':
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, headers={**headers, "Content-Type": media})

    def _openapi_doc(self, request: web.Request, gv_path: str) -> web.Response:
        found = openapi.openapi_v3_document(self.registry, gv_path)
        if found is None:
            raise ApiError.path_not_found()
        body, digest = found
        headers = {"ETag": f'"{digest}"'}
        if request.query.get("hash") == digest:
            headers["Cache-Control"] = "public, immutable"
            headers["Expires"] = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 31536000))
        else:
            headers["Cache-Control"] = "no-cache, private"
        if request.headers.get("If-None-Match") == f'"{digest}"':
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type="application/json", headers=headers)


def _error_response(e: ApiError, request: web.Request) -> web.Response:
    # In protobuf when the client asks for it first, as kube-apiserver negotiates errors.
    body, content_type = codec.encode_status(e.status(), request.headers.get("Accept", ""))
    resp = web.Response(body=body, status=e.code, headers={"Content-Type": content_type})
    for k, v in e.headers.items():
        resp.headers[k] = v
    return resp


class _HeaderDeadline:
    """Wraps aiohttp's protocol for one connection: if the end of the first request's
    headers has not arrived `timeout` seconds after the connection was accepted (TLS
    handshake included), the connection is closed. Later requests on a kept-alive
    connection are aiohttp's idle timeout's business, and once a request has started,
    long-running streams (watches, exec) are never cut by this."""

    __slots__ = ("_inner", "_timeout", "_timer", "_tail", "_transport", "_expired")

    def __init__(self, inner: Any, timeout: float) -> None:
        self._inner = inner
        self._timeout = timeout
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""
        self._transport: asyncio.BaseTransport | None = None
        self._expired = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._inner.connection_made(transport)
        if self._expired:
            # The handshake alone took the whole allowance.
            transport.close()

    def start_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = loop.call_later(self._timeout, self._expire)

    def _expire(self) -> None:
        self._timer = None
        self._expired = True
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            seen = self._tail + data
            # (Bare LF line ends are tolerated by the parser, so they end headers too.)
            if b"\r\n\r\n" in seen or b"\n\n" in seen:
                self._timer.cancel()
                self._timer = None
            else:
                self._tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class _DeadlineSite(web.BaseSite):
    """A TCP(S) site whose connections must finish the TLS handshake and send their first
    request's headers within `header_timeout` seconds (aiohttp's TCPSite has no such limit;
    a client that connects and says nothing held its socket for an hour)."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, ssl_context: Any,
                 header_timeout: float, reuse_port: bool = False) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=1024)
        self._reuse_port = reuse_port
        self._host = host
        self._port = port
        self._header_timeout = header_timeout

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        timeout = self._header_timeout

        def factory() -> Any:
            proto = _HeaderDeadline(server(), timeout)
            if timeout > 0:
                proto.start_timer(loop)
            return proto

        # The handshake timeout bounds a client that never completes TLS; the header
        # deadline starts at accept, so it covers the handshake too.
        handshake = {"ssl_handshake_timeout": timeout} if self._ssl_context is not None and timeout > 0 else {}
        self._server = await loop.create_server(factory, self._host, self._port, ssl=self._ssl_context,
                                                backlog=self._backlog, reuse_address=True,
                                                reuse_port=self._reuse_port or None, **handshake)


def default_hosts() -> list[str]:
    """Names and addresses the server certificate should cover on this machine."""
    hosts = [socket.gethostname()]
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            addr = info[4][0]
            if addr not in hosts:
                hosts.append(str(addr))
    except OSError:
        pass
    return hosts
