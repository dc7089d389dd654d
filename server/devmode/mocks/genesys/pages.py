"""Headers every HTML page the mock serves sends (the desktop, the sign-in page)."""

from __future__ import annotations


def page_headers(content_security_policy: str) -> dict[str, str]:
    """A page's own CSP, never cached, no referrer, no MIME sniffing."""
    return {
        "Content-Security-Policy": content_security_policy,
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
