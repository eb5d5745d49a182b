#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_backup
short_description: Consistent, checksummed pg_dump of one database with a JSON manifest and exact row counts
description:
  - Creates C(<backup_root>/<backup_id>/) (mode 0700) holding the dump, C(globals.sql) (roles and tablespaces,
    0600), an optional C(app_state.tar.gz) (0600) and C(manifest.json).
  - Consistency - a C(REPEATABLE READ) transaction exports its snapshot (C(pg_export_snapshot())), pg_dump runs
    with C(--snapshot) and the exact C(count(*)) of every table is taken in that same transaction while the
    dump runs, so the manifest's row counts describe exactly the data in the dump.
  - Preflight - fails before creating anything when C(pg_database_size * size_factor + min_free_mb) does not
    fit in the free space of O(backup_root).
  - Pipes (C(pg_dump -Z0 | zstd)) keep every stage's exit status; a failure in any stage fails the backup,
    removes the partial dump and marks the manifest C(failed).
  - Directory format with zstd on pg_dump older than 16 (the default when a C(zstd) program is on the PATH)
    runs C(pg_dump -Fd -jN -Z0) and compresses every data file C(<id>.dat) to C(<id>.dat.zst) with
    C(zstd -q -<level> -T<threads>). With O(jobs) > 1 each table file is compressed while pg_dump still writes it
    (followed like C(tail -f); it ends at pg_dump's C(finished item <id>) or pg_dump's exit, and the raw file is
    removed only after zstd exited 0); files not caught that way (large objects) are compressed after pg_dump.
    C(toc.dat) and C(blobs.toc) stay uncompressed so the table of contents stays readable. The manifest records
    C(compression_via=files) and the uncompressed size, the sha256 checksums cover the C(.dat.zst) files. A failed
    pg_dump or zstd fails the backup like a failed pipe stage.
  - Progress (bytes written, tables dumped) is written to C(progress.json) every 2 seconds for pollers.
  - The backup is NOT verified by this module (C(verified=false)); run M(pgops.deploy.pg_backup_verify).
version_added: 0.1.0
author: pgops.deploy contributors
extends_documentation_fragment:
  - pgops.deploy.postgres
options:
  backup_root:
    description: Directory holding one sub-directory per backup (created with mode 0700).
    type: path
    required: true
  backup_id:
    description: Name of the backup directory. Default C(<login_db>-<UTC YYYYmmddTHHMMSSZ>).
    type: str
  format:
    description: pg_dump archive format. C(directory) dumps and restores in parallel.
    type: str
    choices: [directory, custom, plain]
    default: directory
  jobs:
    description: Parallel pg_dump jobs (directory format only). C(0) uses the number of CPUs.
    type: int
    default: 0
  compressor:
    description:
      - C(auto) for directory format is C(zstd) when pg_dump is older than 16 and a C(zstd) program is on the PATH
        (data files compressed after the dump, see above), else C(gzip) (pg_dump built-in); C(zstd) (piped) for
        custom and plain.
      - C(auto) also falls back to C(gzip) when the uncompressed dump of the zstd route would not fit (see
        O(raw_size_factor)); the module then warns.
      - C(zstd) with directory format uses pg_dump's C(--compress=zstd:N) on pg_dump 16 or later, the zstd program
        on the data files otherwise (fails clearly when it is missing).
    type: str
    choices: [auto, zstd, gzip, none]
    default: auto
  compress_level:
    description: Compression level; default 1 for gzip and for zstd on the data files of a directory dump, 3 for zstd
      otherwise.
    type: int
  compress_threads:
    description: zstd threads (C(-T)) for the zstd pipe and for compressing data files; C(0) uses every CPU.
    type: int
    default: 0
  compress_while_dumping:
    description:
      - Directory dumps with zstd on the data files and O(jobs) > 1 compress each table file while pg_dump still
        writes it (see the notes). C(false) compresses them after pg_dump exited, as on a serial dump.
    type: bool
    default: true
  size_factor:
    description: Expected dump size as a fraction of C(pg_database_size) for the free-space preflight.
    type: float
    default: 0.6
  raw_size_factor:
    description:
      - Expected size of the B(uncompressed) dump as a fraction of C(pg_database_size). Used by the preflight of
        directory dumps whose data files are compressed by zstd after pg_dump, because the whole uncompressed dump
        is on disk before compression starts (the larger of this and O(size_factor) is used).
    type: float
    default: 1.0
  min_free_mb:
    description: Space that must stay free on the backup path after the dump (MiB).
    type: int
    default: 64
  free_bytes_override:
    description: Pretend the backup path has this many free bytes (tests of the preflight).
    type: int
  dump_globals:
    description: Archive C(pg_dumpall --globals-only) (roles, tablespaces) as C(globals.sql).
    type: bool
    default: true
  app_state_paths:
    description: Files or directories on this host archived into C(app_state.tar.gz) (for example C(.env), uploads).
    type: list
    elements: path
    default: []
  app_state_archive:
    description: A ready C(tar.gz) on this host (for example fetched from the app host) moved into the backup as C(app_state.tar.gz).
    type: path
  app_revision:
    description: Application revision recorded in the manifest.
    type: str
    default: unknown
  pg_bindir:
    description: Directory of pg_dump / pg_dumpall; default is the PATH.
    type: path
  extra_manifest:
    description: Extra keys stored under C(extra) in the manifest (deploy id, operator...).
    type: dict
    default: {}
  nice:
    description:
      - CPU priority of the dump, 0 (unchanged) to 19 (lowest). The module process lowers its own priority
        before the dump, so pg_dump, zstd and the followers run at it; a dump then yields the CPU to the live site
        (and to a deploy building its release meanwhile) and is only slower while something else needs the CPU.
      - The Linux I/O schedulers that honour I/O priorities (BFQ) derive a lower best-effort I/O priority from it.
    type: int
    default: 0
  nice_server_backends:
    description:
      - With O(nice) > 0, also renice the server backends that run pg_dump's C(COPY) (found by pg_dump's
        C(application_name), C(<application_name> pg_dump <backup_id>)) and the backend of the module's row counts.
        Only backends on this host whose process title shows the same client, and only when this OS user may
        (the server's user, for example C(postgres), or root); otherwise the result lists why each was skipped.
      - They are the larger part of a dump's CPU time. They exit with the dump; niceness is only ever raised.
    type: bool
    default: true
notes:
  - Check mode connects, computes the preflight estimate and returns the planned commands without writing anything.
"""

EXAMPLES = r"""
- name: Back up santri (directory format, parallel; zstd -1 on the data files when zstd is installed, else gzip -1)
  pgops.deploy.pg_backup:
    login_db: santri
    backup_root: /var/backups/pgops/santri
    app_revision: "{{ app_git_sha | default('unknown') }}"
  register: backup

- name: Single file, zstd through a pipe
  pgops.deploy.pg_backup:
    login_db: santri
    backup_root: /var/backups/pgops/santri
    format: custom
    compressor: zstd
    compress_level: 3

- name: Directory format with pg_dump's built-in gzip (no zstd program needed)
  pgops.deploy.pg_backup:
    login_db: santri
    backup_root: /var/backups/pgops/santri
    compressor: gzip
"""

RETURN = r"""
backup_id:
  description: Name of the backup directory.
  returned: always
  type: str
path:
  description: Backup directory.
  returned: always
  type: str
manifest_path:
  description: Path of C(manifest.json).
  returned: success
  type: str
manifest:
  description: The manifest (see docs/backup-restore.md), including C(row_counts) and C(files) checksums.
  returned: success
  type: dict
dump_path:
  description: Main dump file or directory.
  returned: always
  type: str
checksum:
  description: sha256 of the dump file (tree checksum of the files for directory format).
  returned: success
  type: str
preflight:
  description: C(database_size), C(estimate), C(free), C(ok), C(message).
  returned: always
  type: dict
commands:
  description: Commands (argv) the module runs (or would run in check mode), including the zstd step of the
    C(files) route.
  returned: always
  type: list
queries:
  description: SQL statements executed.
  returned: always
  type: list
priority:
  description:
    - With O(nice) > 0, the niceness read back from the kernel - C(module) (this process), C(pg_dump), C(backends)
      (C(pid), C(nice) of each reniced server backend) - and C(skipped) (why a backend was not reniced). Also in
      the manifest.
  returned: success, when O(nice) > 0
  type: dict
  sample: {"nice": 10, "module": 10, "pg_dump": 10, "backends": [{"pid": 4242, "nice": 10}], "skipped": []}
"""

import getpass
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_backup import (
    APP_STATE_FILE, GLOBALS_FILE, MANIFEST, PROGRESS, STATUS_DUMPED, STATUS_FAILED, STATUS_RUNNING, BackupError,
    Pipeline, checksum_files, compress_data_files, compressor_argv, count_rows, database_facts, dump_name,
    files_route_commands, human, iso, make_backup_id, path_size, pg_dump_argv, pg_env, preflight_space, remove_path,
    resolve_compression, run_checked, tree_checksum, utc_now, write_json)
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_backup_priority import (
    NICE_MAX, BackendRenicer, dump_application_name, lower_own_priority)
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_backup_stream import StreamingZstd
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_postgres import (
    ConnectFailed, PgSession, postgres_common_argument_spec, try_session)


def tool(bindir, name):
    if bindir:
        return os.path.join(bindir, name)
    return shutil.which(name) or name


def tool_major(path):
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BackupError("cannot run %s --version: %s" % (path, exc))
    ver = out.strip().split()[-1]
    return int(ver.split(".")[0]), ver


def free_bytes(path):
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe) or "/"
    st = os.statvfs(probe)
    return st.f_bavail * st.f_frsize


class Progress(object):
    """Counts tables pg_dump has dumped (from --verbose) and writes progress.json every 2 s."""

    def __init__(self, path, dump_path, tables_total):
        self.path = path
        self.dump_path = dump_path
        self.total = tables_total
        self.done = 0
        self.current = None
        self.phase = "dump"
        self.t0 = time.monotonic()
        self.stop = threading.Event()

    def on_stderr(self, idx, line):
        if idx == 0 and "dumping contents of table" in line:
            self.done += 1
            self.current = line.split("dumping contents of table", 1)[1].strip().strip('"')

    def write(self, phase):
        write_json(self.path, dict(phase=phase, bytes=path_size(self.dump_path), tables_done=self.done,
                                   tables_total=self.total, current_table=self.current,
                                   elapsed_s=round(time.monotonic() - self.t0, 1), updated_at=iso(utc_now())))

    def loop(self):
        while not self.stop.wait(2.0):
            try:
                self.write(self.phase)
            except OSError:
                pass


class Backup(object):
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.result = dict(changed=False, commands=[], queries=[])
        self.session = None

    def fail(self, msg, **extra):
        if self.session is not None:
            self.result["queries"] = self.session.queries
        self.result.update(extra)
        self.module.fail_json(msg=msg, **self.result)

    def run(self):
        p = self.p
        pg_dump = tool(p["pg_bindir"], "pg_dump")
        have_zstd = shutil.which("zstd") is not None
        try:
            major, dump_version = tool_major(pg_dump)
            comp, level, via = resolve_compression(p["format"], p["compressor"], p["compress_level"], major,
                                                   have_zstd=have_zstd)
        except BackupError as exc:
            self.fail(str(exc))
        if p["jobs"] < 0 or p["compress_threads"] < 0:
            self.fail("jobs and compress_threads must be >= 0 (0 = every CPU), got jobs=%s compress_threads=%s"
                      % (p["jobs"], p["compress_threads"]))
        if not 0 <= p["nice"] <= NICE_MAX:
            self.fail("nice must be between 0 (unchanged) and %d (lowest priority), got %s" % (NICE_MAX, p["nice"]))
        if p["size_factor"] <= 0 or p["raw_size_factor"] <= 0:
            self.fail("size_factor and raw_size_factor must be > 0, got %s and %s"
                      % (p["size_factor"], p["raw_size_factor"]))
        jobs = p["jobs"] or os.cpu_count() or 1
        threads = p["compress_threads"] or os.cpu_count() or 1
        dbname = p["login_db"]
        now = utc_now()
        backup_id = p["backup_id"] or make_backup_id(dbname, now)
        if "/" in backup_id or backup_id.startswith(".") or backup_id == "latest":
            self.fail("backup_id must be a plain directory name (not hidden, not 'latest'), got %r" % backup_id)
        root = p["backup_root"]
        bdir = os.path.join(root, backup_id)
        dname = dump_name(p["format"], comp, via)
        dump_path = os.path.join(bdir, dname)
        self.result.update(backup_id=backup_id, path=bdir, dump_path=dump_path)

        self.session = PgSession(self.module, dbname=dbname, autocommit=True)
        facts = database_facts(self.session)
        free = p["free_bytes_override"] if p["free_bytes_override"] is not None else free_bytes(root)
        reserve = p["min_free_mb"] * 1024 * 1024
        if via == "files":
            # The whole uncompressed dump is on disk before zstd replaces its files one by one.
            ok, estimate, msg = preflight_space(
                facts["size"], max(p["size_factor"], p["raw_size_factor"]), free, reserve,
                what="peak size of the uncompressed dump before zstd compresses its data files")
            if not ok and p["compressor"] == "auto":
                gz_level = p["compress_level"] if p["compress_level"] and p["compress_level"] <= 9 else None
                comp, level, via = resolve_compression(p["format"], "gzip", gz_level, major)
                self.module.warn("compressor=auto: using gzip (pg_dump built-in) instead of zstd on the data files, "
                                 "because %s" % msg)
                self.result["compression_fallback"] = msg
        if via != "files":
            ok, estimate, msg = preflight_space(facts["size"], p["size_factor"], free, reserve)
        self.result["preflight"] = dict(database_size=facts["size"], estimate=estimate, free=free, ok=ok,
                                        message=msg, path=root)
        if not ok:
            self.fail("Backup of %s would not fit: %s. Free space or lower %s; nothing was written." % (
                dbname, msg, "backup_raw_size_factor, or use backup_compressor=gzip (only compressed files on disk)"
                if via == "files" else "backup_size_factor"))
        if os.path.exists(bdir):
            self.fail("backup directory %s already exists; choose another backup_id" % bdir)

        dump_stages = [pg_dump_argv(pg_dump, dbname, p["format"], jobs, comp, level, via, snapshot="<exported>",
                                    outfile=None if via == "pipe" else dump_path)]
        if via == "pipe":
            dump_stages.append(compressor_argv(comp, level, threads))
        self.result["commands"] = [" ".join(s) for s in dump_stages]
        if via == "files":
            self.result["commands"].append(files_route_commands(
                dump_path, level, threads, streaming=jobs > 1 and p["compress_while_dumping"]))
        if self.module.check_mode:
            self.result.update(changed=True, msg="would back up %s to %s (%s)" % (dbname, dump_path, msg))
            self.result["queries"] = self.session.queries
            self.module.exit_json(**self.result)

        try:
            os.makedirs(root, mode=0o700, exist_ok=True)
            os.chmod(root, 0o700)
            os.mkdir(bdir, 0o700)
        except OSError as exc:
            self.fail("cannot create the backup directory %s as %s: %s (create backup_root owned by this user, mode 0700)"
                      % (bdir, getpass.getuser(), exc))
        self.result["changed"] = True
        manifest = dict(
            format_version=1, tool="pgops.deploy.pg_backup", backup_id=backup_id, database=dbname,
            host=socket.gethostname(), status=STATUS_RUNNING, verified=False, started_at=iso(now),
            server_version=facts["server_version"], server_version_num=facts["server_version_num"],
            pg_dump_version=dump_version, postgis_version=facts["postgis_version"], extensions=facts["extensions"],
            database_size=facts["size"], owner=facts["owner"], encoding=facts["encoding"],
            lc_collate=facts["lc_collate"], lc_ctype=facts["lc_ctype"], format=p["format"],
            jobs=jobs if p["format"] == "directory" else 1, compressor=comp, compression_level=level,
            compression_via=via, compress_threads=threads if via in ("pipe", "files") and comp == "zstd" else None,
            dump=dname, app_revision=p["app_revision"], extra=p["extra_manifest"], preflight=self.result["preflight"])
        mpath = os.path.join(bdir, MANIFEST)
        write_json(mpath, manifest)
        env = pg_env(p, dbname)
        try:
            self.backup(manifest, bdir, dump_path, env, jobs, comp, level, via, threads, pg_dump)
        except BackupError as exc:
            manifest.update(status=STATUS_FAILED, error=str(exc), finished_at=iso(utc_now()))
            for name in (dname, GLOBALS_FILE, APP_STATE_FILE):
                remove_path(os.path.join(bdir, name))
            write_json(mpath, manifest)
            self.result["manifest_path"] = mpath
            self.fail("Backup of %s FAILED (nothing marked latest; partial files removed; manifest %s says failed): %s"
                      % (dbname, mpath, exc))
        if "priority" in manifest:
            self.result["priority"] = manifest["priority"]
        self.result.update(manifest_path=mpath, manifest=manifest, checksum=manifest["checksum"],
                           queries=self.session.queries,
                           msg="backup %s of %s: %s in %.1fs (not verified yet)"
                           % (backup_id, dbname, manifest["dump_size_human"], manifest["duration_s"]))
        self.module.exit_json(**self.result)

    def backup(self, manifest, bdir, dump_path, env, jobs, comp, level, via, threads, pg_dump):
        p = self.p
        t_start = time.monotonic()
        priority = None
        if p["nice"] > 0:
            priority = dict(nice=p["nice"], module=lower_own_priority(p["nice"]), backends=[], skipped=[])
            manifest["priority"] = priority
        if p["dump_globals"]:
            argv = [tool(p["pg_bindir"], "pg_dumpall"), "--no-password", "--globals-only",
                    "--file=%s" % os.path.join(bdir, GLOBALS_FILE)]
            if not self.session.scalar("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user",
                                       record=False):
                # Only superusers may read pg_authid; others get roles without password hashes.
                argv.append("--no-role-passwords")
                manifest["globals_without_passwords"] = True
            self.result["commands"].insert(0, " ".join(argv))
            old = os.umask(0o077)
            try:
                run_checked([argv], "pg_dumpall --globals-only", env=env)
            finally:
                os.umask(old)
            os.chmod(os.path.join(bdir, GLOBALS_FILE), 0o600)
            manifest["globals"] = GLOBALS_FILE
        self.app_state(manifest, bdir)

        renicer = self.backend_renicer(priority, manifest, jobs)
        if renicer is not None:
            env = dict(env, PGAPPNAME=renicer.application_name)
        # Snapshot: hold a REPEATABLE READ transaction, export its snapshot to pg_dump, count in it.
        self.session.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = self.session.scalar("SELECT pg_catalog.pg_export_snapshot()")
        manifest["snapshot"] = snapshot
        tables_total = len(self.session.query(
            "SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg\\_%%'", record=False))
        stages = [pg_dump_argv(pg_dump, manifest["database"], p["format"], jobs, comp, level, via, snapshot=snapshot,
                               outfile=dump_path if via != "pipe" else None)]
        if via == "pipe":
            stages.append(compressor_argv(comp, level, threads))
        self.result["commands"] = self.result["commands"][:1 if p["dump_globals"] else 0] + [
            " | ".join(" ".join(s) for s in stages)]
        # A parallel directory dump says which table file is complete (`finished item <id>`), so its table
        # files are compressed while pg_dump writes the others; a serial one is compressed after it.
        streamer = StreamingZstd(dump_path, level, threads) if (
            via == "files" and jobs > 1 and p["compress_while_dumping"]) else None
        if via == "files":
            self.result["commands"].append(files_route_commands(dump_path, level, threads,
                                                                streaming=streamer is not None))
        progress = Progress(os.path.join(bdir, PROGRESS), dump_path, tables_total)

        def on_stderr(idx, line):
            progress.on_stderr(idx, line)
            if streamer is not None:
                streamer.on_stderr(idx, line)

        old = os.umask(0o077)
        try:
            pipe = Pipeline(stages, env=env, stdout_path=dump_path if via == "pipe" else None,
                            on_stderr=on_stderr)
            t_dump = time.monotonic()
            pipe.start()
        finally:
            os.umask(old)
        if streamer is not None:
            streamer.start()
        if priority is not None:
            priority["pg_dump"] = os.getpriority(os.PRIO_PROCESS, pipe.procs[0].pid)
        if renicer is not None:
            renicer.start()
        ticker = threading.Thread(target=progress.loop)
        ticker.daemon = True
        ticker.start()
        try:
            t_count = time.monotonic()
            row_counts, matview_counts = count_rows(self.session, record=False)
            manifest["count_duration_s"] = round(time.monotonic() - t_count, 3)
            self.session.queries.append("SELECT count(*) FROM <each of %d tables, %d matviews> -- same snapshot"
                                        % (len(row_counts), len(matview_counts)))
        except Exception as exc:  # the dump must not outlive a failed count
            pipe.kill()
            pipe.wait()
            if streamer is not None:
                streamer.abort()
            if renicer is not None:
                renicer.finish()
            progress.stop.set()
            self.session.rollback()
            raise BackupError("row counts in the dump snapshot failed: %s" % exc)
        rcs = pipe.wait()
        self.session.rollback()  # release the snapshot only after pg_dump finished
        if renicer is not None:
            priority.update(renicer.finish())
        err = pipe.failure(rcs)
        manifest["exit_status"] = dict((os.path.basename(s[0]), rc) for s, rc in zip(stages, rcs))
        streamed, t_zst = (0, 0), time.monotonic()
        if streamer is not None:
            if err:
                streamer.abort()
            else:
                progress.phase = "compress"
                try:
                    streamed = streamer.finish()
                except RuntimeError as exc:
                    err = "compressing the table files with zstd while pg_dump wrote them failed: %s" % exc
                manifest["exit_status"]["zstd"] = streamer.exit_status() or (1 if err else 0)
        if not err and via == "files":
            # pg_dump -Z0 succeeded; the data files not compressed yet: <id>.dat -> <id>.dat.zst (toc.dat and
            # blobs.toc stay readable).
            progress.phase = "compress"
            try:
                raw, nfiles, rc = compress_data_files(dump_path, level, threads)
                manifest["exit_status"]["zstd"] = max(rc, manifest["exit_status"].get("zstd", 0))
            except BackupError as exc:
                manifest["exit_status"]["zstd"] = getattr(exc, "rc", 1)
                err = str(exc)
            else:
                raw += streamed[0]
                manifest.update(dump_uncompressed_size=raw, dump_uncompressed_size_human=human(raw),
                                compressed_files=nfiles + streamed[1], compressed_while_dumping=streamed[1],
                                compress_duration_s=round(time.monotonic() - t_zst, 3))
        manifest["dump_duration_s"] = round(time.monotonic() - t_dump, 3)
        progress.stop.set()
        ticker.join(5)
        if err:
            progress.write("failed")
            raise BackupError(err)
        progress.write("checksums")
        files = checksum_files(bdir, [manifest["dump"]] + [n for n in (GLOBALS_FILE, APP_STATE_FILE)
                                                             if os.path.exists(os.path.join(bdir, n))])
        dump_files = dict((k, v) for k, v in files.items()
                          if k == manifest["dump"] or k.startswith(manifest["dump"] + os.sep))
        if p["format"] == "directory":
            checksum = tree_checksum(dump_files)
        else:
            checksum = files[manifest["dump"]]["sha256"]
        dump_size = sum(v["size"] for v in dump_files.values())
        finished = utc_now()
        manifest.update(
            status=STATUS_DUMPED, verified=False, finished_at=iso(finished), row_counts=row_counts,
            matview_row_counts=matview_counts, tables=len(row_counts), files=files, checksum=checksum,
            checksum_kind="tree-sha256" if p["format"] == "directory" else "sha256", dump_size=dump_size,
            dump_size_human=human(dump_size), size=sum(v["size"] for v in files.values()),
            duration_s=round(time.monotonic() - t_start, 3))
        write_json(os.path.join(bdir, MANIFEST), manifest)
        progress.write("done")  # last: a poller waiting for "done" finds the module about to exit

    def backend_renicer(self, priority, manifest, jobs):
        """A watcher that renices the dump's server backends (own connection), or None."""
        if priority is None or not self.p["nice_server_backends"]:
            return None
        own = self.session.scalar("SELECT pg_catalog.pg_backend_pid()", record=False)
        try:
            session = try_session(self.module, dbname=manifest["database"])
        except ConnectFailed as exc:
            priority["skipped"].append("no connection to find the backends: %s" % exc)
            return None
        leader_and_workers = jobs + 1 if manifest["format"] == "directory" and jobs > 1 else 1
        return BackendRenicer(session, dump_application_name(self.p["application_name"], manifest["backup_id"]),
                              own, leader_and_workers + 1, self.p["nice"])

    def app_state(self, manifest, bdir):
        p = self.p
        target = os.path.join(bdir, APP_STATE_FILE)
        if p["app_state_archive"]:
            if not os.path.isfile(p["app_state_archive"]):
                raise BackupError("app_state_archive %s does not exist" % p["app_state_archive"])
            shutil.move(p["app_state_archive"], target)
        elif p["app_state_paths"]:
            missing = [x for x in p["app_state_paths"] if not os.path.exists(x)]
            if missing:
                raise BackupError("app_state_paths not found on %s: %s" % (socket.gethostname(), ", ".join(missing)))
            old = os.umask(0o077)
            try:
                with tarfile.open(target, "w:gz", compresslevel=1) as tar:
                    for path in p["app_state_paths"]:
                        tar.add(path, arcname=path.lstrip("/"))
            finally:
                os.umask(old)
        else:
            return
        os.chmod(target, 0o600)
        manifest["app_state"] = dict(file=APP_STATE_FILE, paths=p["app_state_paths"] or None)


def main():
    spec = postgres_common_argument_spec()
    spec.update(
        backup_root=dict(type="path", required=True),
        backup_id=dict(type="str"),
        format=dict(type="str", default="directory", choices=["directory", "custom", "plain"]),
        jobs=dict(type="int", default=0),
        compressor=dict(type="str", default="auto", choices=["auto", "zstd", "gzip", "none"]),
        compress_level=dict(type="int"),
        compress_threads=dict(type="int", default=0),
        compress_while_dumping=dict(type="bool", default=True),
        size_factor=dict(type="float", default=0.6),
        raw_size_factor=dict(type="float", default=1.0),
        min_free_mb=dict(type="int", default=64),
        free_bytes_override=dict(type="int"),
        dump_globals=dict(type="bool", default=True),
        app_state_paths=dict(type="list", elements="path", default=[]),
        app_state_archive=dict(type="path"),
        app_revision=dict(type="str", default="unknown"),
        pg_bindir=dict(type="path"),
        extra_manifest=dict(type="dict", default={}),
        nice=dict(type="int", default=0),
        nice_server_backends=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           mutually_exclusive=[("app_state_paths", "app_state_archive")])
    Backup(module).run()


if __name__ == "__main__":
    main()
