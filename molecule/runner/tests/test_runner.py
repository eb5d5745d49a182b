"""AWX execution path (issue: AWX/CI like a laptop).

converge ran the pipeline twice through `ansible-runner run <private_data_dir>`
(Molecule's converge + idempotence). Here: the artifacts of those jobs, the
vault secret that reached PostgreSQL through env/passwords, then two more
AWX-style jobs: check mode (env cmdline --check) and --limit.
"""

import glob
import json
import os
import subprocess
import sys
import time

import testinfra

PDD = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "pdd")
RUNNER = os.path.join(os.path.dirname(sys.executable), "ansible-runner")
PLAYBOOK = os.environ.get("PGOPS_RUNNER_PLAYBOOK") or "playbooks/bootstrap_db.yml"
DB, APP1, APP2 = "pgops-runner-db", "pgops-runner-app1", "pgops-runner-app2"
VAULT_CMDLINE = "--vault-id staging@prompt"
STAGING_PASSWORD = "staging-demo-app-password"   # inventories/staging/group_vars/staging/vault


def docker_host(name):
    return testinfra.get_host("docker://" + name)


def jobs():
    with open(os.path.join(PDD, "jobs.log")) as f:
        return [line.strip() for line in f if line.strip()]


def events(ident):
    out = []
    for path in glob.glob(os.path.join(PDD, "artifacts", ident, "job_events", "*.json")):
        with open(path) as f:
            out.append(json.load(f))
    return sorted(out, key=lambda e: e["counter"])


def artifact(ident, name):
    with open(os.path.join(PDD, "artifacts", ident, name)) as f:
        return f.read().strip()


def stats(ident):
    found = [e for e in events(ident) if e["event"] == "playbook_on_stats"]
    assert len(found) == 1, "job %s has %d playbook_on_stats events" % (ident, len(found))
    return found[0]["event_data"]


def run_job(ident, cmdline):
    """One more AWX-style job in the same private data dir, clean environment."""
    env = {"PATH": os.path.dirname(sys.executable) + ":/usr/local/bin:/usr/bin:/bin",
           "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
    proc = subprocess.run([RUNNER, "run", PDD, "-p", PLAYBOOK, "--ident", ident, "--cmdline", cmdline],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    return proc


def unique(prefix):
    return "%s-%d" % (prefix, int(time.time() * 1000))


# ------------------------------------------------------------------ converge jobs

def test_converge_jobs_left_awx_style_artifacts():
    idents = jobs()
    assert len(idents) >= 2, "expected the converge and idempotence jobs, found %s" % idents
    for ident in idents[-2:]:
        assert artifact(ident, "status") == "successful"
        assert artifact(ident, "rc") == "0"
        kinds = [e["event"] for e in events(ident)]
        assert kinds.count("playbook_on_start") == 1, kinds[:3]
        # stats close the playbook (only `verbose` output such as the task profile may follow)
        assert [k for k in kinds if k != "verbose"][-1] == "playbook_on_stats", kinds[-5:]
        assert kinds.index("playbook_on_start") < kinds.index("playbook_on_play_start")
        assert "runner_on_ok" in kinds
        st = stats(ident)
        assert set(st["ok"]) == {DB, APP1, APP2}
        assert st["failures"] == {} and st["dark"] == {}
        # the job's stdout is captured like AWX's job output
        assert "PLAY RECAP" in artifact(ident, "stdout")


def test_second_job_changed_nothing():
    idents = jobs()
    assert stats(idents[-1])["changed"] == {}, "idempotence job changed: %s" % stats(idents[-1])["changed"]


def test_first_job_did_the_work():
    first = jobs()[0]
    assert stats(first)["changed"].get(DB, 0) > 0, "first job changed nothing on the db: %s" % stats(first)["changed"]


def test_vault_secret_from_env_passwords_reached_postgresql():
    """The vault prompt answer in env/passwords decrypted the staging vault; the role got the secret."""
    h = docker_host(APP1)
    out = h.run("PGPASSWORD=%s psql -h %s -U santri_app -d santri -Atc 'SELECT current_user'" % (STAGING_PASSWORD, DB))
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() == "santri_app"
    wrong = h.run("PGPASSWORD=molecule-only-password psql -h %s -U santri_app -d santri -Atc 'SELECT 1'" % DB)
    assert wrong.rc != 0


def test_secrets_are_not_in_the_job_output():
    for ident in jobs():
        assert STAGING_PASSWORD not in artifact(ident, "stdout")
        for ev in events(ident):
            assert STAGING_PASSWORD not in json.dumps(ev), "secret leaked in job event %s" % ev["counter"]


# ------------------------------------------------------------------ more jobs

def test_limit_job_touches_only_the_limited_host():
    ident = unique("limit")
    proc = run_job(ident, VAULT_CMDLINE + " --limit " + APP1)
    assert artifact(ident, "status") == "successful", proc.stdout[-3000:]
    hosts = {e["event_data"]["host"] for e in events(ident) if e.get("event_data", {}).get("host")}
    assert hosts == {APP1}, hosts
    assert set(stats(ident)["ok"]) == {APP1}


def test_check_mode_job_reports_the_change_and_does_nothing():
    db = docker_host(DB)
    drop = db.run("sudo -u postgres psql -d santri -v ON_ERROR_STOP=1 -Atc 'DROP EXTENSION pg_trgm'")
    assert drop.rc == 0, drop.stderr
    ident = unique("check")
    proc = run_job(ident, VAULT_CMDLINE + " --check")
    assert artifact(ident, "status") == "successful", proc.stdout[-3000:]
    assert stats(ident)["changed"].get(DB, 0) >= 1, "check mode did not report the missing extension"
    still = db.check_output("sudo -u postgres psql -d santri -Atc \"SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'\"")
    assert still == "0", "check mode created the extension"
    # the job's recorded command line (AWX: job_args) says it was a check run
    command = json.loads(artifact(ident, "command"))["command"]
    assert "--check" in command and "--vault-id" in command, command
