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

Then pre-annotation with the deployed detector: a project with the labels square and bar,
four new generated images of known objects and a det annotation set over them are made
through the API; in the browser the engineer chooses the detector in the set's pre-annotation
panel, sets the score threshold, starts the job, sees it finish and the boxes proposed (all
pending), opens the workspace on the first image, sees the proposals listed with their
scores, confirms one with Y, deletes one with Delete and submits with Ctrl+Enter; back on the
set, the summary counts one box accepted and one deleted.

Afterwards the server's own answer for the same image (POSTed to the deployment's predict
route from here) must be what the page showed: the same boxes per class, the same
coordinates and scores; the copied curl command is run as it is and answers the same; the
detector found the objects drawn. The proposals must be the predict route's boxes scored at
or above the threshold (per class, with their coordinates and scores), the first image's
saved shapes the confirmed box (a person's now) without the deleted one, and the set's
pre-annotation summary what the page showed.

Last, the training wizard of a third (detection) project that has an image classifier
registered as its custom network: the detector's backbone is chosen from it among the basic
parameters (frozen, under the advanced ones), one epoch trained and watched to its end; the
job must have trained det-s on that classifier's features. Screenshots (ui_deployment_det_en,
ui_deployment_det_zh, ui_preannotation_det_en) go to a temporary folder, or to
AUTOCV_E2E_SCREENSHOTS."""
import io
import json
import math
import os
import random
import shutil
import subprocess
import time
import unittest
import zipfile

from e2e_common import BrowserTest
from helpers import AUTOCV, png_bytes, small_classifier_onnx
from routes_models import upload_model
from test_cli_det import CLASSES, draw, make_coco

# the image tried in the browser: a camera's 640 x 480, five times the training images' size
# (the boxes come back in its own pixels, not the model's 128), three squares (one at the top
# edge: its label must stay on the picture) and two bars
SCALE = 5
OBJECTS = [(0, 14, 0, 34, 20), (0, 84, 58, 104, 78), (0, 102, 30, 122, 50), (1, 50, 14, 88, 24), (1, 10, 68, 50, 78)]
KNOWN = {CLASSES[0]: 3, CLASSES[1]: 2}

# the images to pre-annotate: 256 x 192 (twice the training images' size), the first with one
# square and one bar (the browser confirms one proposal and deletes the other), the others with
# two or three objects
PRE_SCALE = 2
PRE_IMAGES = [
    [(0, 22, 18, 42, 38), (1, 62, 58, 100, 68)],
    [(0, 84, 12, 102, 30), (0, 18, 54, 40, 76), (1, 44, 36, 84, 46)],
    [(1, 8, 10, 46, 20), (1, 70, 72, 110, 82), (0, 92, 34, 110, 52)],
    [(0, 52, 30, 72, 50), (1, 12, 76, 52, 86)],
]


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
        with open(os.path.join(out, "model.json")) as f:
            self.score_thresholds = json.load(f)["postprocess"]["score_thresholds"]  # what the deployment applies
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
        self.dep_id = dep["id"]
        w, h = 128 * SCALE, 96 * SCALE
        objs = [(c, x1 * SCALE, y1 * SCALE, x2 * SCALE, y2 * SCALE) for c, x1, y1, x2, y2 in OBJECTS]
        image = os.path.join(self.tmp, "line2-shapes.png")
        with open(image, "wb") as f:
            f.write(png_bytes(w, h, draw(w, h, objs, random.Random(5))))
        return dep, image, objs

    def prepare_pre(self):
        """A project with the labels square and bar, the images of PRE_IMAGES and a det set over
        them, through the API; the score threshold to set in the browser: 0.55 (the slider's
        default is 0.5), or the highest of the model's per-class thresholds (on the slider's
        0.05 steps) if higher, so that the job keeps exactly the boxes the deployment answers
        that score at least that. Returns the browser's part of the configuration."""
        pid = self.srv.make_project(self.admin, "Line 2 shapes", {})
        r = self.req("POST", "/api/v1/projects/%d/labels" % pid, data="name,color\nsquare,#e03131\nbar,#1c7ed6\n",
                     content_type="text/csv")
        self.assertEqual(r.status, 201, r)
        self.pre_images = {}  # image id -> (file name, PNG, objects in pixels)
        w, h = 128 * PRE_SCALE, 96 * PRE_SCALE
        for i, objs in enumerate(PRE_IMAGES):
            objs = [(c, x1 * PRE_SCALE, y1 * PRE_SCALE, x2 * PRE_SCALE, y2 * PRE_SCALE) for c, x1, y1, x2, y2 in objs]
            name = "line2_new_%d.png" % i
            png = png_bytes(w, h, draw(w, h, objs, random.Random(40 + i)))
            r = self.req("POST", "/api/v1/projects/%d/images?filename=%s" % (pid, name), data=png, content_type="image/png")
            self.assertEqual(r.status, 201, r)
            self.pre_images[r.json()["images"][0]["id"]] = (name, png, objs)
        r = self.req("POST", "/api/v1/projects/%d/annotation-sets" % pid,
                     {"name": "Line 2 new parts", "task": "det", "image_ids": sorted(self.pre_images)})
        self.assertEqual((r.status, r.json()["total"]), (201, len(PRE_IMAGES)), r)
        threshold = max(0.55, math.ceil(max(self.score_thresholds) * 20 - 1e-6) / 20)
        self.assertLessEqual(threshold, 0.95, self.score_thresholds)
        return {"project": pid, "set": r.json()["id"], "set_name": "Line 2 new parts", "model": "shapes-detector",
                "threshold": threshold, "images": len(PRE_IMAGES)}

    def prepare_bb(self):
        """A detection project with a reviewed dataset version (a generated COCO set imported, all
        accepted) and an image classifier registered as its custom network "small" (an ONNX file
        exported by PyTorch), through the API: the wizard then offers it as the backbone."""
        from routes_images import multipart
        data = os.path.join(self.tmp, "bb-coco")
        make_coco(data, 16, 21)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for d, _, files in os.walk(data):
                for f in files:
                    z.write(os.path.join(d, f), os.path.relpath(os.path.join(d, f), data))
        pid = self.srv.make_project(self.admin, "Line 3 trays", {})
        body, ct = multipart([("trays.zip", buf.getvalue())])
        r = self.req("POST", "/api/v1/projects/%d/imports" % pid, data=body, content_type=ct)
        self.assertEqual(r.status, 201, r)
        sid = r.json()["set_id"]
        for it in self.req("GET", "/api/v1/annotation-sets/%d/review-queue?limit=1000" % sid).json()["items"]:
            r = self.req("POST", "/api/v1/annotation-sets/%d/items/%d/review" % (sid, it["image_id"]),
                         {"decision": "accept", "revision": it["revision"]})
            self.assertEqual(r.status, 200, r)
        r = self.req("POST", "/api/v1/annotation-sets/%d/versions" % sid,
                     {"name": "trays v1", "split": {"train": 0.75, "val": 0.25, "test": 0}})
        self.assertEqual(r.status, 201, r)
        onnx = small_classifier_onnx(os.path.join(self.tmp, "small.onnx"))
        body, ct = multipart([("small.onnx", onnx)], {"name": "small", "task": "cls"})
        r = self.req("POST", "/api/v1/projects/%d/algorithms" % pid, data=body, content_type=ct)
        self.assertEqual(r.status, 201, r)
        return {"project": pid, "version_name": "trays v1", "classifier": "small"}

    def test_detection_try_it_in_chromium(self):
        self.require_browser()
        t0 = time.time()
        dep, image, objs = self.prepare()
        pre = self.prepare_pre()
        bb = self.prepare_bb()
        shots = self.shots_dir()
        config = self.config(shots, {"deployment": dep["id"], "deployment_name": dep["name"], "image": image,
                                     "classes": CLASSES, "pre": pre, "bb": bb})
        out = self.run_browser("detection.mjs", config, 150, prepared_since=t0)
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

        self.check_pre(pre, result["pre"])
        # the job the wizard started: det-s on the classifier's backbone, frozen, as chosen
        job = self.req("GET", "/api/v1/jobs/%d" % result["bb_job"]).json()
        self.assertEqual((job["status"], job["algorithm"]), ("succeeded", "det-s"), job)
        self.assertEqual((job["params"]["backbone"], job["params"]["freeze_backbone"], job["params"]["epochs"]),
                         ("small", True, 1), job["params"])
        with open(os.path.join(self.srv.data, job["result"]["model_dir"], "model.json")) as f:
            prov = json.load(f)["provenance"]
        self.assertTrue(prov["backbone"]["frozen"])
        self.assertEqual([f["stride"] for f in prov["backbone"]["features"]], [8, 16, 32])
        self.assert_shots(shots, ["deployment_det_en", "deployment_det_zh", "preannotation_det_en"])
        print("browser and checks in %.1f s" % (time.time() - t0))

    def check_pre(self, pre, shown):
        """The pre-annotation the browser started and what it did in the workspace, against the
        predict route's answers for the same images."""
        thr = pre["threshold"]
        near = lambda a, b, d=0.02: all(abs(x - y) <= d for x, y in zip(a, b))
        xyxy = lambda s: [s["x"], s["y"], s["x"] + s["w"], s["y"] + s["h"]]
        # the job: started by the browser with the detector and the threshold set there
        job = self.req("GET", "/api/v1/jobs/%d" % shown["job"]).json()
        self.assertEqual((job["kind"], job["status"], job["params"]["model"], job["params"]["version"], job["params"]["set_id"]),
                         ("pre_annotate", "succeeded", pre["model"], 1, pre["set"]), job)
        self.assertAlmostEqual(job["params"]["score_threshold"], thr, places=6)
        self.assertEqual(job["result"]["proposed"], len(PRE_IMAGES), job["result"])
        self.assertTrue(shown["result_line"].startswith("%d images got a proposal; %d boxes below the threshold; %d boxes "
                                                        % (len(PRE_IMAGES), job["result"]["below_threshold"],
                                                           job["result"]["unknown_label"])), shown["result_line"])
        # what the deployment answers for each image, kept at the threshold
        want, total = {}, 0
        for iid, (name, png, objs) in self.pre_images.items():
            r = self.req("POST", "/api/v1/deployments/%d/predict" % self.dep_id, data=png, content_type="image/png")
            self.assertEqual(r.status, 200, r)
            dets = [d for d in r.json()["detections"] if d["score"] >= thr]
            self.assertTrue(dets, (name, r.json()["detections"]))
            for d in dets:  # each on an object drawn, of its class
                self.assertTrue(any(CLASSES[c] == d["label"] and iou(d["box"], box) > 0.5 for c, *box in objs), (name, d, objs))
            want[iid] = dets
            total += len(dets)
        first = next(iid for iid, v in self.pre_images.items() if v[0] == shown["filename"])
        self.assertEqual(first, min(self.pre_images))  # the workspace opened the set's first image
        self.assertEqual(shown["item"], first)
        key = lambda d: (d["label"], -d["score"])
        for iid, dets in want.items():
            doc = self.req("GET", "/api/v1/annotation-sets/%d/items/%d?lock=false" % (pre["set"], iid)).json()
            if iid == first:
                continue
            # the untouched images hold the proposal: the boxes per class, coordinates and scores
            self.assertEqual((doc["status"], doc["tags"]), ("new", []), doc)
            self.assertEqual(doc["proposal"]["model"], pre["model"])
            prop = doc["proposal"]["proposal"]["shapes"]
            self.assertEqual(per_label(prop), per_label(dets), (iid, prop, dets))
            self.assertEqual(len(doc["shapes"]), len(prop))
            for s, d in zip(sorted(prop, key=key), sorted(dets, key=key)):
                self.assertEqual((s["type"], s["label"], s["source"]), ("box", d["label"], "model"))
                self.assertAlmostEqual(s["score"], d["score"], delta=1e-3, msg=(s, d))
                self.assertTrue(near(xyxy(s), d["box"]), (s, d))
            for s in doc["shapes"]:
                self.assertEqual(s.get("source"), "model", doc["shapes"])
        # the first image: the workspace listed the route's boxes with their scores ...
        dets = want[first]
        listed = sorted((p["label"], p["score"]) for p in shown["proposals"])
        self.assertEqual(listed, sorted((d["label"], "%.2f" % d["score"]) for d in dets), shown["proposals"])
        # ... and the saved, submitted document: the confirmed box is a person's now, where the
        # model put it; the deleted one is gone; any left were confirmed on submitting
        doc = self.req("GET", "/api/v1/annotation-sets/%d/items/%d?lock=false" % (pre["set"], first)).json()
        self.assertEqual(doc["status"], "submitted", doc)
        self.assertIsNone(doc["proposal"])
        self.assertEqual(len(doc["shapes"]), len(dets) - 1, doc["shapes"])
        for s in doc["shapes"]:
            self.assertEqual(s.get("source", "human"), "human", s)
            self.assertNotIn("score", s)
            self.assertTrue(any(d["label"] == s["label"] and near(xyxy(s), d["box"]) for d in dets), (s, dets))
        pick = lambda p: next(d for d in dets if (d["label"], "%.2f" % d["score"]) == (p["label"], p["score"]))
        confirmed, deleted = pick(shown["confirmed"]), pick(shown["deleted"])
        self.assertTrue(any(s["label"] == confirmed["label"] and near(xyxy(s), confirmed["box"]) for s in doc["shapes"]))
        self.assertFalse(any(near(xyxy(s), deleted["box"], 1) for s in doc["shapes"]), (doc["shapes"], deleted))
        # the set's summary: the boxes proposed, one accepted, one deleted, the rest pending
        stats = self.req("GET", "/api/v1/annotation-sets/%d/pre-annotations" % pre["set"]).json()
        self.assertEqual((stats["proposed"], stats["pending"]), (len(PRE_IMAGES), len(PRE_IMAGES) - 1), stats)
        boxes = stats["shapes"]
        self.assertEqual([boxes[k] for k in ("proposed", "pending", "accepted_unchanged", "corrected", "deleted")],
                         [total, total - len(dets), 1 + shown["confirmed_on_submit"], 0, 1], boxes)
        # ... as the page showed it before and after the workspace
        self.assertEqual(shown["summary_before"], {"proposed": total, "pending": total, "accepted": 0, "corrected": 0, "deleted": 0})
        self.assertEqual(shown["summary_after"], {"proposed": total, "pending": boxes["pending"],
                                                  "accepted": boxes["accepted_unchanged"], "corrected": 0, "deleted": 1})
        print("pre-annotation: %d boxes proposed at %.2f on %d images; job %s; summary %s" % (total, thr, len(PRE_IMAGES),
                                                                                          job["result"], boxes))


if __name__ == "__main__":
    unittest.main()
