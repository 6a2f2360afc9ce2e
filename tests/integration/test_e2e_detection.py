"""A detection model deployed and tried in a real browser: starts the real server, trains a
small detector with the real CLI (`autocv train --task det`, det-s at 128 on a generated COCO
set of solid squares and bars on a noisy background, test_cli_det.py's make_coco), uploads its
model directory as a zip to the model repository (POST /api/v1/models/{name}/versions, as the
UI's import does) and deploys it (POST /api/v1/deployments); then drives Debian's chromium with
playwright-core (tests/e2e/detection.mjs): sign in, open the deployment from the list, drop an
image with three squares and two bars on "try it", and read what the page draws: a box per
object over the image (with its label and score, where the image shows it), the count per
class (which must be the boxes per label), the latency, the copyable curl command (copied);
then the same in Chinese, the image chosen with the button this time.

Afterwards the server's own answer for the same image (POSTed to the deployment's predict
route from here) must be what the page showed: the same boxes per class, the same
coordinates and scores; the copied curl command is run as it is and answers the same; the
detector found the objects drawn. Screenshots (ui_deployment_det_en, ui_deployment_det_zh) go to
a temporary folder, or to AUTOCV_E2E_SCREENSHOTS."""
import io
import json
import os
import random
import shutil
import subprocess
import time
import unittest
import zipfile

from e2e_common import BrowserTest
from helpers import AUTOCV, png_bytes
from routes_models import upload_model
from test_cli_det import CLASSES, draw, make_coco

# the image tried in the browser: a camera's 640 x 480, five times the training images' size
# (the boxes come back in its own pixels, not the model's 128), three squares (one at the top
# edge: its label must stay on the picture) and two bars
SCALE = 5
OBJECTS = [(0, 14, 0, 34, 20), (0, 84, 58, 104, 78), (0, 102, 30, 122, 50), (1, 50, 14, 88, 24), (1, 10, 68, 50, 78)]
KNOWN = {CLASSES[0]: 3, CLASSES[1]: 2}


def iou(a, b):
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def per_label(boxes):
    out = {}
    for b in boxes:
        out[b["label"]] = out.get(b["label"], 0) + 1
    return out


class TestDetectionUI(BrowserTest, unittest.TestCase):
    TMP_PREFIX = "autocv-e2e-det-"

    def prepare(self):
        """The detector trained by the CLI, uploaded as a zipped model directory, deployed; the
        image to try. Returns (deployment, image path)."""
        data = os.path.join(self.tmp, "coco")
        make_coco(data, 24, 1, split="train")
        make_coco(data, 8, 2, split="val")
        out = os.path.join(self.tmp, "model")
        t0 = time.time()
        # test_cli_det.py's settings: det-s at 128, 40 short epochs (about 20 s on 2 cores)
        r = subprocess.run([AUTOCV, "train", "--task", "det", "--data", data, "--out", out, "--imgsz", "128",
                            "--epochs", "40", "--batch", "8", "--model", "det-s", "--close-mosaic", "10",
                            "--lr", "0.004", "--warmup", "2", "--val-every", "10", "--json"],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        done = [json.loads(l) for l in r.stdout.splitlines() if l.startswith('{"event":"done"')]
        self.assertTrue(done, r.stdout[-2000:])
        print("\ntrained in %.1f s: best val mAP50-95 %.3f" % (time.time() - t0, done[-1]["best_val_map50_95"]))
        # the model directory as a zip (the checkpoint stays behind: it is for resuming)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for name in ("model.json", "weights.safetensors", "metrics.json"):
                z.write(os.path.join(out, name), "shapes-detector/" + name)
        r = upload_model(self.srv, self.admin, "shapes-detector", data=buf.getvalue(), filename="shapes-detector.zip",
                         classes=None, fields={"task": "det", "description": "squares and bars, line 2"})
        self.assertEqual(r.status, 201, r)
        v = r.json()
        self.assertEqual((v["task"], v["version"], v["classes"], v["lineage"]["format"]), ("det", 1, CLASSES, "zip"))
        r = self.req("POST", "/api/v1/deployments", {"model": "shapes-detector", "name": "shapes-line2"})
        self.assertEqual(r.status, 201, r)
        dep = r.json()
        self.assertEqual((dep["task"], dep["status"], dep["classes"]), ("det", "ready", CLASSES))
        w, h = 128 * SCALE, 96 * SCALE
        objs = [(c, x1 * SCALE, y1 * SCALE, x2 * SCALE, y2 * SCALE) for c, x1, y1, x2, y2 in OBJECTS]
        image = os.path.join(self.tmp, "line2-shapes.png")
        with open(image, "wb") as f:
            f.write(png_bytes(w, h, draw(w, h, objs, random.Random(5))))
        return dep, image, objs

    def test_detection_try_it_in_chromium(self):
        self.require_browser()
        t0 = time.time()
        dep, image, objs = self.prepare()
        shots = self.shots_dir()
        config = self.config(shots, {"deployment": dep["id"], "deployment_name": dep["name"], "image": image,
                                     "classes": CLASSES})
        out = self.run_browser("detection.mjs", config, 120, prepared_since=t0)
        result = self.tagged(out, "RESULT")

        # ---- the server's own answer for the same image
        with open(image, "rb") as f:
            png = f.read()
        r = self.req("POST", "/api/v1/deployments/%d/predict" % dep["id"], data=png, content_type="image/png")
        self.assertEqual(r.status, 200, r)
        pr = r.json()
        self.assertEqual((pr["task"], pr["version"], pr["image"]), ("det", 1, {"width": 640, "height": 480}))
        server_counts = {k: n for k, n in pr["counts"].items() if n > 0}
        self.assertEqual(server_counts, per_label(pr["detections"]))
        # what the page showed, in English and after choosing the image again in Chinese
        for lang in ("en", "zh"):
            shown = result[lang]
            self.assertEqual(shown["counts"], server_counts, lang)  # the count per class
            self.assertEqual(per_label(shown["boxes"]), server_counts, lang)  # the boxes drawn per label
            self.assertEqual(shown["total"], len(pr["detections"]), lang)
            self.assertEqual(shown["view"], [640, 480], lang)
            key = lambda b: (b["label"], b["box"][0], b["box"][1])
            for s, d in zip(sorted(shown["boxes"], key=key), sorted(pr["detections"], key=key)):
                self.assertEqual(s["label"], d["label"])
                self.assertEqual(s["score"], round(d["score"] * 100), (s, d))
                for a, b in zip(s["box"], d["box"]):
                    self.assertAlmostEqual(a, b, delta=0.01, msg=(s, d))
        # ---- the detector found what was drawn: each object once, by a box of its class
        self.assertEqual(server_counts, KNOWN, pr["detections"])
        for c, *box in objs:
            best = max(pr["detections"], key=lambda d: iou(d["box"], box) if d["label"] == CLASSES[c] else 0)
            self.assertGreater(iou(best["box"], box), 0.5, (box, pr["detections"]))

        # ---- the curl command the page gave (copied to the clipboard), run as it is
        cmd = result["curl"]
        self.assertIn("/api/v1/deployments/%d/predict" % dep["id"], cmd)
        curl_dir = os.path.join(self.tmp, "curl")
        os.makedirs(curl_dir)
        shutil.copy(image, os.path.join(curl_dir, "image.jpg"))  # a PNG: the server reads the content
        p = subprocess.run(["bash", "-c", cmd], cwd=curl_dir, capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, TOKEN=self.admin))
        self.assertEqual(p.returncode, 0, p.stderr)
        ans = json.loads(p.stdout)
        self.assertEqual(({k: n for k, n in ans["counts"].items() if n > 0}, ans["deployment"]), (server_counts, dep["name"]))

        # ---- the deployment counted the requests: two from the page, one from here, one by curl
        d = self.req("GET", "/api/v1/deployments/%d" % dep["id"]).json()
        self.assertEqual((d["stats"]["requests"], d["stats"]["errors"]), (4, 0))
        self.assertGreaterEqual(result["requests_shown"], 1)

        self.assert_shots(shots, ["deployment_det_en", "deployment_det_zh"])
        print("browser and checks in %.1f s" % (time.time() - t0))


if __name__ == "__main__":
    unittest.main()
