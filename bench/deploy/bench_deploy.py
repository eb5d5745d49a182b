#!/usr/bin/env python3
"""Full deploy vs the runbook's bare commands, side by side on the same data (not run in CI).

    .venv/bin/python bench/deploy/bench_deploy.py [--rows 1700000] [--rounds 5] [--keep]

On fresh containers (pgops-bench-db, -app1, -app2; images from `make testbed`):
  1. prepare + deploy v1.0.0 + generate --rows santri (1.7 M rows ~ 1.1 GB),
  2. pipeline:  deploy.yml v1.0.0 -> v1.1.0           (per-phase times from its report); the
                same again after a reset for each of VARIANTS: pgops_build_during_backup=false
                (build after the backup), backup_nice=0 (the dump at normal CPU priority)
  3. reset:     revert V8..V6 (the runbook's release goes to its own directory)
  4. runbook:   pg_dump -Fc; psql -v ON_ERROR_STOP=1 -f V6..V8; on each app host
                git clone + python -m venv + pip install -r requirements.txt
                + systemctl restart + curl /health   (the same work, done by hand)
     rounds:    steps 2-4 again --rounds - 1 times with the default only (reset, deploy, reset,
                runbook), so that every ratio compares two runs minutes apart; prints the median
  5. re-runs:   deploy.yml v1.1.0 again (nothing to migrate, same release), with the default
                pgops_backup_policy=changes (nothing changes: no dump) and =always (dump anyway)
Prints a table and the ratios pipeline / runbook (target <= 1.3), per round, and the no-change
re-run time (target < 60 s).
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(ROOT, ".venv", "bin")
NET = "pgops-bench"
HOSTS = {"pgops-bench-db": "pgops-db:bookworm", "pgops-bench-app1": "pgops-app:bookworm",
         "pgops-bench-app2": "pgops-app:bookworm"}
WORK = os.path.join(ROOT, "bench", "results", "deploy")
INVENTORY = os.path.join(WORK, "inventory")
SAME_WORK = ("backup", "prepare", "migrate", "release")  # what the runbook's commands also do
# the 1.1.0 migration's revert scripts, then one more SQL command (history bookkeeping) to append
# Each deploys v1.0.0 -> v1.1.0 from the same state: (column label, log, extra arguments).
VARIANTS = (
    ("build||backup", "deploy.log", ()),                     # the defaults
    ("build after", "deploy-sequential.log", ("-e", "pgops_build_during_backup=false")),
    ("backup_nice=0", "deploy-nice0.log", ("-e", "backup_nice=0")),  # the dump at normal priority
)
REVERT_V6_V8 = ("cd /var/lib/pgops/migrations/santri && for f in R8__*.sql R7__*.sql R6__*.sql; do "
                "sudo -u postgres psql -X -q -v ON_ERROR_STOP=1 -d santri -f $f; done && "
                "sudo -u postgres psql -X -q -d santri -c ")


def sh(cmd, check=True, quiet=False):
    proc = subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          executable="/bin/bash")
    if check and proc.returncode != 0:
        sys.exit("command failed (%s): %s\n%s" % (proc.returncode, cmd, proc.stdout[-4000:]))
    if not quiet:
        sys.stdout.write(".")
        sys.stdout.flush()
    return proc.stdout


def dexec(host, cmd, check=True):
    return sh("docker exec %s bash -c %s" % (host, shlex.quote(cmd)), check=check, quiet=True)


def timed(fn, *args):
    t0 = time.time()
    fn(*args)
    return time.time() - t0


def write_inventory():
    os.makedirs(INVENTORY, exist_ok=True)
    with open(os.path.join(INVENTORY, "hosts.yml"), "w") as fh:
        fh.write("all:\n  children:\n    db_servers:\n      hosts:\n        pgops-bench-db:\n"
                 "    app_servers:\n      hosts:\n        pgops-bench-app1:\n        pgops-bench-app2:\n")
    link = os.path.join(INVENTORY, "group_vars")
    if not os.path.islink(link):
        os.symlink(os.path.join(ROOT, "inventories", "demo", "group_vars"), link)


def bench_vars():
    """The demo's HTTP checks with room for the search on 1.7 M santri: its 2 s latency bound is sized for the
    demo's data, and on this bench it takes 0.9-1.8 s (twice just over 2 s in 2026-11-22's runs, ROLLED BACK)."""
    with open(os.path.join(ROOT, "inventories", "demo", "group_vars", "all.yml")) as fh:
        checks = yaml.safe_load(fh)["__pgops_demo_checks"]
    for check in checks:
        if check["name"] == "search uses the trigram index":
            check["max_latency_ms"] = 5000
    path = os.path.join(WORK, "bench-vars.json")
    with open(path, "w") as fh:
        json.dump({"__pgops_demo_checks": checks}, fh)
    return path


def playbook(path, *extra, log=None, check=True):
    env = dict(os.environ, PATH=BIN + ":" + os.environ["PATH"], ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
               PGOPS_DEMO_DIR=os.path.join(WORK, "demo"), PGOPS_REPORT_DIR=os.path.join(WORK, "reports"))
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", INVENTORY, os.path.join(ROOT, path)] + list(extra)
    if path == "deploy.yml":
        argv += ["-e", "@" + bench_vars()]
    proc = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if log:  # per-task times (profile_tasks) for a closer look
        with open(os.path.join(WORK, log), "w") as fh:
            fh.write(proc.stdout)
    if proc.returncode != 0 and check:
        sys.exit("%s failed:\n%s" % (path, proc.stdout[-5000:]))
    return proc.returncode


def report():
    with open(os.path.join(WORK, "reports", "latest.json")) as fh:
        return json.load(fh)


def start_containers():
    sh("docker rm -f %s >/dev/null 2>&1; docker network rm %s >/dev/null 2>&1; docker network create %s >/dev/null"
       % (" ".join(HOSTS), NET, NET), check=False)
    for name, image in HOSTS.items():
        sh("docker run -d --name %s --hostname %s --network %s --tmpfs /run --tmpfs /run/lock --tmpfs /tmp "
           "-v /sys/fs/cgroup:/sys/fs/cgroup:ro --cap-add SYS_NICE --stop-signal SIGRTMIN+3 %s /lib/systemd/systemd >/dev/null"
           % (name, name, NET, image))
    time.sleep(5)


def runbook(app_hosts, repo_url):
    """The runbook's commands, exactly as an operator types them, timed per step."""
    steps = {}
    db = "pgops-bench-db"
    steps["backup (pg_dump -Fc)"] = timed(dexec, db, "sudo -u postgres pg_dump -Fc -f /var/tmp/runbook.dump santri")
    # the db host has no git: the migrations of v1.1.0 come from the controller's copy of the repo
    dexec(db, "rm -rf /var/tmp/mig && mkdir -p /var/tmp/mig/src")
    sh("git -C %s/demo/sample/santri_api.git archive v1.1.0 migrations | docker exec -i %s tar -x -C /var/tmp/mig/src"
       % (WORK, db), quiet=True)
    dexec(db, "chown -R postgres /var/tmp/mig")
    steps["migrate (psql -f V6..V8)"] = timed(dexec, db, " && ".join(
        "sudo -u postgres psql -X -q -v ON_ERROR_STOP=1 -d santri -f /var/tmp/mig/src/migrations/%s" % f
        for f in ("V6__matviews.sql", "V7__skor_updated_index.sql", "V8__analyze.sql")))

    def release(host):
        dexec(host, "rm -rf /srv/runbook && git clone -q --branch v1.1.0 %s /srv/runbook" % repo_url)
        dexec(host, "cd /srv/runbook && python3 -m venv .venv && .venv/bin/pip install -q --no-index "
                    "--find-links $(ls -d /srv/santri_api/shared/wheelhouse/*/ | head -1) -r requirements.txt")
        dexec(host, "systemctl restart santri_api.service && for i in $(seq 1 60); do "
                    "curl -fsS http://127.0.0.1:8000/health >/dev/null && exit 0; sleep 0.5; done; exit 1")
    steps["release (git clone, venv, pip, restart, curl) x%d" % len(app_hosts)] = sum(
        timed(release, h) for h in app_hosts)
    return steps


def pipeline_run(log, *extra):
    """deploy.yml v1.0.0 -> v1.1.0: (wall s, {phase: s}, backup-start -> release-end span s)."""
    t0 = time.time()
    playbook("deploy.yml", "-e", "app_release_version=v1.1.0", "-e", "pgops_demo_has_data=true", *extra, log=log)
    total = time.time() - t0
    rep = report()
    # The release may be built while the db host dumps: the same work is the wall span from the
    # first of these phases starting to the last one ending, not the sum of their durations.
    work = [p for p in rep["phases"] if p["name"] in SAME_WORK and p.get("offset_s") is not None]
    span = max(p["offset_s"] + (p.get("duration_s") or 0.0) for p in work) - min(p["offset_s"] for p in work)
    return total, dict((p["name"], p.get("duration_s") or 0.0) for p in rep["phases"]), span


def back_to_v100(apps, before, history_sql="DELETE FROM pgops.schema_history WHERE version::int >= 6"):
    """Undo a pipeline run: revert V8..V6 and their history rows, switch the apps back to the v1.0.0
    release (rollback.yml) and remove what the run built, so that the next run does the same work."""
    dexec("pgops-bench-db", REVERT_V6_V8 + "\"%s\"" % history_sql)
    playbook("playbooks/rollback.yml")
    for h in apps:
        keep = set(before[h].split())
        for sub in ("releases", "shared/wheelhouse"):
            for entry in dexec(h, "ls /srv/santri_api/%s" % sub).split():
                if entry not in keep:
                    dexec(h, "rm -rf /srv/santri_api/%s/%s" % (sub, entry))


def no_change_reruns():
    """deploy.yml v1.1.0 again on v1.1.0: nothing to migrate, the same release; the default backup policy
    (changes: no dump) and always (a dump anyway)."""
    reruns = {}
    for policy in ("changes", "always"):
        t0 = time.time()
        # A failed re-run (the report says why) is printed with its status; the numbers above still count.
        playbook("deploy.yml", "-e", "app_release_version=v1.1.0", "-e", "pgops_demo_has_data=true",
                 "-e", "pgops_backup_policy=%s" % policy, log="rerun-%s.log" % policy, check=False)
        rep = report()
        reruns[policy] = (time.time() - t0, dict((p["name"], p.get("duration_s") or 0.0) for p in rep["phases"]),
                          rep["status"])
    return reruns


def print_reruns(reruns):
    for policy, (secs, rphases, status) in reruns.items():
        print("no-change re-run, pgops_backup_policy=%s: %.1f s (target < 60 s), %s; phases: %s" % (
            policy, secs, status, ", ".join("%s %.1f" % (n, rphases.get(n, 0.0)) for n in
                                            ("preflight", "backup", "prepare", "migrate", "release", "matviews",
                                             "verify"))))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1700000, help="santri rows (1.7 M ~ 1.1 GB)")
    ap.add_argument("--keep", action="store_true", help="keep the containers")
    ap.add_argument("--rounds", type=int, default=5,
                    help="rounds of the default deploy and the runbook, alternating (round 1 adds the variants)")
    ap.add_argument("--reruns-only", action="store_true",
                    help="only the no-change re-runs, on containers kept by an earlier --keep run")
    args = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    write_inventory()
    if args.reruns_only:
        print_reruns(no_change_reruns())
        return
    print("bench/deploy: containers, first deploy, %d rows of data (this takes a while)" % args.rows)
    start_containers()
    playbook("examples/demo/prepare.yml")
    playbook("deploy.yml", "-e", "app_release_version=v1.0.0")
    playbook("examples/demo/load_data.yml", "-e", "demo_rows=%d" % args.rows)
    # A production database is not freshly bulk-loaded: vacuum and analyze now, so that autovacuum does not
    # work through the new rows during the first measured deploy only.
    dexec("pgops-bench-db", "sudo -u postgres psql -X -q -d santri -c 'VACUUM (ANALYZE)' -c 'CHECKPOINT'")
    size = dexec("pgops-bench-db", "sudo -u postgres psql -Atc \"SELECT pg_size_pretty(pg_database_size('santri'))\"")

    apps = ["pgops-bench-app1", "pgops-bench-app2"]
    before = dict((h, dexec(h, "ls /srv/santri_api/releases /srv/santri_api/shared/wheelhouse")) for h in apps)
    # Round 1: the default (the release built on the app hosts while the db host dumps, at backup_nice 10),
    # then each variant after a reset, then the runbook by hand. Later rounds: the default and the runbook
    # again, alternating, so that each ratio compares two runs minutes apart (this machine's speed drifts).
    runs, rounds = [], []
    for rnd in range(args.rounds):
        for i, (label, log, extra) in enumerate(VARIANTS if rnd == 0 else VARIANTS[:1]):
            if rnd and not i:  # after the runbook: V6..V8 applied by hand, their history rows set aside
                back_to_v100(apps, before, history_sql="DROP TABLE pgops.bench_history")
            elif i:
                back_to_v100(apps, before)
            run = (label,) + pipeline_run(log if rnd == 0 else log.replace(".log", "-r%d.log" % (rnd + 1)), *extra)
            if rnd == 0:
                runs.append(run)
            if not i:
                default_span = run[3]

        # back to the v1.0.0 state, then the runbook does the same work by hand
        dexec("pgops-bench-db", REVERT_V6_V8 + "\"CREATE TABLE pgops.bench_history AS "
                                "SELECT * FROM pgops.schema_history WHERE version::int >= 6; DELETE FROM "
                                "pgops.schema_history WHERE version::int >= 6\"")
        t0 = time.time()
        round_steps = runbook(apps, "file:///opt/git/santri_api.git")
        rounds.append((time.time() - t0, default_span, round_steps))
        if rnd == 0:
            steps, runbook_total = round_steps, rounds[0][0]
        sys.stdout.write(" round %d: %.2fx " % (rnd + 1, default_span / rounds[-1][0]))
    # the runbook applied V6..V8 by hand: put their history rows back, so that the re-runs find nothing to do
    dexec("pgops-bench-db", "sudo -u postgres psql -X -q -d santri -c \"INSERT INTO pgops.schema_history "
                            "OVERRIDING SYSTEM VALUE SELECT * FROM pgops.bench_history; DROP TABLE pgops.bench_history\"")

    reruns = no_change_reruns()

    print("\n\nDatabase: %s, %d santri rows" % (size.strip(), args.rows))
    print("%-48s %10s" % ("runbook step", "seconds"))
    for name, secs in steps.items():
        print("%-48s %10.1f" % (name, secs))
    print("%-48s %10.1f" % ("runbook total (commands only)", runbook_total))
    print()
    print("%-40s" % "pipeline phase (deploy.yml)" + "".join("%16s" % label[:15] for label, *_ in runs))
    for name in ("preflight", "backup", "prepare", "migrate", "release", "matviews", "verify"):
        print("%-40s" % name + "".join("%16.1f" % phases.get(name, 0.0) for _l, _t, phases, _s in runs))
    print("%-40s" % "backup start -> release end (wall)" + "".join("%16.1f" % span for *_, span in runs))
    print("%-40s" % "pipeline total (wall)" + "".join("%16.1f" % total for _l, total, _p, _s in runs))
    print()
    for (label, total, _phases, span), (_label, _log, extra) in zip(runs, VARIANTS):
        print("%s (%s): ratio pipeline/runbook, same work (backup, prepare, migrate, release; wall): %.2fx "
              "(target <= 1.3); everything (adds preflight, matviews, verify, report): %.2fx"
              % (label, " ".join(extra[1::2]) or "defaults", span / runbook_total, total / runbook_total))
    print()
    ratios = sorted(span / rb for rb, span, _steps in rounds)
    print("%-8s %16s %26s %16s %8s" % ("round", "runbook (s)", "dump / psql / release x2", "deploy.yml (s)", "ratio"))
    for n, (rb, span, rsteps) in enumerate(rounds, 1):
        print("%-8d %16.1f %26s %16.1f %7.2fx" % (n, rb, " / ".join("%.1f" % v for v in rsteps.values()), span, span / rb))
    print("defaults, same work: median ratio of %d alternating rounds %.2fx (target <= 1.3), range %.2fx-%.2fx"
          % (len(ratios), statistics.median(ratios), ratios[0], ratios[-1]))
    print()
    print_reruns(reruns)
    if not args.keep:
        sh("docker rm -f %s >/dev/null; docker network rm %s >/dev/null" % (" ".join(HOSTS), NET), check=False)


if __name__ == "__main__":
    main()
