"""The review page's files as text (no browser, no stack): nothing in them
that the strict Content-Security-Policy would refuse or that could turn an
uploader's string into markup. The browser tests (test_page_browser.py)
show the same in Chromium; these fail fast and run everywhere."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "functions" / "review_page"
JS = (PAGE / "review.js").read_text(encoding="utf-8")
CSS = (PAGE / "review.css").read_text(encoding="utf-8")


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.script_text.append(data)


def parsed() -> _Collect:
    collector = _Collect()
    collector.feed((PAGE / "index.html").read_text(encoding="utf-8"))
    return collector


def test_the_page_has_no_inline_script_style_or_handler():
    page = parsed()
    assert page.script_text == []
    scripts = [attrs for tag, attrs in page.tags if tag == "script"]
    assert [s.get("src") for s in scripts] == ["review.js"]
    assert not [tag for tag, _ in page.tags if tag == "style"]
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert name != "style", f"<{tag} style=...>"
            assert not name.startswith("on"), f"<{tag} {name}=...>"
            assert not (value or "").strip().lower().startswith("javascript:"), f"<{tag} {name}={value}>"
    links = [attrs["href"] for tag, attrs in page.tags if tag == "link" and attrs.get("rel") == "stylesheet"]
    assert links == ["review.css"]
    for name in ("review.js", "review.css"):
        assert (PAGE / name).is_file()


def test_the_script_never_writes_markup_or_evaluates_strings():
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "srcdoc"):
        assert sink not in JS, sink
    assert not re.search(r"setTimeout\(\s*['\"`]", JS) and not re.search(r"setInterval\(", JS)
    assert not re.search(r"\.style\.|setAttribute\(\s*['\"]style", JS), "inline styles: the CSP forbids them"
    assert not re.search(r"setAttribute\(\s*['\"](on\w+|href|srcdoc)['\"]", JS)


def test_every_request_goes_through_one_helper_that_sends_the_csrf_header():
    assert JS.count("fetch(") == 1, "one fetch call: api()"
    assert 'const CSRF_HEADER = "X-Requested-With";' in JS and 'const CSRF_VALUE = "fashion-review";' in JS
    helper = JS[JS.index("async function api(") : JS.index("function describe(")]
    assert 'if (init.method !== "GET")' in helper and "init.headers[CSRF_HEADER] = CSRF_VALUE;" in helper
    assert 'credentials: "same-origin"' in helper


def test_the_style_sheet_loads_nothing_from_elsewhere():
    assert "@import" not in CSS and "url(" not in CSS and "expression(" not in CSS


def test_every_shortcut_of_the_legend_is_handled():
    handled = set(re.findall(r'key === "([^"]+)"', JS))
    assert {"ArrowRight", "ArrowLeft", "ArrowDown", "ArrowUp", "j", "k", "a", "A", "r", "u", "x", " "} <= handled
    assert r"/^[0-9]$/.test(key)" in JS  # 1..9 and 0: relabel to the nth label
    assert "e" in handled and 'event.key === "Escape"' in JS  # the attributes' selects: in with e, out with Esc
