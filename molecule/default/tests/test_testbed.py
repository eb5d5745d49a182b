"""Test bed (issue: foundation): systemd runs, PostgreSQL serves the app hosts by hostname, PostGIS works."""

import os

import pytest
import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
ALL = RUNNER.get_hosts("all")
APPS = RUNNER.get_hosts("app_servers")
DB = RUNNER.get_hosts("db_servers")[0]


def host(name):
    return testinfra.get_host("ansible://" + name, ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])


@pytest.mark.parametrize("name", ALL)
def test_systemd_is_pid1_and_running(name):
    h = host(name)
    assert h.check_output("cat /proc/1/comm") == "systemd"
    state = h.run("systemctl is-system-running").stdout.strip()
    assert state in ("running", "degraded"), state
    failed = h.check_output("systemctl --failed --no-legend --plain")
    assert failed == "", failed


def test_postgresql_service_listens_on_network():
    h = host(DB)
    assert h.service("postgresql@15-main").is_running
    assert h.socket("tcp://0.0.0.0:5432").is_listening


@pytest.mark.parametrize("name", APPS)
def test_app_hosts_reach_the_database_by_hostname(name):
    h = host(name)
    password = h.ansible.get_variables()["pgops_db_app_password"]
    out = h.run(
        "PGPASSWORD=%s psql -h %s -U santri_app -d santri -Atc 'SELECT current_user, inet_server_addr() IS NOT NULL'"
        % (password, DB))
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() == "santri_app|t"


def test_postgis_is_created_and_works():
    h = host(DB)
    out = h.run("sudo -u postgres psql -d santri -Atc \"SELECT extname FROM pg_extension ORDER BY 1\"")
    assert out.rc == 0, out.stderr
    assert {"postgis", "pgcrypto", "uuid-ossp", "pg_trgm", "pg_stat_statements"} <= set(out.stdout.split())
    geo = h.check_output(
        "sudo -u postgres psql -d santri -Atc \"SELECT ST_DWithin(ST_MakePoint(110.4,-7.0)::geography, "
        "ST_MakePoint(110.41,-7.0)::geography, 2000)\"")
    assert geo == "t"


def test_app_hosts_have_the_release_toolchain():
    for name in APPS:
        h = host(name)
        for cmd in ("python3 -m venv --help", "git --version", "supervisorctl version", "curl --version"):
            assert h.run(cmd).rc == 0, "%s on %s" % (cmd, name)
        assert h.service("supervisor").is_running
