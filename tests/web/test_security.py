"""The dashboard refuses strangers (issue 12, item 8): `pt serve` as a real process.

Before the fix `pt serve` answered any `Host:` header (a DNS-rebinding page, a name of the
attacker's resolving to 127.0.0.1, could read every run and log) and sent no security
headers. Now a foreign Host gets 421 and reaches nothing; every answer carries a
Content-Security-Policy with no inline script, nosniff, no-referrer and no framing; a token,
when given, is required by every route (the cutover gate's too), from scripts as a bearer
token and from browsers through `?token=` once and then an HttpOnly, SameSite=Strict cookie;
and binding beyond loopback needs one.
"""

from __future__ import annotations

import http.client
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from pulsaride.web import security
from tests.web.conftest import RunsWorld, Server, pt

TOKEN = "t0ken-for-the-dashboard-tests-0123456789"
PATHS = ["/", "/live", "/runs/ok-1", "/runs/ok-1/live", "/runs/ok-1/timeline",
         "/runs/broken-1/jobs/compile/log", "/api/runs", "/api/runs/ok-1", "/api/health",
         "/api/health/cutover", "/openapi.json", "/static/dashboard.js",
         "/static/dashboard.css", "/runs/nope", "/events?run=ok-1"]


def raw(server: Server, path: str, host: str | None, headers: dict[str, str] | None = None,
        ) -> tuple[int, dict[str, str], bytes]:
    """GET `path` with exactly this Host header (None: no Host header at all)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            connection.putheader("Host", host)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        found = {name.lower(): value for name, value in response.getheaders()}
        if path.startswith("/events") and response.status == 200:
            return response.status, found, response.read(8)  # a stream: its start only
        return response.status, found, response.read()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def state(runs_world: RunsWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return runs_world.copy(tmp_path_factory.mktemp("security") / "state")


@pytest.fixture(scope="module")
def open_server(serve: Any, state: Path) -> Server:
    """`pt serve` as a user starts it: loopback, no token."""
    server: Server = serve("--state-dir", state)
    return server


@pytest.fixture(scope="module")
def named_server(serve: Any, state: Path) -> Server:
    server: Server = serve("--state-dir", state, "--allowed-host", "dash.example",
                           "--allowed-host", "proxy.example:443")
    return server


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("token") / "token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture(scope="module")
def locked(serve: Any, state: Path, token_file: Path) -> Server:
    server: Server = serve("--state-dir", state, "--token-file", token_file, token=TOKEN)
    return server


# ---- Host ------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example",
                                  "localhost.evil.example:{port}", "127.0.0.1:1", "[::2]:{port}",
                                  "dash.example.evil", "proxy.example:444", ""])
def test_a_foreign_host_is_refused_before_anything_is_read(open_server: Server,
                                                           host: str) -> None:
    header = host.format(port=open_server.port)
    for path in PATHS:
        status, headers, body = raw(open_server, path, header)
        assert status == 421, (path, header, status, body[:200])
        assert body.count(b"\n") == 1 and b"is not served here" in body, body
        assert b"ok-1" not in body and b"compile" not in body
        assert "script-src 'self'" in headers["content-security-policy"]


def test_a_request_without_a_host_reaches_nothing(open_server: Server) -> None:
    status, _, body = raw(open_server, "/api/runs/ok-1", None)
    assert status in (400, 421) and b"ok-1" not in body  # HTTP/1.1 needs a Host: uvicorn says 400


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:{port}", "localhost:{port}",
                                  "LOCALHOST", "[::1]:{port}", "dash.example",
                                  "dash.example:{port}", "proxy.example:443"])
def test_the_bound_address_and_allowed_names_are_answered(named_server: Server,
                                                          host: str) -> None:
    status, _, body = raw(named_server, "/api/runs/ok-1", host.format(port=named_server.port))
    assert status == 200, body[:300]
    assert b'"state":"succeeded"' in body


@pytest.mark.parametrize("host", ["dash.example.evil", "proxy.example:444", "evil.example"])
def test_names_beyond_the_allowed_ones_are_still_refused(named_server: Server,
                                                         host: str) -> None:
    assert raw(named_server, "/api/runs/ok-1", host)[0] == 421


# ---- headers ---------------------------------------------------------------------------------


def test_every_answer_carries_the_security_headers(open_server: Server) -> None:
    host = f"127.0.0.1:{open_server.port}"
    statuses = set()
    for path in [*PATHS, "/runs/..%2f..%2fetc"]:
        for where in (host, "evil.example"):
            status, headers, _ = raw(open_server, path, where)
            statuses.add(status)
            policy = headers.get("content-security-policy", "")
            assert {"default-src 'none'", "script-src 'self'", "style-src 'self'",
                    "connect-src 'self'", "frame-ancestors 'none'"} <= {
                part.strip() for part in policy.split(";")}, (path, policy)
            assert headers.get("x-content-type-options") == "nosniff", path
            assert headers.get("referrer-policy") == "no-referrer", path
            assert headers.get("x-frame-options") == "DENY", path
    assert {200, 404, 421} <= statuses


def test_pages_hold_no_inline_script_or_style(open_server: Server) -> None:
    for path in ("/", "/runs/ok-1", "/runs/gate-1", "/runs/broken-1"):
        html = open_server.get(path).text
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == [], path
        assert "<style" not in html, path
        tags = " ".join(re.findall(r"<[^>]+>", html))
        assert not re.search(r"\s(style|on[a-z]+)\s*=", tags), path
        assert '<script src="/static/dashboard.js"></script>' in html


# ---- the token -------------------------------------------------------------------------------


def test_without_the_token_nothing_is_answered(locked: Server) -> None:
    host = f"127.0.0.1:{locked.port}"
    for path in PATHS:
        for headers in ({}, {"Authorization": "Bearer wrong-" + TOKEN},
                        {"Authorization": f"Basic {TOKEN}"},
                        {"Cookie": f"{security.COOKIE}=0123abcd"},
                        {"Cookie": f"{security.COOKIE}={TOKEN}"}):
            status, found, body = raw(locked, path, host, headers)
            assert status == 401, (path, headers, status)
            assert body.count(b"\n") == 1 and b"needs its token" in body
            assert found["www-authenticate"].startswith("Bearer")
        status, _, _ = raw(locked, f"{path}{'&' if '?' in path else '?'}token=wrong", host)
        assert status == 401, path


def test_the_bearer_token_opens_every_route_the_cutover_gate_included(locked: Server) -> None:
    host = f"127.0.0.1:{locked.port}"
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for path in PATHS:
        status, _, body = raw(locked, path, host, bearer)
        assert status in (200, 404, 503), (path, status, body[:200])
    status, _, body = raw(locked, "/api/health/cutover", host, bearer)
    assert status == 503 and b'"verdict":"NO-GO"' in body  # no target: the gate stays shut
    status, _, _ = raw(locked, "/api/runs", "evil.example", bearer)
    assert status == 421  # the token does not make a foreign Host acceptable


def test_a_token_in_the_address_becomes_an_http_only_strict_cookie(locked: Server) -> None:
    host = f"127.0.0.1:{locked.port}"
    status, headers, _ = raw(locked, f"/runs/ok-1?x=1&token={TOKEN}", host)
    assert status == 303
    assert headers["location"] == "/runs/ok-1?x=1"  # the token leaves the address bar
    cookie = headers["set-cookie"]
    name, value = cookie.split(";")[0].split("=", 1)
    assert name == security.COOKIE and TOKEN not in cookie
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= {p.strip() for p in cookie.split(";")}
    status, _, body = raw(locked, "/api/runs/ok-1", host, {"Cookie": f"{name}={value}"})
    assert status == 200 and b'"state":"succeeded"' in body
    status, headers, _ = raw(locked, f"//evil.example/x?token={TOKEN}", host)
    assert status == 303 and headers["location"] == "/evil.example/x"  # never off-site


def test_a_browser_gets_in_with_the_token_once(locked: Server, page: Page) -> None:
    page.goto(f"{locked.url}/?token={TOKEN}")
    assert page.url == f"{locked.url}/"
    expect(page.locator('tr[data-run="ok-1"]')).to_be_visible()
    page.goto(f"{locked.url}/runs/broken-1")
    expect(page.locator("#run-state")).to_have_text("failed")
    row = page.locator('tr[data-job="compile"]')
    row.locator("summary").click()  # the script (a file of its own) loads the log tail
    expect(row.locator("pre")).to_contain_text("missing semicolon")
    cookies = page.context.cookies()
    assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [
        (security.COOKIE, True, "Strict")]


def test_pt_serve_token_in_the_environment_works_too(serve: Any, state: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PT_SERVE_TOKEN", TOKEN)
    server: Server = serve("--state-dir", state, token=TOKEN)
    assert server.json("/api/runs/ok-1")["state"] == "succeeded"
    assert raw(server, "/api/runs", f"127.0.0.1:{server.port}")[0] == 401


def test_tokens_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    original = security.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    guard = security.Guard.for_binding("127.0.0.1", 8765, token=TOKEN)
    assert guard.token_matches(TOKEN) and not guard.token_matches(TOKEN[:-1])
    assert len(calls) == 2


# ---- binding ---------------------------------------------------------------------------------


@pytest.mark.parametrize("extra", [(), ("--token-file", "short")])
def test_binding_beyond_loopback_needs_a_token(tmp_path: Path, extra: tuple[str, ...],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "short").write_text("too-short\n")
    result = pt("serve", "--host", "0.0.0.0", "--allow-remote", "--port", "9", "--state-dir",
                tmp_path, *extra, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    (line,) = result.stderr.splitlines()
    assert line.startswith("pt: error: ") and "Traceback" not in result.stderr
    assert ("needs a token" in line) if not extra else ("at least 16" in line), line
