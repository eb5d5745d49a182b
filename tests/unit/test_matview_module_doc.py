"""matview_refresh / pg_stat_report ship docs ansible-doc renders, and fail with
Ansible's missing_required_lib message when no PostgreSQL driver imports."""

import os
import subprocess
import sys

import pytest

from pgops_testlib import ROOT, run_module

MODULES = ["matview_refresh", "pg_stat_report"]


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_renders(name):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "pgops.deploy." + name],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for needle in ("login_host", "EXAMPLES", "RETURN VALUES", "queries"):
        assert needle in out, needle
    assert "ERROR" not in proc.stderr


@pytest.mark.parametrize("name", MODULES)
def test_missing_driver_fails_with_missing_required_lib(name, tmp_path):
    # sitecustomize makes both drivers unimportable for the module process only.
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['psycopg'] = None\nsys.modules['psycopg2'] = None\n")
    wrapper = tmp_path / "python"
    wrapper.write_text('#!/bin/sh\nPYTHONPATH="%s:$PYTHONPATH" exec "%s" "$@"\n' % (tmp_path, sys.executable))
    wrapper.chmod(0o755)
    res = run_module(name, dict(login_host="127.0.0.1", login_port=1), python=str(wrapper))
    assert res["failed"]
    assert "Failed to import the required Python library (psycopg2 or psycopg)" in res["msg"]
