#!/usr/bin/env bash
# Host packages the test suite and the demo need: PostgreSQL 15 server + PostGIS 3
# (throwaway test clusters), zstd (backup compression), git, debootstrap (base image).
set -euo pipefail

need=()
command -v git >/dev/null || need+=(git)
command -v zstd >/dev/null || need+=(zstd)
command -v gpg >/dev/null || need+=(gnupg)
command -v debootstrap >/dev/null || need+=(debootstrap)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
command -v psql >/dev/null || need+=(postgresql-client-15)
[ -f /usr/share/postgresql/15/extension/postgis.control ] || need+=(postgresql-15-postgis-3 postgresql-15-postgis-3-scripts)
[ -f /usr/share/postgresql/15/extension/pg_stat_statements.control ] || need+=(postgresql-contrib)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "Missing host packages: ${need[*]}" >&2
  echo "Install them (Debian: sudo apt-get install ${need[*]}) and re-run." >&2
  exit 1
fi
echo "Installing host packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
