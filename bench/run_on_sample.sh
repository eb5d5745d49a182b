#!/usr/bin/env bash
# The benches the issues ask for "on the >= 1 GB sample dataset", one after the other on one
# sample-app database (bench/sample_db.py), output kept in bench/results/*.txt. Not run in CI.
#   bash bench/run_on_sample.sh [backup] [migrate] [matview] [report]    (default: all four)
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
dsn=$($py bench/sample_db.py up --size "${BENCH_SIZE:-1GB}" | tail -1)
port=$(sed -E 's/.*port=([0-9]+).*/\1/' <<<"$dsn")
db=$(sed -E 's/.*dbname=([a-z0-9_]+).*/\1/' <<<"$dsn")
mkdir -p bench/results
run() {  # name, command...
  local name=$1; shift
  echo "== $name ($(date -u +%FT%TZ), load: $(cut -d' ' -f1-3 /proc/loadavg))" | tee "bench/results/$name.txt"
  "$@" 2>&1 | tee -a "bench/results/$name.txt"
}
psql_sample() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$db" "$@"; }
for what in "${@:-backup migrate matview report}"; do
  for one in $what; do
    case $one in
      backup)  run backup  $py bench/backup/bench_backup.py --dsn "$dsn" --rounds 5 ;;
      migrate) run migrate $py bench/migrate/bench_migrate.py --dsn "$dsn" --repeat 11 ;;
      matview)  # the 1.1.0 views (V6) exist only for this bench, then R6 removes them again
        psql_sample -f examples/santri_api/migrations/V6__matviews.sql
        run matview $py bench/matview/bench_matview.py --dsn "$dsn" --view public.mv_santri_stats_kabupaten \
          --read-sql "SELECT provinsi, kabupaten, jumlah_santri, rata_skor FROM public.mv_santri_stats_kabupaten WHERE provinsi = (SELECT min(provinsi) FROM public.mv_santri_stats_kabupaten)"
        psql_sample -f examples/santri_api/migrations/R6__matviews.sql ;;
      report) run report $py bench/report/bench_report.py --dsn "$dsn" --tables 0 ;;
      *) echo "unknown bench: $one" >&2; exit 2 ;;
    esac
  done
done
