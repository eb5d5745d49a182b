"""Molecule scenario `migrations`: the postgis_migration role applied the sample app's migrations."""

import glob
import os

import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
DB = RUNNER.get_hosts("db_servers")[0]
SAMPLE = os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "examples", "santri_api", "migrations")


def host():
    return testinfra.get_host("ansible://" + DB, ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])


def psql(sql):
    out = host().run("sudo -u postgres psql -X -d santri -Atc %s", sql)
    assert out.rc == 0, out.stderr
    return out.stdout.strip()


def test_every_sample_migration_is_recorded_with_its_checksum():
    versions = sorted(os.path.basename(p).split("__")[0][1:] for p in glob.glob(os.path.join(SAMPLE, "V*__*.sql")))
    rows = psql("SELECT version FROM pgops.schema_history WHERE type = 'versioned' AND success ORDER BY installed_rank")
    assert sorted(rows.split()) == sorted(versions)
    assert psql("SELECT count(*) FROM pgops.schema_history WHERE NOT success") == "0"


def test_tables_matviews_and_valid_index_exist():
    for rel in ("public.pondok_pesantren", "public.santri_pribadi", "public.santri_map"):
        assert psql("SELECT to_regclass('%s') IS NOT NULL" % rel) == "t", rel
    assert int(psql("SELECT count(*) FROM pg_matviews WHERE schemaname = 'public'")) >= 2
    assert psql("SELECT bool_and(indisvalid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'") == "t"


def test_geometry_columns_are_postgis_points():
    assert psql("SELECT count(*) FROM geometry_columns WHERE f_table_name = 'santri_map' AND type = 'POINT' "
                "AND srid = 4326") == "1"


def test_work_dir_is_owned_by_postgres_and_mirrors_the_source():
    h = host()
    work = "/var/lib/pgops/migrations/santri"
    assert h.file(work).user == "postgres"
    shipped = sorted(h.check_output("ls %s" % work).split())
    assert shipped == sorted(os.listdir(SAMPLE))
    for name in shipped:
        local = os.path.join(SAMPLE, name)
        import hashlib
        with open(local, "rb") as fh:
            assert h.file(os.path.join(work, name)).sha256sum == hashlib.sha256(fh.read()).hexdigest(), name


def test_scheduled_refresh_is_a_real_systemd_timer_that_refreshes_the_views():
    h = host()
    timer = h.service("pgops-matview-refresh.timer")
    assert timer.is_enabled and timer.is_running
    assert "pgops-matview-refresh.service" in h.check_output("systemctl list-timers --all --no-legend")
    psql("INSERT INTO pondok_pesantren (nama, kabupaten, provinsi, lokasi) "
         "SELECT 'Pesantren Uji ' || g, 'Jombang', 'Jawa Timur', ST_SetSRID(ST_MakePoint(112.2, -7.5), 4326) "
         "FROM generate_series(1, 3) g")
    before = psql("SELECT coalesce(sum(jumlah_pesantren), 0) FROM mv_pesantren_stats_kabupaten")
    run = h.run("systemctl start pgops-matview-refresh.service")     # oneshot: returns when done
    assert run.rc == 0, run.stderr + h.run("journalctl -u pgops-matview-refresh.service --no-pager | tail -20").stdout
    after = psql("SELECT coalesce(sum(jumlah_pesantren), 0) FROM mv_pesantren_stats_kabupaten")
    assert int(after) == int(before) + 3
    assert h.run("systemctl show -p Result --value pgops-matview-refresh.service").stdout.strip() == "success"
