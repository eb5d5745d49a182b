"""Role pgops.deploy.postgis_migration, engine alembic: a tiny real alembic project (alembic from the
project venv) against a real PostgreSQL + PostGIS; upgrade records revisions, rollback downgrades."""

import json
import os
import sys

import pytest
import yaml

from pgops_testlib import run_playbook

ALEMBIC_INI = """\
[alembic]
script_location = %(here)s/alembic

[loggers]
keys = root,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
"""

ENV_PY = """\
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine

fileConfig(context.config.config_file_name)
engine = create_engine(os.environ["DATABASE_URL"])
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
"""

REVISION = """\
from alembic import op

revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
    op.execute({up!r})


def downgrade():
    op.execute({down_sql!r})
"""


def make_project(root):
    versions = root / "alembic" / "versions"
    versions.mkdir(parents=True)
    (root / "alembic.ini").write_text(ALEMBIC_INI)
    (root / "alembic" / "env.py").write_text(ENV_PY)
    (versions / "a1_sites.py").write_text(REVISION.format(
        rev="a1", down=None, up="CREATE TABLE sites (id int PRIMARY KEY, geom geometry(Point, 4326))",
        down_sql="DROP TABLE sites"))
    (versions / "b2_site_name.py").write_text(REVISION.format(
        rev="b2", down="a1", up="ALTER TABLE sites ADD COLUMN name text", down_sql="ALTER TABLE sites DROP COLUMN name"))


@pytest.mark.slow
def test_alembic_upgrade_records_revisions_and_rollback_downgrades(pg_db, tmp_path):
    venv = os.path.dirname(os.path.dirname(sys.executable))
    if not os.path.exists(os.path.join(venv, "bin", "alembic")):
        pytest.skip("alembic is not installed in the project venv (requirements.txt)")
    pg_db.psql("CREATE EXTENSION postgis")
    project = tmp_path / "app"
    make_project(project)
    out = tmp_path / "result.json"
    role_vars = dict(
        postgis_migration_engine="alembic", postgis_migration_db=pg_db.name,
        postgis_migration_login_host=pg_db.host, postgis_migration_login_port=pg_db.port,
        postgis_migration_become=False, postgis_migration_require_backup=False,
        postgis_migration_manage_extensions=False,
        postgis_migration_alembic_venv=venv, postgis_migration_alembic_dir=str(project),
        postgis_migration_alembic_env={"DATABASE_URL": "postgresql+psycopg2://postgres@%s:%s/%s"
                                       % (pg_db.host, pg_db.port, pg_db.name)},
    )
    def save(name, dest):
        return {"name": name, "changed_when": False, "ansible.builtin.copy": {
            "dest": str(dest), "mode": "0600",
            "content": "{{ {'result': postgis_migration_result | default(none), "
                       "'rollback': postgis_migration_rollback_result | default(none)} | to_json }}"}}

    upgrade = {"name": "Upgrade", "ansible.builtin.include_role": {"name": "pgops.deploy.postgis_migration"}}
    rollback = {"name": "Roll back", "ansible.builtin.include_role": {
        "name": "pgops.deploy.postgis_migration", "tasks_from": "rollback"}}
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    pb = tmp_path / "alembic.yml"
    pb.write_text(yaml.safe_dump([{"name": "Alembic", "hosts": "localhost", "gather_facts": False,
                                   "vars": role_vars,
                                   "tasks": [upgrade, save("Save first", first), upgrade, rollback,
                                             save("Save second", second)]}], sort_keys=False))
    proc = run_playbook(str(pb))
    assert proc.returncode == 0, proc.stdout[-4000:]
    r1 = json.loads(first.read_text())["result"]
    assert r1["engine"] == "alembic" and r1["alembic_revision_before"] == "" and r1["alembic_revision_after"] == "b2"
    assert r1["changed"] is True and len(r1["applied"]) == 2
    assert pg_db.scalar("SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns "
                        "WHERE table_name = 'sites'") == "geom,id,name"
    res = json.loads(second.read_text())
    # Second run: already at head, nothing ran; its rollback target is the revision before it (b2): no-op.
    assert res["result"]["alembic_revision_before"] == "b2" and res["result"]["changed"] is False
    assert res["result"]["applied"] == []
    assert res["rollback"]["target"] == "b2" and res["rollback"]["reverted"] == []

    # Explicit rollback target: downgrade to a1 drops the column.
    role_vars["postgis_migration_rollback_target"] = "a1"
    pb.write_text(yaml.safe_dump([{"name": "Alembic rollback", "hosts": "localhost", "gather_facts": False,
                                   "vars": role_vars, "tasks": [rollback, save("Save", out)]}], sort_keys=False))
    proc = run_playbook(str(pb))
    assert proc.returncode == 0, proc.stdout[-4000:]
    res = json.loads(out.read_text())
    assert res["rollback"]["target"] == "a1" and res["rollback"]["changed"] is True
    assert any("b2 -> a1" in line for line in res["rollback"]["reverted"]), res["rollback"]
    assert pg_db.scalar("SELECT version_num FROM alembic_version") == "a1"
    assert pg_db.scalar("SELECT count(*) FROM information_schema.columns WHERE table_name = 'sites'") == 2
