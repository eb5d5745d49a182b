#!/usr/bin/env python3
"""The >= 1 GB sample-app database the benches share (not run in CI).

    .venv/bin/python bench/sample_db.py up [--size 1GB]   # prints the DSN; reuses a running one
    .venv/bin/python bench/sample_db.py down

A PostgreSQL 15 + PostGIS cluster under /var/tmp (throwaway settings: fsync off), the sample
app's release 1.0.0 schema (V1..V5, what production runs before the 1.1.0 deploy) and
`santri_api.datagen --target-size` data. Filling 1 GB takes a few minutes, so it is done
once and the matview / migrate / backup benches run on it with --dsn.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

from pgops_testlib import PgCluster  # noqa: E402
from santri_sample import app_python, migration_files, run_sql_file  # noqa: E402

STATE = "/var/tmp/pgops-bench-sample.json"
DBNAME = "santri"


def santri_python():
    """BENCH_PYTHON, or the sample app's venv the tests use (built here on first use, ~1 min)."""
    return os.environ.get("BENCH_PYTHON") or app_python()


def load_state():
    try:
        with open(STATE) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def running(state):
    return state and subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(state["port"])]).returncode == 0


def pg_ctl(state, *args):
    cmd = ["pg_ctl", "-D", state["datadir"]] + list(args)
    subprocess.run((["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) + cmd,
                   env=dict(os.environ, PATH="/usr/lib/postgresql/15/bin:" + os.environ["PATH"]))


def up(size):
    state = load_state()
    if running(state):
        return state
    if state and os.path.isdir(state["datadir"]):
        # Filled before a reboot: start it again instead of filling a new one.
        pg_ctl(state, "-l", os.path.join(state["basedir"], "postgres.log"), "-w", "start")
        if running(state):
            return state
    python = santri_python()  # before the cluster: a missing venv must not leave one behind
    cluster = PgCluster(basedir="/var/tmp", settings={"maintenance_work_mem": "'256MB'", "max_wal_size": "'4GB'",
                                                      "shared_buffers": "'512MB'"})
    cluster.start()
    db = cluster.create_database(DBNAME)
    for _version, path in migration_files("V"):
        if _version <= 5:
            run_sql_file(db, path)
    dsn = "host=127.0.0.1 port=%d user=postgres dbname=%s" % (cluster.port, db.name)
    t0 = time.monotonic()
    print("filling %s to %s with santri_api.datagen ..." % (db.name, size), flush=True)
    subprocess.run([python, "-m", "santri_api.datagen", "--dsn", dsn, "--target-size", size],
                   env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "examples", "santri_api")), check=True)
    state = dict(basedir=cluster.basedir, datadir=cluster.datadir, port=cluster.port, dsn=dsn, dbname=db.name,
                 size=db.scalar("SELECT pg_database_size(current_database())"),
                 fill_seconds=round(time.monotonic() - t0, 1))
    with open(STATE, "w") as fh:
        json.dump(state, fh)
    return state


def down():
    state = load_state()
    if not state:
        return
    pg_ctl(state, "-m", "fast", "stop")
    subprocess.run(["rm", "-rf", state["basedir"], STATE])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["up", "down"])
    ap.add_argument("--size", default="1GB", help="datagen --target-size (default 1GB)")
    args = ap.parse_args()
    if args.action == "down":
        down()
        return
    state = up(args.size)
    print("sample database: %.0f MB (filled in %s s)" % (state["size"] / 1048576.0, state["fill_seconds"]))
    print(state["dsn"])


if __name__ == "__main__":
    main()
