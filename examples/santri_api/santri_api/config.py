"""Configuration: DATABASE_URL from the environment, else from the app dir's .env file.
No third-party imports here, so the parsing is testable anywhere."""

import os
from pathlib import Path

# The app dir is the parent of the package: it holds .env, REVISION and migrations/.
APP_DIR = Path(__file__).resolve().parent.parent


def load_env_file(path):
    """KEY=VALUE lines of a .env file (comments, blank lines, quotes and `export ` allowed).

    A missing or unreadable file gives {}."""
    values = {}
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return values
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def env_file_path():
    return Path(os.environ.get("SANTRI_ENV_FILE") or APP_DIR / ".env")


def database_url():
    """DATABASE_URL from the process environment, else from the .env file, else None."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    return load_env_file(env_file_path()).get("DATABASE_URL") or None


def read_revision(app_dir=None):
    """Deployed revision: REVISION file in the app dir, else $APP_REVISION, else 'unknown'."""
    try:
        text = (Path(app_dir or APP_DIR) / "REVISION").read_text(encoding="utf-8").strip()
        if text:
            return text.splitlines()[0].strip()
    except OSError:
        pass
    return os.environ.get("APP_REVISION", "").strip() or "unknown"
