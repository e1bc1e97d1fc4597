"""Who may look and who may act: the one-time token, the session cookie, the Host check,
and the CSRF and Origin checks of every action.

Why these choices:
- The server prints a URL with a random token; the first request that shows it gets a
  session cookie (HttpOnly, SameSite=Strict) and is sent on to the same page without the
  token, so the token never stays in the address bar or the history. The token then stops
  working: a URL copied from a terminal's scrollback or a shell history opens nothing.
- Every request's Host must be one the server was started for: a web page elsewhere that
  points a name of its own at 127.0.0.1 (DNS rebinding) is refused before any handler runs.
- An action is a POST that carries the session's CSRF token (a form field) and an Origin
  (or, failing that, a Referer) of this very server. The cookie alone is never enough:
  SameSite covers modern browsers, the token and the Origin the others.
- Static files (the vendored htmx, the style sheet) are served without a session: they hold
  nothing of the Spot's.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "hokuro_session"
#: Sent with every answer: scripts and styles of this server only (inline styles are the
#: bars' widths), no framing (clickjacking), no sniffing, no referrer to other sites.
HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
     b"script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
CSRF_FIELD = "csrf"
_DENIED = """<!doctype html><html lang="en"><meta charset="utf-8"><title>hokuro ui</title>
<body style="font-family:system-ui,sans-serif;max-width:40em;margin:4em auto">
<h1>Open the address hokuro ui printed</h1>
<p>{why}</p>
<p>The address with <code>?token=…</code> that <code>hokuro ui</code> printed when it
started opens the dashboard once, in one browser; restart <code>hokuro ui</code> for a new
one.</p></body></html>"""


class Guard:
    """The server's secrets: the one-time token, the session, and the CSRF token."""

    def __init__(self, *, token: str | None = None, hosts: Iterable[str] = (),
                 read_only: bool = False) -> None:
        self.token: str | None = token or secrets.token_urlsafe(24)
        self.session = secrets.token_urlsafe(32)
        self.csrf = hmac.new(self.session.encode(), b"csrf", hashlib.sha256).hexdigest()
        self.hosts = {h.lower() for h in hosts}
        self.read_only = read_only

    def host_allowed(self, host: str) -> bool:
        return not self.hosts or host.lower() in self.hosts

    def has_session(self, request: Request) -> bool:
        given = request.cookies.get(COOKIE, "")
        return bool(given) and hmac.compare_digest(given, self.session)

    def take_token(self, given: str) -> bool:
        """True once: for the first request that shows the token."""
        if self.token is None or not hmac.compare_digest(given, self.token):
            return False
        self.token = None
        return True

    def check_action(self, request: Request, form_token: str | None) -> str | None:
        """Why an action must be refused, or None when it may go on."""
        if self.read_only:
            return "this dashboard is read-only (hokuro ui --read-only)"
        if not form_token or not hmac.compare_digest(form_token, self.csrf):
            return "the form's CSRF token is missing or wrong; reload the page and try again"
        origin = request.headers.get("origin")
        if origin is None or origin == "null":
            referer = request.headers.get("referer")
            if referer is None:
                return "the request names no Origin; actions come from the dashboard's pages"
            parts = urlsplit(referer)
            origin = f"{parts.scheme}://{parts.netloc}"
        expected = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin.lower() != expected.lower():
            return f"the request comes from {origin}, not from this dashboard"
        return None


class GuardMiddleware:
    """Lets a request through only with the session cookie (or the one-time token, which
    it turns into the cookie), and only for an expected Host."""

    def __init__(self, app: ASGIApp, guard: Guard, static_prefix: str = "/static/") -> None:
        self.app = app
        self.guard = guard
        self.static_prefix = static_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *HEADERS]}
            await send(message)

        await self._guarded(scope, receive, send_with_headers)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        host = request.headers.get("host", "")
        if not self.guard.host_allowed(host):
            response: Response = HTMLResponse(
                _DENIED.format(why=f"This server does not answer for host {host!r}."), 421)
            await response(scope, receive, send)
            return
        if scope["path"].startswith(self.static_prefix) or self.guard.has_session(request):
            await self.app(scope, receive, send)
            return
        token = request.query_params.get("token")
        if token is not None and self.guard.take_token(token):
            query = urlencode([(k, v) for k, v in parse_qsl(scope.get("query_string", b"")
                                                            .decode("latin-1")) if k != "token"])
            response = RedirectResponse(scope["path"] + (f"?{query}" if query else ""), 303)
            response.set_cookie(COOKIE, self.guard.session, httponly=True, samesite="strict",
                                path="/")
            await response(scope, receive, send)
            return
        why = ("This address's token was already used (it works once)." if token is not None
               else "This page needs the session that the printed address starts.")
        response = HTMLResponse(_DENIED.format(why=why), 401)
        await response(scope, receive, send)

