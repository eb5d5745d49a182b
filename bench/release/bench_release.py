#!/usr/bin/env python3
"""Requests failed / max latency during an app restart: runbook vs app_release.

Open-loop request generator (fixed rate, every request on its own thread, bounded count)
against GET /health of one app host of the `release_rollback` Molecule scenario, while
one of these runs:

  runbook    `systemctl stop santri_api && systemctl start santri_api` (socket closed in between,
             like the runbook's unit where gunicorn binds the port itself)
  restart    `systemctl restart santri_api.service` (app_release: socket-activated, socket kept)
  release    `ansible-playbook playbooks/release.yml -l HOST -e app_release_version=...`
             (switch current to another release + restart + health gate)
  supervisor `supervisorctl restart santri_api` on the supervisor host (documented limitation)

Prerequisite (containers up, both releases present):
  molecule converge -s release_rollback && ansible-playbook ... release.yml -e app_release_version=v1.1.0
  (or simply: molecule converge; molecule verify without destroy)

Usage: bench/release/bench_release.py [--rate 25] [--seconds 12] [--modes runbook,restart,release,supervisor]
Traffic goes only to the scenario's own container addresses.
"""

import argparse
import concurrent.futures
import glob
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SYSTEMD_HOST = "pgops-release-app1"
SUPERVISOR_HOST = "pgops-release-app2"


def container_ip(name):
    out = subprocess.run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name],
                         check=True, capture_output=True, text=True).stdout.strip()
    if not out.startswith("172.") and not out.startswith("10.") and not out.startswith("192.168."):
        raise SystemExit("unexpected address for %s: %r" % (name, out))
    return out


def one_request(url, timeout):
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            resp.read()
            ok = resp.status == 200
    except (urllib.error.URLError, OSError):
        ok = False
    return ok, time.monotonic() - started, started


def load(url, rate, seconds, action, timeout=10.0, max_seconds=180.0):
    """Fire requests at a fixed rate from 2 s before `action` until 2 s after it ends (at least
    `seconds`, at most `max_seconds`: the count stays bounded). Returns stats."""
    results = []
    lock = threading.Lock()
    action_result = {}
    done = threading.Event()

    def record(fut):
        with lock:
            results.append(fut.result())

    def run_action():
        t0 = action_result["t0"] = time.monotonic()
        proc = subprocess.run(action, capture_output=True, text=True)
        action_result.update(rc=proc.returncode, seconds=time.monotonic() - t0, tail=(proc.stdout + proc.stderr)[-400:])
        done.set()

    actor = threading.Timer(2.0, run_action)
    with concurrent.futures.ThreadPoolExecutor(max_workers=200) as pool:
        start = time.monotonic()
        actor.start()
        i = 0
        ended_at = None
        while True:
            now = time.monotonic()
            if done.is_set() and ended_at is None:
                ended_at = now
            if now - start >= max_seconds:
                break
            if now - start >= seconds and ended_at is not None and now - ended_at >= 2.0:
                break
            delay = start + i / rate - now
            if delay > 0:
                time.sleep(delay)
            pool.submit(one_request, url, timeout).add_done_callback(record)
            i += 1
        actor.join()
    latencies = sorted(r[1] for r in results)
    failed = sum(1 for r in results if not r[0])
    # When the slow (> 0.5 s) and failed requests were sent, relative to the start of the action.
    slow = sorted((round(r[2] - action_result.get("t0", start), 1), round(r[1], 2), r[0])
                  for r in results if r[1] > 0.5 or not r[0])
    return {
        "requests": len(results), "failed": failed,
        "max_ms": round(latencies[-1] * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "action_rc": action_result.get("rc"), "action_s": round(action_result.get("seconds", 0), 1),
        "action_tail": action_result.get("tail", ""), "slow": slow,
    }


def current_version(url):
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())["version"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=25.0, help="requests per second (default 25)")
    ap.add_argument("--seconds", type=float, default=12.0, help="length of one run (default 12 s)")
    ap.add_argument("--modes", default="runbook,restart,release,release-new,supervisor")
    ap.add_argument("--json", help="write the results here as JSON")
    args = ap.parse_args()
    if args.rate * 180 > 10000:
        raise SystemExit("bounded: at most 10000 requests per run (rate * 180 s)")

    url1 = "http://%s:8000/health" % container_ip(SYSTEMD_HOST)
    url2 = "http://%s:8000/health" % container_ip(SUPERVISOR_HOST)
    # The newest one: clones of the project elsewhere leave their own molecule.<hash>.* dirs.
    found = sorted(glob.glob(os.path.expanduser("~/.ansible/tmp/molecule.*.release_rollback/inventory")),
                   key=os.path.getmtime)
    inv = os.environ.get("MOLECULE_INVENTORY") or (found[-1] if found else None)
    if not inv:
        raise SystemExit("no release_rollback inventory: run `molecule converge -s release_rollback` first")
    env_pb = ["env", "PATH=%s/.venv/bin:%s" % (ROOT, os.environ["PATH"]), "ANSIBLE_CONFIG=%s/ansible.cfg" % ROOT]
    dexec = ["docker", "exec"]
    modes = {
        "runbook": (url1, dexec + [SYSTEMD_HOST, "sh", "-c",
                                   "systemctl stop santri_api.socket santri_api.service && "
                                   "systemctl start santri_api.socket santri_api.service"]),
        "restart": (url1, dexec + [SYSTEMD_HOST, "systemctl", "restart", "santri_api.service"]),
        "release": (url1, None),      # to the other version, reusing its release when built
        "release-new": (url1, None),  # to the other version, a new build (app_release_force_new)
        "supervisor": (url2, dexec + [SUPERVISOR_HOST, "supervisorctl", "restart", "santri_api"]),
    }
    rows = {}
    for n, mode in enumerate(args.modes.split(",")):
        url, action = modes[mode]
        if mode.startswith("release"):
            target = "v1.0.0" if current_version(url) == "1.1.0" else "v1.1.0"
            action = env_pb + ["ansible-playbook", "-i", inv, "%s/playbooks/release.yml" % ROOT,
                               "-l", SYSTEMD_HOST, "-e", "app_release_version=%s" % target,
                               "-e", "app_release_force_new=%s" % (mode == "release-new")]
        print("== %s: requests at %.0f/s from 2 s before to 2 s after: %s" % (mode, args.rate, " ".join(action[-6:])),
              flush=True)
        label = mode if mode not in rows else "%s #%d" % (mode, n + 1)
        if mode.startswith("release"):
            label += " (-> %s)" % target
        rows[label] = load(url, args.rate, args.seconds, action)
        if rows[label]["action_rc"] != 0:
            print("   action failed rc=%s: %s" % (rows[label]["action_rc"], rows[label]["action_tail"]), file=sys.stderr)
        time.sleep(2)

    base = rows.get("runbook")
    print()
    print("| mode | requests | failed | failed ratio vs runbook | max latency ms | max ratio vs runbook | p99 ms | p50 ms | action s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mode, r in rows.items():
        fr = ("%.2f" % (r["failed"] / base["failed"])) if base and base["failed"] else "n/a"
        mr = ("%.2f" % (r["max_ms"] / base["max_ms"])) if base and base["max_ms"] else "n/a"
        print("| %s | %d | %d | %s | %.0f | %s | %.0f | %.0f | %.1f |" % (
            mode, r["requests"], r["failed"], fr, r["max_ms"], mr, r["p99_ms"], r["p50_ms"], r["action_s"]))
    for mode, r in rows.items():
        if r["slow"]:
            print("%s: slow/failed requests (sent at s after the action started, latency s): %s"
                  % (mode, " ".join("+%s:%s%s" % (t, lat, "" if ok else "(failed)") for t, lat, ok in r["slow"][:30])))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
