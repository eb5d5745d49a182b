# -*- coding: utf-8 -*-
# Copyright: pgops.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a dump at a lower CPU priority (nice) so that it yields to the live site and to the deploy.

The module process lowers its own priority before it starts pg_dump: pg_dump, zstd and every follower
inherit it. Most of a dump's CPU time is spent by the server backends that run pg_dump's COPY (and the
module's exact row counts), so those are reniced too, when they run on this host and this OS user may
renice them (the PostgreSQL server's user, or root). Raising niceness needs no privilege; nothing is
ever made faster than it was. The Linux I/O schedulers derive a best-effort I/O priority from it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import threading

NICE_MAX = 19
APPLICATION_NAME_MAX = 63  # NAMEDATALEN - 1


def dump_application_name(base, backup_id):
    """A name that marks pg_dump's connections (leader and workers) in pg_stat_activity."""
    return ("%s pg_dump %s" % (base or "pgops.deploy", backup_id))[:APPLICATION_NAME_MAX]


def lower_own_priority(nice):
    """Make this process (and the children it starts from now on) at least `nice`; return its niceness."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if nice > current:
        os.nice(nice - current)
    return os.getpriority(os.PRIO_PROCESS, 0)


def process_title(pid, proc="/proc"):
    """The command line (a PostgreSQL backend's process title) of `pid` on this host, or None."""
    try:
        with open(os.path.join(proc, str(pid), "cmdline"), "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def is_backend_of(title, client_port):
    """Whether a process title is the PostgreSQL backend serving the client on `client_port`.

    pg_stat_activity reports pids of the server's host: a remote server's pid may exist here as an
    unrelated process, so the title must show the same client (`host(port)`, `[local]` for a socket).
    """
    if not title or not title.startswith("postgres:"):
        return False
    if client_port is None or client_port < 0:
        return "[local]" in title
    return "(%d)" % client_port in title


def renice_backend(pid, client_port, nice, proc="/proc"):
    """Raise the niceness of one backend to `nice`; returns (record, None) or (None, reason)."""
    if not is_backend_of(process_title(pid, proc), client_port):
        return None, "pid %s is not a PostgreSQL backend on this host (server on another host?)" % pid
    try:
        current = os.getpriority(os.PRIO_PROCESS, pid)
        if current < nice:
            os.setpriority(os.PRIO_PROCESS, pid, nice)
        return dict(pid=pid, nice=os.getpriority(os.PRIO_PROCESS, pid)), None
    except OSError as exc:  # EPERM: another OS user's backend; ESRCH: it already exited
        return None, "pid %s: %s" % (pid, exc.strerror or exc)


class BackendRenicer(object):
    """Renice the backends serving a dump while it runs, from its own connection.

    `session` is a PgSession used only by this watcher (autocommit: every poll sees fresh activity).
    It looks for the connections named `application_name` (pg_dump's leader and workers, which
    connect one after the other) and the backend `extra_pid` (the module's row counts), until it
    has seen `expected` of them or `stop` is set.
    """

    def __init__(self, session, application_name, extra_pid, expected, nice, poll=0.1, proc="/proc"):
        self.session = session
        self.application_name = application_name
        self.extra_pid = extra_pid
        self.expected = expected
        self.nice = nice
        self.poll = poll
        self.proc = proc
        self.stop = threading.Event()
        self.reniced = []
        self.skipped = []
        self._seen = set()
        self._thread = None

    def scan(self):
        rows = self.session.query(
            "SELECT pid, client_port FROM pg_catalog.pg_stat_activity WHERE application_name = %s OR pid = %s",
            (self.application_name, self.extra_pid), record=False)
        for row in rows:
            if row["pid"] in self._seen:
                continue
            self._seen.add(row["pid"])
            done, reason = renice_backend(row["pid"], row["client_port"], self.nice, self.proc)
            if done:
                self.reniced.append(done)
            else:
                self.skipped.append(reason)
        return len(self._seen) >= self.expected

    def _loop(self):
        try:
            while not self.stop.is_set():
                if self.scan():
                    return
                self.stop.wait(self.poll)
        except Exception as exc:  # best effort: never fails the backup
            self.skipped.append("watching pg_stat_activity stopped: %s" % exc)

    def start(self):
        self._thread = threading.Thread(target=self._loop)
        self._thread.daemon = True
        self._thread.start()
        return self

    def finish(self):
        self.stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.session.close()
        return dict(backends=self.reniced, skipped=self.skipped)
