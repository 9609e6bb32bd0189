"""The try-it page at `GET /`: one self-contained HTML file (inline style and script, no external script,
font or image), and the Content-Security-Policy that holds it to that: its own inline code (by hash) and
fetches of this endpoint only, so it works offline and a hostile class name can run nothing."""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from importlib.resources import files


def _hashes(html: str, tag: str) -> str:
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks)


@cache
def page() -> tuple[str, dict[str, str]]:
    """The page and its response headers."""
    html = files("augtrain.serving").joinpath("page.html").read_text(encoding="utf-8")
    policy = (f"default-src 'none'; script-src {_hashes(html, 'script')}; style-src {_hashes(html, 'style')}; "
              "connect-src 'self'; img-src blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return html, {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff",
                  "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
