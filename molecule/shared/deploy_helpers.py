"""Helpers for the testinfra suites of the deploy scenarios (default, deploy_failures):
reach the scenario's hosts, run the project's playbooks against them for real, read reports."""

import json
import os
import subprocess

import testinfra
import testinfra.utils.ansible_runner

INVENTORY_FILE = os.environ["MOLECULE_INVENTORY_FILE"]
EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
REPORTS = os.path.join(EPHEMERAL, "reports")
DEMO_DIR = os.path.join(EPHEMERAL, "demo")
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY_FILE)
APPS = RUNNER.get_hosts("app_servers")
DB = RUNNER.get_hosts("db_servers")[0]


def host(name):
    return testinfra.get_host("ansible://" + name, ansible_inventory=INVENTORY_FILE)


def latest_report():
    with open(os.path.join(REPORTS, "latest.json")) as fh:
        return json.load(fh)


def ansible_playbook(playbook, *extra):
    """Run a project playbook against the scenario's hosts (its inventory dir, with the linked group_vars)."""
    env = dict(os.environ, PGOPS_DEMO_DIR=DEMO_DIR, PGOPS_REPORT_DIR=REPORTS,
               ANSIBLE_CONFIG=os.path.join(PROJECT, "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    argv = ["ansible-playbook", "-i", os.path.dirname(INVENTORY_FILE), os.path.join(PROJECT, playbook)] + list(extra)
    return subprocess.run(argv, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def deploy(*extra):
    """deploy.yml; returns (completed process, the report it wrote)."""
    proc = ansible_playbook("deploy.yml", *extra)
    return proc, latest_report()


def run_like_awx(playbook, extravars, tmpdir, cmdline=""):
    """Run a playbook through ansible-runner with a private data dir laid out as AWX writes
    it for a job: project/ (the checkout), inventory/ (the job's hosts + imported group_vars),
    env/extravars (survey answers), env/envvars, env/cmdline. Returns the runner object."""
    import ansible_runner

    pdd = os.path.join(str(tmpdir), "pdd")
    for sub in ("env", "inventory"):
        os.makedirs(os.path.join(pdd, sub), exist_ok=True)
    os.symlink(PROJECT, os.path.join(pdd, "project"))
    with open(INVENTORY_FILE) as src, open(os.path.join(pdd, "inventory", "hosts.yml"), "w") as dst:
        dst.write(src.read())
    os.symlink(os.path.join(PROJECT, "inventories", "demo", "group_vars"), os.path.join(pdd, "inventory", "group_vars"))
    with open(os.path.join(pdd, "env", "extravars"), "w") as fh:
        json.dump(extravars, fh)
    with open(os.path.join(pdd, "env", "envvars"), "w") as fh:
        json.dump({"PGOPS_DEMO_DIR": DEMO_DIR, "PGOPS_REPORT_DIR": REPORTS}, fh)
    if cmdline:
        with open(os.path.join(pdd, "env", "cmdline"), "w") as fh:
            fh.write(cmdline)
    # AWX's job environment has no Molecule/ANSIBLE_* settings: ansible.cfg comes from the project dir.
    saved = dict((k, v) for k, v in os.environ.items() if k.startswith("ANSIBLE_"))
    for key in saved:
        del os.environ[key]
    try:
        return ansible_runner.run(private_data_dir=pdd, playbook=playbook, quiet=True)
    finally:
        os.environ.update(saved)


def psql(sql, db="santri"):
    out = host(DB).run("sudo -u postgres psql -X -d %s -Atc %s" % (db, _quote(sql)))
    assert out.rc == 0, out.stderr
    return out.stdout.strip()


def health(name):
    return json.loads(host(name).check_output("curl -sS http://127.0.0.1:8000/health"))


def current_release(name):
    return os.path.basename(host(name).check_output("readlink /srv/santri_api/current"))


def _quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"
