"""The look shared by the project's HTML reports (training and operations)."""

from __future__ import annotations

ACCENT, SECOND = "#1a73e8", "#f29900"


def report_css(card_min_width: int) -> str:
    """The stylesheet of a self-contained report page."""
    return (
        "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1000px;"
        "color:#202124;padding:0 1rem}\n"
        "h1{font-weight:500} h2{font-weight:500;border-bottom:1px solid #e0e0e0;padding-bottom:.3rem;margin-top:2rem}\n"
        ".cards{display:flex;gap:1rem;flex-wrap:wrap} "
        f".card{{flex:1;min-width:{card_min_width}px;border:1px solid #e0e0e0;border-radius:8px;padding:1rem}}\n"
        f".card b{{display:block;font-size:1.7rem;font-weight:500;color:{ACCENT}}} .card span{{color:#5f6368;font-size:.9rem}}\n"
        "table{border-collapse:collapse;width:100%;font-size:.92rem} "
        "td,th{padding:.35rem .6rem;border-bottom:1px solid #eee;text-align:right}\n"
        "td:first-child,th:first-child{text-align:left} th{color:#5f6368;font-weight:500}\n"
        "figure{margin:1.2rem 0} img{max-width:100%;border:1px solid #eee;border-radius:6px} "
        "figcaption{color:#5f6368;font-size:.9rem}\n"
        ".meta{color:#5f6368;font-size:.9rem}\n"
    )
