#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_verify
short_description: Read-only post-deploy verification of database objects, data, query plans, HTTP endpoints and logs
description:
  - Runs every requested check and returns them all (C(checks)); it never fails because a check failed, so
    the caller can report every problem at once. Module errors are reserved for invalid input.
  - Database checks (only run when one of their options is given) - extensions (optionally minimum version),
    tables, indexes (present, C(indisvalid) and C(indisready)), materialized views (populated), triggers
    (present and enabled), row counts against a pre-deploy baseline with per-table tolerances, and declared
    queries timed with C(EXPLAIN (ANALYZE, FORMAT JSON)) inside a read-only transaction that is rolled back.
  - HTTP checks (O(http_checks)) run from the host executing the module with millisecond latency,
    status, JSON path assertions, body regex and retries.
  - Log checks (O(log_sources)) scan C(journalctl -u UNIT --since) output or log files for error patterns,
    minus an allowlist.
version_added: 0.1.0
author: pgops.deploy contributors
extends_documentation_fragment:
  - pgops.deploy.postgres
options:
  extensions:
    description: Extensions that must be installed; a name or C({name, min_version}).
    type: list
    elements: raw
    default: []
  tables:
    description: Tables that must exist (C(schema.table) or C(table), resolved with the search_path).
    type: list
    elements: str
    default: []
  indexes:
    description: Indexes that must exist and be valid (C(schema.index) or C(index)).
    type: list
    elements: str
    default: []
  matviews:
    description: Materialized views that must exist and be populated.
    type: list
    elements: str
    default: []
  triggers:
    description: Triggers that must exist and be enabled; each C({table, name}).
    type: list
    elements: dict
    default: []
  baseline_row_counts:
    description: Pre-deploy row counts, a mapping of table name to count (for example C(backup_manifest.row_counts)).
    type: dict
    default: {}
  snapshot_row_counts:
    description:
      - Also return RV(row_counts), the exact C(count(*)) of every user table and populated materialized view,
        taken in one C(REPEATABLE READ READ ONLY) snapshot (what pg_backup records in its manifest).
      - deploy.yml takes it as the verification baseline when the backup phase did not dump
        (C(pgops_backup_policy=pending_migrations) and nothing to migrate).
    type: bool
    default: false
  row_count_tolerance:
    description: Per-table tolerance, a mapping of table name to C({absolute, percent}); either bound suffices.
    type: dict
    default: {}
  default_row_count_tolerance:
    description: Tolerance for tables missing from O(row_count_tolerance). Empty means exact.
    type: dict
    default: {}
  row_loss_severity:
    description: Status of a row loss beyond tolerance.
    type: str
    choices: [fail, warn, ignore]
    default: fail
  row_growth_severity:
    description: Status of a row growth beyond tolerance.
    type: str
    choices: [fail, warn, ignore]
    default: warn
  queries:
    description:
      - Queries to time. Each has C(name), C(sql) and optional C(expect_index) (index name that must appear
        in the plan), C(max_ms) (median execution time limit), C(baseline_ms) (reports improvement percent)
        and C(min_improvement_pct) (requires C(baseline_ms)).
    type: list
    elements: dict
    default: []
  query_runs:
    description: EXPLAIN ANALYZE runs per query; the median execution time is reported.
    type: int
    default: 3
  http_checks:
    description:
      - HTTP checks. Each has C(name), C(url) or C(path) (joined to O(http_base_url)), optional C(method)
        (GET), C(headers), C(body) (string) or C(json) (serialized, sets Content-Type), C(status)
        (int or list, default 200), C(json_assertions) (list of C({path, equals|not_equals|contains|regex|exists})),
        C(body_regex), C(max_latency_ms), C(retries) (default 0), C(delay) (seconds, default 1), C(timeout).
      - A check passes when one attempt passes every condition; retries wait C(delay) seconds between attempts.
    type: list
    elements: dict
    default: []
  http_base_url:
    description: Base URL for checks given as C(path), for example C(http://127.0.0.1:8000).
    type: str
    default: ''
  http_timeout:
    description: Default per-request timeout in seconds.
    type: float
    default: 10
  validate_certs:
    description: Verify TLS certificates.
    type: bool
    default: true
  log_sources:
    description:
      - Logs to scan. Each item has C(type) V(journal) with C(unit), or C(type) V(file) with C(path) (and C(optional)
        to skip a missing file), plus an optional C(name).
      - File lines without timestamps inherit the previous line's timestamp; a file without any timestamp
        is scanned whole when it was modified after O(log_since), and skipped otherwise.
    type: list
    elements: dict
    default: []
  log_since:
    description: Only log entries at or after this ISO 8601 time are scanned (deploy start). Empty scans everything.
    type: str
    default: ''
  log_error_patterns:
    description: Regular expressions that mark an error line. Empty uses Traceback, ERROR, CRITICAL and HTTP 5xx status lines.
    type: list
    elements: str
    default: []
  log_allowlist:
    description: Regular expressions of known, accepted error lines.
    type: list
    elements: str
    default: []
  log_severity:
    description: Status of a log source with findings.
    type: str
    choices: [fail, warn, ignore]
    default: fail
  log_max_findings:
    description: Findings kept per source.
    type: int
    default: 20
notes:
  - Check mode is supported; every check is read-only and runs in check mode too.
  - EXPLAIN ANALYZE executes the query; it runs inside C(BEGIN READ ONLY) ... C(ROLLBACK).
"""

EXAMPLES = r"""
- name: Verify database objects and data after the migration
  pgops.deploy.pg_verify:
    login_db: santri
    extensions: [postgis, {name: pg_stat_statements, min_version: '1.9'}]
    indexes: [public.idx_regions_geom]
    matviews: [public.mv_choropleth_stats]
    baseline_row_counts: "{{ backup_manifest.row_counts }}"
    row_count_tolerance:
      audit_log: {percent: 5}
    queries:
      - name: stats by region
        sql: SELECT * FROM regions WHERE code = 'ID-JT'
        expect_index: idx_regions_code
        baseline_ms: 120

- name: Health endpoint answers from the app host
  pgops.deploy.pg_verify:
    http_base_url: http://127.0.0.1:8000
    http_checks:
      - {name: health, path: /health, status: 200, json_assertions: [{path: status, equals: ok}], retries: 5}
      - {name: bad input rejected, method: POST, path: /items, json: {}, status: 422, body_regex: 'detail'}
"""

RETURN = r"""
checks:
  description: Every check with C(name), C(status) (ok, warning, failed, skipped), C(expected), C(found), C(message), C(duration_ms).
  returned: always
  type: list
  elements: dict
summary:
  description: C(status), names of C(failed) and C(warnings) checks, C(total).
  returned: always
  type: dict
row_counts:
  description: Exact row counts per table (C(schema.table) -> count) in one snapshot.
  returned: when O(snapshot_row_counts=true)
  type: dict
  sample: {"public.santri_pribadi": 1700000}
queries:
  description: SQL statements executed.
  returned: always
  type: list
  elements: str
"""

import datetime
import json
import os
import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import open_url
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_backup import count_rows
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_checks import (
    compare_row_counts, improvement_pct, json_assertion, line_timestamp, make_check, median,
    parse_now, plan_index_names, plan_node_types, scan_log_lines, status_for, summarize, version_ge,
)
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_postgres import (
    ConnectFailed, postgres_common_argument_spec, try_session,
)

DB_OPTIONS = ("extensions", "tables", "indexes", "matviews", "triggers", "baseline_row_counts", "queries",
              "snapshot_row_counts")


def _ms(start):
    return round((time.monotonic() - start) * 1000.0, 1)



class Verifier(object):
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.checks = []
        self.session = None
        self.snapshot = {}

    def add(self, name, status, expected, found, message=None, started=None, **extra):
        self.checks.append(make_check(name, status, expected, found, message,
                                      duration_ms=_ms(started) if started is not None else None, **extra))

    # ------------------------------------------------------------ database
    def regclass(self, name, kinds):
        """(oid, relkind) of a relation name resolved with the search_path, or (None, None)."""
        row = self.session.query(
            "SELECT c.oid::int AS oid, c.relkind::text AS relkind FROM pg_catalog.pg_class c "
            "WHERE c.oid = pg_catalog.to_regclass(%s)", (name,))
        if not row or row[0]["relkind"] not in kinds:
            return None, (row[0]["relkind"] if row else None)
        return row[0]["oid"], row[0]["relkind"]

    def database(self):
        started = time.monotonic()
        try:
            self.session = try_session(self.module)
        except ConnectFailed as exc:
            self.add("database_connection", "failed", "a connection to database %r" % self.p["login_db"],
                     str(exc), started=started)
            return
        s = self.session
        for ext in self.p["extensions"]:
            t0 = time.monotonic()
            spec = ext if isinstance(ext, dict) else {"name": str(ext)}
            if not spec.get("name"):
                self.module.fail_json(msg="extensions items are a name or {name, min_version}, got %r" % (ext,))
            version = s.scalar("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = %s", (spec["name"],))
            expected = "extension %s installed%s" % (spec["name"], " (>= %s)" % spec["min_version"]
                                                     if spec.get("min_version") else "")
            ok = version is not None and (not spec.get("min_version") or version_ge(version, spec["min_version"]))
            self.add("extension:%s" % spec["name"], "ok" if ok else "failed", expected,
                     "version %s" % version if version else "not installed", started=t0)

        for table in self.p["tables"]:
            t0 = time.monotonic()
            oid, kind = self.regclass(table, ("r", "p"))
            self.add("table:%s" % table, "ok" if oid else "failed", "table %s exists" % table,
                     "present" if oid else ("relation of kind %r" % kind if kind else "missing"), started=t0)

        for index in self.p["indexes"]:
            t0 = time.monotonic()
            oid, kind = self.regclass(index, ("i", "I"))
            if not oid:
                self.add("index:%s" % index, "failed", "valid index %s" % index,
                         "relation of kind %r" % kind if kind else "missing", started=t0)
                continue
            row = s.query("SELECT indisvalid, indisready, indrelid::regclass::text AS tbl FROM pg_catalog.pg_index "
                          "WHERE indexrelid = %s", (oid,))[0]
            ok = row["indisvalid"] and row["indisready"]
            self.add("index:%s" % index, "ok" if ok else "failed", "valid index %s" % index,
                     "on %s, indisvalid=%s indisready=%s%s" % (row["tbl"], row["indisvalid"], row["indisready"],
                                                               "" if ok else " (failed CREATE INDEX CONCURRENTLY?)"),
                     started=t0)

        for mv in self.p["matviews"]:
            t0 = time.monotonic()
            oid, kind = self.regclass(mv, ("m",))
            if not oid:
                self.add("matview:%s" % mv, "failed", "populated materialized view %s" % mv,
                         "relation of kind %r" % kind if kind else "missing", started=t0)
                continue
            populated = s.scalar("SELECT relispopulated FROM pg_catalog.pg_class WHERE oid = %s", (oid,))
            self.add("matview:%s" % mv, "ok" if populated else "failed", "populated materialized view %s" % mv,
                     "populated" if populated else "not populated (REFRESH MATERIALIZED VIEW needed)", started=t0)

        for trig in self.p["triggers"]:
            t0 = time.monotonic()
            if not trig.get("table") or not trig.get("name"):
                self.module.fail_json(msg="triggers items need table and name, got %r" % (trig,))
            label = "trigger:%s.%s" % (trig["table"], trig["name"])
            row = s.query("SELECT tgenabled::text AS enabled FROM pg_catalog.pg_trigger "
                          "WHERE tgrelid = pg_catalog.to_regclass(%s) AND tgname = %s AND NOT tgisinternal",
                          (trig["table"], trig["name"]))
            ok = bool(row) and row[0]["enabled"] != "D"
            self.add(label, "ok" if ok else "failed", "enabled trigger %s on %s" % (trig["name"], trig["table"]),
                     ("tgenabled=%s" % row[0]["enabled"]) if row else "missing", started=t0)

        if self.p["snapshot_row_counts"]:
            self.snapshot_counts()
        if self.p["baseline_row_counts"]:
            self.row_counts()
        for query in self.p["queries"]:
            self.query_plan(query)

    def snapshot_counts(self):
        """Exact counts of every table in one snapshot: the baseline of a deploy that took no backup."""
        t0 = time.monotonic()
        self.session.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            self.snapshot, _matviews = count_rows(self.session)
        finally:
            self.session.execute("COMMIT")
        self.add("row_count_snapshot", "ok", "exact row counts of every table in one snapshot",
                 "%d tables" % len(self.snapshot), started=t0)

    def row_counts(self):
        t0 = time.monotonic()
        current = {}
        for table in sorted(self.p["baseline_row_counts"]):
            oid, _kind = self.regclass(table, ("r", "p", "m"))
            if oid is None:
                current[table] = None
                continue
            current[table] = self.session.scalar("SELECT count(*) FROM %s" % self.session.scalar(
                "SELECT %s::regclass::text", (oid,), record=False))
        try:
            checks = compare_row_counts(self.p["baseline_row_counts"], current, self.p["row_count_tolerance"],
                                        self.p["default_row_count_tolerance"] or None,
                                        self.p["row_loss_severity"], self.p["row_growth_severity"])
        except ValueError as exc:
            self.module.fail_json(msg=str(exc))
        for check in checks:
            check["duration_ms"] = _ms(t0)
        self.checks.extend(checks)

    def query_plan(self, spec):
        t0 = time.monotonic()
        if not spec.get("name") or not spec.get("sql"):
            self.module.fail_json(msg="queries items need name and sql, got %r" % (spec,))
        if spec.get("min_improvement_pct") is not None and not spec.get("baseline_ms"):
            self.module.fail_json(msg="query %r: min_improvement_pct needs baseline_ms" % spec["name"])
        name = "query:%s" % spec["name"]
        s = self.session
        times, plan = [], None
        sql = spec["sql"].strip().rstrip(";")
        s.autocommit = False
        try:
            for _run in range(max(1, self.p["query_runs"])):
                s.execute("SET TRANSACTION READ ONLY")
                result = s.scalar("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql)
                s.rollback()
                plan = json.loads(result) if isinstance(result, str) else result
                times.append(float(plan[0]["Execution Time"]))
        except Exception as exc:
            s.rollback()
            s.autocommit = True
            self.add(name, "failed", "query runs", "error: %s" % str(exc).strip(), started=t0)
            return
        s.autocommit = True
        med = round(median(times), 3)
        indexes = plan_index_names(plan)
        problems, expected = [], []
        if spec.get("expect_index"):
            expected.append("plan uses index %s" % spec["expect_index"])
            if spec["expect_index"] not in indexes:
                problems.append("plan does not use %s (indexes: %s; nodes: %s)" % (
                    spec["expect_index"], ", ".join(indexes) or "none", ", ".join(sorted(set(plan_node_types(plan))))))
        if spec.get("max_ms") is not None:
            expected.append("median <= %s ms" % spec["max_ms"])
            if med > float(spec["max_ms"]):
                problems.append("median %s ms > %s ms" % (med, spec["max_ms"]))
        improvement = improvement_pct(spec.get("baseline_ms"), med)
        if spec.get("min_improvement_pct") is not None:
            expected.append(">= %s%% faster than baseline %s ms" % (spec["min_improvement_pct"], spec["baseline_ms"]))
            if improvement < float(spec["min_improvement_pct"]):
                problems.append("improvement %s%% < %s%%" % (improvement, spec["min_improvement_pct"]))
        found = "median %s ms over %d runs%s; indexes used: %s" % (
            med, len(times), "" if improvement is None else " (%+.1f%% vs baseline %s ms)" % (improvement, spec["baseline_ms"]),
            ", ".join(indexes) or "none")
        exp_text = "; ".join(expected) or "query runs"
        self.add(name, "failed" if problems else "ok", exp_text, found,
                 "%s: expected %s, found %s — %s" % (name, exp_text, found, "; ".join(problems)) if problems else None,
                 started=t0,
                 details=dict(median_ms=med, runs_ms=times, indexes=indexes, improvement_pct=improvement))

    # ---------------------------------------------------------------- http
    def http_attempt(self, spec, url):
        method = (spec.get("method") or "GET").upper()
        headers = dict(spec.get("headers") or {})
        data = None
        if spec.get("json") is not None:
            data = json.dumps(spec["json"])
            headers.setdefault("Content-Type", "application/json")
        elif spec.get("body") is not None:
            data = spec["body"]
        t0 = time.monotonic()
        status, body, error = None, "", None
        try:
            resp = open_url(url, data=data, headers=headers, method=method, validate_certs=self.p["validate_certs"],
                            timeout=float(spec.get("timeout") or self.p["http_timeout"]), follow_redirects="safe")
            status = resp.getcode()
            body = resp.read().decode("utf-8", "replace")
        except HTTPError as exc:  # 4xx/5xx still carry a status and a body
            status = exc.code
            try:
                body = exc.read().decode("utf-8", "replace")
            except Exception:
                body = ""
        except (URLError, OSError, ValueError) as exc:
            error = str(getattr(exc, "reason", exc))
        latency = _ms(t0)
        expected_status = spec.get("status", 200)
        if not isinstance(expected_status, list):
            expected_status = [expected_status]
        expected_status = [int(x) for x in expected_status]
        problems, found = [], []
        if error is not None:
            return ["request failed: %s" % error], ["no response (%s) after %s ms" % (error, latency)], latency, None
        found.append("HTTP %s in %s ms" % (status, latency))
        if status not in expected_status:
            problems.append("status %s not in %s" % (status, expected_status))
        if spec.get("max_latency_ms") is not None and latency > float(spec["max_latency_ms"]):
            problems.append("latency %s ms > %s ms" % (latency, spec["max_latency_ms"]))
        if spec.get("body_regex") and not re.search(spec["body_regex"], body):
            problems.append("body does not match /%s/" % spec["body_regex"])
        if spec.get("json_assertions"):
            try:
                doc = json.loads(body)
            except ValueError:
                problems.append("body is not JSON: %r" % body[:200])
                doc = None
            if doc is not None:
                for assertion in spec["json_assertions"]:
                    try:
                        ok, exp, got = json_assertion(doc, assertion)
                    except ValueError as exc:
                        self.module.fail_json(msg="http check %r: %s" % (spec.get("name"), exc))
                    if not ok:
                        problems.append("%s but found %s" % (exp, got))
        if problems:
            found.append("body: %s" % body[:300].replace("\n", " "))
        return problems, found, latency, status

    def http(self):
        for spec in self.p["http_checks"]:
            if not spec.get("name"):
                self.module.fail_json(msg="http_checks items need a name, got %r" % (spec,))
            url = spec.get("url")
            if not url:
                if not spec.get("path") or not self.p["http_base_url"]:
                    self.module.fail_json(msg="http check %r needs url, or path plus http_base_url" % spec["name"])
                url = self.p["http_base_url"].rstrip("/") + "/" + spec["path"].lstrip("/")
            t0 = time.monotonic()
            retries = int(spec.get("retries") or 0)
            attempts = 0
            while True:
                attempts += 1
                problems, found, latency, status = self.http_attempt(spec, url)
                if not problems or attempts > retries:
                    break
                time.sleep(float(spec.get("delay", 1)))
            status_list = spec.get("status", 200)
            expected = ["%s %s -> HTTP %s" % ((spec.get("method") or "GET").upper(), url, status_list)]
            if spec.get("max_latency_ms") is not None:
                expected.append("<= %s ms" % spec["max_latency_ms"])
            for assertion in spec.get("json_assertions") or []:
                ops = [k for k in sorted(assertion) if k != "path"]
                expected.append("json %s %s" % (assertion.get("path", "$"), ", ".join(
                    "%s %r" % (op, assertion[op]) for op in ops)))
            if spec.get("body_regex"):
                expected.append("body ~ /%s/" % spec["body_regex"])
            found_text = "; ".join(found) + ("" if attempts == 1 else " (attempt %d of %d)" % (attempts, retries + 1))
            exp_text = "; ".join(expected)
            self.add("http:%s" % spec["name"], "failed" if problems else "ok", exp_text, found_text,
                     ("http:%s: expected %s, found %s — %s" % (spec["name"], exp_text, found_text, "; ".join(problems)))
                     if problems else None, started=t0,
                     details=dict(url=url, status=status, latency_ms=latency, attempts=attempts))

    # ---------------------------------------------------------------- logs
    def logs(self):
        try:
            since = parse_now(self.p["log_since"]) if self.p["log_since"] else None
        except ValueError as exc:
            self.module.fail_json(msg="log_since: %s" % exc)
        for src in self.p["log_sources"]:
            t0 = time.monotonic()
            kind = src.get("type")
            note = ""
            if kind == "journal":
                if not src.get("unit"):
                    self.module.fail_json(msg="journal log sources need unit, got %r" % (src,))
                label = src.get("name") or "journal:%s" % src["unit"]
                argv = ["journalctl", "--no-pager", "-o", "short-iso", "-u", src["unit"]]
                if since is not None:
                    argv += ["--since", since.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")]
                rc, out, err = self.module.run_command(argv)
                if rc != 0:
                    self.add("log:%s" % label, "failed", "readable journal of %s" % src["unit"],
                             "journalctl rc=%s: %s" % (rc, (err or out).strip()[:300]), started=t0)
                    continue
                lines = out.splitlines()
                window = None  # journalctl already filtered
            elif kind == "file":
                if not src.get("path"):
                    self.module.fail_json(msg="file log sources need path, got %r" % (src,))
                label = src.get("name") or "file:%s" % src["path"]
                try:
                    with open(src["path"], errors="replace") as fh:
                        lines = fh.readlines()
                    mtime = datetime.datetime.fromtimestamp(os.path.getmtime(src["path"]), datetime.timezone.utc)
                except OSError as exc:
                    if src.get("optional"):
                        self.add("log:%s" % label, "skipped", "log file %s" % src["path"], "absent: %s" % exc, started=t0)
                    else:
                        self.add("log:%s" % label, "failed", "readable log file %s" % src["path"], str(exc), started=t0)
                    continue
                window = since
                if since is not None and not any(line_timestamp(x) for x in lines[:200] + lines[-200:]):
                    if mtime < since:
                        self.add("log:%s" % label, "ok", "no error lines since %s" % since.isoformat(),
                                 "file not modified since (mtime %s)" % mtime.isoformat(), started=t0)
                        continue
                    window = None
                    note = " (no timestamps in file: scanned all %d lines)" % len(lines)
            else:
                self.module.fail_json(msg="log_sources type must be journal or file, got %r" % (src,))
            findings, scanned = scan_log_lines(lines, self.p["log_error_patterns"] or None, self.p["log_allowlist"],
                                               since=window, max_findings=self.p["log_max_findings"], source=label)
            expected = "no error lines%s" % (" since %s" % since.isoformat() if since else "")
            if findings:
                found = "%d error line(s) in %d scanned%s: %s" % (
                    len(findings), scanned, note, " | ".join("L%d %s" % (f["line"], f["text"][:160]) for f in findings[:5]))
            else:
                found = "none in %d lines scanned%s" % (scanned, note)
            self.add("log:%s" % label, status_for(not findings, self.p["log_severity"]), expected, found,
                     started=t0, details=dict(findings=findings, scanned=scanned))

    def run(self):
        try:
            if any(self.p[o] for o in DB_OPTIONS):
                self.database()
            if self.p["http_checks"]:
                self.http()
            if self.p["log_sources"]:
                self.logs()
        finally:
            queries = self.session.queries if self.session else []
            if self.session:
                self.session.close()
        return queries


def main():
    argument_spec = postgres_common_argument_spec()
    severity = dict(type="str", choices=["fail", "warn", "ignore"])
    argument_spec.update(
        extensions=dict(type="list", elements="raw", default=[]),
        tables=dict(type="list", elements="str", default=[]),
        indexes=dict(type="list", elements="str", default=[]),
        matviews=dict(type="list", elements="str", default=[]),
        triggers=dict(type="list", elements="dict", default=[]),
        baseline_row_counts=dict(type="dict", default={}),
        snapshot_row_counts=dict(type="bool", default=False),
        row_count_tolerance=dict(type="dict", default={}),
        default_row_count_tolerance=dict(type="dict", default={}),
        row_loss_severity=dict(severity, default="fail"),
        row_growth_severity=dict(severity, default="warn"),
        queries=dict(type="list", elements="dict", default=[]),
        query_runs=dict(type="int", default=3),
        http_checks=dict(type="list", elements="dict", default=[]),
        http_base_url=dict(type="str", default=""),
        http_timeout=dict(type="float", default=10),
        validate_certs=dict(type="bool", default=True),
        log_sources=dict(type="list", elements="dict", default=[]),
        log_since=dict(type="str", default=""),
        log_error_patterns=dict(type="list", elements="str", default=[]),
        log_allowlist=dict(type="list", elements="str", default=[]),
        log_severity=dict(severity, default="fail"),
        log_max_findings=dict(type="int", default=20),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    verifier = Verifier(module)
    queries = verifier.run()
    extra = {"row_counts": verifier.snapshot} if module.params["snapshot_row_counts"] else {}
    module.exit_json(changed=False, checks=verifier.checks, summary=summarize(verifier.checks), queries=queries, **extra)


if __name__ == "__main__":
    main()
