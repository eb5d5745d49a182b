"""AWX job templates as code (issue: AWX/CI like a laptop).

How the awx.awx arguments are validated for real, without an AWX server:
every awx.awx module builds an AnsibleModule from its argument_spec BEFORE it
opens a connection, so unknown options, wrong types and bad choices fail in
argument validation, while valid arguments get as far as the HTTP request.
The test runs the real task files of awx/configure.yml (same vars files, same
module_defaults) against a controller URL on a closed loopback port, with
`apply: ignore_errors` so every task and every loop item is executed, and
classifies each failure: a connection error means the module accepted the
arguments; an argument error fails the test. A negative control proves the
classifier catches a misspelt option and a bad choice.
"""

import json
import os
import re
import socket
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.dirname(sys.executable)
AWX = os.path.join(ROOT, "awx")
CONFIGURE = os.path.join(AWX, "configure.yml")

CONNECTION_ERROR = re.compile(r"Connection refused|unknown error when trying to connect|urlopen error|Errno 111", re.I)
ARGUMENT_ERROR = re.compile(r"Unsupported parameters|missing required argument|must be one of|unable to convert|"
                            r"is of type .* and we were unable|mutually exclusive|required together|"
                            r"elements value for option|Unable to parse controller_host", re.I)


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()   # nobody listens there now: connection refused
    return port


def configure_play():
    return yaml.safe_load(open(CONFIGURE))[0]


def wrapper(tmp_path, task_files):
    """configure.yml's play with each imported task file included with ignore_errors applied."""
    play = configure_play()
    tasks = []
    for task_file in task_files:
        tasks.append({"name": "include " + os.path.basename(task_file),
                      "ansible.builtin.include_tasks": {"file": task_file, "apply": {"ignore_errors": True}}})
    wrapped = {
        "name": play["name"], "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars": play["vars"],
        "vars_files": [os.path.join(AWX, v) for v in play["vars_files"]],
        "module_defaults": play["module_defaults"],
        "tasks": tasks,
    }
    path = tmp_path / "wrapper.yml"
    path.write_text(yaml.safe_dump([wrapped], sort_keys=False))
    return str(path)


def run(playbook, extra=None):
    env = dict(os.environ)
    env.update({"ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
                "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.json", "ANSIBLE_NOCOLOR": "1", "PATH": BIN + os.pathsep + env["PATH"]})
    env.pop("ANSIBLE_FORCE_COLOR", None)
    extra_vars = {
        "awx_controller_host": "https://127.0.0.1:%d" % closed_port(),
        "awx_controller_oauthtoken": "test-token-not-used",
        "awx_controller_validate_certs": False,
        "awx_project_root": ROOT,
        "awx_vault_password": "test-vault-password",
        "awx_db_app_password": "test-db-password",
    }
    extra_vars.update(extra or {})
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", playbook,
                           "-e", json.dumps(extra_vars)],
                          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    start = proc.stdout.find("{")
    assert start >= 0, "no JSON output (rc=%s):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr)
    return proc, json.loads(proc.stdout[start:])


def module_results(report):
    """(task name, action, [per-item results]) for every awx.awx task that ran."""
    out = []
    for play in report["plays"]:
        for task in play["tasks"]:
            res = task["hosts"].get("localhost", {})
            action = res.get("action", "")
            if not action.startswith("awx.awx."):
                continue
            items = res.get("results") if isinstance(res.get("results"), list) else [res]
            out.append((task["task"]["name"], action, items))
    return out


def classify(item):
    msg = str(item.get("msg", ""))
    if ARGUMENT_ERROR.search(msg):
        return "argument", msg
    if item.get("failed") and CONNECTION_ERROR.search(msg):
        return "connection", msg
    return "other", msg


TASK_FILES = ["organization.yml", "execution_environment.yml", "credentials.yml", "project.yml", "inventory.yml",
              "job_templates.yml"]


@pytest.fixture(scope="module")
def configure_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("awx")
    pb = wrapper(tmp, [os.path.join(AWX, "tasks", "validate.yml")] + [os.path.join(AWX, "tasks", f) for f in TASK_FILES])
    # awx_no_log=false: the credential tasks' errors must be readable to be classified (dummy secrets)
    return run(pb, extra={"awx_no_log": False})


def test_configure_playbook_syntax():
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "--syntax-check", CONFIGURE], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert proc.returncode == 0, proc.stdout


def test_configure_imports_exactly_the_task_files_the_test_validates():
    imported = [t["ansible.builtin.import_tasks"] for t in configure_play()["tasks"]]
    assert imported == ["tasks/validate.yml"] + ["tasks/" + f for f in TASK_FILES]


def test_every_awx_module_call_passes_argument_validation(configure_report):
    _proc, report = configure_report
    results = module_results(report)
    actions = sorted({a for _n, a, _i in results})
    assert actions == ["awx.awx.credential", "awx.awx.credential_type", "awx.awx.execution_environment",
                       "awx.awx.inventory", "awx.awx.inventory_source", "awx.awx.job_template",
                       "awx.awx.organization", "awx.awx.project"], actions
    checked = 0
    for name, action, items in results:
        for item in items:
            kind, msg = classify(item)
            assert kind == "connection", "%s (%s) item %s: %s" % (name, action, item.get("__awx_jt", {}).get("name", ""), msg)
            checked += 1
    templates = yaml.safe_load(open(os.path.join(AWX, "vars", "job_templates.yml")))["awx_job_templates"]
    jt_items = [items for _n, a, items in results if a == "awx.awx.job_template"][0]
    assert len(jt_items) == len(templates)
    assert checked >= len(templates) + 7


def test_validation_tasks_passed_before_the_controller_was_called(configure_report):
    _proc, report = configure_report
    asserts = [t for p in report["plays"] for t in p["tasks"]
               if t["hosts"].get("localhost", {}).get("action") == "ansible.builtin.assert"]
    assert len(asserts) == 3
    for task in asserts:
        assert not task["hosts"]["localhost"].get("failed"), task


def test_credential_tasks_hide_the_secrets_by_default(tmp_path):
    proc, report = run(wrapper(tmp_path, [os.path.join(AWX, "tasks", "credentials.yml")]))
    assert "test-vault-password" not in proc.stdout + proc.stderr
    assert "test-db-password" not in proc.stdout + proc.stderr
    censored = [items for name, _a, items in module_results(report) if "credential " in name]
    assert len(censored) == 2
    for items in censored:
        assert items[0].get("failed") is True and "censored" in items[0], items[0]


def test_classifier_catches_a_misspelt_option_and_a_bad_choice(tmp_path):
    """Negative control: the same run with broken arguments is reported as argument errors."""
    broken = open(os.path.join(AWX, "tasks", "job_templates.yml")).read()
    assert "    ask_limit_on_launch: true\n" in broken and "    job_type: run\n" in broken
    broken = broken.replace("    ask_limit_on_launch: true\n", "    ask_limit_on_lanch: true\n")
    (tmp_path / "broken_option.yml").write_text(broken)
    broken_choice = open(os.path.join(AWX, "tasks", "project.yml")).read().replace("scm_type: git", "scm_type: gitlab")
    (tmp_path / "broken_choice.yml").write_text(broken_choice)
    _proc, report = run(wrapper(tmp_path, [str(tmp_path / "broken_option.yml"), str(tmp_path / "broken_choice.yml")]))
    kinds = {}
    for _name, action, items in module_results(report):
        for item in items:
            kind, msg = classify(item)
            kinds.setdefault(action, set()).add(kind)
            assert kind == "argument", msg
    assert kinds == {"awx.awx.job_template": {"argument"}, "awx.awx.project": {"argument"}}


def test_validate_refuses_a_job_template_without_its_playbook(tmp_path):
    templates = yaml.safe_load(open(os.path.join(AWX, "vars", "job_templates.yml")))["awx_job_templates"]
    templates.append({"name": "pgops | ghost", "playbook": "playbooks/does_not_exist.yml", "description": "x"})
    proc, report = run(wrapper(tmp_path, [os.path.join(AWX, "tasks", "validate.yml")]),
                       extra={"awx_job_templates": templates})
    first = report["plays"][0]["tasks"][1]["hosts"]["localhost"]
    assert first.get("failed") is True
    bad = [r for r in first["results"] if r.get("failed")]
    assert len(bad) == 1 and "playbooks/does_not_exist.yml" in bad[0]["msg"]


# ------------------------------------------------------------------ data checks

def templates():
    return yaml.safe_load(open(os.path.join(AWX, "vars", "job_templates.yml")))["awx_job_templates"]


def test_job_templates_cover_the_pipeline_and_the_operations():
    playbooks = {t["playbook"] for t in templates()}
    for pb in ("deploy.yml", "playbooks/backup.yml", "playbooks/migrate.yml", "playbooks/rollback.yml",
               "playbooks/restore.yml", "playbooks/refresh_matviews.yml", "playbooks/pg_report.yml"):
        assert pb in playbooks, pb
    for pb in playbooks:
        assert os.path.isfile(os.path.join(ROOT, pb)), "job template playbook missing in the project: %s" % pb


def test_launch_prompts_allow_check_mode_and_limit():
    task = yaml.safe_load(open(os.path.join(AWX, "tasks", "job_templates.yml")))[0]["awx.awx.job_template"]
    assert task["ask_job_type_on_launch"] is True
    assert task["ask_limit_on_launch"] is True
    assert task["job_type"] == "run"


def survey_vars(name):
    return {q["variable"]: q for t in templates() if t["name"] == name for q in t.get("survey", [])}


def test_surveys_ask_what_the_playbooks_read():
    deploy = survey_vars("pgops | deploy")
    assert deploy["app_release_version"]["required"] is True
    assert deploy["pgops_run_migrations"]["choices"] == ["true", "false"]
    restore = survey_vars("pgops | restore")
    assert restore["restore_confirm"]["required"] is True and "default" not in restore["restore_confirm"]
    assert "app_release_rollback_to" in survey_vars("pgops | rollback")


def _project_text():
    texts = []
    for base in ("deploy.yml", "playbooks", "roles"):
        path = os.path.join(ROOT, base)
        if os.path.isfile(path):
            texts.append(open(path).read())
        for dirpath, _d, files in os.walk(path):
            for f in files:
                if f.endswith(".yml"):
                    texts.append(open(os.path.join(dirpath, f)).read())
    return "\n".join(texts)


def test_every_survey_variable_is_read_by_the_project():
    text = _project_text()
    for t in templates():
        for q in t.get("survey", []):
            assert re.search(r"\b%s\b" % q["variable"], text), \
                "survey variable %s of %s is read nowhere in deploy.yml/playbooks/roles" % (q["variable"], t["name"])


def test_survey_boolean_answer_is_honoured_as_a_boolean():
    """AWX sends the multiple-choice answer as a string; deploy.yml casts it with | bool."""
    deploy = open(os.path.join(ROOT, "deploy.yml")).read()
    assert "pgops_run_migrations | default(true) | bool" in deploy


def test_db_credential_type_injects_the_vault_variable_the_inventory_reads():
    ctypes = yaml.load(open(os.path.join(AWX, "vars", "credential_types.yml")), Loader=_UnsafeLoader)["awx_credential_types"]
    db = [c for c in ctypes if c["name"] == "pgops database"][0]
    injected = db["injectors"]["extra_vars"]
    assert injected["vault_pgops_db_app_password"] == "{{ app_password }}"
    assert [f["id"] for f in db["inputs"]["fields"] if f.get("secret")] == ["app_password", "backup_passphrase"]
    group_all = yaml.safe_load(open(os.path.join(ROOT, "inventories", "group_vars", "all", "main.yml")))
    assert group_all["pgops_db_app_password"] == "{{ vault_pgops_db_app_password }}"


class _UnsafeLoader(yaml.SafeLoader):
    pass


_UnsafeLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
