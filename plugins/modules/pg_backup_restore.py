#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_backup_restore
short_description: Restore a verified pg_backup backup into a new database and swap names, or clean-restore in place
description:
  - Refuses to run unless O(confirm) is exactly C(RESTORE <target_db>).
  - Re-checks the sha256 of every file of the backup first, and that every extension of the dump (PostGIS...)
    is available on the server, before changing anything.
  - C(mode=swap) (default) restores into C(<target>_restore_<ts>), compares the exact row count of every table
    with the manifest, then renames the current database to C(<target>_pre_restore_<ts>) (kept) and the restored
    one to C(<target>). Database-level privileges of the old database are re-granted on the new one. Sessions
    connected to the target fail the restore, naming them, before anything changes and again at swap time,
    unless O(terminate_sessions) (then new connections are blocked, sessions terminated, names swapped).
  - C(mode=swap) restores a directory (or seekable custom) archive in pg_dump's sections - pre-data, then
    C(autovacuum_enabled = false) on every new table and materialized view (and its TOAST table), then data and
    post-data with C(pg_restore -j) - and then puts every table's own autovacuum settings back exactly as the dump
    created them, also after a failure. Without this, autovacuum starts on the freshly loaded tables and its lock
    stalls CREATE INDEX / ALTER TABLE until the deadlock check cancels it (C(deadlock_timeout), 1 s per wait).
  - C(mode=clean) runs C(pg_restore --clean --if-exists) into the existing target (one step; autovacuum untouched).
  - Directory (and unpiped custom) archives restore with C(pg_restore -j).
  - A directory dump whose data files were compressed by zstd (C(compression_via=files), C(*.dat.zst)) is
    restored with C(pg_restore -j) from a temp directory (mode 0700) under O(parallel_tmpdir) holding a copy of
    C(toc.dat) and, with O(parallel_feed=stream) (default), a named pipe per data file that C(zstd -d) feeds while
    pg_restore reads it - no uncompressed copy on disk, and the decompression overlaps the restore - or, with
    O(parallel_feed=unpack), every data file decompressed first by O(jobs) zstd processes (needs the
    uncompressed size, recorded in the manifest, free). The free space is checked before anything changes, also
    in check mode; the temp directory is always removed. A zstd failure, or a data file pg_restore never read,
    fails the restore.
  - O(restore_globals) replays C(globals.sql) first; roles that already exist are skipped and reported.
  - O(analyze) (default) runs C(vacuumdb --analyze-only --jobs=<jobs>) on the restored database after its row
    counts matched and before it goes live. pg_restore restores no planner statistics, and without them the
    app's first queries are planned blind until autovacuum gets to every table.
version_added: 0.1.0
author: pgops.deploy contributors
extends_documentation_fragment:
  - pgops.deploy.postgres
options:
  path:
    description: Backup directory. Alternative to O(backup_root) + O(backup_id).
    type: path
  backup_root:
    description: Directory holding the backups.
    type: path
  backup_id:
    description: Backup under O(backup_root); C(latest) is the latest verified one.
    type: str
    default: latest
  target_db:
    description: Database to restore. Default is the database the backup was taken from.
    type: str
  confirm:
    description: Must be exactly C(RESTORE <target_db>).
    type: str
    required: true
  mode:
    description: C(swap) - restore beside and rename; C(clean) - drop and recreate objects in place.
    type: str
    choices: [swap, clean]
    default: swap
  terminate_sessions:
    description: Terminate sessions connected to the target at swap time instead of failing.
    type: bool
    default: false
  jobs:
    description: pg_restore jobs. C(0) uses the number of CPUs.
    type: int
    default: 0
  restore_globals:
    description: Replay the backup's C(globals.sql) (roles) before restoring.
    type: bool
    default: false
  allow_unverified:
    description: Allow restoring a backup whose manifest is not C(verified).
    type: bool
    default: false
  verify_checksums:
    description: Recompute every file's sha256 before restoring.
    type: bool
    default: true
  pg_bindir:
    description: Directory of pg_restore / psql; default is the PATH.
    type: path
  parallel_tmpdir:
    description:
      - Where a piped custom archive (C(db.dump.zst)) is decompressed so pg_restore can use O(jobs) (> 1), and
        where the temp directory for the C(*.dat.zst) data files of a directory dump goes (any O(jobs)).
        Needs the uncompressed size free (only C(toc.dat) with O(parallel_feed=stream)); removed afterwards.
        Default is the backup root (next to the backup). Must allow named pipes for O(parallel_feed=stream).
    type: path
  parallel_feed:
    description:
      - How pg_restore gets the C(*.dat.zst) data files of a directory dump. C(stream) - a named pipe per file,
        decompressed while pg_restore reads it. C(unpack) - all files decompressed into the temp directory first
        (for a O(parallel_tmpdir) on a filesystem without named pipes).
    type: str
    choices: [stream, unpack]
    default: stream
  analyze:
    description:
      - Collect planner statistics (C(vacuumdb --analyze-only), O(jobs) connections) on the restored database
        before the swap (C(mode=swap)) or after the restore (C(mode=clean)). A failure fails the restore before
        the swap, the restored database kept.
    type: bool
    default: true
notes:
  - O(login_db) is the maintenance database the module connects to (default C(postgres)).
  - Check mode verifies checksums and preconditions and reports the plan without creating or renaming anything.
"""

EXAMPLES = r"""
- name: Restore the latest verified backup of santri
  pgops.deploy.pg_backup_restore:
    backup_root: /var/backups/pgops/santri
    confirm: RESTORE santri
    terminate_sessions: true
"""

RETURN = r"""
target_db:
  description: Database restored.
  returned: always
  type: str
restored_from:
  description: Backup directory.
  returned: always
  type: str
previous_db:
  description: Name the previous database was renamed to (C(mode=swap)).
  returned: when mode=swap
  type: str
autovacuum:
  description:
    - C(paused) tables whose autovacuum was held off during the data and post-data steps, C(resumed) tables whose
      own settings were put back, C(skipped) (table and reason) and C(errors) (an error here fails the restore).
  returned: when the restore ran
  type: dict
  sample: {paused: 7, resumed: 7, skipped: [], errors: []}
analyze:
  description: The statistics run (O(analyze)) - its command and duration.
  returned: when the restore ran and O(analyze)
  type: dict
  sample: {command: "vacuumdb --analyze-only --jobs=2 --dbname=santri_restore_20261122T010203Z", duration_s: 1.2}
commands:
  description: The commands run, in order (the named-pipe feed first, then each pg_restore step).
  returned: when the restore ran
  type: list
row_counts:
  description: Row counts found after restore.
  returned: success
  type: dict
mismatches:
  description: Tables whose row count differs from the manifest.
  returned: always
  type: list
terminated:
  description: Sessions terminated at swap time.
  returned: when mode=swap
  type: list
globals:
  description: C(applied), C(skipped) (already existing roles), C(errors).
  returned: when restore_globals
  type: dict
decompress:
  description:
    - For C(*.dat.zst) data files - C(kind) (C(fifo) or C(directory)), C(needed) and C(free) bytes, C(tmpdir),
      C(message); C(uncompressed) bytes with O(parallel_feed=unpack).
  returned: when the backup has zstd-compressed data files
  type: dict
restore_duration_s:
  description:
    - Seconds of the restore itself - the data files' feed, C(CREATE DATABASE), the C(pg_restore) steps - as
      C(dump_duration_s) is the dump of pg_backup.
  returned: success
  type: float
duration_s:
  description:
    - Seconds spent restoring, with the row counts against the manifest, ANALYZE (O(analyze)) and the swap
      (O(mode=swap)).
  returned: success
  type: float
queries:
  description: SQL statements executed.
  returned: always
  type: list
"""

import os
import shutil
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_backup import (
    FEEDS, GLOBALS_FILE, LATEST_LINK, BackupError, compare_counts, confirm_phrase, copy_database_acl,
    count_rows, create_database, db_exists, decompress_for_parallel, missing_extensions, pg_env, read_manifest,
    remove_path, restore_steps, restore_tmp_plan, scratch_name, sessions_on, utc_now, verify_checksums)
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_postgres import (
    PgSession, postgres_common_argument_spec, quote_ident)
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_restore_run import RestoreRun


def feed_command(feed, tmp, src, jobs):
    """What feeds pg_restore the .dat.zst files, for humans (`commands`)."""
    if feed is not None:
        return ("zstd -q -d -c %s/<id>.dat.zst > %s/<id>.dat  (named pipe per data file, decompressed while "
                "pg_restore reads it)" % (src, tmp))
    return "zstd -q -d --output-dir-flat %s -- %s/*.dat.zst  (%d processes)" % (tmp, src, jobs)


def tool(bindir, name):
    return os.path.join(bindir, name) if bindir else (shutil.which(name) or name)


class Restore(object):
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.session = None
        self.result = dict(changed=False, mismatches=[], queries=[])
        self.tmp = None  # temp copy of the dump for pg_restore, removed on every exit

    def fail(self, msg):
        if self.session is not None:
            self.result["queries"] = self.session.queries
        self.module.fail_json(msg=msg, **self.result)

    def resolve(self):
        p = self.p
        if p["path"]:
            return p["path"].rstrip("/")
        if not p["backup_root"]:
            self.fail("give path (a backup directory) or backup_root (+ backup_id)")
        path = os.path.join(p["backup_root"], p["backup_id"])
        if p["backup_id"] == LATEST_LINK and not os.path.exists(path):
            self.fail("no verified backup under %s (no '%s' link); pass restore_backup_id or a path"
                      % (p["backup_root"], LATEST_LINK))
        return os.path.realpath(path)

    def run(self):
        p = self.p
        path = self.resolve()
        try:
            manifest = read_manifest(path)
        except BackupError as exc:
            self.fail(str(exc))
        target = p["target_db"] or manifest["database"]
        self.result.update(target_db=target, restored_from=path, backup_id=manifest.get("backup_id"))
        expected = confirm_phrase(target)
        if p["confirm"] != expected:
            self.fail("Refusing to restore %s: confirmation missing. Pass restore_confirm='%s' (exactly), received %r."
                      % (target, expected, p["confirm"]))
        if not manifest.get("verified") and not p["allow_unverified"]:
            self.fail("backup %s is not verified (status %s); verify it first or pass allow_unverified"
                      % (path, manifest.get("status")))
        if p["verify_checksums"]:
            problems = verify_checksums(manifest, path)
            if problems:
                self.fail("backup %s failed its checksum check, not restoring: %s" % (path, "; ".join(problems)))
            self.result["checksums"] = "%d files match" % len(manifest["files"])
        self.session = PgSession(self.module, autocommit=True)
        missing = missing_extensions(self.session, manifest)
        if missing:
            self.fail("extensions %s used by the dump are not available on the server; install them "
                      "(e.g. postgresql-15-postgis-3) before restoring" % ", ".join(missing))
        tmpdir = p["parallel_tmpdir"] or os.path.dirname(path)
        try:
            plan = restore_tmp_plan(manifest, path, tmpdir, p["parallel_feed"])
        except BackupError as exc:
            self.fail("cannot restore %s: %s; nothing changed" % (path, exc))
        if plan:
            self.result["decompress"] = plan
            if not plan["ok"]:
                self.fail("not enough disk to restore %s: %s. Free space or set restore_parallel_tmpdir (module option "
                          "parallel_tmpdir) to a filesystem with room; nothing changed" % (path, plan["message"]))
        exists = db_exists(self.session, target)
        if p["mode"] == "clean" and not exists:
            self.fail("mode=clean restores into the existing database %s, which does not exist; use mode=swap" % target)
        now = utc_now()
        new = scratch_name(target, "restore", now) if p["mode"] == "swap" else target
        previous = scratch_name(target, "pre_restore", now) if p["mode"] == "swap" and exists else None
        self.result.update(mode=p["mode"], restore_db=new, previous_db=previous)
        if exists and not p["terminate_sessions"]:
            self.check_sessions(target, "before restoring (nothing changed yet)")
        if self.module.check_mode:
            swap = (" and swap (%s -> %s, %s -> %s)" % (target, previous, new, target)) if previous else ""
            unpack = ""
            if plan:
                how = "; %s (temp directory removed afterwards), read by pg_restore" if plan["kind"] == "fifo" else \
                    "; first %s (temp directory removed afterwards), then pg_restore"
                unpack = (how + " --jobs=%d") % (plan["message"], p["jobs"] or os.cpu_count() or 1)
            stats = "; then vacuumdb --analyze-only (planner statistics)" if p["analyze"] else ""
            self.result.update(changed=True, queries=self.session.queries,
                               msg="would restore %s into %s%s%s%s" % (path, new, unpack, stats, swap))
            self.module.exit_json(**self.result)

        jobs = p["jobs"] or os.cpu_count() or 1
        self.tmp = None
        try:
            self.apply(manifest, path, target, new, previous, exists, jobs, tmpdir)
        finally:
            if self.tmp:
                remove_path(self.tmp)  # also when apply() failed or exited: fail_json/exit_json raise SystemExit

    def apply(self, manifest, path, target, new, previous, exists, jobs, tmpdir):
        p = self.p
        t0 = time.monotonic()
        try:
            # Before anything changes: a decompression failure leaves no half-created database behind.
            eff, self.tmp, feed = decompress_for_parallel(manifest, path, jobs, tmpdir, p["parallel_feed"])
        except BackupError as exc:
            self.fail("could not prepare %s for pg_restore, nothing changed: %s" % (path, exc))
        self.result["changed"] = True
        if p["restore_globals"]:
            self.result["globals"] = self.replay_globals(manifest, path)
        if p["mode"] == "swap":
            create_database(self.session, new, manifest, owner=self.owner_of(target) if exists else None)
        try:
            steps = restore_steps(eff, path, new, tool(p["pg_bindir"], "pg_restore"), tool(p["pg_bindir"], "psql"),
                                  jobs=jobs, clean=p["mode"] == "clean", new_db=p["mode"] == "swap")
            run = RestoreRun(steps, pg_env(p, new), feed=feed,
                             connect=lambda: PgSession(self.module, dbname=new, autocommit=True))
            self.result["commands"] = run.commands
            if self.tmp and manifest.get("compression_via") == "files":
                self.result["commands"].insert(0, feed_command(feed, self.tmp, os.path.join(path, manifest["dump"]),
                                                               jobs))
            err = run.run()
            self.result["autovacuum"] = run.autovacuum
            self.session.queries.extend(run.queries)
        except BackupError as exc:
            err = str(exc)
        if self.tmp:
            remove_path(self.tmp)  # free the disk before counting rows
            self.tmp = None
        if err:
            self.fail("restore of %s into %s failed (%s kept for inspection%s): %s" % (
                path, new, new, "; the current database was NOT touched" if p["mode"] == "swap" else "", err))
        self.result["restore_duration_s"] = round(time.monotonic() - t0, 3)
        check = PgSession(self.module, dbname=new, autocommit=True)
        try:
            tables, matviews = count_rows(check)
        finally:
            check.close()
        mism = compare_counts(manifest.get("row_counts") or {}, tables)
        self.result.update(row_counts=tables, matview_row_counts=matviews, mismatches=mism)
        if mism:
            self.fail("restored database %s does not match the manifest (%s); not swapping, %s kept" % (
                new, ", ".join("%s expected %s found %s" % (m["table"], m["expected"], m["found"]) for m in mism), new))
        if p["analyze"]:
            self.result["analyze"] = self.analyze(new, jobs)
        if p["mode"] == "swap":
            self.swap(target, new, previous)
        self.result.update(queries=self.session.queries, duration_s=round(time.monotonic() - t0, 3),
                           msg="restored %s into %s: %d tables, row counts match the manifest%s" % (
                               manifest.get("backup_id"), target, len(tables),
                               (" (previous database kept as %s)" % previous) if previous else ""))
        self.module.exit_json(**self.result)

    def owner_of(self, dbname):
        return self.session.scalar("SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_catalog.pg_database "
                                   "WHERE datname = %s", (dbname,), record=False)

    def check_sessions(self, target, when):
        sessions = sessions_on(self.session, target)
        if sessions:
            self.fail("cannot restore %s: %d session(s) connected to it (%s): %s. Stop the application or pass "
                      "restore_terminate_sessions=true." % (target, len(sessions), when, ", ".join(
                          "pid %s (user %s, application %s, client %s)" % (
                              x["pid"], x["user"], x["application"] or "-", x["client"] or "local socket")
                          for x in sessions)))

    def swap(self, target, new, previous):
        s = self.session
        self.result["terminated"] = []
        if previous:
            if not self.p["terminate_sessions"]:
                self.check_sessions(target, "at swap time; the restored copy is ready as %s" % new)
            self.result["acl"] = copy_database_acl(s, target, new)
            # Close the door first so nothing reconnects between terminate and rename.
            s.execute("ALTER DATABASE %s WITH ALLOW_CONNECTIONS false" % quote_ident(target))
            try:
                for x in sessions_on(s, target):
                    s.execute("SELECT pg_catalog.pg_terminate_backend(%s)", (x["pid"],))
                    self.result["terminated"].append(x)
                for _i in range(50):
                    if not sessions_on(s, target):
                        break
                    time.sleep(0.1)
                s.execute("ALTER DATABASE %s RENAME TO %s" % (quote_ident(target), quote_ident(previous)))
            except Exception as exc:
                s.execute("ALTER DATABASE %s WITH ALLOW_CONNECTIONS true" % quote_ident(target))
                self.fail("swap failed before renaming %s (connections re-allowed): %s" % (target, exc))
            s.execute("ALTER DATABASE %s WITH ALLOW_CONNECTIONS true" % quote_ident(previous))
        s.execute("ALTER DATABASE %s RENAME TO %s" % (quote_ident(new), quote_ident(target)))

    def analyze(self, dbname, jobs):
        """Planner statistics for the restored database, before the app sees it (pg_restore restores none)."""
        argv = [tool(self.p["pg_bindir"], "vacuumdb"), "--analyze-only", "--no-password", "--quiet",
                "--jobs=%d" % jobs, "--dbname=%s" % dbname]
        t0 = time.monotonic()
        proc = subprocess.run(argv, env=pg_env(self.p, dbname), capture_output=True, text=True)
        if proc.returncode != 0:
            where = ("not swapping, %s kept; the current database was NOT touched" % dbname
                     if self.p["mode"] == "swap" else "the data is restored in place; statistics left to autovacuum")
            self.fail("ANALYZE of the restored database %s failed (rc %s), %s: %s" % (
                dbname, proc.returncode, where, proc.stderr.strip()))
        return dict(command=" ".join(argv), duration_s=round(time.monotonic() - t0, 3))

    def replay_globals(self, manifest, path):
        gfile = os.path.join(path, manifest.get("globals") or GLOBALS_FILE)
        if not os.path.isfile(gfile):
            self.fail("restore_globals requested but the backup has no %s" % GLOBALS_FILE)
        argv = [tool(self.p["pg_bindir"], "psql"), "-X", "--no-password", "-d", self.p["login_db"] or "postgres",
                "-v", "ON_ERROR_STOP=0", "-f", gfile]
        proc = subprocess.run(argv, env=pg_env(self.p), capture_output=True, text=True)
        errors = [ln for ln in proc.stderr.splitlines() if "ERROR:" in ln]
        skipped = [ln.split("ERROR:", 1)[1].strip() for ln in errors if "already exists" in ln]
        other = [ln.split("ERROR:", 1)[1].strip() for ln in errors if "already exists" not in ln]
        # Re-creating the connected superuser and similar harmless noise only.
        other = [e for e in other if "current user cannot be dropped" not in e]
        if proc.returncode != 0 or other:
            self.fail("replaying %s failed (rc %s): %s" % (gfile, proc.returncode, "; ".join(other) or proc.stderr))
        return dict(applied=gfile, skipped=skipped, errors=other)


def main():
    spec = postgres_common_argument_spec()
    spec.update(
        path=dict(type="path"),
        backup_root=dict(type="path"),
        backup_id=dict(type="str", default="latest"),
        target_db=dict(type="str"),
        confirm=dict(type="str", required=True),
        mode=dict(type="str", default="swap", choices=["swap", "clean"]),
        terminate_sessions=dict(type="bool", default=False),
        jobs=dict(type="int", default=0),
        restore_globals=dict(type="bool", default=False),
        allow_unverified=dict(type="bool", default=False),
        verify_checksums=dict(type="bool", default=True),
        pg_bindir=dict(type="path"),
        parallel_tmpdir=dict(type="path"),
        parallel_feed=dict(type="str", default="stream", choices=list(FEEDS)),
        analyze=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           mutually_exclusive=[("path", "backup_root")])
    Restore(module).run()


if __name__ == "__main__":
    main()
