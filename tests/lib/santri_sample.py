"""Helpers for tests of the sample app (examples/santri_api): its migrations, a venv for
the app (cached per requirements.txt hash), a real uvicorn/gunicorn process on a free
loopback port, plain-urllib HTTP and scripts/make-sample-repo.sh."""

import fcntl
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from pgops_testlib import ROOT, free_port

APP_DIR = os.path.join(ROOT, "examples", "santri_api")
MIGRATIONS = os.path.join(APP_DIR, "migrations")
MAKE_REPO = os.path.join(ROOT, "scripts", "make-sample-repo.sh")
VENV_CACHE = os.path.join(ROOT, ".cache", "santri-venv")

MIGRATION_RE = re.compile(r"^([VRC])(\d+)__([A-Za-z0-9_]+)\.sql$")


# ---------------------------------------------------------------- migrations

def migration_files(kind, migrations_dir=MIGRATIONS):
    """[(version, path)] of one kind (V, R or C), sorted by numeric version."""
    found = []
    for name in os.listdir(migrations_dir):
        match = MIGRATION_RE.match(name)
        if match and match.group(1) == kind:
            found.append((int(match.group(2)), os.path.join(migrations_dir, name)))
    return sorted(found)


def header_directives(path):
    """pgops directives from the leading comment block: {'no-transaction': True, 'allow': [...], ...}."""
    directives = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            stripped = line.strip()
            if not stripped:
                continue
            if not stripped.startswith("--"):
                break
            match = re.match(r"--\s*pgops:([a-z_-]+)\s*(.*)$", stripped)
            if not match:
                continue
            key, value = match.group(1), match.group(2).strip()
            if key == "allow":
                directives.setdefault("allow", []).extend(v.strip() for v in value.split(",") if v.strip())
            else:
                directives[key] = value or True
    return directives


def run_sql_file(db, path, check=True):
    """psql -v ON_ERROR_STOP=1 [-1] -f path: one transaction unless `-- pgops:no-transaction`."""
    argv = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", db.host, "-p", str(db.port), "-U", db.user,
            "-d", db.name, "-f", path]
    if not header_directives(path).get("no-transaction"):
        argv.insert(1, "-1")
    proc = subprocess.run(argv, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError("psql -f %s failed (rc=%s): %s" % (path, proc.returncode, proc.stderr))
    return proc


def apply_migrations(db, upto=None, migrations_dir=MIGRATIONS):
    applied = []
    for version, path in migration_files("V", migrations_dir):
        if upto is not None and version > upto:
            break
        run_sql_file(db, path)
        applied.append(version)
    return applied


def revert_migrations(db, migrations_dir=MIGRATIONS):
    for _version, path in reversed(migration_files("R", migrations_dir)):
        run_sql_file(db, path)


def schema_objects(db):
    """Everything user-visible the migrations could leave behind in the database."""
    return {
        "relations": db.query("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                              "WHERE n.nspname = 'public' ORDER BY 1"),
        "types": db.query("SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                          "WHERE n.nspname = 'public' ORDER BY 1"),
        "functions": db.query("SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                              "WHERE n.nspname = 'public' ORDER BY 1"),
        "extensions": db.query("SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1"),
    }


def database_url(db):
    return "postgresql://%s@%s:%s/%s" % (db.user, db.host, db.port, db.name)


# ---------------------------------------------------------------- app venv

def app_python(requirements=os.path.join(APP_DIR, "requirements.txt")):
    """Python of a venv with the app's requirements, built once per requirements hash
    (under .cache/santri-venv/<hash>, shared by test sessions, guarded by a file lock)."""
    with open(requirements, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()[:16]
    venv = os.path.join(VENV_CACHE, digest)
    python = os.path.join(venv, "bin", "python")
    marker = os.path.join(venv, ".installed")
    os.makedirs(VENV_CACHE, exist_ok=True)
    with open(os.path.join(VENV_CACHE, digest + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(marker):
            subprocess.run(["rm", "-rf", venv], check=True)
            subprocess.run([sys.executable, "-m", "venv", venv], check=True)
            proc = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                   "-r", requirements], capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError("pip install -r %s failed:\n%s%s" % (requirements, proc.stdout, proc.stderr))
            open(marker, "w").close()
    return python


def run_datagen(python, dsn, *args, app_dir=APP_DIR):
    """python -m santri_api.datagen --dsn DSN ARGS; returns (CompletedProcess, RESULT dict or None)."""
    proc = subprocess.run([python, "-m", "santri_api.datagen", "--dsn", dsn] + [str(a) for a in args],
                          cwd=app_dir, capture_output=True, text=True, timeout=600)
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
    return proc, result


# ---------------------------------------------------------------- HTTP

def http(method, url, body=None, timeout=15):
    """(status, parsed JSON body or raw text) over plain urllib; never raises on 4xx/5xx."""
    data = None
    headers = {"Accept": "application/json"}
    if body is not None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


class AppServer(object):
    """The app in its own process (uvicorn, or gunicorn with UvicornWorker) on 127.0.0.1."""

    def __init__(self, python, app_dir=APP_DIR, database_url=None, env=None, server="uvicorn", workers=1):
        self.python = python
        self.app_dir = app_dir
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.env = dict(os.environ)
        self.env.pop("DATABASE_URL", None)
        self.env.pop("APP_REVISION", None)
        if database_url is not None:
            self.env["DATABASE_URL"] = database_url
        self.env.update(env or {})
        self.server = server
        self.workers = workers
        self.proc = None
        self.log_path = None

    def argv(self):
        if self.server == "gunicorn":
            return [self.python, "-m", "gunicorn", "-k", "uvicorn.workers.UvicornWorker", "-w", str(self.workers),
                    "-b", "127.0.0.1:%d" % self.port, "--no-control-socket", "santri_api.main:app"]
        return [self.python, "-m", "uvicorn", "santri_api.main:app", "--host", "127.0.0.1",
                "--port", str(self.port)]

    def start(self, timeout=60):
        import tempfile

        fd, self.log_path = tempfile.mkstemp(prefix="santri-app-", suffix=".log")
        self.proc = subprocess.Popen(self.argv(), cwd=self.app_dir, env=self.env, stdout=fd,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        os.close(fd)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("app exited with rc=%s before serving:\n%s" % (self.proc.returncode, self.log()))
            try:
                urllib.request.urlopen(self.url + "/openapi.json", timeout=2).read()
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("app did not serve within %ss:\n%s" % (timeout, self.log()))

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except (OSError, TypeError):
            return ""

    def get(self, path):
        return http("GET", self.url + path)

    def post(self, path, body):
        return http("POST", self.url + path, body)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # our own session: the server and its workers
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.log_path and os.path.exists(self.log_path):
            os.unlink(self.log_path)
            self.log_path = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------- sample repo

def make_sample_repo(dest):
    """Run scripts/make-sample-repo.sh DEST; returns (CompletedProcess, printed repo path)."""
    proc = subprocess.run(["bash", MAKE_REPO, str(dest)], capture_output=True, text=True, timeout=120)
    return proc, proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else None


def git(*args, cwd=None):
    proc = subprocess.run(["git"] + list(args), cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError("git %s failed: %s" % (" ".join(args), proc.stderr))
    return proc.stdout.strip()
