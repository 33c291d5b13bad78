"""What every request to the rating page passes before it reaches a route (an ASGI middleware, ``Guard``), and
the strict JSON reader the routes use (``read_json``).

The page holds a signed-in rater's cookie, so any page the rater's browser opens could try to act with it. The
checks, in order (each refusal is a JSON ``{"error": ...}`` naming the header or field):

1. ``Host`` must be one of the names the server was started for (``host_names``): the bound address and port,
   the loopback names when it listens on loopback, and with ``--public`` the ``--url`` and ``--allowed-host``
   names. Anything else is 421: a DNS-rebinding page (``rebind.attacker.example`` resolving to 127.0.0.1)
   reaches the socket but never a route.
2. For every ``/api/`` and ``/video/`` request and every request that changes state (any method but GET / HEAD):
   ``Sec-Fetch-Site``, where the browser sends it, must be ``same-origin`` (or ``none``, a typed address, for a
   GET); ``Origin``, where sent, must be this very ``Host``; else ``Referer``, where sent, must be on it. A page on
   ``127.0.0.1:<another port>`` is the same *site* (its requests carry a SameSite=Strict cookie) but another
   *origin*: 403. A request without any of the three headers is no browser's (browsers send ``Origin`` with every
   POST), so it cannot carry a victim's cookie and is let through, as ``curl`` or a script on the machine.
3. A state-changing request must say ``Content-Type: application/json`` (415 otherwise). An HTML form can only
   send form or text bodies, and a cross-origin ``fetch`` with a JSON type needs a CORS preflight this server
   never grants.
4. The body is read here, at most ``MAX_BODY`` bytes (4 KiB; a vote is about 100): a larger ``Content-Length``
   is refused before reading, and a chunked body as soon as it passes the limit (413). Nothing is parsed before.

Every response gets ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``,
``X-Frame-Options: DENY`` and a Content-Security-Policy allowing only this origin's own script, style and media,
with ``frame-ancestors 'none'`` (no page can frame the rating page and steer the rater's clicks).

``read_json`` refuses JSON nested deeper than ``MAX_DEPTH`` before parsing it (Python's parser recurses and would
raise RecursionError), and anything that is not an object.
"""
from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

MAX_BODY = 4096            # bytes of a request body; a vote or a sign-in is about 100
MAX_DEPTH = 4              # nesting of a JSON body; the page sends flat objects (depth 1)
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "content-security-policy": ("default-src 'none'; script-src 'self'; style-src 'self'; media-src 'self'; "
                                "connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
                                "frame-ancestors 'none'"),
}
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
WILDCARDS = ("0.0.0.0", "::", "")


class BadRequest(Exception):
    """A request the routes refuse; ``status`` and a message naming the field."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _bracket(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_names(bind: str, port: int, *, url: str | None = None, extra: Iterable[str] = ()) -> frozenset[str]:
    """The ``Host`` values the server answers: ``NAME:PORT`` of the bound address (the loopback names too when it
    listens on loopback or on every address), the ``--url``'s own ``host[:port]``, and each ``--allowed-host``
    (``NAME`` or ``NAME:PORT``; a bare name also matches ``NAME:PORT`` of the bound port)."""
    names: set[str] = set()
    if bind in WILDCARDS or is_loopback(bind):
        names.update(f"{n}:{port}" for n in LOOPBACK_NAMES)
    if bind not in WILDCARDS:
        names.add(f"{_bracket(bind)}:{port}".lower())
    if url:
        netloc = urlsplit(url).netloc.lower().rsplit("@", 1)[-1]
        if netloc:
            names.add(netloc)
    for name in extra:
        name = name.strip().lower()
        if name:
            names.add(name)
            if not name.endswith("]") and ":" not in name:
                names.add(f"{name}:{port}")
    return frozenset(names)


def _netloc(value: str) -> str | None:
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts.netloc.lower()


def cross_origin(headers: dict[str, str], host: str, *, changes_state: bool) -> str | None:
    """Why this request is not from the page's own origin (a message), or None."""
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site != "same-origin" and (changes_state or fetch_site != "none"):
        return (f"Sec-Fetch-Site: {fetch_site!r}: the rating page only answers its own page (open it at "
                f"http://{host}/)")
    origin = headers.get("origin")
    if origin is not None:
        if _netloc(origin) != host:
            return f"Origin: {origin!r} is not this page's origin (http://{host})"
        return None
    referer = headers.get("referer")
    if referer is not None and _netloc(referer) != host:
        return f"Referer: {referer!r} is not on this page's origin (http://{host})"
    return None


def json_depth(body: bytes) -> int:
    """Deepest nesting of ``[`` / ``{`` outside strings (no parsing, no recursion)."""
    depth = deepest = 0
    in_str = escaped = False
    for b in body:
        if in_str:
            if escaped:
                escaped = False
            elif b == 0x5C:                      # backslash
                escaped = True
            elif b == 0x22:                      # closing quote
                in_str = False
        elif b == 0x22:
            in_str = True
        elif b in (0x5B, 0x7B):                  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif b in (0x5D, 0x7D):
            depth -= 1
    return deepest


def read_json(body: bytes) -> dict[str, Any]:
    """The JSON object of a request body; BadRequest (400) naming what is wrong."""
    if json_depth(body) > MAX_DEPTH:
        raise BadRequest(400, f"body: JSON nested deeper than {MAX_DEPTH} levels (the page sends flat objects)")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(400, f"body: not valid UTF-8 JSON ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise BadRequest(400, f"body: expected a JSON object, got {type(data).__name__}")
    return data


class Guard:
    """ASGI middleware: the checks of this module's docstring around ``app``; the read body is handed on whole."""

    def __init__(self, app, *, hosts: Iterable[str], max_body: int = MAX_BODY) -> None:
        self.app, self.hosts, self.max_body = app, frozenset(h.lower() for h in hosts), max_body

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secure(message) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k.encode() not in have]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        async def refuse(status: int, message: str) -> None:
            body = json.dumps({"error": message}).encode()
            await send_secure({"type": "http.response.start", "status": status,
                               "headers": [(b"content-type", b"application/json"), (b"cache-control", b"no-store"),
                                           (b"content-length", str(len(body)).encode())]})
            await send_secure({"type": "http.response.body", "body": body})

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "").strip().lower()
        if host not in self.hosts:
            await refuse(421, f"Host: {host!r} is not a name this server was started for (allowed: "
                              f"{', '.join(sorted(self.hosts))}); with --public add it with --allowed-host")
            return
        method, path = scope["method"], scope["path"]
        changes_state = method not in ("GET", "HEAD")
        if changes_state or path.startswith(("/api/", "/video/")):
            problem = cross_origin(headers, host, changes_state=changes_state)
            if problem:
                await refuse(403, problem)
                return
        if changes_state:
            ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if ctype != "application/json":
                await refuse(415, f"Content-Type: {ctype or 'missing'!r}; this server takes application/json only")
                return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await refuse(413, f"body: Content-Length {length} is over this server's limit of {self.max_body} bytes")
            return
        chunks, size, more = [], 0, True
        while more:                                      # chunked or not: never more than max_body bytes
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await refuse(413, f"body: over this server's limit of {self.max_body} bytes")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send_secure)
