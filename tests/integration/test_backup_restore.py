"""Backup / restore (issue: fast, truly verified, restorable backups) against the real fixture cluster.

Roles run through ansible-playbook against localhost with TCP vars pointed at the
pytest cluster; modules run as their own processes. Nothing is mocked: real pg_dump,
pg_restore, zstd, gzip, gpg, tar.
"""

import json
import os
import stat
import subprocess
import threading
import time

import pytest

from pgops_testlib import find_pg_bindir, run_module, run_playbook, wait_for

PB = "tests/integration/playbooks/"
PASS = "correct horse battery staple"

DATASET = """
CREATE EXTENSION postgis;
CREATE TABLE regions (id int PRIMARY KEY, name text NOT NULL, geom geometry(Polygon, 4326));
INSERT INTO regions SELECT i, 'region ' || i, ST_MakeEnvelope(i, -8, i + 1, -7, 4326) FROM generate_series(1, 60) i;
CREATE TABLE schools (id bigserial PRIMARY KEY, region_id int REFERENCES regions, name text,
                      pt geometry(Point, 4326), score numeric(5, 2), tags text[]);
INSERT INTO schools (region_id, name, pt, score, tags)
  SELECT 1 + i % 60, 'school ' || i, ST_SetSRID(ST_MakePoint(1 + (i % 60) + 0.5, -7.5), 4326),
         (i % 10000) / 100.0, ARRAY['t' || (i % 7)]
    FROM generate_series(1, 20000) i;
CREATE INDEX schools_pt_gist ON schools USING gist (pt);
CREATE TABLE "Audit Log" (id int, note text);
INSERT INTO "Audit Log" SELECT i, repeat('x', i % 50) FROM generate_series(1, 500) i;
CREATE MATERIALIZED VIEW mv_region_stats AS
  SELECT r.id, count(s.*) AS schools FROM regions r LEFT JOIN schools s ON s.region_id = r.id GROUP BY r.id;
"""

TABLES = ["regions", "schools", '"Audit Log"', "mv_region_stats"]


def fingerprint(db):
    """Ordered-row checksum + count of every table and the matview."""
    out = {}
    for table in TABLES:
        out[table] = db.query("SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM %s t"
                              % table)[0]
    return out


@pytest.fixture
def gis_db(pg_db):
    pg_db.psql(DATASET)
    return pg_db


@pytest.fixture
def bdir(tmp_path):
    path = str(tmp_path / "backups")
    return path


def backup_vars(db, bdir, tmp_path, **extra):
    ev = dict(backup_db_name=db.name, backup_dir=bdir, backup_db_host=db.host, backup_db_port=db.port,
              backup_become=False, backup_progress_interval=1, test_out=str(tmp_path / "backup_result.json"))
    ev.update(extra)
    return ev


def restore_vars(db, bdir, tmp_path, **extra):
    ev = dict(restore_db_name=db.name, restore_backup_dir=bdir, restore_db_host=db.host, restore_db_port=db.port,
              restore_become=False, test_out=str(tmp_path / "restore_result.json"))
    ev.update(extra)
    return ev


def run_backup(db, bdir, tmp_path, **extra):
    ev = backup_vars(db, bdir, tmp_path, **extra)
    proc = run_playbook(PB + "backup_run.yml", extra_vars=ev)
    assert proc.returncode == 0, proc.stdout[-4000:]
    with open(ev["test_out"]) as fh:
        return json.load(fh), proc.stdout


FIRST_POLL = "pgops.deploy.backup : Poll the dump job (it may have finished meanwhile)"


def task_status(out, task):
    """ok / changed / skipping / fatal: the first host line under TASK [task] in a playbook's output."""
    for line in out[out.index("TASK [%s]" % task):].splitlines()[1:]:
        if line.split(":")[0] in ("ok", "changed", "skipping", "fatal", "failed"):
            return line.split(":")[0]
    raise AssertionError("no result line for %s" % task)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def largest_dump_file(result):
    man = result["manifest"]
    names = [n for n in man["files"] if n == man["dump"] or n.startswith(man["dump"] + "/")]
    return os.path.join(result["path"], max(names, key=lambda n: man["files"][n]["size"]))


def restore_temp_dirs(root):
    """Temp copies a restore / restore test decompresses into (must never outlive it)."""
    return [n for n in os.listdir(root) if ".restore." in n]


def rewrite_manifest_entry(result, victim):
    """Make the manifest agree with a damaged file, so only the read check can notice."""
    mpath = os.path.join(result["path"], "manifest.json")
    with open(mpath) as fh:
        man = json.load(fh)
    rel = os.path.relpath(victim, result["path"])
    out = subprocess.run(["sha256sum", victim], capture_output=True, text=True, check=True).stdout.split()[0]
    man["files"][rel] = dict(sha256=out, size=os.path.getsize(victim))
    with open(mpath, "w") as fh:
        json.dump(man, fh)


# ---------------------------------------------------------------- backup + verification


def test_backup_role_writes_verified_manifest_and_detects_corruption(gis_db, bdir, tmp_path):
    envfile = tmp_path / "app.env"
    envfile.write_text("DATABASE_URL=postgresql://santri_app:secret@db/santri\n")
    result, out = run_backup(gis_db, bdir, tmp_path, backup_app_state_paths=[str(envfile)],
                             backup_app_revision="abc1234")
    man = result["manifest"]
    assert result["verified"] is True and man["verified"] is True and man["status"] == "verified"
    assert "VERIFIED" in out and result["backup_id"] in out
    with open(os.path.join(result["path"], "progress.json")) as fh:
        progress = json.load(fh)
    assert progress["phase"] == "done" and progress["bytes"] == man["dump_size"]
    assert progress["tables_done"] == progress["tables_total"] == 4  # incl. spatial_ref_sys
    # Exact row counts, same snapshot as the dump; matviews separately.
    assert man["row_counts"]["public.schools"] == 20000
    assert man["row_counts"]["public.regions"] == 60
    assert man["row_counts"]["public.Audit Log"] == 500
    assert man["matview_row_counts"]["public.mv_region_stats"] == 60
    assert man["extensions"]["postgis"] == man["postgis_version"] and man["postgis_version"]
    assert man["server_version_num"] >= 150000 and man["app_revision"] == "abc1234"
    # The role's default backup_nice 10: the module, pg_dump and the server backends it found ran at it.
    assert man["priority"]["nice"] == man["priority"]["module"] == man["priority"]["pg_dump"] == 10
    assert man["priority"]["backends"] and {b["nice"] for b in man["priority"]["backends"]} == {10}
    # Default on pg_dump 15 with zstd installed: -Fd -Z0, then zstd -1 on every data file.
    assert man["format"] == "directory" and man["compressor"] == "zstd" and man["compression_level"] == 1
    assert man["compression_via"] == "files" and man["exit_status"] == {"pg_dump": 0, "zstd": 0}
    dumped = sorted(os.listdir(os.path.join(result["path"], "db.dir")))
    assert "toc.dat" in dumped and [n for n in dumped if n.endswith(".dat") and n != "toc.dat"] == []
    assert len([n for n in dumped if n.endswith(".dat.zst")]) == man["compressed_files"] == 4
    assert "(files)" in out
    assert [c["name"] for c in man["verification"]["checks"]] == ["checksums", "read"]
    # Files on disk: checksums in the manifest, secrets 0600, dirs 0700, latest points here.
    assert mode(bdir) == 0o700 and mode(result["path"]) == 0o700
    for name in ("globals.sql", "app_state.tar.gz", "manifest.json"):
        assert mode(os.path.join(result["path"], name)) == 0o600, name
    assert "globals.sql" in man["files"] and "app_state.tar.gz" in man["files"]
    assert os.readlink(os.path.join(bdir, "latest")) == result["backup_id"]
    with open(os.path.join(bdir, "latest.json")) as fh:
        assert json.load(fh)["checksum"] == result["checksum"]

    # Verify-only entry point passes on the intact backup...
    vo = dict(backup_db_name=gis_db.name, backup_dir=bdir, backup_become=False)
    ok = run_playbook(PB + "backup_verify_only.yml", extra_vars=vo)
    assert ok.returncode == 0, ok.stdout[-3000:]
    # ...and fails after one flipped byte, naming the file.
    victim = largest_dump_file(result)
    with open(victim, "r+b") as fh:
        fh.seek(os.path.getsize(victim) // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0xFF]))
    bad = run_playbook(PB + "backup_verify_only.yml", extra_vars=vo)
    assert bad.returncode != 0
    assert victim.endswith(".dat.zst")
    assert "FAILED verification" in bad.stdout and os.path.relpath(victim, result["path"]) in bad.stdout

    # A truncated dump passes `pg_restore --list` but not the read-every-block check (zstd -t).
    with open(victim, "r+b") as fh:
        fh.truncate(os.path.getsize(victim) // 2)
    read = run_module("pg_backup_verify", dict(path=result["path"], checks=["read"], update_manifest=False,
                                               mark_latest=False))
    assert read["failed"] and read["checks"][0]["name"] == "read" and read["checks"][0]["ok"] is False
    assert os.path.basename(victim) in read["checks"][0]["message"] and "premature end" in read["checks"][0]["message"]


def test_finish_after_the_dump_ended_takes_one_poll_and_main_still_follows(gis_db, bdir, tmp_path):
    """deploy.yml's halves: start, other work until the dump has ended, finish. finish polls the job
    once and goes on; main.yml (start then finish at once) follows the running dump instead."""
    ev = backup_vars(gis_db, bdir, tmp_path)
    proc = run_playbook(PB + "backup_start_finish.yml", extra_vars=ev)
    assert proc.returncode == 0, proc.stdout[-4000:]
    with open(ev["test_out"]) as fh:
        result = json.load(fh)
    assert result["verified"] is True and result["manifest"]["status"] == "verified"
    assert os.readlink(os.path.join(bdir, "latest")) == result["backup_id"]
    assert task_status(proc.stdout, FIRST_POLL) in ("ok", "changed")  # changed: the dump it reports
    assert "Wait for the dump, at most" not in proc.stdout  # the follow loop never ran

    main, main_out = run_backup(gis_db, bdir, tmp_path)
    assert main["verified"] is True and main["backup_id"] != result["backup_id"]
    assert task_status(main_out, FIRST_POLL) == "skipping"
    assert task_status(main_out, "pgops.deploy.backup : Wait for the dump, at most seconds 1") == "ok"


@pytest.mark.parametrize("fmt,compressor", [("custom", "zstd"), ("plain", "gzip")])
def test_single_file_formats_verify_with_restore_test(gis_db, bdir, fmt, compressor):
    r = run_module("pg_backup", dict(gis_db.module_params, backup_root=bdir, format=fmt, compressor=compressor))
    assert not r["failed"], r["msg"]
    assert r["manifest"]["compression_via"] == "pipe"
    assert r["manifest"]["exit_status"] == {"pg_dump": 0, compressor: 0}
    v = run_module("pg_backup_verify", dict(gis_db.module_params, login_db="postgres", path=r["path"],
                                            checks=["checksums", "read", "restore"]))
    assert not v["failed"], v["msg"]
    restore = [c for c in v["checks"] if c["name"] == "restore"][0]
    assert restore["ok"] and restore["mismatches"] == []
    # The scratch database is gone afterwards.
    assert gis_db.scalar("SELECT count(*) FROM pg_database WHERE datname = %s", (restore["scratch_db"],)) == 0
    # A piped custom archive was decompressed for pg_restore -j; the temp file is gone.
    assert [n for n in os.listdir(bdir) if n.endswith(".restore.dump")] == []


# ---------------------------------------------------------------- restore


def test_restore_round_trip_swaps_and_restores_identical_contents(gis_db, bdir, tmp_path):
    before = fingerprint(gis_db)
    result, _out = run_backup(gis_db, bdir, tmp_path)
    gis_db.psql('DELETE FROM schools WHERE id % 3 = 0; DROP TABLE "Audit Log"; DROP MATERIALIZED VIEW mv_region_stats;')
    assert fingerprint_safe(gis_db) != before

    # No confirmation: refused, with the exact phrase to pass; nothing touched.
    refused = run_playbook(PB + "restore_run.yml", extra_vars=restore_vars(gis_db, bdir, tmp_path))
    assert refused.returncode != 0
    assert "restore_confirm='RESTORE %s'" % gis_db.name in refused.stdout
    assert gis_db.scalar("SELECT count(*) FROM schools") < 20000

    # A session connected to the target blocks the swap unless terminate is asked for; it is named.
    holder = gis_db.connect()
    holder.cursor().execute("SET application_name = 'blocking-client'")
    ev = restore_vars(gis_db, bdir, tmp_path, restore_confirm="RESTORE %s" % gis_db.name, restore_globals=True)
    blocked = run_playbook(PB + "restore_run.yml", extra_vars=ev)
    assert blocked.returncode != 0 and "blocking-client" in blocked.stdout and "nothing changed yet" in blocked.stdout
    assert gis_db.scalar("SELECT count(*) FROM schools") < 20000  # swap did not happen

    ev["restore_terminate_sessions"] = True
    done = run_playbook(PB + "restore_run.yml", extra_vars=ev)
    assert done.returncode == 0, done.stdout[-4000:]
    with open(ev["test_out"]) as fh:
        rr = json.load(fh)
    assert rr["mismatches"] == [] and rr["row_counts"] == result["manifest"]["row_counts"]
    assert result["manifest"]["compression_via"] == "files" and rr["decompress"]["ok"] is True
    assert rr["decompress"]["tmpdir"] == bdir and restore_temp_dirs(bdir) == []
    assert [t["application"] for t in rr["terminated"]] == ["blocking-client"]
    assert any("already exists" in s for s in rr["globals"]["skipped"])
    assert fingerprint(gis_db) == before
    assert rr["analyze"]["duration_s"] >= 0 and gis_db.scalar(UNANALYZED_SQL) == 0  # statistics before going live
    assert 0 < rr["restore_duration_s"] < rr["duration_s"]  # the restore itself, then counts, ANALYZE, swap
    assert "time: %s s to restore, %s s with what follows" % (rr["restore_duration_s"], rr["duration_s"]) in done.stdout
    # The previous database is kept (with the damaged data) under its pre_restore name.
    prev = gis_db.cluster.database(rr["previous_db"])
    assert prev.scalar("SELECT count(*) FROM schools") < 20000
    gis_db.cluster.drop_database(rr["previous_db"])
    for name in [r[0] for r in gis_db.query("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                            (gis_db.name + "_restore_%",))]:
        gis_db.cluster.drop_database(name)


def fingerprint_safe(db):
    try:
        return fingerprint(db)
    except Exception as exc:  # a dropped table is a difference too
        return str(exc)


def test_encrypted_copy_round_trip_restores_from_archive(gis_db, bdir, tmp_path):
    before = fingerprint(gis_db)
    ctl = tmp_path / "controller"
    ctl.mkdir()
    result, _out = run_backup(gis_db, bdir, tmp_path, backup_encryption="gpg", backup_encryption_passphrase=PASS,
                              backup_copy_to_controller_dir=str(ctl))
    archive = ctl / (result["backup_id"] + ".tar.gpg")
    assert archive.exists() and result["archive"]["encryption"] == "gpg"
    assert not os.path.exists(result["path"] + ".tar.gpg")  # local staging archive removed
    data = archive.read_bytes()
    assert b"PGDMP" not in data and b"CREATE ROLE" not in data  # really encrypted

    # Wrong passphrase: fails, extracts nothing.
    other = str(tmp_path / "offsite-restore")
    wrong = run_module("pg_backup_archive", dict(state="unpacked", archive=str(archive), dest=other, encryption="gpg",
                                                 passphrase="not the passphrase at all"))
    assert wrong["failed"] and os.listdir(other) == []

    gis_db.psql("TRUNCATE schools")
    ev = restore_vars(gis_db, other, tmp_path, restore_archive=str(archive), restore_encryption="gpg",
                      restore_encryption_passphrase=PASS, restore_confirm="RESTORE %s" % gis_db.name,
                      restore_mode="clean")
    proc = run_playbook(PB + "restore_run.yml", extra_vars=ev)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert PASS not in proc.stdout
    assert fingerprint(gis_db) == before


# ---------------------------------------------------------------- guards, retention, pipes


def test_disk_full_guard_fails_before_dumping(gis_db, bdir):
    res = run_module("pg_backup", dict(gis_db.module_params, backup_root=bdir, free_bytes_override=4096))
    assert res["failed"] and "would not fit" in res["msg"]
    size = res["preflight"]["database_size"]
    assert res["preflight"]["estimate"] == int(size * 0.6) + 64 * 1024 * 1024 and res["preflight"]["free"] == 4096
    assert "4.0 KiB" in res["msg"] and "pg_database_size" in res["msg"]  # both numbers, for humans
    assert not os.path.exists(bdir)  # nothing written


def test_check_mode_writes_nothing(gis_db, bdir, tmp_path):
    proc = run_playbook(PB + "backup_run.yml", extra_vars=backup_vars(gis_db, bdir, tmp_path), check=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "would back up %s" % gis_db.name in proc.stdout and "--format=directory" in proc.stdout
    assert "--compress=0" in proc.stdout and "zstd -q -1 -T" in proc.stdout and "--rm" in proc.stdout
    assert not os.path.exists(bdir)


def test_retention_removes_failed_and_unverified_first_and_keeps_newest_verified(gis_db, bdir, tmp_path):
    params = dict(gis_db.module_params, backup_root=bdir, dump_globals=False, format="custom")
    for bid in ("r1", "r2", "r3"):
        r = run_module("pg_backup", dict(params, backup_id=bid))
        assert not r["failed"], r["msg"]
        assert not run_module("pg_backup_verify", dict(path=r["path"]))["failed"]
    unverified = run_module("pg_backup", dict(params, backup_id="r4"))
    assert unverified["manifest"]["verified"] is False
    failed = run_module("pg_backup", dict(params, backup_id="r5", app_state_paths=[str(tmp_path / "missing.env")]))
    assert failed["failed"] and "app_state_paths not found" in failed["msg"]
    with open(os.path.join(bdir, "r5", "manifest.json")) as fh:
        assert json.load(fh)["status"] == "failed"

    plan = run_module("pg_backup_retention", dict(backup_root=bdir, keep_last=2), check_mode=True)
    assert sorted(d["id"] for d in plan["deleted"]) == ["r1", "r4", "r5"]
    assert sorted(os.listdir(bdir)) == ["latest", "latest.json", "r1", "r2", "r3", "r4", "r5"]  # check mode

    done = run_module("pg_backup_retention", dict(backup_root=bdir, keep_last=2))
    assert done["changed"] and sorted(os.listdir(bdir)) == ["latest", "latest.json", "r2", "r3"]
    # keep_days=0 with keep_last=1 still keeps the newest verified one (latest).
    last = run_module("pg_backup_retention", dict(backup_root=bdir, keep_last=1, keep_days=0))
    assert [d["id"] for d in last["deleted"]] == ["r2"]
    assert sorted(os.listdir(bdir)) == ["latest", "latest.json", "r3"]
    assert os.readlink(os.path.join(bdir, "latest")) == "r3"


@pytest.mark.parametrize("fmt,dump", [("custom", "db.dump.zst"), ("directory", "db.dir")])
def test_pg_dump_failure_mid_pipe_fails_backup_and_keeps_latest(gis_db, bdir, tmp_path, fmt, dump):
    """pg_dump dies while zstd is happily compressing (custom), or before zstd compresses its files
    (directory): the backup must fail (pipefail semantics)."""
    params = dict(gis_db.module_params, backup_root=bdir, format=fmt, compressor="zstd", dump_globals=False)
    good = run_module("pg_backup", dict(params, backup_id="good"))
    assert not run_module("pg_backup_verify", dict(path=good["path"]))["failed"]

    # Hold a lock so pg_dump blocks on its LOCK TABLE, then kill its backend: pg_dump exits 1, zstd exits 0.
    locker = gis_db.connect(autocommit=False)
    locker.cursor().execute("LOCK TABLE schools IN ACCESS EXCLUSIVE MODE")
    box = {}
    thread = threading.Thread(target=lambda: box.update(r=run_module("pg_backup", dict(params, backup_id="bad"))))
    thread.start()
    pid = wait_for(lambda: gis_db.scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND query LIKE 'LOCK TABLE%%' AND wait_event_type = 'Lock'",
        (gis_db.name,)), timeout=60, what="pg_dump waiting for its table lock")
    gis_db.query("SELECT pg_terminate_backend(%s)", (pid,))
    time.sleep(0.5)
    locker.rollback()  # lets the row-count transaction finish too
    locker.close()
    thread.join(120)
    bad = box["r"]
    assert bad["failed"] and "pg_dump exited 1" in bad["msg"]
    with open(os.path.join(bdir, "bad", "manifest.json")) as fh:
        man = json.load(fh)
    assert man["status"] == "failed" and "pg_dump exited 1" in man["error"]
    assert man["compression_via"] == ("pipe" if fmt == "custom" else "files")
    if fmt == "directory":
        assert "zstd" not in man["exit_status"]  # nothing was compressed after a failed pg_dump
    assert not os.path.exists(os.path.join(bdir, "bad", dump))  # partial dump removed
    assert os.readlink(os.path.join(bdir, "latest")) == "good"


# ---------------------------------------------------------------- directory dump, zstd on the data files


def test_directory_zstd_files_route_dump_verify_restore_and_corruption(gis_db, bdir):
    """pg_dump -Fd -j2 -Z0 + zstd -1 per data file: verified, restored in parallel with exact counts;
    a corrupted or truncated .dat.zst fails the read check even when its checksum is rewritten."""
    before = fingerprint(gis_db)
    r = run_module("pg_backup", dict(gis_db.module_params, backup_root=bdir, backup_id="z", jobs=2,
                                     compress_threads=2))
    assert not r["failed"], r["msg"]
    man = r["manifest"]
    assert (man["compressor"], man["compression_level"], man["compression_via"]) == ("zstd", 1, "files")
    assert man["jobs"] == 2 and man["compress_threads"] == 2 and man["exit_status"] == {"pg_dump": 0, "zstd": 0}
    assert any("--compress=0" in c and "--jobs=2" in c for c in r["commands"])
    assert any(c.startswith("zstd -q -1 -T2 -c < ") and "--rm" in c for c in r["commands"])
    ddir = os.path.join(r["path"], "db.dir")
    names = sorted(os.listdir(ddir))
    data = [n for n in names if n.endswith(".dat.zst")]
    assert "toc.dat" in names and len(data) == man["compressed_files"] == 4
    assert sorted(n for n in man["files"] if n.startswith("db.dir/")) == sorted("db.dir/" + n for n in names)
    for name in data:  # checksums cover the final .zst files, private like the rest
        assert man["files"]["db.dir/" + name]["size"] == os.path.getsize(os.path.join(ddir, name))
        assert mode(os.path.join(ddir, name)) == 0o600
    assert man["dump_uncompressed_size"] > 2 * man["dump_size"]
    # The TOC stays readable by pg_restore and the data files decode to the recorded uncompressed size
    # (files compressed while pg_dump wrote them carry no size in their zstd header).
    toc = subprocess.run(["pg_restore", "--list", ddir], capture_output=True, text=True)
    assert toc.returncode == 0 and "TABLE DATA public schools" in toc.stdout
    raw = sum(len(subprocess.run(["zstd", "-dc", os.path.join(ddir, n)], capture_output=True, check=True).stdout)
              for n in data)
    assert raw + os.path.getsize(os.path.join(ddir, "toc.dat")) == man["dump_uncompressed_size"]
    # jobs=2: the table files went through zstd while pg_dump was still running (the watcher polls every 50 ms).
    assert 1 <= man["compressed_while_dumping"] <= man["compressed_files"]

    # Verify: checksums, TOC + zstd -t of every block, and a parallel restore test; no temp dir left.
    v = run_module("pg_backup_verify", dict(gis_db.module_params, login_db="postgres", path=r["path"],
                                            checks=["checksums", "read", "restore"], restore_jobs=2))
    assert not v["failed"], v["msg"]
    checks = dict((c["name"], c) for c in v["checks"])
    assert "4 .dat.zst files decoded" in checks["read"]["message"]
    assert checks["restore"]["mismatches"] == [] and restore_temp_dirs(bdir) == []

    # Restore (module, swap, 2 jobs) after damaging the data: dry run first, then for real.
    gis_db.psql('DELETE FROM schools WHERE id % 4 = 0; TRUNCATE "Audit Log";')
    params = dict(gis_db.module_params, login_db="postgres", backup_root=bdir, backup_id="z",
                  confirm="RESTORE %s" % gis_db.name, jobs=2, terminate_sessions=True)
    dry = run_module("pg_backup_restore", params, check_mode=True)
    assert not dry["failed"], dry["msg"]
    assert "streaming the 4 .dat.zst files of db.dir into pg_restore through named pipes" in dry["msg"]
    assert "read by pg_restore --jobs=2" in dry["msg"] and dry["decompress"]["kind"] == "fifo"
    assert restore_temp_dirs(bdir) == [] and gis_db.scalar("SELECT count(*) FROM schools") == 15000
    done = run_module("pg_backup_restore", params)
    assert not done["failed"], done["msg"]
    assert done["row_counts"] == man["row_counts"] and done["mismatches"] == []
    assert done["row_counts"]["public.schools"] == 20000 and done["row_counts"]["public.Audit Log"] == 500
    assert "--jobs=2" in done["commands"][-1] and done["commands"][0].startswith("zstd -q -d -c ")
    assert "named pipe per data file" in done["commands"][0]
    assert fingerprint(gis_db) == before and restore_temp_dirs(bdir) == []
    gis_db.cluster.drop_database(done["previous_db"])

    # parallel_feed=unpack: every data file decompressed into the temp directory first, same result.
    gis_db.psql('DELETE FROM schools WHERE id % 4 = 0; TRUNCATE "Audit Log";')
    params["parallel_feed"] = "unpack"
    done = run_module("pg_backup_restore", params)
    assert not done["failed"], done["msg"]
    assert done["decompress"]["kind"] == "directory" and done["decompress"]["uncompressed"] == man[
        "dump_uncompressed_size"]
    assert done["commands"][0].startswith("zstd -q -d --output-dir-flat") and done["mismatches"] == []
    assert fingerprint(gis_db) == before and restore_temp_dirs(bdir) == []
    gis_db.cluster.drop_database(done["previous_db"])

    # Not enough disk for the uncompressed dump (unpack): refused before anything changes, also in check mode.
    mpath = os.path.join(r["path"], "manifest.json")
    with open(mpath) as fh:
        saved = fh.read()
    huge = dict(json.loads(saved), dump_uncompressed_size=2 ** 60)
    with open(mpath, "w") as fh:
        json.dump(huge, fh)
    dbs = gis_db.scalar("SELECT count(*) FROM pg_database")
    for check in (True, False):
        full = run_module("pg_backup_restore", params, check_mode=check)
        assert full["failed"] and "not enough disk" in full["msg"] and "nothing changed" in full["msg"]
        assert "needs 1048576.0 TiB" in full["msg"]  # 2**60 B uncompressed + reserve, for humans
    assert gis_db.scalar("SELECT count(*) FROM pg_database") == dbs and restore_temp_dirs(bdir) == []
    with open(mpath, "w") as fh:
        fh.write(saved)

    # One flipped byte inside the largest .dat.zst, manifest rewritten to match: zstd's checksum catches it.
    victim = largest_dump_file(r)
    assert victim.endswith(".dat.zst")
    original = open(victim, "rb").read()
    with open(victim, "r+b") as fh:
        fh.seek(len(original) // 2)
        fh.write(bytes([original[len(original) // 2] ^ 0xFF]))
    rewrite_manifest_entry(r, victim)
    read = run_module("pg_backup_verify", dict(path=r["path"], checks=["checksums", "read"], update_manifest=False,
                                               mark_latest=False))
    checks = dict((c["name"], c) for c in read["checks"])
    assert read["failed"] and checks["checksums"]["ok"] is True and checks["read"]["ok"] is False
    assert "zstd exited 1" in checks["read"]["message"] and os.path.basename(victim) in checks["read"]["message"]
    # A restore of that file (streamed, the checksum matches the rewritten manifest) fails on zstd's error,
    # names the file and leaves the current database alone; the half-restored database is kept for inspection.
    params["parallel_feed"] = "stream"
    broken = run_module("pg_backup_restore", params)
    assert broken["failed"] and "zstd -d %s exited 1" % os.path.basename(victim) in broken["msg"], broken["msg"]
    assert "the current database was NOT touched" in broken["msg"] and restore_temp_dirs(bdir) == []
    assert fingerprint(gis_db) == before
    # The data step failed after autovacuum was held off: the kept database has every table's setting back.
    assert broken["autovacuum"]["paused"] == broken["autovacuum"]["resumed"] == 5  # 4 + spatial_ref_sys
    kept = gis_db.cluster.database(broken["restore_db"])
    assert kept.query(RELOPTIONS_SQL) == [("Audit Log", None, None), ("mv_region_stats", None, None),
                                          ("regions", None, None), ("schools", None, None)]
    gis_db.cluster.drop_database(broken["restore_db"])

    # Truncated to half (checksum rewritten again): still caught by the read check.
    with open(victim, "wb") as fh:
        fh.write(original[:len(original) // 2])
    rewrite_manifest_entry(r, victim)
    read = run_module("pg_backup_verify", dict(path=r["path"], checks=["read"], update_manifest=False,
                                               mark_latest=False))
    assert read["failed"] and "premature end" in read["checks"][0]["message"]

    # A data file the TOC needs is gone: named, even without the checksum check.
    os.unlink(victim)
    read = run_module("pg_backup_verify", dict(path=r["path"], checks=["read"], update_manifest=False,
                                               mark_latest=False))
    assert read["failed"] and "lists data files that are missing: %s" % os.path.basename(victim) in read["msg"]


RELOPTIONS_SQL = """
SELECT c.relname, c.reloptions, t.reloptions FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
 WHERE c.relkind IN ('r', 'm') AND n.nspname = 'public' AND c.relname <> 'spatial_ref_sys' ORDER BY 1"""


UNANALYZED_SQL = """
SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = 'public' AND last_analyze IS NULL"""


def test_a_restore_into_a_new_database_holds_autovacuum_off_and_puts_every_setting_back(gis_db, bdir):
    """pre-data, autovacuum off on every new table, data + post-data in parallel, then each table's own settings."""
    gis_db.psql("ALTER TABLE schools SET (fillfactor = 90, autovacuum_enabled = false);"
                "ALTER TABLE regions SET (toast.autovacuum_enabled = true, autovacuum_vacuum_scale_factor = 0.01);"
                "ALTER MATERIALIZED VIEW mv_region_stats SET (autovacuum_enabled = true)")
    source = gis_db.query(RELOPTIONS_SQL)
    assert source[3] == ("schools", ["fillfactor=90", "autovacuum_enabled=false"], None)
    before = fingerprint(gis_db)
    r = run_module("pg_backup", dict(gis_db.module_params, backup_root=bdir, backup_id="av", jobs=2))
    assert not r["failed"], r["msg"]
    assert run_module("pg_backup_verify", dict(gis_db.module_params, login_db="postgres", path=r["path"],
                                               checks=["checksums", "restore"]))["failed"] is False
    target = gis_db.name + "_copy"
    done = run_module("pg_backup_restore", dict(gis_db.module_params, login_db="postgres", path=r["path"],
                                                target_db=target, confirm="RESTORE %s" % target, jobs=2))
    assert not done["failed"], done["msg"]
    assert "--section=pre-data" in done["commands"][1] and "--jobs" not in done["commands"][1]
    assert "--section=data --section=post-data --jobs=2" in done["commands"][2]
    assert done["autovacuum"] == dict(paused=5, resumed=5, skipped=[], errors=[])  # 4 + spatial_ref_sys
    paused = [q for q in done["queries"] if "autovacuum_enabled = false" in q]
    assert 'ALTER TABLE "public"."schools" SET (autovacuum_enabled = false, toast.autovacuum_enabled = false)' in paused
    assert 'ALTER TABLE "public"."schools" SET (autovacuum_enabled = false)' in done["queries"]  # its own value
    copy = gis_db.cluster.database(target)
    assert copy.query(RELOPTIONS_SQL) == source
    assert fingerprint(copy) == before
    # Planner statistics before it goes live: every table analyzed by vacuumdb, not left to autovacuum.
    assert "--analyze-only" in done["analyze"]["command"] and "--jobs=2" in done["analyze"]["command"]
    assert copy.scalar(UNANALYZED_SQL) == 0
    assert copy.scalar("SELECT count(*) FROM pg_stats WHERE schemaname = 'public' AND tablename = 'schools'") > 0
    gis_db.cluster.drop_database(target)

    # Clean mode restores in place in one step: no sections, autovacuum untouched.
    clean = run_module("pg_backup_restore", dict(gis_db.module_params, login_db="postgres", path=r["path"],
                                                 confirm="RESTORE %s" % gis_db.name, mode="clean", jobs=2,
                                                 analyze=False))
    assert not clean["failed"], clean["msg"]
    assert not any("--section" in c for c in clean["commands"]) and clean["autovacuum"]["paused"] == 0
    assert "analyze" not in clean and gis_db.scalar(UNANALYZED_SQL) > 0  # analyze=false: left to autovacuum
    assert gis_db.query(RELOPTIONS_SQL) == source and fingerprint(gis_db) == before


def test_a_failed_analyze_stops_before_the_swap_and_keeps_the_restored_database(gis_db, bdir, tmp_path):
    """vacuumdb failing (injected: the real pg_restore and psql, a vacuumdb that exits 1) must not swap."""
    r = run_module("pg_backup", dict(gis_db.module_params, backup_root=bdir, backup_id="an", jobs=2))
    assert not r["failed"], r["msg"]
    assert run_module("pg_backup_verify", dict(path=r["path"]))["failed"] is False
    full = r["manifest"]["row_counts"]
    gis_db.psql("DELETE FROM schools WHERE id % 2 = 0")
    damaged = fingerprint(gis_db)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("pg_restore", "psql"):
        os.symlink(os.path.join(find_pg_bindir(), name), str(bindir / name))
    fake = bindir / "vacuumdb"
    fake.write_text("#!/bin/sh\necho 'vacuumdb: error: processing of database failed: out of disk' >&2\nexit 1\n")
    fake.chmod(0o755)
    failed = run_module("pg_backup_restore", dict(gis_db.module_params, login_db="postgres", path=r["path"],
                                                  confirm="RESTORE %s" % gis_db.name, pg_bindir=str(bindir)))
    assert failed["failed"] and "ANALYZE of the restored database" in failed["msg"], failed["msg"]
    assert "not swapping" in failed["msg"] and "out of disk" in failed["msg"]
    assert fingerprint(gis_db) == damaged  # the live database was not touched
    kept = gis_db.cluster.database(failed["restore_db"])
    assert kept.scalar('SELECT count(*) FROM schools') == full["public.schools"]
    gis_db.cluster.drop_database(failed["restore_db"])


def test_an_unknown_parallel_feed_is_refused_before_anything_changes(gis_db, bdir, tmp_path):
    r = run_module("pg_backup", dict(gis_db.module_params, backup_root=bdir, backup_id="feed", jobs=2))
    assert not r["failed"], r["msg"]
    dbs = gis_db.scalar("SELECT count(*) FROM pg_database")
    bad = run_module("pg_backup_restore", dict(gis_db.module_params, login_db="postgres", path=r["path"],
                                               confirm="RESTORE %s" % gis_db.name, parallel_feed="fast"))
    assert bad["failed"] and "parallel_feed" in bad["msg"] and "stream, unpack" in bad["msg"], bad["msg"]
    proc = run_playbook(PB + "restore_run.yml", extra_vars=restore_vars(
        gis_db, bdir, tmp_path, restore_confirm="RESTORE %s" % gis_db.name, restore_backup_id="feed",
        restore_parallel_feed="fast"))
    assert proc.returncode != 0 and "restore_parallel_feed" in proc.stdout and "fast" in proc.stdout
    assert gis_db.scalar("SELECT count(*) FROM pg_database") == dbs and restore_temp_dirs(bdir) == []


def test_compress_while_dumping_false_compresses_after_pg_dump(gis_db, bdir):
    r = run_module("pg_backup", dict(gis_db.module_params, backup_root=bdir, backup_id="after", jobs=2,
                                     compress_threads=2, compress_while_dumping=False))
    assert not r["failed"], r["msg"]
    man = r["manifest"]
    assert man["compression_via"] == "files" and man["compressed_while_dumping"] == 0
    assert man["compressed_files"] == 4 and man["exit_status"] == {"pg_dump": 0, "zstd": 0}
    assert r["commands"][-1].startswith("zstd -q -1 -T2 --rm -- ")
    assert not [n for n in os.listdir(r["dump_path"]) if n.endswith(".dat") and n != "toc.dat"]
    v = run_module("pg_backup_verify", dict(gis_db.module_params, login_db="postgres", path=r["path"],
                                            checks=["checksums", "read", "restore"]))
    assert not v["failed"], v["msg"]


def test_nice_lowers_the_priority_of_the_dump_and_of_the_backends_serving_it(gis_db, bdir):
    """nice=12: while pg_dump waits for a table lock the test holds, its server backend (found by its
    application_name) and the module's row-count backend already run at nice 12, read from the kernel."""
    holder = gis_db.connect(autocommit=False)
    holder.cursor().execute("LOCK TABLE schools IN ACCESS EXCLUSIVE MODE")
    done = {}
    worker = threading.Thread(target=lambda: done.update(r=run_module("pg_backup", dict(
        gis_db.module_params, backup_root=bdir, backup_id="nice", jobs=2, compress_threads=2, nice=12))))
    worker.start()
    try:
        def waiting_backends():
            rows = gis_db.query("SELECT pid, application_name FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                "AND datname = current_database()")
            names = sorted(r[1] for r in rows)
            return rows if len(rows) == 2 and names == ["pgops.deploy", "pgops.deploy pg_dump nice"] else None

        blocked = wait_for(waiting_backends, timeout=30, what="pg_dump and the row counts waiting for the lock")
        wait_for(lambda: {os.getpriority(os.PRIO_PROCESS, pid) for pid, _name in blocked} == {12}, timeout=10,
                 what="both backends reniced to 12")
    finally:
        holder.rollback()
        holder.close()
        worker.join(120)
    r = done["r"]
    assert not r["failed"], r["msg"]
    prio = r["priority"]
    assert (prio["nice"], prio["module"], prio["pg_dump"], prio["skipped"]) == (12, 12, 12, [])
    reniced = dict((b["pid"], b["nice"]) for b in prio["backends"])
    assert {pid for pid, _name in blocked} <= set(reniced) and set(reniced.values()) == {12}
    assert r["manifest"]["priority"] == prio
    # The backends exited with the dump; the test's own connections were never touched.
    assert gis_db.scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE '% pg_dump nice'") == 0

    plain = run_module("pg_backup", dict(gis_db.module_params, backup_root=bdir, backup_id="plain", jobs=2))
    assert not plain["failed"] and "priority" not in plain and "priority" not in plain["manifest"]
    bad = run_module("pg_backup", dict(gis_db.module_params, backup_root=bdir, backup_id="bad", nice=20))
    assert bad["failed"] and "nice must be between 0 (unchanged) and 19 (lowest priority), got 20" in bad["msg"]
    assert not os.path.exists(os.path.join(bdir, "bad"))


def test_directory_gzip_still_works_and_auto_uses_it_without_zstd(gis_db, bdir, monkeypatch):
    r = run_module("pg_backup", dict(gis_db.module_params, backup_root=bdir, backup_id="gz", compressor="gzip"))
    assert not r["failed"], r["msg"]
    man = r["manifest"]
    assert (man["compressor"], man["compression_level"], man["compression_via"]) == ("gzip", 1, "pg_dump")
    assert man["exit_status"] == {"pg_dump": 0} and "dump_uncompressed_size" not in man
    assert any(n.endswith(".dat.gz") for n in man["files"]) and not any(n.endswith(".zst") for n in man["files"])
    v = run_module("pg_backup_verify", dict(path=r["path"]))
    assert not v["failed"], v["msg"]

    # A db host without the zstd program (PATH = the PostgreSQL bindir only): auto is gzip as before,
    # explicit zstd on a directory dump is refused before anything is written.
    monkeypatch.setenv("PATH", find_pg_bindir())
    auto = run_module("pg_backup", dict(gis_db.module_params, backup_root=bdir, backup_id="nozstd"))
    assert not auto["failed"], auto["msg"]
    assert auto["manifest"]["compression_via"] == "pg_dump" and auto["manifest"]["compressor"] == "gzip"
    refused = run_module("pg_backup", dict(gis_db.module_params, backup_root=bdir, backup_id="refused",
                                           compressor="zstd"))
    assert refused["failed"] and "zstd program, which was not found" in refused["msg"]
    assert not os.path.exists(os.path.join(bdir, "refused"))


def test_auto_falls_back_to_gzip_when_the_uncompressed_dump_would_not_fit(gis_db, bdir):
    size = gis_db.scalar("SELECT pg_database_size(current_database())")
    reserve = 64 * 1024 * 1024
    free = int(size * 0.8) + reserve  # compressed estimate (x0.6) fits, uncompressed peak (x1.0) does not
    params = dict(gis_db.module_params, backup_root=bdir, free_bytes_override=free)
    auto = run_module("pg_backup", params, check_mode=True)
    assert not auto["failed"], auto["msg"]
    assert "uncompressed dump" in auto["compression_fallback"] and "does NOT fit" in auto["compression_fallback"]
    assert "using gzip (pg_dump built-in) instead of zstd" in json.dumps(auto.get("warnings", []))
    assert any("--compress=1" in c for c in auto["commands"]) and not any("zstd" in c for c in auto["commands"])
    explicit = run_module("pg_backup", dict(params, compressor="zstd"), check_mode=True)
    assert explicit["failed"] and "backup_raw_size_factor" in explicit["msg"] and "compressor=gzip" in explicit["msg"]
    assert not os.path.exists(bdir)
