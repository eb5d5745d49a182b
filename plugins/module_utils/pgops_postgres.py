# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared PostgreSQL connection helper for pgops.deploy modules.

One argument spec (``postgres_common_argument_spec``), one connection object
(``PgSession``) that works with psycopg 3 when present and psycopg2 otherwise,
records every statement it runs (modules return them as ``queries``) and the
server notices it received.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.basic import missing_required_lib

DRIVER = None
DRIVER_IMPORT_ERROR = None
try:
    import psycopg  # noqa: F401  (psycopg 3)
    from psycopg import sql as pg_sql  # noqa: F401
    DRIVER = "psycopg"
except ImportError:
    try:
        import psycopg2  # noqa: F401
        import psycopg2.extensions  # noqa: F401
        from psycopg2 import sql as pg_sql  # noqa: F401,F811
        DRIVER = "psycopg2"
    except ImportError:
        DRIVER_IMPORT_ERROR = traceback.format_exc()
        pg_sql = None

SSL_MODES = ["allow", "disable", "prefer", "require", "verify-ca", "verify-full"]


def postgres_common_argument_spec():
    """Connection options shared by every module (see doc fragment pgops.deploy.postgres)."""
    return dict(
        login_host=dict(type="str", default="", aliases=["host"]),
        login_port=dict(type="int", default=5432, aliases=["port"]),
        login_user=dict(type="str", default="postgres", aliases=["user"]),
        login_password=dict(type="str", default="", no_log=True, aliases=["password"]),
        login_db=dict(type="str", default="postgres", aliases=["db", "database"]),
        login_unix_socket=dict(type="str", default="", aliases=["unix_socket"]),
        ssl_mode=dict(type="str", default="prefer", choices=SSL_MODES),
        ca_cert=dict(type="path", aliases=["ssl_rootcert"]),
        ssl_cert=dict(type="path"),
        ssl_key=dict(type="path", no_log=False),
        connect_timeout=dict(type="int", default=10),
        session_role=dict(type="str"),
        application_name=dict(type="str", default="pgops.deploy"),
    )


def ensure_driver(module):
    """Fail with Ansible's standard message when neither psycopg nor psycopg2 imports."""
    if DRIVER is None:
        module.fail_json(msg=missing_required_lib("psycopg2 or psycopg"), exception=DRIVER_IMPORT_ERROR)


def connection_kwargs(params, dbname=None):
    """Translate module params into libpq keyword arguments (pure, unit tested)."""
    kw = {
        "host": params.get("login_unix_socket") or params.get("login_host") or None,
        "port": params.get("login_port"),
        "user": params.get("login_user"),
        "password": params.get("login_password") or None,
        "dbname": dbname or params.get("login_db") or "postgres",
        "sslmode": params.get("ssl_mode") or "prefer",
        "sslrootcert": params.get("ca_cert"),
        "sslcert": params.get("ssl_cert"),
        "sslkey": params.get("ssl_key"),
        "connect_timeout": params.get("connect_timeout"),
        "application_name": params.get("application_name"),
    }
    return dict((k, v) for k, v in kw.items() if v not in (None, ""))


def sqlstate(exc):
    """SQLSTATE of a driver error (psycopg: .sqlstate, psycopg2: .pgcode)."""
    return getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)


def is_pg_error(exc):
    if DRIVER == "psycopg":
        return isinstance(exc, psycopg.Error)
    if DRIVER == "psycopg2":
        return isinstance(exc, psycopg2.Error)
    return False


def quote_ident(*parts):
    """Quote a (possibly schema-qualified) identifier without a connection."""
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


class PgSession(object):
    """One database connection plus the record of what was executed on it."""

    def __init__(self, module, dbname=None, autocommit=True):
        ensure_driver(module)
        self.module = module
        self.queries = []
        self.notices = []
        self._conn = None
        self.dbname = dbname or module.params.get("login_db") or "postgres"
        self.connect(autocommit=autocommit)

    # -- connection -------------------------------------------------------
    def connect(self, autocommit=True):
        kw = connection_kwargs(self.module.params, self.dbname)
        try:
            if DRIVER == "psycopg":
                self._conn = psycopg.connect(autocommit=autocommit, **kw)
                self._conn.add_notice_handler(self._on_notice)
            else:
                self._conn = psycopg2.connect(**kw)
                self._conn.autocommit = autocommit
        except Exception as exc:  # driver errors differ between psycopg versions
            target = kw.get("host", "local socket")
            self.module.fail_json(
                msg="Unable to connect to database %r on %s:%s as %r: %s"
                % (kw.get("dbname"), target, kw.get("port"), kw.get("user"), str(exc).strip())
            )
        if self.module.params.get("session_role"):
            self.execute("SET ROLE %s" % quote_ident(self.module.params["session_role"]))
        return self

    def _on_notice(self, diag):  # psycopg 3 notice handler
        self.notices.append("%s:  %s" % (diag.severity, diag.message_primary))

    def _collect_notices(self):
        if DRIVER == "psycopg2" and self._conn is not None and self._conn.notices:
            self.notices.extend(n.strip() for n in self._conn.notices)
            del self._conn.notices[:]

    @property
    def connection(self):
        return self._conn

    @property
    def autocommit(self):
        return self._conn.autocommit

    @autocommit.setter
    def autocommit(self, value):
        self._conn.autocommit = value

    @property
    def server_version_num(self):
        if DRIVER == "psycopg":
            return self._conn.info.server_version
        return self._conn.server_version

    def close(self):
        if self._conn is not None:
            self._collect_notices()
            self._conn.close()
            self._conn = None

    def commit(self):
        self._conn.commit()
        self.queries.append("COMMIT")

    def rollback(self):
        self._conn.rollback()
        self.queries.append("ROLLBACK")

    # -- statements -------------------------------------------------------
    def _render(self, cur, query, params):
        try:
            if DRIVER == "psycopg2":
                text = cur.mogrify(query, params)
                return text.decode("utf-8") if isinstance(text, bytes) else text
            if params is None and not isinstance(query, str):
                return query.as_string(self._conn)
        except Exception:  # rendering is best effort, never fatal
            pass
        if params is not None:
            return "%s -- params: %r" % (query if isinstance(query, str) else query.as_string(self._conn), params)
        return query if isinstance(query, str) else query.as_string(self._conn)

    def execute(self, query, params=None, record=True):
        """Run a statement; return the cursor (already executed)."""
        cur = self._conn.cursor()
        if record:
            self.queries.append(self._render(cur, query, params))
        try:
            cur.execute(query, params)
        finally:
            self._collect_notices()
        return cur

    def query(self, query, params=None, record=True):
        """Run a statement and return rows as a list of dicts."""
        cur = self.execute(query, params, record=record)
        if cur.description is None:
            return []
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]

    def scalar(self, query, params=None, record=True):
        cur = self.execute(query, params, record=record)
        row = cur.fetchone()
        return row[0] if row else None

    def has_extension(self, name):
        return bool(self.scalar("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = %s", (name,), record=False))


class ConnectFailed(Exception):
    """Raised by try_session() instead of fail_json when the database cannot be reached."""


class _RaisingModule(object):
    """Stands in for the module while connecting: fail_json raises ConnectFailed."""

    def __init__(self, module):
        self.params = module.params

    def fail_json(self, msg, **kwargs):
        raise ConnectFailed(msg)


def try_session(module, dbname=None, autocommit=True):
    """A PgSession, or ConnectFailed carrying the message: for modules that report an
    unreachable database (or a missing driver) as a failed check, not a module failure."""
    return PgSession(_RaisingModule(module), dbname=dbname, autocommit=autocommit)
