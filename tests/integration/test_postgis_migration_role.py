"""Role pgops.deploy.postgis_migration run by ansible-playbook against a real PostgreSQL + PostGIS (localhost, TCP)."""

import json
import os
import re

import pytest
import yaml

from ansible_collections.pgops.deploy.plugins.module_utils.pgops_migrate_runner import advisory_key
from pgops_testlib import run_playbook

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "migrations_postgis")


def play(tmp_path, db, extra_vars=None, pre_tasks=None, rollback=False, name="play.yml", check=False,
         save_on_failure=False):
    out = str(tmp_path / "result.json")
    role_vars = dict(
        postgis_migration_db=db.name, postgis_migration_login_host=db.host,
        postgis_migration_login_port=db.port, postgis_migration_login_user=db.user,
        postgis_migration_become=False, postgis_migration_work_dir=str(tmp_path / "work"),
        postgis_migration_retry_delay=0.2,
        postgis_migration_extensions=[{"name": "postgis"}, {"name": "pg_trgm", "version": "1.6"}],
    )
    role_vars.update(extra_vars or {})
    tasks = [{"name": "Run the role", "ansible.builtin.include_role": {"name": "pgops.deploy.postgis_migration"}}]
    if save_on_failure:  # keep what the role recorded when it fails (deploy.yml's rescue reads the same)
        tasks = [{"name": "Run the role, keep its record on failure", "block": tasks, "rescue": [
            {"name": "Note the failure", "ansible.builtin.set_fact": {
                "postgis_migration_result": "{{ postgis_migration_result | combine({'rescued': true}) }}"}}]}]
    if rollback:
        tasks.append({"name": "Roll back", "ansible.builtin.include_role": {
            "name": "pgops.deploy.postgis_migration", "tasks_from": "rollback"}})
    tasks.append({"name": "Save the result", "changed_when": False, "check_mode": False, "ansible.builtin.copy": {
        "dest": out, "mode": "0600",
        "content": "{{ {'result': postgis_migration_result | default(none), "
                   "'rollback': postgis_migration_rollback_result | default(none)} | to_json }}"}})
    playbook = [{"name": "Migrate", "hosts": "localhost", "gather_facts": False, "vars": role_vars,
                 "pre_tasks": pre_tasks or [], "tasks": tasks}]
    path = tmp_path / name
    path.write_text(yaml.safe_dump(playbook, sort_keys=False))
    proc = run_playbook(str(path), check=check)
    result = json.load(open(out)) if os.path.exists(out) else None
    if os.path.exists(out):
        os.unlink(out)
    return proc, result


def changed_count(output):
    return int(re.search(r"localhost\s*:.*changed=(\d+)", output).group(1))


@pytest.mark.slow
def test_role_migrates_records_state_is_idempotent_and_rolls_back(pg_db, tmp_path):
    pg_db.psql("CREATE EXTENSION postgis; CREATE TABLE public.places (id bigint PRIMARY KEY, name text NOT NULL, "
               "note text, geom geometry(Point, 4326) NOT NULL); "
               "INSERT INTO public.places SELECT g, 'x', NULL, ST_MakePoint(1, 1) FROM generate_series(1, 37) g")
    pg_db.psql("DROP TABLE public.places")  # start clean but with postgis installed
    src = tmp_path / "src"
    os.makedirs(str(src))
    for name in os.listdir(FIXTURE):
        with open(os.path.join(FIXTURE, name), "rb") as fh:
            (src / name).write_bytes(fh.read())
    (src / "V11__more_places.sql").write_text("INSERT INTO public.places (name, geom) "
                                              "VALUES ('extra', ST_SetSRID(ST_MakePoint(110, -7), 4326));\n")
    (src / "R11__more_places.sql").write_text("DELETE FROM public.places WHERE name = 'extra';\n")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "V99__stale.sql").write_text("SELECT 1;\n")  # not in the source: must be removed
    vars_ = dict(postgis_migration_source_dir=str(src), postgis_migration_require_backup=False,
                 postgis_migration_target="10")
    proc, res = play(tmp_path, pg_db, vars_)
    assert proc.returncode == 0, proc.stdout[-3000:]
    r = res["result"]
    assert r["phase"] == "applied" and r["version_before"] is None and r["version_after"] == "10"
    assert [a["script"] for a in r["applied"]] == ["V1__extensions.sql", "V2__places.sql", "V10__place_stats.sql"]
    assert r["touched_tables"] == {"public.places": None}  # did not exist before
    assert r["analyzed"] == ["public.places"]
    assert not (tmp_path / "work" / "V99__stale.sql").exists()
    assert pg_db.scalar("SELECT extversion FROM pg_extension WHERE extname = 'pg_trgm'") == "1.6"
    assert pg_db.scalar("SELECT count(*) FROM public.places") == 200

    # Second deploy (target latest): row counts recorded before V11 runs; then idempotent.
    vars_.update(postgis_migration_target="", postgis_migration_manage_extensions=False)
    proc, res = play(tmp_path, pg_db, vars_)
    assert proc.returncode == 0, proc.stdout[-3000:]
    r = res["result"]
    assert r["version_before"] == "10" and r["version_after"] == "11"
    assert r["touched_tables"] == {"public.places": 200}
    proc, res = play(tmp_path, pg_db, vars_)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert changed_count(proc.stdout) == 0, proc.stdout[-3000:]
    assert res["result"]["applied"] == [] and res["result"]["pending"] == []
    # Shipping is skipped when the work dir's digest matches the source; a drifted work dir is shipped again.
    (tmp_path / "work" / "V2__places.sql").write_text("-- drifted\n")
    proc, res = play(tmp_path, pg_db, vars_)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (tmp_path / "work" / "V2__places.sql").read_bytes() == (src / "V2__places.sql").read_bytes()
    assert changed_count(proc.stdout) == 1, proc.stdout[-3000:]  # the shipping task, nothing else

    # Rollback to the version recorded before the deploy (11 -> 10, via R11) in the same play.
    (src / "V12__noop.sql").write_text("SELECT 1;\n")
    (src / "R12__noop.sql").write_text("SELECT 1;\n")
    proc, res = play(tmp_path, pg_db, vars_, rollback=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    rb = res["rollback"]
    assert rb["target"] == "11" and rb["reverted"] == ["R12__noop.sql"] and rb["version_after"] == "11"
    assert pg_db.scalar("SELECT count(*) FROM pgops.schema_history WHERE version = '12' AND type = 'revert'") == 1


@pytest.mark.slow
def test_role_refuses_without_verified_backup_then_runs_from_release_dir(pg_db, tmp_path):
    vars_ = dict(postgis_migration_release_dir=FIXTURE, postgis_migration_manage_extensions=False)
    proc, _ = play(tmp_path, pg_db, vars_)
    assert proc.returncode != 0
    assert "Refusing to migrate database %s: no verified backup of this deploy" % pg_db.name in proc.stdout
    assert "postgis_migration_require_backup=false" in proc.stdout
    assert pg_db.scalar("SELECT to_regnamespace('pgops') IS NULL") is True  # nothing changed

    verified = [{"name": "Verified backup", "ansible.builtin.set_fact": {"backup_result": {"verified": True}}}]
    # Dry run (--check): reports what would run, changes nothing (no history schema, no work dir).
    proc, res = play(tmp_path, pg_db, vars_, pre_tasks=verified, check=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert res["result"]["pending"] == ["V1__extensions.sql", "V2__places.sql", "V10__place_stats.sql"]
    assert res["result"]["version_after"] == "10" and res["result"]["phase"] == "dry-run"
    assert pg_db.scalar("SELECT to_regnamespace('pgops') IS NULL") is True
    assert not (tmp_path / "work").exists()
    proc, res = play(tmp_path, pg_db, vars_, pre_tasks=verified)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert res["result"]["version_after"] == "10"
    assert sorted(os.listdir(str(tmp_path / "work"))) == sorted(os.listdir(FIXTURE))

    # Revert through the main entry point (action=revert) down to version 1.
    proc, res = play(tmp_path, pg_db, dict(vars_, postgis_migration_action="revert",
                                           postgis_migration_rollback_target="1"), pre_tasks=verified)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert res["rollback"]["reverted"] == ["R10__place_stats.sql", "R2__places.sql"]
    assert res["rollback"]["version_after"] == "1"
    assert pg_db.scalar("SELECT to_regclass('public.places') IS NULL") is True


def test_role_fails_clearly_on_bad_input_and_missing_extension(pg_db, tmp_path):
    proc, _ = play(tmp_path, pg_db, dict(postgis_migration_require_backup=False))
    assert proc.returncode != 0 and "Expected exactly one of postgis_migration_source_dir" in proc.stdout
    empty = tmp_path / "empty_release"
    empty.mkdir()
    proc, _ = play(tmp_path, pg_db, dict(postgis_migration_require_backup=False, postgis_migration_manage_extensions=False,
                                         postgis_migration_release_dir=str(empty)))
    assert proc.returncode != 0
    flat = " ".join(proc.stdout.split())  # the callback folds long messages
    assert "failed (exit 3): Expected V<version>__<description>.sql files in postgis_migration_release_dir" in flat
    assert not (tmp_path / "work").exists()  # checked before anything is created

    proc, _ = play(tmp_path, pg_db, dict(postgis_migration_require_backup=False, postgis_migration_source_dir=FIXTURE,
                                         postgis_migration_extensions=[{"name": "postgis"}, {"name": "no_such_ext"},
                                                                       {"name": "pg_trgm", "version": "0.1"}]))
    assert proc.returncode != 0
    assert "missing: no_such_ext" in proc.stdout and "pg_trgm 0.1" in proc.stdout
    assert pg_db.scalar("SELECT count(*) FROM pg_extension WHERE extname = 'postgis'") == 0


def test_role_upgrades_an_older_postgis_with_the_packaged_scripts(pg_db, tmp_path):
    """postgis_migration_postgis_upgrade: only one PostGIS package exists on this machine, so the older
    install is simulated by recording an older version in pg_extension; the upgrade itself runs the
    package's real postgis--<old>--<new>.sql scripts through postgis_extensions_upgrade()."""
    pg_db.psql("CREATE EXTENSION postgis")
    packaged = pg_db.scalar("SELECT default_version FROM pg_available_extensions WHERE name = 'postgis'")
    older = packaged.rsplit(".", 1)[0] + ".0"
    assert older != packaged, "needs a packaged PostGIS x.y.z with z > 0, found %s" % packaged
    pg_db.psql("UPDATE pg_catalog.pg_extension SET extversion = '%s' WHERE extname = 'postgis'" % older)
    src = tmp_path / "src"
    src.mkdir()
    (src / "V1__noop.sql").write_text("SELECT 1;\n")
    vars_ = dict(postgis_migration_source_dir=str(src), postgis_migration_require_backup=False,
                 postgis_migration_extensions=[{"name": "postgis"}, {"name": "pg_trgm"}],
                 postgis_migration_postgis_upgrade=True)
    # action=info reads what a migrate run would change (deploy.yml's backup policy uses it) and changes nothing.
    proc, res = play(tmp_path, pg_db, dict(vars_, postgis_migration_action="info"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert res["result"]["extension_changes"] == ["pg_trgm", "postgis (upgrade to the packaged version)"], res
    assert res["result"]["pending"] == ["V1__noop.sql"]
    assert pg_db.scalar("SELECT extversion FROM pg_extension WHERE extname = 'postgis'") == older
    assert pg_db.scalar("SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'") == 0
    proc, res = play(tmp_path, pg_db, vars_)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Upgrade PostGIS" in proc.stdout and changed_count(proc.stdout) > 0
    assert pg_db.scalar("SELECT extversion FROM pg_extension WHERE extname = 'postgis'") == packaged
    assert pg_db.scalar("SELECT ST_AsText(ST_SetSRID(ST_MakePoint(106.8, -6.2), 4326))") == "POINT(106.8 -6.2)"
    assert res["result"]["extension_changes"] == ["pg_trgm", "postgis (upgrade to the packaged version)"], res
    # Already at the packaged version: the next run upgrades nothing and makes one runner call (the
    # apply, which plans itself and finds nothing), no separate plan.
    proc, res = play(tmp_path, pg_db, vars_)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert changed_count(proc.stdout) == 0, proc.stdout[-3000:]
    assert res["result"]["extension_changes"] == [] and res["result"]["applied"] == []
    assert res["result"]["pending"] == [] and res["result"]["phase"] == "applied"
    assert "Plan migrations" not in proc.stdout
    assert re.search(r"Apply pending migrations[^\n]*\n(.*\n)?ok: \[localhost\]", proc.stdout), proc.stdout[-3000:]



def test_a_migrate_call_after_the_plan_of_the_same_run_reuses_its_reads(pg_db, tmp_path):
    """deploy.yml plans (action info) while the dump runs, then migrates in the same run: the migrate
    call reuses the plan's extension read and its mirror of unchanged files; a changed file is mirrored."""
    pg_db.psql("CREATE EXTENSION postgis")
    src = tmp_path / "src"
    src.mkdir()
    (src / "V1__noop.sql").write_text("SELECT 1;\n")
    vars_ = dict(postgis_migration_source_dir=str(src), postgis_migration_require_backup=False,
                 postgis_migration_extensions=[{"name": "postgis"}, {"name": "pg_trgm"}])
    plan = {"name": "Plan first", "ansible.builtin.include_role": {"name": "pgops.deploy.postgis_migration"},
            "vars": {"postgis_migration_action": "info"}}
    read = "TASK [pgops.deploy.postgis_migration : Read the extensions the server can install]"
    mirror = "TASK [pgops.deploy.postgis_migration : Mirror the migration files into"
    proc, res = play(tmp_path, pg_db, vars_, pre_tasks=[plan])
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert proc.stdout.count(read) == 1 and proc.stdout.count(mirror) == 1, proc.stdout[-4000:]
    # What the plan read still drives the migrate call: pg_trgm was missing, so it is created now.
    assert res["result"]["extension_changes"] == ["pg_trgm"], res
    assert pg_db.scalar("SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'") == 1
    assert [a["script"] for a in res["result"]["applied"]] == ["V1__noop.sql"], res
    # A file changed between the plan and the migrate call of one run: mirrored again, and applied.
    change = {"name": "Add a migration between the calls", "ansible.builtin.copy": {
        "dest": str(src / "V2__more.sql"), "content": "SELECT 2;\n", "mode": "0644"}}
    proc, res = play(tmp_path, pg_db, vars_, pre_tasks=[plan, change], name="play2.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert proc.stdout.count(mirror) == 2, proc.stdout[-4000:]
    assert [a["script"] for a in res["result"]["applied"]] == ["V2__more.sql"], res
    assert sorted(os.listdir(str(tmp_path / "work"))) == ["V1__noop.sql", "V2__more.sql"]


@pytest.mark.slow
def test_a_failing_migration_keeps_the_state_the_runner_planned(pg_db, tmp_path):
    """A real migrate run plans inside the apply call; when a file fails, the role still records
    the version before, the planned files and the row counts taken before applying."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "V1__t.sql").write_text("CREATE TABLE IF NOT EXISTS public.t (id int PRIMARY KEY);\n"
                                   "INSERT INTO public.t VALUES (1), (2), (3);\n")
    vars_ = dict(postgis_migration_source_dir=str(src), postgis_migration_require_backup=False,
                 postgis_migration_manage_extensions=False)
    proc, res = play(tmp_path, pg_db, vars_)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert res["result"]["version_after"] == "1" and res["result"]["pending"] == ["V1__t.sql"]
    assert res["result"]["touched_tables"] == {"public.t": None}
    assert "Plan migrations" not in proc.stdout  # one runner call: the apply plans itself

    (src / "V2__bad.sql").write_text("INSERT INTO public.t VALUES (4);\nSELECT 1 / 0;\n")
    (src / "V3__later.sql").write_text("INSERT INTO public.t VALUES (5);\n")
    proc, res = play(tmp_path, pg_db, vars_, save_on_failure=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    r = res["result"]
    assert r["rescued"] is True and r["phase"] == "failed", r
    assert r["version_before"] == "1" and r["applied"] == []
    assert r["pending"] == ["V2__bad.sql", "V3__later.sql"]
    assert r["touched_tables"] == {"public.t": 3}
    assert "V2__bad.sql" in r["error"] and "division by zero" in r["error"], r["error"]
    assert pg_db.scalar("SELECT count(*) FROM public.t") == 3  # the failed file was rolled back

    # A dry run still plans with a separate read-only call and applies nothing.
    (src / "V2__bad.sql").write_text("INSERT INTO public.t VALUES (4);\n")
    proc, res = play(tmp_path, pg_db, vars_, check=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Plan migrations" in proc.stdout
    assert res["result"]["phase"] == "dry-run" and res["result"]["pending"] == ["V2__bad.sql", "V3__later.sql"]
    assert res["result"]["touched_tables"] == {"public.t": 3}
    assert pg_db.scalar("SELECT count(*) FROM public.t") == 3


@pytest.mark.slow
def test_a_run_that_fails_before_reading_the_version_is_not_rolled_back_to_zero(pg_db, tmp_path):
    """The runner cannot take its lock (another runner holds it), so it reads nothing and applies
    nothing: the record says the version is unknown, and the rollback refuses instead of reverting
    everything down to 0 (which is what an unknown version_before would otherwise mean)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "V1__t.sql").write_text("CREATE TABLE IF NOT EXISTS public.t (id int PRIMARY KEY);\n")
    (src / "R1__t.sql").write_text("DROP TABLE IF EXISTS public.t;\n")
    vars_ = dict(postgis_migration_source_dir=str(src), postgis_migration_require_backup=False,
                 postgis_migration_manage_extensions=False)
    proc, res = play(tmp_path, pg_db, vars_)
    assert proc.returncode == 0 and res["result"]["version_after"] == "1", proc.stdout[-3000:]
    assert res["result"]["version_read"] is True

    (src / "V2__u.sql").write_text("CREATE TABLE IF NOT EXISTS public.u (id int);\n")
    holder = pg_db.connect()
    try:
        holder.cursor().execute("SELECT pg_advisory_lock(%s)", (advisory_key("pgops", "schema_history"),))
        vars_.update(postgis_migration_lock_wait=1)
        proc, res = play(tmp_path, pg_db, vars_, save_on_failure=True)
        assert proc.returncode == 0, proc.stdout[-3000:]
        r = res["result"]
        assert r["phase"] == "failed" and r["version_read"] is False and r["version_before"] is None, r
        assert "lock" in r["error"], r["error"]
        proc, res = play(tmp_path, pg_db, vars_, save_on_failure=True, rollback=True)
    finally:
        holder.close()
    assert proc.returncode != 0
    assert "failed before it read the schema version" in proc.stdout, proc.stdout[-3000:]
    assert "Nothing was reverted" in proc.stdout
    assert pg_db.scalar("SELECT to_regclass('public.t') IS NOT NULL") is True  # V1 still there
    assert pg_db.scalar("SELECT max(version::int) FROM pgops.schema_history WHERE success") == 1
