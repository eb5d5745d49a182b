"""Pure check logic of plugins/module_utils/pgops_checks.py (preflight + verification)."""

import datetime

import pytest

from ansible_collections.pgops.deploy.plugins.module_utils import pgops_checks as pc

UTC = datetime.timezone.utc


def test_parse_size_accepts_bytes_and_units_and_rejects_garbage():
    assert pc.parse_size(1024) == 1024
    assert pc.parse_size("10GB") == 10 * 1024 ** 3
    assert pc.parse_size("512 MiB") == 512 * 1024 ** 2
    assert pc.parse_size("1.5T") == int(1.5 * 1024 ** 4)
    for bad in ("ten", "10 parsecs", -1, True):
        with pytest.raises(ValueError):
            pc.parse_size(bad)


def test_version_compare():
    assert pc.version_ge("15.4 (Debian 15.4-1)", "13")
    assert pc.version_ge("3.3.2", "3.0")
    assert not pc.version_ge("12.9", "13")
    assert not pc.version_ge("2.5.5", "3.0")


FREEZE = [{"name": "no-friday", "weekdays": ["Friday"], "timezone": "Asia/Jakarta"},
          {"name": "year-end", "start": "2026-12-20 00:00", "end": "2027-01-05 00:00", "timezone": "Asia/Jakarta"}]


@pytest.mark.parametrize("now,expected", [
    ("2026-11-20T10:00:00+07:00", ["no-friday"]),        # Friday in Jakarta
    ("2026-11-19T23:30:00+00:00", ["no-friday"]),        # Thursday UTC, already Friday in Jakarta
    ("2026-11-20T17:30:00+00:00", []),                   # Friday UTC, Saturday 00:30 in Jakarta
    ("2026-12-24T10:00:00+07:00", ["year-end"]),
    ("2027-01-05T00:00:00+07:00", []),                   # end is exclusive
    ("2026-11-18T10:00:00+07:00", []),
])
def test_freeze_windows_in_their_timezone(now, expected):
    active, maintenance = pc.evaluate_schedule(pc.parse_now(now), FREEZE)
    assert [a.split(" ")[0] for a in active] == expected
    assert maintenance is None


def test_maintenance_window_wrapping_midnight():
    win = [{"name": "nightly", "start_time": "22:00", "end_time": "02:00"}]
    assert pc.evaluate_schedule(pc.parse_now("2026-11-18T23:00:00Z"), [], win)[1]
    assert pc.evaluate_schedule(pc.parse_now("2026-11-18T01:59:00Z"), [], win)[1]
    assert pc.evaluate_schedule(pc.parse_now("2026-11-18T12:00:00Z"), [], win)[1] == []


def test_malformed_windows_are_rejected_with_the_reason():
    now = pc.parse_now("2026-11-18T12:00:00Z")
    with pytest.raises(ValueError, match="unknown weekday"):
        pc.window_matches({"name": "x", "weekdays": ["Funday"]}, now)
    with pytest.raises(ValueError, match="unknown keys"):
        pc.window_matches({"name": "x", "weekday": "Friday"}, now)
    with pytest.raises(ValueError, match="unknown timezone"):
        pc.window_matches({"name": "x", "weekdays": ["Friday"], "timezone": "Mars/Olympus"}, now)
    with pytest.raises(ValueError, match="ISO 8601"):
        pc.parse_now("next friday")


def test_json_path_and_assertions():
    doc = {"status": "ok", "data": {"items": [{"id": 1}, {"id": 2}]}, "tags": ["a", "b"]}
    assert pc.json_path_get(doc, "data.items[1].id") == (True, 2)
    assert pc.json_path_get(doc, "data.items[5].id") == (False, None)
    assert pc.json_assertion(doc, {"path": "status", "equals": "ok"})[0]
    assert not pc.json_assertion(doc, {"path": "status", "equals": "down"})[0]
    assert pc.json_assertion(doc, {"path": "tags", "contains": "b"})[0]
    assert pc.json_assertion(doc, {"path": "status", "regex": "^o"})[0]
    assert pc.json_assertion(doc, {"path": "missing", "exists": False})[0]
    assert not pc.json_assertion(doc, {"path": "missing", "equals": 1})[0]
    with pytest.raises(ValueError):
        pc.json_assertion(doc, {"path": "status", "equals": "ok", "regex": "o"})


def test_plan_walk_finds_nested_index_names():
    plan = [{"Plan": {"Node Type": "Nested Loop", "Plans": [
        {"Node Type": "Bitmap Heap Scan", "Plans": [{"Node Type": "Bitmap Index Scan", "Index Name": "idx_geom"}]},
        {"Node Type": "Index Scan", "Index Name": "regions_pkey"}]}}]
    assert pc.plan_index_names(plan) == ["idx_geom", "regions_pkey"]
    assert pc.median([5, 1, 3]) == 3 and pc.median([1, 2, 3, 4]) == 2.5
    assert pc.improvement_pct(200, 50) == 75.0 and pc.improvement_pct(None, 1) is None


def test_row_counts_loss_fails_growth_within_tolerance_ok():
    checks = pc.compare_row_counts(
        {"regions": 100, "audit": 1000, "users": 10, "gone": 5},
        {"regions": 99, "audit": 1040, "users": 12, "gone": None},
        tolerances={"audit": {"percent": 5}})
    by = dict((c["name"], c) for c in checks)
    assert by["row_count:regions"]["status"] == "failed" and "lost 1 rows" in by["row_count:regions"]["message"]
    assert by["row_count:audit"]["status"] == "ok"
    assert by["row_count:users"]["status"] == "warning"
    assert by["row_count:gone"]["status"] == "failed" and by["row_count:gone"]["found"] == "table missing"
    with pytest.raises(ValueError):
        pc.compare_row_counts({"a": 1}, {"a": 1}, {"a": {"pct": 1}})


def test_log_scan_respects_since_inherits_timestamps_and_allowlist():
    lines = [
        "2026-11-21 09:00:00,000 ERROR before the deploy\n",
        "2026-11-21 10:00:01,000 INFO start\n",
        "Traceback (most recent call last):\n",
        "2026-11-21T10:00:02Z ERROR geocoder flaky\n",
        '127.0.0.1:5000 - "GET /health HTTP/1.1" 500 Internal Server Error\n',
    ]
    findings, scanned = pc.scan_log_lines(lines, allowlist=["geocoder"],
                                          since=pc.parse_now("2026-11-21T10:00:00Z"))
    assert scanned == 4
    assert [f["line"] for f in findings] == [3, 5]


def test_status_for_severity():
    assert pc.status_for(True, "fail") == "ok"
    assert pc.status_for(False, "fail") == "failed"
    assert pc.status_for(False, "warn") == "warning"
    assert pc.status_for(False, "ignore") == "ok"
    with pytest.raises(ValueError):
        pc.status_for(False, "explode")
