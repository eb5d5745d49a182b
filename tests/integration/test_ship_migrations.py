"""roles/postgis_migration/files/ship-migrations.sh run as root the way ship.yml runs it (become): real tar,
base64, sha256sum, chown to another user, who must then be able to read the files (as the runner does)."""

import base64
import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "roles", "postgis_migration", "files", "ship-migrations.sh")
USER = "nobody"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


def controller_digest(src):
    """What ship.yml computes on the controller: sha256sum of *.sql (names + bytes), hashed again."""
    lines = "".join("%s  %s\n" % (hashlib.sha256(open(os.path.join(src, n), "rb").read()).hexdigest(), n)
                    for n in sorted(f for f in os.listdir(src) if f.endswith(".sql")))
    return hashlib.sha256(lines.encode()).hexdigest()


def ship(work, src, owner=USER, digest=None):
    tar = subprocess.run("tar -cf - -- *.sql | base64", shell=True, cwd=src, check=True,
                         capture_output=True).stdout
    return subprocess.run(["/bin/sh", "-c", open(SCRIPT).read(), "ship-migrations", work, owner, "-",
                           controller_digest(src) if digest is None else digest],
                          input=tar, capture_output=True)


@pytest.fixture
def open_tmp():
    """A temp dir another user can traverse (pytest's tmp_path lives under a 0700 directory)."""
    path = tempfile.mkdtemp(prefix="pgops-ship-", dir="/var/tmp")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_ships_mirrors_prunes_and_the_runner_user_can_read(tmp_path, open_tmp):
    src = tmp_path / "src"
    src.mkdir()
    (src / "V1__init.sql").write_bytes(b"CREATE TABLE t (id int);\n")
    (src / "V2__more.sql").write_bytes(b"-- \xe9 not UTF-8\nALTER TABLE t ADD COLUMN x int;\n")
    work = os.path.join(open_tmp, "var", "lib", "pgops", "work")
    proc = ship(work, str(src))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines() == ["created %s" % work, "shipped V1__init.sql", "shipped V2__more.sql"]
    # New parents stay traversable, the work dir and files are private to the runner's user.
    assert mode(os.path.join(open_tmp, "var", "lib", "pgops")) == 0o755
    assert mode(work) == 0o750 and pwd.getpwuid(os.stat(work).st_uid).pw_name == USER
    for name in ("V1__init.sql", "V2__more.sql"):
        path = os.path.join(work, name)
        assert mode(path) == 0o640 and pwd.getpwuid(os.stat(path).st_uid).pw_name == USER
        assert open(path, "rb").read() == (src / name).read_bytes()  # bytes unchanged: checksums stay stable
    read = subprocess.run(["runuser", "-u", USER, "--", "cat", os.path.join(work, "V2__more.sql")],
                          capture_output=True)
    assert read.returncode == 0 and read.stdout == (src / "V2__more.sql").read_bytes()

    # Nothing differs: no output (the task reports no change), no leftover incoming dir.
    proc = ship(work, str(src))
    assert proc.returncode == 0 and proc.stdout == b"", proc.stderr
    assert sorted(os.listdir(work)) == ["V1__init.sql", "V2__more.sql"]

    # A changed file is replaced, a file no longer in the source is removed.
    (src / "V2__more.sql").write_bytes(b"ALTER TABLE t ADD COLUMN y int;\n")
    (src / "V1__init.sql").unlink()
    proc = ship(work, str(src))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines() == ["removed V1__init.sql", "shipped V2__more.sql"]
    assert sorted(os.listdir(work)) == ["V2__more.sql"]


def test_a_transfer_that_does_not_match_the_controller_digest_changes_nothing(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "V1__init.sql").write_bytes(b"SELECT 1;\n")
    work = str(tmp_path / "work")
    assert ship(work, str(src)).returncode == 0
    (src / "V1__init.sql").write_bytes(b"SELECT 2;\n")
    proc = ship(work, str(src), digest="0" * 64)
    assert proc.returncode == 4
    assert b"transfer check failed" in proc.stderr and b"0000000000" in proc.stderr
    assert open(os.path.join(work, "V1__init.sql"), "rb").read() == b"SELECT 1;\n"
    assert sorted(os.listdir(work)) == ["V1__init.sql"]  # the incoming dir is gone too
