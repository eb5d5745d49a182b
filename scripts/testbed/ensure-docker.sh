#!/usr/bin/env bash
# Make a Docker engine available: use a running one; else, as root on Debian,
# install docker.io and start dockerd in the background; else say what to install.
set -euo pipefail

log=${PGOPS_DOCKERD_LOG:-/var/log/pgops-dockerd.log}

engine_up() { docker info >/dev/null 2>&1; }

if engine_up; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  cat >&2 <<MSG
No Docker engine is reachable (docker info failed).
Install and start one, e.g. on Debian/Ubuntu:  sudo apt-get install docker.io && sudo systemctl start docker
and make sure your user may use it (group 'docker'), then re-run.
MSG
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
  echo "Installing docker.io (Docker engine)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi
command -v docker >/dev/null 2>&1 || { echo "docker client missing after installing docker.io" >&2; exit 1; }

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl start docker || true
fi
if ! engine_up; then
  echo "Starting dockerd in the background (log: $log)..."
  nohup dockerd >"$log" 2>&1 &
fi
for _ in $(seq 1 60); do
  engine_up && { echo "Docker engine is up."; exit 0; }
  sleep 1
done
echo "dockerd did not come up within 60 s; last lines of $log:" >&2
tail -n 20 "$log" >&2 || true
exit 1
