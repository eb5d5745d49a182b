"""Pure backup logic: compression choice, argv, preflight, retention plan, row-count comparison."""

import datetime
import os

import pytest

from ansible_collections.pgops.deploy.plugins.module_utils import pgops_backup as b

UTC = datetime.timezone.utc
NOW = datetime.datetime(2025, 6, 10, 12, 0, 0, tzinfo=UTC)


def bk(bid, days_ago, status="verified"):
    return dict(id=bid, created=NOW - datetime.timedelta(days=days_ago), status=status)


def test_auto_compression_is_zstd_files_for_directory_on_pg15_and_zstd_pipe_for_single_files():
    assert b.resolve_compression("directory", "auto", None, 15, have_zstd=True) == ("zstd", 1, "files")
    assert b.resolve_compression("custom", "auto", None, 15) == ("zstd", 3, "pipe")
    assert b.resolve_compression("plain", "gzip", 6, 15) == ("gzip", 6, "pipe")
    assert b.resolve_compression("custom", "none", None, 15) == ("none", 0, "none")


def test_auto_directory_falls_back_to_builtin_gzip_without_zstd_and_stays_gzip_on_pg16():
    assert b.resolve_compression("directory", "auto", None, 15, have_zstd=False) == ("gzip", 1, "pg_dump")
    assert b.resolve_compression("directory", "auto", None, 16, have_zstd=True) == ("gzip", 1, "pg_dump")
    # Explicit gzip keeps pg_dump's built-in compression whatever is installed.
    assert b.resolve_compression("directory", "gzip", None, 15, have_zstd=True) == ("gzip", 1, "pg_dump")
    assert b.resolve_compression("directory", "gzip", 4, 17, have_zstd=False) == ("gzip", 4, "pg_dump")


def test_directory_zstd_is_files_route_before_pg16_builtin_after_and_bad_levels_are_refused():
    assert b.resolve_compression("directory", "zstd", None, 15, have_zstd=True) == ("zstd", 1, "files")
    assert b.resolve_compression("directory", "zstd", 7, 15, have_zstd=True) == ("zstd", 7, "files")
    assert b.resolve_compression("directory", "zstd", 5, 16) == ("zstd", 5, "pg_dump")
    assert b.resolve_compression("directory", "zstd", None, 16, have_zstd=False) == ("zstd", 3, "pg_dump")
    with pytest.raises(b.BackupError, match="zstd program, which was not found on the PATH"):
        b.resolve_compression("directory", "zstd", None, 15, have_zstd=False)
    with pytest.raises(b.BackupError, match="zstd level must be 1..19, got 20"):
        b.resolve_compression("directory", "zstd", 20, 15)
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


def test_files_route_argv_dumps_uncompressed_in_parallel_then_zstd_on_each_data_file():
    argv = b.pg_dump_argv("pg_dump", "santri", "directory", 2, "zstd", 1, "files", snapshot="s", outfile="/b/db.dir")
    assert "--compress=0" in argv and "--jobs=2" in argv and "--format=directory" in argv
    assert not any("zstd" in a for a in argv)
    assert b.dump_name("directory", "zstd", "files") == "db.dir"
    assert b.zstd_compress_files_argv(1, 2, ["/d/1.dat", "/d/2.dat"]) == [
        "zstd", "-q", "-1", "-T2", "--rm", "--", "/d/1.dat", "/d/2.dat"]
    assert b.zstd_test_argv(["/d/1.dat.zst"]) == ["zstd", "-q", "-t", "--", "/d/1.dat.zst"]
    assert b.zstd_decompress_files_argv("/tmp/x", ["/d/1.dat.zst"]) == [
        "zstd", "-q", "-d", "--output-dir-flat", "/tmp/x", "--", "/d/1.dat.zst"]
    assert "zstd -q -1 -T2 --rm -- /b/db.dir/*.dat" in b.files_route_commands("/b/db.dir", 1, 2)
    assert [len(x) for x in b.batches(list(range(1100)), 512)] == [512, 512, 76]


def test_data_files_exclude_the_tables_of_contents(tmp_path):
    for name in ("toc.dat", "blobs.toc", "4242.dat", "4091.dat", "blob_17437.dat", "9.dat.zst"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.rsplit("/", 1)[1] for p in b.dump_data_files(str(tmp_path))] == ["4091.dat", "4242.dat", "blob_17437.dat"]
    assert [p.rsplit("/", 1)[1] for p in b.compressed_data_files(str(tmp_path))] == ["9.dat.zst"]


def test_toc_listing_and_blobs_toc_name_every_data_file():
    listing = """;
;     Format: DIRECTORY
2; 3079 16385 EXTENSION - postgis
220; 1259 17429 TABLE public a postgres
4244; 2613 17437 BLOB - 17437 postgres
4242; 0 17429 TABLE DATA public a postgres
4243; 0 17434 TABLE DATA public Audit Log postgres
4091; 0 16698 TABLE DATA public spatial_ref_sys postgres
4250; 0 17440 MATERIALIZED VIEW DATA public mv postgres
4245; 0 0 BLOBS - BLOBS
"""
    assert b.toc_data_ids(listing) == [4242, 4243, 4091]
    assert b.blobs_toc_files("17437 blob_17437.dat\n17438 blob_17438.dat\n") == ["blob_17437.dat", "blob_17438.dat"]


def test_lanes_balance_files_by_size(tmp_path):
    sizes = {"a": 900, "b": 500, "c": 400, "d": 10}
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(b"x" * size)
    paths = [str(tmp_path / n) for n in sizes]
    out = b.lanes(paths, 2)
    assert sorted(sum(sizes[p.rsplit("/", 1)[1]] for p in lane) for lane in out) == [900, 910]
    assert b.lanes(paths[:1], 4) == [paths[:1]]


def test_compress_data_files_with_real_zstd_and_a_failing_zstd_fails(tmp_path):
    d = tmp_path / "db.dir"
    d.mkdir()
    (d / "toc.dat").write_bytes(b"PGDMP toc")
    (d / "1.dat").write_bytes(b"1\tPOINT(1 2)\n" * 5000)
    (d / "2.dat").write_bytes(b"\\.\n\n")
    raw = sum(f.stat().st_size for f in d.iterdir())
    assert b.compress_data_files(str(d), 1, 2) == (raw, 2, 0)
    assert sorted(os.listdir(d)) == ["1.dat.zst", "2.dat.zst", "toc.dat"]
    assert b.zstd_content_size(b.compressed_data_files(str(d))) == raw - len(b"PGDMP toc")
    # zstd refuses to overwrite an existing .zst: a real non-zero exit, named in the error.
    (d / "3.dat").write_bytes(b"data")
    (d / "3.dat.zst").write_bytes(b"stale")
    with pytest.raises(b.BackupError, match=r"compressing the data files .* zstd exited 1") as err:
        b.compress_data_files(str(d), 1, 1)
    assert err.value.rc == 1  # what pg_backup records as exit_status.zstd
    assert (d / "3.dat").exists()  # --rm only removes a source that was compressed completely


def test_preflight_message_has_both_numbers():
    ok, est, msg = b.preflight_space(10 * 1024 ** 3, 0.5, 2 * 1024 ** 3, 64 * 1024 ** 2)
    assert not ok and est == 5 * 1024 ** 3 + 64 * 1024 ** 2
    assert "5.1 GiB" in msg and "2.0 GiB" in msg and "does NOT fit" in msg
    assert b.preflight_space(1000, 0.6, 10 ** 6)[0] is True
    msg = b.preflight_space(1000, 1.0, 10, what="peak size of the uncompressed dump")[2]
    assert msg.startswith("estimated peak size of the uncompressed dump 1000 B")


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
                       PGDATABASE="santri", LC_MESSAGES="C")
    # A translated pg_dump would hide the --verbose lines the backup parses.
    env = b.pg_env(dict(login_host="db"), base={"LC_ALL": "de_DE.UTF-8", "LANG": "de_DE.UTF-8"})
    assert "LC_ALL" not in env and env["LC_MESSAGES"] == "C" and env["LANG"] == "de_DE.UTF-8"


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
