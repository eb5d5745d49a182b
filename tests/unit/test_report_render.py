"""Generic report renderers (Markdown tables, HTML, SVG bars) and the pg_stat_report layout."""

import json
import re
import xml.etree.ElementTree as ET

from ansible_collections.pgops.deploy.plugins.module_utils import pgops_report_render as r
from ansible_collections.pgops.deploy.plugins.module_utils import pgops_stat_render as sr


def test_md_table_escapes_pipes_and_newlines():
    out = r.md_table(["a", "b"], [["x|y", "multi\nline"], [None, 3]])
    lines = out.strip().splitlines()
    assert lines[0] == "| a | b |" and lines[1] == "|---|---|"
    assert lines[2] == "| x\\|y | multi line |" and lines[3] == "|  | 3 |"
    assert r.md_table(["a"], []) == "_none_\n"


def test_html_table_escapes_and_aligns_numbers():
    out = r.html_table(["q", "n"], [["<script>alert(1)</script>", 5]], numeric=[1])
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "<td class=\"num\">5</td>" in out


def test_svg_bar_chart_is_valid_xml_and_scales_bars():
    svg = r.svg_bar_chart([("big & <bad>", 200), ("half", 100), ("zero", 0)], "Top", unit="ms")
    root = ET.fromstring(svg)
    rects = [e for e in root.iter() if e.tag.endswith("rect")]
    widths = [int(e.get("width")) for e in rects]
    assert widths[0] == 2 * widths[1] and widths[2] == 0
    assert "big &amp; &lt;bad&gt;" in svg
    empty = ET.fromstring(r.svg_bar_chart([], "Nothing"))
    assert "no data" in ET.tostring(empty, encoding="unicode")


def test_formatters():
    assert r.fmt_bytes(512) == "512 B" and r.fmt_bytes(1536) == "1.5 kB" and r.fmt_bytes(3 * 1024 ** 3) == "3.0 GB"
    assert r.fmt_ms(12.345) == "12.35 ms" and r.fmt_ms(2500) == "2.50 s" and r.fmt_ms(None) == ""


def test_html_page_is_self_contained():
    page = r.html_page("T <1>", "<p>x</p>")
    assert page.startswith("<!DOCTYPE html>") and "<title>T &lt;1&gt;</title>" in page
    assert not re.search(r"<(link|script)\b", page)


REPORT = dict(database="db", server_version=150010, status="warning",
              findings=[dict(section="statements", severity="warning", message="slow | query", object="queryid:1")],
              data=dict(statements=dict(available=True, top_by_total=[
                  dict(queryid=1, calls=3, total_ms=300.0, mean_ms=100.0, rows=3, query="SELECT pg_sleep(0.1)")],
                  top_by_mean=[]),
                  sizes=dict(tables=[dict(schema="public", name="t", kind="table", total_bytes=8192, heap_bytes=8192,
                                          index_bytes=0, estimated_rows=1)], indexes=[])))


def test_stat_markdown_and_html_layout():
    md = sr.render_markdown(REPORT)
    assert md.startswith("# PostgreSQL health report: db")
    assert "| warning | statements | queryid:1 | slow \\| query |" in md
    assert "## Top queries by total time" in md and "300.00 ms" in md and "| public.t | table | 8.0 kB |" in md
    html = sr.render_html(REPORT)
    assert html.count("<svg") == 2 and "Top queries by total time" in html and "Biggest relations" in html
    assert json.loads(sr.render_json(REPORT))["status"] == "warning"


def test_stat_render_missing_extension_and_empty_findings():
    rep = dict(REPORT, findings=[], status="ok", data=dict(statements=dict(available=False)))
    assert "no findings" in sr.render_html(rep)
    assert "pg_stat_statements is not installed" in sr.render_markdown(rep)
