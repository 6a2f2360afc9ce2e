"""The web UI end to end in a real browser (issue 7): starts the real server, prepares what a
person would otherwise spend an afternoon on through the API (500 labelled and reviewed
Fashion-MNIST garments, 10,000 labels in a project), then drives Debian's chromium with playwright-core
(tests/e2e/flow.mjs) through the screens as a person would click them: sign in, create a
project, upload images (file picker and drag-and-drop, one broken file), see them in the grid,
create and import labels (CSV and JSON), create an annotation set, tag four images in the
workspace and submit them, review (one sent back with a comment, three accepted), filter the
grid by status, label, annotator and upload date, create a dataset version with the split
sliders, search 10,000 labels, snapshot the garments' dataset version and train on it with the
wizard, watch the live board, publish, evaluate, compare, download the model and export it to
ONNX, deploy, try the deployment with an image, switch versions and roll back, cancel a
running job, switch to 简体中文, sign out.

Afterwards the server's state is checked through the API: what the browser did must be there.
Screenshots go to a temporary folder, or to AUTOCV_E2E_SCREENSHOTS (docs/img to refresh the
product tour in docs/web.md)."""
import json
import os
import random
import time
import unittest
import zipfile

from e2e_common import BrowserTest
from helpers import png_bytes
from platform_data import fmnist, import_reviewed_version


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


class TestWebUI(BrowserTest, unittest.TestCase):
    SERVER_ARGS = ("--job-threads", "1")
    TMP_PREFIX = "autocv-e2e-"

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
        self.require_browser()
        t0 = time.time()
        # What the API prepares: a project of 500 labelled and reviewed garments (the browser
        # snapshots its dataset version and trains on it), and a project with 10,000 labels
        # (the table must stay fast).
        r = self.req("POST", "/api/v1/projects", {"name": "Fashion line", "description": "garments on the belt"})
        self.assertEqual(r.status, 201, r)
        train_pid = r.json()["id"]
        import_reviewed_version(self.srv, self.admin, train_pid, fmnist("train", 500), name=None)
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
        # A dataset archive for the big catalogue's data page: three good images, a truncated
        # one and a text file; the import skips the last two and the page lists them with why.
        arch_dir = os.path.join(self.tmp, "archive")
        os.makedirs(arch_dir)
        archive = os.path.join(self.tmp, "intake.zip")
        arch_good = ["good_%d.png" % i for i in range(1, 4)]
        with zipfile.ZipFile(archive, "w") as z:
            for name, path in zip(arch_good, fixture_images(arch_dir, 3, seed=11)):
                z.write(path, name)
            z.writestr("broken.png", good[:len(good) // 3])
            z.writestr("notes.txt", "shift 2: camera 4 was cleaned\n")
        sample = os.path.join(self.tmp, "sample.png")
        with open(sample, "wb") as f:
            f.write(fmnist("test", 1, offset=3)[0][1])

        downloads = os.path.join(self.tmp, "downloads")  # what the browser saves from the model page
        os.makedirs(downloads)
        shots = self.shots_dir()
        config = self.config(shots, {
            "downloads": downloads,
            "picked": images[:20] + [broken],
            "dropped": images[20:] + [images[3]],
            "sample": sample,
            "archive": archive,
            "archive_good": arch_good,
            "archive_skipped": ["broken.png", "notes.txt"],
            "train_project": train_pid,
            "big_project": big_pid,
        })
        out = self.run_browser("flow.mjs", config, 240, show=4000, prepared_since=t0)
        result = self.tagged(out, "RESULT")

        # The server holds what the browser did.
        projects = {p["name"]: p for p in self.req("GET", "/api/v1/projects").json()["items"]}
        self.assertIn("Bolt tray", projects)
        pid = projects["Bolt tray"]["id"]
        self.assertEqual(projects["Bolt tray"]["description"], "line 3, station B")
        imgs = self.req("GET", "/api/v1/projects/%d/images?limit=1000" % pid).json()
        self.assertEqual(imgs["total"], 30)  # 30 distinct files; the duplicate and the broken one not stored
        self.assertEqual(sorted(i["filename"] for i in imgs["items"]), sorted(os.path.basename(x) for x in images))
        # the archive's good images were imported into the big catalogue, the others not
        big = self.req("GET", "/api/v1/projects/%d/images?limit=1000" % big_pid).json()
        self.assertEqual(sorted(i["filename"] for i in big["items"]), arch_good)
        self.assertTrue(all(i["source"] == "import" for i in big["items"]), big)
        self.assertEqual(sorted(result["archive_skipped"]), ["broken.png", "notes.txt"])
        labels = {l["name"]: l for l in self.req("GET", "/api/v1/projects/%d/labels?limit=1000" % pid).json()["items"]}
        self.assertEqual(set(labels), {"scratch", "surface", "dent", "ok", "missing part", "thread", "stripped thread"})
        self.assertEqual((labels["scratch"]["parent"], labels["dent"]["parent"]), ("surface", "surface"))
        self.assertEqual(labels["dent"]["aliases"], ["bump", "dint"])
        # the JSON import: a parent class and a child, with their colors
        self.assertEqual((labels["thread"]["parent"], labels["thread"]["color"]), (None, "#7c3aed"))
        self.assertEqual((labels["stripped thread"]["parent"], labels["stripped thread"]["color"], labels["stripped thread"]["aliases"]),
                         ("thread", "#d97706", ["galled"]))
        # annotated, reviewed and versioned in the browser
        sets = self.req("GET", "/api/v1/projects/%d/annotation-sets" % pid).json()["items"]
        self.assertEqual([(x["name"], x["task"]) for x in sets], [("Bolt check", "cls")])
        sid = sets[0]["id"]
        self.assertEqual(len(result["tagged"]), 10)  # every image of the set
        self.assertEqual(len(set(result["tagged"])), 10)
        want = dict(zip(result["tagged"], result["tags"]))
        for image, tag in want.items():
            it = self.req("GET", "/api/v1/annotation-sets/%d/items/%d?lock=false" % (sid, image)).json()
            self.assertEqual([t if isinstance(t, str) else t["label"] for t in it["tags"]], [tag], it)
            self.assertEqual(it["status"], "rejected" if image == result["rejected"] else "accepted", it)
            if image == result["rejected"]:
                self.assertIn("look at the thread again", json.dumps(it))
        vers = self.req("GET", "/api/v1/projects/%d/dataset-versions" % pid).json()["items"]
        self.assertEqual([(v["name"], v["image_count"]) for v in vers], [("bolt check v1", 9)])
        # ... and trained on in the browser
        bolt = self.req("GET", "/api/v1/jobs/%d" % result["bolt_job"]).json()
        self.assertEqual((bolt["status"], bolt["project_id"], bolt["dataset_version_id"], bolt["algorithm"], bolt["params"].get("epochs")),
                         ("succeeded", pid, vers[0]["id"], "compact", 3), bolt)
        job = self.req("GET", "/api/v1/jobs/%d" % result["job"]).json()
        self.assertEqual((job["status"], job["algorithm"], job["params"]), ("succeeded", "compact", {"epochs": 10, "batch": 16}))
        for v in (1, 2):
            mv = self.req("GET", "/api/v1/models/fashion-belt/versions/%d" % v).json()
            self.assertEqual((mv["job_id"], mv["source"]), (result["job"], "job"))
            self.assertEqual([e["status"] for e in mv["evaluations"]], ["succeeded"])  # evaluated in the browser
        # the model page's download of version 1 (the model directory as a zip) and its ONNX export, as saved
        # by the browser
        mv = self.req("GET", "/api/v1/models/fashion-belt/versions/1").json()
        with zipfile.ZipFile(result["downloads"]["zip"]) as z:
            self.assertIsNone(z.testzip())
            self.assertTrue({"model.json", "weights.safetensors"} <= set(z.namelist()), z.namelist())
            self.assertEqual(json.loads(z.read("model.json"))["classes"], mv["classes"])
        try:
            import onnx
        except ImportError:
            onnx = None
        if onnx is not None:
            m = onnx.load(result["downloads"]["onnx"])
            onnx.checker.check_model(m)
            self.assertEqual(json.loads({p.key: p.value for p in m.metadata_props}["classes"]), mv["classes"])
        deps = self.req("GET", "/api/v1/deployments").json()["items"]
        # switched to v2, then rolled back to v1 in the browser
        self.assertEqual([(d["model"], d["version"], d["status"]) for d in deps], [("fashion-belt", 1, "ready")])
        self.assertGreaterEqual(deps[0]["stats"]["requests"], 2)  # the browser's try-it requests
        # the long job cancelled from its board
        jobs = self.req("GET", "/api/v1/projects/%d/jobs?limit=50" % train_pid).json()["items"]
        self.assertIn("cancelled", [j["status"] for j in jobs if j["id"] != result["job"]], jobs)
        self.assert_shots(shots, ["%s_%s" % (name, lang) for name in ("login", "home", "data", "labels", "training", "job",
                                                                       "model", "deployment") for lang in ("en", "zh")])


if __name__ == "__main__":
    unittest.main()
