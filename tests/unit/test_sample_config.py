"""santri_api.config: .env parsing, DATABASE_URL precedence and REVISION lookup
(pure standard library, imported straight from examples/santri_api)."""

import sys

import pytest

from santri_sample import APP_DIR

sys.path.insert(0, APP_DIR)
from santri_api import config  # noqa: E402


def test_load_env_file_parses_comments_quotes_and_export(tmp_path):
    env = tmp_path / ".env"
    env.write_text("# comment\n\nDATABASE_URL='postgresql://u:p@h:5432/santri'\n"
                   "export APP_MODE = \"prod\"\nBROKEN LINE\nEMPTY=\nURL2=a=b=c\n")
    assert config.load_env_file(env) == {
        "DATABASE_URL": "postgresql://u:p@h:5432/santri",
        "APP_MODE": "prod",
        "EMPTY": "",
        "URL2": "a=b=c",
    }


def test_load_env_file_missing_is_empty(tmp_path):
    assert config.load_env_file(tmp_path / "nope") == {}


def test_environment_wins_over_env_file(tmp_path, monkeypatch):
    env = tmp_path / ".env"
    env.write_text("DATABASE_URL=postgresql://from-file/santri\n")
    monkeypatch.setenv("SANTRI_ENV_FILE", str(env))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert config.database_url() == "postgresql://from-file/santri"
    monkeypatch.setenv("DATABASE_URL", "postgresql://from-env/santri")
    assert config.database_url() == "postgresql://from-env/santri"


def test_database_url_none_when_unset(tmp_path, monkeypatch):
    monkeypatch.setenv("SANTRI_ENV_FILE", str(tmp_path / "absent.env"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert config.database_url() is None


@pytest.mark.parametrize("content,env,expected", [
    ("abc123\n", None, "abc123"),
    ("abc123\nsecond line\n", "ignored", "abc123"),
    ("  \n", "from-env", "from-env"),
    (None, "from-env", "from-env"),
    (None, None, "unknown"),
])
def test_read_revision_prefers_file_then_env(tmp_path, monkeypatch, content, env, expected):
    if content is not None:
        (tmp_path / "REVISION").write_text(content)
    if env is None:
        monkeypatch.delenv("APP_REVISION", raising=False)
    else:
        monkeypatch.setenv("APP_REVISION", env)
    assert config.read_revision(tmp_path) == expected


def test_app_dir_is_parent_of_package():
    assert (config.APP_DIR / "santri_api" / "config.py").is_file()
    assert (config.APP_DIR / "migrations").is_dir()
