"""deploy.yml failure policies, for real, on 1 db + 2 app hosts that run v1.0.0 (converge)."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))

from deploy_helpers import APPS, DB, DEMO_DIR, current_release, deploy, health, host, psql  # noqa: E402

LOCK = "/var/lib/pgops/deploy.lock"


def phases(report):
    return dict((p["name"], p["status"]) for p in report["phases"])


def errors(report):
    return " | ".join("%s %s: %s" % (e["host"], e["task"], e["msg"]) for e in report["errors"])


def baseline():
    return dict((name, (current_release(name), health(name)["revision"])) for name in APPS)


def test_check_mode_is_a_dry_run_of_the_whole_pipeline():
    before = baseline()
    version = psql("SELECT max(version::int) FROM pgops.schema_history WHERE success")
    backups = host(DB).check_output("ls /var/backups/pgops/santri | wc -l")
    proc, report = deploy("--check", "-e", "app_release_version=v1.1.0")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert report["dry_run"] is True and report["status"] == "SUCCESS"
    assert report["migrations"]["pending"] == ["V6__matviews.sql", "V7__skor_updated_index.sql", "V8__analyze.sql"]
    assert phases(report)["verify"] == "skipped"
    assert psql("SELECT max(version::int) FROM pgops.schema_history WHERE success") == version
    assert host(DB).check_output("ls /var/backups/pgops/santri | wc -l") == backups
    assert baseline() == before
    assert not host(DB).file(LOCK).exists


def test_a_single_phase_runs_with_its_tag():
    proc, report = deploy("--tags", "backup")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert report["status"] == "SUCCESS"
    status = phases(report)
    assert status["backup"] == "ok" and report["backup"]["verified"] is True
    assert status["preflight"] == status["prepare"] == status["migrate"] == status["release"] == "not run"


def test_preflight_refuses_long_transaction_disk_and_freeze_window_at_once():
    before = baseline()
    # A real idle-in-transaction session on the db host, kept open in the background.
    host(DB).run("sudo -u postgres bash -c '(echo \"BEGIN; SELECT count(*) FROM santri_pribadi;\"; sleep 90) "
                 "| psql -X -d santri -q >/dev/null 2>&1 &'")
    time.sleep(3)
    try:
        proc, report = deploy(
            "-e", "preflight_idle_in_transaction_seconds=1",
            "-e", "preflight_backup_min_free=900TB",
            "-e", '{"preflight_freeze_windows": [{"name": "change freeze", "weekdays": '
                  '["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]}]}')
    finally:
        psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE state = 'idle in transaction' "
             "AND datname = 'santri'")
    assert proc.returncode != 0
    assert report["status"] == "FAILED"
    assert phases(report)["preflight"] == "failed"
    assert phases(report)["backup"] == "not run" and phases(report)["migrate"] == "not run"
    text = errors(report)
    assert "idle in transaction" in text, text
    assert "expected >= 900.0 TiB free on /var/backups/pgops" in text, text
    assert "change freeze" in text, text
    assert not host(DB).file(LOCK).exists                 # preflight failed before taking the lock
    assert baseline() == before


def test_a_concurrent_deploy_is_refused_and_its_lock_left_alone():
    holder = ('{"owner": "alice", "controller": "laptop-7", "pid": 4711, "started_at": "2026-11-21T10:00:00Z",'
              ' "run_id": "other-run", "play_hosts": [], "playbook": "deploy.yml"}')
    host(DB).run("mkdir -p /var/lib/pgops && printf '%%s\\n' '%s' > %s" % (holder, LOCK))
    try:
        proc, report = deploy()
        assert proc.returncode != 0
        assert report["status"] == "FAILED"
        assert phases(report)["preflight"] == "failed"
        assert "alice" in errors(report) and "laptop-7" in errors(report)
        assert "other-run" in host(DB).file(LOCK).content_string   # not released by the refused run
    finally:
        host(DB).run("rm -f " + LOCK)


def _sample_variant(tmp_path, tag, files):
    """v1.0.0 + `files` ({path: text}), committed as `tag`: a bare repo for the controller's migrations and the
    same tag in every app host's /opt/git/santri_api.git, so that release and migrations share one revision
    (the release is built before the migrations run)."""
    work, bare = str(tmp_path / "work"), str(tmp_path / (tag + ".git"))
    sample = os.path.join(DEMO_DIR, "sample", "santri_api.git")
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.test", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.test")

    def git(*args, cwd=work):
        subprocess.run(("git",) + args, cwd=cwd, env=env, check=True, capture_output=True)
    git("clone", "--quiet", "--branch", "v1.0.0", sample, work, cwd=str(tmp_path))
    for path, text in files.items():
        with open(os.path.join(work, path), "w") as fh:
            fh.write(text)
    git("add", "--all")
    git("commit", "--quiet", "-m", tag)
    git("tag", tag)
    git("clone", "--quiet", "--bare", work, bare, cwd=str(tmp_path))
    bundle = str(tmp_path / (tag + ".bundle"))
    git("bundle", "create", bundle, "refs/tags/" + tag)
    for name in APPS:
        # /var/tmp: docker cp cannot write into the container's tmpfs mounts (/tmp)
        subprocess.run(["docker", "cp", bundle, "%s:/var/tmp/%s.bundle" % (name, tag)], check=True,
                       capture_output=True)
        host(name).check_output("git -C /opt/git/santri_api.git fetch --quiet /var/tmp/%s.bundle "
                                "'refs/tags/%s:refs/tags/%s' && rm /var/tmp/%s.bundle" % (tag, tag, tag, tag))
    return bare


V6_REGIONS = "CREATE TABLE IF NOT EXISTS public.demo_regions (id int PRIMARY KEY, name text);\n"


def _broken_migration_repo(tmp_path):
    """v1.0.0 + V6 (valid) + V7 (fails midway), tag v1.0.1-broken-migration."""
    return _sample_variant(tmp_path, "v1.0.1-broken-migration", {
        "migrations/V6__regions.sql": V6_REGIONS,
        "migrations/V7__broken.sql": "ALTER TABLE public.santri_pribadi ADD COLUMN IF NOT EXISTS catatan text;\n"
                                     "SELECT 1 / 0;\n"})


def test_a_release_that_does_not_build_stops_the_run_before_any_migration(tmp_path):
    before = baseline()
    version_before = psql("SELECT max(version::int) FROM pgops.schema_history WHERE success")
    bare = _sample_variant(tmp_path, "v1.0.2-broken-build", {
        "migrations/V6__regions.sql": V6_REGIONS,
        "santri_api/broken_module.py": "def broken(:\n    pass\n"})
    proc, report = deploy("-e", "pgops_migrations_git_repo=" + bare, "-e", "app_release_version=v1.0.2-broken-build")
    assert proc.returncode != 0
    assert report["status"] == "FAILED"
    status = phases(report)
    assert status["prepare"] == "failed"
    assert status["migrate"] == status["release"] == "not run"
    assert "Gate 'compileall' failed" in errors(report) and "broken_module.py" in errors(report), errors(report)
    # The dump that ran while the release was built was still followed to its end and verified.
    assert status["backup"] == "ok" and report["backup"]["verified"] is True
    timing = dict((p["name"], (p["offset_s"], p["offset_s"] + p["duration_s"])) for p in report["phases"]
                  if p["duration_s"] is not None)
    assert timing["backup"][0] < timing["prepare"][0] < timing["prepare"][1] < timing["backup"][1]
    assert '"verified": true' in host(DB).check_output("cat %s/manifest.json" % report["backup"]["path"])
    assert host(DB).run("pgrep -x pg_dump").rc == 1
    # Database and app untouched: V6 was pending and stays so; no half-built release is left.
    assert psql("SELECT max(version::int) FROM pgops.schema_history WHERE success") == version_before
    assert psql("SELECT to_regclass('public.demo_regions') IS NULL") == "t"
    assert baseline() == before
    for name in APPS:
        assert host(name).run("ls -d /srv/santri_api/releases/*/.pgops-incomplete").rc != 0
    assert not host(DB).file(LOCK).exists


def test_a_migration_failing_midway_leaves_database_and_app_untouched(tmp_path):
    before = baseline()
    version_before = psql("SELECT max(version::int) FROM pgops.schema_history WHERE success")
    # with the build after the backup (pgops_build_during_backup=false): the whole backup in one play
    proc, report = deploy("-e", "pgops_migrations_git_repo=" + _broken_migration_repo(tmp_path),
                          "-e", "app_release_version=v1.0.1-broken-migration", "-e", "pgops_build_during_backup=false")
    assert proc.returncode != 0
    assert report["status"] == "FAILED"
    assert phases(report)["backup"] == "ok" and report["backup"]["verified"] is True
    assert phases(report)["prepare"] == "ok"                # built before the migrations, never switched to
    started = dict((p["name"], p["offset_s"]) for p in report["phases"])
    finished = dict((p["name"], p["offset_s"] + p["duration_s"]) for p in report["phases"] if p["duration_s"])
    assert finished["backup"] <= started["prepare"] and finished["prepare"] <= started["migrate"]
    assert phases(report)["migrate"] == "failed"
    assert phases(report)["release"] == "not run"
    assert "V7__broken.sql" in errors(report) and "division by zero" in errors(report)
    # database exactly as before: neither V6 nor the first statement of V7 survived
    assert psql("SELECT max(version::int) FROM pgops.schema_history WHERE success") == version_before
    assert psql("SELECT to_regclass('public.demo_regions') IS NULL") == "t"
    assert psql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'catatan'") == "0"
    assert baseline() == before                            # app untouched
    assert not host(DB).file(LOCK).exists                  # lock released on failure


def test_a_release_failing_its_health_gate_is_rolled_back_and_stops_the_rollout():
    before = baseline()
    second_before = host(APPS[1]).check_output("ls /srv/santri_api/releases").split()
    proc, report = deploy("-e", "app_release_version=v1.2.0-broken-health")
    assert proc.returncode != 0
    assert report["status"] == "ROLLED BACK", errors(report)
    assert phases(report)["migrate"] == "ok"
    assert phases(report)["release"] == "failed"
    assert phases(report)["matviews"] == "not run" and phases(report)["verify"] == "not run"
    first, second = APPS[0], APPS[1]
    assert [e["host"] for e in report["errors"]] == [first]          # serial 1: only the first batch ran
    assert report["releases"][first]["rolled_back"] is True
    assert report["rollback_actions"] and report["rollback_actions"][0].startswith(first + ": app back on release "
                                                                                    + before[first][0])
    assert baseline() == before                                      # both hosts serve v1.0.0 again
    assert health(first)["version"] == "1.0.0"
    failed_dirs = host(first).check_output("ls /srv/santri_api/releases/*/.pgops-failed | wc -l")
    assert failed_dirs == "1"
    # The second host was prepared with the first (release built, every host at once) but never went live:
    # current, its service and its health are as before; the next deploy reuses or prunes that release.
    second_releases = host(second).check_output("ls /srv/santri_api/releases").split()
    assert len(set(second_releases) - set(second_before)) == 1 and before[second][0] in second_releases, (
        second_before, second_releases)
    assert not host(DB).file(LOCK).exists


def test_a_code_only_deploy_after_the_rollback_is_still_backed_up():
    """pgops_backup_policy=changes (the default). The rolled-back run above left the schema at 8 and
    both app hosts on v1.0.0, so deploying v1.1.0 changes code only: the run still dumps and verifies.
    Nothing plans during the dump (that would hold the build back); the migrations phase plans in its
    one runner call, applies nothing and leaves the schema at 8, then the release goes live."""
    proc, report = deploy("-e", "app_release_version=v1.1.0")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert report["status"] == "SUCCESS", errors(report)
    status = phases(report)
    assert status["backup"] == "ok" and report["backup"]["verified"] is True
    assert status["migrate"] == "ok" and report["migrations"]["applied"] == []
    assert report["migrations"]["version_before"] == report["migrations"]["version_after"] == "8", (
        report["migrations"])
    assert status["release"] == "ok" and status["verify"] == "ok"
    for name in APPS:
        assert health(name)["version"] == "1.1.0"
    assert not host(DB).file(LOCK).exists
