# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Migration runner: history table, advisory lock, per-file transactions with
lock_timeout + retry, non-transactional files, revert/verify/baseline/repair.

The module (plugins/modules/pg_migrate.py) only parses options and reports;
everything that touches the server is here, on one PgSession (autocommit on,
explicit BEGIN/COMMIT), which also holds the session-level advisory lock.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re
import struct
import time

from ansible_collections.pgops.deploy.plugins.module_utils.pgops_postgres import (
    is_pg_error,
    quote_ident,
    sqlstate,
)
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_migrate_files import (
    MigrationFileError,
    normalise_version,
    version_key,
)
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_migrate_lint import (
    blocking,
    lint_file,
    tables_touched,
)

LOCK_TIMEOUT_STATES = ("55P03", "40P01")  # lock_not_available, deadlock_detected
_CIC = re.compile(r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?"
                  r"(?P<name>\"(?:[^\"]|\"\")+\"|[A-Za-z_][A-Za-z0-9_$]*)\s+ON\s+(?:ONLY\s+)?"
                  r"(?P<table>(?:\"(?:[^\"]|\"\")+\"|[A-Za-z_][A-Za-z0-9_$]*)"
                  r"(?:\s*\.\s*(?:\"(?:[^\"]|\"\")+\"|[A-Za-z_][A-Za-z0-9_$]*))?)", re.I)


class MigrationError(Exception):
    """A failure the module reports with fail_json (message already user-facing)."""

    def __init__(self, msg, **details):
        super(MigrationError, self).__init__(msg)
        self.details = details


def quote_literal(value):
    return "'" + str(value).replace("'", "''") + "'"


def advisory_key(schema, table):
    """Stable signed 64-bit advisory lock key for one history table."""
    digest = hashlib.sha256(("pgops.migrate:%s.%s" % (schema, table)).encode("utf-8")).digest()
    return struct.unpack(">q", digest[:8])[0]


def unident(name):
    name = name.strip()
    return name[1:-1].replace('""', '"') if name.startswith('"') else name.lower()


class MigrationRunner(object):

    def __init__(self, module, session, files):
        self.module = module
        self.p = module.params
        self.s = session
        self.files = files
        self.schema = self.p["history_schema"]
        self.table = self.p["history_table"]
        self.history = quote_ident(self.schema, self.table)
        self.lock_key = advisory_key(self.schema, self.table)
        self.locked = False
        self.check = module.check_mode

    # ------------------------------------------------------------ locking
    def acquire_lock(self):
        deadline = time.time() + max(self.p["lock_wait"], 0)
        first = True
        while True:
            got = self.s.scalar("SELECT pg_try_advisory_lock(%s)", (self.lock_key,), record=first)
            first = False
            if got:
                self.locked = True
                return
            if time.time() >= deadline:
                break
            time.sleep(0.2)
        holders = self.s.query(
            "SELECT l.pid, a.application_name, a.usename, a.client_addr::text AS client_addr, "
            "a.backend_start::text AS since, a.state "
            "FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
            "(SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) "
            "AND l.classid::bigint = ((%s::bigint >> 32) & 4294967295) "
            "AND l.objid::bigint = (%s::bigint & 4294967295) AND l.objsubid = 1",
            (self.lock_key, self.lock_key))
        who = "; ".join("pid %s (application_name=%r, user=%s, client=%s, connected since %s, state=%s)"
                        % (h["pid"], h["application_name"], h["usename"], h["client_addr"] or "local",
                           h["since"], h["state"]) for h in holders) or "holder already gone"
        raise MigrationError(
            "Another migration run holds the migration lock on %s.%s (advisory lock %d); waited %ss "
            "(lock_wait) and gave up without changing anything. Holder: %s"
            % (self.schema, self.table, self.lock_key, self.p["lock_wait"], who), lock_holders=holders)

    def release_lock(self):
        if self.locked and self.s.connection is not None:
            try:
                self.s.execute("SELECT pg_advisory_unlock(%s)", (self.lock_key,))
            except Exception:  # connection already broken: the lock died with it
                pass
            self.locked = False

    # ------------------------------------------------------------ history
    def history_exists(self):
        return bool(self.s.scalar("SELECT to_regclass(%s) IS NOT NULL", (self.history,), record=False))

    def ensure_history(self):
        if self.history_exists():
            return False
        if self.check:
            return True  # would create it
        self.s.execute("CREATE SCHEMA IF NOT EXISTS %s" % quote_ident(self.schema))
        self.s.execute(
            "CREATE TABLE IF NOT EXISTS %s (\n"
            "  installed_rank bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
            "  version text NOT NULL,\n"
            "  description text NOT NULL,\n"
            "  type text NOT NULL CHECK (type IN ('versioned', 'baseline', 'revert')),\n"
            "  script text NOT NULL,\n"
            "  checksum text,\n"
            "  applied_by text NOT NULL DEFAULT current_user,\n"
            "  applied_at timestamptz NOT NULL DEFAULT now(),\n"
            "  execution_ms integer NOT NULL DEFAULT 0,\n"
            "  success boolean NOT NULL\n"
            ")" % self.history)
        return True

    def read_history(self):
        if not self.history_exists():
            return []
        return self.s.query(
            "SELECT installed_rank, version, description, type, script, checksum, applied_by, "
            "applied_at::text AS applied_at, execution_ms, success FROM %s ORDER BY installed_rank" % self.history)

    # ------------------------------------------------------------ state
    def state(self, rows):
        """Work out applied / pending / problems from history rows and files."""
        applied = {}
        baseline = None
        failed = []
        for r in rows:
            if r["type"] == "baseline" and r["success"]:
                if baseline is None or version_key(r["version"]) > version_key(baseline["version"]):
                    baseline = r
            elif r["type"] == "versioned" and r["success"]:
                applied[normalise_version(r["version"])] = r
            elif r["type"] == "versioned":
                failed.append(r)
        base_key = version_key(baseline["version"]) if baseline else None
        drift, missing = [], []
        for version, row in applied.items():
            f = self.files.get(version)
            if f is None:
                missing.append(row)
            elif f.checksum != row["checksum"]:
                drift.append(dict(version=version, script=f.script, applied_script=row["script"],
                                  applied_checksum=row["checksum"], file_checksum=f.checksum))
        pending = [f for f in self.files.versioned
                   if f.version not in applied and (base_key is None or f.key > base_key)]
        keys = [version_key(v) for v in applied] + ([base_key] if base_key else [])
        top = max(keys) if keys else None
        current = None
        if top is not None:
            current = ".".join(str(x) for x in top)
        out_of_order = [f for f in pending if top is not None and f.key < top]
        return dict(applied=applied, baseline=baseline, failed=failed, drift=drift, missing=missing,
                    pending=pending, out_of_order=out_of_order, current=current)

    def check_state(self, st, allow_drift=False):
        problems = []
        if st["drift"] and not allow_drift:
            problems.append("checksum mismatch for applied migration(s): " + "; ".join(
                "%s (version %s) applied with checksum %s, file now has %s"
                % (d["script"], d["version"], d["applied_checksum"], d["file_checksum"]) for d in st["drift"])
                + " -- an applied file was edited: restore it, or run action=repair to accept the new content")
        if st["missing"] and not self.p["ignore_missing"]:
            problems.append("applied migration(s) have no file in %s: %s (set ignore_missing=true to accept)"
                            % (self.files.path, ", ".join("%s (%s)" % (r["script"], r["version"])
                                                          for r in st["missing"])))
        if st["out_of_order"] and not self.p["out_of_order"]:
            problems.append("pending migration(s) %s are older than the current version %s (out_of_order=false); "
                            "renumber them or set out_of_order=true"
                            % (", ".join(f.script for f in st["out_of_order"]), st["current"]))
        if problems:
            raise MigrationError("Validation failed, nothing was run: " + " | ".join(problems),
                                 drift=st["drift"], missing=[r["script"] for r in st["missing"]],
                                 out_of_order=[f.script for f in st["out_of_order"]])

    def select_pending(self, st):
        target = self.p["target"]
        pending = list(st["pending"])
        if target not in (None, "", "latest"):
            tkey = version_key(target)
            pending = [f for f in pending if f.key <= tkey]
        return pending

    def lint(self, pending):
        findings = []
        if self.p["lint"] == "off":
            return findings, []
        for f in pending:
            findings.extend(lint_file(f, self.p["allow_rules"]))
        return findings, blocking(findings, self.p["lint"])

    def validate_timeouts(self, files):
        values = set([self.p["lock_timeout"], self.p["statement_timeout"]])
        for f in files:
            for k in ("lock_timeout", "statement_timeout"):
                if f.directives[k]:
                    values.add(f.directives[k])
        self.s.execute("BEGIN", record=False)
        try:
            for v in sorted(values):
                try:
                    self.s.execute("SELECT set_config('lock_timeout', %s, true)", (v,), record=False)
                except Exception as exc:
                    if not is_pg_error(exc):
                        raise
                    raise MigrationError("invalid timeout value %r: %s" % (v, str(exc).strip()))
        finally:
            self.s.execute("ROLLBACK", record=False)

    # ------------------------------------------------------------ running
    def timeouts(self, f):
        return (f.directives["lock_timeout"] or self.p["lock_timeout"],
                f.directives["statement_timeout"] or self.p["statement_timeout"])

    def _fail_statement(self, f, st, exc, attempts, extra=""):
        diag = getattr(exc, "diag", None)
        line = st.line_of_position(getattr(diag, "statement_position", None)) if st else None
        msg = "Migration %s failed at line %s (SQLSTATE %s) after %d attempt(s): %s%s -- rolled back, " \
              "the database is as before this file" % (f.script, line, sqlstate(exc), attempts,
                                                        str(exc).strip().replace("\n", " "), extra)
        return MigrationError(msg, file=f.script, version=f.version, line=line, sqlstate=sqlstate(exc),
                              error=str(exc).strip(), statement=st.excerpt(400) if st else None)

    def _record_failure(self, f, kind, ms):
        try:
            self.s.execute(
                "INSERT INTO %s (version, description, type, script, checksum, execution_ms, success) "
                "VALUES (%%s, %%s, %%s, %%s, %%s, %%s, false)" % self.history,
                (f.version, f.description, kind, f.script, f.checksum, ms))
        except Exception:  # best effort: the real error is what matters
            pass

    def _retry_sleep(self, delay):
        time.sleep(delay)
        return min(delay * 2, 30.0)

    def run_transactional(self, f, history_sql, history_params, kind="versioned"):
        return self._in_transaction([(f, history_sql)], kind)[0]

    def _in_transaction(self, units, kind="versioned"):
        """Run files, each followed by its history statements, in ONE transaction.

        ``units``: [(file, history_sql(ms))]. Every file gets its own SET LOCAL lock_timeout /
        statement_timeout. Any error rolls everything back; a lock timeout retries the whole
        transaction with back-off; anything else raises MigrationError naming file and line.
        """
        delay = self.p["retry_delay"]
        attempts = 0
        t0 = time.time()
        while True:
            attempts += 1
            current = current_file = None
            results = []
            try:
                self.s.execute("BEGIN")
                for f, history_sql in units:
                    current_file = f
                    lock_timeout, statement_timeout = self.timeouts(f)
                    self.s.execute("SET LOCAL lock_timeout = %s" % quote_literal(lock_timeout))
                    self.s.execute("SET LOCAL statement_timeout = %s" % quote_literal(statement_timeout))
                    tf, notices_before = time.time(), len(self.s.notices)
                    for st in f.statements:
                        current = st
                        self.s.execute(st.text)
                    current = None
                    ms = int((time.time() - tf) * 1000)
                    for sql, params in history_sql(ms):
                        self.s.execute(sql, params)
                    results.append(dict(version=f.version, description=f.description, script=f.script,
                                        duration_ms=ms, attempts=attempts, notices=self.s.notices[notices_before:],
                                        transactional=True))
                self.s.execute("COMMIT")
                break
            except Exception as exc:
                if not is_pg_error(exc):
                    raise
                self.s.execute("ROLLBACK")
                if sqlstate(exc) in LOCK_TIMEOUT_STATES and attempts <= self.p["retries"]:
                    delay = self._retry_sleep(delay)
                    continue
                if self.p["record_failures"] and kind == "versioned":
                    self._record_failure(current_file, kind, int((time.time() - t0) * 1000))
                extra = ""
                if sqlstate(exc) in LOCK_TIMEOUT_STATES:
                    extra = " (lock_timeout %s hit on every attempt: a long transaction holds a conflicting lock)" \
                        % self.timeouts(current_file)[0]
                err = self._fail_statement(current_file, current, exc, attempts, extra)
                if len(units) > 1:
                    files = [f.script for f, _ in units]
                    err.args = (str(err).replace(
                        "the database is as before this file",
                        "the database is as before this group of %d file(s) (%s)" % (len(files), ", ".join(files))),)
                    err.details["group"] = files
                raise err
        if len(units) == 1:
            results[0]["duration_ms"] = int((time.time() - t0) * 1000)   # retries included
        return results

    def _index_state(self, st):
        m = _CIC.match(st.text)
        if not m:
            return None, None
        name = unident(m.group("name"))
        table = m.group("table")
        row = self.s.query(
            "SELECT format('%%I.%%I', n.nspname, c.relname) AS index, i.indisvalid AS valid "
            "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = %s AND c.relnamespace = "
            "(SELECT relnamespace FROM pg_catalog.pg_class WHERE oid = to_regclass(%s))",
            (name, table), record=False)
        return name, (row[0] if row else None)

    def run_autocommit(self, f, history_sql, history_params, kind="versioned"):
        st = f.statements[0]
        lock_timeout, statement_timeout = self.timeouts(f)
        delay = self.p["retry_delay"]
        attempts = 0
        notices_before = len(self.s.notices)
        invalid_dropped = []
        t0 = time.time()
        self.s.execute("SET lock_timeout = %s" % quote_literal(lock_timeout))
        self.s.execute("SET statement_timeout = %s" % quote_literal(statement_timeout))
        try:
            while True:
                attempts += 1
                name, idx = self._index_state(st)
                if idx is not None and not idx["valid"]:
                    if not self.p["drop_invalid_indexes"]:
                        raise MigrationError(
                            "Migration %s: index %s exists but is INVALID (left by a failed CREATE INDEX "
                            "CONCURRENTLY); IF NOT EXISTS would silently keep it. Drop it (DROP INDEX "
                            "CONCURRENTLY IF EXISTS %s) or set drop_invalid_indexes=true"
                            % (f.script, idx["index"], idx["index"]), file=f.script, invalid_index=idx["index"])
                    self.s.execute("DROP INDEX CONCURRENTLY IF EXISTS %s" % idx["index"])
                    invalid_dropped.append(idx["index"])
                try:
                    self.s.execute(st.text)
                except Exception as exc:
                    if not is_pg_error(exc):
                        raise
                    retry = sqlstate(exc) in LOCK_TIMEOUT_STATES and attempts <= self.p["retries"]
                    name, idx = self._index_state(st)
                    leftover = idx is not None and not idx["valid"]
                    if retry and (not leftover or self.p["drop_invalid_indexes"]):
                        delay = self._retry_sleep(delay)
                        continue
                    ms = int((time.time() - t0) * 1000)
                    if self.p["record_failures"] and kind == "versioned":
                        self._record_failure(f, kind, ms)
                    extra = ""
                    if leftover:
                        extra = "; the failed build left INVALID index %s behind (drop it with DROP INDEX " \
                                "CONCURRENTLY IF EXISTS %s, or re-run with drop_invalid_indexes=true)" \
                                % (idx["index"], idx["index"])
                    err = self._fail_statement(f, st, exc, attempts, extra)
                    err.args = (str(err).replace(" -- rolled back, the database is as before this file",
                                                 " -- non-transactional file: nothing to roll back"),)
                    err.details["invalid_index"] = idx["index"] if leftover else None
                    raise err
                name, idx = self._index_state(st)
                if idx is not None and not idx["valid"]:
                    raise MigrationError("Migration %s finished but index %s is INVALID" % (f.script, idx["index"]),
                                         file=f.script, invalid_index=idx["index"])
                break
            ms = int((time.time() - t0) * 1000)
            for sql, params in history_sql(ms):
                self.s.execute(sql, params)
        finally:
            self.s.execute("RESET lock_timeout")
            self.s.execute("RESET statement_timeout")
        return dict(version=f.version, description=f.description, script=f.script,
                    duration_ms=int((time.time() - t0) * 1000), attempts=attempts,
                    notices=self.s.notices[notices_before:], transactional=False,
                    invalid_indexes_dropped=invalid_dropped)

    def run_file(self, f, history_sql, kind="versioned"):
        if f.no_transaction:
            return self.run_autocommit(f, history_sql, None, kind)
        return self.run_transactional(f, history_sql, None, kind)

    def _apply_history(self, f):
        def history_sql(ms):
            return [
                ("DELETE FROM %s WHERE version = %%s AND type = 'versioned' AND NOT success" % self.history,
                 (f.version,)),
                ("INSERT INTO %s (version, description, type, script, checksum, execution_ms, success) "
                 "VALUES (%%s, %%s, 'versioned', %%s, %%s, %%s, true)" % self.history,
                 (f.version, f.description, f.script, f.checksum, ms)),
            ]
        return history_sql

    def apply(self, f):
        return self.run_file(f, self._apply_history(f))

    def apply_group(self, files):
        """Apply several transactional files in ONE transaction (Flyway's ``group``):
        a failure anywhere rolls back the whole group, so the database is exactly as
        before it; each file keeps its own timeouts and history row."""
        results = self._in_transaction([(f, self._apply_history(f)) for f in files])
        for r in results:
            r["group"] = len(files) > 1
        return results

    def revert(self, version, rfile, vrow):
        def history_sql(ms):
            return [
                ("DELETE FROM %s WHERE version = %%s AND type = 'versioned'" % self.history, (vrow["version"],)),
                ("INSERT INTO %s (version, description, type, script, checksum, execution_ms, success) "
                 "VALUES (%%s, %%s, 'revert', %%s, %%s, %%s, true)" % self.history,
                 (version, rfile.description, rfile.script, rfile.checksum, ms)),
            ]
        return self.run_file(rfile, history_sql, kind="revert")

    def verify(self, cfile):
        """Run a verify script in a transaction that is always rolled back."""
        lock_timeout, statement_timeout = self.timeouts(cfile)
        t0 = time.time()
        current = None
        notices_before = len(self.s.notices)
        self.s.execute("BEGIN")
        try:
            self.s.execute("SET LOCAL lock_timeout = %s" % quote_literal(lock_timeout))
            self.s.execute("SET LOCAL statement_timeout = %s" % quote_literal(statement_timeout))
            for st in cfile.statements:
                current = st
                self.s.execute(st.text)
            ok, error, line = True, None, None
        except Exception as exc:
            if not is_pg_error(exc):
                raise
            diag = getattr(exc, "diag", None)
            ok, error = False, str(exc).strip()
            line = current.line_of_position(getattr(diag, "statement_position", None)) if current else None
        finally:
            self.s.execute("ROLLBACK")
        return dict(version=cfile.version, script=cfile.script, ok=ok, error=error, line=line,
                    duration_ms=int((time.time() - t0) * 1000), notices=self.s.notices[notices_before:])

    # ------------------------------------------------------------ touched tables
    def _qualified(self, name):
        return self.s.scalar(
            "SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
            (name,), record=False)

    def count_rows(self, names):
        counts = {}
        for name in names:
            reg = self._qualified(name)
            if reg is None:
                counts[name] = None  # does not exist yet
                continue
            kind = self.s.scalar("SELECT relkind FROM pg_catalog.pg_class WHERE oid = to_regclass(%s)", (name,),
                                 record=False)
            if kind not in ("r", "p", "m"):
                continue
            counts[name] = self.s.scalar("SELECT count(*) FROM %s" % reg)
        return counts

    def analyze(self, names):
        done = []
        for name in names:
            reg = self._qualified(name)
            if reg is not None:
                self.s.execute("ANALYZE %s" % reg)
                done.append(reg)
        return done


def touched_tables(files):
    names = []
    for f in files:
        for t in tables_touched(f):
            if t not in names:
                names.append(t)
    return names


__all__ = ["MigrationRunner", "MigrationError", "MigrationFileError", "touched_tables", "advisory_key"]
