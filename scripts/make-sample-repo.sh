#!/usr/bin/env bash
# Build a real git repository of the sample app (examples/santri_api) with its release
# history, for deployment tests: DEST_DIR/santri_api.git (bare).
#
#   scripts/make-sample-repo.sh DEST_DIR      -> prints DEST_DIR/santri_api.git on stdout
#
# Commits and annotated tags (linear history, branch main at v1.1.0):
#   v1.0.0                base app, migrations V1..V5, no GIS endpoint
#   v1.1.0                + choropleth endpoint and migrations V6..V8 (matviews)  <- main
#   v1.2.0-broken-import  santri_api/main.py imports a module that was never committed
#   v1.2.0-broken-health  the app starts, but /health always answers 503
# Author/committer/tagger identity and dates are fixed, so the same source tree always
# gives the same SHAs. Re-running keeps an identical existing repo untouched ("unchanged")
# and replaces one that differs (the source changed) with the rebuilt one.
set -euo pipefail

usage() { echo "usage: $0 DEST_DIR" >&2; exit 2; }
[[ $# -eq 1 && -n $1 ]] || usage

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../examples/santri_api" && pwd)
[[ -f $src/santri_api/main.py && -d $src/migrations ]] || { echo "sample app not found under $src" >&2; exit 1; }

dest_dir=$1
mkdir -p "$dest_dir"
dest_dir=$(cd "$dest_dir" && pwd)
repo="$dest_dir/santri_api.git"

# Isolate git from the caller's configuration (signing, hooks, templates, autocrlf...).
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME="Santri API Maintainers" GIT_AUTHOR_EMAIL="maintainers@santri.example"
export GIT_COMMITTER_NAME="$GIT_AUTHOR_NAME" GIT_COMMITTER_EMAIL="$GIT_AUTHOR_EMAIL"
export TZ=UTC LC_ALL=C

work=$(mktemp -d "${TMPDIR:-/tmp}/santri-repo.XXXXXX")
trap 'rm -rf "$work"' EXIT
tree="$work/tree"

g() { git -C "$tree" "$@"; }

# Replace the work tree's files with the app source (deploy-time files excluded).
sync_tree() {
  find "$tree" -mindepth 1 -maxdepth 1 ! -name .git -exec rm -rf {} +
  tar -C "$src" --exclude=__pycache__ --exclude=.venv --exclude=.env --exclude=REVISION \
      --exclude='*.pyc' -cf - . | tar -C "$tree" -xf -
  find "$tree" -path "$tree/.git" -prune -o -type f -exec chmod 0644 {} + -o -type d -exec chmod 0755 {} +
}

set_version() {
  sed -i -E "s/^__version__ = \".*\"/__version__ = \"$1\"/" "$tree/santri_api/__init__.py"
  grep -q "^__version__ = \"$1\"\$" "$tree/santri_api/__init__.py" || { echo "could not set version $1" >&2; exit 1; }
}

# commit DATE TAG MESSAGE
commit() {
  export GIT_AUTHOR_DATE="$1" GIT_COMMITTER_DATE="$1"
  g add -A
  g commit -q --no-verify -m "$3"
  g tag -a "$2" -m "santri_api $2"
  echo "  $2  $(g rev-parse --short "$2^{commit}")  $3" >&2
}

echo "building sample repository from $src" >&2
mkdir -p "$tree"
git init -q -b main "$tree"

# v1.0.0: no GIS router, no migrations after V5.
sync_tree
rm -f "$tree/santri_api/gis.py"
sed -i '/# since 1.1.0$/d' "$tree/santri_api/main.py"
find "$tree/migrations" -name '[VRC]*__*.sql' | while read -r f; do
  v=$(basename "$f"); v=${v#?}; v=${v%%__*}
  if (( v > 5 )); then rm -f "$f"; fi
done
set_version 1.0.0
commit "2024-01-15T08:00:00+07:00" v1.0.0 "santri_api 1.0.0: santri search, score updates, schema V1..V5"

# v1.1.0: the tree as it is in examples/santri_api.
sync_tree
set_version 1.1.0
commit "2024-03-01T08:00:00+07:00" v1.1.0 "santri_api 1.1.0: choropleth statistics (materialized views V6..V8)"
# main stays at v1.1.0; the broken 1.2.0 attempts live on release-1.2.
g checkout -q -b release-1.2

# v1.2.0-broken-import: main.py imports a module that is not in the commit.
sed -i 's/^from santri_api import gis  # since 1.1.0$/&\nfrom santri_api.cache import ResponseCache  # noqa: F401  (cache.py never committed)/' \
    "$tree/santri_api/main.py"
grep -q '^from santri_api.cache import ResponseCache' "$tree/santri_api/main.py" || { echo "broken-import edit failed" >&2; exit 1; }
set_version 1.2.0
commit "2024-04-10T08:00:00+07:00" v1.2.0-broken-import "santri_api 1.2.0: response cache for statistics"

# v1.2.0-broken-health: imports fixed, but the health probe queries a table that never exists.
sed -i '/^from santri_api.cache import ResponseCache/d' "$tree/santri_api/main.py"
sed -i 's/^HEALTH_SQL = "SELECT 1"$/HEALTH_SQL = "SELECT 1 FROM santri_health_probe LIMIT 1"/' "$tree/santri_api/main.py"
grep -q '^HEALTH_SQL = "SELECT 1 FROM santri_health_probe' "$tree/santri_api/main.py" || { echo "broken-health edit failed" >&2; exit 1; }
commit "2024-04-11T08:00:00+07:00" v1.2.0-broken-health "santri_api 1.2.0: drop cache, health probe checks the probe table"

new="$work/santri_api.git"
git clone -q --bare --no-local "$tree" "$new"
git -C "$new" remote remove origin
git -C "$new" symbolic-ref HEAD refs/heads/main
git -C "$new" gc -q --prune=now

refs() { git -C "$1" for-each-ref --format='%(objectname) %(refname)' refs/heads refs/tags; }
if [[ -d $repo ]] && git -C "$repo" rev-parse --is-bare-repository >/dev/null 2>&1 \
   && [[ "$(refs "$repo")" == "$(refs "$new")" ]]; then
  echo "repository unchanged: $repo" >&2
else
  [[ -e $repo ]] && echo "replacing $repo (content changed)" >&2
  rm -rf "$repo.old"
  [[ -e $repo ]] && mv "$repo" "$repo.old"
  mv "$new" "$repo"
  rm -rf "$repo.old"
  echo "repository written: $repo" >&2
fi
echo "$repo"
