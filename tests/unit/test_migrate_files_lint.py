"""Version ordering, checksums, directives and every lint rule of pg_migrate (positive and negative)."""

import os
import subprocess
import sys

import pytest

from ansible_collections.pgops.deploy.plugins.module_utils.pgops_migrate_files import (
    MigrationFile,
    MigrationFileError,
    MigrationSet,
    checksum_bytes,
    normalise_version,
    parse_directives,
    version_key,
)
from ansible_collections.pgops.deploy.plugins.module_utils.pgops_migrate_lint import (
    RULES,
    blocking,
    canonical_rule,
    lint_file,
    tables_touched,
)
from pgops_testlib import ROOT


def mf(sql, name="V1__x.sql"):
    return MigrationFile("/x/" + name, name[0], name[1:].split("__")[0], "x", sql.encode())


def rules(sql, name="V1__x.sql", allow=()):
    return sorted(set(f["rule"] for f in lint_file(mf(sql, name), allow) if not f["allowed"]))


# ------------------------------------------------------------------ versions / files
def test_natural_version_ordering():
    versions = ["10", "1.10", "2", "1.2", "1", "1.1", "1_9", "3.0.1"]
    assert sorted(versions, key=version_key) == ["1", "1.1", "1.2", "1_9", "1.10", "2", "3.0.1", "10"]
    assert normalise_version("01_2") == "1.2"
    assert version_key("1_1") == version_key("1.1")


@pytest.mark.parametrize("bad", ["", "v1", "1..2", "1.a", "-1", None])
def test_invalid_versions_rejected(bad):
    with pytest.raises(MigrationFileError):
        version_key(bad)


def test_checksum_normalises_line_endings_only():
    assert checksum_bytes(b"a\nb\n") == checksum_bytes(b"a\r\nb\r\n") == checksum_bytes(b"a\rb\r")
    assert checksum_bytes(b"a\nb\n") != checksum_bytes(b"a\nb \n")


def test_directives_parsed_from_header_only():
    d = parse_directives("-- V9: doc line\n-- pgops:no-transaction\n-- pgops:allow drop-column, rename\n"
                         "--pgops:lock_timeout 5s\n-- pgops:statement_timeout 15min\n\nSELECT 1;\n"
                         "-- pgops:allow truncate\n")
    assert d == dict(no_transaction=True, allow=["drop-column", "rename"], lock_timeout="5s",
                     statement_timeout="15min")


@pytest.mark.parametrize("header,msg", [
    ("-- pgops:lock_timout 5s", "unknown directive"),
    ("-- pgops:lock_timeout soon", "expects a duration"),
    ("-- pgops:no-transaction yes", "takes no value"),
    ("-- pgops:allow", "needs at least one rule"),
    ("-- pgops: allow x", "malformed directive"),
])
def test_bad_directives_fail_naming_file_and_line(header, msg):
    with pytest.raises(MigrationFileError) as err:
        parse_directives("-- doc\n" + header + "\nSELECT 1;", "V3__x.sql")
    assert msg in str(err.value) and "V3__x.sql line 2" in str(err.value)


def test_migration_set_orders_and_validates(tmp_path):
    for name in ("V10__c.sql", "V2__b.sql", "V1.1__a.sql", "R2__b.sql", "C10__c.sql", "README.md"):
        (tmp_path / name).write_text("SELECT 1;\n")
    s = MigrationSet(str(tmp_path))
    assert [f.version for f in s.versioned] == ["1.1", "2", "10"]
    assert s.versioned[0].description == "a" and set(s.reverts) == {"2"} and set(s.verifies) == {"10"}
    (tmp_path / "R7__orphan.sql").write_text("SELECT 1;\n")
    with pytest.raises(MigrationFileError, match="without a V file.*7"):
        MigrationSet(str(tmp_path))
    os.unlink(str(tmp_path / "R7__orphan.sql"))
    (tmp_path / "V02__dup.sql").write_text("SELECT 1;\n")
    with pytest.raises(MigrationFileError, match="same version 2"):
        MigrationSet(str(tmp_path))


def test_runnable_checks_transaction_control_and_single_statement():
    with pytest.raises(MigrationFileError, match="transaction control statement 'BEGIN'"):
        mf("BEGIN;\nCREATE TABLE IF NOT EXISTS a (id int);\nCOMMIT;\n").check_runnable()
    with pytest.raises(MigrationFileError, match="exactly one statement, found 2"):
        mf("-- pgops:no-transaction\nSELECT 1;\nSELECT 2;").check_runnable()
    with pytest.raises(MigrationFileError, match="no SQL statement"):
        mf("-- nothing\n").check_runnable()
    mf("DO $$ BEGIN PERFORM 1; END $$;").check_runnable()  # BEGIN inside a body is fine


# ------------------------------------------------------------------ lint rules
@pytest.mark.parametrize("rule,bad,good", [
    ("drop-table", "DROP TABLE IF EXISTS public.t;", "DROP VIEW IF EXISTS v;"),
    ("drop-column", "ALTER TABLE t DROP COLUMN IF EXISTS c;", "ALTER TABLE t DROP CONSTRAINT IF EXISTS c;"),
    ("drop-column", "ALTER TABLE t DROP c;", "ALTER TABLE t ALTER COLUMN c DROP DEFAULT;"),
    ("drop-schema", "DROP SCHEMA IF EXISTS s CASCADE;", "CREATE SCHEMA IF NOT EXISTS s;"),
    ("drop-database", "DROP DATABASE IF EXISTS d;", "SELECT 'DROP DATABASE d';"),
    ("truncate", "TRUNCATE public.t;", "DELETE FROM t WHERE id < 100;"),
    ("rename", "ALTER TABLE t RENAME TO t2;", "ALTER TABLE t RENAME CONSTRAINT a TO b;"),
    ("rename", "ALTER TABLE t RENAME COLUMN a TO b;", "ALTER INDEX i RENAME TO j;"),
    ("alter-column-type", "ALTER TABLE t ALTER COLUMN c TYPE bigint;", "ALTER TABLE t ALTER COLUMN c SET DEFAULT 0;"),
    ("alter-column-type", "ALTER TABLE t ALTER c SET DATA TYPE text;", "ALTER TABLE t ALTER c SET STATISTICS 100;"),
    ("set-not-null", "ALTER TABLE t ALTER COLUMN c SET NOT NULL;", "ALTER TABLE t ALTER COLUMN c DROP NOT NULL;"),
    ("add-column-not-null-no-default", "ALTER TABLE t ADD COLUMN c int NOT NULL;",
     "ALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT 0;"),
    ("add-column-not-null-no-default", "ALTER TABLE t ADD COLUMN c uuid DEFAULT gen_random_uuid();",
     "ALTER TABLE t ADD COLUMN c timestamptz DEFAULT now();"),
    ("add-column-not-null-no-default", "ALTER TABLE t ADD COLUMN id2 bigserial;", "ALTER TABLE t ADD COLUMN c text;"),
    ("create-index-not-concurrently", "CREATE INDEX IF NOT EXISTS i ON public.t (c);",
     "CREATE TABLE IF NOT EXISTS public.t (c int);\nCREATE INDEX IF NOT EXISTS i ON public.t (c);"),
    ("create-index-not-concurrently", "CREATE UNIQUE INDEX IF NOT EXISTS i ON t USING btree (c);",
     "-- pgops:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON t (c);"),
    ("add-constraint-without-not-valid", "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES p (id);",
     "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES p (id) NOT VALID;"),
    ("add-constraint-without-not-valid", "ALTER TABLE t ADD CHECK (a > 0);",
     "ALTER TABLE t VALIDATE CONSTRAINT c;"),
    ("missing-if-exists", "CREATE TABLE t (id int);", "CREATE TABLE IF NOT EXISTS t (id int);"),
    ("missing-if-exists", "CREATE EXTENSION postgis;", "CREATE EXTENSION IF NOT EXISTS postgis;"),
    ("missing-if-exists", "CREATE TABLE t (id int);\nCREATE INDEX i ON t (id);",
     "CREATE TABLE IF NOT EXISTS t (id int);\nCREATE INDEX IF NOT EXISTS i ON t (id);"),
    ("missing-if-exists", "DROP VIEW v;", "DROP VIEW IF EXISTS v;"),
    ("vacuum-full", "VACUUM FULL t;", "VACUUM (ANALYZE) t;"),
    ("vacuum-full", "VACUUM (FULL, ANALYZE) t;", "VACUUM t;"),
    ("lock-table", "LOCK TABLE t IN ACCESS EXCLUSIVE MODE;", "SELECT 1 FROM t FOR UPDATE;"),
    ("concurrently-in-transaction", "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (c);",
     "-- pgops:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (c);"),
    ("concurrently-in-transaction", "DROP INDEX CONCURRENTLY IF EXISTS i;",
     "-- pgops:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS i;"),
])
def test_rule_positive_and_negative(rule, bad, good):
    assert rule in rules(bad), rules(bad)
    assert rule not in rules(good), rules(good)


def test_every_rule_is_covered_by_a_test():
    covered = {"drop-table", "drop-column", "drop-schema", "drop-database", "truncate", "rename",
               "alter-column-type", "set-not-null", "add-column-not-null-no-default",
               "create-index-not-concurrently", "add-constraint-without-not-valid", "missing-if-exists",
               "vacuum-full", "lock-table", "concurrently-in-transaction"}
    assert covered == set(RULES)


def test_text_inside_strings_comments_and_do_bodies_never_triggers():
    sql = ("-- DROP TABLE x;\nSELECT 'TRUNCATE t';\nDO $$ BEGIN EXECUTE 'VACUUM FULL t'; END $$;\n"
           "COMMENT ON TABLE t IS 'DROP TABLE t';\n")
    assert rules(sql) == []


def test_table_created_in_same_file_exempts_alter_rules():
    sql = ("CREATE TABLE IF NOT EXISTS public.fresh (id int);\n"
           "ALTER TABLE public.fresh ADD COLUMN c int NOT NULL;\n"
           "ALTER TABLE public.fresh ALTER COLUMN id SET NOT NULL;\n"
           "ALTER TABLE public.fresh ADD CONSTRAINT ck CHECK (id > 0);\n"
           "CREATE INDEX IF NOT EXISTS i ON public.fresh (c);\n")
    assert rules(sql) == []
    # ... but only after it was created.
    assert "create-index-not-concurrently" in rules(
        "CREATE INDEX IF NOT EXISTS i ON public.later (c);\nCREATE TABLE IF NOT EXISTS public.later (c int);")


def test_multiple_alter_actions_each_checked():
    assert rules("ALTER TABLE t ADD COLUMN a int, ALTER COLUMN b TYPE text, DROP COLUMN IF EXISTS c;") \
        == ["alter-column-type", "drop-column"]


def test_findings_carry_file_line_excerpt_and_safer_alternative():
    f = lint_file(mf("-- header\nSELECT 1;\n\nTRUNCATE\n  public.t;\n", "V4__t.sql"))[0]
    assert (f["rule"], f["file"], f["version"], f["line"], f["severity"]) == ("truncate", "V4__t.sql", "4", 4, "error")
    assert f["statement"] == "TRUNCATE public.t" and "safer:" in f["message"]


def test_allow_marker_option_aliases_and_blocking_modes():
    sql = "-- pgops:allow non-concurrent-index\nCREATE INDEX IF NOT EXISTS i ON t (c);\nTRUNCATE t;\n"
    found = lint_file(mf(sql))
    assert [(f["rule"], f["allowed"]) for f in found] == [("create-index-not-concurrently", True), ("truncate", False)]
    assert [f["rule"] for f in blocking(found, "error")] == ["truncate"]
    assert blocking(found, "warn") == []
    assert blocking(lint_file(mf(sql), ["truncate"]), "error") == []
    assert canonical_rule("Renaming-Column") == "rename"
    # Warnings never block.
    assert blocking(lint_file(mf("DROP VIEW v;")), "error") == []


def test_tables_touched_by_ddl_and_dml():
    f = mf("ALTER TABLE public.a ADD COLUMN IF NOT EXISTS x int;\nUPDATE b SET x = 1;\n"
           "INSERT INTO public.c VALUES (1);\nCREATE INDEX IF NOT EXISTS i ON public.a (x);\n"
           "DELETE FROM \"Odd\" WHERE true;\nSELECT * FROM z;\n")
    assert tables_touched(f) == ["public.a", "b", "public.c", '"Odd"']


def test_ansible_doc_renders_pg_migrate():
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "pgops.deploy.pg_migrate"],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    for needle in ("login_host", "drop_invalid_indexes", "EXAMPLES", "RETURN VALUES", "queries", "blocking_findings"):
        assert needle in proc.stdout, needle
    assert "ERROR" not in proc.stderr
