#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pg_migrate
short_description: Apply versioned SQL migrations safely (history table, checksums, advisory lock, lock_timeout retries, lint)
version_added: 0.1.0
description:
  - Replaces C(psql -v ON_ERROR_STOP=1 -f PRODUCTION_MIGRATION.sql). Applies C(V<version>__<description>.sql) files
    from O(path) in natural version order (1 < 2 < 10, 1.1 < 1.2 < 1.10) and records each in a history table
    (sha256 checksum of the file with normalised line endings, duration, who, when).
  - Only one runner at a time per history table (C(pg_try_advisory_lock) polled for O(lock_wait) seconds; the
    error names the pid and application of the holder).
  - Each file runs in its own transaction with C(SET LOCAL lock_timeout) and C(statement_timeout); the history row
    is written in the same transaction. A lock timeout (SQLSTATE 55P03) or deadlock rolls the file back and retries
    it with exponential back-off, so a migration never queues behind a long transaction while blocking the app.
  - Files whose header has C(-- pgops:no-transaction) must hold exactly one statement; it runs in autocommit with a
    session C(lock_timeout). An INVALID index left by a failed C(CREATE INDEX CONCURRENTLY) is detected and reported,
    and dropped before the retry with O(drop_invalid_indexes=true).
  - Pending files are linted first (dangerous operations such as C(DROP TABLE), non-concurrent index builds,
    constraints without C(NOT VALID)); error findings block the run unless allowed with C(-- pgops:allow <rule>),
    O(allow_rules) or O(lint=warn). See docs/migrations.md for the rule table.
  - Header directives (leading comment lines) C(-- pgops:no-transaction), C(-- pgops:allow <rule>[,<rule>]),
    C(-- pgops:lock_timeout <value>), C(-- pgops:statement_timeout <value>).
  - Check mode is a dry run that writes nothing (not even the history table); it returns the pending list, the lint
    findings and the SQL of the pending files.
options:
  path:
    description: Directory holding the migration files, on the host that runs the module.
    type: path
    required: true
  action:
    description:
      - C(migrate) applies pending files (up to O(target)).
      - C(info) reports applied/pending/findings and changes nothing.
      - C(validate) fails on checksum drift, missing files, out-of-order or blocking lint findings; changes nothing.
      - C(baseline) adopts an existing database at version O(target) without running files.
      - C(repair) re-records checksums of applied files that changed and removes failed rows.
      - C(revert) runs C(R<version>__*.sql) scripts in reverse order for applied versions above O(target),
        deleting their history rows.
      - C(verify) runs the C(C<version>__*.sql) scripts of applied versions, each in a transaction that is rolled back.
    type: str
    default: migrate
    choices: [migrate, info, validate, baseline, repair, revert, verify]
    aliases: [state]
  target:
    description:
      - Version to migrate up to (C(migrate)), to revert down to (C(revert), required, C(0) reverts everything),
        or to baseline at (C(baseline), required). Empty or C(latest) means every pending file.
    type: str
  history_schema:
    description: Schema of the history table (created when missing).
    type: str
    default: pgops
  history_table:
    description: Name of the history table.
    type: str
    default: schema_history
  lock_wait:
    description: Seconds to wait for the migration advisory lock before failing.
    type: float
    default: 10
  lock_timeout:
    description: C(lock_timeout) of each migration (a file header may override it).
    type: str
    default: 2s
  statement_timeout:
    description: C(statement_timeout) of each migration (C(0) disables; a file header may override it).
    type: str
    default: '0'
  retries:
    description: Retries of a file that hit the lock timeout (or a deadlock).
    type: int
    default: 5
  retry_delay:
    description: Seconds before the first retry; doubled after each further one (capped at 30).
    type: float
    default: 1.0
  out_of_order:
    description: Apply pending files whose version is lower than the highest applied one (otherwise fail naming them).
    type: bool
    default: false
  ignore_missing:
    description: Accept applied versions whose file is gone (otherwise fail naming them).
    type: bool
    default: false
  lint:
    description: C(error) blocks on error findings, C(warn) only reports them, C(off) skips linting.
    type: str
    default: error
    choices: [error, warn, 'off']
  allow_rules:
    description: Lint rule ids allowed for every file (see docs/migrations.md).
    type: list
    elements: str
    default: []
  drop_invalid_indexes:
    description:
      - Drop (C(DROP INDEX CONCURRENTLY IF EXISTS)) an INVALID index left by a failed C(CREATE INDEX CONCURRENTLY)
        of a C(no-transaction) file before (re)running it. Otherwise the run fails and names the index.
    type: bool
    default: false
  group:
    description:
      - Apply consecutive transactional files in ONE transaction, like Flyway's C(group). A failure in
        any of them rolls back all of them, so a failed deploy leaves the database exactly as it was.
      - A C(-- pgops:no-transaction) file cannot join a transaction; it runs alone and splits the
        pending files into the group before it and the group after it.
      - A lock timeout retries the whole group.
    type: bool
    default: false
  record_failures:
    description: Write a C(success=false) history row (own transaction) when a file fails; removed by a later success.
    type: bool
    default: true
  count_touched_rows:
    description: Before applying, C(count(*)) the existing tables named by DDL/DML of the pending files.
    type: bool
    default: false
  analyze_touched:
    description: After applying, C(ANALYZE) the tables named by DDL/DML of the applied files.
    type: bool
    default: false
  baseline_description:
    description: Description of the baseline row.
    type: str
    default: "<< baseline >>"
extends_documentation_fragment:
  - pgops.deploy.postgres
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - Revert scripts are not linted (they are destructive by nature); the postgis_migration role requires a verified
    backup before it migrates or reverts.
  - Non-transactional files cannot be rolled back; their history row is written right after the statement succeeds.
author:
  - pgops.deploy contributors
"""

EXAMPLES = r"""
- name: Apply pending migrations (lint blocks dangerous statements)
  pgops.deploy.pg_migrate:
    path: /var/lib/pgops/migrations/santri
    login_db: santri
  become: true
  become_user: postgres

- name: Dry run - what would run, lint findings, SQL
  pgops.deploy.pg_migrate:
    path: /var/lib/pgops/migrations/santri
    login_db: santri
  check_mode: true
  register: plan

- name: Adopt an existing production database at version 5
  pgops.deploy.pg_migrate:
    path: /var/lib/pgops/migrations/santri
    login_db: santri
    action: baseline
    target: "5"

- name: Roll back to version 6 with the R scripts
  pgops.deploy.pg_migrate:
    path: /var/lib/pgops/migrations/santri
    login_db: santri
    action: revert
    target: "6"

- name: Allow a reviewed rule everywhere and retry harder behind long transactions
  pgops.deploy.pg_migrate:
    path: /srv/app/current/migrations
    login_db: santri
    allow_rules: [create-index-not-concurrently]
    lock_timeout: 1s
    retries: 8
"""

RETURN = r"""
action:
  description: Action performed.
  returned: always
  type: str
current_version:
  description: Highest applied (or baseline) version before and after the run (null when none).
  returned: always
  type: dict
  sample: {before: "6", after: "8"}
applied:
  description: Files applied (migrate) or reverted (revert) in this run.
  returned: always
  type: list
  elements: dict
  sample: [{version: "7", description: skor updated index, script: V7__skor_updated_index.sql, duration_ms: 41,
            attempts: 1, notices: [], transactional: false}]
pending:
  description: Files still pending after the run (in check mode, those that would run, with their C(sql)).
  returned: always
  type: list
  elements: dict
planned:
  description: >-
    Files that were pending when the run started, in the order they run (without their SQL): the pre-migration
    plan of a real run, so a caller needs no separate check-mode call (partly applied when the run failed).
  returned: when action is migrate
  type: list
  elements: dict
  sample: [{version: "7", description: skor updated index, script: V7__skor_updated_index.sql,
            checksum: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, transactional: false}]
history:
  description: Rows of the history table (info/validate/verify).
  returned: when action is info, validate or verify
  type: list
  elements: dict
findings:
  description: Lint findings of the pending files (rule, severity, file, version, line, statement, message, allowed).
  returned: always
  type: list
  elements: dict
blocking_findings:
  description: Findings that blocked the run.
  returned: always
  type: list
  elements: dict
verified:
  description: Result of each verify script (version, script, ok, error, line).
  returned: when action is verify
  type: list
  elements: dict
repaired:
  description: Versions whose checksum was re-recorded and failed rows removed.
  returned: when action is repair
  type: dict
touched_tables:
  description: Tables named by the pending files, with exact row counts before applying (null = did not exist).
  returned: when count_touched_rows is true
  type: dict
analyzed:
  description: Tables analysed after applying.
  returned: when analyze_touched is true
  type: list
  elements: str
queries:
  description: SQL executed, in order (statement texts of the migrations included).
  returned: always
  type: list
  elements: str
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgops.deploy.plugins.module_utils.pgops_postgres import (
    PgSession,
    ensure_driver,
    postgres_common_argument_spec,
)
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_migrate_files import (
    MigrationFileError,
    MigrationSet,
    normalise_version,
    version_key,
)
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_migrate_lint import unknown_rules, RULES
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_migrate_runner import (
    MigrationError,
    MigrationRunner,
    touched_tables,
)


def _plan_entry(f, with_sql):
    entry = dict(version=f.version, description=f.description, script=f.script, checksum=f.checksum,
                 transactional=not f.no_transaction)
    if with_sql:
        entry["sql"] = f.text
    return entry


def apply_batches(pending, group):
    """Files to apply together: one each, or with ``group`` runs of transactional files
    (a -- pgops:no-transaction file always stands alone and ends the run before it)."""
    if not group:
        return [[f] for f in pending]
    batches, run = [], []
    for f in pending:
        if f.no_transaction:
            if run:
                batches.append(run)
                run = []
            batches.append([f])
        else:
            run.append(f)
    if run:
        batches.append(run)
    return batches


def do_migrate(module, runner, result):
    p = module.params
    st = runner.state(runner.read_history())
    result["current_version"]["before"] = st["current"]
    runner.check_state(st)
    pending = runner.select_pending(st)
    result["planned"] = [_plan_entry(f, False) for f in pending]
    for f in pending:
        f.check_runnable()
    findings, blockers = runner.lint(pending)
    result["findings"], result["blocking_findings"] = findings, blockers
    if blockers:
        raise MigrationError(
            "Lint blocked the run, nothing was applied: " + "; ".join(
                "%s line %d [%s] %s: %s" % (b["file"], b["line"], b["rule"], b["statement"], b["message"])
                for b in blockers)
            + " (allow per file with '-- pgops:allow <rule>', with allow_rules, or lint=warn)")
    runner.validate_timeouts(pending)
    if p["count_touched_rows"]:
        result["touched_tables"] = runner.count_rows(touched_tables(pending))
    if module.check_mode:
        result["pending"] = [_plan_entry(f, True) for f in pending]
        result["changed"] = bool(pending) or result["changed"]
        result["current_version"]["after"] = pending[-1].version if pending else st["current"]
        return
    for batch in apply_batches(pending, p["group"]):
        if len(batch) > 1 or (p["group"] and not batch[0].no_transaction):
            result["applied"].extend(runner.apply_group(batch))
        else:
            result["applied"].append(runner.apply(batch[0]))
        result["changed"] = True
    if p["analyze_touched"] and result["applied"]:
        result["analyzed"] = runner.analyze(touched_tables(pending))
    st = runner.state(runner.read_history())
    result["current_version"]["after"] = st["current"]
    result["pending"] = [_plan_entry(f, False) for f in st["pending"]]


def do_info(module, runner, result, strict):
    rows = runner.read_history()
    st = runner.state(rows)
    result["history"] = rows
    result["current_version"]["before"] = result["current_version"]["after"] = st["current"]
    result["drift"] = st["drift"]
    result["missing"] = [r["script"] for r in st["missing"]]
    pending = runner.select_pending(st)
    result["pending"] = [_plan_entry(f, False) for f in pending]
    findings, blockers = runner.lint(pending)
    result["findings"], result["blocking_findings"] = findings, blockers
    if strict:
        runner.check_state(st)
        for f in pending:
            f.check_runnable()
        if blockers:
            raise MigrationError("Validation failed: %d blocking lint finding(s): %s" % (len(blockers), "; ".join(
                "%s line %d [%s]" % (b["file"], b["line"], b["rule"]) for b in blockers)))


def do_baseline(module, runner, result):
    target = normalise_version(module.params["target"])
    rows = runner.read_history()
    st = runner.state(rows)
    result["current_version"]["before"] = st["current"]
    if st["baseline"] is not None:
        if normalise_version(st["baseline"]["version"]) == target:
            result["current_version"]["after"] = st["current"]
            return
        raise MigrationError("history already has a baseline at version %s; refusing to baseline at %s"
                             % (st["baseline"]["version"], target))
    if st["applied"]:
        raise MigrationError("history already holds applied migrations (current version %s): baseline is only for "
                             "adopting a database that was never migrated by pg_migrate" % st["current"])
    result["changed"] = True
    result["current_version"]["after"] = target
    if module.check_mode:
        return
    runner.s.execute("INSERT INTO %s (version, description, type, script, checksum, execution_ms, success) "
                     "VALUES (%%s, %%s, 'baseline', %%s, NULL, 0, true)" % runner.history,
                     (target, module.params["baseline_description"], module.params["baseline_description"]))


def do_repair(module, runner, result):
    st = runner.state(runner.read_history())
    result["current_version"]["before"] = result["current_version"]["after"] = st["current"]
    repaired = dict(checksums=[d["version"] for d in st["drift"]], failed_rows_removed=len(st["failed"]))
    result["repaired"] = repaired
    result["drift"] = st["drift"]
    if not st["drift"] and not st["failed"]:
        return
    result["changed"] = True
    if module.check_mode:
        return
    runner.s.execute("BEGIN")
    for d in st["drift"]:
        f = runner.files.get(d["version"])
        runner.s.execute("UPDATE %s SET checksum = %%s, script = %%s, description = %%s "
                         "WHERE version = %%s AND type = 'versioned' AND success" % runner.history,
                         (f.checksum, f.script, f.description, d["version"]))
    if st["failed"]:
        runner.s.execute("DELETE FROM %s WHERE type = 'versioned' AND NOT success" % runner.history)
    runner.s.execute("COMMIT")


def do_revert(module, runner, result):
    target = module.params["target"]
    tkey = version_key(target)
    st = runner.state(runner.read_history())
    result["current_version"]["before"] = st["current"]
    runner.check_state(st, allow_drift=False)
    if st["baseline"] is not None and tkey < version_key(st["baseline"]["version"]):
        raise MigrationError("cannot revert below the baseline version %s (target %s): versions up to the baseline "
                             "were never applied by pg_migrate" % (st["baseline"]["version"], target))
    todo = sorted((v for v in st["applied"] if version_key(v) > tkey), key=version_key, reverse=True)
    missing = [v for v in todo if v not in runner.files.reverts]
    if missing:
        raise MigrationError("no revert script (R<version>__*.sql) for applied version(s) %s; nothing was reverted"
                             % ", ".join(missing))
    for v in todo:
        runner.files.reverts[v].check_runnable()
    runner.validate_timeouts([runner.files.reverts[v] for v in todo])
    if module.check_mode:
        result["pending"] = [_plan_entry(runner.files.reverts[v], True) for v in todo]
        result["changed"] = bool(todo)
        result["current_version"]["after"] = target if todo else st["current"]
        return
    for v in todo:
        result["applied"].append(runner.revert(v, runner.files.reverts[v], st["applied"][v]))
        result["changed"] = True
    result["current_version"]["after"] = runner.state(runner.read_history())["current"]


def do_verify(module, runner, result):
    st = runner.state(runner.read_history())
    result["current_version"]["before"] = result["current_version"]["after"] = st["current"]
    target = module.params["target"]
    versions = sorted(st["applied"], key=version_key)
    if target not in (None, "", "latest"):
        versions = [v for v in versions if version_key(v) <= version_key(target)]
    result["verified"] = [runner.verify(runner.files.verifies[v]) for v in versions if v in runner.files.verifies]
    bad = [v for v in result["verified"] if not v["ok"]]
    if bad:
        raise MigrationError("verify failed: " + "; ".join("%s line %s: %s" % (b["script"], b["line"], b["error"])
                                                           for b in bad))


def main():
    spec = postgres_common_argument_spec()
    spec.update(
        path=dict(type="path", required=True),
        action=dict(type="str", default="migrate", aliases=["state"],
                    choices=["migrate", "info", "validate", "baseline", "repair", "revert", "verify"]),
        target=dict(type="str"),
        history_schema=dict(type="str", default="pgops"),
        history_table=dict(type="str", default="schema_history"),
        lock_wait=dict(type="float", default=10),
        lock_timeout=dict(type="str", default="2s"),
        statement_timeout=dict(type="str", default="0"),
        retries=dict(type="int", default=5),
        retry_delay=dict(type="float", default=1.0),
        out_of_order=dict(type="bool", default=False),
        ignore_missing=dict(type="bool", default=False),
        lint=dict(type="str", default="error", choices=["error", "warn", "off"]),
        allow_rules=dict(type="list", elements="str", default=[]),
        drop_invalid_indexes=dict(type="bool", default=False),
        record_failures=dict(type="bool", default=True),
        group=dict(type="bool", default=False),
        count_touched_rows=dict(type="bool", default=False),
        analyze_touched=dict(type="bool", default=False),
        baseline_description=dict(type="str", default="<< baseline >>"),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           required_if=[["action", "baseline", ["target"]], ["action", "revert", ["target"]]])
    ensure_driver(module)
    p = module.params
    result = dict(changed=False, action=p["action"], applied=[], pending=[], findings=[], blocking_findings=[],
                  current_version=dict(before=None, after=None), queries=[])
    # Input checks: fail before connecting.
    if p["retries"] < 0 or p["retry_delay"] < 0 or p["lock_wait"] < 0:
        module.fail_json(msg="retries, retry_delay and lock_wait must be >= 0 (got %s, %s, %s)"
                         % (p["retries"], p["retry_delay"], p["lock_wait"]), **result)
    bad = unknown_rules(p["allow_rules"])
    if bad:
        module.fail_json(msg="allow_rules has unknown rule id(s) %s; known: %s" % (", ".join(bad), ", ".join(sorted(RULES))),
                         **result)
    try:
        if p["target"] not in (None, "", "latest"):
            version_key(p["target"])
        files = MigrationSet(p["path"])
        for f in files.versioned + list(files.reverts.values()) + list(files.verifies.values()):
            bad = unknown_rules(f.directives["allow"])
            if bad:
                raise MigrationFileError("%s: pgops:allow names unknown rule id(s) %s; known: %s"
                                         % (f.script, ", ".join(bad), ", ".join(sorted(RULES))))
    except MigrationFileError as exc:
        module.fail_json(msg=str(exc), **result)

    session = PgSession(module, autocommit=True)
    result["queries"] = session.queries
    runner = MigrationRunner(module, session, files)
    try:
        writes = p["action"] in ("migrate", "baseline", "repair", "revert") and not module.check_mode
        if writes or p["action"] == "verify":
            runner.acquire_lock()
        if writes:
            runner.ensure_history()
        if p["action"] == "migrate":
            do_migrate(module, runner, result)
        elif p["action"] in ("info", "validate"):
            do_info(module, runner, result, strict=p["action"] == "validate")
        elif p["action"] == "baseline":
            do_baseline(module, runner, result)
        elif p["action"] == "repair":
            do_repair(module, runner, result)
        elif p["action"] == "revert":
            do_revert(module, runner, result)
        elif p["action"] == "verify":
            do_verify(module, runner, result)
    except MigrationFileError as exc:
        runner.release_lock()
        module.fail_json(msg=str(exc), **result)
    except MigrationError as exc:
        runner.release_lock()
        result.update(exc.details)
        module.fail_json(msg=str(exc), **result)
    except Exception as exc:
        runner.release_lock()
        module.fail_json(msg="pg_migrate failed unexpectedly: %s" % exc, exception=traceback.format_exc(), **result)
    runner.release_lock()
    session.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
