"""app_release health gate script (roles/app_release/files/pgops-health-check.py) against a real
HTTP server on loopback: status, JSON values, latency bound, refused connections, exit codes."""

import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "app_release" / "files" / "pgops-health-check.py"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server API)
        routes = {
            "/health": (200, {"status": "ok", "db": "ok", "version": "1.1.0", "revision": "abc123",
                              "build": {"python": "3.11"}}),
            "/down": (503, {"status": "error", "db": "down"}),
        }
        if self.path == "/slow":
            time.sleep(0.4)
            code, body = 200, {"status": "ok"}
        elif self.path == "/text":
            code, body = 200, None
        else:
            code, body = routes.get(self.path, (404, {"detail": "not found"}))
        payload = b"plain text" if body is None else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def base_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()


def run(base, checks, timeout="3"):
    proc = subprocess.run([sys.executable, str(SCRIPT), base, json.dumps(checks), timeout],
                          capture_output=True, text=True, timeout=30)
    return proc.returncode, json.loads(proc.stdout)


def test_all_checks_pass_with_json_and_dotted_keys(base_url):
    rc, out = run(base_url, [{"path": "/health", "status": 200,
                              "json": {"status": "ok", "revision": "abc123", "build.python": "3.11"},
                              "max_latency_ms": 5000}])
    assert rc == 0
    assert out["ok"] is True and out["failed"] == []
    assert out["results"][0]["json"]["version"] == "1.1.0"
    assert out["results"][0]["latency_ms"] > 0


def test_wrong_status_is_reported_with_expected_value(base_url):
    rc, out = run(base_url, [{"path": "/down", "status": 200, "json": {"status": "ok"}}])
    assert rc == 1
    assert out["ok"] is False
    assert "status 503, expected 200" in out["failed"][0]
    assert "JSON status='error', expected 'ok'" in out["failed"][0]


def test_revision_mismatch_means_old_code_is_still_live(base_url):
    rc, out = run(base_url, [{"path": "/health", "json": {"revision": "def456"}}])
    assert rc == 1
    assert "JSON revision='abc123', expected 'def456'" in out["failed"][0]


def test_missing_key_and_non_json_body(base_url):
    rc, out = run(base_url, [{"path": "/text", "json": {"status": "ok"}}])
    assert rc == 1
    assert "JSON key 'status' missing" in out["failed"][0]


def test_latency_bound(base_url):
    rc, out = run(base_url, [{"path": "/slow", "max_latency_ms": 100}, {"path": "/health"}])
    assert rc == 1
    assert len(out["failed"]) == 1 and out["failed"][0].startswith("GET /slow: latency")
    assert out["results"][0]["latency_ms"] >= 100
    assert out["results"][1]["ok"] is True


def test_refused_connection_fails_every_check():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens on this port now
    rc, out = run("http://127.0.0.1:%d" % port, [{"path": "/health", "name": "liveness"}])
    assert rc == 1
    assert out["failed"][0].startswith("liveness: request failed")


def test_bad_arguments_exit_2():
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
