"""Shared pytest fixtures: a throwaway real PostgreSQL 15 + PostGIS cluster and
helpers that run pgops.deploy modules / playbooks for real.

Fixtures
  pg_cluster  (session) a running cluster: initdb in a temp dir, free port,
              pg_stat_statements preloaded, trust auth on loopback.
  pg_db       (function) a fresh database in that cluster, dropped afterwards.
Helpers (tests/lib/pgops_testlib.py): run_module(), run_playbook(), psql().
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".collections"))

from pgops_testlib import PgCluster, ensure_collection_link  # noqa: E402

ensure_collection_link()


@pytest.fixture(scope="session")
def pg_cluster():
    cluster = PgCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_db(pg_cluster, request):
    db = pg_cluster.create_database(prefix="t_" + request.node.name[:30])
    try:
        yield db
    finally:
        pg_cluster.drop_database(db.name)
