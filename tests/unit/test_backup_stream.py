"""Compressing table files while pg_dump writes them: real files, real zstd, a writer standing in for
a pg_dump worker (append, close, then the leader's `finished item` line)."""

import os
import subprocess
import time

import pytest
from ansible_collections.pgops.deploy.plugins.module_utils import pgops_backup_stream as s

ROWS = b"".join(b"%d\tSantri %d\t0101000020E6100000000000000000F03F0000000000000040\n" % (i, i) for i in range(20000))


def wait_for(cond, what, timeout=10.0):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.01)


def decoded(path):
    return subprocess.run(["zstd", "-dc", path], capture_output=True, check=True).stdout


def test_follows_a_growing_file_and_ends_only_at_finished_item(tmp_path):
    d = tmp_path / "db.dir"
    d.mkdir()
    stream = s.StreamingZstd(str(d), 1, 1, poll=0.01).start()
    half = len(ROWS) // 2
    with open(d / "4418.dat", "wb") as fh:
        fh.write(ROWS[:half])
        fh.flush()
        # The first half reaches zstd while the file is still open and growing.
        wait_for(lambda: "4418" in stream.followers and stream.followers["4418"].raw_bytes == half, "the first half")
        fh.write(ROWS[half:])
    # The file is closed but pg_dump has not said so: the follower must not end at a stale EOF.
    time.sleep(0.05)
    assert stream.followers["4418"].is_alive()
    stream.on_stderr(1, "pg_dump: finished item 4418 TABLE DATA santri_pribadi")  # not pg_dump's stderr
    time.sleep(0.05)
    assert stream.followers["4418"].is_alive()
    stream.on_stderr(0, "pg_dump: finished item 4418 TABLE DATA santri_pribadi")
    wait_for(lambda: not stream.followers["4418"].is_alive(), "the follower to end")
    assert stream.finish() == (len(ROWS), 1)
    assert sorted(os.listdir(d)) == ["4418.dat.zst"]
    assert decoded(str(d / "4418.dat.zst")) == ROWS
    assert oct(os.stat(d / "4418.dat.zst").st_mode & 0o777) == "0o600"
    assert stream.exit_status() == 0


def test_files_finished_before_they_were_seen_and_other_files_are_left_alone(tmp_path):
    d = tmp_path / "db.dir"
    d.mkdir()
    stream = s.StreamingZstd(str(d), 1, 1, poll=0.01)
    stream.on_stderr(0, "pg_dump: finished item 7 TABLE DATA pesantren_map")
    (d / "7.dat").write_bytes(b"1\tx\n\\.\n\n")
    (d / "toc.dat").write_bytes(b"PGDMP")
    (d / "blob_16500.dat").write_bytes(b"large object")
    stream.start()
    wait_for(lambda: "7" in stream.followers and not stream.followers["7"].is_alive(), "the finished file")
    assert stream.finish() == (len(b"1\tx\n\\.\n\n"), 1)
    assert sorted(os.listdir(d)) == ["7.dat.zst", "blob_16500.dat", "toc.dat"]


def test_pg_dump_exit_completes_every_file_it_left(tmp_path):
    d = tmp_path / "db.dir"
    d.mkdir()
    stream = s.StreamingZstd(str(d), 1, 2, poll=0.01).start()
    (d / "11.dat").write_bytes(ROWS)
    wait_for(lambda: "11" in stream.followers, "the watcher")
    assert stream.finish() == (len(ROWS), 1)  # finish() = pg_dump exited 0: no finished line needed
    assert decoded(str(d / "11.dat.zst")) == ROWS and not (d / "11.dat").exists()


def test_a_failing_zstd_is_named_and_keeps_the_raw_file(tmp_path):
    d = tmp_path / "db.dir"
    d.mkdir()
    stream = s.StreamingZstd(str(d), 1, 1, poll=0.01)
    stream.zstd_argv = ["zstd", "--no-such-option"]  # a real zstd that exits 1 at once
    stream.start()
    (d / "12.dat").write_bytes(ROWS)
    wait_for(lambda: "12" in stream.followers, "the watcher")
    with pytest.raises(RuntimeError, match=r"zstd exited 1 for 12\.dat"):
        stream.finish()
    assert stream.exit_status() == 1 and (d / "12.dat").read_bytes() == ROWS


def test_an_existing_zst_is_not_overwritten(tmp_path):
    d = tmp_path / "db.dir"
    d.mkdir()
    (d / "13.dat.zst").write_bytes(b"someone else's")
    (d / "13.dat").write_bytes(ROWS)
    stream = s.StreamingZstd(str(d), 1, 1, poll=0.01).start()
    wait_for(lambda: "13" in stream.followers, "the watcher")
    with pytest.raises(RuntimeError, match=r"13\.dat: .*File exists"):
        stream.finish()
    assert (d / "13.dat.zst").read_bytes() == b"someone else's" and (d / "13.dat").read_bytes() == ROWS


def test_abort_stops_every_zstd_and_removes_nothing(tmp_path):
    d = tmp_path / "db.dir"
    d.mkdir()
    stream = s.StreamingZstd(str(d), 1, 1, poll=0.01).start()
    with open(d / "14.dat", "wb") as fh:
        fh.write(ROWS)
        fh.flush()
        wait_for(lambda: "14" in stream.followers and stream.followers["14"].proc is not None, "zstd to start")
        stream.abort()
    follower = stream.followers["14"]
    assert not follower.is_alive() and follower.proc.poll() is not None
    assert (d / "14.dat").read_bytes() == ROWS
