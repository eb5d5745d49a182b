# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generic report rendering: Markdown tables, self-contained HTML pages, inline SVG bar charts.

Nothing here knows about PostgreSQL statistics; pg_stat_report (pgops_stat_render)
and the deployment report compose their documents from these helpers:

    md_table(headers, rows)            -> Markdown pipe table
    html_table(headers, rows)          -> <table> (cells escaped)
    svg_bar_chart(items, title, unit)  -> <svg> horizontal bar chart, no scripts, no external refs
    html_page(title, body_html)        -> complete self-contained HTML document (inline CSS)
    fmt_bytes / fmt_ms / fmt_num       -> human formatting
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    from html import escape as _escape
except ImportError:  # pragma: no cover (python 2)
    from cgi import escape as _escape

SEVERITY_COLOURS = {"ok": "#2e7d32", "info": "#1565c0", "warning": "#ef6c00", "critical": "#c62828"}


def esc(value):
    return _escape("" if value is None else str(value), quote=True)


def fmt_bytes(n):
    if n is None:
        return ""
    n = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024.0
    return "%.1f TB" % n  # pragma: no cover


def fmt_ms(ms):
    if ms is None:
        return ""
    if ms >= 1000:
        return "%.2f s" % (ms / 1000.0)
    return "%.2f ms" % ms


def fmt_num(value, digits=1):
    if value is None:
        return ""
    if isinstance(value, float):
        return ("%%.%df" % digits) % value
    return str(value)


def _md_cell(value):
    text = "" if value is None else str(value)
    return " ".join(text.replace("|", "\\|").split())


def md_table(headers, rows):
    """Markdown pipe table; pipes and newlines inside cells are neutralised. Empty rows -> '_none_'."""
    if not rows:
        return "_none_\n"
    lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    return "\n".join(lines) + "\n"


def html_table(headers, rows, numeric=None, css_class="data"):
    """HTML table with escaped cells; ``numeric`` = column indexes aligned right."""
    numeric = set(numeric or ())
    if not rows:
        return "<p class=\"none\">none</p>\n"
    out = ["<table class=\"%s\"><thead><tr>" % esc(css_class)]
    out.extend("<th>%s</th>" % esc(h) for h in headers)
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join("<td%s>%s</td>" % (" class=\"num\"" if i in numeric else "", esc(c))
                                    for i, c in enumerate(row)) + "</tr>")
    out.append("</tbody></table>\n")
    return "".join(out)


def badge(severity):
    colour = SEVERITY_COLOURS.get(severity, "#555")
    return "<span class=\"badge\" style=\"background:%s\">%s</span>" % (colour, esc(severity))


def svg_bar_chart(items, title, unit="", width=720, bar_height=18, label_width=260, fmt=None, colour="#1565c0"):
    """Horizontal bar chart as inline SVG. ``items``: list of (label, value); values >= 0.

    Bars scale to the largest value; labels are truncated to fit; a <title> on each
    bar carries the full label and value (tooltip).
    """
    fmt = fmt or (lambda v: fmt_num(v, 1) + (" " + unit if unit else ""))
    items = [(str(label), float(value or 0)) for label, value in items]
    gap = 6
    top = 28
    height = top + max(1, len(items)) * (bar_height + gap) + 4
    biggest = max([v for _, v in items] + [0.0])
    value_space = 110
    bar_space = width - label_width - value_space
    parts = ["<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
             "role=\"img\" aria-label=\"%s\" font-family=\"sans-serif\" font-size=\"12\">" % (
                 width, height, width, height, esc(title)),
             "<text x=\"0\" y=\"16\" font-size=\"14\" font-weight=\"bold\">%s</text>" % esc(title)]
    if not items:
        parts.append("<text x=\"0\" y=\"%d\" fill=\"#777\">no data</text>" % (top + 12))
    for i, (label, value) in enumerate(items):
        y = top + i * (bar_height + gap)
        w = 0 if biggest <= 0 or value <= 0 else max(1, int(round(bar_space * value / biggest)))
        short = label if len(label) <= 40 else label[:37] + "..."
        parts.append("<g><title>%s: %s</title>" % (esc(label), esc(fmt(value))))
        parts.append("<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>" % (label_width - 8, y + bar_height - 5,
                                                                                esc(short)))
        parts.append("<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\" rx=\"2\"/>" % (
            label_width, y, w, bar_height, colour))
        parts.append("<text x=\"%d\" y=\"%d\">%s</text></g>" % (label_width + w + 6, y + bar_height - 5, esc(fmt(value))))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222;max-width:1200px}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table.data{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}
table.data th,table.data td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
table.data th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{color:#fff;border-radius:3px;padding:.1em .45em;font-size:.85em}
.none{color:#777;font-style:italic}.meta{color:#555}
"""


def html_page(title, body_html, extra_css=""):
    """A complete HTML5 document with inline CSS and no external resources."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<title>%s</title><style>%s%s</style></head>\n<body>\n%s</body></html>\n"
            % (esc(title), CSS, extra_css, body_html))
