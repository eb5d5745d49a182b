"""The product end to end (deploy.yml on 1 db + 2 app hosts): what the first deploy
left, then data + a second deploy that must apply no migrations and reuse the release."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))

from deploy_helpers import APPS, DB, ansible_playbook, host, latest_report, run_like_awx  # noqa: E402


def test_first_deploy_report_is_success_with_every_phase():
    report = latest_report()
    assert report["status"] == "SUCCESS", report["errors"]
    assert [(p["name"], p["status"]) for p in report["phases"]] == [
        (name, "ok") for name in ("preflight", "backup", "prepare", "migrate", "release", "matviews", "verify")]
    assert [m["version"] for m in report["migrations"]["applied"]] == [str(v) for v in range(1, 9)]
    assert report["backup"]["verified"] is True
    assert sorted(report["releases"]) == sorted(APPS)
    assert len(set(r["release_id"] for r in report["releases"].values())) == 1   # same release everywhere


def test_every_app_host_serves_the_deployed_revision():
    report = latest_report()
    for name in APPS:
        h = host(name)
        release = report["releases"][name]
        health = json.loads(h.check_output("curl -fsS http://127.0.0.1:8000/health"))
        assert health == {"status": "ok", "db": "ok", "version": "1.1.0", "revision": release["revision"]}
        target = h.check_output("readlink /srv/santri_api/current")
        assert target.endswith("releases/" + release["release_id"])
        assert h.file("/srv/santri_api/shared/.env").mode == 0o600
        assert h.service("santri_api.socket").is_running


def test_backup_manifest_is_verified_and_the_lock_is_released():
    report = latest_report()
    h = host(DB)
    manifest = json.loads(h.check_output("cat %s/manifest.json" % report["backup"]["path"]))
    assert manifest["verified"] is True
    assert manifest["checksum"] == report["backup"]["checksum"]
    assert not h.file("/var/lib/pgops/deploy.lock").exists


def test_second_deploy_through_ansible_runner_applies_nothing_and_reuses_the_release(tmp_path):
    """The second deploy goes through ansible-runner exactly as an AWX job does, with
    pgops_backup_policy=pending_migrations: nothing to migrate, so no dump, but the row counts
    are still snapshotted and verified."""
    first = latest_report()
    data = ansible_playbook("examples/demo/load_data.yml", "-e", "demo_rows=3000")
    assert data.returncode == 0, data.stdout[-3000:]
    job = run_like_awx("deploy.yml", {"pgops_demo_has_data": True, "app_release_version": "v1.1.0",
                                      "pgops_backup_policy": "pending_migrations"}, tmp_path)
    assert job.rc == 0 and job.status == "successful", job.stdout.read()[-5000:]
    events = [e["event"] for e in job.events]
    assert "playbook_on_start" in events and "playbook_on_stats" in events
    assert sorted(job.stats["ok"]) == sorted(APPS + [DB])
    assert not job.stats["failures"] and not job.stats["dark"]
    second = latest_report()
    assert second["run"]["id"] != first["run"]["id"]
    assert second["status"] == "SUCCESS"
    assert second["migrations"]["applied"] == []
    assert second["migrations"]["version_before"] == second["migrations"]["version_after"] == "8"
    for name in APPS:
        assert second["releases"][name]["release_id"] == first["releases"][name]["release_id"]
    phases = dict((p["name"], p) for p in second["phases"])
    assert phases["backup"]["status"] == "skipped", phases["backup"]
    assert "no pending migrations" in phases["backup"]["message"], phases["backup"]
    assert not second["backup"], "nothing to migrate, nothing dumped: %s" % second["backup"]
    # The backup phase's plan found nothing to change, so the migrations phase did not run again.
    assert phases["migrate"]["status"] == "skipped", phases["migrate"]
    assert "nothing to apply at 8" in phases["migrate"]["message"], phases["migrate"]
    assert second["migrations"]["extension_changes"] == [], second["migrations"]
    checks = dict((c["name"], c) for c in second["verification"]["checks"])
    rows = checks["row_count:public.santri_pribadi"]
    assert rows["status"] == "ok" and "3000" in json.dumps(rows), rows  # baseline: the snapshot of the backup phase
    logs = [c for n, c in checks.items() if n.startswith("log:journal:santri_api")]
    assert logs and all(c["status"] == "ok" for c in logs), logs
    plan = [c for n, c in checks.items() if "GIST" in n]
    assert plan and plan[0]["status"] == "ok", plan
    views = dict((v["name"], v) for v in second["matviews"])
    assert views["public.mv_santri_stats_kabupaten"]["method"] == "concurrent"
    assert views["public.mv_santri_stats_kabupaten"]["rows_after"] > 0


def test_third_deploy_with_the_default_backup_policy_changes_nothing_and_dumps_nothing():
    """pgops_backup_policy=changes (the default): every app host already runs the revision and
    nothing is pending, so the run takes no dump (an exact row-count snapshot instead), skips the
    migrations phase and reuses the release."""
    before = latest_report()
    backups = host(DB).check_output("ls /var/backups/pgops/santri")
    proc = ansible_playbook("deploy.yml", "-e", "pgops_demo_has_data=true", "-e", "app_release_version=v1.1.0")
    assert proc.returncode == 0, proc.stdout[-5000:]
    third = latest_report()
    assert third["run"]["id"] != before["run"]["id"] and third["status"] == "SUCCESS", third["errors"]
    phases = dict((p["name"], p) for p in third["phases"])
    revision = before["releases"][APPS[0]]["revision"]
    assert phases["backup"]["status"] == "skipped" and not third["backup"], phases["backup"]
    assert "nothing changes: every app host already runs %s" % revision[:12] in phases["backup"]["message"]
    assert host(DB).check_output("ls /var/backups/pgops/santri") == backups
    assert phases["migrate"]["status"] == "skipped", phases["migrate"]
    assert "nothing to apply at 8" in phases["migrate"]["message"], phases["migrate"]
    assert third["migrations"]["applied"] == [] and third["migrations"]["pending"] == []
    checks = dict((c["name"], c) for c in third["verification"]["checks"])
    assert checks["row_count:public.santri_pribadi"]["status"] == "ok"
    for name in APPS:
        assert third["releases"][name]["release_id"] == before["releases"][name]["release_id"]
