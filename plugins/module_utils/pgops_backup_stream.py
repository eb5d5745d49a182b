# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compress the table files of a parallel `pg_dump -Fd -Z0` while pg_dump still writes them.

Why: compressing after pg_dump exits put every byte's zstd time on the backup's critical path
(~4 s of 11 s on the 1 GB sample). Here a watcher finds each new `<dumpId>.dat`, and a follower
copies it, as it grows, into `zstd -c > <dumpId>.dat.zst` (like `tail -f`). A follower ends only
when its file is known complete: pg_dump's --verbose `finished item <dumpId>` (printed by the
parallel leader after the worker closed the file) or pg_dump's exit. The raw file is removed only
after zstd exited 0 for it. Files the watcher never saw (blobs, very small tables) are left for
the caller's after-the-dump pass.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re
import subprocess
import threading
import time

TABLE_FILE = re.compile(r"^(\d+)\.dat$")
FINISHED = re.compile(r"finished item (\d+) ")
CHUNK = 1 << 20


def copy_available(src_fd, dst_fd, offset):
    """Copy src from offset to its current end into dst; returns the new offset."""
    while True:
        try:
            sent = os.sendfile(dst_fd, src_fd, offset, CHUNK)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOSYS):
                raise
            data = os.pread(src_fd, CHUNK, offset)  # sendfile into a pipe not supported here
            sent = len(data)
            view = memoryview(data)
            while view:
                view = view[os.write(dst_fd, view):]
        if not sent:
            return offset
        offset += sent


class Follower(threading.Thread):
    """One growing table file -> one zstd process."""

    def __init__(self, path, zstd_argv, poll):
        super(Follower, self).__init__()
        self.daemon = True
        self.path = path
        self.zstd_argv = zstd_argv
        self.poll = poll
        self.complete = threading.Event()  # the file will not grow any more
        self.aborted = threading.Event()
        self.proc = None
        self.raw_bytes = 0  # bytes handed to zstd so far
        self.rc = None
        self.error = None

    def run(self):
        try:
            self._run()
        except Exception as exc:  # reported by StreamingZstd.finish
            self.error = "%s: %s" % (os.path.basename(self.path), exc)
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def _run(self):
        out = os.open(self.path + ".zst", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            self.proc = subprocess.Popen(self.zstd_argv, stdin=subprocess.PIPE, stdout=out,
                                         stderr=subprocess.PIPE, close_fds=True)
        finally:
            os.close(out)
        src = os.open(self.path, os.O_RDONLY)
        broken = None
        try:
            while not self.aborted.is_set():
                complete = self.complete.is_set()  # read BEFORE copying: then the copy reaches the real end
                self.raw_bytes = copy_available(src, self.proc.stdin.fileno(), self.raw_bytes)
                if complete:
                    break
                time.sleep(self.poll)
        except BrokenPipeError as exc:  # zstd died: its exit status and stderr say why
            broken = exc
        finally:
            os.close(src)
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        offset = self.raw_bytes
        err = self.proc.stderr.read().decode("utf-8", "replace").strip()
        self.rc = self.proc.wait()
        if self.aborted.is_set():
            return
        if self.rc == 0 and broken is not None:
            raise broken
        if self.rc != 0:
            self.error = "zstd exited %s for %s%s" % (self.rc, os.path.basename(self.path),
                                                      (": " + err.splitlines()[-1]) if err else "")
            return
        if os.path.getsize(self.path) != offset:
            self.error = "%s changed after it was complete (%d bytes read, %d on disk)" % (
                os.path.basename(self.path), offset, os.path.getsize(self.path))
            return
        os.unlink(self.path)

    def abort(self):
        self.aborted.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()


class StreamingZstd(object):
    """Watch a directory dump being written and compress its table files on the fly.

    Use: `on_stderr` gets pg_dump's stderr lines; start() before or right after pg_dump starts;
    finish() after pg_dump exited 0 (returns raw bytes and files compressed, raises on a zstd
    failure); abort() when the dump failed.
    """

    def __init__(self, dump_dir, level, threads, poll=0.05, max_followers=16):
        self.dump_dir = dump_dir
        self.zstd_argv = ["zstd", "-q", "-%d" % level, "-T%d" % max(threads, 0), "-c"]
        self.poll = poll
        self.max_followers = max_followers
        self.followers = {}
        self.finished_ids = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.watcher = threading.Thread(target=self._watch)
        self.watcher.daemon = True

    def on_stderr(self, idx, line):
        m = FINISHED.search(line) if idx == 0 else None
        if m:
            with self.lock:
                self.finished_ids.add(m.group(1))
                follower = self.followers.get(m.group(1))
            if follower is not None:
                follower.complete.set()

    def start(self):
        self.watcher.start()
        return self

    def _scan(self):
        try:
            names = os.listdir(self.dump_dir)
        except OSError:  # pg_dump has not created the directory yet
            return
        for name in sorted(names):
            m = TABLE_FILE.match(name)
            if not m or m.group(1) in self.followers:
                continue
            with self.lock:
                if sum(1 for f in self.followers.values() if f.is_alive()) >= self.max_followers:
                    return  # the rest waits for the after-the-dump pass
                follower = Follower(os.path.join(self.dump_dir, name), self.zstd_argv, self.poll)
                if m.group(1) in self.finished_ids:
                    follower.complete.set()
                self.followers[m.group(1)] = follower
            follower.start()

    def _watch(self):
        while not self.stop.is_set():
            self._scan()
            self.stop.wait(self.poll)

    def _halt(self):
        self.stop.set()
        if self.watcher.is_alive():
            self.watcher.join()

    def finish(self):
        """pg_dump exited 0: every file is complete. Returns (raw bytes, files compressed); raises
        RuntimeError naming the first failures."""
        self._halt()
        for follower in self.followers.values():
            follower.complete.set()
        for follower in self.followers.values():
            follower.join()
        errors = [f.error for f in self.followers.values() if f.error]
        if errors:
            raise RuntimeError("; ".join(errors[:4]) + (" (and %d more)" % (len(errors) - 4) if len(errors) > 4
                                                         else ""))
        return sum(f.raw_bytes for f in self.followers.values()), len(self.followers)

    def abort(self):
        self._halt()
        for follower in self.followers.values():
            follower.abort()
        for follower in self.followers.values():
            follower.join()

    def exit_status(self):
        rcs = [f.rc for f in self.followers.values() if f.rc is not None]
        return max(rcs) if rcs else 0
