"""pgops.deploy.preflight against the real PostgreSQL fixture, run through ansible-playbook.

Each run groups several checks; the role must report every failure in one
summary, each saying what was expected and what was found.
"""

import json
import os
import tempfile
import time

import pytest

from pgops_testlib import run_playbook, wait_for

PB = "tests/integration/playbooks/preflight_run.yml"
LOCK_PB = "tests/integration/playbooks/preflight_lock.yml"
FREEZE = [{"name": "no-friday-deploys", "weekdays": ["Friday"], "timezone": "Asia/Jakarta"},
          {"name": "year-end", "start": "2026-12-20 00:00", "end": "2027-01-05 00:00", "timezone": "Asia/Jakarta"}]
ALICE = {"owner": "alice", "controller": "laptop-7", "pid": 4711, "started_at": "2026-11-21T08:00:00Z",
         "run_id": "run-alice", "play_hosts": ["db1", "app1"]}


@pytest.fixture
def work(tmp_path):
    os.chmod(str(tmp_path), 0o755)
    return tmp_path


def base_vars(db, work, **extra):
    ev = dict(
        pgops_db_name=db.name, pgops_db_host=db.host, pgops_db_port=db.port, pgops_db_user=db.user,
        preflight_disk_min_free="1MB", preflight_memory_min_available="16MB",
        preflight_backup_path=str(work / "backups"), preflight_release_path=str(work / "releases"),
        preflight_lock_path=str(work / "lock" / "deploy.lock"),
        test_result_file=str(work / "result.json"),
    )
    ev.update(extra)
    return ev


def run(ev, playbook=PB, **kw):
    proc = run_playbook(playbook, ev, **kw)
    with open(ev["test_result_file"]) as fh:
        return proc, json.load(fh)


def check(result, prefix):
    matches = [c for key, c in result["checks"].items() if key.split("@")[0] == prefix]
    assert matches, "no check %s in %s" % (prefix, sorted(result["checks"]))
    return matches[0]


def test_passes_with_lax_thresholds_and_takes_the_lock(pg_db, work):
    """Also: a Friday freeze overridden with a reason is a warning; inside a maintenance window is ok."""
    ev = base_vars(pg_db, work, preflight_required_vars=["pgops_db_name"], pgops_run_id="run-pass-1",
                   preflight_freeze_windows=FREEZE, preflight_now="2026-11-20T01:15:00+07:00",
                   preflight_maintenance_windows=[{"name": "nightly", "start_time": "22:00", "end_time": "02:00",
                                                   "timezone": "Asia/Jakarta"}],
                   preflight_freeze_override=True,
                   preflight_freeze_override_reason="hotfix for INC-42 approved by on-call")
    proc, result = run(ev)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert result["status"] == "ok" and result["failed"] == []
    freeze = check(result, "freeze_window")
    assert freeze["status"] == "warning" and "no-friday-deploys" in freeze["found"] and "INC-42" in freeze["message"]
    assert "inside nightly" in check(result, "maintenance_window")["found"]
    for name in ("reachable", "server_version", "postgis_available", "disk:data_directory", "disk:backup_path",
                 "disk:release_path", "memory", "long_running_queries", "idle_in_transaction", "blocking_locks",
                 "connections", "required_vars", "maintenance_window", "deploy_lock"):
        assert check(result, name)["status"] == "ok", check(result, name)
    assert check(result, "replication_lag")["status"] == "skipped"
    assert check(result, "server_version")["found"].startswith("PostgreSQL 15")
    # The role ends by taking the lock for this run; it is released by lock_release.
    with open(ev["preflight_lock_path"]) as fh:
        holder = json.load(fh)
    assert holder["run_id"] == "run-pass-1" and holder["play_hosts"] == ["localhost"]


def test_check_mode_runs_checks_but_takes_no_lock(pg_db, work):
    ev = base_vars(pg_db, work)
    proc, result = run(ev, check=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert check(result, "server_version")["status"] == "ok"
    assert not os.path.exists(ev["preflight_lock_path"])


def test_reports_every_failure_at_once(pg_db, pg_cluster, work):
    """Idle transaction, disk threshold, missing variable, unreachable host, Friday freeze and a held
    deploy lock: one summary names them all, each with expected vs found."""
    (work / "lock").mkdir()
    (work / "lock" / "deploy.lock").write_text(json.dumps(ALICE))
    conn = pg_db.connect(autocommit=False)
    try:
        cur = conn.cursor()
        cur.execute("SET application_name = 'stuck-worker'")
        cur.execute("SELECT txid_current()")
        pid = conn.get_backend_pid()
        time.sleep(2.2)
        inventory = work / "hosts.ini"
        inventory.write_text(
            "localhost ansible_connection=local ansible_python_interpreter=%s\n"
            "ghost ansible_host=127.0.0.1 ansible_port=1 ansible_connection=ssh ansible_ssh_common_args='-o ConnectTimeout=3'\n"
            % os.path.join(os.path.dirname(__import__("sys").executable), "python"))
        ev = base_vars(pg_db, work, preflight_idle_in_transaction_seconds=1,
                       preflight_backup_min_free="900TB",
                       preflight_required_vars=["pgops_db_name", "santri_secret_key"],
                       santri_present_secret="hunter2", preflight_db_inventory_host="localhost",
                       preflight_freeze_windows=FREEZE, preflight_now="2026-11-20T10:00:00+07:00",
                       pgops_run_id="run-bob",
                       preflight_app_hosts=["localhost"])
        proc, result = run(ev, inventory=str(inventory))
    finally:
        conn.close()
    out = proc.stdout
    assert proc.returncode != 0
    assert result["status"] == "failed"
    idle = check(result, "idle_in_transaction")
    assert idle["status"] == "failed"
    assert "pid %d" % pid in idle["found"] and "stuck-worker" in idle["found"]
    assert "idle in transaction for" in idle["found"]
    disk = check(result, "disk:backup_path")
    assert disk["status"] == "failed" and "900.0 TiB" in disk["expected"] and "free on" in disk["found"]
    req = check(result, "required_vars")
    assert req["status"] == "failed" and "santri_secret_key" in req["found"]
    unreachable = result["checks"]["reachable@ghost"]
    assert unreachable["status"] == "failed" and "unreachable" in unreachable["found"]
    # One summary names every failure (required vars are inventory-side, so ghost misses it too).
    summary = out[out.index("preflight: "):]
    for needle in ("pid %d" % pid, "900.0 TiB", "santri_secret_key", "host ghost: expected reachable",
                   "required variables on ghost", "inside no-friday-deploys (on Friday Asia/Jakarta)",
                   "held by alice on laptop-7 (pid 4711), run run-alice"):
        assert needle in summary, needle
    assert "7 check(s) failed" in summary, summary[:3000]
    freeze = check(result, "freeze_window")
    assert freeze["status"] == "failed" and "year-end" not in freeze["found"]
    assert check(result, "deploy_lock")["status"] == "failed"
    assert "hunter2" not in out
    assert json.loads((work / "lock" / "deploy.lock").read_text())["run_id"] == "run-alice", \
        "a failed preflight must not touch the lock"


def test_freeze_override_without_reason_fails_before_any_check(pg_db, work):
    ev = base_vars(pg_db, work, preflight_freeze_windows=FREEZE, preflight_freeze_override=True)
    proc = run_playbook(PB, ev)
    assert proc.returncode != 0
    assert "expected preflight_freeze_override_reason to say why" in proc.stdout
    assert "Database | check" not in proc.stdout


def test_deploy_lock_refusal_break_and_release(pg_db, work):
    lock = work / "lock" / "deploy.lock"
    lock.parent.mkdir()
    lock.write_text(json.dumps(ALICE))
    ev = base_vars(pg_db, work, pgops_run_id="run-bob")

    # lock_acquire alone refuses too and leaves alice's lock untouched.
    proc = run_playbook(LOCK_PB, ev)
    assert proc.returncode != 0 and "held by alice on laptop-7 (pid 4711)" in proc.stdout
    assert json.loads(lock.read_text())["run_id"] == "run-alice"

    # lock_release from another run leaves it alone.
    proc, res = run(dict(ev, test_acquire=False), playbook=LOCK_PB)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert res["exists_after"] is True and json.loads(lock.read_text())["run_id"] == "run-alice"

    # Breaking the stale lock: bob acquires, holds it, releases it.
    proc, res = run(dict(ev, preflight_lock_break=True), playbook=LOCK_PB)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert res["held"]["run_id"] == "run-bob" and res["held"]["owner"]
    assert res["held"]["pid"] > 0 and res["held"]["started_at"].endswith("Z")
    assert res["lock_fact"]["acquired"] is True
    assert res["exists_after"] is False


def test_concurrent_acquire_has_exactly_one_winner(pg_db, work):
    import subprocess
    import sys

    from pgops_testlib import ROOT, module_env

    procs = []
    for name in ("one", "two"):
        ev = base_vars(pg_db, work, pgops_run_id="run-%s" % name, test_release=False,
                       test_result_file=str(work / ("%s.json" % name)))
        env = module_env()
        env.update(ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1")
        procs.append(subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), LOCK_PB, "-i", "localhost,",
             "-c", "local", "-e", json.dumps(ev)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=300)[0] for p in procs]
    rcs = sorted(p.returncode for p in procs)
    assert rcs[0] == 0 and rcs[1] != 0, outs
    loser = outs[[p.returncode for p in procs].index(rcs[1])]
    assert "held by" in loser
    holder = json.loads((work / "lock" / "deploy.lock").read_text())
    winner = ["one", "two"][[p.returncode for p in procs].index(0)]
    assert holder["run_id"] == "run-%s" % winner
