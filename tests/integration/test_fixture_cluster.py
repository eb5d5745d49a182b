"""The throwaway cluster itself: real server, PostGIS and pg_stat_statements available."""


def test_cluster_serves_postgis_and_pg_stat_statements(pg_db):
    pg_db.psql("CREATE EXTENSION postgis; CREATE EXTENSION pg_stat_statements;")
    version = pg_db.scalar("SELECT postgis_lib_version()")
    assert version.startswith("3.")
    assert pg_db.scalar("SELECT current_setting('shared_preload_libraries')") == "pg_stat_statements"
    assert pg_db.scalar("SELECT ST_AsText(ST_SetSRID(ST_MakePoint(110.4, -7.0), 4326))") == "POINT(110.4 -7)"


def test_each_test_gets_its_own_database(pg_db, pg_cluster):
    assert pg_db.scalar("SELECT current_database()") == pg_db.name
    names = [r[0] for r in pg_cluster.database("postgres").query("SELECT datname FROM pg_database")]
    assert pg_db.name in names
