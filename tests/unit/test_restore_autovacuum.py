"""pgops_restore_run: the statements that hold autovacuum off a restored table and put its own settings back."""

from ansible_collections.pgops.deploy.plugins.module_utils.pgops_backup import restore_steps
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_restore_run import (
    option_value, pause_statement, resume_statements)


def row(**kw):
    base = dict(schema="public", name="santri", kind="r", options=None, has_toast=True, toast_options=None)
    base.update(kw)
    return base


def test_option_value_reads_a_reloptions_array():
    assert option_value(["fillfactor=70", "autovacuum_enabled=true"], "autovacuum_enabled") == "true"
    assert option_value(["fillfactor=70"], "autovacuum_enabled") is None
    assert option_value(None, "autovacuum_enabled") is None


def test_pause_covers_the_toast_table_and_quotes_names():
    assert pause_statement(row(schema="app", name='Audit "Log"')) == (
        'ALTER TABLE "app"."Audit ""Log""" SET (autovacuum_enabled = false, toast.autovacuum_enabled = false)')
    assert pause_statement(row(kind="m", has_toast=False)) == (
        'ALTER MATERIALIZED VIEW "public"."santri" SET (autovacuum_enabled = false)')


def test_resume_resets_what_the_dump_did_not_set_and_keeps_what_it_did():
    assert resume_statements(row()) == [
        'ALTER TABLE "public"."santri" RESET (autovacuum_enabled, toast.autovacuum_enabled)']
    assert resume_statements(row(options=["fillfactor=70", "autovacuum_enabled=false"],
                                 toast_options=["autovacuum_enabled=true"])) == [
        'ALTER TABLE "public"."santri" SET (autovacuum_enabled = false, toast.autovacuum_enabled = true)']
    assert resume_statements(row(options=["autovacuum_enabled=off"], has_toast=False)) == [
        'ALTER TABLE "public"."santri" SET (autovacuum_enabled = off)']
    assert resume_statements(row(toast_options=["autovacuum_enabled=true"])) == [
        'ALTER TABLE "public"."santri" RESET (autovacuum_enabled)',
        'ALTER TABLE "public"."santri" SET (toast.autovacuum_enabled = true)']


def test_a_new_database_is_restored_by_sections_anything_else_in_one_step():
    man = dict(format="directory", dump="db.dir", compression_via="none")
    steps = restore_steps(man, "/b", "santri_restore_x", "pg_restore", "psql", jobs=2, new_db=True)
    assert [s[0][0][-3:] for s in steps] == [
        ["--dbname=santri_restore_x", "--section=pre-data", "/b/db.dir"],
        ["--section=post-data", "--jobs=2", "/b/db.dir"]]
    assert "--section=data" in steps[1][0][0] and "--jobs=2" not in steps[0][0][0]
    assert len(restore_steps(man, "/b", "santri", "pg_restore", "psql", jobs=2, clean=True, new_db=False)) == 1
    piped = dict(format="custom", dump="db.dump.zst", compression_via="pipe", compressor="zstd")
    assert len(restore_steps(piped, "/b", "x", "pg_restore", "psql", new_db=True)) == 1
    plain = dict(format="plain", dump="db.sql", compression_via="none")
    assert len(restore_steps(plain, "/b", "x", "pg_restore", "psql", new_db=True)) == 1
