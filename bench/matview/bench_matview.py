#!/usr/bin/env python3
"""Bench: reader latency during REFRESH MATERIALIZED VIEW CONCURRENTLY vs plain REFRESH.

Builds a table + materialized view with a unique index (default 1,000,000 base
rows) in a throwaway cluster, or uses --dsn/--view (e.g. the sample app's
choropleth view). A reader thread queries the view in a loop while
pgops.deploy.matview_refresh refreshes it, once with concurrently=always and
once with concurrently=never; prints refresh time and reader max/p99 latency
side by side with ratios. The plain refresh takes an ACCESS EXCLUSIVE lock, so
readers wait for the whole refresh. Not part of the test suite.

  .venv/bin/python bench/matview/bench_matview.py [--rows 1000000]
Sample app (examples/santri_api, data from `python -m santri_api.datagen --rows N`):
  .venv/bin/python bench/matview/bench_matview.py --dsn 'host=127.0.0.1 port=5432 user=postgres dbname=santri' \
      --view <schema.matview> --read-sql 'SELECT * FROM <schema.matview> LIMIT 100'
"""
import argparse
import os
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, os.path.join(ROOT, ".collections"))

import psycopg2  # noqa: E402

from pgops_testlib import PgCluster, ensure_collection_link, run_module  # noqa: E402

SETUP = """
CREATE TABLE bench_events (id bigserial PRIMARY KEY, region int NOT NULL, day date NOT NULL, amount numeric NOT NULL);
INSERT INTO bench_events (region, day, amount)
  SELECT (g %% 500), date '2024-01-01' + (g %% 365), (g %% 997) FROM generate_series(1, %d) g;
CREATE MATERIALIZED VIEW bench_daily AS
  SELECT region, day, count(*) AS n, sum(amount) AS total FROM bench_events GROUP BY region, day;
CREATE UNIQUE INDEX bench_daily_key ON bench_daily (region, day);
ANALYZE bench_events;
ANALYZE bench_daily;
"""


def dsn_params(dsn):
    kv = dict(part.split("=", 1) for part in dsn.split())
    return dict(login_host=kv.get("host", "127.0.0.1"), login_port=int(kv.get("port", 5432)),
                login_user=kv.get("user", "postgres"), login_db=kv.get("dbname", "postgres"))


def reader(dsn, sql, stop, lat):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()
    while not stop.is_set():
        t = time.perf_counter()
        cur.execute(sql)
        cur.fetchall()
        lat.append((time.perf_counter() - t) * 1000.0)
        time.sleep(0.005)
    conn.close()


def run(dsn, view, sql, mode):
    lat, stop = [], threading.Event()
    th = threading.Thread(target=reader, args=(dsn, sql, stop, lat))
    th.start()
    time.sleep(0.5)  # baseline reads before the refresh
    t = time.perf_counter()
    res = run_module("matview_refresh", dict(dsn_params(dsn), names=[view], concurrently=mode, count_rows=False,
                                             lock_timeout="0"))
    total = time.perf_counter() - t
    time.sleep(0.3)
    stop.set()
    th.join()
    if res["failed"]:
        raise SystemExit("refresh failed: %s" % res["msg"])
    lat.sort()
    return dict(refresh_ms=res["views"][0]["duration_ms"], wall_s=total, reads=len(lat), max_ms=lat[-1],
                p99_ms=lat[int(len(lat) * 0.99) - 1], p50_ms=lat[len(lat) // 2], method=res["views"][0]["method"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1000000)
    ap.add_argument("--dsn")
    ap.add_argument("--view", default="public.bench_daily")
    ap.add_argument("--read-sql", default="SELECT region, sum(total) FROM bench_daily WHERE region IN (7, 42) "
                                          "GROUP BY region")
    args = ap.parse_args()
    ensure_collection_link()
    cluster = None
    dsn = args.dsn
    if not dsn:
        cluster = PgCluster(settings={"shared_buffers": "'256MB'", "max_wal_size": "'2GB'"}).start()
        cluster.psql("postgres", "CREATE DATABASE bench")
        dsn = "host=127.0.0.1 port=%d user=postgres dbname=bench" % cluster.port
        print("generating %d rows ..." % args.rows, flush=True)
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", SETUP % args.rows],
                       check=True, capture_output=True, text=True)
    try:
        size = subprocess.run(["psql", "-X", "-At", "-d", dsn, "-c",
                               "SELECT pg_size_pretty(pg_total_relation_size('%s')) || ', database ' "
                               "|| pg_size_pretty(pg_database_size(current_database()))" % args.view],
                              capture_output=True, text=True, check=True).stdout.strip()
        print("view %s (%s); reader: %s" % (args.view, size, args.read_sql))
        conc = run(dsn, args.view, args.read_sql, "always")
        plain = run(dsn, args.view, args.read_sql, "never")
        print("%-24s %14s %14s" % ("", "CONCURRENTLY", "plain REFRESH"))
        for key, label in (("refresh_ms", "refresh time ms"), ("reads", "reads during run"), ("p50_ms", "read p50 ms"),
                           ("p99_ms", "read p99 ms"), ("max_ms", "read max ms")):
            print("%-24s %14.1f %14.1f" % (label, conc[key], plain[key]))
        print("ratio plain/concurrent: max read latency %.1fx, refresh time %.2fx" % (
            plain["max_ms"] / conc["max_ms"], plain["refresh_ms"] / conc["refresh_ms"]))
    finally:
        if cluster:
            cluster.stop()


if __name__ == "__main__":
    main()
