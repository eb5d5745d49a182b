#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pg_stat_report
short_description: PostgreSQL health report from pg_stat_statements and the statistics views, with thresholds
version_added: 0.1.0
description:
  - Collects the checks a DBA runs by hand or through PgHero / check_postgres, evaluates them against
    warning / critical thresholds and returns C(status), human C(findings) and the raw C(data) per section.
  - Sections C(statements) (pg_stat_statements top queries by total time, mean time and calls; column names
    resolved by server version), C(activity) (long-running queries, idle-in-transaction sessions), C(locks)
    (blocking lock chains via C(pg_blocking_pids)), C(connections) (by state vs C(max_connections)), C(sizes)
    (top tables, materialized views and indexes), C(indexes) (unused, duplicate, invalid), C(cache) (heap and
    index hit ratio), C(vacuum) (dead tuple ratio, last (auto)vacuum/analyze), C(wraparound) (C(age(datfrozenxid)),
    sequence exhaustion against the owning column's type) and C(replication) (replica lag, inactive slots).
  - Optionally writes the report as JSON, Markdown and a self-contained HTML page with inline SVG charts;
    a file is only rewritten when its content changed.
  - C(mode=snapshot) stores cumulative counters to O(snapshot_path); C(mode=compare) reports what changed since
    (new slow queries, mean-time regressions, indexes that became used/unused, relation growth).
  - Read-only on the database. A section that cannot be collected (for example missing privileges) becomes a
    warning finding instead of failing the whole report.
options:
  sections:
    description: Sections to collect (default all). An empty list is allowed with O(mode=snapshot) / O(mode=compare).
    type: list
    elements: str
    choices: [statements, activity, locks, connections, sizes, indexes, cache, vacuum, wraparound, replication]
  top:
    description: Rows per top-N list (queries, relations, indexes, tables in the vacuum section).
    type: int
    default: 10
  thresholds:
    description:
      - "Overrides of the default thresholds, for example C({statement_mean_ms: {warning: 50, critical: 500}}).
        A bare number sets the warning level; C(null) disables a level."
      - Thresholds C(statement_mean_ms), C(long_running_query_seconds), C(idle_in_transaction_seconds),
        C(lock_wait_seconds), C(connections_percent), C(cache_hit_percent) (lower is worse), C(unused_index_mb),
        C(dead_tuple_percent), C(analyze_age_days), C(xid_age), C(sequence_percent), C(replication_lag_seconds),
        C(replication_lag_mb), C(inactive_slot_retained_mb), C(size_growth_percent).
      - Noise filters (numbers) C(statement_min_calls), C(cache_min_blocks), C(vacuum_min_dead_tuples),
        C(stale_stats_min_rows), C(size_growth_min_mb). Defaults and their origin are listed in docs/modules.md.
    type: dict
    default: {}
  mode:
    description: C(report) only reports; C(snapshot) also writes a snapshot; C(compare) also diffs against one.
    type: str
    choices: [report, snapshot, compare]
    default: report
  snapshot_path:
    description: Snapshot file written by O(mode=snapshot) and read by O(mode=compare).
    type: path
  regression_factor:
    description: In compare mode, a query whose mean time since the snapshot is at least this many times its mean
      before is a regression (warning; critical at twice the factor).
    type: float
    default: 2.0
  output_json:
    description: Write the report (without C(queries)) as JSON to this path.
    type: path
  output_markdown:
    description: Write the report as Markdown to this path.
    type: path
  output_html:
    description: Write the report as a self-contained HTML page (tables, inline SVG bar charts) to this path.
    type: path
  timestamp:
    description: Put C(generated_at) into the written files. With V(false) an unchanged database gives byte-identical
      files, so re-runs report C(changed=false).
    type: bool
    default: true
  fail_on:
    description: Fail the task when the status is at least this severity (C(never) only reports).
    type: str
    choices: [never, warning, critical]
    default: never
  statement_timeout:
    description: C(statement_timeout) of the report session, so a report never hangs on a busy server.
    type: str
    default: 30s
extends_documentation_fragment:
  - pgops.deploy.postgres
attributes:
  check_mode:
    support: full
    details: Collects and returns everything; files and snapshots are not written (C(changed) says whether they would be).
author:
  - pgops.deploy maintainers
"""

EXAMPLES = r"""
- name: Health report of the app database with HTML and Markdown output
  pgops.deploy.pg_stat_report:
    login_db: santri
    output_html: /var/lib/pgops/reports/santri.html
    output_markdown: /var/lib/pgops/reports/santri.md
  register: health

- name: Stop the deploy when the database is in critical state
  pgops.deploy.pg_stat_report:
    login_db: santri
    sections: [locks, connections, wraparound, replication]
    fail_on: critical

- name: Before a release, snapshot the counters
  pgops.deploy.pg_stat_report:
    login_db: santri
    sections: []
    mode: snapshot
    snapshot_path: /var/lib/pgops/stat-before.json

- name: After the release, report new slow queries and regressions
  pgops.deploy.pg_stat_report:
    login_db: santri
    sections: [statements]
    mode: compare
    snapshot_path: /var/lib/pgops/stat-before.json
    regression_factor: 1.5
    thresholds:
      statement_mean_ms: {warning: 50, critical: 500}
      statement_min_calls: 10
"""

RETURN = r"""
status:
  description: Worst finding severity, C(ok), C(warning) or C(critical) (C(info) findings do not count).
  returned: always
  type: str
  sample: warning
findings:
  description: Everything that crossed a threshold, plus informational notes.
  returned: always
  type: list
  elements: dict
  contains:
    section:
      description: Section (or C(compare)) that produced the finding.
      type: str
    severity:
      description: C(info), C(warning) or C(critical).
      type: str
    message:
      description: Human sentence saying what is wrong and what to do.
      type: str
    object:
      description: The object concerned (C(pid:123), C(queryid:...), C(schema.relation), slot name...).
      type: str
    value:
      description: Measured value.
      type: raw
    threshold:
      description: Limit that was crossed.
      type: raw
data:
  description: Raw data per collected section (same keys as O(sections)).
  returned: always
  type: dict
sections:
  description: Sections collected.
  returned: always
  type: list
  elements: str
thresholds:
  description: Effective thresholds (defaults merged with O(thresholds)).
  returned: always
  type: dict
diff:
  description: Compare mode differences (new_slow_queries, regressions, became_unused, became_used, new_indexes,
    dropped_indexes, size_growth, statements_reset).
  returned: when mode is compare
  type: dict
files:
  description: Written (or in check mode would-be-written) files, each with C(path) and C(changed).
  returned: always
  type: dict
queries:
  description: SQL statements executed, in order.
  returned: always
  type: list
  elements: str
server_version:
  description: Server version number (C(server_version_num)).
  returned: always
  type: int
database:
  description: Database reported on.
  returned: always
  type: str
"""

import datetime
import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgops.deploy.plugins.module_utils.pgops_postgres import (
    PgSession, ensure_driver, postgres_common_argument_spec)
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_stat_eval import (
    ThresholdError, diff_snapshots, finding, merge_thresholds, section_findings, worst_status)
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_stat_queries import (
    COLLECTORS, SECTIONS, collect_snapshot, jsonable)
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_stat_render import (
    render_html, render_json, render_markdown)

FAIL_LEVEL = {"warning": 1, "critical": 2}
STATUS_LEVEL = {"ok": 0, "warning": 1, "critical": 2}


def write_if_changed(module, path, content):
    """Atomically replace ``path`` when ``content`` differs; honours check mode. Returns changed."""
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        module.fail_json(msg="cannot write %s: directory %s does not exist" % (path, parent))
    if os.path.exists(path):
        with open(path, "rb") as fh:
            if fh.read() == content.encode("utf-8"):
                return False
    if module.check_mode:
        return True
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=".pgops-report-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content.encode("utf-8"))
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except Exception:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def collect_sections(session, sections, opts, thresholds, database):
    data, findings = {}, []
    for name in sections:
        try:
            data[name] = COLLECTORS[name](session, opts)
        except Exception as exc:  # a section we may not read must not hide the others
            data[name] = dict(error=str(exc).strip())
            findings.append(finding(name, "warning", "Section %s could not be collected: %s" % (
                name, str(exc).strip().splitlines()[0]), name))
            continue
        findings.extend(section_findings(name, data[name], thresholds, database))
    return data, findings


def load_snapshot(module, path):
    if not path or not os.path.exists(path):
        module.fail_json(msg="snapshot_path %s does not exist: run the module with mode=snapshot first" % path)
    try:
        with open(path) as fh:
            snap = json.load(fh)
    except ValueError as exc:
        module.fail_json(msg="snapshot_path %s is not valid JSON: %s" % (path, exc))
    missing = [k for k in ("statements", "indexes", "tables") if not isinstance(snap.get(k), dict)]
    if missing:
        module.fail_json(msg="snapshot_path %s is not a pg_stat_report snapshot (missing %s)" % (path, ", ".join(missing)))
    return snap


def main():
    spec = postgres_common_argument_spec()
    spec.update(
        sections=dict(type="list", elements="str", choices=SECTIONS),
        top=dict(type="int", default=10),
        thresholds=dict(type="dict", default={}),
        mode=dict(type="str", default="report", choices=["report", "snapshot", "compare"]),
        snapshot_path=dict(type="path"),
        regression_factor=dict(type="float", default=2.0),
        output_json=dict(type="path"),
        output_markdown=dict(type="path"),
        output_html=dict(type="path"),
        timestamp=dict(type="bool", default=True),
        fail_on=dict(type="str", default="never", choices=["never", "warning", "critical"]),
        statement_timeout=dict(type="str", default="30s"),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           required_if=[["mode", "snapshot", ["snapshot_path"]], ["mode", "compare", ["snapshot_path"]]])
    ensure_driver(module)
    p = module.params
    sections = SECTIONS if p["sections"] is None else p["sections"]
    if not sections and p["mode"] == "report":
        module.fail_json(msg="sections is empty: nothing to report (empty sections only make sense with mode=snapshot/compare)")
    if p["top"] < 1:
        module.fail_json(msg="top must be >= 1, got %d" % p["top"])
    if p["regression_factor"] <= 1.0:
        module.fail_json(msg="regression_factor must be > 1.0, got %s" % p["regression_factor"])
    try:
        thresholds = merge_thresholds(p["thresholds"])
    except ThresholdError as exc:
        module.fail_json(msg=str(exc))
    old_snapshot = load_snapshot(module, p["snapshot_path"]) if p["mode"] == "compare" else None

    session = PgSession(module, autocommit=True)
    result = dict(changed=False, queries=session.queries, files={}, sections=list(sections), thresholds=thresholds)
    try:
        session.execute("SELECT pg_catalog.set_config('statement_timeout', %s, false)", (p["statement_timeout"],))
        database = session.scalar("SELECT current_database()")
        opts = dict(top=p["top"])
        data, findings = collect_sections(session, sections, opts, thresholds, database)
        report = dict(database=database, server_version=session.server_version_num, data=data)
        if p["mode"] in ("snapshot", "compare"):
            snapshot = collect_snapshot(session, opts)
            if p["mode"] == "snapshot":
                snapshot["taken_at"] = datetime.datetime.now().astimezone().isoformat()
                changed = write_if_changed(module, p["snapshot_path"],
                                           json.dumps(snapshot, indent=1, sort_keys=True) + "\n")
                result["files"]["snapshot"] = dict(path=p["snapshot_path"], changed=changed,
                                                   statements=len(snapshot["statements"]),
                                                   indexes=len(snapshot["indexes"]), tables=len(snapshot["tables"]))
                result["changed"] = result["changed"] or changed
            else:
                diff, diff_findings = diff_snapshots(old_snapshot, snapshot, thresholds, p["regression_factor"])
                if old_snapshot.get("database") not in (None, database):
                    diff_findings.insert(0, finding("compare", "info", "snapshot was taken on database %s, not %s"
                                                    % (old_snapshot.get("database"), database), database))
                if not snapshot["statements_available"]:
                    diff_findings.insert(0, finding("compare", "info", "pg_stat_statements is not installed in %s: "
                                                                       "query regressions cannot be compared" % database,
                                                    "pg_stat_statements"))
                diff["snapshot_taken_at"] = old_snapshot.get("taken_at")
                report["diff"] = diff
                findings.extend(diff_findings)
        report["findings"] = findings
        report["status"] = worst_status(findings)
    except Exception as exc:
        session.close()
        module.fail_json(msg="pg_stat_report failed: %s" % str(exc).strip(), **result)
    session.close()

    report = jsonable(report)
    file_report = dict(report)
    if p["timestamp"]:
        file_report["generated_at"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    for key, render in (("output_json", render_json), ("output_markdown", render_markdown),
                        ("output_html", render_html)):
        if p[key]:
            changed = write_if_changed(module, p[key], render(file_report))
            result["files"][key[len("output_"):]] = dict(path=p[key], changed=changed)
            result["changed"] = result["changed"] or changed
    result.update(report)
    counts = dict((s, sum(1 for f in findings if f["severity"] == s)) for s in ("critical", "warning", "info"))
    result["msg"] = "%s: status %s (%d critical, %d warning, %d info finding(s))" % (
        report["database"], report["status"], counts["critical"], counts["warning"], counts["info"])
    if p["fail_on"] != "never" and STATUS_LEVEL[report["status"]] >= FAIL_LEVEL[p["fail_on"]]:
        module.fail_json(**dict(result, msg="status is %s (fail_on=%s): %s" % (
            report["status"], p["fail_on"], "; ".join(f["message"] for f in findings
                                                      if f["severity"] in ("warning", "critical")))))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
