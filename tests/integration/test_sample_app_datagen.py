"""santri_api.datagen against a real PostgreSQL 15 + PostGIS (run with the app's own venv)."""

import pytest

from santri_sample import app_python, apply_migrations, database_url, run_datagen, run_sql_file, migration_files

BBOX = "ST_MakeEnvelope(94.9, -11.1, 141.1, 6.1, 4326)"


@pytest.fixture(scope="module")
def python():
    return app_python()


def test_datagen_fills_tables_and_matviews(pg_db, python):
    apply_migrations(pg_db)
    proc, result = run_datagen(python, database_url(pg_db), "--rows", 2000, "--batch-size", 700, "--seed", 7)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Progress lines per batch (700 + 700 + 600) and the final size.
    assert proc.stdout.count("datagen: batch ") == 3
    assert "pg_database_size = " in proc.stdout
    assert result["added_santri"] == 2000
    # (datagen's temp tables are gone once it disconnects: allow for them)
    assert abs(result["database_size"] - pg_db.scalar("SELECT pg_database_size(current_database())")) < 1 << 20

    assert pg_db.scalar("SELECT count(*) FROM santri_pribadi") == 2000
    assert pg_db.scalar("SELECT count(*) FROM santri_map") == 2000
    scored = pg_db.scalar("SELECT count(*) FROM santri_skor")
    assert 1600 < scored < 2000  # ~90 % have a score
    assert pg_db.scalar("SELECT count(*) FROM santri_map WHERE skor IS NOT NULL") == scored
    assert pg_db.scalar("SELECT count(*) FROM pondok_pesantren") == 10
    assert pg_db.scalar("SELECT count(*) FROM santri_pribadi WHERE NOT ST_Within(lokasi, %s)" % BBOX) == 0
    assert pg_db.scalar("SELECT min(skor) >= 40 AND max(skor) <= 100 FROM santri_skor") is True
    # pesantren_map aggregates agree with the scores they summarise.
    assert pg_db.query("SELECT sum(jumlah_santri_berskor), sum(total_skor) FROM pesantren_map") == \
        pg_db.query("SELECT count(skor), sum(skor) FROM santri_map")

    # Matviews refreshed: one row per kabupaten, counts add up to the active santri.
    assert result["matview_rows"]["mv_santri_stats_kabupaten"] > 20
    assert pg_db.scalar("SELECT sum(jumlah_santri) FROM mv_santri_stats_kabupaten") == \
        pg_db.scalar("SELECT count(*) FROM santri_pribadi WHERE status = 'aktif'")
    assert pg_db.scalar("SELECT sum(jumlah_pesantren) FROM mv_pesantren_stats_kabupaten") == 10
    assert pg_db.scalar("SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables "
                        "WHERE relname = 'santri_pribadi'") is True
    for _, path in migration_files("C"):
        run_sql_file(pg_db, path)

    # Identity sequences follow the generated ids: the app's own inserts still work.
    assert pg_db.scalar("INSERT INTO santri_pribadi (nis, nama, jenis_kelamin, tanggal_lahir, pesantren_id, "
                        "kabupaten, provinsi, lokasi) VALUES ('X1', 'Baru', 'L', '2010-01-01', 1, 'Kab. Demak', "
                        "'Jawa Tengah', ST_SetSRID(ST_MakePoint(110.6, -6.9), 4326)) RETURNING id") == 2001

    # Additive: a second run appends after the current maximum id.
    proc, result = run_datagen(python, database_url(pg_db), "--rows", 300, "--seed", 7)
    assert proc.returncode == 0, proc.stderr
    assert pg_db.query("SELECT min(id), max(id) FROM santri_pribadi WHERE id > 2001") == [(2002, 2301)]


def test_datagen_same_seed_same_data(pg_cluster, pg_db, python):
    fingerprint = ("SELECT md5(string_agg(concat_ws('|', p.id, p.uuid, p.nama, p.jenis_kelamin, p.tanggal_lahir, "
                   "p.status, p.pesantren_id, p.kabupaten, ST_AsText(p.lokasi), s.skor, s.kategori), ',' "
                   "ORDER BY p.id)) FROM santri_pribadi p LEFT JOIN santri_skor s ON s.santri_id = p.id")
    other = pg_cluster.create_database(prefix="t_datagen_seed_b")
    try:
        prints = []
        for db, seed in ((pg_db, 11), (other, 11)):
            apply_migrations(db, upto=5)
            proc, result = run_datagen(python, database_url(db), "--rows", 500, "--seed", seed)
            assert proc.returncode == 0, proc.stderr
            prints.append(db.scalar(fingerprint))
        assert prints[0] == prints[1]
        other.query("TRUNCATE santri_skor, santri_map, santri_pribadi")
        proc, _ = run_datagen(python, database_url(other), "--rows", 500, "--seed", 12)
        assert proc.returncode == 0, proc.stderr
        assert other.scalar(fingerprint) != prints[0]
    finally:
        pg_cluster.drop_database(other.name)


def test_datagen_on_release_1_0_schema_skips_matviews(pg_db, python):
    apply_migrations(pg_db, upto=5)
    proc, result = run_datagen(python, database_url(pg_db), "--rows", 300, "--pesantren", 4)
    assert proc.returncode == 0, proc.stderr
    assert result["matview_rows"] == {}
    assert "refreshed" not in proc.stdout
    assert pg_db.scalar("SELECT count(*) FROM pondok_pesantren") == 4
    assert pg_db.scalar("SELECT max(pesantren_id) FROM santri_pribadi") <= 4


def test_datagen_target_size_stops_once_reached(pg_db, python):
    apply_migrations(pg_db)
    start = pg_db.scalar("SELECT pg_database_size(current_database())")
    target = start + 6 * 1024 * 1024
    proc, result = run_datagen(python, database_url(pg_db), "--target-size", "%dB" % target,
                               "--batch-size", 3000, "--pesantren", 10, "--no-refresh")
    assert proc.returncode == 0, proc.stderr
    batches = proc.stdout.count("datagen: batch ")
    assert batches >= 2
    assert result["added_santri"] == 3000 * batches
    assert result["database_size"] >= target
    # It stopped at the first batch that reached the target, not later.
    sizes = [line for line in proc.stdout.splitlines() if line.startswith("datagen: batch ")]
    assert "target" in sizes[-1]


@pytest.mark.parametrize("args,message", [
    (["--target-size", "lots"], "invalid size 'lots'"),
    (["--rows", "0"], "must be > 0"),
    ([], "nothing to do"),
])
def test_datagen_rejects_bad_arguments(pg_db, python, args, message):
    proc, result = run_datagen(python, database_url(pg_db), *args)
    assert proc.returncode != 0 and result is None
    assert message in proc.stderr


def test_datagen_refuses_unmigrated_database(pg_db, python):
    proc, result = run_datagen(python, database_url(pg_db), "--rows", 10)
    assert proc.returncode != 0 and result is None
    assert "schema not migrated" in proc.stderr
    assert pg_db.scalar("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace") == 0
