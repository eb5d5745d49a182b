"""pg_backup* modules: ansible-doc renders them and every accepted option is documented (and vice versa)."""

import os
import re
import subprocess
import sys

import pytest
import yaml

from pgops_testlib import ROOT, run_module

MODULES = ["pg_backup", "pg_backup_verify", "pg_backup_restore", "pg_backup_retention", "pg_backup_archive"]
COMMON = {"login_host", "login_port", "login_user", "login_password", "login_db", "login_unix_socket", "ssl_mode",
          "ca_cert", "ssl_cert", "ssl_key", "connect_timeout", "session_role", "application_name"}


def documented(name):
    path = os.path.join(ROOT, "plugins", "modules", name + ".py")
    src = open(path).read()
    doc = yaml.safe_load(re.search(r'DOCUMENTATION = r"""(.*?)"""', src, re.S).group(1))
    opts = set(doc.get("options", {}))
    if "pgops.deploy.postgres" in doc.get("extends_documentation_fragment", []):
        opts |= COMMON
    return opts


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_renders(name):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "pgops.deploy." + name],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "EXAMPLES" in proc.stdout and "RETURN VALUES" in proc.stdout


@pytest.mark.parametrize("name", MODULES)
def test_every_accepted_option_is_documented(name):
    required = {"pg_backup": {"backup_root": "/x"}, "pg_backup_restore": {"confirm": "x"},
                "pg_backup_retention": {"backup_root": "/x"}, "pg_backup_archive": {"path": "/x"}}
    res = run_module(name, dict(required.get(name, {}), _not_an_option=1))
    assert res["failed"]
    found = re.search(r"Supported parameters include: (.*?)\.?$", res["msg"])
    assert found, res["msg"]
    accepted = set(x.strip() for x in re.sub(r"\s*\([^)]*\)", "", found.group(1)).split(","))
    assert accepted == documented(name)
