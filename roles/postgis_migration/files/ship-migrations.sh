# Mirror migration files into the runner's work dir in one round trip (sh; run by ship.yml).
#   $1 work dir   $2 owner ("" = leave)   $3 source: "-" = tar as base64 on stdin (controller),
#   else a directory on this host (release dir)   $4 sha256 digest the received files must have ("" = skip)
# Prints one line per change (created / shipped / removed); nothing when the dir already mirrors the source.
set -eu
dir=$1 owner=$2 src=$3 want=$4
umask 022  # parents (e.g. /var/lib/pgops/migrations) stay traversable for the runner's user
if [ "$src" != "-" ] && ! ls -- "$src"/V*__*.sql >/dev/null 2>&1; then
  echo "Expected V<version>__<description>.sql files in postgis_migration_release_dir '$src'; found none." >&2
  exit 3
fi
[ -d "$dir" ] || { mkdir -p -- "$dir"; echo "created $dir"; }
chmod 0750 "$dir"
umask 027
in=$(mktemp -d "$dir/.incoming.XXXXXX")
trap 'rm -rf -- "$in"' EXIT
if [ "$src" = "-" ]; then
  base64 -d | tar -x -f - -C "$in" --no-same-owner --no-same-permissions
else
  cp -p -- "$src"/*.sql "$in"/
fi
digest() { (cd "$1" && (LC_ALL=C sha256sum -- *.sql 2>/dev/null || true) | sha256sum | cut -c1-64); }
if [ -n "$want" ]; then
  got=$(digest "$in")
  [ "$got" = "$want" ] || {
    echo "transfer check failed: the received files digest to $got, the controller's source to $want" >&2
    exit 4
  }
fi
for f in "$dir"/*.sql; do
  [ -e "$f" ] || continue
  n=${f##*/}
  [ -e "$in/$n" ] || { rm -f -- "$f"; echo "removed $n"; }
done
for f in "$in"/*.sql; do
  [ -e "$f" ] || continue
  n=${f##*/}
  cmp -s -- "$f" "$dir/$n" && continue
  chmod 0640 "$f"
  [ -z "$owner" ] || chown "$owner" "$f"
  mv -f -- "$f" "$dir/$n"
  echo "shipped $n"
done
[ -z "$owner" ] || chown "$owner" "$dir"
