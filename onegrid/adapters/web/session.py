"""The browser's session: the person's JWT in a cookie the page's scripts cannot read
(HttpOnly), sent only over HTTPS (Secure; browsers count http://127.0.0.1 and localhost as
secure), and only with requests from the page itself (SameSite=Strict). A POST from a form
also carries a CSRF token derived from the session (an HMAC of it), which another site can
neither read nor compute: the second lock behind SameSite.

A request with `Authorization: Bearer <JWT>` (a script, the fuzz suite) is signed in by its
header, and needs no CSRF token: a browser never adds that header by itself.
"""

from __future__ import annotations

import hashlib
import hmac

COOKIE = "og_session"
LANG_COOKIE = "og_lang"
CSRF_FIELD = "csrf"


def csrf_token(session: str) -> str:
    return hmac.new(session.encode(), b"onegrid-console-csrf", hashlib.sha256).hexdigest()[:32]


def csrf_ok(session: str, given: str) -> bool:
    return bool(session) and hmac.compare_digest(csrf_token(session), given or "")


def session_cookie(token: str, max_age: int) -> str:
    """The Set-Cookie value for a signed-in person."""
    return f"{COOKIE}={token}; Path=/console; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict"


def cleared_cookie() -> str:
    return f"{COOKIE}=; Path=/console; Max-Age=0; HttpOnly; Secure; SameSite=Strict"


def lang_cookie(lang: str) -> str:
    return f"{LANG_COOKIE}={lang}; Path=/console; Max-Age=31536000; SameSite=Strict"
