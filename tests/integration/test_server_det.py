"""Detection through the platform over real HTTP (issues 5 and 6): a COCO archive imported,
reviewed and snapshot; a det training job; publish; evaluation (AP and counting figures);
pre-annotation of new images with boxes (source model, with scores) that an annotator keeps,
corrects or deletes, and the set's per-shape figures."""
import io
import json
import os
import shutil
import subprocess
import tempfile
import unittest
import zipfile

from helpers import AUTOCV, small_classifier_onnx
from routes_images import multipart
from server import Server
from test_cli_det import CLASSES, make_coco
from test_server_jobs import wait_job


def zip_dir(root):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for d, _, files in os.walk(root):
            for f in files:
                p = os.path.join(d, f)
                z.write(p, os.path.relpath(p, root))
    return buf.getvalue()


class TestServerDet(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="autocv-sdet-")
        self.srv = Server(["--job-threads", "2"]).start()
        self.admin = self.srv.admin_token()

    def tearDown(self):
        self.srv.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def req(self, method, path, body=None, **kw):
        return self.srv.request(method, path, self.admin, json_body=body, **kw)

    def ok(self, r, status=200):
        self.assertEqual(r.status, status, r)
        return r.json()

    def reviewed_version(self, name, n, seed):
        """A project with n generated COCO images imported, all accepted, and a dataset version of
        them (3/4 train, 1/4 val): (project id, version, the COCO folder)."""
        pid = self.ok(self.req("POST", "/api/v1/projects", {"name": name}), 201)["id"]
        data = os.path.join(self.tmp, "coco-" + name)
        make_coco(data, n, seed)
        body, ct = multipart([("trays.zip", zip_dir(data))])
        imp = self.ok(self.srv.request("POST", "/api/v1/projects/%d/imports" % pid, self.admin, data=body,
                                       content_type=ct, timeout=120), 201)
        self.assertEqual(imp["format"], "coco")
        sid = imp["set_id"]
        q = self.ok(self.req("GET", "/api/v1/annotation-sets/%d/review-queue?limit=1000" % sid))
        for it in q["items"]:
            self.ok(self.req("POST", "/api/v1/annotation-sets/%d/items/%d/review" % (sid, it["image_id"]),
                             {"decision": "accept", "revision": it["revision"]}))
        ver = self.ok(self.req("POST", "/api/v1/annotation-sets/%d/versions" % sid,
                               {"name": "v1", "split": {"train": 0.75, "val": 0.25, "test": 0}}), 201)
        return pid, ver, data

    def test_det_flow(self):
        pid, ver, data = self.reviewed_version("trays", 48, 11)
        self.assertEqual(ver["task"], "det")
        algs = {a["name"] for a in self.ok(self.req("GET", "/api/v1/algorithms?task=det"))["items"]}
        self.assertEqual(algs, {"auto", "det-s", "det-m", "det-s-p2", "det-m-p2"})
        r = self.req("POST", "/api/v1/projects/%d/training-jobs" % pid,
                     {"dataset_version_id": ver["id"], "params": {"imgsz": 100}})
        self.assertEqual(r.status, 422)
        self.assertIn("params.imgsz", r.json()["error"]["message"])
        # an unknown detector is named, with the ones there are
        r = self.req("POST", "/api/v1/projects/%d/training-jobs" % pid,
                     {"dataset_version_id": ver["id"], "algorithm": "det-xl"})
        self.assertIn(r.status, (400, 422))
        self.assertIn("unknown detector 'det-xl' (auto, det-s, det-m, det-s-p2, det-m-p2)", r.json()["error"]["message"])
        job = self.ok(self.req("POST", "/api/v1/projects/%d/training-jobs" % pid,
                               {"dataset_version_id": ver["id"], "algorithm": "det-s",
                                "params": {"imgsz": 128, "epochs": 60, "batch": 8, "lr": 0.004, "warmup_epochs": 2,
                                           "close_mosaic": 10}}), 201)
        done = wait_job(self.srv, self.admin, job["id"], timeout=900)
        self.assertEqual(done["status"], "succeeded", done)
        self.assertGreater(done["result"]["best_val_map50_95"], 0.25, (done, self.req("GET", "/api/v1/jobs/%d/logs" % job["id"]).body[-3000:]))
        v = self.ok(self.req("POST", "/api/v1/jobs/%d/publish" % job["id"], {"model": "trays"}), 201)
        self.assertEqual((v["task"], v["classes"]), ("det", sorted(CLASSES)))  # the version orders labels by name
        # evaluation on the validation split: AP and counting figures, and speed
        e = self.ok(self.req("POST", "/api/v1/models/trays/versions/1/evaluations",
                             {"dataset_version_id": ver["id"], "split": "val"}), 201)
        self.assertEqual(wait_job(self.srv, self.admin, e["job_id"])["status"], "succeeded")
        rep = self.ok(self.req("GET", "/api/v1/evaluations/%d" % e["id"]))["report"]
        for k in ("map50", "map50_95", "map75", "count_mae", "count_exact", "per_class"):
            self.assertIn(k, rep["accuracy"])
        self.assertGreater(rep["accuracy"]["map50"], 0.5)
        self.assertGreater(rep["performance"]["latency_ms"]["p50"], 0)
        # deploy it: predict answers boxes in the image's pixels and counts per class
        dep = self.ok(self.req("POST", "/api/v1/deployments", {"model": "trays", "name": "trays-line"}), 201)
        with open(os.path.join(data, "images", "train", "train_000.png"), "rb") as f:
            png = f.read()
        pr = self.ok(self.req("POST", "/api/v1/deployments/%d/predict" % dep["id"], data=png, content_type="image/png"))
        self.assertEqual((pr["task"], pr["version"], pr["image"]), ("det", 1, {"width": 128, "height": 96}))
        self.assertEqual(set(pr["counts"]), set(CLASSES))
        self.assertEqual(sum(pr["counts"].values()), len(pr["detections"]))
        for d in pr["detections"]:
            self.assertTrue(0 <= d["box"][0] < d["box"][2] <= 128 and 0 <= d["box"][1] < d["box"][3] <= 96, d)
        meta = self.ok(self.req("GET", "/v2/models/trays-line"))
        self.assertEqual(meta["outputs"][0]["shape"][1], 64 + len(CLASSES))
        self.assertEqual(self.req("DELETE", "/api/v1/deployments/%d" % dep["id"]).status, 204)
        # pre-annotate new images: boxes with source model and their scores
        fresh = os.path.join(self.tmp, "fresh")
        imgs, _ = make_coco(fresh, 6, 99, split="new")
        files = []
        for im in imgs:
            with open(os.path.join(fresh, "images", "new", im["file_name"]), "rb") as f:
                files.append((im["file_name"], f.read()))
        body, ct = multipart(files)
        up = self.ok(self.srv.request("POST", "/api/v1/projects/%d/images" % pid, self.admin, data=body,
                                      content_type=ct), 201)
        ids = [im["id"] for im in up["images"]]
        s2 = self.ok(self.req("POST", "/api/v1/projects/%d/annotation-sets" % pid,
                              {"name": "line 2", "task": "det", "image_ids": ids}), 201)
        pj = self.ok(self.req("POST", "/api/v1/annotation-sets/%d/pre-annotate" % s2["id"],
                              {"model": "trays", "score_threshold": 0.3}), 201)
        res = wait_job(self.srv, self.admin, pj["id"])
        self.assertEqual(res["status"], "succeeded", res)
        self.assertGreater(res["result"]["proposed"], 0)
        # the boxes under the threshold are counted, not dropped unseen: a second set over the
        # same images, pre-annotated at the median score of the model's own answer (down to
        # 0.05), has the boxes under it counted as below the threshold
        r = self.srv.request("GET", "/api/v1/models/trays/versions/1/download", self.admin)
        self.assertEqual(r.status, 200, r)
        mdir = os.path.join(self.tmp, "trays-v1")
        zipfile.ZipFile(io.BytesIO(r.body)).extractall(mdir)
        root = mdir if os.path.exists(os.path.join(mdir, "model.json")) else os.path.join(mdir, os.listdir(mdir)[0])
        paths = [os.path.join(fresh, "images", "new", im["file_name"]) for im in imgs]
        out = subprocess.run([AUTOCV, "predict", "--model", root, "--json", "--conf", "0.05"] + paths,
                             capture_output=True, text=True, timeout=300)
        self.assertEqual(out.returncode, 0, out.stderr)
        scores = sorted(d["score"] for line in out.stdout.splitlines() if line.startswith("{")
                        for d in json.loads(line)["detections"])
        self.assertGreaterEqual(len(scores), 4, out.stdout)
        mid = len(scores) // 2
        thr2 = (scores[mid - 1] + scores[mid]) / 2
        s3 = self.ok(self.req("POST", "/api/v1/projects/%d/annotation-sets" % pid,
                              {"name": "line 2 strict", "task": "det", "image_ids": ids}), 201)
        res3 = wait_job(self.srv, self.admin, self.ok(self.req(
            "POST", "/api/v1/annotation-sets/%d/pre-annotate" % s3["id"], {"model": "trays", "score_threshold": thr2}),
            201)["id"])
        self.assertEqual(res3["status"], "succeeded", res3)
        self.assertEqual(res3["result"]["below_threshold"], sum(1 for x in scores if x < thr2), (thr2, scores))
        st3 = self.ok(self.req("GET", "/api/v1/annotation-sets/%d/pre-annotations" % s3["id"]))
        self.assertEqual(st3["shapes"]["proposed"], sum(1 for x in scores if x >= thr2))
        st = self.ok(self.req("GET", "/api/v1/annotation-sets/%d/pre-annotations" % s2["id"]))
        self.assertGreater(st["shapes"]["proposed"], 0)
        self.assertEqual(st["shapes"]["pending"], st["shapes"]["proposed"])
        item = None
        for iid in ids:
            it = self.ok(self.req("GET", "/api/v1/annotation-sets/%d/items/%d" % (s2["id"], iid)))
            if len(it["shapes"]) >= 2:
                item = it
                break
        self.assertIsNotNone(item, "no image got two proposals")
        for sh in item["shapes"]:
            self.assertEqual(sh["source"], "model")
            self.assertGreaterEqual(sh["score"], 0.3)
            self.assertIn(sh["label"], CLASSES)
        # the annotator keeps the first box (confirmed: source human), moves the second, deletes the rest
        shapes = [dict(item["shapes"][0], source="human"), dict(item["shapes"][1], source="human")]
        shapes[1]["x"] += shapes[1]["w"] * 0.2
        del shapes[0]["score"], shapes[1]["score"]
        self.ok(self.req("PUT", "/api/v1/annotation-sets/%d/items/%d" % (s2["id"], item["image_id"]),
                         {"revision": item["revision"], "tags": [], "shapes": shapes}))
        st = self.ok(self.req("GET", "/api/v1/annotation-sets/%d/pre-annotations" % s2["id"]))["shapes"]
        n = len(item["shapes"])
        self.assertEqual((st["accepted_unchanged"], st["corrected"], st["deleted"]), (1, 1, n - 2))
        self.assertEqual(st["pending"], st["proposed"] - n)

    def test_det_job_on_a_custom_backbone(self):
        # a detection project registers an image classifier (ONNX) as a custom network and
        # trains a detector on its backbone, frozen
        pid, ver, _ = self.reviewed_version("bb", 24, 12)
        # without custom classifiers, detectors offer no backbone choice, and asking for one is named
        algs = self.ok(self.req("GET", "/api/v1/projects/%d/algorithms?task=det" % pid))["items"]
        self.assertNotIn("backbone", [p["name"] for p in algs[0]["params"]])
        r = self.req("POST", "/api/v1/projects/%d/training-jobs" % pid,
                     {"dataset_version_id": ver["id"], "algorithm": "det-s", "params": {"backbone": "small"}})
        self.assertEqual(r.status, 422, r)
        self.assertIn("no custom classifier named 'small'", r.json()["error"]["message"])
        onnx = small_classifier_onnx(os.path.join(self.tmp, "small.onnx"))
        body, ct = multipart([("small.onnx", onnx)], {"name": "small", "task": "cls"})
        self.ok(self.srv.request("POST", "/api/v1/projects/%d/algorithms" % pid, self.admin, data=body,
                                 content_type=ct), 201)
        algs = self.ok(self.req("GET", "/api/v1/projects/%d/algorithms?task=det" % pid))["items"]
        self.assertEqual([a["name"] for a in algs], ["auto", "det-s", "det-m", "det-s-p2", "det-m-p2"])
        for a in algs:
            ps = {p["name"]: p for p in a["params"]}
            self.assertEqual(ps["backbone"]["choices"], ["small"])
            self.assertEqual(ps["freeze_backbone"]["type"], "boolean")
        # the classifier itself is not a detector
        r = self.req("POST", "/api/v1/projects/%d/training-jobs" % pid,
                     {"dataset_version_id": ver["id"], "algorithm": "small"})
        self.assertEqual(r.status, 422, r)
        r = self.req("POST", "/api/v1/projects/%d/training-jobs" % pid,
                     {"dataset_version_id": ver["id"], "algorithm": "det-s", "params": {"freeze_backbone": True}})
        self.assertEqual(r.status, 422, r)
        self.assertIn("params.freeze_backbone: needs params.backbone", r.json()["error"]["message"])
        job = self.ok(self.req("POST", "/api/v1/projects/%d/training-jobs" % pid,
                               {"dataset_version_id": ver["id"], "algorithm": "det-s",
                                "params": {"backbone": "small", "freeze_backbone": True, "imgsz": 128, "epochs": 2}}),
                      201)
        self.assertEqual(job["params"]["backbone"], "small")
        done = wait_job(self.srv, self.admin, job["id"], timeout=600)
        self.assertEqual(done["status"], "succeeded", (done, self.req("GET", "/api/v1/jobs/%d/logs" % job["id"]).body[-3000:]))
        with open(os.path.join(self.srv.data, done["result"]["model_dir"], "model.json")) as f:
            prov = json.load(f)["provenance"]
        self.assertTrue(prov["backbone"]["frozen"])
        self.assertEqual([(f["stride"], f["channels"]) for f in prov["backbone"]["features"]],
                         [(8, 24), (16, 32), (32, 48)])
        # "none" is the detector's own backbone
        job = self.ok(self.req("POST", "/api/v1/projects/%d/training-jobs" % pid,
                               {"dataset_version_id": ver["id"], "algorithm": "det-s",
                                "params": {"backbone": "none", "imgsz": 64, "epochs": 1}}), 201)
        done = wait_job(self.srv, self.admin, job["id"], timeout=600)
        self.assertEqual(done["status"], "succeeded", done)
        with open(os.path.join(self.srv.data, done["result"]["model_dir"], "model.json")) as f:
            self.assertNotIn("backbone", json.load(f)["provenance"])


if __name__ == "__main__":
    unittest.main()
