"""pgops.deploy.verification against the real PostgreSQL fixture and a real HTTP server.

The HTTP server is a real http.server on a free loopback port serving JSON
200 / 503 / 422 (and a slow endpoint); the role runs through ansible-playbook.
"""

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pgops_testlib import run_playbook

PB = "tests/integration/playbooks/verification_run.yml"


class _Handler(BaseHTTPRequestHandler):
    def _send(self, code, doc):
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            self._send(200, {"status": "ok", "db": "ok", "version": "1.1.0", "revision": "abc123"})
        elif self.path == "/health-down":
            self._send(503, {"status": "error", "db": "down"})
        elif self.path == "/slow":
            time.sleep(0.4)
            self._send(200, {"status": "ok"})
        else:
            self._send(404, {"detail": "Not Found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        try:
            doc = json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or "name" not in doc:
            self._send(422, {"detail": [{"loc": ["body", "name"], "msg": "field required"}]})
        else:
            self._send(201, {"id": 7, "name": doc["name"]})

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def http_base():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def work(tmp_path):
    os.chmod(str(tmp_path), 0o755)
    return tmp_path


def run(ev, **kw):
    proc = run_playbook(PB, ev, **kw)
    with open(ev["test_result_file"]) as fh:
        return proc, json.load(fh)


def by_name(result):
    return dict((c["name"], c) for c in result["checks"])


def test_http_checks_ok_failing_and_expected_4xx(http_base, work, pg_db):
    checks = [
        {"name": "health", "path": "/health", "json_assertions": [{"path": "status", "equals": "ok"},
                                                                  {"path": "revision", "regex": "^[0-9a-f]+$"},
                                                                  {"path": "version", "exists": True}]},
        {"name": "rejects bad input", "method": "POST", "path": "/items", "json": {"nope": 1}, "status": [400, 422],
         "json_assertions": [{"path": "detail[0].msg", "contains": "required"}]},
        {"name": "creates", "method": "POST", "path": "/items", "json": {"name": "x"}, "status": 201,
         "body_regex": '"id": 7'},
        {"name": "wrong status", "path": "/health-down", "retries": 1, "delay": 0.2},
        {"name": "json mismatch", "path": "/health", "json_assertions": [{"path": "db", "equals": "down"}]},
        {"name": "too slow", "path": "/slow", "max_latency_ms": 100},
    ]
    # From the app host, the same pg_verify run scans the logs after sending the requests.
    log = work / "app.log"
    log.write_text("2026-11-21 10:00:06,456 ERROR upstream timed out\n")
    ev = dict(verification_http_checks=checks, verification_app_port=http_base,
              verification_log_sources=[{"type": "file", "path": str(log), "name": "app"}],
              verification_since="2026-11-21T10:00:00",
              pgops_db_name=pg_db.name, pgops_db_host=pg_db.host, pgops_db_port=pg_db.port,
              test_result_file=str(work / "result.json"))
    proc, result = run(ev)
    assert proc.returncode != 0
    c = by_name(result)
    assert c["log:app"]["status"] == "failed" and "upstream timed out" in json.dumps(c["log:app"]), c
    assert c["http:health"]["status"] == "ok" and "HTTP 200" in c["http:health"]["found"]
    assert c["http:rejects bad input"]["status"] == "ok" and "HTTP 422" in c["http:rejects bad input"]["found"]
    assert c["http:creates"]["status"] == "ok"
    wrong = c["http:wrong status"]
    assert wrong["status"] == "failed" and "HTTP 503" in wrong["found"] and "attempt 2 of 2" in wrong["found"]
    mismatch = c["http:json mismatch"]
    assert mismatch["status"] == "failed" and "db == 'down' but found 'ok'" in mismatch["message"]
    slow = c["http:too slow"]
    assert slow["status"] == "failed" and "> 100 ms" in slow["message"]
    assert all("duration_ms" in x and x["host"] == "localhost" for x in result["checks"])
    summary = proc.stdout[proc.stdout.index("verification: 4 of 7 check(s) failed"):]
    for name in ("http:wrong status", "http:json mismatch", "http:too slow", "log:app"):
        assert name in summary


SCHEMA = """
CREATE EXTENSION postgis;
CREATE TABLE regions (id serial PRIMARY KEY, code text NOT NULL, geom geometry(Point, 4326));
INSERT INTO regions (code, geom) SELECT 'R' || g, ST_SetSRID(ST_MakePoint(g % 90, g % 45), 4326)
  FROM generate_series(1, 20000) g;
CREATE INDEX idx_regions_code ON regions (code);
CREATE TABLE audit_log (id serial PRIMARY KEY, msg text);
INSERT INTO audit_log (msg) SELECT 'm' || g FROM generate_series(1, 1000) g;
CREATE MATERIALIZED VIEW mv_region_stats AS SELECT count(*) AS n FROM regions;
CREATE MATERIALIZED VIEW mv_stale AS SELECT count(*) AS n FROM regions WITH NO DATA;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER trg_regions_touch BEFORE UPDATE ON regions FOR EACH ROW EXECUTE FUNCTION touch();
ANALYZE;
"""


def test_database_objects_row_counts_plans_and_logs(pg_db, work):
    pg_db.psql(SCHEMA)
    # Rows lost in regions during the "deploy"; audit_log grew within its tolerance.
    pg_db.psql("DELETE FROM regions WHERE id <= 5; INSERT INTO audit_log (msg) SELECT 'x' FROM generate_series(1, 30);")
    log = work / "santri_api.err.log"
    log.write_text(
        "2026-11-21 09:00:00,001 INFO old line before the deploy\n"
        "2026-11-21 09:00:01,001 ERROR old error before the deploy\n"
        "2026-11-21 10:00:05,123 INFO started server process\n"
        "2026-11-21 10:00:06,456 ERROR exception in ASGI application\n"
        "Traceback (most recent call last):\n"
        '  File "/srv/santri_api/current/santri_api/main.py", line 42, in health\n'
        "ZeroDivisionError: division by zero\n"
        "2026-11-21 10:00:07,000 ERROR known noisy warning from the geocoder\n")
    clean = work / "clean.log"
    clean.write_text("2026-11-21 10:00:05,123 INFO all good\n")
    ev = dict(
        pgops_db_name=pg_db.name, pgops_db_host=pg_db.host, pgops_db_port=pg_db.port, pgops_db_user=pg_db.user,
        verification_http_checks=[],
        verification_extensions=["postgis", {"name": "plpgsql", "min_version": "1.0"}],
        verification_tables=["regions", "public.audit_log", "missing_table"],
        verification_indexes=["idx_regions_code", "regions_pkey", "idx_regions_geom"],
        verification_matviews=["mv_region_stats", "mv_stale"],
        verification_triggers=[{"table": "regions", "name": "trg_regions_touch"}],
        backup_manifest={"row_counts": {"regions": 20000, "audit_log": 1000, "public.regions": 20000}},
        verification_row_count_tolerance={"audit_log": {"percent": 5}, "public.regions": {"absolute": 10}},
        verification_queries=[
            {"name": "region by code", "sql": "SELECT * FROM regions WHERE code = 'R42'",
             "expect_index": "idx_regions_code", "baseline_ms": 1000},
            {"name": "region by geom", "sql": "SELECT * FROM regions WHERE geom && ST_MakeEnvelope(1, 1, 2, 2, 4326)",
             "expect_index": "idx_regions_geom"},
        ],
        verification_since="2026-11-21T10:00:00Z",
        verification_log_sources=[{"type": "file", "path": str(log), "name": "app"},
                                  {"type": "file", "path": str(clean), "name": "clean"}],
        verification_log_allowlist=["known noisy warning"],
        test_result_file=str(work / "result.json"),
    )
    proc, result = run(ev, check=True)  # read-only: check mode still runs every check
    assert proc.returncode != 0
    c = by_name(result)
    assert c["extension:postgis"]["status"] == "ok" and c["extension:plpgsql"]["status"] == "ok"
    assert c["table:regions"]["status"] == "ok" and c["table:public.audit_log"]["status"] == "ok"
    assert c["table:missing_table"]["status"] == "failed" and c["table:missing_table"]["found"] == "missing"
    assert c["index:idx_regions_code"]["status"] == "ok" and "indisvalid=True" in c["index:idx_regions_code"]["found"]
    assert c["index:idx_regions_geom"]["status"] == "failed" and c["index:idx_regions_geom"]["found"] == "missing"
    assert c["matview:mv_region_stats"]["status"] == "ok"
    assert c["matview:mv_stale"]["status"] == "failed" and "not populated" in c["matview:mv_stale"]["found"]
    assert c["trigger:regions.trg_regions_touch"]["status"] == "ok"
    loss = c["row_count:regions"]
    assert loss["status"] == "failed" and "19995 rows (-5)" in loss["found"] and "lost 5 rows" in loss["message"]
    assert c["row_count:public.regions"]["status"] == "ok"  # same loss, within its absolute tolerance of 10
    assert c["row_count:audit_log"]["status"] == "ok" and "(+30)" in c["row_count:audit_log"]["found"]
    by_code = c["query:region by code"]
    assert by_code["status"] == "ok" and "idx_regions_code" in by_code["details"]["indexes"]
    assert "vs baseline 1000 ms" in by_code["found"]
    by_geom = c["query:region by geom"]
    assert by_geom["status"] == "failed" and "does not use idx_regions_geom" in by_geom["message"]
    app = c["log:app"]
    assert app["status"] == "failed"
    texts = [f["text"] for f in app["details"]["findings"]]
    assert any(t.startswith("Traceback") for t in texts) and any("exception in ASGI" in t for t in texts)
    assert not any("old error" in t for t in texts), "lines before verification_since must be ignored"
    assert not any("geocoder" in t for t in texts), "allowlisted lines must be ignored"
    assert c["log:clean"]["status"] == "ok"
    failed = sorted(n for n, x in c.items() if x["status"] == "failed")
    assert failed == ["index:idx_regions_geom", "log:app", "matview:mv_stale", "query:region by geom",
                      "row_count:regions", "table:missing_table"]
    assert "verification: 6 of" in proc.stdout

    # The same database after fixing it: create the index, refresh, narrow the lists -> all green.
    pg_db.psql("CREATE INDEX idx_regions_geom ON regions USING gist (geom); REFRESH MATERIALIZED VIEW mv_stale; ANALYZE regions;")
    ev.update(verification_tables=["regions"], verification_log_sources=[{"type": "file", "path": str(clean)}],
              backup_manifest={"row_counts": {"regions": 19995}})
    proc, result = run(ev)
    assert proc.returncode == 0, proc.stdout[-3000:]
    c = by_name(result)
    assert c["query:region by geom"]["status"] == "ok" and c["index:idx_regions_geom"]["status"] == "ok"
    assert result["status"] == "ok"


def test_snapshot_row_counts_is_the_baseline_of_a_deploy_without_backup(pg_db):
    """pg_verify snapshot_row_counts: exact counts of every table, then a later run compares against them."""
    from pgops_testlib import run_module

    pg_db.psql("CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 1234);"
               "CREATE TABLE empty_t (id int); CREATE MATERIALIZED VIEW mv_items AS SELECT count(*) AS n FROM items;")
    snap = run_module("pg_verify", dict(pg_db.module_params, snapshot_row_counts=True))
    assert not snap["failed"] and snap["changed"] is False
    assert snap["row_counts"]["public.items"] == 1234 and snap["row_counts"]["public.empty_t"] == 0
    assert "public.mv_items" not in snap["row_counts"]  # views are not data that can be lost
    assert any("REPEATABLE READ READ ONLY" in q for q in snap["queries"])
    assert by_name(snap)["row_count_snapshot"]["status"] == "ok"

    pg_db.psql("DELETE FROM items WHERE id <= 10")
    later = run_module("pg_verify", dict(pg_db.module_params, baseline_row_counts=snap["row_counts"]))
    assert not later["failed"] and later["summary"]["status"] == "failed"  # the role turns it into a failure
    lost = by_name(later)["row_count:public.items"]
    assert lost["status"] == "failed" and "1224" in lost["found"], lost
    assert by_name(later)["row_count:public.empty_t"]["status"] == "ok"
