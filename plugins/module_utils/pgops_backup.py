# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup building blocks shared by the pg_backup* modules.

Pure helpers (names, argv, retention plan, manifest handling; unit tested) and
process helpers that run pipelines of real tools (pg_dump | zstd > file) while
keeping every stage's exit status: a pipeline fails when ANY stage fails, which
is what `set -o pipefail` gives a shell, plus the per-stage detail.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading

from ansible_collections.pgops.deploy.plugins.module_utils.pgops_restore_feed import FeedError, FifoFeed

FORMATS = ("directory", "custom", "plain")
COMPRESSORS = ("auto", "zstd", "gzip", "none")
MANIFEST = "manifest.json"
PROGRESS = "progress.json"
LATEST_LINK = "latest"
LATEST_POINTER = "latest.json"
GLOBALS_FILE = "globals.sql"
APP_STATE_FILE = "app_state.tar.gz"
PLAIN_TRAILER = b"-- PostgreSQL database dump complete"
# Statuses a backup directory goes through (manifest "status").
STATUS_RUNNING = "running"
STATUS_DUMPED = "dumped"
STATUS_VERIFIED = "verified"
STATUS_FAILED = "failed"
STATUS_VERIFY_FAILED = "verify_failed"


class BackupError(Exception):
    """A failure with a message meant for the operator."""


# ---------------------------------------------------------------- pure helpers

def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def iso(ts):
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def make_backup_id(dbname, now):
    """`<db>-<YYYYmmddTHHMMSSZ>`: sorts by time, unique per second per database."""
    return "%s-%s" % (dbname, now.strftime("%Y%m%dT%H%M%SZ"))


def resolve_compression(fmt, compressor, level, pg_major, have_zstd=True):
    """Return (compressor, level, via); via says who compresses:

    `pg_dump` (built-in), `pipe` (`pg_dump -Z0 | zstd/gzip` for single-file formats),
    `files` (directory format: `pg_dump -Fd -Z0`, then `zstd --rm` of every data file)
    or `none`.

    PostgreSQL 15's pg_dump only compresses with gzip, and a directory dump cannot be
    piped, so zstd there compresses the finished data files (`files`); pg_dump >= 16
    has `--compress=zstd:N`. `auto` is zstd `files` for directory format on pg_dump < 16
    when a zstd binary is available (`have_zstd`), else gzip as before; zstd through a
    pipe for custom and plain.
    """
    if fmt not in FORMATS:
        raise BackupError("format must be one of %s, got %r" % (", ".join(FORMATS), fmt))
    if compressor not in COMPRESSORS:
        raise BackupError("compressor must be one of %s, got %r" % (", ".join(COMPRESSORS), compressor))
    if compressor == "auto":
        if fmt == "directory":
            compressor = "zstd" if have_zstd and pg_major < 16 else "gzip"
        else:
            compressor = "zstd"
    if compressor == "none":
        return "none", 0, "none"
    via = "pipe"
    if fmt == "directory":
        via = "files" if compressor == "zstd" and pg_major < 16 else "pg_dump"
    if level is None:
        level = 1 if compressor == "gzip" or via == "files" else 3
    if compressor == "gzip" and not 1 <= level <= 9:
        raise BackupError("gzip level must be 1..9, got %s" % level)
    if compressor == "zstd" and not 1 <= level <= 19:
        raise BackupError("zstd level must be 1..19, got %s" % level)
    if via == "files" and not have_zstd:
        raise BackupError(
            "format=directory with compressor=zstd on pg_dump %s compresses the dumped data files with the zstd "
            "program, which was not found on the PATH of the db host; install zstd, or use compressor=gzip "
            "(pg_dump built-in) or compressor=auto (zstd when available, else gzip)" % pg_major)
    return compressor, level, via


def dump_name(fmt, compressor, via):
    base = {"directory": "db.dir", "custom": "db.dump", "plain": "db.sql"}[fmt]
    if via == "pipe":
        base += {"zstd": ".zst", "gzip": ".gz"}[compressor]
    return base


def pg_dump_argv(pg_dump, dbname, fmt, jobs, compressor, level, via, snapshot=None, outfile=None, verbose=True):
    """argv of pg_dump; connection comes from the PG* environment (no password in argv)."""
    argv = [pg_dump, "--no-password", "--format=%s" % fmt]
    if via == "pg_dump":
        argv.append("--compress=%s" % (level if compressor == "gzip" else "%s:%s" % (compressor, level)))
    elif fmt != "plain":
        argv.append("--compress=0")
    if fmt == "directory" and jobs > 1:
        argv.append("--jobs=%d" % jobs)
    if snapshot:
        argv.append("--snapshot=%s" % snapshot)
    if verbose:
        argv.append("--verbose")
    if outfile:
        argv.append("--file=%s" % outfile)
    argv.append("--dbname=%s" % dbname)
    return argv


def compressor_argv(compressor, level, threads):
    if compressor == "zstd":
        return ["zstd", "-q", "-%d" % level, "-T%d" % max(threads, 0), "-c"]
    if compressor == "gzip":
        return ["gzip", "-%d" % level, "-c"]
    raise BackupError("no pipe compressor for %r" % compressor)


def decompressor_argv(compressor):
    if compressor == "zstd":
        return ["zstd", "-q", "-d", "-c"]
    if compressor == "gzip":
        return ["gzip", "-d", "-c"]
    raise BackupError("no decompressor for %r" % compressor)


ZSTD_BATCH = 512  # files per zstd process: keeps argv far below ARG_MAX with thousands of tables
TOC_FILE = "toc.dat"
BLOBS_TOC = "blobs.toc"


def batches(items, size=ZSTD_BATCH):
    return [items[i:i + size] for i in range(0, len(items), size)]


def dump_data_files(dump_dir):
    """Data files of a `pg_dump -Fd -Z0` directory: `<dumpId>.dat` (tables) and `blob_<oid>.dat`
    (large objects). `toc.dat` and `blobs.toc` are not data and stay readable."""
    return sorted(os.path.join(dump_dir, f) for f in os.listdir(dump_dir)
                  if f.endswith(".dat") and f != TOC_FILE and os.path.isfile(os.path.join(dump_dir, f)))


def compressed_data_files(dump_dir):
    return sorted(os.path.join(dump_dir, f) for f in os.listdir(dump_dir) if f.endswith(".dat.zst"))


def zstd_compress_files_argv(level, threads, paths):
    """Compress files in place: `<f>` -> `<f>.zst` (content checksum on, zstd's default); --rm
    deletes each source only after its .zst was written completely."""
    return ["zstd", "-q", "-%d" % level, "-T%d" % max(threads, 0), "--rm", "--"] + list(paths)


def zstd_test_argv(paths):
    """Decode every frame and compare zstd's content checksum, writing nothing."""
    return ["zstd", "-q", "-t", "--"] + list(paths)


def zstd_decompress_files_argv(outdir, paths):
    return ["zstd", "-q", "-d", "--output-dir-flat", outdir, "--"] + list(paths)


def files_route_commands(dump_path, level, threads, streaming=False):
    """What the files route runs besides pg_dump, for humans (check mode, `commands`)."""
    after = "zstd -q -%d -T%d --rm -- %s/*.dat  (every data file; toc.dat and blobs.toc stay uncompressed)" % (
        level, threads, dump_path)
    if not streaming:
        return after
    return ("zstd -q -%d -T%d -c < %s/<id>.dat > <id>.dat.zst  (each table file while pg_dump writes it), then %s"
            % (level, threads, dump_path, after.replace("every data file", "the data files left")))


def toc_data_ids(listing):
    """dumpIds of the TABLE DATA entries in `pg_restore --list` output (their files are `<id>.dat`)."""
    ids = []
    for line in listing.splitlines():
        m = re.match(r"^(\d+); \d+ \d+ TABLE DATA ", line)
        if m:
            ids.append(int(m.group(1)))
    return ids


def blobs_toc_files(text):
    """File names listed in a directory dump's blobs.toc (`<oid> blob_<oid>.dat` per line)."""
    return [line.split()[1] for line in text.splitlines() if len(line.split()) == 2]


def lanes(paths, n):
    """Split files into n lists of similar total size (largest first) for parallel zstd processes."""
    n = max(1, min(n, len(paths)))
    out = [[] for _ in range(n)]
    load = [0] * n
    for path in sorted(paths, key=lambda x: (-os.path.getsize(x), x)):
        i = load.index(min(load))
        out[i].append(path)
        load[i] += os.path.getsize(path)
    return [sorted(lane) for lane in out if lane]


def preflight_space(db_size, factor, free_bytes, min_free_bytes=0, what="backup size"):
    """Return (ok, estimate, message). The estimate is db_size * factor + min_free_bytes."""
    estimate = int(db_size * factor) + int(min_free_bytes)
    ok = estimate <= free_bytes
    msg = ("estimated %s %s (pg_database_size %s x factor %s%s) %s free space %s on the backup path"
           % (what, human(estimate), human(db_size), factor,
              (" + reserve %s" % human(min_free_bytes)) if min_free_bytes else "",
              "fits in" if ok else "does NOT fit in", human(free_bytes)))
    return ok, estimate, msg


def human(n):
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024.0


def tree_checksum(files):
    """One sha256 over the sorted `name sha256` lines: identifies a directory-format dump."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(("%s %s\n" % (name, files[name]["sha256"])).encode("utf-8"))
    return h.hexdigest()


def retention_plan(backups, keep_last=None, keep_days=None, now=None):
    """Decide which backups to delete.

    `backups`: list of dicts with `id`, `created` (datetime), `status`.
    Rules: failed / unverified backups are deleted first (they are never "a
    backup"); of verified ones keep the newest `keep_last` and/or those younger
    than `keep_days` (a backup is kept when ANY given rule keeps it); the newest
    verified backup is always kept. With neither rule, verified backups are kept.
    Returns (keep, delete) lists of (id, reason).
    """
    now = now or utc_now()
    keep, delete = [], []
    verified = sorted((b for b in backups if b.get("status") == STATUS_VERIFIED),
                      key=lambda b: (b["created"], b["id"]), reverse=True)
    for b in backups:
        if b.get("status") != STATUS_VERIFIED:
            delete.append((b["id"], "status %s (not a verified backup)" % b.get("status")))
    for idx, b in enumerate(verified):
        reasons = []
        if idx == 0:
            reasons.append("newest verified backup")
        if keep_last is not None and idx < keep_last:
            reasons.append("within keep_last=%d" % keep_last)
        age_days = (now - b["created"]).total_seconds() / 86400.0
        if keep_days is not None and age_days <= keep_days:
            reasons.append("within keep_days=%s (age %.1f days)" % (keep_days, age_days))
        if keep_last is None and keep_days is None:
            reasons.append("no retention rule set")
        if reasons:
            keep.append((b["id"], "; ".join(reasons)))
        else:
            why = []
            if keep_last is not None:
                why.append("older than the newest %d" % keep_last)
            if keep_days is not None:
                why.append("older than %s days (age %.1f)" % (keep_days, age_days))
            delete.append((b["id"], " and ".join(why)))
    return keep, delete


def compare_counts(expected, found):
    """Return list of mismatches {table, expected, found}; a missing table has found=None."""
    out = []
    for table in sorted(expected):
        got = found.get(table)
        if got is None or int(got) != int(expected[table]):
            out.append(dict(table=table, expected=int(expected[table]), found=got))
    return out


def confirm_phrase(dbname):
    return "RESTORE %s" % dbname


# ---------------------------------------------------------------- files

def sha256_file(path, bufsize=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(bufsize)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def checksum_files(root, names):
    """{relative name: {sha256, size}} for files, expanding directories recursively."""
    out = {}
    for name in names:
        path = os.path.join(root, name)
        if os.path.isdir(path):
            for dirpath, _dirs, files in os.walk(path):
                for fname in files:
                    full = os.path.join(dirpath, fname)
                    rel = os.path.relpath(full, root)
                    out[rel] = dict(sha256=sha256_file(full), size=os.path.getsize(full))
        elif os.path.exists(path):
            out[name] = dict(sha256=sha256_file(path), size=os.path.getsize(path))
    return out


def path_size(path):
    if os.path.isdir(path):
        total = 0
        for dirpath, _dirs, files in os.walk(path):
            for fname in files:
                try:
                    total += os.path.getsize(os.path.join(dirpath, fname))
                except OSError:
                    pass
        return total
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def write_json(path, data, mode=0o600):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def read_manifest(backup_path):
    path = os.path.join(backup_path, MANIFEST)
    try:
        with open(path) as fh:
            return json.load(fh)
    except (IOError, OSError, ValueError) as exc:
        raise BackupError("cannot read manifest %s: %s" % (path, exc))


def list_backups(root):
    """Every backup directory under root with its manifest (or status `broken` when unreadable)."""
    out = []
    if not os.path.isdir(root):
        return out
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if name == LATEST_LINK or name.startswith(".") or os.path.islink(path) or not os.path.isdir(path):
            continue  # `.<id>.restore.*`: a restore's temp copy, not a backup
        try:
            man = read_manifest(path)
            created = parse_iso(man["started_at"])
            status = man.get("status")
        except (BackupError, KeyError, ValueError):
            man = None
            created = datetime.datetime.fromtimestamp(os.path.getmtime(path), datetime.timezone.utc)
            status = "broken"
        out.append(dict(id=name, path=path, created=created, status=status, manifest=man))
    return out


def latest_verified_id(root):
    link = os.path.join(root, LATEST_LINK)
    if os.path.islink(link):
        return os.path.basename(os.readlink(link))
    return None


def mark_latest(root, backup_id, manifest):
    """Point `latest` (symlink) and `latest.json` at a verified backup (atomic renames).

    Only moves forward: re-verifying an older backup never makes it `latest` again.
    Returns True when the pointer moved.
    """
    link = os.path.join(root, LATEST_LINK)
    current = latest_verified_id(root)
    if current and current != backup_id:
        try:
            cur = read_manifest(os.path.join(root, current))
            if (cur.get("started_at") or "", current) > (manifest.get("started_at") or "", backup_id):
                return False
        except BackupError:
            pass  # a broken latest is replaced
    tmp = link + ".tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(backup_id, tmp)
    os.rename(tmp, link)
    write_json(os.path.join(root, LATEST_POINTER), dict(
        backup_id=backup_id, path=os.path.join(root, backup_id), database=manifest.get("database"),
        finished_at=manifest.get("finished_at"), verified_at=manifest.get("verified_at"),
        checksum=manifest.get("checksum")))
    return True


def remove_path(path):
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


# ---------------------------------------------------------------- processes

def pg_env(params, dbname=None, base=None):
    """libpq environment for CLI tools from the shared module params (password via PGPASSWORD)."""
    env = dict(base if base is not None else os.environ)
    host = params.get("login_unix_socket") or params.get("login_host")
    if host:
        env["PGHOST"] = host
    if params.get("login_port"):
        env["PGPORT"] = str(params["login_port"])
    if params.get("login_user"):
        env["PGUSER"] = params["login_user"]
    if params.get("login_password"):
        env["PGPASSWORD"] = params["login_password"]
    if params.get("ssl_mode"):
        env["PGSSLMODE"] = params["ssl_mode"]
    for key, var in (("ca_cert", "PGSSLROOTCERT"), ("ssl_cert", "PGSSLCERT"), ("ssl_key", "PGSSLKEY")):
        if params.get(key):
            env[var] = params[key]
    if params.get("connect_timeout"):
        env["PGCONNECT_TIMEOUT"] = str(params["connect_timeout"])
    env["PGAPPNAME"] = params.get("application_name") or "pgops.deploy"
    # pg_dump's --verbose lines are parsed (progress, `finished item <id>`): untranslated.
    env.pop("LC_ALL", None)
    env["LC_MESSAGES"] = "C"
    if dbname:
        env["PGDATABASE"] = dbname
    return env


class Pipeline(object):
    """Run argv stages connected stdout->stdin; keep every exit status (pipefail semantics).

    stdin_path / stdout_path: files for the first stage's input and the last stage's output
    (None: no input, last stage's stdout discarded). `on_stderr(stage_index, line)` is called
    from reader threads for each stderr line (progress); stderr is also kept (last 200 lines).
    """

    def __init__(self, stages, env=None, stdin_path=None, stdout_path=None, stdout_mode=0o600, on_stderr=None,
                 pass_fds=()):
        self.stages = stages
        self.env = env
        self.stdin_path = stdin_path
        self.stdout_path = stdout_path
        self.stdout_mode = stdout_mode
        self.on_stderr = on_stderr
        self.pass_fds = pass_fds
        self.procs = []
        self.stderr = [[] for _ in stages]
        self._threads = []

    def _reader(self, idx, stream):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            buf = self.stderr[idx]
            buf.append(line)
            if len(buf) > 200:
                del buf[:-200]
            if self.on_stderr is not None:
                try:
                    self.on_stderr(idx, line)
                except Exception:  # progress is best effort
                    pass
        stream.close()

    def start(self):
        stdin = open(self.stdin_path, "rb") if self.stdin_path else subprocess.DEVNULL
        if self.stdout_path:
            fd = os.open(self.stdout_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.stdout_mode)
            final_out = os.fdopen(fd, "wb")
        else:
            final_out = subprocess.DEVNULL
        prev = stdin
        try:
            for idx, argv in enumerate(self.stages):
                last = idx == len(self.stages) - 1
                try:
                    proc = subprocess.Popen(argv, stdin=prev, stdout=final_out if last else subprocess.PIPE,
                                            stderr=subprocess.PIPE, env=self.env, close_fds=True,
                                            pass_fds=self.pass_fds if idx == 0 else ())
                except OSError as exc:
                    self.kill()
                    raise BackupError("cannot start %s: %s" % (argv[0], exc))
                if prev not in (subprocess.DEVNULL, stdin):
                    prev.close()  # the next stage owns the read end now
                prev = proc.stdout
                self.procs.append(proc)
                thr = threading.Thread(target=self._reader, args=(idx, proc.stderr))
                thr.daemon = True
                thr.start()
                self._threads.append(thr)
        finally:
            if stdin is not subprocess.DEVNULL:
                stdin.close()
            if final_out is not subprocess.DEVNULL:
                final_out.close()
        return self

    def running(self):
        return any(p.poll() is None for p in self.procs)

    def kill(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()

    def wait(self):
        rcs = [p.wait() for p in self.procs]
        for thr in self._threads:
            thr.join(5)
        return rcs

    def failure(self, rcs):
        """None when every stage exited 0, else a message naming each failed stage and its stderr tail."""
        bad = []
        for idx, rc in enumerate(rcs):
            if rc != 0:
                tail = [ln for ln in self.stderr[idx] if ln.strip()][-8:]
                bad.append("%s exited %s%s" % (os.path.basename(self.stages[idx][0]), rc,
                                                (": " + " | ".join(tail)) if tail else ""))
        return "; ".join(bad) if bad else None

    def run(self):
        self.start()
        rcs = self.wait()
        return rcs, self.failure(rcs)


def run_checked(stages, what, **kw):
    """Run a pipeline and raise BackupError naming the failing stage(s)."""
    pipe = Pipeline(stages, **kw)
    _rcs, err = pipe.run()
    if err:
        raise BackupError("%s failed: %s" % (what, err))
    return pipe


def run_lanes(commands_per_lane, what, keep_going=False):
    """Run lists of argv commands: lanes in parallel, each lane's commands one after the other
    (a lane stops at its first failure unless keep_going). Returns the exit statuses; raises
    BackupError naming every failed command (pipefail semantics)."""
    errors, rcs = [], []
    lock = threading.Lock()

    def lane(cmds):
        for argv in cmds:
            pipe = Pipeline([argv])
            try:
                got, err = pipe.run()
            except BackupError as exc:
                got, err = [127], str(exc)
            with lock:
                rcs.extend(got)
                if err:
                    errors.append(err)
            if err and not keep_going:
                return

    threads = [threading.Thread(target=lane, args=(cmds,)) for cmds in commands_per_lane]
    for thr in threads:
        thr.start()
    for thr in threads:
        thr.join()
    if errors:
        exc = BackupError("%s failed: %s" % (what, "; ".join(errors[:4]) + (" (and %d more)" % (len(errors) - 4)
                                                                            if len(errors) > 4 else "")))
        exc.rc = max(rc for rc in rcs if rc != 0) if any(rcs) else 1  # the exit status for the manifest
        raise exc
    return rcs


def compress_data_files(dump_dir, level, threads):
    """The `files` route after `pg_dump -Fd -Z0`: `<id>.dat` -> `<id>.dat.zst` for every data file.

    One zstd process at a time with -T<threads> (the measured variant), ZSTD_BATCH files each.
    Returns (raw bytes of the directory's files not compressed yet, number of files, zstd exit status).
    Raises BackupError when any zstd run fails (the caller removes the half-compressed dump).
    """
    raw = path_size(dump_dir) - sum(os.path.getsize(f) for f in compressed_data_files(dump_dir))
    files = dump_data_files(dump_dir)
    old = os.umask(0o077)
    try:
        rcs = run_lanes([[zstd_compress_files_argv(level, threads, chunk) for chunk in batches(files)]],
                        "compressing the data files of %s with zstd" % dump_dir)
    finally:
        os.umask(old)
    left = dump_data_files(dump_dir)
    if left:
        exc = BackupError("zstd exited 0 but left %d uncompressed data files in %s (e.g. %s)"
                          % (len(left), dump_dir, os.path.basename(left[0])))
        exc.rc = 0
        raise exc
    return raw, len(files), max(rcs) if rcs else 0


def read_all_argv(manifest, backup_path, pg_restore):
    """Stages that read and decode every data block of the dump (output discarded).

    custom/directory: pg_restore -f /dev/null writes the full SQL script including all
    table data, so every block is read and decompressed (a truncated or corrupt archive
    fails), unlike `pg_restore --list`, which only reads the TOC.
    plain: decompress the whole file; the trailer is checked separately.
    """
    fmt = manifest["format"]
    dump = os.path.join(backup_path, manifest["dump"])
    via = manifest.get("compression_via")
    comp = manifest.get("compressor")
    if via == "files":
        raise BackupError("a directory dump with zstd-compressed data files is read by files_route_read_check")
    if fmt == "plain":
        if via == "pipe":
            return [decompressor_argv(comp)], dump
        return [["cat"]], dump
    if via == "pipe":
        return [decompressor_argv(comp), [pg_restore, "--file=/dev/null"]], dump
    return [[pg_restore, "--file=/dev/null", dump]], None


def plain_trailer_ok(manifest, backup_path):
    """A complete plain dump ends with pg_dump's completion comment."""
    dump = os.path.join(backup_path, manifest["dump"])
    via = manifest.get("compression_via")
    stages = [decompressor_argv(manifest["compressor"]), ["tail", "-c", "4096"]] if via == "pipe" else [
        ["tail", "-c", "4096"]]
    tmp = dump + ".tail"  # the last 4 KiB, next to the dump, removed right after
    pipe = Pipeline(stages, stdin_path=dump, stdout_path=tmp)
    try:
        _rcs, err = pipe.run()
        if err:
            return False, err
        with open(tmp, "rb") as fh:
            data = fh.read()
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return PLAIN_TRAILER in data, None


def restore_steps(manifest, backup_path, dbname, pg_restore, psql, jobs=1, clean=False, new_db=False):
    """[(stages, stdin_path)] restoring the dump into `dbname`, run one after the other (RestoreRun).

    Into a new database (`new_db`), a seekable archive (directory, or custom not read from a pipe) is
    restored in two steps - pre-data, then data + post-data - so that autovacuum can be held off the
    new tables in between (pgops_restore_run); anything else in one step.
    """
    seekable = manifest["format"] in ("directory", "custom") and manifest.get("compression_via") != "pipe"
    if not (new_db and seekable and not clean):
        return [restore_stages(manifest, backup_path, dbname, pg_restore, psql, jobs=jobs, clean=clean)]
    return [restore_stages(manifest, backup_path, dbname, pg_restore, psql, sections=("pre-data",)),
            restore_stages(manifest, backup_path, dbname, pg_restore, psql, jobs=jobs,
                           sections=("data", "post-data"))]


def restore_stages(manifest, backup_path, dbname, pg_restore, psql, jobs=1, clean=False, sections=()):
    """(stages, stdin_path) that restore the dump (or some of pg_dump's sections) into `dbname`
    (connection from PG* env)."""
    fmt = manifest["format"]
    dump = os.path.join(backup_path, manifest["dump"])
    via = manifest.get("compression_via")
    comp = manifest.get("compressor")
    if fmt == "plain":
        load = [psql, "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "--single-transaction",
                "-d", dbname, "-o", "/dev/null"]
        if via == "pipe":
            return [decompressor_argv(comp), load], dump
        return [load], dump
    if via == "files":
        raise BackupError("%s has zstd-compressed data files; decompress it first (decompress_for_parallel)" % dump)
    argv = [pg_restore, "--no-password", "--exit-on-error", "--dbname=%s" % dbname]
    if clean:
        argv += ["--clean", "--if-exists"]
    argv += ["--section=%s" % name for name in sections]
    if via == "pipe":
        # Streamed custom archive: pg_restore reads stdin sequentially (one job).
        return [decompressor_argv(comp), argv], dump
    if jobs > 1:
        argv.append("--jobs=%d" % jobs)
    argv.append(dump)
    return [argv], None


# ---------------------------------------------------------------- catalog queries

# Tables and matviews of the database; options / toast_options are the reloptions of the relation and
# of its TOAST table (pgops_restore_run puts autovacuum settings back from them).
USER_TABLES_SQL = """
SELECT n.nspname AS schema, c.relname AS name, c.relkind AS kind, c.reloptions AS options,
       c.reltoastrelid <> 0 AS has_toast, t.reloptions AS toast_options
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_class t ON t.oid = c.reltoastrelid
 WHERE c.relkind IN ('r', 'm')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
 ORDER BY 1, 2
"""


def count_rows(session, record=False):
    """Exact count(*) of every table ({schema.table: n}) and populated matview ({..: n})."""
    tables, matviews = {}, {}
    for row in session.query(USER_TABLES_SQL, record=record):
        key = "%s.%s" % (row["schema"], row["name"])
        qname = '"%s"."%s"' % (row["schema"].replace('"', '""'), row["name"].replace('"', '""'))
        if row["kind"] == "m":
            populated = session.scalar(
                "SELECT ispopulated FROM pg_catalog.pg_matviews WHERE schemaname = %s AND matviewname = %s",
                (row["schema"], row["name"]), record=record)
            matviews[key] = session.scalar("SELECT count(*) FROM %s" % qname, record=record) if populated else None
        else:
            tables[key] = session.scalar("SELECT count(*) FROM %s" % qname, record=record)
    return tables, matviews


def database_facts(session):
    """Server version, extensions and size of the current database."""
    exts = dict((r["extname"], r["extversion"]) for r in session.query(
        "SELECT extname, extversion FROM pg_catalog.pg_extension ORDER BY 1", record=False))
    row = session.query(
        "SELECT current_setting('server_version') AS version, current_setting('server_version_num')::int AS num, "
        "pg_database_size(current_database()) AS size, pg_catalog.pg_get_userbyid(d.datdba) AS owner, "
        "pg_encoding_to_char(d.encoding) AS encoding, d.datcollate AS collate, d.datctype AS ctype "
        "FROM pg_catalog.pg_database d WHERE d.datname = current_database()", record=False)[0]
    return dict(server_version=row["version"], server_version_num=row["num"], size=row["size"],
                owner=row["owner"], encoding=row["encoding"], lc_collate=row["collate"], lc_ctype=row["ctype"],
                extensions=exts, postgis_version=exts.get("postgis"))


# ---------------------------------------------------------------- verification and restore

def verify_checksums(manifest, backup_path):
    """Recompute sha256 of every file listed in the manifest; return list of problems."""
    problems = []
    listed = manifest.get("files") or {}
    if not listed:
        return ["manifest lists no files (backup never completed?)"]
    for name in sorted(listed):
        path = os.path.join(backup_path, name)
        if not os.path.isfile(path):
            problems.append("%s: missing" % name)
            continue
        size = os.path.getsize(path)
        if size != listed[name]["size"]:
            problems.append("%s: size %d, manifest says %d" % (name, size, listed[name]["size"]))
            continue
        digest = sha256_file(path)
        if digest != listed[name]["sha256"]:
            problems.append("%s: sha256 %s, manifest says %s" % (name, digest, listed[name]["sha256"]))
    dump = os.path.join(backup_path, manifest["dump"])
    if os.path.isdir(dump):
        present = set(checksum_names(backup_path, manifest["dump"]))
        for extra in sorted(present - set(listed)):
            problems.append("%s: not in the manifest" % extra)
    return problems


def checksum_names(root, name):
    out = []
    for dirpath, _dirs, files in os.walk(os.path.join(root, name)):
        for fname in files:
            out.append(os.path.relpath(os.path.join(dirpath, fname), root))
    return out


def missing_extensions(session, manifest):
    avail = set(r["name"] for r in session.query("SELECT name FROM pg_catalog.pg_available_extensions", record=False))
    return sorted(set((manifest.get("extensions") or {}).keys()) - avail)


def role_exists(session, name):
    return bool(session.scalar("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (name,), record=False))


def db_exists(session, name):
    return bool(session.scalar("SELECT 1 FROM pg_catalog.pg_database WHERE datname = %s", (name,), record=False))


def create_database(session, name, manifest, owner=None):
    """CREATE DATABASE from template0 with the dumped encoding/locale (and owner when it exists)."""
    sql = 'CREATE DATABASE "%s" TEMPLATE template0' % name.replace('"', '""')
    if manifest.get("encoding"):
        sql += " ENCODING %s" % quote_literal(manifest["encoding"])
    if manifest.get("lc_collate"):
        sql += " LC_COLLATE %s LC_CTYPE %s" % (quote_literal(manifest["lc_collate"]),
                                               quote_literal(manifest.get("lc_ctype") or manifest["lc_collate"]))
    owner = owner or manifest.get("owner")
    if owner and role_exists(session, owner):
        sql += ' OWNER "%s"' % owner.replace('"', '""')
    session.execute(sql)


def quote_literal(text):
    return "'" + str(text).replace("'", "''") + "'"


def drop_database(session, name):
    session.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name.replace('"', '""'))


def scratch_name(dbname, kind, now):
    """`<db>_<kind>_<YYYYmmddHHMMSS>` within PostgreSQL's 63-byte identifier limit."""
    suffix = "_%s_%s" % (kind, now.strftime("%Y%m%d%H%M%S"))
    return dbname[:63 - len(suffix)] + suffix


def sessions_on(session, dbname):
    return session.query(
        "SELECT pid, usename AS user, application_name AS application, client_addr::text AS client, state "
        "FROM pg_catalog.pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() ORDER BY pid",
        (dbname,), record=False)


def copy_database_acl(session, src, dst):
    """Re-grant src's database-level privileges (CONNECT, CREATE, TEMP) on dst (pg_dump without
    --create does not carry them)."""
    acl_null = session.scalar("SELECT datacl IS NULL FROM pg_catalog.pg_database WHERE datname = %s", (src,),
                              record=False)
    if acl_null is None or acl_null:
        return []
    rows = session.query(
        "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS grantee, "
        "a.privilege_type AS priv FROM pg_catalog.pg_database d, aclexplode(d.datacl) a WHERE d.datname = %s",
        (src,), record=False)
    dst_q = '"%s"' % dst.replace('"', '""')
    stmts = ["REVOKE ALL ON DATABASE %s FROM PUBLIC" % dst_q]
    stmts += ["GRANT %s ON DATABASE %s TO %s" % (r["priv"], dst_q, r["grantee"]) for r in rows]
    for stmt in stmts:
        session.execute(stmt)
    return stmts


def files_route_read_check(manifest, backup_path, pg_restore, parallel=1):
    """Read every data block of a `files`-route directory dump without decompressing it to disk.

    1. `pg_restore --list` reads the TOC; every TABLE DATA entry must have its `<id>.dat.zst` and
       every large object in blobs.toc its `blob_<oid>.dat.zst`;
    2. `zstd -t` decodes every frame of every `.dat.zst` and checks zstd's content checksum
       (truncated or corrupted files fail), `parallel` processes at a time.
    Returns a description; raises BackupError naming what is wrong.
    """
    dump = os.path.join(backup_path, manifest["dump"])
    proc = subprocess.run([pg_restore, "--list", dump], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BackupError("pg_restore --list %s exited %s: %s" % (dump, proc.returncode, proc.stderr.strip()[-800:]))
    present = set(os.listdir(dump))
    missing = ["%d.dat.zst" % i for i in toc_data_ids(proc.stdout) if "%d.dat.zst" % i not in present]
    if BLOBS_TOC in present:
        with open(os.path.join(dump, BLOBS_TOC)) as fh:
            missing += [f + ".zst" for f in blobs_toc_files(fh.read()) if f + ".zst" not in present]
    if missing:
        raise BackupError("the table of contents of %s lists data files that are missing: %s"
                          % (manifest["dump"], ", ".join(missing[:10])))
    files = compressed_data_files(dump)
    run_lanes([[zstd_test_argv(chunk) for chunk in batches(lane)] for lane in lanes(files, parallel)],
              "zstd -t (decode every block, compare content checksums)", keep_going=True)
    return "TOC read (pg_restore --list), every block of %d .dat.zst files decoded and its zstd checksum matches" % (
        len(files))


FEEDS = ("stream", "unpack")


def restore_tmp_plan(manifest, backup_path, tmpdir, feed="stream"):
    """Disk a restore needs under `tmpdir`, or None when the dump restores as it is.

    `files` route (`*.dat.zst` data files), a temp directory under `tmpdir` holding `toc.dat` and:
    * feed=stream: a named pipe per data file, fed by zstd while pg_restore reads it (pgops_restore_feed);
      needs only the size of `toc.dat` / `blobs.toc`;
    * feed=unpack: every data file decompressed (the uncompressed dump size, recorded in the manifest,
      else read with `zstd -lv`).
    Returns dict(kind, needed, free, ok, tmpdir, message).
    """
    if manifest.get("compression_via") != "files":
        return None
    if feed not in FEEDS:
        raise BackupError("unknown feed %r, expected one of %s" % (feed, ", ".join(FEEDS)))
    src = os.path.join(backup_path, manifest["dump"])
    if not os.path.isdir(tmpdir):
        raise BackupError("the temp directory %s for restoring %s does not exist (restore_parallel_tmpdir / "
                          "parallel_tmpdir)" % (tmpdir, manifest["dump"]))
    st = os.statvfs(tmpdir)
    free = st.f_bavail * st.f_frsize
    reserve = 64 * 1024 * 1024
    if feed == "stream":
        toc = sum(os.path.getsize(os.path.join(src, n)) for n in os.listdir(src) if not n.endswith(".zst"))
        needed = toc + reserve
        msg = ("streaming the %d .dat.zst files of %s into pg_restore through named pipes in %s (zstd -d per file "
               "while pg_restore reads it; only toc.dat copied, %s + reserve 64.0 MiB needed, %s free)"
               % (len(compressed_data_files(src)), manifest["dump"], tmpdir, human(toc), human(free)))
        return dict(kind="fifo", needed=needed, free=free, ok=needed <= free, tmpdir=tmpdir, message=msg)
    raw = manifest.get("dump_uncompressed_size")
    if raw is None:
        raw = zstd_content_size(compressed_data_files(src))
    needed = int(raw) + reserve
    msg = ("decompressing %s for pg_restore needs %s in %s (uncompressed dump %s + reserve 64.0 MiB); %s free there"
           % (manifest["dump"], human(needed), tmpdir, human(raw), human(free)))
    return dict(kind="directory", needed=needed, uncompressed=int(raw), free=free, ok=needed <= free, tmpdir=tmpdir,
                message=msg)


def zstd_content_size(paths):
    """Sum of the decompressed sizes zstd recorded in the frame headers (`zstd -lv`)."""
    total = 0
    for chunk in batches(paths):
        proc = subprocess.run(["zstd", "-lv", "--"] + chunk, capture_output=True, text=True)
        sizes = re.findall(r"Decompressed Size:.*\((\d+) B\)", proc.stdout)
        if proc.returncode != 0 or len(sizes) != len(chunk):
            raise BackupError("cannot read the uncompressed sizes with zstd -lv (rc %s): %s"
                              % (proc.returncode, proc.stderr.strip()[-400:]))
        total += sum(int(x) for x in sizes)
    return total


def decompress_for_parallel(manifest, backup_path, jobs, tmpdir, feed="stream"):
    """Make a dump pg_restore can read (in parallel) from a temp copy when needed.

    * piped custom archive (`db.dump.zst`), jobs > 1: decompressed to a temp file so pg_restore -j can
      seek in it (needs the uncompressed size on disk);
    * `files` route directory dump (`*.dat.zst`), after checking the free space (restore_tmp_plan), a
      temp directory (0700) under `tmpdir` with toc.dat / blobs.toc copied and, per data file:
      feed=stream - a named pipe, fed once the caller starts the returned FifoFeed (nothing decompressed
      yet when this returns); feed=unpack - the file decompressed, `jobs` zstd processes at a time.

    Returns (manifest_for_restore, temp_path or None, FifoFeed or None). The caller starts the feed right
    before pg_restore, calls its finish() after, and removes temp_path (remove_path) in any case; when
    this raises after creating temp_path, the path is removed here.
    """
    if manifest.get("compression_via") == "files":
        if not tmpdir:
            raise BackupError("a directory dump with zstd-compressed data files needs a temp directory")
        plan = restore_tmp_plan(manifest, backup_path, tmpdir, feed)
        if not plan["ok"]:
            raise BackupError("not enough disk: %s. Free space or point restore_parallel_tmpdir (module option "
                              "parallel_tmpdir) at a filesystem with room" % plan["message"])
        src = os.path.join(backup_path, manifest["dump"])
        prefix = ".%s.restore." % manifest.get("backup_id", "backup")
        if feed == "stream":
            try:
                fifo = FifoFeed(src, tmpdir, prefix)
            except FeedError as exc:
                raise BackupError("%s; set restore_parallel_feed=unpack (module option parallel_feed) or "
                                  "parallel_tmpdir to a local filesystem" % exc)
            return dict(manifest, dump=fifo.path, compression_via="none"), fifo.path, fifo
        tmp = tempfile.mkdtemp(prefix=prefix, dir=tmpdir)
        try:
            for name in sorted(os.listdir(src)):
                if not name.endswith(".zst"):
                    shutil.copyfile(os.path.join(src, name), os.path.join(tmp, name))
            files = compressed_data_files(src)
            old = os.umask(0o077)
            try:
                run_lanes([[zstd_decompress_files_argv(tmp, chunk) for chunk in batches(lane)]
                           for lane in lanes(files, jobs)], "decompressing the data files of %s into %s"
                          % (manifest["dump"], tmp))
            finally:
                os.umask(old)
        except Exception:
            remove_path(tmp)
            raise
        return dict(manifest, dump=tmp, compression_via="none"), tmp, None
    if manifest["format"] != "custom" or manifest.get("compression_via") != "pipe" or jobs <= 1 or not tmpdir:
        return manifest, None, None
    tmp = os.path.join(tmpdir, ".%s.restore.dump" % manifest.get("backup_id", "backup"))
    run_checked([decompressor_argv(manifest["compressor"])], "decompressing %s for a parallel restore" % manifest["dump"],
                stdin_path=os.path.join(backup_path, manifest["dump"]), stdout_path=tmp)
    eff = dict(manifest, dump=tmp, compression_via="none")
    return eff, tmp, None
