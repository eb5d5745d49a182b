"""Deployment report: status rules, phase timeline, renderers (pure logic)."""

import json

from ansible_collections.pgops.deploy.plugins.module_utils import pgops_deploy_report as r


def record(**over):
    base = {
        "run": {"id": "20261121T100000Z", "started": 1000.0, "finished": 1100.0, "version": "v1.1.0",
                "limit": "production", "check_mode": False, "operator": "ops"},
        "phases": {
            "preflight": {"started": 1000.0, "finished": 1005.0, "status": "ok", "hosts": ["db1", "app1"]},
            "backup": {"started": 1005.0, "finished": 1035.5, "status": "ok"},
            "migrate": {"started": 1036.0, "finished": 1040.0, "status": "ok"},
            "release": {"started": 1040.0, "finished": 1080.0, "status": "ok"},
            "matviews": {"started": 1080.0, "finished": 1082.0, "status": "ok"},
            "verify": {"started": 1082.0, "finished": 1099.0, "status": "ok"},
        },
        "backup": {"path": "/var/backups/pgops/x", "checksum": "ab" * 32, "verified": True,
                   "manifest": {"row_counts": {"santri_pribadi": 10, "santri_skor": 5}}},
        "migrations": {"version_before": "5", "version_after": "8",
                       "applied": [{"version": "6", "description": "matviews", "duration_ms": 12}]},
        "releases": {"app1": {"release_id": "20261121_abc", "previous_release": "20261120_def",
                              "revision": "abc123456789ff", "version": "1.1.0"}},
        "verification": {"checks": [{"name": "health", "status": "ok", "expected": 200, "found": 200}]},
    }
    base.update(over)
    return base


def test_success_when_no_phase_failed():
    rep = r.build_report(record())
    assert rep["status"] == r.STATUS_SUCCESS
    assert rep["run"]["duration_s"] == 100.0
    assert [p["name"] for p in rep["phases"]] == r.PHASES
    backup = next(p for p in rep["phases"] if p["name"] == "backup")
    assert backup["duration_s"] == 30.5 and backup["offset_s"] == 5.0


def test_failed_vs_rolled_back():
    rec = record()
    rec["phases"]["release"]["status"] = "failed"
    assert r.build_report(rec)["status"] == r.STATUS_FAILED
    rec["rolled_back"] = True
    assert r.build_report(rec)["status"] == r.STATUS_ROLLED_BACK


def test_missing_phases_are_listed_as_not_run():
    rec = record(phases={"preflight": {"started": 1.0, "finished": 2.0, "status": "failed"}})
    rep = r.build_report(rec)
    statuses = dict((p["name"], p["status"]) for p in rep["phases"])
    assert statuses["preflight"] == "failed"
    assert statuses["backup"] == "not run" and statuses["verify"] == "not run"
    assert rep["status"] == r.STATUS_FAILED


def test_markdown_has_signoff_and_tables():
    md = r.render_markdown(r.build_report(record()))
    assert md.startswith("# Deployment report 20261121T100000Z — SUCCESS")
    assert "| backup | ok | 30.5 s |" in md
    assert "| app1 | 20261120_def | 20261121_abc | abc123456789 | 1.1.0 | no |" in md
    assert "2 tables, 15 rows" in md
    assert "| Backup taken and verified (every block read, checksums) | yes |" in md


def test_html_is_self_contained_escaped_and_has_the_timeline():
    rec = record(errors=[{"phase": "verify", "host": "app1", "task": "t", "msg": "<script>alert(1)</script>"}])
    rec["phases"]["verify"]["status"] = "failed"
    page = r.render_html(r.build_report(rec))
    assert page.startswith("<!DOCTYPE html>")
    assert "<svg" in page and "Phase timeline" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")


def test_timeline_bars_scale_to_the_run():
    phases = r.normalise_phases({"a": {"started": 0.0, "finished": 10.0, "status": "ok"}}, 0.0)
    svg = r.svg_timeline(phases)
    assert "Phase timeline (10.0 s)" in svg
    assert svg.count("<rect") == 1


def test_json_round_trip():
    rep = r.build_report(record())
    assert json.loads(json.dumps(rep))["schema"] == "pgops.deploy/report/v1"
    assert r.summary_line(rep).startswith("SUCCESS: deploy 20261121T100000Z of v1.1.0 (production)")


def test_findings_by_source_become_rows():
    rep = r.build_report(record(findings={"preflight": ["disk /srv below 10 GB"],
                                          "verification": [{"severity": "info", "message": "rows grew"}]}))
    assert rep["findings"] == [
        {"source": "preflight", "severity": "warning", "message": "disk /srv below 10 GB"},
        {"source": "verification", "severity": "info", "message": "rows grew"}]
    assert "| preflight | warning | disk /srv below 10 GB |" in r.render_markdown(rep)


def test_dry_run_lists_what_would_be_applied():
    rec = record(migrations={"version_before": "5", "version_after": "8", "applied": [],
                             "pending": ["V6__matviews.sql", "V7__idx.sql"]})
    rec["run"]["check_mode"] = True
    rep = r.build_report(rec)
    md = r.render_markdown(rep)
    assert rep["dry_run"] is True and "(DRY RUN)" in md
    assert "| V6__matviews.sql | would be applied |" in md
