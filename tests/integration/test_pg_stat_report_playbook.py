"""playbooks/pg_report.yml end to end on the fixture DB: files written on the 'db host' and fetched."""

import json

from pgops_testlib import run_playbook


def test_pg_report_playbook_writes_and_fetches_reports(pg_db, tmp_path):
    pg_db.psql("CREATE EXTENSION pg_stat_statements; CREATE TABLE t (id int PRIMARY KEY)")
    extra = dict(pg_report_hosts="all", pg_report_db=pg_db.name, pg_report_login_host="127.0.0.1",
                 pg_report_login_port=pg_db.port, pg_report_become=False,
                 pg_report_remote_dir=str(tmp_path / "remote"), pg_report_local_dir=str(tmp_path / "local"))
    proc = run_playbook("playbooks/pg_report.yml", extra_vars=extra)
    assert proc.returncode == 0, proc.stdout[-3000:]
    for ext in ("json", "md", "html"):
        assert (tmp_path / "local" / ("%s.%s" % (pg_db.name, ext))).stat().st_size > 0
    report = json.loads((tmp_path / "local" / ("%s.json" % pg_db.name)).read_text())
    assert report["database"] == pg_db.name and report["data"]["statements"]["available"] is True
    assert "%s: status" % pg_db.name in proc.stdout
    # a gate: an impossible threshold makes the play fail with the finding in the message
    extra.update(pg_report_fail_on="warning", pg_report_sections=["connections"],
                 pg_report_thresholds={"connections_percent": {"warning": 0}})
    gate = run_playbook("playbooks/pg_report.yml", extra_vars=extra)
    assert gate.returncode != 0 and "status is warning (fail_on=warning)" in gate.stdout
