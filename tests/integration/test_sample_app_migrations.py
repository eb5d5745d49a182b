"""The sample app's migrations against a real PostgreSQL 15 + PostGIS: apply from empty
with psql ON_ERROR_STOP, verify scripts pass after and fail before, re-apply is harmless,
reverts in reverse order bring the database back to empty."""

import os
import subprocess

from santri_sample import apply_migrations, migration_files, revert_migrations, run_sql_file, schema_objects

EMPTY = {"relations": [], "types": [], "functions": [], "extensions": []}


def test_verify_scripts_fail_on_empty_database(pg_db):
    for version, path in migration_files("C"):
        proc = run_sql_file(pg_db, path, check=False)
        assert proc.returncode != 0, "C%d passed on an empty database" % version
        assert "C%d:" % version in proc.stderr, proc.stderr


def test_apply_verify_reapply_revert(pg_db):
    assert schema_objects(pg_db) == EMPTY
    applied = apply_migrations(pg_db)
    assert applied == [v for v, _ in migration_files("V")]

    for _version, path in migration_files("C"):
        run_sql_file(pg_db, path)
    objects = schema_objects(pg_db)
    relations = {r[0] for r in objects["relations"]}
    assert {"santri_pribadi", "pondok_pesantren", "santri_skor", "santri_map", "pesantren_map",
            "mv_santri_stats_kabupaten", "mv_pesantren_stats_kabupaten",
            "idx_santri_pribadi_nama_trgm", "idx_santri_map_geom", "idx_santri_skor_updated_at"} <= relations
    assert {("jenis_kelamin",), ("status_santri",), ("tipe_pesantren",)} <= set(objects["types"])
    assert {("pg_trgm",), ("pgcrypto",), ("postgis",), ("uuid-ossp",)} == set(objects["extensions"])
    assert pg_db.scalar("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'santri_skor'::regclass "
                        "AND NOT tgisinternal") == 2

    # Every file is guarded: applying all of them again changes nothing and fails nothing.
    apply_migrations(pg_db)
    assert schema_objects(pg_db) == objects

    revert_migrations(pg_db)
    assert schema_objects(pg_db) == EMPTY
    # Reverts are guarded too: running them on the empty database is harmless.
    revert_migrations(pg_db)
    assert schema_objects(pg_db) == EMPTY


def test_reverts_undo_exactly_their_version(pg_db):
    """After V1..Vn, Rn leaves the schema exactly as V1..V(n-1) left it."""
    snapshots = {0: schema_objects(pg_db)}
    for version, path in migration_files("V"):
        run_sql_file(pg_db, path)
        snapshots[version] = schema_objects(pg_db)
    for version, path in reversed(migration_files("R")):
        run_sql_file(pg_db, path)
        assert schema_objects(pg_db) == snapshots[version - 1], "R%d did not undo V%d" % (version, version)


def test_verify_scripts_catch_a_missing_object(pg_db):
    apply_migrations(pg_db)
    checks = dict(migration_files("C"))
    pg_db.query("DROP TRIGGER trg_santri_skor_sync ON santri_skor")
    proc = run_sql_file(pg_db, checks[5], check=False)
    assert proc.returncode != 0 and "trg_santri_skor_sync" in proc.stderr

    pg_db.query("DROP INDEX uq_mv_pesantren_stats_kabupaten")
    proc = run_sql_file(pg_db, checks[6], check=False)
    assert proc.returncode != 0 and "no valid UNIQUE index" in proc.stderr
    # The concurrent refresh the index exists for is indeed refused without it.
    proc = pg_db.psql("REFRESH MATERIALIZED VIEW CONCURRENTLY mv_pesantren_stats_kabupaten", check=False)
    assert proc.returncode != 0
    # ... and legal on the view that still has its index.
    pg_db.psql("REFRESH MATERIALIZED VIEW CONCURRENTLY mv_santri_stats_kabupaten")


def test_score_trigger_keeps_map_tables_in_sync(pg_db):
    apply_migrations(pg_db)
    pg_db.query("""
        INSERT INTO pondok_pesantren (id, nama, kabupaten, provinsi, lokasi)
        VALUES (1, 'PP Al-Falah', 'Kab. Jombang', 'Jawa Timur', ST_SetSRID(ST_MakePoint(112.2, -7.5), 4326));
        INSERT INTO santri_pribadi (id, nis, nama, jenis_kelamin, tanggal_lahir, pesantren_id, kabupaten,
                                    provinsi, lokasi)
        VALUES (1, 'N1', 'Ahmad Fauzi', 'L', '2008-01-01', 1, 'Kab. Kediri', 'Jawa Timur',
                ST_SetSRID(ST_MakePoint(112.0, -7.8), 4326)),
               (2, 'N2', 'Siti Aisyah', 'P', '2009-02-02', 1, 'Kab. Kediri', 'Jawa Timur',
                ST_SetSRID(ST_MakePoint(112.1, -7.7), 4326));""")
    pm = "SELECT jumlah_santri_berskor, total_skor::float, rata_skor::float FROM pesantren_map"
    pg_db.query("INSERT INTO santri_skor (santri_id, skor) VALUES (1, 80), (2, 70)")
    assert pg_db.query("SELECT santri_id, skor::float FROM santri_map ORDER BY 1") == [(1, 80.0), (2, 70.0)]
    assert pg_db.query(pm) == [(2, 150.0, 75.0)]
    pg_db.query("UPDATE santri_skor SET skor = 90 WHERE santri_id = 1")
    assert pg_db.scalar("SELECT skor::float FROM santri_map WHERE santri_id = 1") == 90.0
    assert pg_db.query(pm) == [(2, 160.0, 80.0)]
    pg_db.query("DELETE FROM santri_skor WHERE santri_id = 2")
    assert pg_db.scalar("SELECT skor FROM santri_map WHERE santri_id = 2") is None
    assert pg_db.query(pm) == [(1, 90.0, 90.0)]
    # The touch trigger moves updated_at on every update.
    before = pg_db.scalar("SELECT updated_at FROM santri_skor WHERE santri_id = 1")
    pg_db.query("UPDATE santri_skor SET kategori = 'tahfidz' WHERE santri_id = 1")
    assert pg_db.scalar("SELECT updated_at FROM santri_skor WHERE santri_id = 1") > before


def test_no_transaction_file_fails_inside_a_transaction(pg_db):
    """Why V7 carries `-- pgops:no-transaction`: wrapped in -1 it cannot run at all."""
    apply_migrations(pg_db, upto=6)
    v7 = dict(migration_files("V"))[7]
    proc = pg_db.cluster.psql(pg_db.name, file=v7)  # no -1: as the directive says
    assert proc.returncode == 0
    proc = subprocess.run(["psql", "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-h", pg_db.host, "-p",
                           str(pg_db.port), "-U", pg_db.user, "-d", pg_db.name, "-f", v7],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "cannot run inside a transaction block" in proc.stderr
    assert os.path.basename(v7).startswith("V7__")


def test_app_role_gets_only_what_the_api_needs(pg_db):
    """With role santri_app present, the grants let it write scores (the SECURITY DEFINER
    trigger updates the map tables for it) but not write the map tables itself."""
    pg_db.query("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'santri_app') THEN "
                "CREATE ROLE santri_app LOGIN; END IF; END $$")
    apply_migrations(pg_db)
    pg_db.query("""
        INSERT INTO pondok_pesantren (id, nama, kabupaten, provinsi, lokasi)
        VALUES (1, 'PP Nurul Huda', 'Kab. Demak', 'Jawa Tengah', ST_SetSRID(ST_MakePoint(110.6, -6.9), 4326));
        INSERT INTO santri_pribadi (id, nis, nama, jenis_kelamin, tanggal_lahir, pesantren_id, kabupaten,
                                    provinsi, lokasi)
        VALUES (1, 'N1', 'Zahra Amalia', 'P', '2009-01-01', 1, 'Kab. Demak', 'Jawa Tengah',
                ST_SetSRID(ST_MakePoint(110.6, -6.9), 4326));""")
    as_app = "SET ROLE santri_app; "
    pg_db.psql(as_app + "INSERT INTO santri_skor (santri_id, skor) VALUES (1, 77)")
    assert pg_db.scalar("SELECT skor::float FROM santri_map WHERE santri_id = 1") == 77.0
    assert pg_db.psql(as_app + "SELECT count(*) FROM mv_santri_stats_kabupaten").returncode == 0
    proc = pg_db.psql(as_app + "UPDATE santri_map SET skor = 1", check=False)
    assert proc.returncode != 0 and "permission denied" in proc.stderr
    proc = pg_db.psql(as_app + "DELETE FROM santri_pribadi", check=False)
    assert proc.returncode != 0 and "permission denied" in proc.stderr
