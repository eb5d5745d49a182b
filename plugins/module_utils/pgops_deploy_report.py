# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deployment report: the runbook's sign-off sheet, filled in automatically.

``build_report(record)`` turns the run record collected by deploy.yml (run
metadata, phase timings, each role's result fact) into one normalised dict;
``render_markdown`` / ``render_html`` turn that dict into documents. Pure
functions: unit tested without Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.pgops.deploy.plugins.module_utils.pgops_report_render import (
    badge, esc, fmt_bytes, html_page, html_table, md_table)

PHASES = ["preflight", "backup", "prepare", "migrate", "release", "matviews", "verify"]
STATUS_SUCCESS = "SUCCESS"
STATUS_ROLLED_BACK = "ROLLED BACK"
STATUS_FAILED = "FAILED"
PHASE_COLOURS = {"ok": "#2e7d32", "failed": "#c62828", "rolled_back": "#ef6c00", "skipped": "#9e9e9e",
                 "running": "#1565c0", "not run": "#bdbdbd"}
STATUS_COLOURS = {STATUS_SUCCESS: "#2e7d32", STATUS_ROLLED_BACK: "#ef6c00", STATUS_FAILED: "#c62828"}


def _as_float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _dict(value):
    return value if isinstance(value, dict) else {}


def final_status(phases, rolled_back):
    """SUCCESS when no phase failed; ROLLED BACK when a failure was undone; FAILED otherwise."""
    failed = [p for p in phases if p.get("status") == "failed"]
    if not failed:
        return STATUS_SUCCESS
    return STATUS_ROLLED_BACK if rolled_back else STATUS_FAILED


def normalise_phases(raw_phases, run_started=None):
    """Phase dict/list -> ordered list with durations and offsets from the run start."""
    if isinstance(raw_phases, dict):
        items = []
        for name, value in raw_phases.items():
            entry = dict(_dict(value))
            entry.setdefault("name", name)
            items.append(entry)
    else:
        items = [dict(_dict(p)) for p in (raw_phases or [])]
    order = dict((name, i) for i, name in enumerate(PHASES))
    items.sort(key=lambda p: (order.get(p.get("name"), len(PHASES)), _as_float(p.get("started")) or 0))
    known = set(p.get("name") for p in items)
    for name in PHASES:
        if name not in known:
            items.append({"name": name, "status": "not run"})
    items.sort(key=lambda p: order.get(p.get("name"), len(PHASES)))
    starts = [_as_float(p.get("started")) for p in items if _as_float(p.get("started")) is not None]
    origin = _as_float(run_started) or (min(starts) if starts else None)
    for p in items:
        start, end = _as_float(p.get("started")), _as_float(p.get("finished"))
        p["duration_s"] = round(end - start, 2) if start is not None and end is not None else None
        p["offset_s"] = round(start - origin, 2) if start is not None and origin is not None else None
        p.setdefault("status", "not run")
    return items


def normalise_findings(raw):
    """{source: [str | {severity, message}]} or [{...}] -> [{source, severity, message}]."""
    if isinstance(raw, dict):
        items = []
        for source in sorted(raw):
            for entry in raw[source] or []:
                entry = dict(entry) if isinstance(entry, dict) else {"message": str(entry)}
                entry.setdefault("source", source)
                items.append(entry)
    else:
        items = [dict(f) for f in (raw or []) if isinstance(f, dict)]
    for entry in items:
        entry.setdefault("severity", "warning")
    return items


def build_report(record):
    """Normalise the run record into the report document (also what the JSON file holds)."""
    record = _dict(record)
    run = _dict(record.get("run"))
    phases = normalise_phases(record.get("phases"), run.get("started"))
    rolled_back = bool(record.get("rolled_back"))
    status = final_status(phases, rolled_back)
    started, finished = _as_float(run.get("started")), _as_float(run.get("finished"))
    errors = [e for e in (record.get("errors") or []) if isinstance(e, dict)]
    findings = normalise_findings(record.get("findings"))
    return {
        "schema": "pgops.deploy/report/v1",
        "status": status,
        "dry_run": bool(run.get("check_mode")),
        "run": dict(run, duration_s=round(finished - started, 2) if started and finished else None),
        "phases": phases,
        "hosts": _dict(record.get("hosts")),
        "backup": _dict(record.get("backup")),
        "migrations": _dict(record.get("migrations")),
        "releases": _dict(record.get("releases")),
        "matviews": record.get("matviews") or [],
        "verification": _dict(record.get("verification")),
        "errors": errors,
        "findings": findings,
        "rolled_back": rolled_back,
        "rollback_actions": record.get("rollback_actions") or [],
    }


def summary_line(report):
    run = report["run"]
    return "%s%s: deploy %s of %s (%s) in %ss" % (
        report["status"], " (dry run)" if report["dry_run"] else "", run.get("id", "?"),
        run.get("version") or "current version", run.get("limit") or "all hosts",
        run.get("duration_s") if run.get("duration_s") is not None else "?")


# ---------------------------------------------------------------- sections

def _version(value):
    return "none (empty database)" if value in (None, "", "None") else value


def _fmt_s(value):
    return "" if value is None else "%.1f s" % value


def _phase_rows(report):
    return [[p["name"], p["status"], _fmt_s(p.get("duration_s")), ", ".join(p.get("hosts") or []),
             p.get("message") or ""] for p in report["phases"]]


def _backup_rows(backup):
    manifest = _dict(backup.get("manifest"))
    rows = []
    for key, label in (("path", "Path"), ("checksum", "Checksum (sha256)"), ("size_bytes", "Size"),
                       ("duration_s", "Duration"), ("format", "Format"), ("verified", "Verified")):
        value = backup.get(key, manifest.get(key))
        if key == "size_bytes" and value is not None:
            value = fmt_bytes(value)
        if key == "duration_s" and value is not None:
            value = _fmt_s(_as_float(value))
        if value is not None:
            rows.append([label, value])
    counts = _dict(backup.get("row_counts") or manifest.get("row_counts"))
    if counts:
        rows.append(["Tables / rows", "%d tables, %d rows" % (len(counts), sum(int(v or 0) for v in counts.values()))])
    return rows


def _migration_rows(migrations, dry_run=False):
    rows = []
    if dry_run and not migrations.get("applied"):
        return [[p, "would be applied", "", ""] for p in migrations.get("pending") or []]
    for item in migrations.get("applied") or []:
        item = _dict(item)
        rows.append([item.get("version"), item.get("description"), "%s ms" % item.get("duration_ms", "?"),
                     item.get("attempts", 1)])
    return rows


def _release_rows(releases):
    rows = []
    for host in sorted(releases):
        rel = _dict(releases[host])
        live = rel.get("live_release") or rel.get("release_id") or "-"
        before = rel.get("previous_release") or "-"
        if rel.get("status") == "unchanged" or rel.get("reused"):
            before = live
        rows.append([host, before, live, (rel.get("revision") or "")[:12],
                     rel.get("version") or rel.get("live_version") or "",
                     "yes (%s failed)" % rel.get("release_id") if rel.get("rolled_back") else "no"])
    return rows


def _matview_rows(matviews):
    rows = []
    for mv in matviews:
        mv = _dict(mv)
        rows.append([mv.get("name"), mv.get("method"), "%s ms" % mv.get("duration_ms", "?"),
                     mv.get("rows_after"), mv.get("fallback_reason") or ""])
    return rows


def _verification_rows(verification):
    rows = []
    for check in verification.get("checks") or []:
        check = _dict(check)
        rows.append([check.get("name"), check.get("status"), check.get("expected", ""), check.get("found", "")])
    return rows


def _error_rows(report):
    return [[e.get("phase"), e.get("host"), e.get("task"), e.get("msg")] for e in report["errors"]]


def _finding_rows(report):
    return [[f.get("source") or f.get("section"), f.get("severity"), f.get("message")] for f in report["findings"]]


def _signoff_rows(report):
    """The runbook's checklist, ticked from what the run really did."""
    phases = dict((p["name"], p) for p in report["phases"])
    backup = report["backup"]
    migrations = report["migrations"]
    verification = report["verification"]

    def tick(ok, phase=None):
        # A phase skipped on purpose (nothing to do) is neither done nor failed.
        if phase and phases[phase]["status"] == "skipped":
            return "skipped"
        return "yes" if ok else "no"
    rows = [
        ["Preflight checks passed", tick(phases["preflight"]["status"] == "ok")],
        ["Backup taken and verified (every block read, checksums)", tick(bool(backup.get("verified")), "backup")],
        ["Migrations applied (%s -> %s)" % (_version(migrations.get("version_before")),
                                            _version(migrations.get("version_after"))),
         tick(phases["migrate"]["status"] == "ok", "migrate")],
        ["New release live on every app host", tick(phases["release"]["status"] == "ok")],
        ["Materialized views refreshed", tick(phases["matviews"]["status"] == "ok")],
        ["Health, features, data integrity verified", tick(phases["verify"]["status"] == "ok"
                                                           and not verification.get("failed"))],
    ]
    return rows


# ---------------------------------------------------------------- Markdown

def render_markdown(report):
    run = report["run"]
    out = ["# Deployment report %s — %s%s" % (run.get("id", ""), report["status"],
                                               " (DRY RUN)" if report["dry_run"] else ""), ""]
    out.append(summary_line(report))
    out.append("")
    out.append(md_table(["Field", "Value"], [
        ["Started", run.get("started_at", "")], ["Finished", run.get("finished_at", "")],
        ["Duration", _fmt_s(run.get("duration_s"))], ["Operator", run.get("operator", "")],
        ["Limit", run.get("limit") or "all"], ["Version", run.get("version") or ""],
        ["Check mode", "yes" if report["dry_run"] else "no"]]))
    out += ["## Phases", "", md_table(["Phase", "Status", "Duration", "Hosts", "Message"], _phase_rows(report))]
    if report["errors"]:
        out += ["## What failed", "", md_table(["Phase", "Host", "Task", "Error"], _error_rows(report))]
    if report["rollback_actions"]:
        out += ["## Rollback", ""] + ["- %s" % a for a in report["rollback_actions"]] + [""]
    hosts = report["hosts"]
    if hosts:
        out += ["## Hosts", "", md_table(["Group", "Hosts"], [[g, ", ".join(h)] for g, h in sorted(hosts.items())])]
    out += ["## Backup", "", md_table(["Field", "Value"], _backup_rows(report["backup"]))]
    mig = report["migrations"]
    out += ["## Migrations", "", "Version before: `%s`, after: `%s`, applied in this run: %s" % (
        _version(mig.get("version_before")), _version(mig.get("version_after")), len(mig.get("applied") or [])), "",
        md_table(["Version", "Description", "Duration", "Attempts"], _migration_rows(mig, report["dry_run"]))]
    out += ["## Release", "", md_table(["Host", "Before", "After", "Revision", "Version", "Rolled back"],
                                       _release_rows(report["releases"]))]
    out += ["## Materialized views", "", md_table(["View", "Method", "Duration", "Rows", "Fallback reason"],
                                                  _matview_rows(report["matviews"]))]
    out += ["## Verification", "", md_table(["Check", "Status", "Expected", "Found"],
                                            _verification_rows(report["verification"]))]
    out += ["## Findings", "", md_table(["Source", "Severity", "Message"], _finding_rows(report))]
    out += ["## Sign-off", "", md_table(["Step", "Done"], _signoff_rows(report))]
    return "\n".join(out)


# ---------------------------------------------------------------- HTML

def svg_timeline(phases, width=760, row=24, label_width=110):
    """Gantt-style phase timeline: one bar per phase at its offset, coloured by status."""
    timed = [p for p in phases if p.get("offset_s") is not None and p.get("duration_s") is not None]
    total = max([p["offset_s"] + p["duration_s"] for p in timed] + [1.0])
    span = width - label_width - 70
    height = 30 + row * len(phases) + 24
    parts = ["<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
             "role=\"img\" aria-label=\"phase timeline\" font-family=\"sans-serif\" font-size=\"12\">"
             % (width, height, width, height),
             "<text x=\"0\" y=\"16\" font-size=\"14\" font-weight=\"bold\">Phase timeline (%.1f s)</text>" % total]
    for i, p in enumerate(phases):
        y = 28 + i * row
        colour = PHASE_COLOURS.get(p.get("status"), "#555")
        parts.append("<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>" % (label_width - 8, y + 15, esc(p["name"])))
        if p.get("offset_s") is None or p.get("duration_s") is None:
            parts.append("<text x=\"%d\" y=\"%d\" fill=\"#777\">%s</text>" % (label_width, y + 15, esc(p["status"])))
            continue
        x = label_width + int(span * p["offset_s"] / total)
        w = max(2, int(span * p["duration_s"] / total))
        parts.append("<g><title>%s: %s, %.1f s</title><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                     "fill=\"%s\" rx=\"2\"/><text x=\"%d\" y=\"%d\">%.1f s</text></g>"
                     % (esc(p["name"]), esc(p["status"]), p["duration_s"], x, y + 2, w, row - 6, colour,
                        x + w + 4, y + 15, p["duration_s"]))
    axis_y = 28 + row * len(phases) + 14
    parts.append("<text x=\"%d\" y=\"%d\" fill=\"#555\">0 s</text>" % (label_width, axis_y))
    parts.append("<text x=\"%d\" y=\"%d\" fill=\"#555\" text-anchor=\"end\">%.1f s</text>"
                 % (label_width + span, axis_y, total))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def render_html(report):
    run = report["run"]
    status = report["status"]
    colour = STATUS_COLOURS.get(status, "#555")
    title = "Deployment %s: %s%s" % (run.get("id", ""), status, " (dry run)" if report["dry_run"] else "")
    body = ["<h1>%s <span class=\"badge\" style=\"background:%s\">%s</span></h1>" % (
        esc("Deployment " + str(run.get("id", ""))), colour, esc(status + (" - DRY RUN" if report["dry_run"] else "")))]
    body.append("<p class=\"meta\">%s</p>" % esc(summary_line(report)))
    body.append(html_table(["Field", "Value"], [
        ["Started", run.get("started_at", "")], ["Finished", run.get("finished_at", "")],
        ["Duration", _fmt_s(run.get("duration_s"))], ["Operator", run.get("operator", "")],
        ["Limit", run.get("limit") or "all"], ["Version", run.get("version") or ""]]))
    body.append("<h2>Phases</h2>")
    body.append(svg_timeline(report["phases"]))
    rows = _phase_rows(report)
    body.append("<table class=\"data\"><thead><tr><th>Phase</th><th>Status</th><th>Duration</th><th>Hosts</th>"
                "<th>Message</th></tr></thead><tbody>")
    for r in rows:
        sev = {"ok": "ok", "failed": "critical", "rolled_back": "warning"}.get(r[1], "info")
        body.append("<tr><td>%s</td><td>%s</td><td class=\"num\">%s</td><td>%s</td><td>%s</td></tr>"
                    % (esc(r[0]), badge(sev).replace(">%s<" % esc(sev), ">%s<" % esc(r[1])), esc(r[2]), esc(r[3]),
                       esc(r[4])))
    body.append("</tbody></table>")
    if report["errors"]:
        body += ["<h2>What failed</h2>", html_table(["Phase", "Host", "Task", "Error"], _error_rows(report))]
    if report["rollback_actions"]:
        body.append("<h2>Rollback</h2><ul>%s</ul>" % "".join("<li>%s</li>" % esc(a) for a in report["rollback_actions"]))
    if report["hosts"]:
        body += ["<h2>Hosts</h2>", html_table(["Group", "Hosts"],
                                              [[g, ", ".join(h)] for g, h in sorted(report["hosts"].items())])]
    body += ["<h2>Backup</h2>", html_table(["Field", "Value"], _backup_rows(report["backup"]))]
    mig = report["migrations"]
    body += ["<h2>Migrations</h2>", "<p>Version before <code>%s</code>, after <code>%s</code>.</p>" % (
        esc(_version(mig.get("version_before"))), esc(_version(mig.get("version_after")))),
        html_table(["Version", "Description", "Duration", "Attempts"], _migration_rows(mig, report["dry_run"]))]
    body += ["<h2>Release</h2>", html_table(["Host", "Before", "After", "Revision", "Version", "Rolled back"],
                                            _release_rows(report["releases"]))]
    body += ["<h2>Materialized views</h2>", html_table(["View", "Method", "Duration", "Rows", "Fallback reason"],
                                                       _matview_rows(report["matviews"]))]
    body += ["<h2>Verification</h2>", html_table(["Check", "Status", "Expected", "Found"],
                                                 _verification_rows(report["verification"]))]
    body += ["<h2>Findings</h2>", html_table(["Source", "Severity", "Message"], _finding_rows(report))]
    body += ["<h2>Sign-off</h2>", html_table(["Step", "Done"], _signoff_rows(report))]
    body.append("<details><summary>Raw report (JSON)</summary><pre>%s</pre></details>"
                % esc(json.dumps(report, indent=2, sort_keys=True, default=str)))
    return html_page(title, "\n".join(body))
