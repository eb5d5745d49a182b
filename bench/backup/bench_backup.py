#!/usr/bin/env python3
"""Backup bench: the runbook's `pg_dump -Fc` vs the backup role's formats, side by side, one run.

    .venv/bin/python bench/backup/bench_backup.py [--size-mb 1024] [--jobs 2] [--datagen auto|santri|builtin]
    .venv/bin/python bench/backup/bench_backup.py --dsn "$(.venv/bin/python bench/sample_db.py up | tail -1)"
    ... [--quick] [--module-runs N]   # only pg_dump -Fc vs the module, N runs per module mode
    ... --rounds-only --rounds 5       # only the alternating rounds (below)
    ... --rounds-only --rounds 0 --restore-rounds 9   # only restore pairs of one backup each (below)
    ... --rounds-only --rounds 0 --restore-rounds 9 --reference   # + the issue's pg_restore -j of -Fd -Z1

Starts a throwaway PostgreSQL 15 + PostGIS cluster (tests/lib PgCluster), fills a database
(the sample app's `python -m santri_api.datagen --target-size` when a Python with psycopg 3 is
available via $BENCH_PYTHON, else a built-in PostGIS generator), then for each method measures
dump time, size, verify time and restore time (into a fresh database, indexes included), and prints
ratios against the baseline. Then `--rounds N` (default 3) alternating rounds: the runbook's `pg_dump -Fc`
and `pg_restore -d` against the modules themselves (pg_backup, pg_backup_verify, pg_backup_restore with its
checksums, decompression, pg_restore -j, row counts and rename), in alternating order, with the median of
the per-round ratios: one pair of numbers moves by 20-30 % between minutes on a small machine.
The module's restore is shown twice, like its dump: the restore itself (`restore_duration_s`: feed,
CREATE DATABASE, pg_restore - the runbook's `pg_restore -d` does the same work) and with the checks the
runbook has no step for (`duration_s`: + exact row counts against the manifest, ANALYZE and the rename).
`--restore-rounds N` then restores one runbook dump and one module backup alternately N times (restore
only, about a minute a pair) and prints the median ratio with its quartiles; `--reference` adds to each pair
plain `pg_restore -j` of a `pg_dump -Fd -Z1` directory, the method behind the issue's own 18 s vs 31 s.
Not part of `make test`. Results also go to bench/results/backup.json.
"""

import argparse
import glob
import hashlib
import json
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

BUILTIN = """
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE TABLE IF NOT EXISTS wilayah (id int PRIMARY KEY, nama text, geom geometry(MultiPolygon, 4326));
INSERT INTO wilayah SELECT i, 'kabupaten ' || i,
       ST_Multi(ST_Buffer(ST_SetSRID(ST_MakePoint(95 + (i % 45), -10 + (i / 45) * 0.5), 4326), 0.2, 24))
  FROM generate_series(1, 500) i ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS santri (
  id bigint PRIMARY KEY, nama text NOT NULL, wilayah_id int REFERENCES wilayah, lokasi geometry(Point, 4326),
  skor numeric(6, 2), status text, profil jsonb, dibuat timestamptz);
"""
BATCH = """
INSERT INTO santri
SELECT i, 'santri ' || md5(i::text), 1 + i % 500,
       ST_SetSRID(ST_MakePoint(95 + (i % 4500) * 0.01, -10 + (i % 997) * 0.01), 4326),
       (i % 100000) / 1000.0, (ARRAY['aktif', 'lulus', 'cuti'])[1 + i % 3],
       jsonb_build_object('ayah', md5((i * 7)::text), 'alamat', repeat(md5(i::text), 2), 'kelas', i % 12),
       timestamptz '2020-01-01' + (i % 1000000) * interval '1 minute'
  FROM generate_series(LO, HI) i;
"""
INDEXES = """
CREATE INDEX IF NOT EXISTS santri_lokasi_gist ON santri USING gist (lokasi);
CREATE INDEX IF NOT EXISTS santri_wilayah ON santri (wilayah_id);
CREATE INDEX IF NOT EXISTS santri_dibuat ON santri (dibuat);
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_wilayah AS
  SELECT wilayah_id, count(*) AS n, avg(skor) AS skor FROM santri GROUP BY 1;
ANALYZE;
"""


def sh(cmd, env, **kw):
    t0 = time.monotonic()
    proc = subprocess.run(["bash", "-o", "pipefail", "-ec", cmd], env=env, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise SystemExit("command failed (%s): %s\n%s" % (proc.returncode, cmd, proc.stderr[-2000:]))
    return time.monotonic() - t0, proc.stdout


def cpu_times():
    """(busy, stolen) CPU seconds of the whole machine so far, from /proc/stat (Linux; zeros elsewhere).

    Busy is user+nice+system+irq+softirq, without steal: on a shared VM the hypervisor's steal moves the wall
    time of one run by 20-30 %, while the work done (busy core-seconds) stays put.
    """
    try:
        with open("/proc/stat") as fh:
            v = [int(x) for x in fh.readline().split()[1:]]
    except OSError:
        return 0.0, 0.0
    hz = os.sysconf("SC_CLK_TCK")
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / float(hz), (v[7] if len(v) > 7 else 0) / float(hz)


def timed_cpu(fn):
    """fn()'s result, and the machine's busy and stolen CPU seconds while it ran."""
    a = cpu_times()
    res = fn()
    b = cpu_times()
    return res, b[0] - a[0], b[1] - a[1]


def size_of(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(f) for f in glob.glob(os.path.join(path, "*")))
    return os.path.getsize(path)


def sha256_all(path):
    files = sorted(glob.glob(os.path.join(path, "*"))) if os.path.isdir(path) else [path]
    for name in files:
        h = hashlib.sha256()
        with open(name, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)


def fill(cluster, db, size_mb, datagen):
    env = cluster.env
    target = size_mb * 1024 * 1024
    py = os.environ.get("BENCH_PYTHON")
    use_santri = datagen == "santri" or (datagen == "auto" and py and subprocess.run(
        [py, "-c", "import psycopg"], capture_output=True).returncode == 0)
    if use_santri:
        for mig in sorted(glob.glob(os.path.join(ROOT, "examples/santri_api/migrations/V*.sql")),
                          key=lambda p: int(os.path.basename(p)[1:].split("__")[0])):
            db.psql(file=mig)
        genv = dict(env, PYTHONPATH=os.path.join(ROOT, "examples", "santri_api"))
        dsn = "host=127.0.0.1 port=%s user=postgres dbname=%s" % (cluster.port, db.name)
        subprocess.run([py, "-m", "santri_api.datagen", "--dsn", dsn, "--target-size", "%dMB" % size_mb],
                       env=genv, check=True)
        return "santri_api.datagen --target-size %dMB" % size_mb
    db.psql(BUILTIN)
    lo, step = 1, 200000
    while db.scalar("SELECT pg_database_size(current_database())") < target * 0.8:
        db.psql(BATCH.replace("LO", str(lo)).replace("HI", str(lo + step - 1)))
        lo += step
    db.psql(INDEXES)
    return "built-in PostGIS generator (%d santri rows)" % (lo - 1)


def write_results(data):
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "backup.json"), "w") as fh:
        json.dump(data, fh, indent=2)


def module_or_die(name, params):
    res = run_module(name, params)
    if res["failed"]:
        raise SystemExit("%s failed: %s" % (name, res.get("msg")))
    return res


def runbook_round(cluster, db, work, i):
    """The runbook's commands: pg_dump -Fc, then pg_restore -d into a new database (one job, as written)."""
    dump = os.path.join(work, "round-%d.dump" % i)
    dump_s, _ = sh("pg_dump -Fc -f %s %s" % (dump, db.name), cluster.env)
    res = dict(runbook_restore(cluster, dump, "rb_round_%d" % i), dump_s=dump_s, size=os.path.getsize(dump))
    os.unlink(dump)
    return res


def runbook_restore(cluster, dump, target):
    """The runbook's `pg_restore -d` (one job, as written) into a new database, timed; the database dropped."""
    cluster.psql("postgres", "CREATE DATABASE %s TEMPLATE template0" % target)
    (restore_s, _), cpu_s, steal_s = timed_cpu(lambda: sh("pg_restore -d %s %s" % (target, dump), cluster.env))
    cluster.psql("postgres", "DROP DATABASE %s" % target)
    return dict(restore_s=restore_s, restore_cpu_s=cpu_s, restore_steal_s=steal_s)


def module_round(cluster, db, work, jobs, i):
    """The modules with their defaults: pg_backup, pg_backup_verify, pg_backup_restore into a new database."""
    root = os.path.join(work, "round-%d" % i)
    t = time.monotonic()
    res = module_or_die("pg_backup", dict(db.module_params, backup_root=root, backup_id="b", jobs=jobs))
    dump_wall = time.monotonic() - t
    t = time.monotonic()
    module_or_die("pg_backup_verify", dict(path=res["path"]))
    verify_s = time.monotonic() - t
    restored = module_restore(cluster, db, res["path"], jobs, "mod_round_%d" % i)
    subprocess.run(["rm", "-rf", root])
    return dict(restored, dump_s=res["manifest"]["dump_duration_s"], dump_wall_s=dump_wall, verify_s=verify_s,
                size=res["manifest"]["dump_size"])


def module_restore(cluster, db, path, jobs, target):
    """pg_backup_restore with its defaults into a new database, timed; row counts checked; the database dropped."""
    params = dict(db.module_params, path=path, target_db=target, confirm="RESTORE %s" % target, jobs=jobs)
    params["login_db"] = "postgres"
    t = time.monotonic()
    rest, cpu_s, steal_s = timed_cpu(lambda: module_or_die("pg_backup_restore", params))
    restore_wall = time.monotonic() - t
    if rest["mismatches"]:
        raise SystemExit("restore row counts differ from the manifest: %s" % rest["mismatches"])
    cluster.psql("postgres", "DROP DATABASE %s" % target)
    # restore_duration_s: the restore itself (feed, CREATE DATABASE, pg_restore), as dump_duration_s is the dump;
    # duration_s adds the row counts against the manifest, ANALYZE and the rename, the wall the checksums first.
    return dict(restore_step_s=rest["restore_duration_s"], restore_s=rest["duration_s"], restore_wall_s=restore_wall,
                restore_cpu_s=cpu_s, restore_steal_s=steal_s)


def restore_ratios(rb, md):
    """Runbook restore / module restore (the restore step, its duration, its wall); CPU work, modules / runbook."""
    return dict(restore_step_x=rb["restore_s"] / md["restore_step_s"], restore_x=rb["restore_s"] / md["restore_s"],
                restore_wall_x=rb["restore_s"] / md["restore_wall_s"],
                restore_cpu_x=md["restore_cpu_s"] / max(rb["restore_cpu_s"], 0.01))


def restore_cells(rb, md, r):
    """The restore columns of a round's or a pair's table row."""
    return "%.1f | %.1f / %.1f (%.1f) | %.2fx / %.2fx (%.2fx) | %.1f / %.1f | %.1f / %.1f" % (
        rb["restore_s"], md["restore_step_s"], md["restore_s"], md["restore_wall_s"], r["restore_step_x"],
        r["restore_x"], r["restore_wall_x"],
        rb["restore_cpu_s"], md["restore_cpu_s"], rb["restore_steal_s"], md["restore_steal_s"])


def quartiles(values):
    """(lower quartile, median, upper quartile) - how far one run's median can be trusted."""
    if len(values) < 4:
        m = statistics.median(values)
        return min(values), m, max(values)
    q = statistics.quantiles(values, n=4)
    return q[0], q[1], q[2]


def reference_restore(cluster, dump_dir, jobs, target):
    """The issue's reference method: `pg_restore -j` of a `pg_dump -Fd -Z1` directory into a new database, timed."""
    cluster.psql("postgres", "CREATE DATABASE %s TEMPLATE template0" % target)
    (restore_s, _), cpu_s, steal_s = timed_cpu(lambda: sh("pg_restore -j%d -d %s %s" % (jobs, target, dump_dir),
                                                          cluster.env))
    cluster.psql("postgres", "DROP DATABASE %s" % target)
    return dict(restore_s=restore_s, restore_cpu_s=cpu_s, restore_steal_s=steal_s)


def rotated(i, contenders):
    """Run [(name, fn)] with the i-th one first and the rest after it in turn: (first name, {name: fn()}).

    Each side goes first, last (and between) equally often, so the machine's drift from minute to minute
    does not favour one of them.
    """
    k = i % len(contenders)
    order = contenders[k:] + contenders[:k]
    return order[0][0], dict((name, run()) for name, run in order)


def restore_rounds(cluster, db, work, jobs, n, reference=False):
    """Restores only, many pairs: one runbook dump and one verified module backup, restored alternately.

    A pair takes about a minute instead of the two and a half of a full round, so one run can afford enough
    pairs for the median to stand out of this VM's minute-to-minute noise. With `reference`, each pair also
    restores a `pg_dump -Fd -j -Z1` directory with plain `pg_restore -j` (the method the issue's own numbers,
    18 s vs 31 s, came from), the three in rotating order: what this machine allows without the module.
    """
    if n <= 0:
        return []
    dump = os.path.join(work, "restore-rounds.dump")
    sh("pg_dump -Fc -f %s %s" % (dump, db.name), cluster.env)
    ref_dir = os.path.join(work, "restore-rounds.ref")
    if reference:
        sh("pg_dump -Fd -j%d -Z1 -f %s %s" % (jobs, ref_dir, db.name), cluster.env)
    res = module_or_die("pg_backup", dict(db.module_params, backup_root=os.path.join(work, "restore-rounds"),
                                          backup_id="b", jobs=jobs))
    module_or_die("pg_backup_verify", dict(path=res["path"]))
    print("\n## %d alternating restore pairs of one backup each: the runbook's pg_restore -d vs pg_backup_restore "
          "(defaults, jobs=%d)%s" % (n, jobs, "; and the issue's reference, pg_restore -j%d of a -Fd -Z1 dump" % jobs
                                      if reference else ""))
    ref_head = ("reference pg_restore -j s (speed-up) | " if reference else "", "---:|" if reference else "")
    print("| pair | first | runbook restore s | %spg_backup_restore s: restore / + checks (module wall) "
          "| speed-up: restore / + checks (wall) "
          "| CPU s, runbook / module | stolen s, runbook / module |" % ref_head[0])
    print("|---|---|---:|%s---:|---:|---:|---:|" % ref_head[1])
    pairs = []
    for i in range(n):
        contenders = [("runbook", lambda: runbook_restore(cluster, dump, "rb_pair_%d" % i)),
                      ("modules", lambda: module_restore(cluster, db, res["path"], jobs, "mod_pair_%d" % i))]
        if reference:
            contenders.append(("reference", lambda: reference_restore(cluster, ref_dir, jobs, "ref_pair_%d" % i)))
        first, out = rotated(i, contenders)
        rb, md = out["runbook"], out["modules"]
        p = dict(restore_ratios(rb, md), first=first, runbook=rb, modules=md)
        ref_cell = ""
        if reference:
            p.update(reference=out["reference"], reference_x=rb["restore_s"] / out["reference"]["restore_s"])
            ref_cell = "%.1f (%.2fx) | " % (out["reference"]["restore_s"], p["reference_x"])
        pairs.append(p)
        cells = restore_cells(rb, md, p)
        head, _sep, tail = cells.partition(" | ")
        print("| %d | %s | %s | %s%s |" % (i + 1, p["first"], head, ref_cell, tail), flush=True)
    os.unlink(dump)
    subprocess.run(["rm", "-rf", os.path.join(work, "restore-rounds"), ref_dir])
    lo, med, hi = quartiles([p["restore_x"] for p in pairs])
    slo, smed, shi = quartiles([p["restore_step_x"] for p in pairs])
    print("\nrestore speed-up over %d pairs (target >= 1.5x): the restore itself median %.2fx (quartiles %.2fx-%.2fx); "
          "with the row counts, ANALYZE and rename %.2fx (quartiles %.2fx-%.2fx); module wall %.2fx; "
          "CPU work modules / runbook %.2fx" % (n, smed, slo, shi, med, lo, hi,
                                               statistics.median(p["restore_wall_x"] for p in pairs),
                                               statistics.median(p["restore_cpu_x"] for p in pairs)))
    if reference:
        rlo, rmed, rhi = quartiles([p["reference_x"] for p in pairs])
        print("the issue's reference method (plain pg_restore -j%d of a -Fd -Z1 dump, no checks): median %.2fx "
              "(quartiles %.2fx-%.2fx); the module's restore itself over it: %.2fx" % (
                  jobs, rmed, rlo, rhi, statistics.median(p["reference"]["restore_s"] / p["modules"]["restore_step_s"]
                                                          for p in pairs)))
    return pairs


def alternating_rounds(cluster, db, work, jobs, n):
    """Runbook vs modules, alternating which goes first; prints each round and the median ratios."""
    if n <= 0:
        return []
    print("\n## %d alternating rounds: the runbook's pg_dump -Fc + pg_restore -d vs pg_backup + pg_backup_verify + "
          "pg_backup_restore (defaults, jobs=%d)" % (n, jobs))
    print("| round | first | runbook dump s | pg_backup dump s (module wall) | dump speed-up (wall) | size ratio "
          "| runbook restore s | pg_backup_restore s: restore / + checks (module wall) "
          "| restore speed-up: restore / + checks (wall) "
          "| restore CPU s, runbook / modules | stolen s, runbook / modules |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rounds = []
    for i in range(n):
        first, out = rotated(i, [("runbook", lambda: runbook_round(cluster, db, work, i)),
                                 ("modules", lambda: module_round(cluster, db, work, jobs, i))])
        rb, md = out["runbook"], out["modules"]
        r = dict(restore_ratios(rb, md), first=first, runbook=rb, modules=md,
                 dump_x=rb["dump_s"] / md["dump_s"], dump_wall_x=rb["dump_s"] / md["dump_wall_s"],
                 size_x=md["size"] / float(rb["size"]))
        rounds.append(r)
        print("| %d | %s | %.1f | %.1f (%.1f) | %.2fx (%.2fx) | %.2fx | %s |" % (
            i + 1, first, rb["dump_s"], md["dump_s"], md["dump_wall_s"], r["dump_x"], r["dump_wall_x"],
            r["size_x"], restore_cells(rb, md, r)), flush=True)
    med = dict((k, statistics.median(r[k] for r in rounds))
               for k in ("dump_x", "dump_wall_x", "size_x", "restore_step_x", "restore_x", "restore_wall_x",
                         "restore_cpu_x"))
    print("\nmedian of %d rounds: dump %.2fx (module wall %.2fx; target >= 3x), size %.2fx (target <= 1.1x), "
          "restore %.2fx (with the row counts, ANALYZE and rename %.2fx; module wall %.2fx; target >= 1.5x)"
          % (n, med["dump_x"], med["dump_wall_x"], med["size_x"], med["restore_step_x"], med["restore_x"],
             med["restore_wall_x"]))
    print("restore CPU work (the machine's busy core-seconds, steal excluded), median of modules / runbook: %.2fx"
          % med["restore_cpu_x"])
    return rounds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=int, default=1024, help="target database size (default 1024)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--datagen", choices=["auto", "santri", "builtin"], default="auto")
    ap.add_argument("--module-runs", type=int, default=2,
                    help="runs of pg_backup per mode (compress while dumping / after), alternating (default 2)")
    ap.add_argument("--quick", action="store_true", help="only the runbook's pg_dump -Fc and the module runs")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating rounds of the runbook's dump + restore vs the modules' (default 3, 0: none)")
    ap.add_argument("--restore-rounds", type=int, default=0,
                    help="after the rounds: N alternating restore pairs of one backup each (restore only, ~1 min a pair)")
    ap.add_argument("--reference", action="store_true",
                    help="restore pairs also restore a pg_dump -Fd -Z1 directory with plain pg_restore -j (the issue's "
                         "reference method), in rotating order (~1.5 min a pair)")
    ap.add_argument("--rounds-only", action="store_true", help="only the alternating rounds (and restore pairs)")
    ap.add_argument("--dsn", help="an existing database to dump (e.g. bench/sample_db.py up); "
                                  "restores go to new databases of the same cluster")
    args = ap.parse_args()
    ensure_collection_link()
    if args.dsn:
        kv = dict(part.split("=", 1) for part in args.dsn.split())
        cluster = PgCluster.running(kv.get("port", 5432))
    else:
        cluster = PgCluster(settings={"maintenance_work_mem": "'256MB'", "max_wal_size": "'4GB'"})
        cluster.start()
    work = tempfile.mkdtemp(prefix="pgops-bench-backup-", dir="/var/tmp")
    os.chmod(work, 0o777)
    try:
        t0 = time.monotonic()
        if args.dsn:
            db = cluster.database(kv["dbname"])
            source = "existing database %s" % db.name
        else:
            db = cluster.create_database("bench")
            source = fill(cluster, db, args.size_mb, args.datagen)
        dbsize = db.scalar("SELECT pg_database_size(current_database())")
        print("dataset: %s; pg_database_size %.0f MB (filled in %.0f s); %d CPUs, jobs=%d"
              % (source, dbsize / 1048576.0, time.monotonic() - t0, os.cpu_count(), args.jobs))
        env = cluster.env
        j = args.jobs
        d = db.name
        rounds = alternating_rounds(cluster, db, work, j, args.rounds)
        pairs = restore_rounds(cluster, db, work, j, args.restore_rounds, args.reference)
        if args.rounds_only:
            write_results(dict(dataset=source, db_size=dbsize, jobs=j, rounds=rounds, restore_pairs=pairs))
            return
        methods = [
            # name, dump, output, verify, restore(target db)
            ("runbook: pg_dump -Fc", "pg_dump -Fc -f {o} %s" % d, "base.dump",
             "pg_restore --list {o} >/dev/null", "pg_restore -d {t} {o}"),
            ("runbook -Fc, real verify", None, "base.dump", "pg_restore -f /dev/null {o}", None),
            ("-Fd -j%d -Z0, then zstd -1 per data file (no overlap)" % j,
             "pg_dump -Fd -j%d -Z0 -f {o} %s && find {o} -name '*.dat' ! -name toc.dat -exec zstd -q -1 -T%d --rm {{}} +"
             % (j, d, j), "dirzst",
             "pg_restore --list {o} >/dev/null && zstd -q -t {o}/*.dat.zst",
             # restore_parallel_feed: stream - a named pipe per data file, zstd -d feeds it while pg_restore reads.
             "rm -rf {o}.tmp && mkdir {o}.tmp && cp {o}/toc.dat {o}.tmp/ && for f in {o}/*.dat.zst; do "
             "n=$(basename $f .zst); mkfifo {o}.tmp/$n; (zstd -q -d -c $f > {o}.tmp/$n &); done && "
             "pg_restore -j%d -d {t} {o}.tmp && rm -rf {o}.tmp" % j),
            ("same zstd files, restore: unzstd to a temp dir + pg_restore -j%d (parallel_feed: unpack)" % j, None,
             "dirzst", "true",
             "rm -rf {o}.tmp && mkdir {o}.tmp && cp {o}/toc.dat {o}.tmp/ && "
             "zstd -q -d -T%d --output-dir-flat {o}.tmp {o}/*.dat.zst && pg_restore -j%d -d {t} {o}.tmp && rm -rf {o}.tmp"
             % (j, j)),
            ("role without zstd: -Fd -j%d -Z1 (gzip)" % j, "pg_dump -Fd -j%d -Z1 -f {o} %s" % (j, d), "dir",
             "pg_restore -f /dev/null {o}", "pg_restore -j%d -d {t} {o}" % j),
            ("-Fc -Z0 \\| zstd -T%d -3" % j, "pg_dump -Fc -Z0 %s | zstd -q -T%d -3 -c > {o}" % (d, j), "dump.zst",
             "zstd -q -dc {o} | pg_restore -f /dev/null", "zstd -q -dc {o} | pg_restore -d {t}"),
            ("same zstd dump, restore: unzstd to file + pg_restore -j%d" % j, None, "dump.zst",
             "true", "zstd -q -d -f {o} -o {o}.raw && pg_restore -j%d -d {t} {o}.raw && rm -f {o}.raw" % j),
            ("-Fd -j%d -Z0 (no compression)" % j, "pg_dump -Fd -j%d -Z0 -f {o} %s" % (j, d), "dir0",
             "pg_restore -f /dev/null {o}", "pg_restore -j%d -d {t} {o}" % j),
        ]
        if args.quick:
            methods = [(name, dump, out, verify, None) for name, dump, out, verify, _r in methods[:1]]
        rows = []
        for idx, (name, dump, out, verify, restore) in enumerate(methods):
            o = os.path.join(work, out)
            row = dict(method=name)
            if dump:
                row["dump_s"], _ = sh(dump.format(o=o), env)
                row["size"] = size_of(o)
            vt = time.monotonic()
            if dump and idx > 1:
                sha256_all(o)  # the role also re-hashes every file
            sh(verify.format(o=o), env)
            row["verify_s"] = time.monotonic() - vt
            if restore:
                target = "r%d" % idx
                cluster.psql("postgres", "CREATE DATABASE %s TEMPLATE template0" % target)
                row["restore_s"], _ = sh(restore.format(o=o, t=target), env)
                cluster.psql("postgres", "DROP DATABASE %s" % target)
            rows.append(row)
            print("  measured: %s %s" % (name, json.dumps(dict((k, round(v, 2) if isinstance(v, float) else v)
                                                                for k, v in row.items() if k != "method"))), flush=True)

        # End to end through the module (row counts in the dump snapshot + checksums + manifest), the
        # default (table files compressed while pg_dump writes them) alternating with compress-after-dump.
        runs = {True: [], False: []}
        for i in range(args.module_runs):
            for stream in ((True, False) if i % 2 == 0 else (False, True)):
                bdir = os.path.join(work, "module-%d-%s" % (i, stream))
                t = time.monotonic()
                res = run_module("pg_backup", dict(db.module_params, backup_root=bdir, backup_id="m", jobs=j,
                                                   compress_while_dumping=stream))
                wall = time.monotonic() - t
                if res["failed"]:
                    raise SystemExit("module run failed: %s" % res.get("msg"))
                t = time.monotonic()
                ver = run_module("pg_backup_verify", dict(path=res["path"]))
                if ver["failed"]:
                    raise SystemExit("verify failed: %s" % ver.get("msg"))
                runs[stream].append(dict(wall=wall, verify=time.monotonic() - t, man=res["manifest"]))
                print("  measured: pg_backup compress_while_dumping=%s %s" % (stream, json.dumps(dict(
                    wall_s=round(wall, 2), dump_duration_s=res["manifest"]["dump_duration_s"],
                    compressed_while_dumping=res["manifest"].get("compressed_while_dumping")))), flush=True)
                subprocess.run(["rm", "-rf", bdir])

        def median(stream, key):
            vals = sorted(r["man"]["dump_duration_s"] if key == "dump" else r[key] for r in runs[stream])
            return vals[len(vals) // 2]

        base = rows[0]
        print()
        print("| method | dump s | dump speed-up | size MB | size ratio | verify s | restore s | restore speed-up |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for row in rows:
            print("| %s | %s | %s | %s | %s | %.1f | %s | %s |" % (
                row["method"],
                "%.1f" % row["dump_s"] if "dump_s" in row else "-",
                "%.2fx" % (base["dump_s"] / row["dump_s"]) if "dump_s" in row else "-",
                "%.0f" % (row["size"] / 1048576.0) if "size" in row else "-",
                "%.2fx" % (row["size"] / float(base["size"])) if "size" in row else "-",
                row["verify_s"],
                "%.1f" % row["restore_s"] if "restore_s" in row else "-",
                "%.2fx" % (base["restore_s"] / row["restore_s"]) if "restore_s" in row else "-"))
        man = runs[True][-1]["man"]
        for stream, label in ((True, "default: table files compressed while pg_dump writes them"),
                              (False, "compress_while_dumping=false: zstd after pg_dump")):
            dump_s, wall = median(stream, "dump"), median(stream, "wall")
            print("| pgops.deploy.pg_backup -Fd -j%d -Z0 + zstd -1, %s: pg_dump + zstd (median of %d) | %.1f | %.2fx "
                  "| %.0f | %.2fx | - | - | - |" % (j, label, len(runs[stream]), dump_s, base["dump_s"] / dump_s,
                                                    man["dump_size"] / 1048576.0, man["dump_size"] / float(base["size"])))
            print("| same, the whole module run (+ globals, row counts, checksums, manifest) | %.1f | %.2fx | %.0f "
                  "| %.2fx | %.1f | - | - |" % (wall, base["dump_s"] / wall, man["dump_size"] / 1048576.0,
                                               man["dump_size"] / float(base["size"]), median(stream, "verify")))
        print("  (module: %d data files, %s compressed while pg_dump wrote them, zstd %.1f s after pg_dump, "
              "exact row counts %.1f s in the dump's snapshot)"
              % (man.get("compressed_files", 0), man.get("compressed_while_dumping", 0),
                 man.get("compress_duration_s", 0), man.get("count_duration_s", 0)))
        print()
        print("targets: dump >= 3x faster, size <= 1.1x, restore >= 1.5x faster than `pg_dump -Fc` / `pg_restore`")
        write_results(dict(dataset=source, db_size=dbsize, jobs=j, rows=rows, rounds=rounds, restore_pairs=pairs,
                           module=dict((("compress_while_dumping" if k else "compress_after_dump"),
                                        dict(wall_s=[r["wall"] for r in v], verify_s=[r["verify"] for r in v],
                                             dump_duration_s=[r["man"]["dump_duration_s"] for r in v],
                                             size=v[-1]["man"]["dump_size"])) for k, v in runs.items())))
    finally:
        if not args.dsn:
            cluster.stop()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
