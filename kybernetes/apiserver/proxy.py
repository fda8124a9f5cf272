"""The proxy subresources: `<resource>/<[SCHEME:]NAME[:PORT]>/proxy[/PATH]` relayed over HTTP.

Which backend a request goes to is the kind's decision (`KindStrategy.proxy_location`,
see `kybernetes.api.kinds.proxying`); this module is the relay, as kube-apiserver's
upgrade-aware proxy handler and its rewriting transport:

* every method of `PROXY_METHODS`, the query string passed on unchanged, the path
  after `proxy` cleaned (`..` cannot climb out of the backend's root);
* a GET or HEAD with nothing after `proxy` is sent to `proxy/` with a 301, as upstream;
* request and response bodies are streamed both ways in chunks (memory stays bounded
  whatever their size); credentials of the API request (Authorization, impersonation,
  front-proxy identity) are not passed on, and only the node agent's own port gets
  the server's agent client certificate, over a connection that proved to be that
  node's agent (`agentdial`);
* a backend's redirect is passed back, never followed, with a `Location` that points
  at the backend rewritten to go through the proxy, and links in `text/html` answers
  rewritten the same way (streamed, `HtmlLinkRewriter`);
* a WebSocket upgrade is relayed message by message;
* a host name is resolved and refused (400 "address not allowed") if any of its
  addresses is loopback, link-local or otherwise not global unicast, or is the API
  server's own endpoint; a backend that cannot be reached is a 503 "error trying to
  reach service".
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import re
import ssl
import urllib.parse
import zlib
from collections.abc import Callable, Iterable
from typing import Any

import aiohttp
import yarl
from aiohttp import web

from kybernetes.api.aiotasks import cancel_and_wait
from kybernetes.api.errors import ApiError
from kybernetes.api.kinds import strategy_for
from kybernetes.api.kinds.proxying import Obj, ProxyLocation
from kybernetes.apiserver.agentdial import AgentDialer, Resolve, request_endpoint, resolve_host
from kybernetes.apiserver.watchcache import WatchCache

PROXY_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
CHUNK = 64 * 1024
# Headers that belong to one connection, not to the message (RFC 9110 7.6.1).
_HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-connection", "proxy-authenticate",
                         "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"))
# Who the API client is must not reach a workload: upstream's authentication filters
# remove these before a request is proxied.
_CREDENTIALS = frozenset(("authorization",))
# aiohttp answers a client's Expect itself; the backend must not be asked again.
_NOT_FORWARDED = frozenset(("expect",))
_CREDENTIAL_PREFIXES = ("impersonate-", "x-remote-")
_WEBSOCKET_HANDSHAKE = frozenset(("sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
                                  "sec-websocket-protocol", "sec-websocket-accept", "host", "content-length"))
# URL-valued attributes per HTML tag (upstream's atomsToAttrs).
_URL_ATTRS: dict[str, frozenset[str]] = {
    "a": frozenset({"href"}), "applet": frozenset({"codebase"}), "area": frozenset({"href"}),
    "audio": frozenset({"src"}), "base": frozenset({"href"}), "blockquote": frozenset({"cite"}),
    "body": frozenset({"background"}), "button": frozenset({"formaction"}), "command": frozenset({"icon"}),
    "del": frozenset({"cite"}), "embed": frozenset({"src"}), "form": frozenset({"action"}),
    "frame": frozenset({"longdesc", "src"}), "head": frozenset({"profile"}), "html": frozenset({"manifest"}),
    "iframe": frozenset({"longdesc", "src"}), "img": frozenset({"longdesc", "src", "usemap"}),
    "input": frozenset({"src", "usemap", "formaction"}), "ins": frozenset({"cite"}),
    "link": frozenset({"href"}), "object": frozenset({"classid", "codebase", "data", "usemap"}),
    "q": frozenset({"cite"}), "script": frozenset({"src"}), "source": frozenset({"src"}),
    "video": frozenset({"poster", "src"}),
}


# -- decisions -----------------------------------------------------------------------------


def request_verb(method: str) -> str:
    """The authorization verb of a proxy request (RBAC rules on `pods/proxy` and the
    like), as upstream's request info derives it: OPTIONS has none."""
    return {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete"}.get(method, "")


def clean_path(path: str) -> str:
    """Go's path.Clean for a rooted path ("" stays ""): no empty, `.` or `..` segments."""
    if not path:
        return ""
    out: list[str] = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    return "/" + "/".join(out)


def proxied_path(request_path: str, depth: int) -> tuple[str, str]:
    """(backend path, prefix for rewritten links) of a request whose first `depth`
    non-empty segments lead up to and including `proxy`. The backend path is "" when
    nothing follows `proxy` (the 301 case); a trailing slash is kept."""
    segments = request_path.split("/")
    seen, i = 0, 0
    while i < len(segments) and seen < depth:
        if segments[i]:
            seen += 1
        i += 1
    tail = "/".join(segments[i:]).strip("/")
    trailing = request_path.endswith("/")
    location = clean_path(("/" + tail if tail else "") + ("/" if trailing else ""))
    if trailing and not location.endswith("/"):
        location += "/"
    prepend = request_path[: -len(location)] if location and request_path.endswith(location) else request_path
    return location, prepend


def rewrite_url(value: str, backend_netloc: str, request_host: str, prepend: str) -> str:
    """A URL from a backend's answer, made to go through the proxy when it points at the
    backend itself (no host, the backend's, or the one the client asked): its path gets
    the proxy prefix. Relative references and other hosts are left alone."""
    try:
        url = urllib.parse.urlsplit(value)
    except ValueError:
        return value
    if url.netloc and url.netloc not in (backend_netloc, request_host):
        return value
    if not url.path.startswith("/"):
        return value
    scheme, netloc = url.scheme, url.netloc
    if url.netloc != request_host:
        scheme, netloc = "", ""
    path = url.path
    if not path.startswith(prepend):
        path = clean_path(prepend + "/" + path) + ("/" if path.endswith("/") else "")
    return urllib.parse.urlunsplit((scheme, netloc, path, url.query, url.fragment))


def forward_headers(headers: Iterable[tuple[str, str]], client_ip: str | None, websocket: bool = False) -> list[tuple[str, str]]:
    """The client's headers the backend gets: no hop-by-hop ones (nor those `Connection`
    names), no credentials of the API request; the client's address added to
    X-Forwarded-For."""
    items = list(headers)
    named = {n.strip().lower() for k, v in items if k.lower() == "connection" for n in v.split(",")}
    out: list[tuple[str, str]] = []
    forwarded_for = ""
    for k, v in items:
        low = k.lower()
        if low in _HOP_BY_HOP or low in named or low in _CREDENTIALS or low in _NOT_FORWARDED:
            continue
        if low.startswith(_CREDENTIAL_PREFIXES):
            continue
        if low == "host" or (websocket and low in _WEBSOCKET_HANDSHAKE):
            continue
        if low == "x-forwarded-for":
            forwarded_for = f"{forwarded_for}, {v}" if forwarded_for else v
            continue
        out.append((k, v))
    if client_ip:
        forwarded_for = f"{forwarded_for}, {client_ip}" if forwarded_for else client_ip
    if forwarded_for:
        out.append(("X-Forwarded-For", forwarded_for))
    return out


def response_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The backend's headers the client gets: all but the hop-by-hop ones."""
    items = list(headers)
    named = {n.strip().lower() for k, v in items if k.lower() == "connection" for n in v.split(",")}
    return [(k, v) for k, v in items if k.lower() not in _HOP_BY_HOP and k.lower() not in named]


# -- HTML links ----------------------------------------------------------------------------


_TAG = re.compile(r"""<([a-zA-Z][^\s/>]*)((?:\s*(?:[^\s"'>/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`][^\s>]*))?|/(?!>)))*)\s*(/?)>""")
_ATTR = re.compile(r"""([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`][^\s>]*)))?""")
_RAW_TEXT = frozenset(("iframe", "noembed", "noframes", "noscript", "plaintext", "script", "style", "textarea",
                       "title", "xmp"))
# A construct longer than this that has not ended is passed on as it is.
_MAX_CONSTRUCT = 64 * 1024


def _escape_attr(value: str) -> str:
    return (value.replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("\r", "&#13;"))


class HtmlLinkRewriter:
    """Rewrites URL-valued attributes of start tags in an HTML stream fed in pieces;
    everything else passes through byte for byte. Bytes are handled as Latin-1, so any
    encoding survives. Memory: the unfinished construct at the end of a piece (a tag, a
    comment), at most `_MAX_CONSTRUCT`."""

    def __init__(self, rewrite: Callable[[str], str]) -> None:
        self._rewrite = rewrite
        self._buf = ""
        self._raw_end: str | None = None  # inside <script> and the like: until "</script"

    def feed(self, data: bytes) -> bytes:
        self._buf += data.decode("latin-1")
        return self._run(final=False).encode("latin-1")

    def close(self) -> bytes:
        return self._run(final=True).encode("latin-1")

    def _run(self, final: bool) -> str:
        out: list[str] = []
        buf, pos = self._buf, 0
        while pos < len(buf):
            if self._raw_end is not None:
                end = buf.lower().find(self._raw_end, pos)
                if end < 0:
                    keep = len(self._raw_end) if not final else 0
                    cut = max(pos, len(buf) - keep)
                    out.append(buf[pos:cut])
                    pos = cut
                    break
                out.append(buf[pos:end])
                pos = end
                self._raw_end = None
                continue
            lt = buf.find("<", pos)
            if lt < 0:
                out.append(buf[pos:])
                pos = len(buf)
                break
            out.append(buf[pos:lt])
            pos = lt
            step = self._construct(buf, pos, final)
            if step is None:
                break  # wait for more
            text, pos = step
            out.append(text)
        self._buf = buf[pos:]
        if final and self._buf:
            out.append(self._buf)
            self._buf = ""
        return "".join(out)

    def _construct(self, buf: str, pos: int, final: bool) -> tuple[str, int] | None:
        """The text of the construct at `buf[pos]` == "<" and where the next starts; None
        when it may continue in the next piece."""
        rest = len(buf) - pos
        undecided = not final and rest < _MAX_CONSTRUCT
        if buf.startswith("<!--", pos):
            end = buf.find("-->", pos + 4)
            if end < 0:
                return None if undecided else (buf[pos:], len(buf))
            return buf[pos:end + 3], end + 3
        if rest < 2:
            return None if not final else ("<", pos + 1)
        nxt = buf[pos + 1]
        if nxt in "!?/":
            end = buf.find(">", pos)
            if end < 0:
                return None if undecided else (buf[pos:], len(buf))
            return buf[pos:end + 1], end + 1
        if not nxt.isascii() or not nxt.isalpha():
            return "<", pos + 1
        m = _TAG.match(buf, pos)
        if m is None:
            return None if undecided else ("<", pos + 1)
        tag = m.group(1).lower()
        if tag in _RAW_TEXT:
            self._raw_end = "</" + tag
        return self._start_tag(m, tag), m.end()

    def _start_tag(self, m: re.Match[str], tag: str) -> str:
        url_attrs = _URL_ATTRS.get(tag)
        if url_attrs is None:
            return m.group(0)
        attrs: list[tuple[str, str]] = []
        changed = False
        for a in _ATTR.finditer(m.group(2)):
            key = a.group(1).lower()
            value = html.unescape(next((g for g in a.group(2, 3, 4) if g is not None), ""))
            if key in url_attrs:
                new = self._rewrite(value)
                changed = changed or new != value
                value = new
            attrs.append((key, value))
        if not changed:
            return m.group(0)
        body = "".join(f' {k}="{_escape_attr(v)}"' for k, v in attrs)
        return f"<{tag}{body}{'/' if m.group(3) else ''}>"


class _Recoder:
    """Decodes a gzip or deflate body for the link rewriter and encodes the result back."""

    def __init__(self, encoding: str) -> None:
        wbits = 31 if encoding == "gzip" else -15
        self._d = zlib.decompressobj(wbits)
        self._c = zlib.compressobj(6, zlib.DEFLATED, wbits)

    def decode(self, data: bytes) -> bytes:
        return self._d.decompress(data)

    def encode(self, data: bytes, final: bool = False) -> bytes:
        # A sync flush per piece: what the backend sent so far reaches the client now.
        return self._c.compress(data) + self._c.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)


# -- the relay -----------------------------------------------------------------------------


class ProxyRelay:
    """Serves the proxy subresources of every kind whose strategy names a backend."""

    def __init__(self, cache: WatchCache, session: Callable[[], aiohttp.ClientSession],
                 dialer: AgentDialer | None = None, resolve: Resolve = resolve_host) -> None:
        self.cache = cache
        self._session = session
        self.dialer = dialer if dialer is not None else AgentDialer(None, resolve)
        # Workloads' TLS is not verified (upstream's proxy transport neither), and they
        # get no client certificate of this server.
        self._workload_ssl = ssl.create_default_context()
        self._workload_ssl.check_hostname = False
        self._workload_ssl.verify_mode = ssl.CERT_NONE

    def _lookup(self, plural: str, namespace: str | None, name: str) -> Obj | None:
        key = f"/registry/core/{plural}/{namespace}/{name}" if namespace else f"/registry/core/{plural}/{name}"
        co = self.cache.get(key)
        return co.obj if co is not None else None

    async def serve(self, request: web.Request, target: Any) -> web.StreamResponse:
        info = target.info
        if request.method not in PROXY_METHODS:
            raise ApiError.method_not_allowed()
        location = strategy_for(info).proxy_location(info, target.namespace, target.name or "", self._lookup)
        if location is None:
            raise ApiError.path_not_found()
        depth = (2 if not info.group else 3) + (2 if info.namespaced else 0) + 3
        path, prepend = proxied_path(request.path, depth)
        raw_query = request.raw_path.partition("?")[2]
        if not path and request.method in ("GET", "HEAD") and not _is_websocket(request):
            raw = request.raw_path.partition("?")[0]
            return web.Response(status=301, headers={"Location": raw + "/" + (f"?{raw_query}" if raw_query else "")})
        addresses = await self.dialer.check(location.host, location.port or (443 if location.scheme == "https"
                                                                            else 80),
                                            request_endpoint(request.transport))
        if not location.agent and location.host not in addresses:
            # Dial the address just checked: a second lookup could answer another (DNS
            # rebinding). An agent needs no pin: it must prove its node's identity.
            location = dataclasses.replace(location, address=addresses[0])
        return await self.relay(request, location, path, prepend)

    async def relay(self, request: web.Request, location: ProxyLocation, path: str,
                    prepend: str) -> web.StreamResponse:
        """Send `request` to `path` (and the request's query) at `location`, an address
        already allowed, and answer with the backend's answer; `prepend` is the proxy's
        own URL prefix, for rewritten links."""
        raw_query = request.raw_path.partition("?")[2]
        url = yarl.URL(f"{location.scheme}://{location.dial_netloc}{urllib.parse.quote(path or '/', safe='/$&+,:;=@')}"
                       + (f"?{raw_query}" if raw_query else ""), encoded=True)
        if _is_websocket(request):
            return await self._websocket(request, url, location)
        return await self._forward(request, url, location, prepend)

    def _dial_options(self, location: ProxyLocation) -> tuple[aiohttp.ClientSession, dict[str, Any]]:
        """The session and TLS options of a call to `location`: the node's agent through
        the agent dialer (its identity proved), a workload through the plain session
        without this server's certificate."""
        if location.agent:
            return self.dialer.session(), self.dialer.tls_options(location.node)
        options: dict[str, Any] = {"ssl": self._workload_ssl if location.scheme == "https" else True}
        if location.address and location.scheme == "https":
            options["server_hostname"] = location.host
        return self._session(), options

    @staticmethod
    def _host_header(location: ProxyLocation) -> list[tuple[str, str]]:
        """A pinned address is dialled under the name the backend knows."""
        return [("Host", location.netloc)] if location.address else []

    async def _forward(self, request: web.Request, url: yarl.URL, location: ProxyLocation,
                       prepend: str) -> web.StreamResponse:
        peer = request.remote
        headers = forward_headers(request.headers.items(), peer) + self._host_header(location)
        body: Any = request.content if request.body_exists else None
        session, options = self._dial_options(location)
        try:
            upstream = await session.request(
                request.method, url, headers=headers, data=body, allow_redirects=False, auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"), **options)
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise ApiError(503, "ServiceUnavailable", f"error trying to reach service: {e or type(e).__name__}") from None
        try:
            return await self._answer(request, upstream, location, prepend)
        finally:
            upstream.release()

    async def _answer(self, request: web.Request, upstream: aiohttp.ClientResponse, location: ProxyLocation,
                      prepend: str) -> web.StreamResponse:
        headers = response_headers(upstream.headers.items())
        request_host = request.host
        relocated = False
        for i, (k, v) in enumerate(headers):
            if k.lower() == "location":
                headers[i] = (k, rewrite_url(v, location.netloc, request_host, prepend))
                relocated = True
        ctype = upstream.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        encoding = upstream.headers.get("Content-Encoding", "").strip().lower()
        rewriter: HtmlLinkRewriter | None = None
        recoder: _Recoder | None = None
        if not relocated and ctype == "text/html" and encoding in ("", "gzip", "deflate"):
            rewriter = HtmlLinkRewriter(lambda u: rewrite_url(u, location.netloc, request_host, prepend))
            recoder = _Recoder(encoding) if encoding else None
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        resp = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for k, v in headers:
            resp.headers.add(k, v)
        no_body = request.method == "HEAD" or upstream.status in (204, 304) or 100 <= upstream.status < 200
        if rewriter is not None and not no_body:
            resp.enable_chunked_encoding()
        await resp.prepare(request)
        if no_body:
            await resp.write_eof()
            return resp
        try:
            async for chunk in upstream.content.iter_chunked(CHUNK):
                if rewriter is not None:
                    chunk = _rewrite_chunk(rewriter, recoder, chunk)
                if chunk:
                    await resp.write(chunk)
            if rewriter is not None:
                tail = rewriter.close()
                chunk = recoder.encode(tail, final=True) if recoder is not None else tail
                if chunk:
                    await resp.write(chunk)
        except (TimeoutError, aiohttp.ClientError, ConnectionResetError, zlib.error):
            # The backend went away (or sent a broken body) after the answer started: end it there.
            if request.transport is not None:
                request.transport.close()
            return resp
        await resp.write_eof()
        return resp

    async def _websocket(self, request: web.Request, url: yarl.URL, location: ProxyLocation) -> web.StreamResponse:
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        headers = forward_headers(request.headers.items(), request.remote, websocket=True) + self._host_header(location)
        session, options = self._dial_options(location)
        try:
            back = await session.ws_connect(url, protocols=offered, headers=headers, autoping=True, **options)
        except aiohttp.WSServerHandshakeError as e:
            raise ApiError(502 if e.status < 400 else e.status, "BadRequest" if e.status == 400 else "InternalError",
                           f"the backend refused the WebSocket upgrade: {e.message}") from None
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise ApiError(503, "ServiceUnavailable", f"error trying to reach service: {e}") from None
        front = web.WebSocketResponse(protocols=(back.protocol,) if back.protocol else ())
        try:
            await front.prepare(request)
            await _relay_messages(front, back)
        finally:
            await back.close()
        return front


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def _rewrite_chunk(rewriter: HtmlLinkRewriter, recoder: _Recoder | None, chunk: bytes) -> bytes:
    if recoder is None:
        return rewriter.feed(chunk)
    return recoder.encode(rewriter.feed(recoder.decode(chunk)))


async def _relay_messages(front: web.WebSocketResponse, back: aiohttp.ClientWebSocketResponse) -> None:
    """Text and binary messages both ways until either side closes."""

    async def pump(src: Any, dst: Any) -> None:
        async for msg in src:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await dst.send_str(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await dst.send_bytes(msg.data)
            else:
                break

    tasks = [asyncio.create_task(pump(front, back)), asyncio.create_task(pump(back, front))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait(tasks)
        await front.close()
