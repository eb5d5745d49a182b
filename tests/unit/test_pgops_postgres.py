"""Pure logic of the shared connection helper."""

from ansible_collections.pgops.deploy.plugins.module_utils import pgops_postgres as pg


def test_socket_wins_over_host_and_empty_values_are_dropped():
    params = dict(login_host="db1", login_unix_socket="/run/postgresql", login_port=5433, login_user="app",
                  login_password="", login_db="santri", ssl_mode="require", ca_cert=None, ssl_cert=None,
                  ssl_key=None, connect_timeout=5, application_name="pgops.deploy")
    kw = pg.connection_kwargs(params)
    assert kw["host"] == "/run/postgresql"
    assert kw["dbname"] == "santri"
    assert kw["sslmode"] == "require"
    assert "password" not in kw and "sslrootcert" not in kw


def test_dbname_override_and_password_kept():
    kw = pg.connection_kwargs(dict(login_host="db1", login_password="s3cret", login_db="a"), dbname="b")
    assert kw["dbname"] == "b" and kw["password"] == "s3cret" and kw["host"] == "db1"


def test_password_is_no_log_in_the_shared_spec():
    spec = pg.postgres_common_argument_spec()
    assert spec["login_password"]["no_log"] is True
    assert spec["ssl_mode"]["choices"] == pg.SSL_MODES


def test_quote_ident_escapes_quotes():
    assert pg.quote_ident("public", 'we"ird') == '"public"."we""ird"'
