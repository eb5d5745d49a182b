#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_backup_verify
short_description: Verify a pg_backup backup for real - checksums, every data block, optional restore test
description:
  - C(checksums) recomputes the sha256 of every file listed in the manifest (and flags files that are missing,
    resized or not listed).
  - C(read) reads and decompresses every data block - C(pg_restore -f /dev/null) for custom and directory
    archives (streamed through the decompressor for piped zstd/gzip), full decompression plus pg_dump's
    completion trailer for plain dumps. C(pg_restore --list) is not enough - it only reads the table of contents.
  - For a directory dump whose data files were compressed by zstd after pg_dump (C(compression_via=files),
    C(*.dat.zst)), C(read) is C(pg_restore --list) (the table of contents; every TABLE DATA entry and large object
    must have its C(.dat.zst) file) plus C(zstd -t) of every C(.dat.zst), which decodes every block and compares
    zstd's content checksum, so a truncated or corrupted file fails.
  - C(restore) restores into a scratch database (C(<db>_verify_<timestamp>), dropped afterwards) and compares the
    exact row count of every table with the manifest. C(*.dat.zst) data files reach pg_restore through named
    pipes in a temp directory next to the backup (C(zstd -d) per file while pg_restore reads it; always removed).
    Like C(pg_backup_restore) into a new database, the restore runs by pg_dump's sections with autovacuum held off
    the new tables between pre-data and data.
  - When every requested check passes the manifest becomes C(verified=true) and, with O(mark_latest), the
    C(latest) symlink and C(latest.json) of the backup root point at this backup. When a check fails the
    manifest says C(verify_failed), C(latest) is left alone and the module fails naming the problems.
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
    description: Backup to verify under O(backup_root); C(latest) is the latest verified one.
    type: str
    default: latest
  checks:
    description: Verification levels to run.
    type: list
    elements: str
    choices: [checksums, read, restore]
    default: [checksums, read]
  restore_jobs:
    description: pg_restore jobs for the restore test (directory and unpiped custom archives). C(0) = CPUs.
    type: int
    default: 0
  mark_latest:
    description: Point C(latest) at this backup when it verifies and is newer than the current C(latest).
    type: bool
    default: true
  update_manifest:
    description: Record the verification result in the manifest.
    type: bool
    default: true
  pg_bindir:
    description: Directory of pg_restore / psql; default is the PATH.
    type: path
notes:
  - Check mode runs the read-only checks (C(checksums), C(read)) and skips the restore test and every write.
"""

EXAMPLES = r"""
- name: Verify the backup just taken and make it the latest
  pgops.deploy.pg_backup_verify:
    path: "{{ backup.path }}"
    checks: [checksums, read, restore]

- name: Re-verify the latest backup without touching anything
  pgops.deploy.pg_backup_verify:
    backup_root: /var/backups/pgops/santri
    mark_latest: false
    update_manifest: false
"""

RETURN = r"""
verified:
  description: Every requested check passed.
  returned: always
  type: bool
checks:
  description: One entry per check with C(name), C(ok), C(message), C(duration_s) (and C(mismatches) for restore).
  returned: always
  type: list
path:
  description: Backup directory verified.
  returned: always
  type: str
latest:
  description: C(latest) now points at this backup (it only moves forward, never to an older backup).
  returned: always
  type: bool
manifest:
  description: Manifest after verification.
  returned: always
  type: dict
queries:
  description: SQL statements executed (restore test).
  returned: always
  type: list
"""

import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_backup import (
    LATEST_LINK, MANIFEST, STATUS_VERIFIED, STATUS_VERIFY_FAILED, BackupError, Pipeline, compare_counts,
    count_rows, create_database, decompress_for_parallel, drop_database, files_route_read_check, iso, mark_latest,
    missing_extensions, pg_env, plain_trailer_ok, read_all_argv, read_manifest, remove_path, restore_steps,
    scratch_name, utc_now, verify_checksums, write_json)
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_postgres import (
    PgSession, postgres_common_argument_spec)
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_restore_run import RestoreRun


def resolve_path(module):
    p = module.params
    if p["path"]:
        return p["path"]
    if not p["backup_root"]:
        module.fail_json(msg="give path (a backup directory) or backup_root (+ backup_id)")
    bid = p["backup_id"]
    path = os.path.join(p["backup_root"], bid)
    if bid == LATEST_LINK and not os.path.exists(path):
        module.fail_json(msg="no verified backup under %s (no '%s' link yet)" % (p["backup_root"], LATEST_LINK))
    return os.path.realpath(path)


def tool(bindir, name):
    return os.path.join(bindir, name) if bindir else (shutil.which(name) or name)


class Verifier(object):
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.checks = []
        self.queries = []

    def add(self, name, ok, message, t0, **extra):
        item = dict(name=name, ok=ok, message=message, duration_s=round(time.monotonic() - t0, 3))
        item.update(extra)
        self.checks.append(item)

    def run(self):
        path = resolve_path(self.module)
        try:
            manifest = read_manifest(path)
        except BackupError as exc:
            self.module.fail_json(msg=str(exc), verified=False, checks=[], path=path)
        if not manifest.get("files"):
            self.module.fail_json(msg="backup %s is not complete (status %s); nothing to verify"
                                  % (path, manifest.get("status")), verified=False, checks=[], path=path,
                                  manifest=manifest)
        wanted = self.p["checks"]
        if "checksums" in wanted:
            t0 = time.monotonic()
            problems = verify_checksums(manifest, path)
            self.add("checksums", not problems, "; ".join(problems) if problems else
                     "%d files match their sha256" % len(manifest["files"]), t0)
        if "read" in wanted:
            self.read_all(manifest, path)
        if "restore" in wanted and not self.module.check_mode:
            self.restore_test(manifest, path)
        verified = all(c["ok"] for c in self.checks)
        changed = moved = False
        if self.p["update_manifest"] and not self.module.check_mode:
            manifest["verification"] = dict(checks=self.checks, at=iso(utc_now()), levels=wanted)
            manifest["verified"] = verified
            manifest["status"] = STATUS_VERIFIED if verified else STATUS_VERIFY_FAILED
            if verified:
                manifest["verified_at"] = manifest["verification"]["at"]
            write_json(os.path.join(path, MANIFEST), manifest)
            changed = True
            if verified and self.p["mark_latest"]:
                moved = mark_latest(os.path.dirname(path), os.path.basename(path), manifest)
        result = dict(changed=changed, verified=verified, checks=self.checks, path=path, manifest=manifest,
                      queries=self.queries, latest=moved)
        if not verified:
            bad = [c for c in self.checks if not c["ok"]]
            self.module.fail_json(msg="backup %s FAILED verification (%s): %s" % (
                path, ", ".join(c["name"] for c in bad), " | ".join("%s: %s" % (c["name"], c["message"]) for c in bad)),
                **result)
        result["msg"] = "backup %s verified (%s)" % (path, ", ".join(c["name"] for c in self.checks))
        self.module.exit_json(**result)

    def read_all(self, manifest, path):
        t0 = time.monotonic()
        if manifest.get("compression_via") == "files":
            try:
                msg = files_route_read_check(manifest, path, tool(self.p["pg_bindir"], "pg_restore"),
                                             parallel=os.cpu_count() or 1)
            except BackupError as exc:
                self.add("read", False, "reading every data block of %s failed: %s" % (manifest["dump"], exc), t0)
                return
            self.add("read", True, msg, t0)
            return
        stages, stdin = read_all_argv(manifest, path, tool(self.p["pg_bindir"], "pg_restore"))
        _rcs, err = Pipeline(stages, stdin_path=stdin).run()
        if err:
            self.add("read", False, "reading every data block of %s failed: %s" % (manifest["dump"], err), t0)
            return
        if manifest["format"] == "plain":
            ok, err = plain_trailer_ok(manifest, path)
            if not ok:
                self.add("read", False, "plain dump %s is incomplete: %s" % (
                    manifest["dump"], err or "pg_dump's completion trailer is missing"), t0)
                return
        self.add("read", True, "every data block of %s read and decoded" % manifest["dump"], t0)

    def restore_test(self, manifest, path):
        t0 = time.monotonic()
        session = PgSession(self.module, dbname=self.p["login_db"], autocommit=True)
        missing = missing_extensions(session, manifest)
        if missing:
            self.add("restore", False, "extensions %s of the dump are not available on the server" % ", ".join(missing),
                     t0)
            return
        scratch = scratch_name(manifest["database"], "verify", utc_now())
        jobs = self.p["restore_jobs"] or os.cpu_count() or 1
        tmp = None
        try:
            create_database(session, scratch, manifest)
            try:
                eff, tmp, feed = decompress_for_parallel(manifest, path, jobs, os.path.dirname(path))
                steps = restore_steps(eff, path, scratch, tool(self.p["pg_bindir"], "pg_restore"),
                                      tool(self.p["pg_bindir"], "psql"), jobs=jobs, new_db=True)
                err = RestoreRun(steps, pg_env(self.p, scratch), feed=feed,
                                 connect=lambda: PgSession(self.module, dbname=scratch, autocommit=True)).run()
            except BackupError as exc:
                err = str(exc)
            if err:
                self.add("restore", False, "restore into scratch database %s failed: %s" % (scratch, err), t0)
                return
            check = PgSession(self.module, dbname=scratch, autocommit=True)
            try:
                tables, _mv = count_rows(check)
            finally:
                check.close()
            mism = compare_counts(manifest.get("row_counts") or {}, tables)
            self.add("restore", not mism, ("row counts differ after restore: %s" % ", ".join(
                "%s expected %s found %s" % (m["table"], m["expected"], m["found"]) for m in mism)) if mism else
                "restored into %s; %d tables match the manifest row counts" % (scratch, len(tables)), t0,
                mismatches=mism, scratch_db=scratch)
        finally:
            if tmp:
                remove_path(tmp)
            drop_database(session, scratch)
            self.queries.extend(session.queries)
            session.close()


def main():
    spec = postgres_common_argument_spec()
    spec.update(
        path=dict(type="path"),
        backup_root=dict(type="path"),
        backup_id=dict(type="str", default="latest"),
        checks=dict(type="list", elements="str", choices=["checksums", "read", "restore"],
                    default=["checksums", "read"]),
        restore_jobs=dict(type="int", default=0),
        mark_latest=dict(type="bool", default=True),
        update_manifest=dict(type="bool", default=True),
        pg_bindir=dict(type="path"),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           mutually_exclusive=[("path", "backup_root")])
    Verifier(module).run()


if __name__ == "__main__":
    main()
