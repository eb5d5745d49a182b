"""Pure backup logic: compression choice, argv, preflight, retention plan, row-count comparison."""

import datetime

import pytest

from ansible_collections.pgops.deploy.plugins.module_utils import pgops_backup as b

UTC = datetime.timezone.utc
NOW = datetime.datetime(2025, 6, 10, 12, 0, 0, tzinfo=UTC)


def bk(bid, days_ago, status="verified"):
    return dict(id=bid, created=NOW - datetime.timedelta(days=days_ago), status=status)


def test_auto_compression_is_gzip_builtin_for_directory_and_zstd_pipe_for_single_files():
    assert b.resolve_compression("directory", "auto", None, 15) == ("gzip", 1, "pg_dump")
    assert b.resolve_compression("custom", "auto", None, 15) == ("zstd", 3, "pipe")
    assert b.resolve_compression("plain", "gzip", 6, 15) == ("gzip", 6, "pipe")
    assert b.resolve_compression("custom", "none", None, 15) == ("none", 0, "none")


def test_directory_zstd_needs_pg16_and_bad_levels_are_refused():
    with pytest.raises(b.BackupError, match="pg_dump >= 16"):
        b.resolve_compression("directory", "zstd", None, 15)
    assert b.resolve_compression("directory", "zstd", 5, 16) == ("zstd", 5, "pg_dump")
    with pytest.raises(b.BackupError, match="gzip level must be 1..9, got 12"):
        b.resolve_compression("custom", "gzip", 12, 15)
    with pytest.raises(b.BackupError, match="format must be one of"):
        b.resolve_compression("tar", "auto", None, 15)


def test_pg_dump_argv_parallel_directory_and_piped_custom():
    argv = b.pg_dump_argv("pg_dump", "santri", "directory", 4, "gzip", 1, "pg_dump", snapshot="00000003-1",
                          outfile="/b/db.dir")
    assert "--jobs=4" in argv and "--compress=1" in argv and "--snapshot=00000003-1" in argv
    assert argv[-1] == "--dbname=santri" and "--file=/b/db.dir" in argv
    piped = b.pg_dump_argv("pg_dump", "santri", "custom", 4, "zstd", 3, "pipe")
    assert "--compress=0" in piped and not any(a.startswith("--jobs") for a in piped)
    assert b.pg_dump_argv("pg_dump", "x", "directory", 2, "zstd", 5, "pg_dump")[3] == "--compress=zstd:5"
    assert b.compressor_argv("zstd", 3, 2) == ["zstd", "-q", "-3", "-T2", "-c"]
    assert b.dump_name("custom", "zstd", "pipe") == "db.dump.zst" and b.dump_name("directory", "gzip", "pg_dump") == "db.dir"


def test_preflight_message_has_both_numbers():
    ok, est, msg = b.preflight_space(10 * 1024 ** 3, 0.5, 2 * 1024 ** 3, 64 * 1024 ** 2)
    assert not ok and est == 5 * 1024 ** 3 + 64 * 1024 ** 2
    assert "5.1 GiB" in msg and "2.0 GiB" in msg and "does NOT fit" in msg
    assert b.preflight_space(1000, 0.6, 10 ** 6)[0] is True


def test_retention_deletes_failed_and_unverified_first_and_keeps_newest_verified():
    backups = [bk("a", 10), bk("b", 5), bk("c", 1), bk("d", 0.5, "dumped"), bk("e", 0.1, "failed"),
               bk("f", 3, "verify_failed")]
    keep, delete = b.retention_plan(backups, keep_last=2, now=NOW)
    assert sorted(k for k, _ in keep) == ["b", "c"]
    assert sorted(d for d, _ in delete) == ["a", "d", "e", "f"]
    reasons = dict(delete)
    assert "not a verified backup" in reasons["e"] and "older than the newest 2" in reasons["a"]


def test_retention_rules_combine_with_or_and_never_drop_the_newest():
    backups = [bk("a", 10), bk("b", 5), bk("c", 1)]
    keep, _ = b.retention_plan(backups, keep_last=1, keep_days=6, now=NOW)
    assert sorted(k for k, _ in keep) == ["b", "c"]
    keep, delete = b.retention_plan(backups, keep_days=0, now=NOW)
    assert [k for k, _ in keep] == ["c"] and "newest verified backup" in dict(keep)["c"]
    keep, delete = b.retention_plan(backups, now=NOW)
    assert delete == [] and len(keep) == 3


def test_compare_counts_and_tree_checksum():
    assert b.compare_counts({"public.a": 3, "public.b": 1}, {"public.a": 3, "public.b": 1}) == []
    mism = b.compare_counts({"public.a": 3, "public.b": 1}, {"public.a": 2})
    assert mism == [dict(table="public.a", expected=3, found=2), dict(table="public.b", expected=1, found=None)]
    files = {"db.dir/toc.dat": {"sha256": "aa"}, "db.dir/1.dat.gz": {"sha256": "bb"}}
    assert b.tree_checksum(files) == b.tree_checksum(dict(reversed(list(files.items()))))
    assert b.tree_checksum(files) != b.tree_checksum({"db.dir/toc.dat": {"sha256": "ab"}, "db.dir/1.dat.gz": {"sha256": "bb"}})


def test_scratch_names_fit_postgres_identifier_limit():
    name = b.scratch_name("x" * 70, "pre_restore", NOW)
    assert len(name) == 63 and name.endswith("_pre_restore_20250610120000")
    assert b.confirm_phrase("santri") == "RESTORE santri"


def test_pg_env_keeps_password_out_of_argv():
    env = b.pg_env(dict(login_host="db", login_port=5433, login_user="u", login_password="s3cret"), "santri", base={})
    assert env == dict(PGHOST="db", PGPORT="5433", PGUSER="u", PGPASSWORD="s3cret", PGAPPNAME="pgops.deploy",
                       PGDATABASE="santri")


def test_pipeline_keeps_the_failing_stage_exit_status(tmp_path):
    out = str(tmp_path / "out")
    pipe = b.Pipeline([["sh", "-c", "echo data; echo boom >&2; exit 3"], ["gzip", "-c"]], stdout_path=out)
    rcs, err = pipe.run()
    assert rcs == [3, 0] and "sh exited 3: boom" in err
    rcs, err = b.Pipeline([["echo", "ok"], ["gzip", "-c"]], stdout_path=out).run()
    assert rcs == [0, 0] and err is None


def test_latest_only_moves_forward(tmp_path):
    root = str(tmp_path)
    for bid, ts in (("old", "2025-06-01T00:00:00Z"), ("new", "2025-06-02T00:00:00Z")):
        (tmp_path / bid).mkdir()
        b.write_json(str(tmp_path / bid / "manifest.json"), dict(started_at=ts, database="x"))
    assert b.mark_latest(root, "new", dict(started_at="2025-06-02T00:00:00Z")) is True
    assert b.mark_latest(root, "old", dict(started_at="2025-06-01T00:00:00Z")) is False
    assert b.latest_verified_id(root) == "new"
