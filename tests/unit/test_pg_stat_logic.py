"""Pure logic of pg_stat_report: version column mapping, thresholds, findings, lock trees, snapshot diff."""

import pytest

from ansible_collections.pgops.deploy.plugins.module_utils import pgops_stat_eval as ev
from ansible_collections.pgops.deploy.plugins.module_utils import pgops_stat_queries as q


@pytest.mark.parametrize("version,total,mean,plan,blk", [
    (120016, "total_time", "mean_time", None, "blk_read_time"),
    (130000, "total_exec_time", "mean_exec_time", "total_plan_time", "blk_read_time"),
    (150010, "total_exec_time", "mean_exec_time", "total_plan_time", "blk_read_time"),
    (170002, "total_exec_time", "mean_exec_time", "total_plan_time", "shared_blk_read_time"),
])
def test_statement_columns_by_server_version(version, total, mean, plan, blk):
    cols = q.statements_columns(version)
    assert (cols["total_ms"], cols["mean_ms"], cols["plan_total_ms"], cols["blk_read_ms"]) == (total, mean, plan, blk)


def test_statements_select_uses_null_for_missing_columns_and_orders():
    sql = q.statements_select(120000, "mean")
    assert "NULL::float8 AS plan_total_ms" in sql and "s.total_time AS total_ms" in sql
    assert sql.rstrip().endswith("ORDER BY mean_ms DESC NULLS LAST LIMIT %s")
    assert "s.shared_blk_write_time AS blk_write_ms" in q.statements_select(170000, "calls")


def test_merge_thresholds_overrides_and_validation():
    th = ev.merge_thresholds({"statement_mean_ms": {"critical": None}, "lock_wait_seconds": 2,
                              "statement_min_calls": 5})
    assert th["statement_mean_ms"] == dict(warning=20, critical=None, direction="high", unit="ms")
    assert th["lock_wait_seconds"]["warning"] == 2 and th["lock_wait_seconds"]["critical"] == 60
    assert th["statement_min_calls"] == 5
    for bad, needle in [({"nope": 1}, "unknown threshold 'nope'"),
                        ({"xid_age": {"warn": 1}}, "must be a number or a dict"),
                        ({"xid_age": {"warning": "x"}}, "must be a number or null"),
                        ({"cache_min_blocks": "many"}, "must be a number")]:
        with pytest.raises(ev.ThresholdError) as err:
            ev.merge_thresholds(bad)
        assert needle in str(err.value)


def test_evaluate_high_and_low_directions():
    th = ev.merge_thresholds({})
    assert ev.evaluate(19.9, th["statement_mean_ms"]) is None
    assert ev.evaluate(20, th["statement_mean_ms"]) == "warning"
    assert ev.evaluate(1000, th["statement_mean_ms"]) == "critical"
    assert ev.evaluate(99.5, th["cache_hit_percent"]) is None
    assert ev.evaluate(98.0, th["cache_hit_percent"]) == "warning"
    assert ev.evaluate(90.0, th["cache_hit_percent"]) == "critical"
    assert ev.evaluate(None, th["xid_age"]) is None
    assert ev.evaluate(10 ** 9, dict(warning=None, critical=None)) is None


def test_worst_status_ignores_info():
    f = lambda s: dict(severity=s)  # noqa: E731
    assert ev.worst_status([]) == "ok"
    assert ev.worst_status([f("info")]) == "ok"
    assert ev.worst_status([f("info"), f("warning")]) == "warning"
    assert ev.worst_status([f("critical"), f("warning")]) == "critical"


def test_lock_trees_follow_chains_to_the_root_and_survive_cycles():
    blocked = [dict(pid=2, blocked_by=[1]), dict(pid=3, blocked_by=[2]), dict(pid=4, blocked_by=[1])]
    assert ev.lock_trees(blocked) == {1: [2, 3, 4]}
    cyc = ev.lock_trees([dict(pid=5, blocked_by=[6]), dict(pid=6, blocked_by=[5])])
    assert cyc == {5: [6]}


def test_statement_findings_respect_min_calls_and_dedupe():
    th = ev.merge_thresholds({"statement_min_calls": 10})
    row = dict(queryid=7, mean_ms=30.0, calls=50, query="SELECT 1")
    data = dict(available=True, top_by_mean=[row, dict(row, queryid=8, calls=3)], top_by_total=[row])
    out = ev.findings_statements(data, th)
    assert len(out) == 1 and out[0]["object"] == "queryid:7" and out[0]["threshold"] == 20
    missing = ev.findings_statements(dict(available=False, preloaded=False), th, "db1")
    assert missing[0]["severity"] == "info" and "shared_preload_libraries" in missing[0]["message"]


def test_connection_cache_vacuum_sequence_findings():
    th = ev.merge_thresholds({})
    conn = dict(total=92, usable=97, percent_used=94.8, max_connections=100)
    assert ev.findings_connections(conn, th)[0]["severity"] == "warning"
    cache = dict(heap_hit=900, heap_read=100, index_hit=10, index_read=10)
    out = ev.findings_cache(cache, th)
    assert [f["object"] for f in out] == ["heap_cache"] and out[0]["severity"] == "critical"  # index: too few blocks
    vac = dict(tables=[dict(schema="public", name="t", live_tuples=20000, dead_tuples=30000, dead_percent=60.0,
                            last_vacuum=None, last_autovacuum=None, days_since_analyze=None)])
    sev = sorted(f["severity"] for f in ev.findings_vacuum(vac, th))
    assert sev == ["critical", "critical"]
    seqs = dict(databases=[], sequences=[dict(schema="public", name="s", percent_used=90.0, last_value=90,
                                              max_value=100, owned_by_table="t", owned_by_column="id")])
    f = ev.findings_wraparound(seqs, th)[0]
    assert f["severity"] == "warning" and "column t.id" in f["message"]


def test_unused_index_severity_by_size_and_duplicates():
    th = ev.merge_thresholds({})
    small = dict(schema="s", name="i1", table="t", bytes=8192)
    big = dict(small, name="i2", bytes=50 * 1024 * 1024)
    out = ev.findings_indexes(dict(unused=[small, big], duplicates=[dict(schema="s", table="t", indexes=["a", "b"])],
                                   invalid=[]), th)
    assert [f["severity"] for f in out] == ["info", "warning", "warning"]


def test_diff_snapshots_new_slow_regression_usage_and_growth():
    th = ev.merge_thresholds({"statement_mean_ms": 50})
    mb = 1024 * 1024
    old = dict(statements={"1": dict(calls=10, total_ms=10.0, mean_ms=1.0, query="a"),
                           "2": dict(calls=10, total_ms=10.0, mean_ms=1.0, query="b")},
               indexes={"s.used": dict(idx_scan=0, exempt=False), "s.idle": dict(idx_scan=5, exempt=False),
                        "s.pk": dict(idx_scan=5, exempt=True), "s.gone": dict(idx_scan=0, exempt=False)},
               tables={"s.t": 10 * mb, "s.tiny": 8192})
    new = dict(statements={"1": dict(calls=20, total_ms=60.0, mean_ms=3.0, query="a"),      # 5 ms since: 5x
                           "2": dict(calls=20, total_ms=21.0, mean_ms=1.05, query="b"),    # 1.1x: fine
                           "3": dict(calls=2, total_ms=200.0, mean_ms=100.0, query="c")},  # new and slow
               indexes={"s.used": dict(idx_scan=4, exempt=False), "s.idle": dict(idx_scan=5, exempt=False),
                        "s.pk": dict(idx_scan=5, exempt=True), "s.new": dict(idx_scan=0, exempt=False)},
               tables={"s.t": 25 * mb, "s.tiny": 81920})
    diff, findings = ev.diff_snapshots(old, new, th, 2.0)
    assert [d["queryid"] for d in diff["new_slow_queries"]] == ["3"]
    assert [(d["queryid"], d["factor"]) for d in diff["regressions"]] == [("1", 5.0)]
    assert diff["became_used"] == [dict(index="s.used", idx_scan=4)]
    assert diff["became_unused"] == [dict(index="s.idle", idx_scan=5)]
    assert diff["new_indexes"] == ["s.new"] and diff["dropped_indexes"] == ["s.gone"]
    assert diff["size_growth"] == [dict(relation="s.t", bytes_before=10 * mb, bytes_now=25 * mb, percent=150.0)]
    sev = dict((f["object"], f["severity"]) for f in findings)
    assert sev["queryid:3"] == "warning" and sev["queryid:1"] == "critical" and sev["s.t"] == "warning"


def test_diff_snapshots_handles_stats_reset():
    th = ev.merge_thresholds({"statement_mean_ms": 50})
    old = dict(statements={"1": dict(calls=100, total_ms=100.0, mean_ms=1.0, query="a")}, indexes={}, tables={})
    new = dict(statements={"1": dict(calls=2, total_ms=300.0, mean_ms=150.0, query="a")}, indexes={}, tables={})
    diff, _ = ev.diff_snapshots(old, new, th, 2.0)
    assert diff["statements_reset"] is True and diff["new_slow_queries"][0]["queryid"] == "1"
