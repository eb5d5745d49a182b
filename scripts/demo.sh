#!/usr/bin/env bash
# make demo: start fresh demo containers (one db + two app hosts, names pgops-demo-*,
# separate from Molecule's), then run the real deploy against them through
# inventories/demo and print where the report is.   --clean removes them.
# Every run starts from new containers (the story begins with an empty database);
# images, the controller's wheel cache and the venv are reused, so re-runs are fast.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible.cfg"
net=pgops-demo
hosts=(pgops-demo-db pgops-demo-app1 pgops-demo-app2)

if [ "${1:-}" = "--clean" ]; then
  docker rm -f "${hosts[@]}" >/dev/null 2>&1 || true
  docker network rm "$net" >/dev/null 2>&1 || true
  echo "demo containers removed"
  exit 0
fi

docker network inspect "$net" >/dev/null 2>&1 || docker network create "$net" >/dev/null
docker rm -f "${hosts[@]}" >/dev/null 2>&1 || true
for name in "${hosts[@]}"; do
  image=pgops-app:bookworm
  [ "$name" = pgops-demo-db ] && image=pgops-db:bookworm
  echo "starting container $name ($image)"
  docker run -d --name "$name" --hostname "$name" --network "$net" \
    --tmpfs /run --tmpfs /run/lock --tmpfs /tmp -v /sys/fs/cgroup:/sys/fs/cgroup:ro --cap-add SYS_NICE \
    --stop-signal SIGRTMIN+3 --label pgops=demo "$image" /lib/systemd/systemd >/dev/null
done
for name in "${hosts[@]}"; do
  for _ in $(seq 1 30); do
    s=$(docker exec "$name" systemctl is-system-running 2>/dev/null || true)
    case "$s" in running|degraded) break ;; esac
    sleep 1
  done
done

scripts/demo-deploy.sh
