#!/usr/bin/env python3
"""Benchmark: pgops.deploy.pg_migrate vs the runbook's plain `psql -v ON_ERROR_STOP=1 -f`.

Two measurements, side by side in one run, on a throwaway PostgreSQL 15 + PostGIS cluster:

1. Conflict run: a long transaction holds ACCESS SHARE on a sizeable table (as a report
   query or an idle-in-transaction app session would) while an app-style read loop queries it
   every 20 ms. The migration ALTERs that table.  plain psql queues its ACCESS EXCLUSIVE
   request behind the long transaction and every app query queues behind psql: app latency
   is as long as the long transaction.  The runner waits at most lock_timeout per attempt,
   backs off, retries: app latency stays bounded by lock_timeout.
2. No-conflict run: a realistic migration set on the same data size; wall time of the runner
   (module process, history table, lock, lint, per-file transactions) vs psql -f.

Not part of the test suite.  Usage:
    .venv/bin/python bench/migrate/bench_migrate.py [--rows 300000] [--hold 4] [--repeat 3]
On the >= 1 GB sample-app database (bench/sample_db.py up; release 1.0.0 schema): the conflict
run ALTERs public.santri_pribadi behind a long transaction on it, and the no-conflict run is the
sample app's real 1.1.0 migration (V6 matviews, V7 CREATE INDEX CONCURRENTLY, V8 ANALYZE),
reverted with R8..R6 between runs:
    .venv/bin/python bench/migrate/bench_migrate.py --dsn "$(.venv/bin/python bench/sample_db.py up | tail -1)"
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, os.path.join(ROOT, ".collections"))

from pgops_testlib import PgCluster, PgDatabase, ensure_collection_link, run_module  # noqa: E402
from santri_sample import migration_files  # noqa: E402

LOCK_TIMEOUT = 0.5

NO_CONFLICT_SET = {
    "V1__events.sql": "CREATE TABLE IF NOT EXISTS public.events (id bigint PRIMARY KEY, kind int NOT NULL, "
                      "payload text, geom geometry(Point, 4326));\n"
                      "INSERT INTO public.events SELECT g, g % 17, md5(g::text), "
                      "ST_SetSRID(ST_MakePoint(100 + (g % 1000) / 100.0, -7 + (g % 777) / 100.0), 4326) "
                      "FROM generate_series(1, {rows}) g;\n",
    "V2__events_geom_idx.sql": "-- pgops:no-transaction\n"
                               "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_events_geom ON public.events USING gist (geom);\n",
    "V3__events_kind_idx.sql": "-- pgops:no-transaction\n"
                               "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_events_kind ON public.events (kind);\n",
    "V4__events_flag.sql": "ALTER TABLE public.events ADD COLUMN IF NOT EXISTS flag boolean DEFAULT false;\n"
                           "UPDATE public.events SET payload = upper(payload) WHERE kind = 3;\n",
    "V5__stats.sql": "CREATE MATERIALIZED VIEW IF NOT EXISTS public.mv_event_kinds AS "
                     "SELECT kind, count(*) AS n FROM public.events GROUP BY kind;\n"
                     "CREATE UNIQUE INDEX IF NOT EXISTS uq_mv_event_kinds ON public.mv_event_kinds (kind);\n",
}


def write_set(path, rows):
    os.makedirs(path, exist_ok=True)
    for name, text in NO_CONFLICT_SET.items():
        with open(os.path.join(path, name), "w") as fh:
            fh.write(text.format(rows=rows))
    # The runbook's single file: the same statements in version order.
    runbook = os.path.join(path, "..", "PRODUCTION_MIGRATION.sql")
    with open(runbook, "w") as fh:
        for name in sorted(NO_CONFLICT_SET, key=lambda n: int(n[1:].split("__")[0])):
            fh.write(NO_CONFLICT_SET[name].format(rows=rows).replace("-- pgops:no-transaction\n", ""))
    return runbook


def psql_file(cluster, db, path):
    t0 = time.time()
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(cluster.port),
                    "-U", "postgres", "-d", db.name, "-f", path], check=True, capture_output=True)
    return time.time() - t0


def runner(db, path, **kw):
    p = dict(db.module_params, path=path, retry_delay=0.3, lock_timeout="%dms" % int(LOCK_TIMEOUT * 1000))
    p.update(kw)
    t0 = time.time()
    res = run_module("pg_migrate", p)
    if res["failed"]:
        raise SystemExit("runner failed: %s" % res["msg"])
    return time.time() - t0, res


def behind_long_transaction(db, table, max_id, sql, hold, use_runner, mdir, history_table="schema_history"):
    """Run `sql` as a migration while a transaction holds ACCESS SHARE on `table` for `hold` s and an
    app reads a row of it by id every 20 ms; returns the app's latencies and the migration's wall time."""
    os.makedirs(mdir)
    with open(os.path.join(mdir, "V1__add_flag.sql"), "w") as fh:
        fh.write(sql)
    blocker = db.connect(autocommit=False)
    blocker.cursor().execute("SELECT 1 FROM %s LIMIT 1" % table)  # ACCESS SHARE until commit
    latencies, stop = [], threading.Event()

    def app():
        conn = db.connect()
        cur = conn.cursor()
        while not stop.is_set():
            t0 = time.time()
            cur.execute("SELECT * FROM %s WHERE id = %%s" % table, (int(t0 * 1000) % max_id + 1,))
            cur.fetchall()
            latencies.append(time.time() - t0)
            time.sleep(0.02)
        conn.close()

    reader = threading.Thread(target=app)
    reader.start()
    time.sleep(0.3)
    release = threading.Timer(hold, blocker.commit)
    release.start()
    t0 = time.time()
    if use_runner:
        _, res = runner(db, mdir, retries=20, history_table=history_table)
        attempts = res["applied"][0]["attempts"]
    else:
        psql_file(db.cluster, db, os.path.join(mdir, "V1__add_flag.sql"))
        attempts = 1
    wall = time.time() - t0
    time.sleep(0.3)
    stop.set()
    reader.join()
    release.join()
    blocker.close()
    return dict(max_latency=max(latencies), p99=sorted(latencies)[int(len(latencies) * 0.99) - 1],
                samples=len(latencies), wall=wall, attempts=attempts)


def conflict_run(cluster, rows, hold, use_runner, workdir):
    db = cluster.create_database(prefix="bench_conflict")
    db.psql("CREATE EXTENSION postgis; CREATE TABLE public.accounts (id int PRIMARY KEY, v int); "
            "INSERT INTO public.accounts SELECT g, g FROM generate_series(1, %d) g; ANALYZE public.accounts" % rows)
    try:
        return behind_long_transaction(
            db, "public.accounts", rows, "ALTER TABLE public.accounts ADD COLUMN IF NOT EXISTS flag boolean;\n",
            hold, use_runner, os.path.join(workdir, "conflict_%s" % ("runner" if use_runner else "psql")))
    finally:
        cluster.drop_database(db.name)


SAMPLE_TABLE = "public.santri_pribadi"
SAMPLE_RELEASE = (6, 7, 8)  # the 1.1.0 migration of the sample app


def sample_conflict_run(db, hold, use_runner, workdir):
    """ALTER the sample's biggest table while a long transaction reads it and the app reads by id."""
    try:
        return behind_long_transaction(
            db, SAMPLE_TABLE, db.scalar("SELECT max(id) FROM %s" % SAMPLE_TABLE),
            "ALTER TABLE %s ADD COLUMN IF NOT EXISTS bench_flag boolean;\n" % SAMPLE_TABLE, hold, use_runner,
            os.path.join(workdir, "sample_conflict_%s" % ("runner" if use_runner else "psql")),
            history_table="bench_conflict_history")
    finally:
        db.psql("ALTER TABLE %s DROP COLUMN IF EXISTS bench_flag; DROP TABLE IF EXISTS pgops.bench_conflict_history"
                % SAMPLE_TABLE)


def sample_release_dirs(workdir):
    """(dir with V6..V8 for the runner, the runbook's single file of the same statements)."""
    mdir = os.path.join(workdir, "sample_release", "migrations")
    os.makedirs(mdir)
    runbook = os.path.join(workdir, "sample_release", "PRODUCTION_MIGRATION.sql")
    with open(runbook, "w") as out:
        for version, path in migration_files("V"):
            if version in SAMPLE_RELEASE:
                shutil.copy(path, mdir)
                with open(path) as fh:
                    out.write(fh.read() + "\n")
    return mdir, runbook


def settle(db):
    """Start every timed run from the same quiet server: the previous run and its revert leave dirty pages
    and WAL that the checkpointer would otherwise write during the next run's first second."""
    db.psql("CHECKPOINT")
    time.sleep(1)


def sample_revert(db):
    for version, path in reversed(migration_files("R")):
        if version in SAMPLE_RELEASE:
            db.psql(file=path)
    db.psql("DROP TABLE IF EXISTS pgops.bench_release_history")
    settle(db)


def sample_no_conflict_run(db, use_runner, mdir, runbook):
    if use_runner:
        # As the postgis_migration role runs it: lint, advisory lock, history, group transaction.
        wall, _ = runner(db, mdir, group=True, history_table="bench_release_history")
    else:
        wall = psql_file(db.cluster, db, runbook)
    sample_revert(db)
    return wall


def sample_main(args, workdir):
    kv = dict(part.split("=", 1) for part in args.dsn.split())
    db = PgDatabase(PgCluster.running(kv.get("port", 5432)), kv["dbname"])
    size = db.scalar("SELECT pg_database_size(current_database())")
    rows = db.scalar("SELECT count(*) FROM %s" % SAMPLE_TABLE)
    print("# pg_migrate vs psql -f on the sample app database %s (%.0f MB, %d rows in %s), "
          "long transaction=%.1fs, lock_timeout=%.1fs, repeat=%d"
          % (db.name, size / 1048576.0, rows, SAMPLE_TABLE, args.hold, LOCK_TIMEOUT, args.repeat))
    print("\n## 1. ALTER TABLE %s behind a long transaction, app read loop every 20 ms" % SAMPLE_TABLE)
    print("| runner | max app latency (s) | p99 (s) | samples | migration wall (s) | attempts |")
    print("|---|---|---|---|---|---|")
    res = {}
    for use_runner in (False, True):
        r = sample_conflict_run(db, args.hold, use_runner, workdir)
        res[use_runner] = r
        print("| %s | %.3f | %.3f | %d | %.2f | %d |" % ("pg_migrate" if use_runner else "psql -f", r["max_latency"],
                                                          r["p99"], r["samples"], r["wall"], r["attempts"]))
    print("\nmax app latency ratio pg_migrate / psql = %.3f (pg_migrate bound: lock_timeout %.1fs; "
          "psql: the whole long transaction)" % (res[True]["max_latency"] / res[False]["max_latency"], LOCK_TIMEOUT))
    print("\n## 2. No conflict: the sample app's 1.1.0 migration (V6, V7, V8), reverted after each run")
    mdir, runbook = sample_release_dirs(workdir)
    settle(db)
    walls = {False: [], True: []}
    for i in range(args.repeat):
        for use_runner in ((False, True) if i % 2 == 0 else (True, False)):  # alternate order
            walls[use_runner].append(sample_no_conflict_run(db, use_runner, mdir, runbook))
    return walls


def no_conflict_run(cluster, rows, use_runner, workdir, i):
    db = cluster.create_database(prefix="bench_plain")
    db.psql("CREATE EXTENSION postgis")
    settle(db)
    mdir = os.path.join(workdir, "set_%d_%s" % (i, "runner" if use_runner else "psql"), "migrations")
    runbook = write_set(mdir, rows)
    if use_runner:
        wall, _ = runner(db, mdir)
    else:
        wall = psql_file(cluster, db, runbook)
    cluster.drop_database(db.name)
    return wall


def print_walls(walls):
    print("| runner | median wall (s) | runs |")
    print("|---|---|---|")
    for use_runner in (False, True):
        print("| %s | %.2f | %s |" % ("pg_migrate" if use_runner else "psql -f", statistics.median(walls[use_runner]),
                                     ", ".join("%.2f" % w for w in walls[use_runner])))
    print("\nrunner overhead ratio pg_migrate / psql = %.3f (target <= 1.10)"
          % (statistics.median(walls[True]) / statistics.median(walls[False])))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=300000)
    ap.add_argument("--hold", type=float, default=4.0, help="seconds the long transaction stays open")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dsn", help="the sample-app database of bench/sample_db.py (instead of a throwaway cluster)")
    args = ap.parse_args()
    ensure_collection_link()
    workdir = tempfile.mkdtemp(prefix="pgops-bench-migrate-")
    if args.dsn:
        try:
            print_walls(sample_main(args, workdir))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return
    cluster = PgCluster().start()
    try:
        print("# pg_migrate vs psql -f  (rows=%d, long transaction=%.1fs, lock_timeout=%.1fs, repeat=%d)"
              % (args.rows, args.hold, LOCK_TIMEOUT, args.repeat))
        print("\n## 1. Migration behind a long transaction, app read loop every 20 ms")
        print("| runner | max app latency (s) | p99 (s) | samples | migration wall (s) | attempts |")
        print("|---|---|---|---|---|---|")
        res = {}
        for use_runner in (False, True):
            r = conflict_run(cluster, args.rows, args.hold, use_runner, workdir)
            res[use_runner] = r
            print("| %s | %.3f | %.3f | %d | %.2f | %d |" % ("pg_migrate" if use_runner else "psql -f",
                                                              r["max_latency"], r["p99"], r["samples"], r["wall"],
                                                              r["attempts"]))
        print("\nmax app latency ratio pg_migrate / psql = %.3f (pg_migrate bound: lock_timeout %.1fs; "
              "psql: the whole long transaction)" % (res[True]["max_latency"] / res[False]["max_latency"], LOCK_TIMEOUT))
        print("\n## 2. No conflict: %d-file PostGIS migration set on %d rows" % (len(NO_CONFLICT_SET), args.rows))
        walls = {False: [], True: []}
        for i in range(args.repeat):
            for use_runner in ((False, True) if i % 2 == 0 else (True, False)):  # alternate order
                walls[use_runner].append(no_conflict_run(cluster, args.rows, use_runner, workdir, i))
        print_walls(walls)
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
