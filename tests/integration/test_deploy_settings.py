"""deploy.yml refuses bad pipeline settings before anything runs (no lock, no report, no host touched)."""
import os

import pytest

from pgops_testlib import ROOT, run_playbook


@pytest.mark.parametrize("name, value, expected", [
    ("pgops_backup_policy", "sometimes", "pgops_backup_policy must be 'changes'"),
    ("pgops_build_during_backup", "maybe", "pgops_build_during_backup must be true or false"),
])
def test_a_bad_pipeline_setting_is_refused_before_the_run_starts(tmp_path, name, value, expected):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  vars:\n    ansible_connection: local\n  children:\n"
        "    db_servers:\n      hosts:\n        db1:\n    app_servers:\n      hosts:\n        app1:\n")
    reports = tmp_path / "reports"
    proc = run_playbook(os.path.join(ROOT, "deploy.yml"), extra_vars={name: value},
                        inventory=str(inventory), env={"PGOPS_REPORT_DIR": str(reports)}, timeout=300)
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert expected in proc.stdout and "received '%s'" % value in proc.stdout, proc.stdout[-3000:]
    assert "Deploy | preflight" not in proc.stdout  # stopped in the first play
    assert not reports.exists() or not list(reports.iterdir())  # no run record written
