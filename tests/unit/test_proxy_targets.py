"""The proxy subresources' decisions: which backend a `pods/proxy`, `services/proxy` or
`nodes/proxy` request goes to, which addresses are refused, the path and headers the
backend gets, and how redirects and HTML links are rewritten to go through the proxy."""

from __future__ import annotations

import gzip
from typing import Any

import pytest

from kybernetes.api.errors import ApiError
from kybernetes.api.kinds import strategy_for
from kybernetes.api.kinds.proxying import (
    ProxyLocation,
    is_proxyable_ip,
    node_location,
    pod_location,
    service_location,
    split_scheme_name_port,
)
from kybernetes.api.registry import Registry
from kybernetes.apiserver.proxy import (
    HtmlLinkRewriter,
    _Recoder,
    clean_path,
    forward_headers,
    proxied_path,
    request_verb,
    response_headers,
    rewrite_url,
)
from kybernetes.apiserver.rest import parse_target

NS = "ns"


def pod(name: str, ip: str | None = "10.1.0.5", ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Running"}
    if ip is not None:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    return {"metadata": {"name": name, "namespace": NS},
            "spec": {"containers": [{"name": "c", "ports": ports or []}]}, "status": status}


def lookup_of(objects: dict[tuple[str, str | None, str], dict[str, Any]]):
    return lambda plural, ns, name: objects.get((plural, ns, name))


def code_of(fn, *args: Any) -> tuple[int, str]:
    with pytest.raises(ApiError) as e:
        fn(*args)
    return e.value.code, e.value.message


# -- the name segment ----------------------------------------------------------------------


def test_name_segment_takes_an_optional_scheme_and_port():
    pid = split_scheme_name_port("web", "pod")
    assert (pid.scheme, pid.name, pid.port) == ("", "web", "")
    pid = split_scheme_name_port("https:web:8443", "pod")
    assert (pid.scheme, pid.name, pid.port) == ("https", "web", "8443")
    pid = split_scheme_name_port("web:http", "service")
    assert (pid.scheme, pid.name, pid.port) == ("", "web", "http")
    for bad in ("ftp:web:21", "a:b:c:d", ":80", "http::80"):
        with pytest.raises(ApiError) as e:
            split_scheme_name_port(bad, "pod")
        assert e.value.code == 400 and e.value.message == f'invalid pod request "{bad}"'


@pytest.mark.parametrize("ip,ok", [
    ("10.1.0.5", True), ("192.168.1.1", True), ("8.8.8.8", True), ("fd00::1", True), ("2001:db8::1", True),
    ("127.0.0.1", False), ("127.9.9.9", False), ("::1", False), ("169.254.169.254", False), ("fe80::1", False),
    ("0.0.0.0", False), ("::", False), ("224.0.0.1", False), ("255.255.255.255", False),
    ("::ffff:127.0.0.1", False), ("", False), ("localhost", False),
])
def test_only_global_unicast_addresses_are_proxied(ip, ok):
    assert is_proxyable_ip(ip) is ok


# -- pods ----------------------------------------------------------------------------------


def test_pod_target_is_its_ip_at_the_port_asked_or_its_first_declared_port():
    objs = lookup_of({("pods", NS, "web"): pod("web", ports=[{"name": "http", "containerPort": 8080},
                                                              {"name": "admin", "containerPort": 9000}])})
    assert pod_location(NS, "web", objs) == ProxyLocation("http", "10.1.0.5", 8080)
    assert pod_location(NS, "web:9000", objs) == ProxyLocation("http", "10.1.0.5", 9000)
    assert pod_location(NS, "web:admin", objs) == ProxyLocation("http", "10.1.0.5", 9000)
    assert pod_location(NS, "https:web:443", objs) == ProxyLocation("https", "10.1.0.5", 443)


def test_pod_without_declared_ports_is_reached_on_the_schemes_default_port():
    loc = pod_location(NS, "web", lookup_of({("pods", NS, "web"): pod("web")}))
    assert loc == ProxyLocation("http", "10.1.0.5", None) and loc.netloc == "10.1.0.5"


def test_pod_refusals():
    objs = lookup_of({("pods", NS, "web"): pod("web"), ("pods", NS, "lo"): pod("lo", ip="127.0.0.1"),
                      ("pods", NS, "pending"): pod("pending", ip=None),
                      ("pods", NS, "meta"): pod("meta", ip="169.254.169.254")})
    assert code_of(pod_location, NS, "missing", objs) == (404, 'pods "missing" not found')
    assert code_of(pod_location, NS, "lo", objs) == (400, "address not allowed")
    assert code_of(pod_location, NS, "meta:80", objs) == (400, "address not allowed")
    assert code_of(pod_location, NS, "pending", objs) == (400, "address not allowed")
    assert code_of(pod_location, NS, "web:nosuch", objs)[0] == 503
    assert code_of(pod_location, NS, "web:70000", objs)[0] == 400


def test_ipv6_pod_address_is_bracketed_in_the_netloc():
    loc = pod_location(NS, "web:80", lookup_of({("pods", NS, "web"): pod("web", ip="fd00::5")}))
    assert loc.netloc == "[fd00::5]:80"


# -- services ------------------------------------------------------------------------------


def service(ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": "svc", "namespace": NS}, "spec": {"ports": ports}}


def endpoints(subsets: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": "svc", "namespace": NS}, "subsets": subsets}


def address(ip: str, pod_name: str) -> dict[str, Any]:
    return {"ip": ip, "targetRef": {"kind": "Pod", "namespace": NS, "name": pod_name}}


SVC_PORTS = [{"name": "web", "port": 80, "targetPort": 8080}, {"name": "admin", "port": 81, "targetPort": 9000}]
EP_PORTS = [{"name": "web", "port": 8080}, {"name": "admin", "port": 9000}]


def svc_objects(subsets: list[dict[str, Any]], pods: dict[str, str] | None = None):
    objs: dict[tuple[str, str | None, str], dict[str, Any]] = {
        ("services", NS, "svc"): service(SVC_PORTS), ("endpoints", NS, "svc"): endpoints(subsets)}
    for name, ip in (pods or {"a": "10.1.0.7"}).items():
        objs[("pods", NS, name)] = pod(name, ip=ip)
    return lookup_of(objs)


def test_service_target_by_port_name_or_service_port_number():
    objs = svc_objects([{"addresses": [address("10.1.0.7", "a")], "ports": EP_PORTS}])
    assert service_location(NS, "svc:web", objs) == ProxyLocation("http", "10.1.0.7", 8080)
    assert service_location(NS, "svc:81", objs) == ProxyLocation("http", "10.1.0.7", 9000)
    assert service_location(NS, "https:svc:admin", objs) == ProxyLocation("https", "10.1.0.7", 9000)


def test_single_unnamed_service_port_is_found_without_a_port():
    objs = lookup_of({("services", NS, "svc"): service([{"port": 80, "targetPort": 8080}]),
                      ("endpoints", NS, "svc"): endpoints([{"addresses": [address("10.1.0.7", "a")],
                                                            "ports": [{"port": 8080}]}]),
                      ("pods", NS, "a"): pod("a", ip="10.1.0.7")})
    assert service_location(NS, "svc", objs) == ProxyLocation("http", "10.1.0.7", 8080)
    assert service_location(NS, "svc:80", objs) == ProxyLocation("http", "10.1.0.7", 8080)


def test_service_refusals():
    ready = [{"addresses": [address("10.1.0.7", "a")], "ports": EP_PORTS}]
    assert code_of(service_location, NS, "nosuch", svc_objects(ready))[0] == 404
    assert code_of(service_location, NS, "svc:82", svc_objects(ready)) == (
        503, 'no service port 82 found for service "svc"')
    assert code_of(service_location, NS, "svc:web", svc_objects([])) == (
        503, 'no endpoints available for service "svc"')
    not_ready = [{"notReadyAddresses": [address("10.1.0.7", "a")], "ports": EP_PORTS}]
    assert code_of(service_location, NS, "svc:web", svc_objects(not_ready)) == (
        503, 'no endpoints available for service "svc:web"')
    assert code_of(service_location, NS, "svc:other", svc_objects(ready))[0] == 503


def test_service_skips_addresses_whose_pod_is_gone_or_moved_or_not_allowed():
    subsets = [{"addresses": [address("10.1.0.7", "gone"), address("10.1.0.8", "moved"),
                              {"ip": "10.1.0.9"}, address("127.0.0.1", "lo")], "ports": EP_PORTS}]
    objs = svc_objects(subsets, {"moved": "10.1.0.99", "lo": "127.0.0.1"})
    assert code_of(service_location, NS, "svc:web", objs)[0] == 503
    subsets[0]["addresses"].append(address("10.1.0.10", "ok"))
    objs = svc_objects(subsets, {"moved": "10.1.0.99", "ok": "10.1.0.10"})
    for start in range(5):
        assert service_location(NS, "svc:web", objs, lambda n, s=start: s % n).host == "10.1.0.10"


# -- nodes ---------------------------------------------------------------------------------


def node(addresses: list[dict[str, str]], port: int = 10250) -> dict[str, Any]:
    return {"metadata": {"name": "n1"},
            "status": {"addresses": addresses, "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}


def test_node_target_is_its_agent_unless_another_port_is_asked():
    objs = lookup_of({("nodes", None, "n1"): node([{"type": "Hostname", "address": "n1"},
                                                    {"type": "InternalIP", "address": "192.168.5.4"}], 12345)})
    agent = ProxyLocation("https", "192.168.5.4", 12345, agent=True, node="n1")
    assert node_location("n1", objs) == agent
    assert node_location("n1:12345", objs) == agent
    assert node_location("n1:9100", objs) == ProxyLocation("http", "192.168.5.4", 9100)
    assert node_location("https:n1:9443", objs) == ProxyLocation("https", "192.168.5.4", 9443)
    assert code_of(node_location, "n2", objs)[0] == 404
    assert code_of(node_location, "n1", lookup_of({("nodes", None, "n1"): node([])}))[0] == 503


def test_kinds_with_a_proxy_subresource_name_their_backend_through_their_strategy():
    reg = Registry()
    objs = lookup_of({("pods", NS, "web"): pod("web")})
    pods = reg.get("", "v1", "pods")
    assert "proxy" in pods.subresources
    assert strategy_for(pods).proxy_location(pods, NS, "web:80", objs) == ProxyLocation("http", "10.1.0.5", 80)
    cms = reg.get("", "v1", "configmaps")
    assert strategy_for(cms).proxy_location(cms, NS, "x", objs) is None


def test_proxy_urls_parse_with_the_backend_path_after_them():
    reg = Registry()
    t = parse_target(reg, "/api/v1/namespaces/ns/pods/web:80/proxy/some/path/")
    assert (t.info.plural, t.namespace, t.name, t.subresource) == ("pods", "ns", "web:80", "proxy")
    t = parse_target(reg, "/api/v1/nodes/n1/proxy/logs/")
    assert (t.info.plural, t.namespace, t.name, t.subresource) == ("nodes", None, "n1", "proxy")
    with pytest.raises(ApiError):
        parse_target(reg, "/api/v1/namespaces/ns/pods/web/log/extra")


# -- the relay's decisions -----------------------------------------------------------------


def test_rbac_verbs_of_proxy_requests_follow_the_http_method():
    assert [request_verb(m) for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")] == [
        "get", "get", "create", "update", "patch", "delete", ""]


PREFIX = "/api/v1/namespaces/ns/pods/web/proxy"


@pytest.mark.parametrize("path,backend,prepend", [
    (PREFIX, "", PREFIX),
    (PREFIX + "/", "/", PREFIX),
    (PREFIX + "/some/path/with/GET", "/some/path/with/GET", PREFIX),
    (PREFIX + "/a/b/", "/a/b/", PREFIX),
    (PREFIX + "/a//b/./c", "/a/b/c", PREFIX + "/a//b/./c"),
    (PREFIX + "/../../../../etc/passwd", "/etc/passwd", PREFIX + "/../../../.."),
])
def test_backend_path_is_the_cleaned_rest_of_the_url(path, backend, prepend):
    assert proxied_path(path, 7) == (backend, prepend)


def test_clean_path_never_climbs_above_the_root():
    assert clean_path("") == ""
    assert clean_path("/") == "/"
    assert clean_path("/../..//x/./y/../z") == "/x/z"


def test_redirect_location_pointing_at_the_backend_goes_through_the_proxy():
    backend, front = "10.1.0.5:80", "apiserver:6443"
    assert rewrite_url("/login?next=/", backend, front, PREFIX) == PREFIX + "/login?next=/"
    assert rewrite_url("http://10.1.0.5:80/a/b/", backend, front, PREFIX) == PREFIX + "/a/b/"
    assert rewrite_url("/", backend, front, PREFIX) == PREFIX + "/"
    assert rewrite_url("https://example.com/x", backend, front, PREFIX) == "https://example.com/x"
    assert rewrite_url("relative/x", backend, front, PREFIX) == "relative/x"
    assert rewrite_url(PREFIX + "/already", backend, front, PREFIX) == PREFIX + "/already"
    assert rewrite_url("https://apiserver:6443/x", backend, front, PREFIX) == "https://apiserver:6443" + PREFIX + "/x"


def test_credentials_and_hop_by_hop_headers_are_not_forwarded():
    sent = forward_headers([("Authorization", "Bearer secret"), ("Impersonate-User", "admin"),
                            ("X-Remote-User", "admin"), ("Connection", "keep-alive, X-Custom"), ("X-Custom", "1"),
                            ("Transfer-Encoding", "chunked"), ("Host", "apiserver"), ("Accept", "text/html"),
                            ("Content-Length", "5"), ("X-Forwarded-For", "1.2.3.4"), ("Expect", "100-continue")],
                           "10.0.0.9")
    assert sent == [("Accept", "text/html"), ("Content-Length", "5"), ("X-Forwarded-For", "1.2.3.4, 10.0.0.9")]
    got = response_headers([("Content-Type", "text/plain"), ("Connection", "close"), ("Keep-Alive", "x"),
                            ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
    assert got == [("Content-Type", "text/plain"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]


def rewrite_html(pieces: list[bytes]) -> bytes:
    r = HtmlLinkRewriter(lambda u: rewrite_url(u, "10.1.0.5", "front", PREFIX))
    return b"".join(r.feed(p) for p in pieces) + r.close()


def test_html_links_are_rewritten_as_upstream_does():
    page = b'<a href="/rewriteme">test</a>'
    assert rewrite_html([page]) == b'<a href="' + PREFIX.encode() + b'/rewriteme">test</a>'


def test_html_rewriting_is_the_same_whatever_the_pieces():
    page = (b"<!DOCTYPE html><html><head><link rel=stylesheet href='/s.css'><title>a <b> t</title>"
            b"<script src=/app.js>if (a<b) { x = '<a href=\"/no\">'; }</script></head>"
            b"<body><!-- <a href=\"/comment\"> --><img src=\"/i.png\" alt=\"x > y\"/>"
            b"<a href=\"https://other/x\">o</a><a href=\"rel\">r</a><p>1 < 2 &amp; caf\xc3\xa9</p></body></html>")
    whole = rewrite_html([page])
    for size in (1, 2, 3, 7, 64):
        assert rewrite_html([page[i:i + size] for i in range(0, len(page), size)]) == whole
    p = PREFIX.encode()
    assert b'<link rel="stylesheet" href="' + p + b'/s.css">' in whole
    assert b'<script src="' + p + b'/app.js">if (a<b) { x = \'<a href="/no">\'; }</script>' in whole
    assert b'<!-- <a href="/comment"> -->' in whole
    assert b'<img src="' + p + b'/i.png" alt="x &gt; y"/>' in whole
    assert b'<a href="https://other/x">o</a><a href="rel">r</a><p>1 < 2 &amp; caf\xc3\xa9</p>' in whole


def test_unfinished_tag_at_the_end_passes_through():
    assert rewrite_html([b"<p>x</p><a href=\"/unterminated"]) == b"<p>x</p><a href=\"/unterminated"


def test_gzip_html_is_decoded_rewritten_and_encoded_again():
    page = b'<a href="/rewriteme">test</a>' * 50
    body = gzip.compress(page)
    rec = _Recoder("gzip")
    r = HtmlLinkRewriter(lambda u: rewrite_url(u, "10.1.0.5", "front", PREFIX))
    out = b"".join(rec.encode(r.feed(rec.decode(body[i:i + 10]))) for i in range(0, len(body), 10))
    out += rec.encode(r.close(), final=True)
    assert gzip.decompress(out) == (b'<a href="' + PREFIX.encode() + b'/rewriteme">test</a>') * 50


# -- the relay, against a backend on loopback ----------------------------------------------
# (The relay itself dials whatever it is given; refusing loopback is `serve`'s job, above.)


class _NoCache:
    def get(self, key: str) -> None:
        return None


@pytest.fixture
async def relayed():
    """A backend app and a front app whose proxy URL relays to it; yields (front URL
    prefix, client session, what the backend saw)."""
    import aiohttp
    from aiohttp import web

    from kybernetes.apiserver.proxy import ProxyRelay
    from kybernetes.testing.cluster import free_port

    seen: dict[str, Any] = {}

    async def echo(request: web.Request) -> web.StreamResponse:
        total = 0
        async for chunk in request.content.iter_chunked(65536):
            total += len(chunk)
        seen.update(method=request.method, path=request.raw_path, headers=dict(request.headers), size=total)
        return web.json_response({"method": request.method, "size": total})

    async def redirect(request: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": f"http://{request.host}/elsewhere/"})

    async def page(request: web.Request) -> web.StreamResponse:
        return web.Response(body=gzip.compress(b'<img src="/i.png">' * 1000),
                            headers={"Content-Type": "text/html; charset=utf-8", "Content-Encoding": "gzip"})

    async def ws(request: web.Request) -> web.StreamResponse:
        sock = web.WebSocketResponse(protocols=("echo.v1",))
        await sock.prepare(request)
        async for msg in sock:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await sock.send_str("text:" + msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await sock.send_bytes(b"bin:" + msg.data)
        return sock

    back = web.Application()
    back.router.add_route("*", "/echo/{tail:.*}", echo)
    back.router.add_get("/redirect", redirect)
    back.router.add_get("/page", page)
    back.router.add_get("/ws", ws)
    back_port, front_port = free_port(), free_port()
    session = aiohttp.ClientSession(auto_decompress=False)
    relay = ProxyRelay(_NoCache(), lambda: session, None)  # type: ignore[arg-type]

    async def front_handler(request: web.Request) -> web.StreamResponse:
        path, prepend = proxied_path(request.path, 7)
        port = back_port if request.match_info["name"] == "up" else free_port()
        return await relay.relay(request, ProxyLocation("http", "127.0.0.1", port), path, prepend)

    @web.middleware
    async def as_status(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as e:
            return web.json_response(e.status(), status=e.code)

    front = web.Application(middlewares=[as_status])
    front.router.add_route("*", "/api/v1/namespaces/ns/pods/{name}/proxy{tail:.*}", front_handler)
    runners = []
    for app, port in ((back, back_port), (front, front_port)):
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
    yield f"http://127.0.0.1:{front_port}/api/v1/namespaces/ns/pods", session, seen
    await session.close()
    for runner in runners:
        await runner.cleanup()


async def test_relay_streams_a_large_body_and_strips_credentials(relayed):
    base, session, seen = relayed
    size = 24 * 1024 * 1024

    async def body():
        for _ in range(size // 65536):
            yield b"z" * 65536

    async with session.patch(f"{base}/up/proxy/echo/a%20b?q=1&q=2", data=body(),
                             headers={"Authorization": "Bearer secret", "Impersonate-User": "admin",
                                      "X-Trace": "t1"}) as r:
        assert r.status == 200 and await r.json() == {"method": "PATCH", "size": size}
    assert seen["path"] == "/echo/a%20b?q=1&q=2"
    assert "Authorization" not in seen["headers"] and "Impersonate-User" not in seen["headers"]
    assert seen["headers"]["X-Trace"] == "t1" and seen["headers"]["X-Forwarded-For"] == "127.0.0.1"


async def test_relay_passes_redirects_back_rewritten_and_unfollowed(relayed):
    base, session, _ = relayed
    async with session.get(f"{base}/up/proxy/redirect", allow_redirects=False) as r:
        assert r.status == 302
        assert r.headers["Location"] == "/api/v1/namespaces/ns/pods/up/proxy/elsewhere/"


async def test_relay_rewrites_gzipped_html_and_keeps_it_gzipped(relayed):
    base, session, _ = relayed
    async with session.get(f"{base}/up/proxy/page") as r:
        assert r.headers["Content-Encoding"] == "gzip" and "Content-Length" not in r.headers
        body = gzip.decompress(await r.read())
    assert body == b'<img src="/api/v1/namespaces/ns/pods/up/proxy/i.png">' * 1000


async def test_relay_carries_websocket_messages_both_ways(relayed):
    base, session, _ = relayed
    async with session.ws_connect(f"{base}/up/proxy/ws", protocols=("echo.v1",)) as sock:
        assert sock.protocol == "echo.v1"
        await sock.send_str("hi")
        assert (await sock.receive()).data == "text:hi"
        await sock.send_bytes(b"\x00\x01")
        assert (await sock.receive()).data == b"bin:\x00\x01"


async def test_relay_answers_503_when_the_backend_cannot_be_reached(relayed):
    base, session, _ = relayed
    async with session.get(f"{base}/down/proxy/") as r:
        assert r.status == 503
        status = await r.json()
    assert status["reason"] == "ServiceUnavailable" and status["message"].startswith("error trying to reach service")
