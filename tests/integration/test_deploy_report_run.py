"""deploy_report role for real: multi-host bookkeeping, report files, webhook/Slack/email to local receivers."""

import email
import email.header
import json
import os

from local_receivers import SmtpSink, WebhookSink
from pgops_testlib import run_playbook

INVENTORY = "tests/integration/inventory/report_hosts.yml"
PLAYBOOK = "tests/integration/playbooks/report_run.yml"


def test_failed_release_is_reported_rolled_back_and_notified(tmp_path):
    with WebhookSink() as hook, SmtpSink() as smtp:
        proc = run_playbook(PLAYBOOK, inventory=INVENTORY, extra_vars={
            "deploy_report_dir": str(tmp_path),
            "deploy_report_webhook_url": hook.url("/generic"),
            "deploy_report_slack_webhook_url": hook.url("/slack"),
            "deploy_report_email_to": ["ops@example.test"],
            "deploy_report_email_from": "deploy@example.test",
            "deploy_report_smtp_host": "127.0.0.1",
            "deploy_report_smtp_port": smtp.port,
            "deploy_report_smtp_secure": "never",
            "deploy_report_run_id": "testrun1",
        })
        out = proc.stdout
        assert proc.returncode != 0, out          # the run did not succeed: the play fails at the end
        assert "Deploy ROLLED BACK: phase 'release' failed" in out, out[-3000:]

        report = json.loads((tmp_path / "deploy-testrun1.json").read_text())
        assert report["status"] == "ROLLED BACK"
        phases = dict((p["name"], p) for p in report["phases"])
        assert phases["preflight"]["status"] == "ok"
        assert phases["release"]["status"] == "failed"
        assert sorted(phases["release"]["hosts"]) == ["app1", "app2"]
        assert phases["backup"]["status"] == "not run"
        assert [e["host"] for e in report["errors"]] == ["app2"]
        assert "expected 200, got 503" in report["errors"][0]["msg"]
        assert report["rollback_actions"] == ["app2: app back on release 20261120_prev"]
        assert report["hosts"] == {"db_servers": ["db1"], "app_servers": ["app1", "app2"]}

        md = (tmp_path / "deploy-testrun1.md").read_text()
        assert "ROLLED BACK" in md and "## What failed" in md
        html = (tmp_path / "deploy-testrun1.html").read_text()
        assert "<svg" in html and "ROLLED BACK" in html
        assert os.readlink(str(tmp_path / "latest.html")) == "deploy-testrun1.html"

        paths = [r["path"] for r in hook.requests]
        assert paths == ["/generic", "/slack"]
        assert hook.requests[0]["json"]["status"] == "ROLLED BACK"
        assert hook.requests[1]["json"]["text"].startswith("ROLLED BACK: deploy testrun1")
        assert len(smtp.messages) == 1
        mail = smtp.messages[0]
        assert "ops@example.test" in mail["to"][0]
        msg = email.message_from_string(mail["data"])
        subject = str(email.header.make_header(email.header.decode_header(msg["Subject"])))
        assert subject.startswith("[pgops.deploy] ROLLED BACK: deploy testrun1"), subject
        attachments = [part.get_filename() for part in msg.walk() if part.get_filename()]
        assert attachments == ["deploy-testrun1.html"]


def test_successful_run_passes_and_notifies_only_on_failure_when_asked(tmp_path):
    with WebhookSink() as hook:
        proc = run_playbook(PLAYBOOK, inventory=INVENTORY, extra_vars={
            "deploy_report_dir": str(tmp_path), "report_fail_release": False,
            "deploy_report_webhook_url": hook.url("/generic"), "deploy_report_notify_on": "failure",
            "deploy_report_run_id": "testrun2"})
        assert proc.returncode == 0, proc.stdout[-3000:]
        report = json.loads((tmp_path / "deploy-testrun2.json").read_text())
        assert report["status"] == "SUCCESS"
        assert report["errors"] == [] and report["rolled_back"] is False
        assert hook.requests == []
