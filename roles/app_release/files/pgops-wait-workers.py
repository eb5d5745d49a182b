#!/usr/bin/env python3
"""Wait until every worker of a gunicorn master accepts on the listening socket.

    pgops-wait-workers.py MAINPID WORKERS [TIMEOUT_S]

Run by systemd as ExecStartPost of the app unit (as the app user, so /proc of the
workers is readable). gunicorn reports READY (Type=notify) before its workers are
forked; without this wait, app_release would stop the other instance while the new
workers still start, and requests would queue in the socket backlog meanwhile.

A worker counts as accepting when its epoll set holds a socket of the master (the
listening socket it inherited; async workers: uvicorn, gthread, gevent) or when it
sleeps in select/poll/accept (sync workers). Never fails the unit: after TIMEOUT_S it
only says so and exits 0.
"""

import os
import sys
import time

IDLE_WCHANS = ("do_select", "core_sys_select", "do_sys_poll", "poll_schedule_timeout", "inet_csk_accept")


def master_sockets(pid):
    """Inodes of the sockets the master holds: the listening socket(s) among them."""
    inodes = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(int(link[8:-1]))
    except OSError:
        pass
    return inodes


def children(ppid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as fh:
                stat = fh.read()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: fields start after the last ')'
        if int(stat.rsplit(")", 1)[1].split()[1]) == ppid:
            kids.append(int(entry))
    return kids


def accepting(pid, inodes):
    marks = tuple("ino:%x " % inode for inode in inodes)
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) != "anon_inode:[eventpoll]":
                    continue
                with open("/proc/%d/fdinfo/%s" % (pid, fd)) as fh:
                    if any(mark in line + " " for line in fh for mark in marks):
                        return True
            except OSError:
                continue
        with open("/proc/%d/wchan" % pid) as fh:
            return fh.read().strip().startswith(IDLE_WCHANS)
    except OSError:
        return False


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    mainpid, workers = int(argv[1]), int(argv[2])
    timeout = float(argv[3]) if len(argv) > 3 else 30.0
    start = time.time()
    ready = []
    while time.time() - start < timeout:
        inodes = master_sockets(mainpid)
        ready = [pid for pid in children(mainpid) if accepting(pid, inodes)] if inodes else []
        if len(ready) >= workers:
            print("pgops-wait-workers: %d/%d workers of %d accept after %.2fs"
                  % (len(ready), workers, mainpid, time.time() - start))
            return 0
        time.sleep(0.05)
    print("pgops-wait-workers: only %d/%d workers of %d accept after %.0fs; going on"
          % (len(ready), workers, mainpid, timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
