# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a restore into a new database: pg_restore's steps, the named-pipe feed, autovacuum held off.

Why hold autovacuum off: a freshly loaded table crosses autovacuum's insert threshold at once, so an
autovacuum worker starts on it while pg_restore still has to build its indexes and constraints. Its
SHARE UPDATE EXCLUSIVE lock blocks CREATE INDEX / ALTER TABLE until the waiting session's deadlock
check (deadlock_timeout, 1 s by default) cancels it - measured on the 1 GB sample: two such waits,
2 s of idle CPU at the end of a 24 s restore, and the vacuum's own scan competing with the restore
before that. So on a new database (nobody else uses it yet) the restore runs as pg_dump's sections:
pre-data (serial; creates the tables), then `autovacuum_enabled = false` on every table, then data
and post-data with `--jobs`, then every table's own autovacuum settings back exactly as the dump
created them - also when the restore failed, so a kept database behaves normally.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pgops.deploy.plugins.module_utils.pgops_backup import (
    USER_TABLES_SQL, BackupError, Pipeline)
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_postgres import quote_ident

AUTOVACUUM_KEYS = ("autovacuum_enabled", "toast.autovacuum_enabled")


def option_value(options, key):
    """The value of `key` in a reloptions array (['fillfactor=70', ...]), or None when not set."""
    for item in options or []:
        name, _sep, value = item.partition("=")
        if name == key:
            return value
    return None


def pause_statement(table):
    """ALTER ... SET (autovacuum_enabled = false[, toast...]) for one row of USER_TABLES_SQL."""
    kind = "MATERIALIZED VIEW" if table["kind"] == "m" else "TABLE"
    opts = "autovacuum_enabled = false" + (", toast.autovacuum_enabled = false" if table["has_toast"] else "")
    return "ALTER %s %s SET (%s)" % (kind, quote_ident(table["schema"], table["name"]), opts)


def resume_statements(table):
    """Put back exactly what the dump created: RESET what it did not set, SET what it did."""
    kind = "MATERIALIZED VIEW" if table["kind"] == "m" else "TABLE"
    target = "ALTER %s %s" % (kind, quote_ident(table["schema"], table["name"]))
    before = {"autovacuum_enabled": option_value(table["options"], "autovacuum_enabled")}
    if table["has_toast"]:
        before["toast.autovacuum_enabled"] = option_value(table["toast_options"], "autovacuum_enabled")
    reset = [k for k in AUTOVACUUM_KEYS if k in before and before[k] is None]
    keep = ["%s = %s" % (k, before[k]) for k in AUTOVACUUM_KEYS if before.get(k) is not None]
    out = []
    if reset:
        out.append("%s RESET (%s)" % (target, ", ".join(reset)))
    if keep:
        out.append("%s SET (%s)" % (target, ", ".join(keep)))
    return out


class RestoreRun(object):
    """pg_restore step(s) into `dbname`, with the FifoFeed of the data files and autovacuum held off.

    steps: [(stages, stdin_path)] from restore_steps(); with two steps (pre-data, then data + post-data)
    and `connect` (opens a session on the new database), autovacuum is paused between them.
    """

    def __init__(self, steps, env, feed=None, connect=None):
        self.steps = steps
        self.env = env
        self.feed = feed
        self.connect = connect if len(steps) > 1 else None
        self.paused = []
        self.autovacuum = dict(paused=0, resumed=0, skipped=[], errors=[])
        self.queries = []

    @property
    def commands(self):
        return [" | ".join(" ".join(argv) for argv in stages) for stages, _stdin in self.steps]

    def run(self):
        """Returns None or the error text: the failed step's, the feed's, then the autovacuum resume's."""
        if self.feed is not None:
            self.feed.start()
        errors = []
        try:
            for idx, (stages, stdin) in enumerate(self.steps):
                try:
                    _rcs, err = Pipeline(stages, env=self.env, stdin_path=stdin).run()
                except BackupError as exc:
                    err = str(exc)
                if err:
                    errors.append(err)
                    break
                if idx == 0 and self.connect is not None:
                    self._pause()
        finally:
            if self.feed is not None:
                errors.extend(self.feed.finish(restore_ok=not errors))
            if self.paused:
                errors.extend(self._resume())
        return "; ".join(errors) or None

    def _session(self, work):
        session = self.connect()
        try:
            return work(session)
        finally:
            self.queries.extend(session.queries)
            session.close()

    def _pause(self):
        def work(session):
            for table in session.query(USER_TABLES_SQL, record=False):
                try:
                    session.execute(pause_statement(table))
                    self.paused.append(table)
                except Exception as exc:  # e.g. not the owner: that table just keeps autovacuum
                    self.autovacuum["skipped"].append("%s.%s: %s" % (table["schema"], table["name"],
                                                                     str(exc).strip()))
        self._session(work)
        self.autovacuum["paused"] = len(self.paused)

    def _resume(self):
        """Every paused table gets its own settings back; errors are returned (the restore then fails)."""
        def work(session):
            for table in self.paused:
                try:
                    for sql in resume_statements(table):
                        session.execute(sql)
                    self.autovacuum["resumed"] += 1
                except Exception as exc:
                    self.autovacuum["errors"].append("%s.%s: %s" % (table["schema"], table["name"], str(exc).strip()))
        try:
            self._session(work)
        except Exception as exc:
            self.autovacuum["errors"].append(str(exc).strip())
        if self.autovacuum["errors"]:
            return ["autovacuum could not be re-enabled on %d table(s) of the restored database: %s" % (
                len(self.paused) - self.autovacuum["resumed"], "; ".join(self.autovacuum["errors"][:5]))]
        return []
