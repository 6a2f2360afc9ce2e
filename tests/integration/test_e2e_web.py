"""The web UI end to end in a real browser (issue 7): starts the real server, prepares what a
person would otherwise spend an afternoon on through the API (a reviewed Fashion-MNIST dataset
version, 10,000 labels in a project), then drives Debian's chromium with playwright-core
(tests/e2e/flow.mjs) through the screens as a person would click them: sign in, create a
project, upload images (file picker and drag-and-drop, one broken file), see them in the grid,
create and import labels, search 10,000 labels, train with the wizard and watch the live
board, publish, deploy, try the deployment with an image, switch to 简体中文, sign out.

Afterwards the server's state is checked through the API: what the browser did must be there.
Screenshots go to a temporary folder, or to AUTOCV_E2E_SCREENSHOTS (docs/img to refresh the
product tour in docs/web.md)."""
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
import unittest

from helpers import ROOT, png_bytes
from platform_data import fmnist, import_reviewed_version
from server import Server

CHROMIUM = os.environ.get("AUTOCV_CHROMIUM", "/usr/bin/chromium")
NODE = shutil.which("node") or "/usr/bin/node"
FLOW = os.path.join(ROOT, "tests", "e2e", "flow.mjs")


def fixture_images(folder, n, seed=7):
    """n small PNGs of what an inspection camera sees: a bolt head on a brushed plate, some
    with a scratch; returns their paths."""
    rng = random.Random(seed)
    paths = []
    for i in range(n):
        w, h = 120, 90
        base = rng.randrange(120, 170)
        cx, cy, r = rng.randrange(45, 75), rng.randrange(35, 55), rng.randrange(18, 26)
        scratch = i % 3 == 0
        sx, sy, slope = rng.randrange(10, 60), rng.randrange(10, 80), rng.uniform(-0.6, 0.6)
        px = bytearray()
        for y in range(h):
            for x in range(w):
                v = base + (x * 40) // w + ((x * 7 + y * 3) % 11) - 5
                d2 = (x - cx) ** 2 + (y - cy) ** 2
                if d2 < r * r:
                    v = 70 + (d2 * 60) // (r * r) + (25 if (x - cx) + (y - cy) < 0 else 0)
                    if d2 < (r // 3) ** 2:
                        v = 45
                if scratch and sx <= x <= sx + 45 and abs(y - (sy + slope * (x - sx))) < 1.2:
                    v = 35
                v = max(0, min(255, v))
                px += bytes((v, v, min(255, v + 8)))
        p = os.path.join(folder, "part_%03d.png" % i)
        with open(p, "wb") as f:
            f.write(png_bytes(w, h, bytes(px)))
        paths.append(p)
    return paths


class TestWebUI(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(["--job-threads", "1"]).start()
        cls.tmp = tempfile.mkdtemp(prefix="autocv-e2e-")
        cls.admin = cls.srv.admin_token()

    @classmethod
    def tearDownClass(cls):
        cls.srv.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def req(self, method, path, body=None, **kw):
        return self.srv.request(method, path, self.admin, json_body=body, **kw)

    def test_static_files(self):
        """The UI is served from the binary: index.html for the browser's routes, hashed assets
        cached for a year, ETags, and the API's own 404s untouched."""
        r = self.srv.request("GET", "/")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["content-type"].startswith("text/html"))
        self.assertIn(b'<div id="app">', r.body)
        self.assertEqual(r.headers["cache-control"], "no-cache")
        self.assertIn("default-src 'self'", r.headers["content-security-policy"])
        self.assertEqual(self.srv.request("GET", "/", headers={"If-None-Match": r.headers["etag"]}).status, 304)
        for path in ("/projects/3/data", "/models/tray-classifier", "/deployments/1", "/login"):
            d = self.srv.request("GET", path)
            self.assertEqual((d.status, d.body), (200, r.body), path)
        assets = [a.decode() for a in __import__("re").findall(rb'(/assets/[^"]+\.(?:js|css))', r.body)]
        self.assertEqual(len(assets), 2, r.body)
        for a in assets:
            x = self.srv.request("GET", a)
            self.assertEqual(x.status, 200, a)
            self.assertEqual(x.headers["cache-control"], "public, max-age=31536000, immutable")
            self.assertTrue(x.headers["content-type"].startswith("text/javascript" if a.endswith(".js") else "text/css"))
            self.assertGreater(len(x.body), 1000)
            h = self.srv.request("HEAD", a)
            self.assertEqual((h.status, h.body, h.headers["content-length"]), (200, b"", str(len(x.body))))
        # a missing file is a plain 404, not the app
        for path in ("/assets/index-00000000.js", "/favicon.ico", "/robots.txt"):
            self.assertEqual(self.srv.request("GET", path).status, 404, path)
        self.assertEqual(self.srv.request("GET", "/favicon.svg").headers["content-type"], "image/svg+xml")
        # the API's namespaces keep their JSON errors; only GET and HEAD reach the UI
        for method, path in (("GET", "/api/v1/nothing"), ("GET", "/v2/nothing"), ("GET", "/api"),
                             ("POST", "/projects/1"), ("DELETE", "/")):
            e = self.srv.request(method, path)
            self.assertEqual((e.status, e.error_code()), (404, "not_found"), (method, path))
        # the UI is not API: the OpenAPI document does not list it
        paths = self.req("GET", "/api/v1/openapi.json").json()["paths"]
        self.assertFalse([p for p in paths if not p.startswith(("/api/", "/v2/", "/healthz", "/metrics"))])

    def test_flow_in_chromium(self):
        for what, path in (("chromium", CHROMIUM), ("node", NODE)):
            if not os.path.exists(path):
                self.fail("%s not found at %s: run `make deps`" % (what, path))
        if not os.path.isdir(os.path.join(ROOT, "web", "node_modules", "playwright-core")):
            self.fail("web/node_modules/playwright-core is missing: run `make deps`")
        t0 = time.time()
        # What the API prepares: a project with a reviewed dataset version to train on, and
        # a project with 10,000 labels (the table must stay fast).
        r = self.req("POST", "/api/v1/projects", {"name": "Fashion line", "description": "garments on the belt"})
        self.assertEqual(r.status, 201, r)
        train_pid = r.json()["id"]
        _, version = import_reviewed_version(self.srv, self.admin, train_pid, fmnist("train", 500), name="belt v1")
        r = self.req("POST", "/api/v1/projects", {"name": "Big catalogue"})
        big_pid = r.json()["id"]
        csv = "name,aliases\n" + "".join("part-%05d,alias-%05d\n" % (i, i) for i in range(10000))
        r = self.req("POST", "/api/v1/projects/%d/labels" % big_pid, data=csv, content_type="text/csv")
        self.assertEqual(r.status, 201, r)

        # What the browser uploads: images, one twice, one broken file, one sample to try.
        up = os.path.join(self.tmp, "upload")
        os.makedirs(up)
        images = fixture_images(up, 30)
        with open(images[0], "rb") as f:
            good = f.read()
        broken = os.path.join(up, "broken.png")
        with open(broken, "wb") as f:
            f.write(good[:len(good) // 2])
        sample = os.path.join(self.tmp, "sample.png")
        with open(sample, "wb") as f:
            f.write(fmnist("test", 1, offset=3)[0][1])

        shots = os.environ.get("AUTOCV_E2E_SCREENSHOTS") or os.path.join(self.tmp, "shots")
        shots = os.path.join(ROOT, shots) if not os.path.isabs(shots) else shots
        config = {
            "url": "http://127.0.0.1:%d" % self.srv.port,
            "username": "admin",
            "password": self.srv.admin_password,
            "chromium": CHROMIUM,
            "shots": shots,
            "picked": images[:20] + [broken],
            "dropped": images[20:] + [images[3]],
            "sample": sample,
            "train_project": train_pid,
            "dataset_version": version["id"],
            "big_project": big_pid,
            "locales": os.path.join(ROOT, "web", "src", "lib", "locales"),
        }
        print("\nprepared through the API in %.1f s" % (time.time() - t0))
        cfg_path = os.path.join(self.tmp, "config.json")
        with open(cfg_path, "w") as f:
            json.dump(config, f)
        try:
            p = subprocess.run([NODE, FLOW, cfg_path], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=240)
            out = p.stdout.decode(errors="replace")
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode(errors="replace")
            self.fail("the browser flow did not finish in 240 s:\n" + out[-6000:] + "\n" + self.srv.log_text()[-3000:])
        print("\n" + out[-4000:])
        self.assertEqual(p.returncode, 0, "the browser flow failed:\n" + out[-8000:] +
                         "\n--- server log ---\n" + self.srv.log_text()[-3000:])
        result = json.loads([l for l in out.splitlines() if l.startswith("RESULT ")][-1][7:])

        # The server holds what the browser did.
        projects = {p["name"]: p for p in self.req("GET", "/api/v1/projects").json()["items"]}
        self.assertIn("Bolt tray", projects)
        pid = projects["Bolt tray"]["id"]
        self.assertEqual(projects["Bolt tray"]["description"], "line 3, station B")
        imgs = self.req("GET", "/api/v1/projects/%d/images?limit=1000" % pid).json()
        self.assertEqual(imgs["total"], 30)  # 30 distinct files; the duplicate and the broken one not stored
        self.assertEqual(sorted(i["filename"] for i in imgs["items"]), sorted(os.path.basename(x) for x in images))
        labels = {l["name"]: l for l in self.req("GET", "/api/v1/projects/%d/labels?limit=1000" % pid).json()["items"]}
        self.assertEqual(set(labels), {"scratch", "surface", "dent", "ok", "missing part"})
        self.assertEqual((labels["scratch"]["parent"], labels["dent"]["parent"]), ("surface", "surface"))
        self.assertEqual(labels["dent"]["aliases"], ["bump", "dint"])
        job = self.req("GET", "/api/v1/jobs/%d" % result["job"]).json()
        self.assertEqual((job["status"], job["algorithm"], job["params"]), ("succeeded", "compact", {"epochs": 10, "batch": 16}))
        for v in (1, 2):
            mv = self.req("GET", "/api/v1/models/fashion-belt/versions/%d" % v).json()
            self.assertEqual((mv["job_id"], mv["source"]), (result["job"], "job"))
            self.assertEqual([e["status"] for e in mv["evaluations"]], ["succeeded"])  # evaluated in the browser
        deps = self.req("GET", "/api/v1/deployments").json()["items"]
        self.assertEqual([(d["model"], d["version"], d["status"]) for d in deps], [("fashion-belt", 2, "ready")])
        self.assertGreaterEqual(deps[0]["stats"]["requests"], 1)  # the browser's try-it request
        for name in ("login", "home", "data", "labels", "training", "job", "model", "deployment"):
            for lang in ("en", "zh"):
                path = os.path.join(shots, "ui_%s_%s.png" % (name, lang))
                self.assertTrue(os.path.getsize(path) > 5000, path)


if __name__ == "__main__":
    unittest.main()
