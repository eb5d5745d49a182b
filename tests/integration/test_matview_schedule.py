"""Role pgops.deploy.matview_schedule (cron and systemd variants rendered into a temp
root, the shipped script run against the fixture DB) and playbooks/refresh_matviews.yml."""

import re
import subprocess
import sys

from pgops_testlib import run_playbook

VIEWS = """
CREATE TABLE sales (id int PRIMARY KEY, region text NOT NULL, amount int NOT NULL);
INSERT INTO sales SELECT g, 'r' || (g % 3), g FROM generate_series(1, 30) g;
CREATE MATERIALIZED VIEW z_mv_a AS SELECT region, sum(amount) AS total FROM sales GROUP BY region;
CREATE UNIQUE INDEX ON z_mv_a (region);
CREATE VIEW v_mid AS SELECT region, total FROM z_mv_a;
CREATE MATERIALIZED VIEW m_mv_b AS SELECT count(*) AS regions FROM v_mid;
"""

PLAY = """---
- name: Apply matview_schedule
  hosts: all
  gather_facts: false
  roles:
    - role: pgops.deploy.matview_schedule
"""


def recap_changed(out):
    m = re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", out)
    assert m, out[-3000:]
    return int(m.group(1))


def role_vars(pg_db, root, **kw):
    v = dict(matview_schedule_database=pg_db.name, matview_schedule_pg_host="127.0.0.1",
             matview_schedule_pg_port=pg_db.port, matview_schedule_manage_service=False,
             matview_schedule_script_path=str(root / "lib" / "pgops-refresh-matviews"),
             matview_schedule_config_dir=str(root / "etc"), matview_schedule_systemd_dir=str(root / "systemd"),
             matview_schedule_cron_dir=str(root / "cron.d"), matview_schedule_log_file=str(root / "refresh.log"))
    v.update(kw)
    return v


def test_cron_variant_installs_runs_and_is_removed(pg_db, tmp_path):
    pg_db.psql(VIEWS)
    (tmp_path / "systemd").mkdir()
    (tmp_path / "cron.d").mkdir()
    play = tmp_path / "play.yml"
    play.write_text(PLAY)
    extra = role_vars(pg_db, tmp_path, matview_schedule_method="cron", matview_schedule_cron_schedule="*/15 * * * *")
    proc = run_playbook(str(play), extra_vars=extra)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert recap_changed(proc.stdout) >= 3
    cron = (tmp_path / "cron.d" / "pgops-matview-refresh").read_text()
    script = tmp_path / "lib" / "pgops-refresh-matviews"
    config = tmp_path / "etc" / "pgops-matview-refresh.env"
    assert ("*/15 * * * * postgres flock -n /tmp/pgops-matview-refresh.lock /usr/bin/python3 %s --config %s >> %s 2>&1"
            % (script, config, tmp_path / "refresh.log")) in cron
    assert "PGDATABASE=%s\n" % pg_db.name in config.read_text()
    assert not list((tmp_path / "systemd").iterdir())
    again = run_playbook(str(play), extra_vars=extra)
    assert again.returncode == 0 and recap_changed(again.stdout) == 0, again.stdout[-3000:]

    # the shipped script, as cron would run it: dependency order, concurrent where legal
    pg_db.psql("INSERT INTO sales VALUES (100, 'new', 1)")
    run = subprocess.run([sys.executable, str(script), "--config", str(config)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [line for line in run.stdout.splitlines() if "refreshed" in line]
    assert "refreshed public.z_mv_a concurrently" in lines[0]
    assert "refreshed public.m_mv_b plain (no usable unique index)" in lines[1]
    assert pg_db.scalar("SELECT regions FROM m_mv_b") == 4

    extra["matview_schedule_state"] = "absent"
    gone = run_playbook(str(play), extra_vars=extra)
    assert gone.returncode == 0, gone.stdout[-3000:]
    assert not (tmp_path / "cron.d" / "pgops-matview-refresh").exists()
    assert not script.exists() and not config.exists()


def test_systemd_variant_renders_timer_and_service(pg_db, tmp_path):
    (tmp_path / "systemd").mkdir()
    play = tmp_path / "play.yml"
    play.write_text(PLAY)
    proc = run_playbook(str(play), extra_vars=role_vars(pg_db, tmp_path, matview_schedule_views=["z_mv_a"]))
    assert proc.returncode == 0, proc.stdout[-3000:]
    timer = (tmp_path / "systemd" / "pgops-matview-refresh.timer").read_text()
    service = (tmp_path / "systemd" / "pgops-matview-refresh.service").read_text()
    assert "OnCalendar=hourly" in timer and "WantedBy=timers.target" in timer
    assert "User=postgres" in service and "Type=oneshot" in service
    assert "ExecStart=/usr/bin/python3 %s --config %s" % (tmp_path / "lib" / "pgops-refresh-matviews",
                                                          tmp_path / "etc" / "pgops-matview-refresh.env") in service
    assert "PGOPS_MATVIEWS=z_mv_a" in (tmp_path / "etc" / "pgops-matview-refresh.env").read_text()


def test_role_rejects_bad_cron_schedule_before_changing_anything(pg_db, tmp_path):
    play = tmp_path / "play.yml"
    play.write_text(PLAY)
    proc = run_playbook(str(play), extra_vars=role_vars(pg_db, tmp_path, matview_schedule_method="cron",
                                                        matview_schedule_cron_schedule="hourly"))
    assert proc.returncode != 0
    assert "five-field cron schedule (got 'hourly')" in proc.stdout
    assert not (tmp_path / "lib").exists()
    proc = run_playbook(str(play), extra_vars=role_vars(pg_db, tmp_path, matview_schedule_method="anacron"))
    assert proc.returncode != 0 and "matview_schedule_method" in proc.stdout


def test_refresh_matviews_playbook_check_then_run(pg_db):
    pg_db.psql(VIEWS)
    pg_db.psql("INSERT INTO sales VALUES (100, 'new', 1)")
    extra = dict(refresh_matviews_hosts="all", refresh_matviews_db=pg_db.name, refresh_matviews_login_host="127.0.0.1",
                 refresh_matviews_login_port=pg_db.port, refresh_matviews_become=False,
                 refresh_matviews_names=["m_mv_b"], refresh_matviews_include_dependants=False)
    chk = run_playbook("playbooks/refresh_matviews.yml", extra_vars=extra, check=True)
    assert chk.returncode == 0, chk.stdout[-3000:]
    assert pg_db.scalar("SELECT regions FROM m_mv_b") == 3
    extra["refresh_matviews_names"] = ["z_mv_a"]
    extra["refresh_matviews_include_dependants"] = True
    proc = run_playbook("playbooks/refresh_matviews.yml", extra_vars=extra)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "public.z_mv_a | concurrent" in proc.stdout and "public.m_mv_b | plain" in proc.stdout
    assert pg_db.scalar("SELECT regions FROM m_mv_b") == 4
