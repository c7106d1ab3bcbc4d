"""The dashboard refuses strangers: a Host check, an optional bearer token, security headers.

- **Host.** A request whose `Host` is not an address the server was bound to (with or without
  its port), a loopback name when bound to loopback or to every interface, or a name given with
  `--allowed-host`, is answered 421 and reaches nothing: a DNS-rebinding page (a name of the
  attacker's that resolves to 127.0.0.1) cannot read runs or logs.
- **Token.** With a token, every request needs it: `Authorization: Bearer TOKEN` (scripts, CI
  calling /api/health/cutover), or a session cookie a browser gets by opening any page once
  with `?token=TOKEN` (answered by a redirect to the same page without it, setting an HttpOnly,
  SameSite=Strict cookie holding a digest of the token, never the token). Compared in
  constant time.
- **Headers.** Every answer (refusals included) carries a Content-Security-Policy allowing
  only the server's own scripts, styles and connections (no inline script or style, no
  framing), X-Content-Type-Options: nosniff, Referrer-Policy: no-referrer and
  X-Frame-Options: DENY.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
WILDCARDS = frozenset({"0.0.0.0", "::", "[::]", ""})
COOKIE = "pt_serve_session"
TOKEN_PARAMETER = "token"
MIN_TOKEN_LENGTH = 16
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
)


@dataclass(frozen=True)
class Guard:
    """Who the dashboard answers: the Host names it accepts and the token it requires."""

    hosts: frozenset[str]  # lower-case names: "127.0.0.1", "[::1]", "dash.example"
    port: int | None = None  # the bound port (None: any port, e.g. an ephemeral one)
    extra_ports: dict[str, frozenset[int]] = field(default_factory=dict)  # name:port given
    token: str | None = None

    @classmethod
    def for_binding(cls, host: str, port: int, allowed: Iterable[str] = (),
                    token: str | None = None) -> Guard:
        """The guard of a server bound to `host`:`port` that also answers the `allowed` names
        (each NAME or NAME:PORT)."""
        names = set(_bound_names(host))
        extra: dict[str, set[int]] = {}
        for entry in allowed:
            name, entry_port = split_host(entry)
            names.add(name)
            if entry_port is not None:
                extra.setdefault(name, set()).add(entry_port)
        return cls(hosts=frozenset(names), port=port or None, token=token,
                   extra_ports={name: frozenset(ports) for name, ports in extra.items()})

    def host_allowed(self, header: str) -> bool:
        """True if a request with this Host header is for this server."""
        name, port = split_host(header)
        if name not in self.hosts:
            return False
        return port is None or self.port is None or port == self.port or \
            port in self.extra_ports.get(name, frozenset())

    def session(self) -> str:
        """The cookie value standing for the token (a digest: the cookie never holds it)."""
        assert self.token is not None
        return hmac.new(self.token.encode(), b"pt serve session", hashlib.sha256).hexdigest()

    def token_matches(self, given: str) -> bool:
        """Constant-time comparison of `given` with the token."""
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())


def split_host(header: str) -> tuple[str, int | None]:
    """(lower-case name, port or None) of a Host header or NAME[:PORT]; IPv6 in brackets."""
    text = header.strip().lower()
    if text.startswith("["):
        name, _, rest = text.partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        name += "]"
    else:
        name, _, port_text = text.partition(":")
    name = name.rstrip(".")
    port = int(port_text) if port_text.isdigit() and len(port_text) <= 5 else None
    return name, port


def is_loopback(host: str) -> bool:
    """True if `host` (a name or address) is this machine only."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _bound_names(host: str) -> list[str]:
    """The Host names a server bound to `host` answers by itself."""
    name = host.strip().lower()
    if name in WILDCARDS or is_loopback(name):
        return sorted(LOOPBACK_NAMES)
    try:
        if ipaddress.ip_address(name.strip("[]")).version == 6:
            return [f"[{name.strip('[]')}]"]
    except ValueError:
        pass
    return [name]


class GuardMiddleware:
    """ASGI middleware applying a Guard to every HTTP request (see the module docstring)."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_security_headers(send)
        headers = _headers(scope)
        host = headers.get("host", "")
        if not self.guard.host_allowed(host):
            await _plain(send, 421, f"pt serve: host {host or '(none)'!r} is not served here; "
                                    "start pt serve with --allowed-host for that name\n")
            return
        if self.guard.token is None or self._session_ok(headers):
            await self.app(scope, receive, send)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                               keep_blank_values=True))
        if self.guard.token_matches(query.get(TOKEN_PARAMETER, "")):
            await self._open_session(scope, query, send)
            return
        await _plain(send, 401, "pt serve: this dashboard needs its token: open it once with "
                                "?token=TOKEN, or send Authorization: Bearer TOKEN\n",
                     [(b"www-authenticate", b'Bearer realm="pt serve"')])

    def _session_ok(self, headers: dict[str, str]) -> bool:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.guard.token_matches(credentials.strip()):
            return True
        try:
            cookies = SimpleCookie(headers.get("cookie", ""))
        except CookieError:
            return False
        morsel = cookies.get(COOKIE)
        return morsel is not None and hmac.compare_digest(morsel.value.encode(),
                                                          self.guard.session().encode())

    async def _open_session(self, scope: Scope, query: dict[str, str], send: Send) -> None:
        """Redirect to the same page without the token, setting the session cookie."""
        rest = urlencode({k: v for k, v in query.items() if k != TOKEN_PARAMETER})
        path: bytes = scope.get("raw_path") or scope.get("path", "/").encode()
        path = b"/" + path.lstrip(b"/")  # never "//host": a redirect stays on this server
        location = path + (f"?{rest}".encode() if rest else b"")
        cookie = f"{COOKIE}={self.guard.session()}; HttpOnly; SameSite=Strict; Path=/"
        await _plain(send, 303, "", [(b"location", location), (b"set-cookie", cookie.encode())])


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name (the first of repeated ones)."""
    found: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        found.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return found


def _with_security_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", [])}
            message["headers"] = [*message.get("headers", []),
                                  *(h for h in SECURITY_HEADERS if h[0] not in present)]
        await send(message)

    return sending


async def _plain(send: Send, status: int, text: str,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
