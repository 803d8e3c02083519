"""Self-contained HTML: inline CSS, images as base64 PNG data URIs, nothing fetched from a network.

Small builders (escape, table, image, section, page) and :class:`Report`, the object every report builder
returns: its ``html``, its charts as PNG bytes (``--png DIR``) and the numbers it shows (``data``).
"""
from __future__ import annotations

import base64
import html as _html
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from ..io import write_atomic

CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#1d2329;
background:#f6f7f9;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:24px 28px 60px;background:#fff;box-shadow:0 0 12px rgba(0,0,0,.06)}
h1{font-size:1.55em;margin:.2em 0 .4em}h2{font-size:1.2em;border-bottom:2px solid #e3e6ea;padding-bottom:.25em;
margin-top:2em}h3{font-size:1.02em;margin:1.3em 0 .4em}
.answer{font-size:1.15em;background:#eef5ff;border-left:5px solid #2f6fdb;padding:12px 16px;margin:12px 0 18px}
.verdict-supported{border-left-color:#2ca02c;background:#eefaee}.verdict-not-supported,.verdict-error{
border-left-color:#d62728;background:#fdeeee}
.meta{color:#5b6670;font-size:.9em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.86em;max-width:100%}
th,td{border:1px solid #dde1e5;padding:4px 8px;text-align:left;vertical-align:top;overflow-wrap:break-word}
td.wrap{overflow-wrap:anywhere;min-width:8em}
th{background:#f0f2f5}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr:nth-child(even) td{background:#fafbfc}
img.chart{max-width:100%;height:auto;display:block;margin:.6em 0;border:1px solid #eceff2}
nav a{margin-right:.9em;font-size:.9em}
.note{color:#5b6670;font-size:.88em}.small{font-size:.8em;color:#5b6670}
code{background:#f0f2f5;padding:1px 4px;border-radius:3px}
"""


NUMERIC_CELL_MAX_CHARS = 28   # a nowrap (right-aligned) cell longer than this could widen a table past 1,280 px
_NUMERIC_TEXT = re.compile(r"^[\s$~<>=+\-\u2212x(]*[\d.,]+[\w%/.,:()\s\-\u2013+$]*$")


def is_numeric_text(v) -> bool:
    """True for a short number-like cell (``1,408.7``, ``$5.84M``, ``66.7 GiB``, ``+3.2%``): only such cells keep
    ``white-space: nowrap``; long text wraps (the layout rule that keeps every table inside 1,280 px)."""
    t = "" if v is None else str(v)
    return len(t) <= NUMERIC_CELL_MAX_CHARS and bool(_NUMERIC_TEXT.match(t))


def nowrap_violations(html_text: str) -> list[str]:
    """Text of every ``td.num`` (nowrap) cell in ``html_text`` that is not short numeric text (the layout rule)."""
    out = []
    for m in re.finditer(r'<td class="num"[^>]*>(.*?)</td>', html_text, re.S):
        text = _html.unescape(re.sub(r"<[^>]+>", "", m.group(1)))
        if not is_numeric_text(text):
            out.append(text)
    return out


def rel_path(p) -> str:
    """``p`` relative to the current directory when it lies under it, else as given (never an absolute path
    of the user's machine in a page that gets shared)."""
    if not p:
        return ""
    try:
        path = Path(str(p))
        if path.is_absolute():
            return str(path.resolve().relative_to(Path.cwd().resolve()))
        return str(path)
    except ValueError:
        return Path(str(p)).name


def esc(x) -> str:
    """HTML-escaped text of ``x`` (``None`` as empty)."""
    return _html.escape("" if x is None else str(x), quote=True)


def data_uri(png: bytes) -> str:
    """A PNG as a base64 ``data:`` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def image(png: bytes, alt: str, name: str = "") -> str:
    """An embedded ``<img>`` of a PNG chart."""
    return f'<img class="chart" alt="{esc(alt)}" data-chart="{esc(name)}" src="{data_uri(png)}">'


def table(columns: list[str], rows: list[list], numeric: set[int] | None = None, keys: list[str | None] | None = None,
          raw: bool = False, wrap: set[int] | None = None) -> str:
    """An HTML table. ``numeric``: column indexes aligned right; ``keys``: a ``data-key`` per column of the first
    row (for machine checks); ``raw``: cells are already HTML; ``wrap``: columns of long text (citations, URLs)
    that may break anywhere."""
    numeric, wrap = numeric or set(), wrap or set()
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for j, v in enumerate(row):
            cls = (' class="num"' if j in numeric and (raw or is_numeric_text(v)) else
                   ' class="wrap"' if j in wrap or j in numeric else "")
            key = f' data-key="{esc(keys[j])}"' if keys and i == 0 and j < len(keys) and keys[j] else ""
            cells.append(f"<td{cls}{key}>{v if raw else esc(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def kv_table(rows: list[tuple[str, str, str | None]]) -> str:
    """A two-column table of (label, value, data-key)."""
    body = "".join(f'<tr><th>{esc(k)}</th><td class="{"num" if is_numeric_text(v) else "wrap"}"'
                   + (f' data-key="{esc(key)}"' if key else "")
                   + f">{esc(v)}</td></tr>" for k, v, key in rows)
    return f"<table class=\"kv\"><tbody>{body}</tbody></table>"


def section(sid: str, title: str, body: str) -> str:
    """An HTML ``<section>`` with id ``sid`` and heading ``title``."""
    return f'<section id="{esc(sid)}"><h2>{esc(title)}</h2>\n{body}\n</section>'


def page(title: str, body: str, nav: list[tuple[str, str]] | None = None) -> str:
    """A self-contained HTML page with the report CSS and an optional navigation bar of (anchor, title)."""
    links = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t in (nav or []))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
            f"{'<nav>' + links + '</nav>' if links else ''}\n{body}\n"
            "<p class=\"small\">Generated by trainsim (first-principles LLM training performance model). "
            "This file is self-contained: the charts are embedded PNG images.</p>"
            "</main></body></html>\n")


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
    except ImportError:  # pragma: no cover
        pass
    return str(o)


def clean_json(obj):
    """``obj`` with NaN/inf replaced by None (strict JSON)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    return obj


@dataclass
class Report:
    """A rendered report: the page, its charts (name -> PNG bytes) and the numbers it shows."""

    title: str
    html: str
    charts: dict[str, bytes] = field(default_factory=dict)
    data: dict = field(default_factory=dict)

    def write(self, path: str | Path, *, force: bool = True) -> Path:
        """Write the page atomically (:func:`trainsim.io.write_atomic`: temporary file + rename, a symlink
        at ``path`` is replaced, never followed); ``force=False`` refuses an existing file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_atomic(path, self.html, force=force, what="report")

    def write_pngs(self, folder: str | Path, prefix: str = "") -> list[Path]:
        """Write each chart as ``folder/<prefix><name>.png``; return the paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        out = []
        for name, png in self.charts.items():
            p = write_atomic(folder / f"{prefix}{name}.png", png, force=True, what="chart")
            out.append(p)
        return out

    def to_json(self) -> str:
        """The report's data as indented JSON."""
        return json.dumps(clean_json(self.data), indent=2, default=_json_default)

    def _repr_html_(self) -> str:
        """Notebooks show the report inline, in a frame so that its CSS stays inside it."""
        return (f'<iframe srcdoc="{esc(self.html)}" style="width:100%;height:900px;border:1px solid #ddd">'
                "</iframe>")
