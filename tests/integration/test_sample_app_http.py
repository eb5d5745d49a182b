"""The sample app as a real process (uvicorn / gunicorn) over real HTTP against a real
PostgreSQL 15 + PostGIS database with the migrations applied and generated data."""

import re

import pytest

from santri_sample import APP_DIR, AppServer, app_python, apply_migrations, database_url, free_port, run_datagen


def app_version():
    with open(APP_DIR + "/santri_api/__init__.py") as fh:
        return re.search(r'__version__ = "([^"]+)"', fh.read()).group(1)


@pytest.fixture(scope="module")
def python():
    return app_python()


@pytest.fixture(scope="module")
def santri_db(pg_cluster, python):
    db = pg_cluster.create_database(prefix="t_santri_http")
    apply_migrations(db)
    proc, _ = run_datagen(python, database_url(db), "--rows", 1500, "--pesantren", 20, "--seed", 3)
    assert proc.returncode == 0, proc.stderr
    try:
        yield db
    finally:
        pg_cluster.drop_database(db.name)


@pytest.fixture(scope="module")
def app(python, santri_db):
    with AppServer(python, database_url=database_url(santri_db), env={"APP_REVISION": "rev-under-test"}) as server:
        yield server


def test_health_ok_with_version_and_revision(app):
    status, body = app.get("/health")
    assert status == 200, body
    assert body == {"status": "ok", "db": "ok", "version": app_version(), "revision": "rev-under-test"}


def test_health_503_when_database_is_down(python):
    dead = "postgresql://postgres@127.0.0.1:%d/santri" % free_port()
    with AppServer(python, database_url=dead) as server:  # starting at all is part of the test
        status, body = server.get("/health")
        assert status == 503, body
        assert body["status"] == "error" and body["db"] == "down"
        assert body["version"] == app_version() and body["revision"] == "unknown"
        assert "refused" in body["error"].lower()
        status, body = server.get("/santri/search?q=ahmad")
        assert status == 503 and body["detail"] == "database unavailable"
        assert "unreachable at start-up" in server.log()


def test_health_503_without_database_url(python, tmp_path):
    with AppServer(python, env={"SANTRI_ENV_FILE": str(tmp_path / "none.env")}) as server:
        status, body = server.get("/health")
        assert status == 503 and "DATABASE_URL is not set" in body["error"]


def test_database_url_from_env_file(python, santri_db, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("# written by the deploy\nDATABASE_URL=%s\n" % database_url(santri_db))
    with AppServer(python, env={"SANTRI_ENV_FILE": str(env_file)}) as server:
        status, body = server.get("/health")
        assert status == 200 and body["db"] == "ok"


def test_choropleth_kabupaten(app, santri_db):
    status, rows = app.get("/gis/choropleth/stats?level=kabupaten")
    assert status == 200, rows
    assert isinstance(rows, list) and len(rows) == santri_db.scalar(
        "SELECT count(*) FROM (SELECT provinsi, kabupaten FROM mv_santri_stats_kabupaten UNION "
        "SELECT provinsi, kabupaten FROM mv_pesantren_stats_kabupaten) u")
    assert {"provinsi", "kabupaten", "jumlah_santri", "rata_skor", "jumlah_pesantren", "lon", "lat"} <= set(rows[0])
    assert sum(r["jumlah_santri"] for r in rows) == santri_db.scalar(
        "SELECT count(*) FROM santri_pribadi WHERE status = 'aktif'")
    assert sum(r["jumlah_pesantren"] for r in rows) == 20
    jombang = [r for r in rows if r["kabupaten"] == "Kab. Jombang"]
    assert jombang and 111.5 < jombang[0]["lon"] < 113 and -8 < jombang[0]["lat"] < -7


def test_choropleth_provinsi_and_filter(app):
    status, rows = app.get("/gis/choropleth/stats?level=provinsi")
    assert status == 200
    by_prov = {r["provinsi"]: r for r in rows}
    status, kab_rows = app.get("/gis/choropleth/stats?provinsi=Jawa%20Timur")
    assert status == 200 and kab_rows and {r["provinsi"] for r in kab_rows} == {"Jawa Timur"}
    assert sum(r["jumlah_santri"] for r in kab_rows) == by_prov["Jawa Timur"]["jumlah_santri"]
    status, body = app.get("/gis/choropleth/stats?level=desa")
    assert status == 422 and body["detail"][0]["loc"] == ["query", "level"]


def test_search_finds_by_partial_and_fuzzy_name(app, santri_db):
    santri_id, nama = santri_db.query("SELECT id, nama FROM santri_pribadi WHERE nama LIKE '%% %% %%' "
                                      "ORDER BY id LIMIT 1")[0]
    status, rows = app.get("/santri/search?limit=100&q=" + nama.replace(" ", "%20"))
    assert status == 200 and santri_id in [r["id"] for r in rows]
    assert rows[0]["kemiripan"] == 1.0  # an exact name ranks first
    last = nama.split()[-1]
    status, rows = app.get("/santri/search?limit=5&q=" + last)
    assert status == 200 and 0 < len(rows) <= 5 and all(last.lower() in r["nama"].lower() for r in rows)
    status, rows = app.get("/santri/search?q=zzqqxxvv")
    assert status == 200 and rows == []
    status, body = app.get("/santri/search?q=a")
    assert status == 422
    status, body = app.get("/santri/search?q=ahmad&limit=1000")
    assert status == 422


def test_post_skor_updates_map_through_trigger(app, santri_db):
    santri_id, pesantren_id = santri_db.query(
        "SELECT p.id, p.pesantren_id FROM santri_pribadi p LEFT JOIN santri_skor s ON s.santri_id = p.id "
        "WHERE s.santri_id IS NULL ORDER BY p.id LIMIT 1")[0]
    pm = "SELECT jumlah_santri_berskor, total_skor::float FROM pesantren_map WHERE pesantren_id = %s"
    n0, total0 = santri_db.query(pm, (pesantren_id,))[0]

    status, body = app.post("/santri/%d/skor" % santri_id, {"skor": 88.25, "kategori": "tahfidz"})
    assert status == 200, body
    assert body["santri_id"] == santri_id and body["skor"] == 88.25 and body["created"] is True
    assert body["map_skor"] == 88.25 and body["kategori"] == "tahfidz"
    assert santri_db.scalar("SELECT skor::float FROM santri_map WHERE santri_id = %s", (santri_id,)) == 88.25
    assert santri_db.query(pm, (pesantren_id,))[0] == (n0 + 1, total0 + 88.25)

    status, body = app.post("/santri/%d/skor" % santri_id, {"skor": 60})
    assert status == 200 and body["created"] is False and body["map_skor"] == 60
    assert santri_db.query(pm, (pesantren_id,))[0] == (n0 + 1, total0 + 60)


def test_post_skor_unknown_santri_is_404(app, santri_db):
    missing = santri_db.scalar("SELECT max(id) + 1000 FROM santri_pribadi")
    status, body = app.post("/santri/%d/skor" % missing, {"skor": 50})
    assert status == 404 and body == {"detail": "santri %d not found" % missing}
    assert santri_db.scalar("SELECT count(*) FROM santri_skor WHERE santri_id = %s", (missing,)) == 0


@pytest.mark.parametrize("path,body", [
    ("/santri/1/skor", {"skor": 101}),
    ("/santri/1/skor", {"skor": -1}),
    ("/santri/1/skor", {"skor": 12.345}),
    ("/santri/1/skor", {"skor": "banyak"}),
    ("/santri/1/skor", {"skor": 50, "rank": 1}),
    ("/santri/1/skor", {"kategori": "umum"}),
    ("/santri/1/skor", {"skor": 50, "kategori": ""}),
    ("/santri/1/skor", "not json"),
    ("/santri/abc/skor", {"skor": 50}),
    ("/santri/0/skor", {"skor": 50}),
])
def test_post_skor_rejects_bad_input_with_422(app, santri_db, path, body):
    before = santri_db.query("SELECT skor FROM santri_skor WHERE santri_id = 1")
    status, answer = app.post(path, body)
    assert status == 422, answer
    assert isinstance(answer["detail"], list) and answer["detail"][0]["msg"]
    assert santri_db.query("SELECT skor FROM santri_skor WHERE santri_id = 1") == before


def test_gunicorn_uvicorn_worker_serves(python, santri_db):
    with AppServer(python, database_url=database_url(santri_db), server="gunicorn", workers=2) as server:
        status, body = server.get("/health")
        assert status == 200 and body["version"] == app_version()
        assert "Booting worker" in server.log()
