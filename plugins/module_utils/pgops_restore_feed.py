# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Feed the zstd-compressed data files of a directory dump to `pg_restore -j` through named pipes.

Why: decompressing every `<id>.dat.zst` into a temp directory before pg_restore puts the whole
decompression on the restore's critical path and needs the uncompressed dump size free on disk
(and writes it there). `pg_restore -Fd` opens `<id>.dat` with a plain fopen(), so a named pipe
works: the temp directory holds `toc.dat` (copied) and one FIFO per data file, and a feeder per
FIFO waits until pg_restore opens it, then runs `zstd -d -c <id>.dat.zst` into it. Only the
files pg_restore is reading at the moment are being decompressed (at most `--jobs` at a time).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import os
import shutil
import subprocess
import tempfile
import threading

FEEDER_STACK = 512 * 1024  # a feeder only blocks in open() and waits for zstd
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
PIPE_SIZE = 1 << 20  # the default 64 KiB wakes zstd and pg_restore ~16x as often


def widen(fd):
    """Grow the pipe's buffer (best effort: capped by /proc/sys/fs/pipe-max-size for non-root)."""
    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
    except (OSError, IOError):
        pass


class FeedError(Exception):
    """A feed could not be set up (nothing was started)."""


class Feeder(threading.Thread):
    """One FIFO: wait for its reader, then decompress the .zst into it."""

    def __init__(self, fifo, source, aborted):
        super(Feeder, self).__init__()
        self.daemon = True
        self.fifo = fifo
        self.source = source
        self.aborted = aborted
        self.opened = False  # pg_restore (or the abort) opened the read end
        self.rc = None
        self.error = None

    def run(self):
        try:
            if self.aborted.is_set():
                return
            fd = os.open(self.fifo, os.O_WRONLY)  # blocks until a reader opens the FIFO
            self.opened = True
            widen(fd)
            try:
                if self.aborted.is_set():
                    return
                proc = subprocess.Popen(["zstd", "-q", "-d", "-c", "--", self.source], stdout=fd,
                                        stderr=subprocess.PIPE, close_fds=True)
            finally:
                os.close(fd)  # zstd holds the write end now; its exit is the reader's EOF
            err = proc.communicate()[1]
            self.rc = proc.returncode
            if self.rc != 0:
                self.error = "zstd -d %s exited %s: %s" % (
                    os.path.basename(self.source), self.rc, err.decode("utf-8", "replace").strip()[-300:])
        except Exception as exc:  # reported by FifoFeed.finish
            self.error = "%s: %s" % (os.path.basename(self.source), exc)


class FifoFeed(object):
    """A temp copy of a `files`-route dump directory whose data files are named pipes.

    Usage: feed = FifoFeed(src, tmpdir, prefix); feed.start(); <pg_restore -Fd feed.path>;
    problems = feed.finish(restore_ok); feed.remove() (always, also after errors).
    """

    def __init__(self, src_dir, tmpdir, prefix):
        self.src_dir = src_dir
        self.path = None
        self.feeders = []
        self.aborted = threading.Event()
        self._reader_fds = []
        names = sorted(os.listdir(src_dir))
        self.sources = [n for n in names if n.endswith(".dat.zst")]
        self.plain = [n for n in names if not n.endswith(".zst")]  # toc.dat, blobs.toc
        if not os.path.isdir(tmpdir):
            raise FeedError("the temp directory %s for the named pipes does not exist" % tmpdir)
        self.path = tempfile.mkdtemp(prefix=prefix, dir=tmpdir)  # 0700
        try:
            for name in self.plain:
                shutil.copyfile(os.path.join(src_dir, name), os.path.join(self.path, name))
            for name in self.sources:
                os.mkfifo(os.path.join(self.path, name[:-len(".zst")]), 0o600)
        except OSError as exc:
            self.remove()
            raise FeedError("cannot create the named pipes for pg_restore in %s: %s" % (tmpdir, exc))

    def start(self):
        old = threading.stack_size()
        threading.stack_size(FEEDER_STACK)
        try:
            for name in self.sources:
                feeder = Feeder(os.path.join(self.path, name[:-len(".zst")]), os.path.join(self.src_dir, name),
                                self.aborted)
                feeder.start()
                self.feeders.append(feeder)
        finally:
            threading.stack_size(old)

    def finish(self, restore_ok):
        """Stop the feeders pg_restore never opened and collect what went wrong (list of strings).

        A read end is opened (non-blocking) on every FIFO still waiting, which releases its feeder's
        open(); the feeder sees the abort flag and leaves. The read ends stay open until every
        feeder has ended, so a feeder that had not reached open() yet cannot block on it either.
        """
        self.aborted.set()
        unread = []
        for feeder in self.feeders:
            if not feeder.opened:
                try:
                    self._reader_fds.append(os.open(feeder.fifo, os.O_RDONLY | os.O_NONBLOCK))
                except OSError as exc:
                    if exc.errno != errno.ENOENT:
                        raise
        for feeder in self.feeders:
            feeder.join()
        for fd in self._reader_fds:
            os.close(fd)
        self._reader_fds = []
        problems = [f.error for f in self.feeders if f.error]
        unread = [os.path.basename(f.source) for f in self.feeders if f.rc is None and not f.error]
        if restore_ok and unread:
            problems.append("pg_restore never read %d data file(s): %s" % (len(unread), ", ".join(unread[:10])))
        return problems

    def remove(self):
        if self.path and os.path.isdir(self.path):
            shutil.rmtree(self.path, ignore_errors=True)
        self.path = None
