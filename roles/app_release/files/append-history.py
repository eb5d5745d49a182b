# Append one deploy record (JSON on stdin) to DEPLOYS.json, keeping the newest N (run by record.yml).
# argv: path keep owner group. Written to a temp file and renamed: a reader never sees half a file.
import json
import os
import shutil
import sys
import tempfile
import time

path, keep, owner, group = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
entry = json.load(sys.stdin)
old = []
try:
    with open(path) as fh:
        old = json.load(fh)
except FileNotFoundError:
    pass
except ValueError:
    # An unreadable history must not block a deploy: keep it aside, start a new one.
    aside = "%s.unreadable-%d" % (path, time.time())
    os.replace(path, aside)
    print("kept the unreadable history as %s" % aside)
if not isinstance(old, list):
    old = []
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".DEPLOYS.")
with os.fdopen(fd, "w") as fh:
    fh.write(json.dumps((old + [entry])[-keep:], indent=4, sort_keys=True) + "\n")
os.chmod(tmp, 0o644)
shutil.chown(tmp, owner, group)
os.replace(tmp, path)
