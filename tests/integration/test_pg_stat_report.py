"""pgops.deploy.pg_stat_report against a real PostgreSQL: sections with and without
pg_stat_statements, a real blocking-lock chain and a long-running query, output
files, snapshot/compare, check mode."""

import json
import threading

import psycopg2

from pgops_testlib import run_module, wait_for


def by_section(res, section):
    return [f for f in res["findings"] if f["section"] == section]


def test_all_sections_with_pg_stat_statements(pg_db):
    pg_db.psql("CREATE EXTENSION pg_stat_statements; CREATE TABLE t (id int PRIMARY KEY, v text);"
               "CREATE INDEX t_v ON t (v); CREATE INDEX t_v_dup ON t (v);"
               "CREATE MATERIALIZED VIEW t_mv AS SELECT id FROM t;"
               "INSERT INTO t SELECT g, g::text FROM generate_series(1, 500) g")
    for _ in range(3):
        pg_db.psql("SELECT pg_sleep(0.03)")
    res = run_module("pg_stat_report", dict(pg_db.module_params,
                                            thresholds={"statement_mean_ms": {"warning": 10, "critical": 10000},
                                                        "statement_min_calls": 2}))
    assert not res["failed"], res
    assert sorted(res["data"]) == sorted(["statements", "activity", "locks", "connections", "sizes", "indexes",
                                          "cache", "vacuum", "wraparound", "replication"])
    assert not any("error" in d for d in res["data"].values() if isinstance(d, dict)), res["data"]
    st = res["data"]["statements"]
    assert st["available"] and st["columns"]["total_ms"] == "total_exec_time"
    slow = [f for f in by_section(res, "statements") if "pg_sleep" in f["message"]]
    assert slow and slow[0]["severity"] == "warning" and slow[0]["value"] >= 10
    assert res["status"] in ("warning", "critical")
    assert any(r["calls"] >= 3 and "pg_sleep" in r["query"] for r in st["top_by_total"])
    dup = [f for f in by_section(res, "indexes") if "duplicates" in f["message"]]
    assert dup and "t_v, t_v_dup" in dup[0]["message"]
    kinds = dict((t["name"], t["kind"]) for t in res["data"]["sizes"]["tables"])
    assert kinds["t_mv"] == "materialized view" and kinds["t"] == "table"
    assert res["data"]["connections"]["max_connections"] == 100
    assert any(d["database"] == pg_db.name for d in res["data"]["wraparound"]["databases"])
    assert any("pg_stat_statements" in q for q in res["queries"])


def test_statements_missing_extension_is_an_info_finding(pg_db):
    res = run_module("pg_stat_report", dict(pg_db.module_params, sections=["statements", "connections"]))
    assert not res["failed"], res
    info = by_section(res, "statements")
    assert len(info) == 1 and info[0]["severity"] == "info"
    assert "pg_stat_statements is not installed in database %s" % pg_db.name in info[0]["message"]
    assert "CREATE EXTENSION pg_stat_statements" in info[0]["message"]
    assert res["status"] == "ok" and res["data"]["statements"]["available"] is False


def test_blocking_chain_long_query_and_idle_in_transaction(pg_db):
    pg_db.psql("CREATE TABLE acct (id int PRIMARY KEY, balance int); INSERT INTO acct VALUES (1, 0)")
    holder = pg_db.connect(autocommit=False)
    cur = holder.cursor()
    cur.execute("UPDATE acct SET balance = balance + 1 WHERE id = 1")
    cur.execute("SELECT pg_backend_pid()")
    holder_pid = cur.fetchone()[0]
    waiters, errors = [], []

    def blocked_update():
        conn = pg_db.connect()
        waiters.append(conn)
        try:
            conn.cursor().execute("UPDATE acct SET balance = balance + 10 WHERE id = 1")
        except psycopg2.Error as exc:
            errors.append(exc)

    def long_query():
        conn = pg_db.connect()
        waiters.append(conn)
        try:
            conn.cursor().execute("SELECT pg_sleep(30) /* pgops-long */")
        except psycopg2.Error as exc:  # cancelled by the test
            errors.append(exc)

    threads = [threading.Thread(target=f) for f in (blocked_update, blocked_update, long_query)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: pg_db.scalar("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                      "AND datname = current_database()") == 2, what="two blocked sessions")
        wait_for(lambda: pg_db.scalar("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%%pgops-long%%' "
                                      "AND state = 'active' AND now() - query_start > interval '0.3 s' "
                                      "AND pid <> pg_backend_pid()"), what="long query")
        res = run_module("pg_stat_report", dict(pg_db.module_params, sections=["activity", "locks"],
                                                thresholds={"lock_wait_seconds": {"warning": 0, "critical": 3600},
                                                            "long_running_query_seconds": 0.2,
                                                            "idle_in_transaction_seconds": 0.1}))
    finally:
        pg_db.psql("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%%pgops-long%%' "
                   "AND pid <> pg_backend_pid()")
        holder.rollback()
        holder.close()
        for t in threads:
            t.join(timeout=30)
        for c in waiters:
            c.close()
    assert not res["failed"], res
    locks = by_section(res, "locks")
    assert len(locks) == 1 and locks[0]["object"] == "pid:%d" % holder_pid, locks
    assert "blocks 2 session(s)" in locks[0]["message"] and "idle in transaction" in locks[0]["message"]
    chains = res["data"]["locks"]["chains"]
    assert chains[0]["root"] == holder_pid and len(chains[0]["blocks"]) == 2
    activity = by_section(res, "activity")
    assert any("pg_sleep(30)" in f["message"] and "running one query" in f["message"] for f in activity), activity
    assert any(f["object"] == "pid:%d" % holder_pid and "idle in transaction" in f["message"] for f in activity)
    assert res["status"] == "warning"
    # the blocked updates then went through once the holder rolled back
    assert pg_db.scalar("SELECT balance FROM acct WHERE id = 1") == 20


def test_output_files_are_written_only_when_changed(pg_db, tmp_path):
    pg_db.psql("CREATE TABLE items (id int PRIMARY KEY, name text); CREATE INDEX items_name ON items (name);"
               "INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 2000) g")
    pg_db.psql("VACUUM ANALYZE items")
    outs = dict(output_json=str(tmp_path / "r.json"), output_markdown=str(tmp_path / "r.md"),
                output_html=str(tmp_path / "r.html"))
    params = dict(pg_db.module_params, sections=["sizes", "indexes"], timestamp=False, **outs)
    res = run_module("pg_stat_report", params)
    assert not res["failed"], res
    assert res["changed"] is True and all(f["changed"] for f in res["files"].values())
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["status"] == res["status"] and "queries" not in report
    md = (tmp_path / "r.md").read_text()
    assert "## Biggest relations" in md and "| public.items | table |" in md
    assert "items_name" in md  # unused index listed
    html = (tmp_path / "r.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "public.items" in html
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    again = run_module("pg_stat_report", params)
    assert not again["failed"] and again["changed"] is False, again["files"]
    # check mode: would write a new file, but does not
    new = tmp_path / "new.md"
    chk = run_module("pg_stat_report", dict(params, output_markdown=str(new)), check_mode=True)
    assert chk["changed"] is True and chk["files"]["markdown"]["changed"] is True and not new.exists()


def test_snapshot_then_compare_detects_new_slow_query_and_regression(pg_db, tmp_path):
    pg_db.psql("CREATE EXTENSION pg_stat_statements; CREATE TABLE m (id int PRIMARY KEY, x int);"
               "CREATE INDEX m_x ON m (x); INSERT INTO m SELECT g, g FROM generate_series(1, 1000) g")
    for _ in range(3):
        pg_db.psql("SELECT pg_sleep(0.001)")
    snap = str(tmp_path / "snap.json")
    chk = run_module("pg_stat_report", dict(pg_db.module_params, sections=[], mode="snapshot", snapshot_path=snap),
                     check_mode=True)
    assert chk["changed"] is True and not (tmp_path / "snap.json").exists()
    res = run_module("pg_stat_report", dict(pg_db.module_params, sections=[], mode="snapshot", snapshot_path=snap))
    assert not res["failed"] and res["changed"] is True, res
    stored = json.loads((tmp_path / "snap.json").read_text())
    assert stored["indexes"]["public.m_x"]["idx_scan"] == 0 and stored["statements"]
    # after the "release": the same statement got slower, a new slow one appeared, m_x got used
    for _ in range(3):
        pg_db.psql("SELECT pg_sleep(0.06)")
    for _ in range(2):
        pg_db.psql("SELECT count(*), pg_sleep(0.08) FROM m /* new-report-query */")
    pg_db.psql("SET enable_seqscan = off; SELECT id FROM m WHERE x = 5")
    res = run_module("pg_stat_report", dict(pg_db.module_params, sections=[], mode="compare", snapshot_path=snap,
                                            thresholds={"statement_mean_ms": {"warning": 50, "critical": 5000}},
                                            output_markdown=str(tmp_path / "cmp.md")))
    assert not res["failed"], res
    diff = res["diff"]
    assert any("new-report-query" in q["query"] for q in diff["new_slow_queries"]), diff
    assert any("pg_sleep" in r["query"] and r["factor"] >= 2 for r in diff["regressions"]), diff
    assert {"index": "public.m_x", "idx_scan": 1} in diff["became_used"]
    compare = by_section(res, "compare")
    assert any(f["message"].startswith("New slow query") and f["severity"] == "warning" for f in compare)
    assert any("slower" in f["message"] for f in compare)
    assert res["status"] in ("warning", "critical")
    assert "Since the snapshot: new slow queries" in (tmp_path / "cmp.md").read_text()


def test_inactive_replication_slot_and_bad_input(pg_db, tmp_path):
    slot = "pgops_test_" + pg_db.name[-8:]
    pg_db.psql("SELECT pg_create_physical_replication_slot('%s', true)" % slot)
    try:
        res = run_module("pg_stat_report", dict(pg_db.module_params, sections=["replication"], fail_on="warning"))
    finally:
        pg_db.psql("SELECT pg_drop_replication_slot('%s')" % slot)
    assert res["failed"] and "status is warning (fail_on=warning)" in res["msg"]
    rep = [f for f in res["findings"] if f["object"] == slot]
    assert rep and rep[0]["severity"] == "warning" and "inactive" in rep[0]["message"]
    res = run_module("pg_stat_report", dict(pg_db.module_params, thresholds={"statement_mean": 5}))
    assert res["failed"] and "unknown threshold 'statement_mean'" in res["msg"]
    res = run_module("pg_stat_report", dict(pg_db.module_params, mode="compare", snapshot_path=str(tmp_path / "x")))
    assert res["failed"] and "run the module with mode=snapshot first" in res["msg"]
    res = run_module("pg_stat_report", dict(pg_db.module_params, output_html="/nonexistent-dir/r.html",
                                            sections=["cache"]))
    assert res["failed"] and "directory /nonexistent-dir does not exist" in res["msg"]
