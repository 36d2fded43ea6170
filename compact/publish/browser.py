"""A real-browser check of a built book: every page renders, its math typeset, every figure loads, no internal
link is broken and no request leaves the machine.

Serves the HTML folder on 127.0.0.1 (a random free port), drives Debian's ``chromium`` headless through
playwright (no browser download: ``executable_path`` points at the system binary), visits every page, and
keeps screenshots: the landing page, and any pages named in ``shots``. Every request to another host is
refused and reported (the book must read offline: MathJax is served from the build, see ``_config.yml``).
Math counts as rendered when every ``.math`` element holds a MathJax container and no raw ``\\(`` or ``$$``
delimiter is left in the page's visible text. No code block or table may be wider than the page's content
column at 1280 px (book/_static/compact.css wraps code and table cells).
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import re
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlparse

from ..errors import CompactError

# playwright adds its own headless switch (headless=True); a second "--headless" breaks screenshots
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


class BrowserCheckError(CompactError):
    """A page failed to render, a figure did not load, or an internal link is broken."""


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


# waits for MathJax (when the page loads it) to finish typesetting, then lists what stayed raw
_MATH_JS = r"""async () => {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
    const math = Array.from(document.querySelectorAll('.math'));
    const raw = math.filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 60));
    const main = document.querySelector('main, article, div[role=main]');
    let delims = 0;
    if (main) {  // prose only: code may spell delimiters
        const walk = document.createTreeWalker(main, NodeFilter.SHOW_TEXT, {acceptNode: n =>
            n.parentElement.closest('pre, code, mjx-container, script, style') ? NodeFilter.FILTER_REJECT
                                                                                : NodeFilter.FILTER_ACCEPT});
        while (walk.nextNode()) { delims += (walk.currentNode.nodeValue.match(/\\\(|\\\[|\$\$/g) || []).length; }
    }
    return {n: math.length, raw: raw, delims: delims};
}"""

# code blocks and tables wider than the page's content column (sideways scrolling at the viewport width)
_OVERFLOW_JS = r"""() => {
    const main = document.querySelector('main, article, div[role=main]');
    if (!main) { return []; }
    const right = main.getBoundingClientRect().right + 2;
    return Array.from(main.querySelectorAll('pre, table')).filter(e => e.offsetParent !== null).filter(
        e => e.scrollWidth > e.clientWidth + 2 || e.getBoundingClientRect().right > right).map(
        e => e.tagName.toLowerCase() + ': ' + (e.textContent || '').trim().slice(0, 50));
}"""


def check_site(html: Path, screenshot: Path | None = None, *, timeout_ms: int = 30000,
               shots: dict[str, Path] | None = None, figures: Sequence[Path] = ()) -> dict:
    """Visit every ``*.html`` page of ``html``; raise :class:`BrowserCheckError` listing every problem.

    ``screenshot``: where the landing page's screenshot goes; ``shots``: {page (relative .html path):
    screenshot path} for further pages (a page that is not in the book is a problem); ``figures``: image
    files (the results' figures) that some page must show, byte for byte, as a loaded image.
    """
    from playwright.sync_api import sync_playwright  # local: optional extra [browser]

    exe = chromium_path()
    if exe is None:
        raise BrowserCheckError("no chromium on PATH (Debian: apt-get install chromium)")
    html = Path(html).resolve()
    pages = sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                   if not p.relative_to(html).as_posix().startswith(("_static/", "_sources/")))
    handler = functools.partial(_Quiet, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    problems: list[str] = []
    stats = {"pages": 0, "images": 0, "links": 0, "math": 0, "external_requests": 0, "figures": len(figures)}
    shown: set[str] = set()  # sha256 of every image file a page loaded
    anchors_cache: dict[str, set[str]] = {}
    local = urlparse(base).netloc
    current = {"page": ""}

    def route(r):
        host = urlparse(r.request.url).netloc
        if urlparse(r.request.url).scheme in ("http", "https", "ws", "wss") and host != local:
            stats["external_requests"] += 1
            problems.append(f"{current['page']}: request to another host: {r.request.url[:120]}")
            r.abort()
        else:
            r.continue_()

    for rel in (shots or {}):
        if rel not in pages:
            problems.append(f"{rel}: no such page for a screenshot")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_FLAGS, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/*", route)
            landing = "index.html"
            for rel in pages:
                url = urljoin(base, rel)
                source = (html / rel).read_text(errors="replace")
                redirect = re.search(r'http-equiv="refresh"[^>]*url=([^"\']+)', source, re.IGNORECASE)
                if redirect:  # Jupyter Book's index.html forwards to the root page
                    target = redirect.group(1).strip()
                    if not (html / (Path(rel).parent / target)).is_file():
                        problems.append(f"{rel}: redirects to missing page {target}")
                    elif rel == "index.html":
                        landing = (Path(rel).parent / target).as_posix()
                    continue
                current["page"] = rel  # before goto: requests made while the page loads are its own
                resp = page.goto(url, wait_until="load", timeout=timeout_ms)
                if resp is None or resp.status != 200:
                    problems.append(f"{rel}: HTTP {resp.status if resp else 'no response'}")
                    continue
                stats["pages"] += 1
                if not page.locator("main, article, div[role=main]").count():
                    problems.append(f"{rel}: no main content element rendered")
                math = page.evaluate(_MATH_JS)
                stats["math"] += math["n"]
                if math["raw"]:
                    problems.append(f"{rel}: {len(math['raw'])} of {math['n']} math elements not rendered "
                                    f"(first: {math['raw'][0]!r})")
                elif math["delims"]:
                    problems.append(f"{rel}: {math['delims']} raw math delimiter(s) in the page text")
                wide = page.evaluate(_OVERFLOW_JS)
                if wide:
                    problems.append(f"{rel}: {len(wide)} block(s) wider than the page (first: {wide[0]!r})")
                if rel in (shots or {}):
                    shots[rel].parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(shots[rel]), full_page=False)
                imgs = page.evaluate("""() => Array.from(document.images).map(i => ({src: i.currentSrc || i.src,
                    ok: i.complete && i.naturalWidth > 0}))""")
                for img in imgs:
                    stats["images"] += 1
                    if not img["ok"]:
                        problems.append(f"{rel}: image did not load: {img['src']}")
                        continue
                    src = urlparse(img["src"])
                    if src.scheme in ("http", "https") and src.netloc == local:
                        file = html / unquote(src.path).lstrip("/")
                        if file.is_file():
                            shown.add(hashlib.sha256(file.read_bytes()).hexdigest())
                anchors_cache[rel] = set(page.evaluate("() => Array.from(document.querySelectorAll('[id]')).map(e => e.id)"))
                hrefs = page.evaluate("() => Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'))")
                for href in hrefs:
                    target = urljoin(url, href)
                    parsed = urlparse(target)
                    if parsed.scheme not in ("http", "https") or parsed.netloc != urlparse(base).netloc:
                        continue
                    stats["links"] += 1
                    path, frag = urldefrag(target)
                    rel_target = unquote(urlparse(path).path).lstrip("/")
                    file = html / rel_target
                    if file.is_dir():
                        file = file / "index.html"
                    if not file.is_file():
                        problems.append(f"{rel}: broken link {href}")
                        continue
                    if frag and file.suffix == ".html":
                        key = file.relative_to(html).as_posix()
                        if key not in anchors_cache:
                            anchors_cache[key] = set(re.findall(r'id="([^"]+)"', file.read_text(errors="replace")))
                        if unquote(frag) not in anchors_cache[key]:
                            problems.append(f"{rel}: link to missing anchor {href}")
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.goto(urljoin(base, landing), wait_until="load")
                page.screenshot(path=str(screenshot), full_page=False)
            browser.close()
    finally:
        server.shutdown()
    for fig in figures:
        if hashlib.sha256(Path(fig).read_bytes()).hexdigest() not in shown:
            problems.append(f"figure {fig} appears on no page")
    if problems:
        raise BrowserCheckError(f"{len(problems)} problem(s) in the built book: " + "; ".join(problems[:20]))
    return stats
