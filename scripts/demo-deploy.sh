#!/usr/bin/env bash
# The deploy part of `make demo`, against containers that are already up.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible.cfg"
ansible-playbook -i inventories/demo playbooks/bootstrap_db.yml
