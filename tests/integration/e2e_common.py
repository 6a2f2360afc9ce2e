"""What the browser tests' wrappers (test_e2e_web.py, test_e2e_workspace.py,
test_e2e_annotation_review.py, test_e2e_admin_versions.py) share: the real server started once
for the class with a temporary folder, the check that chromium, node and playwright-core are
there, the screenshot folder (AUTOCV_E2E_SCREENSHOTS, relative to the repository, or a
temporary one), the configuration every script reads, and running a script of tests/e2e/ under
node with a time limit: its output printed, a failure shown with the server's log, and its
"RESULT {json}" / "FIGURES {json}" lines read.

Not a test module itself (tests/run_tests.py collects test_*.py)."""
import json
import os
import shutil
import subprocess
import tempfile
import time

from helpers import ROOT
from server import Server

CHROMIUM = os.environ.get("AUTOCV_CHROMIUM", "/usr/bin/chromium")
NODE = shutil.which("node") or "/usr/bin/node"
LOCALES = os.path.join(ROOT, "web", "src", "lib", "locales")


def script(name):
    """The path of a browser script in tests/e2e/."""
    return os.path.join(ROOT, "tests", "e2e", name)


class BrowserTest:
    """A mixin for a unittest.TestCase: SERVER_ARGS for `autocv serve`, TMP_PREFIX for the
    temporary folder (cls.tmp); cls.srv is the server, cls.admin the admin's token."""
    SERVER_ARGS = ()
    TMP_PREFIX = "autocv-e2e-"

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(list(cls.SERVER_ARGS)).start()
        cls.tmp = tempfile.mkdtemp(prefix=cls.TMP_PREFIX)
        cls.admin = cls.srv.admin_token()

    @classmethod
    def tearDownClass(cls):
        cls.srv.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def req(self, method, path, body=None, token=None, **kw):
        return self.srv.request(method, path, token or self.admin, json_body=body, **kw)

    def require_browser(self):
        """Fails (never skips) when what the browser test needs is not installed."""
        for what, path in (("chromium", CHROMIUM), ("node", NODE)):
            if not os.path.exists(path):
                self.fail("%s not found at %s: run `make deps`" % (what, path))
        if not os.path.isdir(os.path.join(ROOT, "web", "node_modules", "playwright-core")):
            self.fail("web/node_modules/playwright-core is missing: run `make deps`")

    def shots_dir(self):
        """Where the screenshots go: AUTOCV_E2E_SCREENSHOTS (relative to the repository when
        not absolute), else a folder of the temporary one."""
        shots = os.environ.get("AUTOCV_E2E_SCREENSHOTS") or os.path.join(self.tmp, "shots")
        return os.path.join(ROOT, shots) if not os.path.isabs(shots) else shots

    def config(self, shots, extra, admin=True):
        """What every script reads (the server, chromium, the screenshot folder, the
        dictionaries; the admin's credentials when `admin`), with the test's own `extra`."""
        config = {
            "url": "http://127.0.0.1:%d" % self.srv.port,
            "chromium": CHROMIUM,
            "shots": shots,
            "locales": LOCALES,
        }
        if admin:
            config.update(username="admin", password=self.srv.admin_password)
        config.update(extra)
        return config

    def run_browser(self, name, config, timeout, what="the browser flow", show=3000, prepared_since=None):
        """Writes config.json, runs tests/e2e/NAME under node (at most `timeout` seconds) and
        prints the last `show` characters of its output; fails with the output and the server's
        log when it runs too long or exits non-zero. Returns the output."""
        if prepared_since is not None:
            print("\nprepared through the API in %.1f s" % (time.time() - prepared_since))
        cfg_path = os.path.join(self.tmp, "config.json")
        with open(cfg_path, "w") as f:
            json.dump(config, f)
        try:
            p = subprocess.run([NODE, script(name), cfg_path], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=timeout)
            out = p.stdout.decode(errors="replace")
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode(errors="replace")
            self.fail("%s did not finish in %d s:\n" % (what, timeout) + out[-6000:] + "\n" + self.srv.log_text()[-3000:])
        print("\n" + out[-show:])
        self.assertEqual(p.returncode, 0, "%s failed:\n" % what + out[-8000:] +
                         "\n--- server log ---\n" + self.srv.log_text()[-3000:])
        return out

    def tagged(self, out, tag):
        """The JSON of the script's last "TAG {json}" line."""
        lines = [l for l in out.splitlines() if l.startswith(tag + " ")]
        self.assertTrue(lines, "no %s line in the output" % tag)
        return json.loads(lines[-1][len(tag) + 1:])

    def assert_shots(self, shots, names):
        """Each SHOTS/ui_NAME.png was written and holds a real picture."""
        for name in names:
            path = os.path.join(shots, "ui_%s.png" % name)
            self.assertTrue(os.path.getsize(path) > 5000, path)
