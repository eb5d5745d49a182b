"""pgops.deploy.pg_migrate against a real PostgreSQL 15 + PostGIS (issue: safe, locked, checksummed migrations).

Every test runs the module as its own process (run_module), like Ansible does.
"""

import os
import shutil
import threading
import time

import pytest

from pgops_testlib import ROOT, run_module

SAMPLE = os.path.join(ROOT, "examples", "santri_api", "migrations")
FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "migrations_postgis")


def params(db, path, **kw):
    p = dict(db.module_params, path=str(path), retry_delay=0.2)
    p.update(kw)
    return p


def write(dirpath, files):
    os.makedirs(str(dirpath), exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(str(dirpath), name), "w") as fh:
            fh.write(text)
    return dirpath


def fixture_copy(tmp_path):
    dest = tmp_path / "migrations"
    shutil.copytree(FIXTURE, str(dest))
    return dest


def history(db):
    return db.query("SELECT version, type, success, script FROM pgops.schema_history ORDER BY installed_rank")


def relations(db):
    return db.query("SELECT relname, relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE nspname IN ('public', 'pgops') ORDER BY 1")


@pytest.mark.skipif(not os.path.isdir(SAMPLE), reason="sample app migrations not present")
def test_sample_app_migrations_apply_from_empty_then_nothing(pg_db):
    versions = sorted(f for f in os.listdir(SAMPLE) if f.startswith("V"))
    res = run_module("pg_migrate", params(pg_db, SAMPLE))
    assert not res["failed"], res["msg"]
    assert res["changed"] is True
    assert len(res["applied"]) == len(versions)
    assert res["current_version"]["before"] is None
    assert [a["version"] for a in res["applied"]] == sorted((a["version"] for a in res["applied"]), key=int)
    assert pg_db.scalar("SELECT count(*) FROM pgops.schema_history WHERE success AND type = 'versioned'") \
        == len(versions)
    assert pg_db.scalar("SELECT to_regclass('public.santri_map') IS NOT NULL") is True
    assert pg_db.scalar("SELECT count(*) FROM pg_matviews WHERE schemaname = 'public'") >= 2
    # V4 allows the non-concurrent index with its header marker: reported, not blocking.
    assert any(f["rule"] == "create-index-not-concurrently" and f["allowed"] for f in res["findings"])

    again = run_module("pg_migrate", params(pg_db, SAMPLE))
    assert not again["failed"], again["msg"]
    assert again["changed"] is False
    assert again["applied"] == [] and again["pending"] == []
    assert again["current_version"]["before"] == again["current_version"]["after"] == res["current_version"]["after"]

    ver = run_module("pg_migrate", params(pg_db, SAMPLE, action="verify"))
    assert not ver["failed"], ver["msg"]
    assert ver["changed"] is False
    assert ver["verified"] and all(v["ok"] for v in ver["verified"])


def test_natural_order_check_mode_then_apply_and_verify(pg_db, tmp_path):
    path = fixture_copy(tmp_path)
    plan = run_module("pg_migrate", params(pg_db, path), check_mode=True)
    assert not plan["failed"], plan["msg"]
    assert plan["changed"] is True
    assert [p["version"] for p in plan["pending"]] == ["1", "2", "10"]
    assert "CREATE TABLE IF NOT EXISTS public.places" in plan["pending"][1]["sql"]
    # Check mode writes nothing, not even the history schema.
    assert pg_db.scalar("SELECT to_regnamespace('pgops') IS NULL") is True
    assert pg_db.scalar("SELECT to_regclass('public.places') IS NULL") is True

    res = run_module("pg_migrate", params(pg_db, path))
    assert not res["failed"], res["msg"]
    assert [a["script"] for a in res["applied"]] == ["V1__extensions.sql", "V2__places.sql", "V10__place_stats.sql"]
    assert all(a["attempts"] == 1 for a in res["applied"])
    assert res["current_version"] == {"before": None, "after": "10"}
    # The literal with ; '' and -- survived the splitter.
    assert pg_db.scalar("SELECT column_default FROM information_schema.columns "
                        "WHERE table_name = 'places' AND column_name = 'note'") \
        == "'semi;colon ''quoted'' -- not a comment'::text"
    assert any("CREATE INDEX IF NOT EXISTS idx_places_geom" in q for q in res["queries"])
    ver = run_module("pg_migrate", params(pg_db, path, action="verify"))
    assert not ver["failed"], ver["msg"]
    assert [v["script"] for v in ver["verified"]] == ["C2__places.sql"]

    # Check mode with nothing pending: changed=false.
    plan2 = run_module("pg_migrate", params(pg_db, path), check_mode=True)
    assert plan2["changed"] is False and plan2["pending"] == []


def test_checksum_drift_fails_naming_file_and_repair_fixes(pg_db, tmp_path):
    path = fixture_copy(tmp_path)
    assert not run_module("pg_migrate", params(pg_db, path))["failed"]
    old = pg_db.scalar("SELECT checksum FROM pgops.schema_history WHERE version = '2'")
    v2 = path / "V2__places.sql"
    v2.write_text(v2.read_text() + "\n-- edited after release\n")
    res = run_module("pg_migrate", params(pg_db, path))
    assert res["failed"]
    assert "V2__places.sql" in res["msg"] and old in res["msg"]
    assert res["drift"][0]["file_checksum"] in res["msg"]
    val = run_module("pg_migrate", params(pg_db, path, action="validate"))
    assert val["failed"] and "checksum mismatch" in val["msg"]

    # CRLF line endings alone are not drift.
    v10 = path / "V10__place_stats.sql"
    v10.write_bytes(v10.read_bytes().replace(b"\n", b"\r\n"))

    rep = run_module("pg_migrate", params(pg_db, path, action="repair"))
    assert not rep["failed"], rep["msg"]
    assert rep["changed"] is True and rep["repaired"]["checksums"] == ["2"]
    assert pg_db.scalar("SELECT checksum FROM pgops.schema_history WHERE version = '2'") != old
    again = run_module("pg_migrate", params(pg_db, path))
    assert not again["failed"], again["msg"]
    assert again["changed"] is False
    rep2 = run_module("pg_migrate", params(pg_db, path, action="repair"))
    assert rep2["changed"] is False


def test_concurrent_runs_one_gets_the_lock_other_fails_fast(pg_db, tmp_path):
    path = write(tmp_path / "m", {
        "V1__slow.sql": "CREATE TABLE IF NOT EXISTS public.t_slow (id int);\nSELECT pg_sleep(3);\n",
    })
    results = []

    def runner(name):
        results.append(run_module("pg_migrate", params(pg_db, path, lock_wait=1, application_name=name)))

    threads = [threading.Thread(target=runner, args=("runner-%d" % i,)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ok = [r for r in results if not r["failed"]]
    failed = [r for r in results if r["failed"]]
    assert len(ok) == 1 and len(failed) == 1, [r.get("msg") for r in results]
    assert "holds the migration lock" in failed[0]["msg"]
    assert "pid " in failed[0]["msg"] and "runner-" in failed[0]["msg"]
    assert failed[0]["applied"] == []
    assert history(pg_db) == [("1", "versioned", True, "V1__slow.sql")]


def test_lock_timeout_retries_behind_long_transaction_without_blocking_readers(pg_db, tmp_path):
    pg_db.psql("CREATE TABLE public.accounts (id int PRIMARY KEY, v int); "
               "INSERT INTO public.accounts SELECT g, g FROM generate_series(1, 1000) g")
    path = write(tmp_path / "m", {
        "V1__add_col.sql": "ALTER TABLE public.accounts ADD COLUMN IF NOT EXISTS flag boolean;\n"})
    blocker = pg_db.connect(autocommit=False)
    blocker.cursor().execute("SELECT count(*) FROM public.accounts")  # ACCESS SHARE held, txn open
    lock_timeout = 0.5
    done = threading.Event()
    latencies = []
    app_errors = []

    def app_reads():
        conn = pg_db.connect()
        cur = conn.cursor()
        while not done.is_set():
            t0 = time.time()
            try:
                cur.execute("SELECT v FROM public.accounts WHERE id = 7")
                cur.fetchall()
            except Exception as exc:  # any app error is a test failure
                app_errors.append(str(exc))
            latencies.append(time.time() - t0)
            time.sleep(0.02)
        conn.close()

    box = {}

    def migrate():
        box["res"] = run_module("pg_migrate", params(pg_db, path, lock_timeout="500ms", retries=10, retry_delay=0.3))
        done.set()

    reader = threading.Thread(target=app_reads)
    mig = threading.Thread(target=migrate)
    reader.start()
    mig.start()
    time.sleep(2.5)
    blocker.commit()  # the long transaction ends; the next retry gets the lock
    mig.join(60)
    done.set()
    reader.join(10)
    blocker.close()
    res = box["res"]
    assert not res["failed"], res["msg"]
    assert res["applied"][0]["attempts"] >= 2
    assert pg_db.scalar("SELECT count(*) FROM information_schema.columns WHERE table_name = 'accounts' "
                        "AND column_name = 'flag'") == 1
    assert app_errors == []
    assert len(latencies) > 10
    # Correctness bound (not a performance test): readers only ever queue for one lock_timeout window.
    assert max(latencies) < lock_timeout * 3, max(latencies)


def test_failing_migration_leaves_database_exactly_as_before(pg_db, tmp_path):
    path = write(tmp_path / "m", {
        "V1__base.sql": "CREATE TABLE IF NOT EXISTS public.a (id int);\n",
        "V2__broken.sql": "CREATE TABLE IF NOT EXISTS public.b (id int);\nINSERT INTO public.b VALUES (1);\n"
                          "ALTER TABLE public.a ADD COLUMN IF NOT EXISTS c int;\n\nSELECT\n  1 / 0;\n",
    })
    res = run_module("pg_migrate", params(pg_db, path, target="1"))
    assert not res["failed"], res["msg"]
    before = relations(pg_db)
    cols_before = pg_db.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'a'")
    res = run_module("pg_migrate", params(pg_db, path))
    assert res["failed"]
    assert "V2__broken.sql" in res["msg"] and "line 5" in res["msg"] and "division by zero" in res["msg"]
    assert res["sqlstate"] == "22012" and res["line"] == 5
    assert relations(pg_db) == before
    assert pg_db.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'a'") == cols_before
    # Only the failure record (separate transaction) was added for V2.
    assert history(pg_db) == [("1", "versioned", True, "V1__base.sql"), ("2", "versioned", False, "V2__broken.sql")]
    info = run_module("pg_migrate", params(pg_db, path, action="info"))
    assert info["current_version"]["after"] == "1" and [p["version"] for p in info["pending"]] == ["2"]
    # Fixed file: applies and the failure row is replaced in the same transaction.
    (path / "V2__broken.sql").write_text("CREATE TABLE IF NOT EXISTS public.b (id int);\n")
    fixed = run_module("pg_migrate", params(pg_db, path))
    assert not fixed["failed"], fixed["msg"]
    assert history(pg_db)[-1] == ("2", "versioned", True, "V2__broken.sql")
    assert len(history(pg_db)) == 2


def test_create_index_concurrently_and_invalid_index_detection(pg_db, tmp_path):
    pg_db.psql("CREATE TABLE public.items (id int, code text); "
               "INSERT INTO public.items SELECT g, 'c' || (g % 50) FROM generate_series(1, 500) g")
    path = write(tmp_path / "m", {
        "V1__code_idx.sql": "-- pgops:no-transaction\n"
                            "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_items_id ON public.items (id);\n",
        "V2__uniq_code.sql": "-- pgops:no-transaction\n-- pgops:lock_timeout 1s\n"
                             "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS uq_items_code ON public.items (code);\n",
    })
    res = run_module("pg_migrate", params(pg_db, path))
    assert res["failed"]
    assert res["applied"][0]["script"] == "V1__code_idx.sql" and res["applied"][0]["transactional"] is False
    assert "V2__uniq_code.sql" in res["msg"] and "INVALID index public.uq_items_code" in res["msg"]
    assert res["invalid_index"] == "public.uq_items_code"
    assert pg_db.scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.uq_items_code'::regclass") is False
    # Re-run without the option: refuses, IF NOT EXISTS would keep the broken index.
    again = run_module("pg_migrate", params(pg_db, path))
    assert again["failed"] and "exists but is INVALID" in again["msg"]
    pg_db.psql("DELETE FROM public.items WHERE id > 50")
    fixed = run_module("pg_migrate", params(pg_db, path, drop_invalid_indexes=True))
    assert not fixed["failed"], fixed["msg"]
    assert fixed["applied"][0]["invalid_indexes_dropped"] == ["public.uq_items_code"]
    assert pg_db.scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.uq_items_code'::regclass") is True


def test_no_transaction_file_must_hold_one_statement(pg_db, tmp_path):
    path = write(tmp_path / "m", {"V1__two.sql": "-- pgops:no-transaction\nSELECT 1;\nSELECT 2;\n"})
    res = run_module("pg_migrate", params(pg_db, path))
    assert res["failed"] and "exactly one statement, found 2" in res["msg"]
    assert res["applied"] == []


def test_lint_blocks_and_is_allowed_by_marker_and_allow_rules(pg_db, tmp_path):
    pg_db.psql("CREATE TABLE public.orders (id int PRIMARY KEY, customer_id int, old text); "
               "CREATE TABLE public.customers (id int PRIMARY KEY)")
    danger = ("ALTER TABLE public.orders ADD CONSTRAINT fk_orders_customer\n"
              "    FOREIGN KEY (customer_id) REFERENCES public.customers (id);\n"
              "CREATE INDEX IF NOT EXISTS idx_orders_customer ON public.orders (customer_id);\n")
    path = write(tmp_path / "m", {"V1__fk.sql": danger})
    res = run_module("pg_migrate", params(pg_db, path))
    assert res["failed"] and "Lint blocked the run" in res["msg"]
    rules = sorted(f["rule"] for f in res["blocking_findings"])
    assert rules == ["add-constraint-without-not-valid", "create-index-not-concurrently"]
    fk = [f for f in res["findings"] if f["rule"] == "add-constraint-without-not-valid"][0]
    assert fk["file"] == "V1__fk.sql" and fk["line"] == 1 and "NOT VALID" in fk["message"]
    assert pg_db.scalar("SELECT to_regnamespace('pgops') IS NOT NULL") is True
    assert pg_db.scalar("SELECT count(*) FROM pgops.schema_history") == 0
    assert pg_db.scalar("SELECT count(*) FROM pg_constraint WHERE conname = 'fk_orders_customer'") == 0

    # Only one rule allowed via option: still blocked by the other.
    part = run_module("pg_migrate", params(pg_db, path, allow_rules=["add-constraint-without-not-valid"]))
    assert part["failed"] and [f["rule"] for f in part["blocking_findings"]] == ["create-index-not-concurrently"]
    ok = run_module("pg_migrate", params(pg_db, path, allow_rules=["add-constraint-without-not-valid",
                                                                    "create-index-not-concurrently"]))
    assert not ok["failed"], ok["msg"]
    assert pg_db.scalar("SELECT count(*) FROM pg_constraint WHERE conname = 'fk_orders_customer'") == 1

    write(path, {"V2__drop_col.sql": "-- pgops:allow drop-column\nALTER TABLE public.orders DROP COLUMN IF EXISTS old;\n",
                 "V3__truncate.sql": "TRUNCATE public.orders;\n"})
    blocked = run_module("pg_migrate", params(pg_db, path))
    assert blocked["failed"] and [f["rule"] for f in blocked["blocking_findings"]] == ["truncate"]
    assert blocked["applied"] == []  # lint runs before anything is applied
    warn = run_module("pg_migrate", params(pg_db, path, lint="warn"))
    assert not warn["failed"], warn["msg"]
    assert [a["version"] for a in warn["applied"]] == ["2", "3"]

    bad = run_module("pg_migrate", params(pg_db, path, allow_rules=["no-such-rule"]))
    assert bad["failed"] and "unknown rule id(s) no-such-rule" in bad["msg"]


def test_revert_to_target_and_missing_revert_script(pg_db, tmp_path):
    path = fixture_copy(tmp_path)
    assert not run_module("pg_migrate", params(pg_db, path))["failed"]
    no_r1 = run_module("pg_migrate", params(pg_db, path, action="revert", target="0"))
    assert no_r1["failed"] and "no revert script" in no_r1["msg"] and "1" in no_r1["msg"]
    assert pg_db.scalar("SELECT to_regclass('public.mv_place_stats') IS NOT NULL") is True  # nothing reverted

    plan = run_module("pg_migrate", params(pg_db, path, action="revert", target="1"), check_mode=True)
    assert plan["changed"] is True and [p["script"] for p in plan["pending"]] == ["R10__place_stats.sql", "R2__places.sql"]
    assert pg_db.scalar("SELECT to_regclass('public.places') IS NOT NULL") is True

    res = run_module("pg_migrate", params(pg_db, path, action="revert", target="1"))
    assert not res["failed"], res["msg"]
    assert [a["script"] for a in res["applied"]] == ["R10__place_stats.sql", "R2__places.sql"]
    assert res["current_version"] == {"before": "10", "after": "1"}
    assert pg_db.scalar("SELECT to_regclass('public.places') IS NULL") is True
    assert [(v, t) for v, t, _, _ in history(pg_db)] == [("1", "versioned"), ("10", "revert"), ("2", "revert")]
    again = run_module("pg_migrate", params(pg_db, path, action="revert", target="1"))
    assert again["changed"] is False
    # Forward again re-applies 2 and 10.
    fwd = run_module("pg_migrate", params(pg_db, path))
    assert [a["version"] for a in fwd["applied"]] == ["2", "10"]


def test_baseline_adopts_existing_database(pg_db, tmp_path):
    path = fixture_copy(tmp_path)
    pg_db.psql("CREATE EXTENSION postgis")  # production already has V1
    res = run_module("pg_migrate", params(pg_db, path, action="baseline", target="1"))
    assert not res["failed"], res["msg"]
    assert res["changed"] is True and res["current_version"]["after"] == "1"
    same = run_module("pg_migrate", params(pg_db, path, action="baseline", target="1"))
    assert same["changed"] is False
    other = run_module("pg_migrate", params(pg_db, path, action="baseline", target="2"))
    assert other["failed"] and "already has a baseline" in other["msg"]
    mig = run_module("pg_migrate", params(pg_db, path))
    assert not mig["failed"], mig["msg"]
    assert [a["version"] for a in mig["applied"]] == ["2", "10"]
    assert [(v, t) for v, t, _, _ in history(pg_db)] == [("1", "baseline"), ("2", "versioned"), ("10", "versioned")]
    below = run_module("pg_migrate", params(pg_db, path, action="revert", target="0"))
    assert below["failed"] and "below the baseline" in below["msg"]


def test_out_of_order_and_missing_files_policies(pg_db, tmp_path):
    path = write(tmp_path / "m", {"V1__a.sql": "CREATE TABLE IF NOT EXISTS public.a (id int);\n",
                                  "V3__c.sql": "CREATE TABLE IF NOT EXISTS public.c (id int);\n"})
    assert not run_module("pg_migrate", params(pg_db, path))["failed"]
    write(path, {"V2__b.sql": "CREATE TABLE IF NOT EXISTS public.b (id int);\n"})
    res = run_module("pg_migrate", params(pg_db, path))
    assert res["failed"] and "V2__b.sql" in res["msg"] and "older than the current version 3" in res["msg"]
    ok = run_module("pg_migrate", params(pg_db, path, out_of_order=True))
    assert not ok["failed"] and [a["version"] for a in ok["applied"]] == ["2"]
    os.unlink(str(path / "V1__a.sql"))
    miss = run_module("pg_migrate", params(pg_db, path))
    assert miss["failed"] and "V1__a.sql" in miss["msg"] and "ignore_missing" in miss["msg"]
    assert not run_module("pg_migrate", params(pg_db, path, ignore_missing=True))["failed"]


def test_bad_input_fails_before_connecting(tmp_path):
    write(tmp_path / "m", {"V1_single_underscore.sql": "SELECT 1;\n"})
    res = run_module("pg_migrate", dict(path=str(tmp_path / "m"), login_host="127.0.0.1", login_port=1))
    assert res["failed"] and "V1_single_underscore.sql" in res["msg"] and "do not match" in res["msg"]
    write(tmp_path / "n", {"V1__x.sql": "-- pgops:lock_timout 5s\nSELECT 1;\n"})
    res = run_module("pg_migrate", dict(path=str(tmp_path / "n"), login_host="127.0.0.1", login_port=1))
    assert res["failed"] and "unknown directive 'pgops:lock_timout'" in res["msg"]
    res = run_module("pg_migrate", dict(path=str(tmp_path / "n"), action="revert", login_port=1))
    assert res["failed"] and "target" in res["msg"]


def test_error_line_comes_from_the_server_error_position_and_percent_signs_are_plain_sql(pg_db, tmp_path):
    path = write(tmp_path / "m", {"V1__x.sql": "CREATE TABLE IF NOT EXISTS public.t AS\n"
                                               "  SELECT format('%s%%', 1) AS a WHERE 'ab' LIKE 'a%';\n"
                                               "SELECT 1\n  + no_such_column;\n"})
    res = run_module("pg_migrate", params(pg_db, path))
    assert res["failed"] and res["line"] == 4 and res["sqlstate"] == "42703"
    assert pg_db.scalar("SELECT to_regclass('public.t') IS NULL") is True
    (path / "V1__x.sql").write_text("CREATE TABLE IF NOT EXISTS public.t AS\n"
                                    "  SELECT format('%s%%', 1) AS a WHERE 'ab' LIKE 'a%';\n")
    assert not run_module("pg_migrate", params(pg_db, path))["failed"]
    assert pg_db.scalar("SELECT a FROM public.t") == "1%"
