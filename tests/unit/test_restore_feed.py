"""pgops_restore_feed: named pipes fed by real zstd processes, read by real readers (like pg_restore's fopen)."""

import fcntl
import os
import stat
import subprocess
import threading

import pytest

from ansible_collections.pgops.deploy.plugins.module_utils.pgops_backup import (
    BackupError, decompress_for_parallel, restore_tmp_plan)
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_restore_feed import FeedError, FifoFeed
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_restore_run import RestoreRun


def make_dump(tmp_path, tables):
    """A `files`-route dump directory: toc.dat plain, every `<id>.dat` compressed by real zstd."""
    src = tmp_path / "db.dir"
    src.mkdir()
    (src / "toc.dat").write_bytes(b"PGDMP fake toc")
    for name, data in tables.items():
        (src / name).write_bytes(data)
        subprocess.run(["zstd", "-q", "--rm", str(src / name)], check=True)
    return src


def read_fifo(path, out, key):
    with open(path, "rb") as fh:  # blocks until the feeder opened the write end, like pg_restore
        out[key] = fh.read()
        out[key + ":pipe_size"] = fcntl.fcntl(fh.fileno(), getattr(fcntl, "F_GETPIPE_SZ", 1032))


def table(n):
    return b"".join(b"%d\tname %d\tPOINT(%d %d)\n" % (i, i, i, i) for i in range(n))


@pytest.fixture
def dump(tmp_path):
    return make_dump(tmp_path, {"4430.dat": table(200000), "4431.dat": table(10), "4432.dat": b""})


def test_every_pipe_gives_the_original_bytes_and_the_directory_holds_no_data(tmp_path, dump):
    feed = FifoFeed(str(dump), str(tmp_path), ".b.restore.")
    assert sorted(os.listdir(feed.path)) == ["4430.dat", "4431.dat", "4432.dat", "toc.dat"]
    assert stat.S_IMODE(os.stat(feed.path).st_mode) == 0o700
    for name in ("4430.dat", "4431.dat", "4432.dat"):
        mode = os.stat(os.path.join(feed.path, name)).st_mode
        assert stat.S_ISFIFO(mode) and stat.S_IMODE(mode) == 0o600
    assert open(os.path.join(feed.path, "toc.dat"), "rb").read() == b"PGDMP fake toc"
    feed.start()
    got = {}
    readers = [threading.Thread(target=read_fifo, args=(os.path.join(feed.path, n), got, n))
               for n in ("4430.dat", "4431.dat", "4432.dat")]
    for r in readers:
        r.start()
    for r in readers:
        r.join(30)
    assert feed.finish(restore_ok=True) == []
    assert dict((k, v) for k, v in got.items() if ":" not in k) == {
        "4430.dat": table(200000), "4431.dat": table(10), "4432.dat": b""}
    # The feeder grew each pipe from 64 KiB to 1 MiB before zstd wrote into it (fewer wake-ups per MB).
    assert [got[n + ":pipe_size"] for n in ("4430.dat", "4431.dat", "4432.dat")] == [1 << 20] * 3
    path = feed.path
    feed.remove()
    assert not os.path.exists(path)


def test_a_file_the_reader_never_opened_is_reported_and_nothing_hangs(tmp_path, dump):
    feed = FifoFeed(str(dump), str(tmp_path), ".b.restore.")
    feed.start()
    got = {}
    read_fifo(os.path.join(feed.path, "4431.dat"), got, "x")
    problems = feed.finish(restore_ok=True)
    assert got["x"] == table(10)
    assert problems == ["pg_restore never read 2 data file(s): 4430.dat.zst, 4432.dat.zst"]
    assert all(not f.is_alive() for f in feed.feeders)
    feed.remove()


def test_after_a_failed_restore_unread_files_are_not_a_second_error(tmp_path, dump):
    feed = FifoFeed(str(dump), str(tmp_path), ".b.restore.")
    feed.start()
    assert feed.finish(restore_ok=False) == []
    assert all(not f.is_alive() for f in feed.feeders)
    feed.remove()


def test_a_corrupt_file_fails_with_zstds_message(tmp_path, dump):
    victim = dump / "4430.dat.zst"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    feed = FifoFeed(str(dump), str(tmp_path), ".b.restore.")
    feed.start()
    got = {}
    read_fifo(os.path.join(feed.path, "4430.dat"), got, "x")
    problems = feed.finish(restore_ok=True)
    assert got["x"] != table(200000)
    assert any(p.startswith("zstd -d 4430.dat.zst exited 1") for p in problems), problems
    feed.remove()


def test_a_missing_temp_directory_is_refused_before_anything_is_created(tmp_path, dump):
    with pytest.raises(FeedError, match="does not exist"):
        FifoFeed(str(dump), str(tmp_path / "nope"), ".b.restore.")
    assert sorted(os.listdir(str(tmp_path))) == ["db.dir"]


def manifest():
    return dict(format="directory", dump="db.dir", compression_via="files", backup_id="b",
                dump_uncompressed_size=50 * 1024 ** 4)


def test_stream_needs_only_the_toc_on_disk_and_unpack_needs_the_uncompressed_size(tmp_path, dump):
    stream = restore_tmp_plan(manifest(), str(tmp_path), str(tmp_path), "stream")
    assert stream["kind"] == "fifo" and stream["ok"] is True
    assert stream["needed"] == len(b"PGDMP fake toc") + 64 * 1024 * 1024
    assert "streaming the 3 .dat.zst files of db.dir into pg_restore through named pipes" in stream["message"]
    unpack = restore_tmp_plan(manifest(), str(tmp_path), str(tmp_path), "unpack")
    assert unpack["kind"] == "directory" and unpack["ok"] is False and unpack["uncompressed"] == 50 * 1024 ** 4
    with pytest.raises(BackupError, match="not enough disk"):
        decompress_for_parallel(manifest(), str(tmp_path), 2, str(tmp_path), "unpack")
    with pytest.raises(BackupError, match="unknown feed 'fast'"):
        restore_tmp_plan(manifest(), str(tmp_path), str(tmp_path), "fast")
    assert sorted(os.listdir(str(tmp_path))) == ["db.dir"]


def test_a_restore_run_feeds_a_real_reader_and_reports_its_failure_but_not_the_unread_files(tmp_path, dump):
    eff, tmp, feed = decompress_for_parallel(manifest(), str(tmp_path), 2, str(tmp_path), "stream")
    assert eff["dump"] == tmp and eff["compression_via"] == "none" and os.path.basename(tmp).startswith(".b.restore.")
    out = tmp_path / "all.txt"
    # Stand-ins for pg_restore's two steps: the first reads nothing, the second every data file in order.
    steps = [([["true"]], None),
             ([["sh", "-c", "cat %s/4430.dat %s/4431.dat %s/4432.dat > %s" % (tmp, tmp, tmp, out)]], None)]
    assert RestoreRun(steps, dict(os.environ), feed=feed).run() is None
    assert out.read_bytes() == table(200000) + table(10)
    feed.remove()

    _eff, tmp, feed = decompress_for_parallel(manifest(), str(tmp_path), 2, str(tmp_path), "stream")
    steps = [([["sh", "-c", "head -c 10 %s/4431.dat >/dev/null; exit 3" % tmp]], None), ([["true"]], None)]
    run = RestoreRun(steps, dict(os.environ), feed=feed)
    assert run.run() == "sh exited 3"  # the unread files are not reported on top of the restore's own failure
    assert run.commands == ["sh -c head -c 10 %s/4431.dat >/dev/null; exit 3" % tmp, "true"]
    feed.remove()
    assert sorted(os.listdir(str(tmp_path))) == ["all.txt", "db.dir"]
