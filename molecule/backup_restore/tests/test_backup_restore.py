"""backup_restore scenario: after backup -> DELETE/DROP -> restore, santri is identical to before."""

import json
import os

import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
DB = RUNNER.get_hosts("db_servers")[0]
ROOT = "/var/backups/pgops/santri"


def host():
    return testinfra.get_host("ansible://" + DB, ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])


def psql(h, sql, db="santri"):
    return h.check_output("sudo -u postgres psql -X -At -d %s -c \"%s\"" % (db, sql))


def test_restored_contents_identical_to_before_the_damage():
    h = host()
    before = h.file("/root/fingerprints.before").content_string.strip().splitlines()
    after = [psql(h, "SELECT '%s', count(*), md5(string_agg(x::text, '|' ORDER BY x::text)) FROM %s x" % (t, t))
             for t in ("regions", "schools", "mv_region_stats")]
    assert after == before
    assert psql(h, "SELECT count(*) FROM schools") == "30000"
    assert psql(h, "SELECT ST_Area(geom) FROM regions WHERE id = 1") == "1"


def test_previous_database_kept_with_the_damage():
    h = host()
    names = psql(h, "SELECT datname FROM pg_database WHERE datname LIKE 'santri_pre_restore_%'", db="postgres").split()
    assert len(names) == 1
    assert psql(h, "SELECT count(*) FROM schools", db=names[0]) == "15000"


def test_latest_points_at_a_verified_restore_tested_backup_with_private_files():
    h = host()
    latest = h.file(ROOT + "/latest")
    assert latest.is_symlink
    man = json.loads(h.file(ROOT + "/latest/manifest.json").content_string)
    assert man["verified"] is True and man["status"] == "verified"
    assert [c["name"] for c in man["verification"]["checks"]] == ["checksums", "read", "restore"]
    assert man["row_counts"]["public.schools"] == 30000 and man["postgis_version"]
    assert h.file(ROOT).mode == 0o700 and h.file(ROOT).user == "postgres"
    for name in ("globals.sql", "app_state.tar.gz", "manifest.json"):
        f = h.file("%s/latest/%s" % (ROOT, name))
        assert f.mode == 0o600, name
    listing = h.check_output("tar -tzf %s/latest/app_state.tar.gz" % ROOT)
    assert ".env" in listing and "uploads/a.jpg" in listing


def test_database_privileges_survive_the_swap():
    h = host()
    ok = h.run("PGPASSWORD=molecule-only-password psql -X -At -h localhost -U santri_app -d santri "
               "-c 'SELECT count(*) FROM regions'")
    assert ok.rc == 0, ok.stderr
    assert ok.stdout.strip() == "40"
