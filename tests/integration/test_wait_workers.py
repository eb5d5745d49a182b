"""app_release's bin/pgops-wait-workers.py against real gunicorn masters (uvicorn and sync workers).

systemd runs it as ExecStartPost: the unit counts as started only when every worker accepts, so the
handover never stops the serving instance while the new workers are still starting.
"""

import os
import socket
import subprocess
import sys

import pytest

from santri_sample import app_python

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WAIT = os.path.join(ROOT, "roles", "app_release", "files", "pgops-wait-workers.py")

# Each worker's lifespan startup takes a while, then leaves a marker: a worker counts as
# accepting only after that (uvicorn registers the socket once startup is complete).
ASGI_APP = """
import asyncio, os

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await asyncio.sleep(1.5)
                open(os.path.join(os.environ["MARKS"], str(os.getpid())), "w").close()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})
"""

WSGI_APP = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def python():
    return app_python()


def start_gunicorn(python, tmp_path, module, worker_class, port, workers=2):
    (tmp_path / ("%s.py" % module)).write_text(ASGI_APP if module == "asgi_app" else WSGI_APP)
    marks = tmp_path / "marks"
    marks.mkdir(exist_ok=True)
    env = dict(os.environ, MARKS=str(marks))
    return subprocess.Popen([python, "-m", "gunicorn", "--chdir", str(tmp_path), "--workers", str(workers),
                             "--worker-class", worker_class, "--bind", "127.0.0.1:%d" % port, "--preload",
                             "%s:app" % module], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_workers(pid, workers, timeout):
    return subprocess.run([sys.executable, WAIT, str(pid), str(workers), str(timeout)],
                          capture_output=True, text=True, timeout=timeout + 30)


def stop(proc):
    proc.terminate()
    proc.wait(timeout=30)


def test_waits_until_every_uvicorn_worker_finished_its_startup(python, tmp_path):
    port = free_port()
    master = start_gunicorn(python, tmp_path, "asgi_app", "uvicorn.workers.UvicornWorker", port)
    try:
        res = wait_workers(master.pid, 2, 60)
        started = sorted(os.listdir(str(tmp_path / "marks")))
        assert res.returncode == 0, res.stderr
        assert "2/2 workers of %d accept" % master.pid in res.stdout, res.stdout
        # Both workers had finished their startup when the wait returned.
        assert len(started) == 2, (started, res.stdout)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            assert conn.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        stop(master)


def test_sync_workers_count_once_they_sleep_in_select_and_a_timeout_never_fails_the_unit(python, tmp_path):
    port = free_port()
    master = start_gunicorn(python, tmp_path, "wsgi_app", "sync", port)
    try:
        res = wait_workers(master.pid, 2, 60)
        assert res.returncode == 0 and "2/2 workers" in res.stdout, res.stdout + res.stderr
        res = wait_workers(master.pid, 3, 1)
        assert res.returncode == 0, res.stderr
        assert "only 2/3 workers of %d accept after 1s; going on" % master.pid in res.stdout, res.stdout
    finally:
        stop(master)
    assert wait_workers(999999999, 1, 1).stdout.startswith("pgops-wait-workers: only 0/1")
