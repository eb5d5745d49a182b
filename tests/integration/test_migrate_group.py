"""pg_migrate group mode: a failed deploy leaves the database exactly as it was."""

import os

from pgops_testlib import run_module

FILES = {
    "V1__regions.sql": "CREATE TABLE IF NOT EXISTS regions (id int PRIMARY KEY, name text NOT NULL);\n",
    "V2__seed.sql": "INSERT INTO regions VALUES (1, 'Jombang'), (2, 'Kediri');\n",
    "V3__broken.sql": "CREATE TABLE IF NOT EXISTS schools (id int PRIMARY KEY, region_id int);\n"
                      "SELECT no_such_function();\n",
}


def write(path, files):
    os.makedirs(str(path), exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def migrate(db, path, **kw):
    p = dict(db.module_params, path=str(path), retry_delay=0.2)
    p.update(kw)
    return run_module("pg_migrate", p)


def user_tables(db):
    return [r[0] for r in db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]


def test_group_failure_rolls_back_every_file_of_the_run(pg_db, tmp_path):
    path = write(tmp_path / "m", FILES)
    res = migrate(pg_db, path, group=True)
    assert res["failed"]
    assert "V3__broken.sql" in res["msg"] and "no_such_function" in res["msg"]
    assert "as before this group of 3 file(s)" in res["msg"]
    assert user_tables(pg_db) == []                      # V1 and V2 were rolled back with V3
    assert pg_db.scalar("SELECT count(*) FROM pgops.schema_history WHERE success") == 0


def test_without_group_earlier_files_stay_applied(pg_db, tmp_path):
    path = write(tmp_path / "m", FILES)
    res = migrate(pg_db, path, group=False)
    assert res["failed"]
    assert user_tables(pg_db) == ["regions"]
    assert pg_db.scalar("SELECT count(*) FROM regions") == 2


def test_group_applies_everything_and_a_no_transaction_file_splits_it(pg_db, tmp_path):
    files = dict(FILES)
    files["V3__broken.sql"] = "CREATE TABLE IF NOT EXISTS schools (id int PRIMARY KEY, region_id int);\n"
    files["V4__index.sql"] = ("-- pgops:no-transaction\n"
                              "CREATE INDEX CONCURRENTLY IF NOT EXISTS schools_region_idx ON schools (region_id);\n")
    files["V5__more.sql"] = "ALTER TABLE schools ADD COLUMN IF NOT EXISTS name text;\n"
    path = write(tmp_path / "m", files)
    res = migrate(pg_db, path, group=True, allow_rules=["create-index-not-concurrently"])
    assert not res["failed"], res["msg"]
    assert [a["version"] for a in res["applied"]] == ["1", "2", "3", "4", "5"]
    assert [a.get("group", False) for a in res["applied"]] == [True, True, True, False, False]
    assert [a["transactional"] for a in res["applied"]] == [True, True, True, False, True]
    assert pg_db.scalar("SELECT count(*) FROM pgops.schema_history WHERE success") == 5
    again = migrate(pg_db, path, group=True)
    assert again["changed"] is False and again["applied"] == []
