"""Security headers on every gateway response: nosniff, CSP, no framing, no referrer, HSTS.

The gateway answers JSON, and while introspection is on, one HTML page: GraphiQL at GET
/graphql. JSON gets the strictest policy (nothing may load, nothing may frame it); GraphiQL's
page gets one that lets its pinned modules load from esm.sh and runs only its own inline
scripts, named by their hashes. HSTS goes out only over HTTPS (the gateway's own TLS, or a
trusted proxy's X-Forwarded-Proto): a browser must never pin HTTPS on a host that lacks it.
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: For JSON (and anything that is not the explorer): load nothing, be framed by nobody.
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
#: Where GraphiQL's page loads its modules and stylesheet from (ariadne.explorer's template).
EXPLORER_ORIGIN = "https://esm.sh"
HSTS = "max-age=31536000; includeSubDomains"
_COMMON = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_INLINE_SCRIPT = re.compile(r"<script[^>]*>(.*?)</script>", re.DOTALL)


def explorer_policy(html: str) -> str:
    """The CSP of one explorer page: its inline scripts by hash, its modules from esm.sh."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
        if body.strip()
    )
    return "; ".join(
        [
            "default-src 'none'",
            # data: for the empty module the template's import map maps one dependency to.
            f"script-src {EXPLORER_ORIGIN} data: {hashes}",
            # GraphiQL's editor sets styles inline at run time.
            f"style-src {EXPLORER_ORIGIN} 'unsafe-inline'",
            f"font-src {EXPLORER_ORIGIN} data:",
            f"img-src 'self' {EXPLORER_ORIGIN} data:",
            f"worker-src 'self' blob: {EXPLORER_ORIGIN}",
            # 'self' does not cover ws:/wss: in every browser; subscriptions need them.
            "connect-src 'self' ws: wss:",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )


class SecurityHeaders:
    """ASGI middleware adding the security headers to every HTTP response."""

    def __init__(self, app: ASGIApp, *, html_policy: str | None = None) -> None:
        self.app = app
        self.html_policy = (html_policy or API_POLICY).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request; add the headers to its response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                html = any(
                    name.lower() == b"content-type" and value.startswith(b"text/html")
                    for name, value in headers
                )
                # A header the app set stays as set (a download's own nosniff, say): sent twice,
                # some browsers would read neither.
                present = {name.lower() for name, _value in headers}
                headers += [header for header in _COMMON if header[0] not in present]
                policy = self.html_policy if html else API_POLICY.encode()
                # Added even beside an app's own policy (a download's sandbox): browsers enforce
                # every policy they are sent, so each only narrows what the page may do.
                headers.append((b"content-security-policy", policy))
                if https:
                    headers.append((b"strict-transport-security", HSTS.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
