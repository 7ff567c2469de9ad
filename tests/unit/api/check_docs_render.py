"""Manual check (not collected by pytest): document sizes and how long headless Chromium
takes to render ``/api/docs`` of a running server.

    .venv/bin/python tests/unit/api/check_docs_render.py http://127.0.0.1:8091 \
        --doc Patient --doc Observation

For each page it runs ``chromium --headless=new --dump-dom`` and reports the wall time
(minus that of ``about:blank``, Chromium's own start), the title Swagger UI rendered and
its tag sections (collapsed: ``docExpansion: none``). Needs ``apt-get install -y chromium``.
"""

from __future__ import annotations

import argparse
import gzip
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request

_TAGS = re.compile(r'class="opblock-tag-section')
_TITLE = re.compile(r'class="title">([^<]*)')


def fetch(url: str) -> bytes:
    """The body of a GET."""
    with urllib.request.urlopen(url, timeout=30) as resp:
        body: bytes = resp.read()
        return body


def render(chromium: str, url: str, budget_ms: int) -> tuple[float, str]:
    """Seconds Chromium took to load ``url`` and settle, and the DOM it dumped."""
    with tempfile.TemporaryDirectory() as profile:
        command = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
                   "--no-first-run", f"--user-data-dir={profile}",
                   f"--virtual-time-budget={budget_ms}", "--dump-dom", url]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                              check=True)
        return time.perf_counter() - start, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base", help="the server's root, e.g. http://127.0.0.1:8091")
    parser.add_argument("--doc", action="append", default=[],
                        help="a type whose page (?doc=Type) is rendered too")
    parser.add_argument("--budget-ms", type=int, default=20000,
                        help="Chromium's virtual time budget (idle time fast-forwards)")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium: apt-get install -y chromium")
    base = args.base.rstrip("/")
    for name in ["system", *args.doc]:
        url = f"{base}/api/openapi.json" if name == "system" \
            else f"{base}/api/openapi/{name}.json"
        body = fetch(url)
        print(f"{name:>12} document: {len(body):>8} bytes, "
              f"{len(gzip.compress(body, 5)):>7} gzipped  ({url})")
    blank, _ = render(chromium, "about:blank", args.budget_ms)
    print(f"{'about:blank':>12}: {blank:.2f} s (Chromium start, subtracted below)")
    for name in ["system", *args.doc]:
        page = f"{base}/api/docs" + ("" if name == "system" else f"?doc={name}")
        seconds, dom = render(chromium, page, args.budget_ms)
        title = _TITLE.search(dom)
        print(f"{name:>12} page: {seconds:.2f} s wall, {seconds - blank:.2f} s past start, "
              f"title {title[1] if title else None!r}, {len(_TAGS.findall(dom))} tag "
              f"sections  ({page})")


if __name__ == "__main__":
    main()
