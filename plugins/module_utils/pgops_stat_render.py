# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Markdown / HTML layout of a pg_stat_report result (built on pgops_report_render)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.pgops.deploy.plugins.module_utils.pgops_report_render import (
    badge, esc, fmt_bytes, fmt_ms, fmt_num, html_page, html_table, md_table, svg_bar_chart)


def _short(text, n=90):
    t = " ".join((text or "").split())
    return t if len(t) <= n else t[:n - 3] + "..."


def section_tables(report):
    """(title, headers, rows, numeric columns) per section, shared by Markdown and HTML."""
    data = report.get("data", {})
    out = []
    st = data.get("statements")
    if st is not None:
        if st.get("available"):
            out.append(("Top queries by total time", ["queryid", "calls", "total", "mean", "rows", "query"],
                        [[r["queryid"], r["calls"], fmt_ms(r["total_ms"]), fmt_ms(r["mean_ms"]), r["rows"],
                          _short(r["query"])] for r in st.get("top_by_total", [])], [1, 2, 3, 4]))
            out.append(("Top queries by mean time", ["queryid", "calls", "total", "mean", "query"],
                        [[r["queryid"], r["calls"], fmt_ms(r["total_ms"]), fmt_ms(r["mean_ms"]), _short(r["query"])]
                         for r in st.get("top_by_mean", [])], [1, 2, 3]))
        else:
            out.append(("Statements", ["status"], [["pg_stat_statements is not installed in this database"]], []))
    act = data.get("activity")
    if act is not None:
        out.append(("Active and idle-in-transaction sessions", ["pid", "user", "state", "query s", "xact s", "query"],
                    [[s["pid"], s["user"], s["state"], fmt_num(s["query_seconds"]), fmt_num(s["xact_seconds"]),
                      _short(s["query"])] for s in act.get("sessions", [])], [0, 3, 4]))
    locks = data.get("locks")
    if locks is not None:
        out.append(("Blocked sessions", ["pid", "user", "blocked by", "waiting s", "query"],
                    [[b["pid"], b["user"], ", ".join(str(p) for p in b["blocked_by"]), fmt_num(b["waiting_seconds"]),
                      _short(b["query"])] for b in locks.get("blocked", [])], [0, 3]))
    conn = data.get("connections")
    if conn is not None:
        out.append(("Connections (%d of %d usable, %.1f%%)" % (conn["total"], conn["usable"], conn["percent_used"]),
                    ["state", "count"], [[r["state"], r["count"]] for r in conn.get("by_state", [])], [1]))
    sizes = data.get("sizes")
    if sizes is not None:
        out.append(("Biggest relations", ["relation", "kind", "total", "heap", "indexes", "est. rows"],
                    [["%s.%s" % (t["schema"], t["name"]), t["kind"], fmt_bytes(t["total_bytes"]),
                      fmt_bytes(t["heap_bytes"]), fmt_bytes(t["index_bytes"]), t["estimated_rows"]]
                     for t in sizes.get("tables", [])], [2, 3, 4, 5]))
        out.append(("Biggest indexes", ["index", "table", "size"],
                    [["%s.%s" % (i["schema"], i["name"]), i["table"], fmt_bytes(i["bytes"])]
                     for i in sizes.get("indexes", [])], [2]))
    idx = data.get("indexes")
    if idx is not None:
        out.append(("Unused indexes", ["index", "table", "size", "definition"],
                    [["%s.%s" % (i["schema"], i["name"]), i["table"], fmt_bytes(i["bytes"]), i["definition"]]
                     for i in idx.get("unused", [])], [2]))
        out.append(("Duplicate indexes", ["table", "indexes"],
                    [["%s.%s" % (d["schema"], d["table"]), ", ".join(d["indexes"])] for d in idx.get("duplicates", [])],
                    []))
        out.append(("Invalid indexes", ["index", "table"],
                    [["%s.%s" % (i["schema"], i["name"]), i["table"]] for i in idx.get("invalid", [])], []))
    cache = data.get("cache")
    if cache is not None and cache.get("ratios"):
        out.append(("Cache hit ratio", ["kind", "hit %", "blocks"],
                    [[k, fmt_num(v["percent"], 2), v["blocks"]] for k, v in sorted(cache["ratios"].items())], [1, 2]))
    vac = data.get("vacuum")
    if vac is not None:
        out.append(("Vacuum and analyze", ["table", "live", "dead", "dead %", "last autovacuum", "last analyze"],
                    [["%s.%s" % (t["schema"], t["name"]), t["live_tuples"], t["dead_tuples"], fmt_num(t["dead_percent"]),
                      t["last_autovacuum"] or t["last_vacuum"] or "never",
                      t["last_autoanalyze"] or t["last_analyze"] or "never"] for t in vac.get("tables", [])],
                    [1, 2, 3]))
    wrap = data.get("wraparound")
    if wrap is not None:
        out.append(("Transaction ID age", ["database", "xid age", "% to wraparound"],
                    [[d["database"], d["xid_age"], fmt_num(d["percent_towards_wraparound"], 2)]
                     for d in wrap.get("databases", [])], [1, 2]))
        out.append(("Sequences", ["sequence", "owned by", "last value", "max", "% used"],
                    [["%s.%s" % (s["schema"], s["name"]),
                      "%s.%s" % (s["owned_by_table"], s["owned_by_column"]) if s.get("owned_by_column") else "",
                      s["last_value"], s["max_value"], fmt_num(s.get("percent_used"), 4)]
                     for s in wrap.get("sequences", [])], [2, 3, 4]))
    rep = data.get("replication")
    if rep is not None:
        out.append(("Replicas", ["name", "state", "lag s", "lag"],
                    [[r["application_name"] or r["client_addr"], r["state"], fmt_num(r["replay_lag_seconds"]),
                      fmt_bytes(r["replay_lag_bytes"])] for r in rep.get("replicas", [])], [2, 3]))
        out.append(("Replication slots", ["slot", "type", "active", "retained WAL"],
                    [[s["slot_name"], s["slot_type"], s["active"], fmt_bytes(s["retained_bytes"])]
                     for s in rep.get("slots", [])], [3]))
    diff = report.get("diff")
    if diff:
        out.append(("Since the snapshot: new slow queries", ["queryid", "mean", "calls", "query"],
                    [[d["queryid"], fmt_ms(d["mean_ms"]), d["calls"], _short(d["query"])]
                     for d in diff.get("new_slow_queries", [])], [1, 2]))
        out.append(("Since the snapshot: regressions", ["queryid", "mean before", "mean since", "factor", "query"],
                    [[d["queryid"], fmt_ms(d["mean_ms_before"]), fmt_ms(d["mean_ms_since"]), fmt_num(d["factor"], 2),
                      _short(d["query"])] for d in diff.get("regressions", [])], [1, 2, 3]))
        out.append(("Since the snapshot: size growth", ["relation", "before", "now", "growth %"],
                    [[d["relation"], fmt_bytes(d["bytes_before"]), fmt_bytes(d["bytes_now"]), fmt_num(d["percent"])]
                     for d in diff.get("size_growth", [])], [1, 2, 3]))
    return out


def findings_rows(report):
    return [[f["severity"], f["section"], f["object"] or "", f["message"]] for f in report.get("findings", [])]


def header_lines(report):
    lines = ["Database: %s (PostgreSQL %s)" % (report.get("database"), report.get("server_version")),
             "Status: %s (%d finding(s))" % (report.get("status"), len(report.get("findings", [])))]
    if report.get("generated_at"):
        lines.append("Generated: %s" % report["generated_at"])
    return lines


def render_markdown(report):
    parts = ["# PostgreSQL health report: %s\n" % report.get("database")]
    parts.extend("- %s" % line for line in header_lines(report))
    parts.append("\n## Findings\n")
    parts.append(md_table(["severity", "section", "object", "message"], findings_rows(report)))
    for title, headers, rows, _numeric in section_tables(report):
        parts.append("\n## %s\n" % title)
        parts.append(md_table(headers, rows))
    return "\n".join(parts)


def charts(report):
    data = report.get("data", {})
    out = []
    st = data.get("statements") or {}
    if st.get("available"):
        items = [("%s %s" % (r["queryid"], _short(r["query"], 40)), r["total_ms"]) for r in st.get("top_by_total", [])]
        out.append(svg_bar_chart(items, "Top queries by total time", fmt=fmt_ms))
    sizes = data.get("sizes") or {}
    if sizes.get("tables"):
        items = [("%s.%s" % (t["schema"], t["name"]), t["total_bytes"]) for t in sizes["tables"]]
        out.append(svg_bar_chart(items, "Biggest relations (table + indexes + TOAST)", fmt=fmt_bytes, colour="#6a1b9a"))
    return out


def render_html(report):
    body = ["<h1>PostgreSQL health report: %s %s</h1>" % (esc(report.get("database")), badge(report.get("status")))]
    body.append("<p class=\"meta\">%s</p>" % "<br>".join(esc(line) for line in header_lines(report)))
    body.append("<h2>Findings</h2>")
    rows = findings_rows(report)
    if rows:
        body.append("<table class=\"data\"><thead><tr><th>severity</th><th>section</th><th>object</th><th>message</th>"
                    "</tr></thead><tbody>")
        for sev, section, obj, msg in rows:
            body.append("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (badge(sev), esc(section), esc(obj),
                                                                                      esc(msg)))
        body.append("</tbody></table>")
    else:
        body.append("<p class=\"none\">no findings</p>")
    for svg in charts(report):
        body.append("<figure>%s</figure>" % svg)
    for title, headers, rows, numeric in section_tables(report):
        body.append("<h2>%s</h2>" % esc(title))
        body.append(html_table(headers, rows, numeric=numeric))
    return html_page("PostgreSQL health report: %s" % report.get("database"), "\n".join(body))


def render_json(report):
    return json.dumps(report, indent=2, sort_keys=True, default=str) + "\n"
