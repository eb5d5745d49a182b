#!/usr/bin/env bash
# The deploy part of `make demo`, against containers that are already up:
#   1. sample app repo + database bootstrap (examples/demo/prepare.yml)
#   2. deploy v1.0.0 (first release: core schema, no GIS yet)
#   3. generate demo data (santri_api.datagen on the first app host)
#   4. deploy v1.1.0 (GIS migrations + materialized views) -- the report to read
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible.cfg"
export PGOPS_REPORT_DIR="$root/reports"
inv=inventories/demo
rows=${DEMO_ROWS:-20000}

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Preparing the demo: sample git repository, database bootstrap"
ansible-playbook -i "$inv" examples/demo/prepare.yml

step "Deploying santri_api v1.0.0"
ansible-playbook -i "$inv" deploy.yml -e app_release_version=v1.0.0

step "Generating $rows santri of demo data"
ansible-playbook -i "$inv" examples/demo/load_data.yml -e demo_rows="$rows"

step "Deploying santri_api v1.1.0 (GIS migrations, materialized views)"
ansible-playbook -i "$inv" deploy.yml -e app_release_version=v1.1.0 -e pgops_demo_has_data=true

step "Deployment report"
sed -n '1,40p' reports/latest.md
echo
echo "Report: $root/reports/latest.html (also latest.md, latest.json)"
