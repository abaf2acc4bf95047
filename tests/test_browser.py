"""The built book in a real browser: headless Chromium, no network.

For every page: math is typeset by the bundled MathJax (no raw TeX left), every image loads,
every internal link resolves, JS animations advance when played, and nothing is fetched from
outside the build folder. A screenshot of each page is written to _build/screenshots/.
Run after the book build (`make test` does); skipped with a reason if Chromium or the build
is missing.
"""
import os
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("DL_BOOK_HTML", ROOT / "_build" / "html"))
SHOTS = HTML.parent / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def pages():
    if not (HTML / "index.html").is_file():
        return []
    found = [p for sub in ("book", "notebooks") for p in sorted((HTML / sub).glob("*.html"))]
    return [HTML / "index.html"] + found


pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"),
    pytest.mark.skipif(not pages(), reason=f"no built book at {HTML}: run `make book` first"),
]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def ids_in(path: Path) -> set:
    return set(re.findall(r'\bid="([^"]+)"', path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("page_path", pages(), ids=lambda p: str(p.relative_to(HTML)))
def test_page_in_browser(browser, page_path):
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    external, errors = [], []

    def route(r):  # no network: anything not in the build folder is refused and recorded
        if r.request.url.startswith("file://") or r.request.url.startswith("data:"):
            r.continue_()
        else:
            external.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_path.as_uri(), wait_until="load")

    # 1. math typeset by the bundled MathJax
    n_math = page.locator(".math").count()
    if n_math:
        page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20000)
        page.evaluate("MathJax.startup.promise")
        untypeset = page.evaluate(
            "[...document.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container')).length")
        assert untypeset == 0, f"{untypeset} of {n_math} math elements were not typeset"
        body = page.inner_text("article") if page.locator("article").count() else page.inner_text("body")
        assert "$$" not in body and "\\begin{" not in body, "raw TeX is visible on the page"

    # 2. every image loads
    broken = page.evaluate(
        "[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80))")
    assert not broken, f"images that did not load: {broken}"

    # 3. internal links resolve (file exists; #anchor exists in the target page)
    hrefs = page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))")
    here = Path(unquote(urlparse(page.url).path))  # index.html redirects to the root page
    missing = []
    for href in set(hrefs):
        u = urlparse(href)
        if u.scheme or href.startswith("//") or href.startswith("mailto:"):
            continue
        target = (here.parent / unquote(u.path)).resolve() if u.path else here
        if not target.exists():
            missing.append(href)
        elif u.fragment and target.suffix == ".html" and u.fragment not in ids_in(target):
            missing.append(href)
    assert not missing, f"broken internal links: {sorted(missing)[:10]}"

    # 4. JS animations (matplotlib to_jshtml) advance when played
    for img_id in page.evaluate("[...document.querySelectorAll('img[id^=_anim_img]')].map(i => i.id)"):
        suffix = img_id[len("_anim_img"):]
        first = page.get_attribute(f"#{img_id}", "src")
        page.evaluate(f"anim{suffix}.play_animation()")
        page.wait_for_timeout(1500)
        page.evaluate(f"anim{suffix}.pause_animation()")
        assert page.get_attribute(f"#{img_id}", "src") != first, f"animation {img_id} did not advance"

    assert not errors, f"JavaScript errors: {errors[:5]}"
    assert not external, f"the page tried to fetch from the network: {external[:5]}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / (page_path.stem + ".png")), full_page=False)
    context.close()
