"""scripts/make-sample-repo.sh: a real git repository with the sample app's releases, and
the releases behaving as advertised when cloned and started for real."""

import os
import subprocess

import pytest

from santri_sample import (AppServer, app_python, apply_migrations, database_url, git, make_sample_repo,
                           migration_files)

TAGS = ["v1.0.0", "v1.1.0", "v1.2.0-broken-health", "v1.2.0-broken-import"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    dest = tmp_path_factory.mktemp("sample-repo")
    proc, path = make_sample_repo(dest)
    assert proc.returncode == 0, proc.stderr
    assert path == str(dest / "santri_api.git")
    return path


def refs(path):
    return git("for-each-ref", "--format=%(objectname) %(objecttype) %(refname)", cwd=path)


def clone(repo, ref, dest):
    git("clone", "-q", "--branch", ref, repo, str(dest))
    return str(dest)


def version_of(tree):
    with open(os.path.join(tree, "santri_api", "__init__.py")) as fh:
        return fh.read().split('__version__ = "')[1].split('"')[0]


def test_repo_has_annotated_tags_and_main_at_1_1(repo):
    assert git("rev-parse", "--is-bare-repository", cwd=repo) == "true"
    assert git("tag", "--list", cwd=repo).split() == TAGS
    for tag in TAGS:
        assert git("cat-file", "-t", tag, cwd=repo) == "tag"  # annotated, not lightweight
    assert git("rev-parse", "main", cwd=repo) == git("rev-parse", "v1.1.0^{commit}", cwd=repo)
    assert git("symbolic-ref", "HEAD", cwd=repo) == "refs/heads/main"
    # Linear history: 1.0.0 -> 1.1.0 -> broken-import -> broken-health.
    assert git("rev-list", "--count", "v1.2.0-broken-health", cwd=repo) == "4"
    assert git("rev-parse", "v1.2.0-broken-health^^", cwd=repo) == git("rev-parse", "v1.1.0^{commit}", cwd=repo)


def test_clone_by_tag_checks_out_that_release(repo, tmp_path):
    v100 = clone(repo, "v1.0.0", tmp_path / "v100")
    assert version_of(v100) == "1.0.0"
    assert not os.path.exists(os.path.join(v100, "santri_api", "gis.py"))
    assert [v for v, _ in migration_files("V", os.path.join(v100, "migrations"))] == [1, 2, 3, 4, 5]
    assert "gis" not in open(os.path.join(v100, "santri_api", "main.py")).read()

    v110 = clone(repo, "v1.1.0", tmp_path / "v110")
    assert version_of(v110) == "1.1.0"
    assert [v for v, _ in migration_files("V", os.path.join(v110, "migrations"))][-1] >= 6
    default = clone(repo, "main", tmp_path / "main")
    assert version_of(default) == "1.1.0"
    for tag in ("v1.2.0-broken-import", "v1.2.0-broken-health"):
        assert version_of(clone(repo, tag, tmp_path / tag)) == "1.2.0"
    # Deploy-time files are ignored by the app's .gitignore.
    open(os.path.join(v110, "REVISION"), "w").write("x\n")
    open(os.path.join(v110, ".env"), "w").write("DATABASE_URL=x\n")
    assert git("status", "--porcelain", cwd=v110) == ""


def test_rerun_is_idempotent_and_deterministic(repo, tmp_path):
    before = refs(repo)
    proc, path = make_sample_repo(os.path.dirname(repo))
    assert proc.returncode == 0 and path == repo
    assert "repository unchanged" in proc.stderr
    assert refs(repo) == before
    # Another destination, another time: the very same SHAs.
    proc, other = make_sample_repo(tmp_path / "elsewhere")
    assert proc.returncode == 0
    assert refs(other) == before


def test_rerun_replaces_a_repo_that_differs(repo, tmp_path):
    dest = tmp_path / "stale"
    proc, path = make_sample_repo(dest)
    assert proc.returncode == 0
    git("update-ref", "refs/heads/main", "v1.0.0^{commit}", cwd=path)  # someone moved main
    proc, path = make_sample_repo(dest)
    assert proc.returncode == 0 and "replacing" in proc.stderr
    assert refs(path) == refs(repo)


def test_usage_error_without_destination():
    proc = subprocess.run(["bash", os.path.join(os.path.dirname(__file__), "..", "..", "scripts",
                                                "make-sample-repo.sh")], capture_output=True, text=True)
    assert proc.returncode == 2 and "usage:" in proc.stderr


def test_releases_behave_when_started(repo, tmp_path, pg_db):
    """1.0.0 serves with its REVISION, broken-import cannot start, broken-health answers 503."""
    python = app_python()
    v100 = clone(repo, "v1.0.0", tmp_path / "v100")
    sha = git("rev-parse", "HEAD", cwd=v100)
    with open(os.path.join(v100, "REVISION"), "w") as fh:
        fh.write(sha + "\n")
    apply_migrations(pg_db, migrations_dir=os.path.join(v100, "migrations"))
    with AppServer(python, app_dir=v100, database_url=database_url(pg_db)) as server:
        status, body = server.get("/health")
        assert status == 200 and body["version"] == "1.0.0" and body["revision"] == sha
        status, _ = server.get("/gis/choropleth/stats")
        assert status == 404  # the GIS endpoint arrived in 1.1.0

    broken_import = clone(repo, "v1.2.0-broken-import", tmp_path / "bi")
    proc = subprocess.run([python, "-c", "import santri_api.main"], cwd=broken_import, capture_output=True,
                          text=True)
    assert proc.returncode != 0 and "ModuleNotFoundError: No module named 'santri_api.cache'" in proc.stderr
    with pytest.raises(RuntimeError, match="exited with rc="):
        AppServer(python, app_dir=broken_import, database_url=database_url(pg_db)).start()

    broken_health = clone(repo, "v1.2.0-broken-health", tmp_path / "bh")
    with AppServer(python, app_dir=broken_health, database_url=database_url(pg_db)) as server:
        status, body = server.get("/health")
        assert status == 503 and body["version"] == "1.2.0" and body["db"] == "down"
        assert "santri_health_probe" in body["error"]
        # Everything else still works: only the health probe is broken.
        status, _ = server.get("/santri/search?q=ahmad")
        assert status == 200
