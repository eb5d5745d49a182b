"""pgops.deploy.matview_refresh against a real PostgreSQL: ordering, concurrency legality,
strict mode, lock timeouts with a real blocking session, check mode."""

import threading
import time

from pgops_testlib import run_module, wait_for

SCHEMA = """
CREATE TABLE sales (id int PRIMARY KEY, region text NOT NULL, amount numeric NOT NULL);
INSERT INTO sales SELECT g, 'r' || (g % 5), g FROM generate_series(1, 200) g;
-- chain: mv_a <- plain view v_mid <- mv_b <- mv_c ; names chosen so name order != dependency order
CREATE MATERIALIZED VIEW z_mv_a AS SELECT region, sum(amount) AS total, count(*) AS n FROM sales GROUP BY region;
CREATE UNIQUE INDEX z_mv_a_region ON z_mv_a (region);
CREATE VIEW v_mid AS SELECT region, total * 2 AS doubled FROM z_mv_a;
CREATE MATERIALIZED VIEW m_mv_b AS SELECT region, doubled FROM v_mid;
CREATE UNIQUE INDEX m_mv_b_region ON m_mv_b (region);
CREATE MATERIALIZED VIEW a_mv_c AS SELECT count(*) AS regions FROM m_mv_b;
-- legality cases
CREATE MATERIALIZED VIEW mv_noidx AS SELECT id, amount FROM sales;
CREATE MATERIALIZED VIEW mv_expr AS SELECT id, region FROM sales;
CREATE UNIQUE INDEX mv_expr_idx ON mv_expr ((id * 1));
CREATE MATERIALIZED VIEW mv_partial AS SELECT id, region FROM sales;
CREATE UNIQUE INDEX mv_partial_idx ON mv_partial (id) WHERE id > 0;
CREATE MATERIALIZED VIEW mv_nodata AS SELECT id FROM sales WITH NO DATA;
CREATE UNIQUE INDEX mv_nodata_idx ON mv_nodata (id);
CREATE SCHEMA rep;
CREATE MATERIALIZED VIEW rep.mv_ok AS SELECT id, amount FROM sales;
CREATE UNIQUE INDEX mv_ok_id ON rep.mv_ok (id);
"""


def setup(pg_db):
    pg_db.psql(SCHEMA)
    return pg_db


def by_name(result):
    return dict((v["name"], v) for v in result["views"])


def test_dependency_order_through_plain_view(pg_db):
    setup(pg_db)
    res = run_module("matview_refresh", dict(pg_db.module_params, names=["a_mv_c", "public.m_mv_b", "z_mv_a"]))
    assert not res["failed"], res
    assert res["order"] == ["public.z_mv_a", "public.m_mv_b", "public.a_mv_c"]
    views = by_name(res)
    assert views["public.m_mv_b"]["depends_on"] == ["public.z_mv_a"]
    assert views["public.z_mv_a"]["method"] == "concurrent"
    assert views["public.a_mv_c"]["method"] == "plain"
    assert res["changed"] is True
    assert any("REFRESH MATERIALIZED VIEW CONCURRENTLY \"public\".\"z_mv_a\"" in q for q in res["queries"])
    # the refresh order is the order of the statements actually run
    refreshes = [q for q in res["queries"] if q.startswith("REFRESH")]
    assert [r.split('"')[-2] for r in refreshes] == ["z_mv_a", "m_mv_b", "a_mv_c"]


def test_include_dependants_pulls_in_downstream_views(pg_db):
    setup(pg_db)
    pg_db.psql("INSERT INTO sales VALUES (1001, 'new', 5)")
    res = run_module("matview_refresh", dict(pg_db.module_params, names=["z_mv_a"], include_dependants=True))
    assert not res["failed"], res
    assert res["order"] == ["public.z_mv_a", "public.m_mv_b", "public.a_mv_c"]
    assert pg_db.scalar("SELECT regions FROM a_mv_c") == 6
    views = by_name(res)
    assert views["public.z_mv_a"]["rows_before"] == 5 and views["public.z_mv_a"]["rows_after"] == 6


def test_all_views_by_default_and_fallback_reasons(pg_db):
    setup(pg_db)
    res = run_module("matview_refresh", dict(pg_db.module_params))
    assert not res["failed"], res
    views = by_name(res)
    assert len(views) == 8
    assert views["rep.mv_ok"]["method"] == "concurrent" and views["rep.mv_ok"]["fallback_reason"] is None
    assert "no unique index" in views["public.mv_noidx"]["fallback_reason"]
    assert "uses expressions" in views["public.mv_expr"]["fallback_reason"]
    assert "partial" in views["public.mv_partial"]["fallback_reason"]
    nodata = views["public.mv_nodata"]
    assert nodata["method"] == "plain" and "not populated" in nodata["fallback_reason"]
    assert nodata["rows_before"] is None and nodata["rows_after"] == 200
    assert pg_db.scalar("SELECT relispopulated FROM pg_class WHERE relname = 'mv_nodata'") is True
    # mv_a before mv_b before mv_c, whatever else is in between
    order = res["order"]
    assert order.index("public.z_mv_a") < order.index("public.m_mv_b") < order.index("public.a_mv_c")


def test_schema_target_and_never(pg_db):
    setup(pg_db)
    res = run_module("matview_refresh", dict(pg_db.module_params, schema="rep", concurrently="never"))
    assert not res["failed"], res
    assert res["order"] == ["rep.mv_ok"] and res["views"][0]["method"] == "plain"


def test_strict_fails_before_refreshing_anything(pg_db):
    setup(pg_db)
    pg_db.psql("INSERT INTO sales VALUES (1001, 'new', 5)")
    res = run_module("matview_refresh", dict(pg_db.module_params, names=["z_mv_a", "mv_expr"], strict=True))
    assert res["failed"]
    assert "nothing was refreshed" in res["msg"] and "public.mv_expr" in res["msg"] and "expressions" in res["msg"]
    assert not any(q.startswith("REFRESH") for q in res["queries"])
    assert pg_db.scalar("SELECT count(*) FROM z_mv_a") == 5  # still stale
    res = run_module("matview_refresh", dict(pg_db.module_params, names=["mv_noidx"], concurrently="always"))
    assert res["failed"] and "concurrently=always" in res["msg"]


def test_unknown_view_and_bad_options_fail_clearly(pg_db):
    setup(pg_db)
    res = run_module("matview_refresh", dict(pg_db.module_params, names=["nope", "sales"]))
    assert res["failed"]
    assert "public.nope does not exist" in res["msg"] and "public.sales is a table" in res["msg"]
    res = run_module("matview_refresh", dict(pg_db.module_params, names=["z_mv_a"],
                                             view_options={"z_mv_a": {"lock_timout": "1s"}}))
    assert res["failed"] and "unknown key(s) lock_timout" in res["msg"]
    res = run_module("matview_refresh", dict(pg_db.module_params, names=["z_mv_a"], lock_timeout="soon"))
    assert res["failed"] and "invalid lock_timeout 'soon'" in res["msg"]
    res = run_module("matview_refresh", dict(pg_db.module_params, names=["z_mv_a"], schema="rep"))
    assert res["failed"] and "mutually exclusive" in res["msg"]


def test_check_mode_reports_plan_without_refreshing(pg_db):
    setup(pg_db)
    pg_db.psql("INSERT INTO sales SELECT g, 'x' || g, 1 FROM generate_series(500, 509) g")
    before = pg_db.scalar("SELECT count(*) FROM z_mv_a")
    res = run_module("matview_refresh", dict(pg_db.module_params, names=["m_mv_b", "z_mv_a", "mv_nodata"]),
                     check_mode=True)
    assert not res["failed"], res
    assert res["changed"] is True
    views = by_name(res)
    assert res["order"].index("public.z_mv_a") < res["order"].index("public.m_mv_b")
    assert views["public.z_mv_a"]["planned_method"] == "concurrent"
    assert views["public.mv_nodata"]["planned_method"] == "plain"
    assert "not populated" in views["public.mv_nodata"]["fallback_reason"]
    assert all(v["method"] == "skipped" for v in res["views"])
    assert not any(q.startswith("REFRESH") for q in res["queries"])
    assert pg_db.scalar("SELECT count(*) FROM z_mv_a") == before == 5
    assert pg_db.scalar("SELECT relispopulated FROM pg_class WHERE relname = 'mv_nodata'") is False


def test_per_view_timeouts_analyze_and_vacuum(pg_db):
    setup(pg_db)
    res = run_module("matview_refresh", dict(pg_db.module_params, names=["rep.mv_ok", "mv_noidx"], vacuum=True,
                                             analyze=True, lock_timeout="3s",
                                             view_options={"rep.mv_ok": {"lock_timeout": "750ms",
                                                                         "statement_timeout": "1min"}}))
    assert not res["failed"], res
    views = by_name(res)
    assert views["rep.mv_ok"]["lock_timeout"] == "750ms" and views["public.mv_noidx"]["lock_timeout"] == "3s"
    assert views["rep.mv_ok"]["maintenance"] == ['VACUUM (ANALYZE) "rep"."mv_ok"']
    assert views["public.mv_noidx"]["maintenance"] == ['ANALYZE "public"."mv_noidx"']
    assert any("'lock_timeout', '750ms'" in q for q in res["queries"])
    assert pg_db.scalar("SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'mv_ok'")


def _hold_lock(pg_db, statement):
    """Run ``statement`` in a transaction left open (LOCK TABLE does not work on matviews)."""
    conn = pg_db.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute(statement)
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    return conn, pid


def test_lock_timeout_retries_then_fails_naming_the_blocker(pg_db):
    setup(pg_db)
    # CREATE INDEX holds SHARE on the view until commit; it conflicts with CONCURRENTLY's EXCLUSIVE lock
    conn, pid = _hold_lock(pg_db, "CREATE INDEX ON rep.mv_ok (amount)")
    try:
        res = run_module("matview_refresh", dict(pg_db.module_params, names=["rep.mv_ok"], lock_timeout="100ms",
                                                 retries=2, retry_delay=0.05))
    finally:
        conn.rollback()
        conn.close()
    assert res["failed"]
    assert "Lock timeout refreshing rep.mv_ok" in res["msg"] and "3 attempt(s)" in res["msg"]
    assert "pid %d holds ShareLock" % pid in res["msg"]
    assert res["views"][0]["attempts"] == 3 and res["views"][0]["method"] == "failed"
    assert res["changed"] is False


def test_lock_timeout_succeeds_when_blocker_releases_during_backoff(pg_db):
    setup(pg_db)
    # an uncommitted plain refresh holds ACCESS EXCLUSIVE on the view
    conn, pid = _hold_lock(pg_db, "REFRESH MATERIALIZED VIEW z_mv_a")

    def release():
        wait_for(lambda: pg_db.scalar("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'REFRESH%%'"
                                      " OR query LIKE 'SELECT count(*) FROM \"public\".\"z_mv_a\"%%'"),
                 timeout=30, interval=0.02, what="module to wait for the lock")
        time.sleep(0.3)
        conn.rollback()

    releaser = threading.Thread(target=release)
    releaser.start()
    try:
        res = run_module("matview_refresh", dict(pg_db.module_params, names=["z_mv_a"], lock_timeout="100ms",
                                                 retries=8, retry_delay=0.1))
    finally:
        releaser.join()
        conn.close()
    assert not res["failed"], res
    view = res["views"][0]
    assert view["attempts"] >= 2 and view["method"] == "concurrent"
    assert res["changed"] is True


def test_statement_timeout_fails_clearly_without_retries(pg_db):
    pg_db.psql("CREATE MATERIALIZED VIEW slow_mv AS SELECT 1 AS x FROM pg_sleep(0.01)")
    pg_db.psql("CREATE FUNCTION slow() RETURNS int LANGUAGE sql AS 'SELECT 1 FROM pg_sleep(0.5)';"
               "CREATE MATERIALIZED VIEW slower_mv AS SELECT slow() AS x")
    res = run_module("matview_refresh", dict(pg_db.module_params, names=["slow_mv", "slower_mv"], retries=3,
                                             view_options={"slower_mv": {"statement_timeout": "100ms"}}))
    assert res["failed"]
    assert "Refreshing public.slower_mv exceeded statement_timeout=100ms" in res["msg"]
    views = by_name(res)
    assert views["public.slower_mv"]["attempts"] == 1 and views["public.slower_mv"]["method"] == "failed"
    assert views["public.slow_mv"]["method"] == "plain" and views["public.slow_mv"]["rows_after"] == 1
    assert res["changed"] is True  # slow_mv was refreshed before the failure
