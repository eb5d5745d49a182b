"""Execution environment (issue: AWX/CI like a laptop).

ansible-builder (the real tool AWX/AAP use) renders the build context from
execution-environment.yml; its introspection reads the collection-level
meta/execution-environment.yml from the built collection tarball exactly as the
builder stage inside the image does. No image is built (no registry here).
"""

import os
import re
import subprocess
import sys
import tarfile

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.dirname(sys.executable)
EE_FILE = os.path.join(ROOT, "execution-environment.yml")


def run(argv, **kw):
    proc = subprocess.run(argv, cwd=kw.pop("cwd", ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, **kw)
    assert proc.returncode == 0, "%s failed (rc=%s):\n%s" % (argv, proc.returncode, proc.stdout)
    return proc.stdout


def pins(path):
    out = {}
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, "%s: %r is not pinned with ==" % (path, line)
            out[name.lower()] = version
    return out


def galaxy_version():
    return yaml.safe_load(open(os.path.join(ROOT, "galaxy.yml")))["version"]


@pytest.fixture(scope="module")
def collection_tarball():
    """`make build`: the collection tarball the EE installs."""
    run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--force", "--output-path", "build/"])
    path = os.path.join(ROOT, "build", "pgops-deploy-%s.tar.gz" % galaxy_version())
    assert os.path.isfile(path)
    return path


@pytest.fixture(scope="module")
def context(collection_tarball, tmp_path_factory):
    ctx = tmp_path_factory.mktemp("ee") / "context"
    out = run([os.path.join(BIN, "ansible-builder"), "create", "-f", EE_FILE, "--context", str(ctx),
               "--output-filename", "Containerfile"])
    assert "Complete!" in out
    return ctx


def test_definition_is_builder_v3_with_every_dependency_kind():
    ee = yaml.safe_load(open(EE_FILE))
    assert ee["version"] == 3
    deps = ee["dependencies"]
    assert deps["galaxy"] == "collections/requirements.yml"
    assert deps["python"] == "requirements-runtime.txt"
    assert deps["system"] == "bindep.txt"
    for key in ("galaxy", "python", "system"):
        assert os.path.isfile(os.path.join(ROOT, deps[key])), deps[key]


def test_containerfile_has_the_expected_steps(context):
    cf = (context / "Containerfile").read_text()
    ee = yaml.safe_load(open(EE_FILE))
    assert 'ARG EE_BASE_IMAGE="%s"' % ee["images"]["base_image"]["name"] in cf
    assert 'ARG ANSIBLE_INSTALL_REFS="ansible-core==2.19.14 ansible-runner==2.4.3"' in cf
    # galaxy stage installs collections/requirements.yml, builder stage merges pip + bindep
    assert re.search(r"ansible-galaxy collection install .*-r requirements.yml", cf)
    assert "--user-pip=requirements.txt --user-bindep=bindep.txt" in cf
    assert "/output/scripts/install-from-bindep" in cf
    # the collection itself, from the tarball of `make build`
    assert "COPY _build/pgops /tmp/pgops" in cf
    assert re.search(r"ansible-galaxy collection install --offline --no-deps\s+-p /usr/share/ansible/collections "
                     r"/tmp/pgops/pgops-deploy-\*\.tar\.gz", cf)
    assert cf.index("install-from-bindep") < cf.index("COPY _build/pgops")
    assert "WORKDIR /runner" in cf


def test_requirement_files_are_copied_verbatim(context, collection_tarball):
    build = context / "_build"
    assert (build / "requirements.txt").read_text() == open(os.path.join(ROOT, "requirements-runtime.txt")).read()
    assert (build / "bindep.txt").read_text() == open(os.path.join(ROOT, "bindep.txt")).read()
    assert (build / "requirements.yml").read_text() == open(os.path.join(ROOT, "collections", "requirements.yml")).read()
    staged = build / "pgops" / os.path.basename(collection_tarball)
    assert staged.is_file()
    with tarfile.open(str(staged)) as tar:
        names = tar.getnames()
    for member in ("MANIFEST.json", "meta/execution-environment.yml", "requirements-runtime.txt", "bindep.txt",
                   "meta/runtime.yml"):
        assert member in names, member


def test_builder_introspection_of_the_built_collection_finds_its_deps(collection_tarball, tmp_path):
    """What the EE's builder stage does with /usr/share/ansible/collections."""
    dest = tmp_path / "colls"
    run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--offline", "--no-deps", "--force", "-p", str(dest),
         collection_tarball])
    out = run([os.path.join(BIN, "ansible-builder"), "introspect", "--sanitize", str(dest)])
    data = yaml.safe_load(out.split("\n", 1)[1])
    python = [re.sub(r"\s+#.*", "", p) for p in data["python"]]
    assert "psycopg2-binary==2.9.13" in python
    system = [re.sub(r"\s+#.*", "", s) for s in data["system"]]
    assert "postgresql-client [platform:dpkg]" in system
    assert "postgresql [platform:rpm]" in system


def test_bindep_resolves_client_tools_on_both_platforms():
    from bindep.depends import Depends

    deps = Depends(open(os.path.join(ROOT, "bindep.txt")).read())
    dpkg = {r[0] for r in deps.active_rules(["platform:dpkg"])}
    rpm = {r[0] for r in deps.active_rules(["platform:rpm"])}
    assert dpkg == {"postgresql-client", "git", "zstd", "gnupg", "openssh-client"}
    assert rpm == {"postgresql", "git-core", "zstd", "gnupg2", "openssh-clients"}


def test_runtime_pins_match_the_tested_tool_chain():
    """The EE runs the versions the test suite ran: identical pins, importable here."""
    runtime = pins(os.path.join(ROOT, "requirements-runtime.txt"))
    dev = {}
    for line in open(os.path.join(ROOT, "requirements.txt")):
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==")
            dev[re.sub(r"\[.*\]", "", name).lower()] = version
    for name, version in runtime.items():
        assert dev.get(name) == version, "%s: runtime %s, requirements.txt %s" % (name, version, dev.get(name))
    ee = yaml.safe_load(open(EE_FILE))["dependencies"]
    assert ee["ansible_core"]["package_pip"] == "ansible-core==%s" % dev["ansible-core"]
    assert ee["ansible_runner"]["package_pip"] == "ansible-runner==%s" % dev["ansible-runner"]
    modules = {"psycopg2-binary": "psycopg2", "jmespath": "jmespath", "requests": "requests"}
    for name in runtime:
        run([sys.executable, "-c", "import %s" % modules[name]])


def test_collection_meta_points_at_the_same_files():
    meta = yaml.safe_load(open(os.path.join(ROOT, "meta", "execution-environment.yml")))
    assert meta["version"] == 1
    assert meta["dependencies"] == {"python": "requirements-runtime.txt", "system": "bindep.txt"}
