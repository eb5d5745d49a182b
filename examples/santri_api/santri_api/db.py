"""Database access: configuration from the environment and one connection per request.

Connection-per-request keeps the app robust without a pool: a database that is down at
start-up or restarts later costs one failed request (503), never a crashed worker or a
pool stuck on dead connections.
"""

import logging
import os

import psycopg
from psycopg.rows import dict_row

from santri_api.config import APP_DIR, database_url, env_file_path  # noqa: F401 (re-exported)

log = logging.getLogger("santri_api")

CONNECT_TIMEOUT = int(os.environ.get("DB_CONNECT_TIMEOUT", "3"))
STATEMENT_TIMEOUT_MS = int(os.environ.get("DB_STATEMENT_TIMEOUT_MS", "10000"))


class DatabaseUnavailable(Exception):
    """The database cannot be reached (or is not configured)."""


def describe_url(url):
    """host:port/dbname of a DSN/URL, without user or password (for logs)."""
    if not url:
        return "<DATABASE_URL not set>"
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparsable DATABASE_URL>"
    return "%s:%s/%s" % (info.get("host", "localhost"), info.get("port", "5432"), info.get("dbname", ""))


def connect(timeout=None, statement_timeout_ms=None):
    """A new autocommit connection returning dict rows, or DatabaseUnavailable."""
    url = database_url()
    if not url:
        raise DatabaseUnavailable("DATABASE_URL is not set (environment or %s)" % env_file_path())
    try:
        conn = psycopg.connect(url, connect_timeout=timeout or CONNECT_TIMEOUT, autocommit=True,
                               row_factory=dict_row, application_name="santri_api")
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))
    try:
        conn.execute("SELECT set_config('statement_timeout', %s, false)",
                     (str(statement_timeout_ms or STATEMENT_TIMEOUT_MS),))
    except psycopg.Error:
        conn.close()
        raise
    return conn


def connection():
    """FastAPI dependency: one connection for the request, closed afterwards."""
    conn = connect()
    try:
        yield conn
    finally:
        conn.close()


def probe():
    """Startup log line: is the database reachable? Never raises."""
    try:
        with connect(timeout=2) as conn:
            conn.execute("SELECT 1")
        log.info("database %s reachable", describe_url(database_url()))
        return True
    except (DatabaseUnavailable, psycopg.Error) as exc:
        log.warning("database %s unreachable at start-up (serving anyway): %s",
                    describe_url(database_url()), exc)
        return False
