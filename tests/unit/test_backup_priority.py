"""pgops_backup_priority: which processes a dump renices, checked against real processes and the kernel."""

import os
import subprocess
import sys

import pytest

from ansible_collections.pgops.deploy.plugins.module_utils.pgops_backup_priority import (
    dump_application_name, is_backend_of, renice_backend)


@pytest.fixture
def child():
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def fake_proc(tmp_path, pid, title):
    """A /proc stand-in holding only the process title of `pid` (the real pid gets reniced)."""
    os.makedirs(str(tmp_path / str(pid)))
    (tmp_path / str(pid) / "cmdline").write_bytes(title.encode() + b"\0")
    return str(tmp_path)


def test_application_name_names_the_backup_and_fits_namedatalen():
    assert dump_application_name("pgops.deploy", "santri-20261122T070000Z") == \
        "pgops.deploy pg_dump santri-20261122T070000Z"
    assert dump_application_name(None, "b1") == "pgops.deploy pg_dump b1"
    assert len(dump_application_name("pgops.deploy", "x" * 100)) == 63


@pytest.mark.parametrize("title,port,expected", [
    ("postgres: postgres santri 127.0.0.1(53422) COPY", 53422, True),
    ("postgres: postgres santri 127.0.0.1(53422) COPY", 5342, False),   # another client
    ("postgres: postgres santri [local] COPY", -1, True),
    ("postgres: postgres santri [local] COPY", None, True),
    ("postgres: postgres santri 10.0.0.5(40000) idle", -1, False),
    ("sleep 60", 53422, False),                                          # a remote server's pid, reused here
    ("", 53422, False),
    (None, 53422, False),
])
def test_only_the_backend_of_the_same_client_counts(title, port, expected):
    assert is_backend_of(title, port) is expected


def test_a_matching_backend_is_reniced_and_never_made_faster(child, tmp_path):
    proc = fake_proc(tmp_path, child.pid, "postgres: postgres santri 127.0.0.1(40001) COPY")
    done, reason = renice_backend(child.pid, 40001, 7, proc=proc)
    assert reason is None and done == dict(pid=child.pid, nice=7)
    assert os.getpriority(os.PRIO_PROCESS, child.pid) == 7
    done, reason = renice_backend(child.pid, 40001, 3, proc=proc)  # lower request: stays at 7
    assert done == dict(pid=child.pid, nice=7) and os.getpriority(os.PRIO_PROCESS, child.pid) == 7


def test_a_process_that_is_not_the_backend_is_left_alone(child, tmp_path):
    proc = fake_proc(tmp_path, child.pid, "sleep 60")
    done, reason = renice_backend(child.pid, 40001, 9, proc=proc)
    assert done is None and "is not a PostgreSQL backend on this host" in reason
    assert os.getpriority(os.PRIO_PROCESS, child.pid) == 0
    done, reason = renice_backend(child.pid, 40001, 9)  # the real /proc: `sleep 60` is no backend either
    assert done is None and os.getpriority(os.PRIO_PROCESS, child.pid) == 0


def test_a_backend_that_already_exited_is_reported(child, tmp_path):
    proc = fake_proc(tmp_path, child.pid, "postgres: postgres santri [local] COPY")
    child.kill()
    child.wait()
    done, reason = renice_backend(child.pid, -1, 9, proc=proc)
    assert done is None and reason.startswith("pid %d: " % child.pid)


def test_the_module_process_and_its_children_run_at_the_lowered_priority():
    code = ("import os, subprocess\n"
            "from ansible_collections.pgops.deploy.plugins.module_utils.pgops_backup_priority import "
            "lower_own_priority\n"
            "print(lower_own_priority(11), lower_own_priority(4))\n"
            "print(subprocess.run(['sh', '-c', 'cut -d\" \" -f19 /proc/$$/stat'], capture_output=True, text=True)"
            ".stdout.strip())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert out.stdout.split() == ["11", "11", "11"]
