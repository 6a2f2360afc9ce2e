"""A test fixture for `autocv serve`: starts the real build/autocv on a free loopback port with
a temporary --data directory, waits for /healthz, and offers a small JSON client built on
http.client (standard library only). Stop it with stop() (SIGTERM) or kill() (SIGKILL).

The server's stdout and stderr (access log) go to a file in the data directory's parent, never
to a pipe (a full pipe would block the server)."""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from helpers import AUTOCV, ROOT

ADMIN_PASSWORD = "admin-password-for-tests"


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body.decode()) if self.body else None

    def error_code(self):
        j = self.json()
        return j["error"]["code"] if isinstance(j, dict) and "error" in j else None

    def __repr__(self):
        return "<%d %s>" % (self.status, self.body[:300])


class Server:
    def __init__(self, args=(), data=None, admin_password=ADMIN_PASSWORD):
        self.tmp = tempfile.mkdtemp(prefix="autocv-srv-")
        self.data = data or os.path.join(self.tmp, "data")
        self.args = list(args)
        self.admin_password = admin_password
        self.proc = None
        self.port = None
        self.log_path = os.path.join(self.tmp, "server.log")
        self._conn = None

    # ---- process ----
    def start(self, timeout=20):
        env = dict(os.environ)
        if self.admin_password is not None:
            env["AUTOCV_ADMIN_PASSWORD"] = self.admin_password
        else:
            env.pop("AUTOCV_ADMIN_PASSWORD", None)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([AUTOCV, "serve", "--data", self.data, "--listen", "127.0.0.1:0"] + self.args,
                                     stdout=self.log, stderr=self.log, cwd=ROOT, env=env)
        deadline = time.time() + timeout
        start_at = self.log.tell()
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("autocv serve exited with %d:\n%s" % (self.proc.returncode, self.log_text()))
            m = re.findall(r"listening on http://127\.0\.0\.1:(\d+)", self.log_text()[start_at:])
            if m:
                self.port = int(m[-1])
                try:
                    if self.request("GET", "/healthz").status == 200:
                        return self
                except OSError:
                    pass
            time.sleep(0.05)
        raise AssertionError("autocv serve did not come up:\n" + self.log_text())

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        """SIGTERM and wait; returns the exit status."""
        self._close_conn()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else None
        if self.proc:
            self.log.close()
        self.proc = None
        return rc

    def kill(self):
        """SIGKILL: no chance to clean up."""
        self._close_conn()
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        self.proc = None

    def cleanup(self):
        if self.proc:
            self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    # ---- client ----
    def _close_conn(self):
        if self._conn:
            self._conn.close()
            self._conn = None

    def request(self, method, path, token=None, json_body=None, data=None, content_type=None, headers=None,
                keepalive=False, timeout=30):
        """One request; returns a Response. json_body is sent as JSON; data as raw bytes."""
        h = dict(headers or {})
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            h["Content-Type"] = "application/json"
        elif data is not None:
            body = data if isinstance(data, bytes) else data.encode()
            if content_type:
                h["Content-Type"] = content_type
        if token:
            h["Authorization"] = "Bearer " + token
        for attempt in range(2):
            conn = self._conn if keepalive and self._conn else http.client.HTTPConnection("127.0.0.1", self.port,
                                                                                        timeout=timeout)
            try:
                conn.request(method, path, body=body, headers=h)
                r = conn.getresponse()
                resp = Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                self._conn = None
                if keepalive and attempt == 0:
                    continue
                raise
            if keepalive and r.getheader("Connection", "").lower() != "close":
                self._conn = conn
            else:
                conn.close()
                if self._conn is conn:
                    self._conn = None
            return resp

    def login(self, username, password):
        r = self.request("POST", "/api/v1/auth/login", json_body={"username": username, "password": password})
        if r.status != 200:
            raise AssertionError("login %s: %r" % (username, r))
        return r.json()["token"]

    def make_project(self, token, name, members):
        """Creates a project and adds members {user_id: project role}; returns its id."""
        r = self.request("POST", "/api/v1/projects", token, {"name": name})
        assert r.status == 201, r
        pid = r.json()["id"]
        for uid, role in members.items():
            r = self.request("PUT", "/api/v1/projects/%d/members/%d" % (pid, uid), token, {"role": role})
            assert r.status == 201, r
        return pid

    def admin_token(self):
        return self.login("admin", self.admin_password)
