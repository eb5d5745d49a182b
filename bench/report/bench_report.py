#!/usr/bin/env python3
"""Bench: pgops.deploy.pg_stat_report vs a plain psql of the same catalog queries.

Creates a database with many relations (default 1000 tables + 1000 secondary
indexes + their primary keys = 3000 relations) in a throwaway cluster (or the
database given with --dsn), then times, side by side, N runs each of
  A) the module, run exactly as Ansible runs it (own process, JSON args) with all
     sections + Markdown/HTML/JSON rendering, and
  B) `psql -f` of the very SQL the module executed (taken from its `queries`),
     i.e. the runbook's hand-written psql checks without thresholds or rendering.
Prints medians and the ratio. Not part of the test suite.

  .venv/bin/python bench/report/bench_report.py [--tables 1000] [--runs 5] [--dsn 'host=... dbname=...']
Against the sample app: --dsn 'host=127.0.0.1 port=5432 user=postgres dbname=santri' --tables 0
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, os.path.join(ROOT, ".collections"))

from pgops_testlib import PgCluster, ensure_collection_link, run_module  # noqa: E402


def dsn_params(dsn):
    kv = dict(part.split("=", 1) for part in dsn.split())
    return dict(login_host=kv.get("host", "127.0.0.1"), login_port=int(kv.get("port", 5432)),
                login_user=kv.get("user", "postgres"), login_db=kv.get("dbname", "postgres"))


def psql(dsn, sql=None, file=None):
    argv = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-o", "/dev/null"]
    argv += ["-c", sql] if sql else ["-f", file]
    subprocess.run(argv, check=True, capture_output=True, text=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tables", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dsn")
    args = ap.parse_args()
    ensure_collection_link()
    cluster = None
    dsn = args.dsn
    if not dsn:
        cluster = PgCluster().start()
        cluster.psql("postgres", "CREATE DATABASE bench")
        dsn = "host=127.0.0.1 port=%d user=postgres dbname=bench" % cluster.port
    try:
        if args.tables:
            print("creating %d tables (+ pk + 1 index each) ..." % args.tables, flush=True)
            psql(dsn, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            psql(dsn, """DO $$ BEGIN FOR i IN 1..%d LOOP
                EXECUTE format('CREATE TABLE IF NOT EXISTS bench_t%%s (id int PRIMARY KEY, v text, n int)', i);
                EXECUTE format('CREATE INDEX IF NOT EXISTS bench_t%%s_n ON bench_t%%s (n)', i, i);
                EXECUTE format('INSERT INTO bench_t%%s SELECT g, md5(g::text), mod(g, 10) FROM generate_series(1, 20) g', i);
                COMMIT;
                END LOOP; END $$""" % args.tables)
        nrel = subprocess.run(["psql", "-X", "-At", "-d", dsn, "-c",
                               "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                               "WHERE n.nspname NOT IN ('pg_catalog','information_schema','pg_toast')"],
                              capture_output=True, text=True, check=True).stdout.strip()
        out = tempfile.mkdtemp(prefix="pgops-bench-report-")
        params = dict(dsn_params(dsn), output_json=os.path.join(out, "r.json"),
                      output_markdown=os.path.join(out, "r.md"), output_html=os.path.join(out, "r.html"), top=20)
        res = run_module("pg_stat_report", params)
        if res["failed"]:
            raise SystemExit("module failed: %s" % res["msg"])
        sqlfile = os.path.join(out, "same-queries.sql")
        with open(sqlfile, "w") as fh:
            for q in res["queries"]:
                fh.write(q.rstrip().rstrip(";") + ";\n")
        mod_t, psql_t = [], []
        for _ in range(args.runs):  # interleaved: both see the same cache state
            t = time.perf_counter()
            run_module("pg_stat_report", params)
            mod_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            psql(dsn, file=sqlfile)
            psql_t.append(time.perf_counter() - t)
        m, p = statistics.median(mod_t), statistics.median(psql_t)
        print("relations in user schemas: %s, statements run per report: %d, runs: %d" % (
            nrel, len(res["queries"]), args.runs))
        print("%-58s %8.3f s" % ("pg_stat_report (all sections, thresholds, JSON+MD+HTML)", m))
        print("%-58s %8.3f s" % ("psql -f <same catalog queries> (raw rows only)", p))
        print("ratio module / psql: %.2fx  (module overhead %.3f s per report; findings: %d, status %s)" % (
            m / p, m - p, len(res["findings"]), res["status"]))
    finally:
        if cluster:
            cluster.stop()


if __name__ == "__main__":
    main()
