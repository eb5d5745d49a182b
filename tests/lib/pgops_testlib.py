"""Test library: real PostgreSQL clusters, real module and playbook runs.

Nothing here fakes PostgreSQL or Ansible: the cluster is initdb + pg_ctl, a
module runs as its own Python process exactly as Ansible ships it (args file),
a playbook runs through ansible-playbook with the project's ansible.cfg.
"""

import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
COLLECTIONS = os.path.join(ROOT, ".collections")
COLL_LINK = os.path.join(COLLECTIONS, "ansible_collections", "pgops", "deploy")


def ensure_collection_link():
    """`pgops.deploy` must import from this checkout (make venv does the same)."""
    if not os.path.exists(COLL_LINK):
        os.makedirs(os.path.dirname(COLL_LINK), exist_ok=True)
        os.symlink("../../..", COLL_LINK)


def find_pg_bindir():
    env = os.environ.get("PGOPS_TEST_PG_BINDIR")
    if env:
        return env
    for ver in ("17", "16", "15"):
        cand = "/usr/lib/postgresql/%s/bin" % ver
        if os.path.exists(os.path.join(cand, "initdb")):
            return cand
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(initdb)
    raise RuntimeError("PostgreSQL server binaries (initdb) not found: run `make host-deps`")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgDatabase(object):
    """A database in a test cluster plus the ways to reach it."""

    def __init__(self, cluster, name):
        self.cluster = cluster
        self.name = name
        self.host = "127.0.0.1"
        self.port = cluster.port
        self.user = cluster.superuser

    @property
    def dsn(self):
        return "host=%s port=%s user=%s dbname=%s" % (self.host, self.port, self.user, self.name)

    @property
    def module_params(self):
        """Connection options for pgops.deploy modules."""
        return dict(login_host=self.host, login_port=self.port, login_user=self.user, login_db=self.name)

    def connect(self, autocommit=True):
        import psycopg2

        conn = psycopg2.connect(self.dsn)
        conn.autocommit = autocommit
        return conn

    def query(self, sql, params=None):
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def scalar(self, sql, params=None):
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def psql(self, sql=None, file=None, check=True):
        return self.cluster.psql(self.name, sql=sql, file=file, check=check)


class PgCluster(object):
    """initdb + pg_ctl in a temp dir on a free loopback port (runs as `postgres` when root)."""

    superuser = "postgres"

    def __init__(self, basedir=None, port=None, preload=("pg_stat_statements",), settings=None):
        # Own temp dir: pytest's tmp dirs are 0700 root, unreachable for `postgres`.
        self.basedir = tempfile.mkdtemp(prefix="pgops-pg-", dir=basedir)
        self.datadir = os.path.join(self.basedir, "data")
        self.sockdir = os.path.join(self.basedir, "sock")
        self.logfile = os.path.join(self.basedir, "postgres.log")
        self.port = port or free_port()
        self.bindir = find_pg_bindir()
        self.preload = preload
        self.settings = settings or {}
        self.run_as = None
        if os.geteuid() == 0:
            self.run_as = pwd.getpwnam("postgres")

    @classmethod
    def running(cls, port):
        """A cluster started elsewhere (e.g. bench/sample_db.py): psql and databases, no start/stop."""
        self = cls.__new__(cls)
        self.basedir = self.datadir = self.sockdir = self.logfile = None
        self.port = int(port)
        self.bindir = find_pg_bindir()
        self.preload, self.settings, self.run_as = (), {}, None
        return self

    def _bin(self, name):
        return os.path.join(self.bindir, name)

    def _run(self, argv, **kw):
        if self.run_as is not None:
            argv = ["runuser", "-u", self.run_as.pw_name, "--"] + argv
        proc = subprocess.run(argv, capture_output=True, text=True, **kw)
        if proc.returncode != 0:
            raise RuntimeError("%s failed (rc=%s): %s%s" % (" ".join(argv), proc.returncode, proc.stdout, proc.stderr))
        return proc

    def start(self):
        os.makedirs(self.sockdir, exist_ok=True)
        if self.run_as is not None:
            os.chmod(self.basedir, 0o755)
            for path in (self.basedir, self.sockdir):
                os.chown(path, self.run_as.pw_uid, self.run_as.pw_gid)
        self._run([self._bin("initdb"), "-D", self.datadir, "-U", self.superuser, "--auth=trust",
                   "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
        conf = {
            "port": self.port,
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": "'%s'" % self.sockdir,
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": 100,
            "shared_buffers": "'128MB'",
            "track_io_timing": "on",
            "log_min_messages": "warning",
        }
        if self.preload:
            conf["shared_preload_libraries"] = "'%s'" % ",".join(self.preload)
            conf["pg_stat_statements.track"] = "'all'"
        conf.update(self.settings)
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as fh:
            fh.write("\n# pgops test cluster\n")
            for key, val in conf.items():
                fh.write("%s = %s\n" % (key, val))
        self._run([self._bin("pg_ctl"), "-D", self.datadir, "-l", self.logfile, "-w", "-t", "60", "start"])
        return self

    def stop(self, remove=True):
        try:
            self._run([self._bin("pg_ctl"), "-D", self.datadir, "-m", "immediate", "-w", "stop"])
        except RuntimeError:
            pass
        if remove:
            shutil.rmtree(self.basedir, ignore_errors=True)

    @property
    def env(self):
        env = dict(os.environ)
        env.update(PGHOST="127.0.0.1", PGPORT=str(self.port), PGUSER=self.superuser)
        return env

    def psql(self, dbname, sql=None, file=None, check=True):
        argv = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
                "-U", self.superuser, "-d", dbname, "-At"]
        if sql is not None:
            argv += ["-c", sql]
        if file is not None:
            argv += ["-f", file]
        return subprocess.run(argv, check=check, capture_output=True, text=True)

    def create_database(self, prefix="t"):
        name = re.sub(r"[^a-z0-9_]", "_", prefix.lower())[:40] + "_" + uuid.uuid4().hex[:8]
        self.psql("postgres", 'CREATE DATABASE "%s"' % name)
        return PgDatabase(self, name)

    def drop_database(self, name):
        self.psql("postgres", 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name, check=False)

    def database(self, name):
        return PgDatabase(self, name)


# ---------------------------------------------------------------- Ansible runs

def module_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = COLLECTIONS + os.pathsep + env.get("PYTHONPATH", "")
    env["ANSIBLE_CONFIG"] = os.path.join(ROOT, "ansible.cfg")
    return env


def run_module(name, params, check_mode=False, diff=False, python=None):
    """Run pgops.deploy.<name> as Ansible would: its own process, JSON args file.

    Returns the parsed result dict (``failed`` is True when the module failed).
    """
    args = dict(params)
    args["_ansible_check_mode"] = check_mode
    args["_ansible_diff"] = diff
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, fh)
        argsfile = fh.name
    try:
        proc = subprocess.run(
            [python or sys.executable, "-m", "ansible_collections.pgops.deploy.plugins.modules." + name, argsfile],
            capture_output=True, text=True, env=module_env(), cwd=ROOT,
        )
    finally:
        os.unlink(argsfile)
    out = proc.stdout.strip()
    try:
        result = json.loads(out[out.index("{"):])
    except ValueError:
        raise AssertionError("module %s printed no JSON (rc=%s)\nstdout: %s\nstderr: %s"
                             % (name, proc.returncode, proc.stdout, proc.stderr))
    result.setdefault("failed", proc.returncode != 0)
    result["_rc"] = proc.returncode
    result["_stderr"] = proc.stderr
    return result


def run_playbook(playbook, extra_vars=None, inventory=None, check=False, diff=False, tags=None,
                 limit=None, env=None, timeout=1800):
    """Run ansible-playbook from the project root; returns CompletedProcess (stdout+stderr merged)."""
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), playbook]
    if inventory is not None:
        argv += ["-i", inventory]
    else:
        argv += ["-i", "localhost,", "-c", "local"]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    if tags:
        argv += ["--tags", tags]
    if limit:
        argv += ["--limit", limit]
    run_env = module_env()
    run_env["ANSIBLE_PYTHON_INTERPRETER"] = sys.executable
    run_env["ANSIBLE_NOCOLOR"] = "1"
    run_env["ANSIBLE_FORCE_COLOR"] = "0"
    if env:
        run_env.update(env)
    return subprocess.run(argv, capture_output=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env=run_env, cwd=ROOT, timeout=timeout)


def wait_for(predicate, timeout=30.0, interval=0.2, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))
