"""Detection from the command line (issue 6): train --task det on a small generated COCO set,
the JSON events, eval --json keys, predict --json (boxes in original pixels, counts) and
--save-vis, resume, export to ONNX, and bad label files."""
import json
import os
import random
import shutil
import subprocess
import unittest

from helpers import AUTOCV, png_bytes

PY = "/usr/bin/python3"
CLASSES = ["square", "bar"]


def draw(w, h, objs, rng):
    """Gray noisy background with solid objects: (cls, x1, y1, x2, y2) -> RGB bytes."""
    px = bytearray(w * h * 3)
    for i in range(w * h):
        v = 90 + rng.randrange(20)
        px[3 * i:3 * i + 3] = bytes((v, v, v))
    for c, x1, y1, x2, y2 in objs:
        col = (230, 40, 40) if c == 0 else (40, 60, 230)
        for y in range(y1, y2):
            for x in range(x1, x2):
                px[3 * (y * w + x):3 * (y * w + x) + 3] = bytes(col)
    return bytes(px)


def make_coco(root, n, seed, w=128, h=96, split="train"):
    """n images of 1-4 non-overlapping objects: squares (class 0) and wide bars (class 1)."""
    rng = random.Random(seed)
    os.makedirs(os.path.join(root, "images", split), exist_ok=True)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    images, anns = [], []
    for i in range(n):
        objs = []
        for _ in range(rng.randint(1, 4)):
            for _try in range(50):
                c = rng.randrange(2)
                bw, bh = (rng.randint(14, 24),) * 2 if c == 0 else (rng.randint(30, 44), rng.randint(8, 12))
                x1, y1 = rng.randint(0, w - bw), rng.randint(0, h - bh)
                box = (c, x1, y1, x1 + bw, y1 + bh)
                if all(box[3] + 2 < o[1] or o[3] + 2 < box[1] or box[4] + 2 < o[2] or o[4] + 2 < box[2] for o in objs):
                    objs.append(box)
                    break
        name = "%s_%03d.png" % (split, i)
        with open(os.path.join(root, "images", split, name), "wb") as f:
            f.write(png_bytes(w, h, draw(w, h, objs, rng)))
        images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
        for c, x1, y1, x2, y2 in objs:
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": [3, 7][c],  # non-contiguous ids
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    cats = [{"id": 3, "name": CLASSES[0]}, {"id": 7, "name": CLASSES[1]}]
    with open(os.path.join(root, "annotations", "instances_%s.json" % split), "w") as f:
        json.dump({"images": images, "annotations": anns, "categories": cats}, f)
    return images, anns


def run(*args, timeout=900):
    return subprocess.run([AUTOCV] + list(args), capture_output=True, text=True, timeout=timeout)


class TestCliDet(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.tmp = tempfile.mkdtemp(prefix="autocv-det-")
        cls.data = os.path.join(cls.tmp, "data")
        make_coco(cls.data, 24, 1, split="train")
        make_coco(cls.data, 8, 2, split="val")
        cls.model = os.path.join(cls.tmp, "model")
        r = run("train", "--task", "det", "--data", cls.data, "--out", cls.model, "--imgsz", "128", "--epochs", "40",
                "--batch", "8", "--model", "det-s", "--close-mosaic", "10", "--lr", "0.004", "--warmup", "2",
                "--val-every", "10", "--json")
        cls.train = r
        cls.events = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_train_events_and_model(self):
        self.assertEqual(self.train.returncode, 0, self.train.stderr[-2000:])
        kinds = [e["event"] for e in self.events]
        self.assertEqual(kinds[0], "start")
        self.assertEqual(kinds[-1], "done")
        epochs = [e for e in self.events if e["event"] == "epoch"]
        self.assertEqual(len(epochs), 40)
        self.assertTrue(all(e["train_loss"] > 0 for e in epochs))
        self.assertLess(epochs[-1]["train_loss"], epochs[0]["train_loss"])
        self.assertIn("val_map50", epochs[9])
        # the watched validation images (the training board draws them): the same ones each
        # validated epoch, their boxes at the count thresholds inside the image, and by the end
        # the model finds about as many as are marked
        watched = [e["samples"] for e in epochs if "samples" in e]
        self.assertTrue(watched)
        for s in watched:
            self.assertEqual([x["path"] for x in s], [x["path"] for x in watched[0]])
            for x in s:
                for b in x["boxes"]:
                    self.assertIn(b["label"], CLASSES)
                    self.assertGreaterEqual(b["score"], 0.05)  # the lowest count threshold
                    self.assertTrue(0 <= b["box"][0] < b["box"][2] <= x["width"] and
                                    0 <= b["box"][1] < b["box"][3] <= x["height"], b)
        last = watched[-1]
        self.assertLessEqual(abs(sum(len(x["boxes"]) for x in last) - sum(x["gt"] for x in last)),
                             max(2, sum(x["gt"] for x in last) // 3), last)
        with open(os.path.join(self.model, "model.json")) as f:
            mj = json.load(f)
        self.assertEqual((mj["task"], mj["classes"]), ("det", CLASSES))
        self.assertEqual(mj["provenance"]["config"]["class_balance"], 10)  # the loss's class balance, on
        self.assertTrue(os.path.exists(os.path.join(self.model, "checkpoint.safetensors")))
        # the count thresholds chosen on the val split: one per class, on the 0.05..0.95 grid,
        # in model.json and in metrics.json with the counting figures they give
        thr = mj["postprocess"]["score_thresholds"]
        self.assertEqual(len(thr), len(CLASSES))
        for t in thr:
            self.assertTrue(0.05 - 1e-6 <= t <= 0.95 + 1e-6, thr)
            self.assertAlmostEqual(t * 100, round(t * 100), places=3)
        with open(os.path.join(self.model, "metrics.json")) as f:
            met = json.load(f)
        self.assertIsNone(met["count_threshold"])
        self.assertEqual(met["count_thresholds"], thr)
        self.assertEqual(len(met["count_mae_per_class"]), len(CLASSES))

    def test_eval_learns_and_json_keys(self):
        r = run("eval", "--model", self.model, "--data", self.data, "--split", "val", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        m = json.loads(r.stdout.strip().splitlines()[-1])
        for k in ("map50", "map50_95", "map75", "per_class", "count_mae", "count_exact"):
            self.assertIn(k, m)
        self.assertEqual([p["name"] for p in m["per_class"]], CLASSES)
        self.assertEqual(m["images"], 8)
        # solid shapes on a plain background: a detector that learned anything finds them
        self.assertGreater(m["map50"], 0.5, m)
        # counting at the model's own thresholds: the figures training reported for this split
        with open(os.path.join(self.model, "model.json")) as f:
            thr = json.load(f)["postprocess"]["score_thresholds"]
        with open(os.path.join(self.model, "metrics.json")) as f:
            met = json.load(f)
        self.assertIsNone(m["count_threshold"])
        self.assertEqual(m["count_thresholds"], thr)
        self.assertLessEqual(abs(m["count_exact"] - met["count_exact"]), 1 / 8 + 1e-9, (m["count_exact"], met))
        # one threshold for every class when asked
        r = run("eval", "--model", self.model, "--data", self.data, "--split", "val", "--json", "--count-threshold", "0.5")
        self.assertEqual(r.returncode, 0, r.stderr)
        m5 = json.loads(r.stdout.strip().splitlines()[-1])
        self.assertEqual(m5["count_threshold"], 0.5)
        self.assertNotIn("count_thresholds", m5)
        self.assertEqual(m5["map50_95"], m["map50_95"])

    def test_eval_matches_classes_by_name(self):
        # the same val images with the category ids swapped ("bar" is now the dataset's first
        # class): matched to the model's classes by name, the figures are the same
        r = run("eval", "--model", self.model, "--data", self.data, "--split", "val", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        want = json.loads(r.stdout.strip().splitlines()[-1])
        swapped = os.path.join(self.tmp, "swapped")
        shutil.copytree(os.path.join(self.data, "images", "val"), os.path.join(swapped, "images", "val"))
        os.makedirs(os.path.join(swapped, "annotations"))
        with open(os.path.join(self.data, "annotations", "instances_val.json")) as f:
            coco = json.load(f)
        for a in coco["annotations"]:
            a["category_id"] = {3: 7, 7: 3}[a["category_id"]]
        coco["categories"] = [{"id": 3, "name": CLASSES[1]}, {"id": 7, "name": CLASSES[0]}]
        with open(os.path.join(swapped, "annotations", "instances_val.json"), "w") as f:
            json.dump(coco, f)
        r = run("eval", "--model", self.model, "--data", swapped, "--split", "val", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        got = json.loads(r.stdout.strip().splitlines()[-1])
        self.assertEqual([p["name"] for p in got["per_class"]], CLASSES)
        for k in ("map50", "map50_95", "count_exact", "count_mae"):
            self.assertAlmostEqual(got[k], want[k], places=9, msg=k)
        # a class the model does not know: refused, naming it
        coco["categories"][0]["name"] = "washer"
        with open(os.path.join(swapped, "annotations", "instances_val.json"), "w") as f:
            json.dump(coco, f)
        r = run("eval", "--model", self.model, "--data", swapped, "--split", "val", "--json")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("'washer' is not one of the model's 2 classes", r.stderr)

    def test_eval_on_exported_layouts(self):
        # the val images as CVAT exports COCO (annotations/instances_default.json + images/: its
        # "default" subset answers to train) and as Roboflow exports YOLO (data.yaml at the top
        # naming ../valid/images and a test split it does not have): the same figures
        r = run("eval", "--model", self.model, "--data", self.data, "--split", "val", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        want = json.loads(r.stdout.strip().splitlines()[-1])
        cvat = os.path.join(self.tmp, "cvat")
        shutil.copytree(os.path.join(self.data, "images", "val"), os.path.join(cvat, "images"))
        os.makedirs(os.path.join(cvat, "annotations"))
        shutil.copy(os.path.join(self.data, "annotations", "instances_val.json"),
                    os.path.join(cvat, "annotations", "instances_default.json"))
        yolo = os.path.join(self.tmp, "yolo_val")
        r = run("dataset", "convert", "--data", self.data, "--split", "val", "--to", "yolo", "--out", yolo)
        self.assertEqual(r.returncode, 0, r.stderr)
        rf = os.path.join(self.tmp, "roboflow")
        for kind in ("images", "labels"):
            shutil.copytree(os.path.join(yolo, kind, "val"), os.path.join(rf, "valid", kind))
        shutil.copytree(os.path.join(rf, "valid"), os.path.join(rf, "train"))
        with open(os.path.join(rf, "data.yaml"), "w") as f:
            f.write("train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\nnc: 2\n"
                    "names: ['%s', '%s']\n\nroboflow:\n  workspace: w\n  version: 1\n" % tuple(CLASSES))
        for data, split in ((cvat, "train"), (rf, "val")):
            r = run("eval", "--model", self.model, "--data", data, "--split", split, "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            got = json.loads(r.stdout.strip().splitlines()[-1])
            self.assertEqual(got["images"], 8)
            for k in ("map50", "map50_95"):
                self.assertAlmostEqual(got[k], want[k], places=4, msg=(data, k))

    def test_predict_json_and_vis(self):
        img = os.path.join(self.data, "images", "val", "val_000.png")
        vis = os.path.join(self.tmp, "vis")
        r = run("predict", "--model", self.model, "--json", "--conf", "0.3", "--save-vis", vis, img)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout.strip())
        self.assertEqual(out["image"], img)
        self.assertEqual(set(out["counts"]), set(CLASSES))
        self.assertEqual(sum(out["counts"].values()), len(out["detections"]))
        for d in out["detections"]:
            x1, y1, x2, y2 = d["box"]
            self.assertTrue(0 <= x1 < x2 <= 128 and 0 <= y1 < y2 <= 96, d)  # original pixels (128x96)
            self.assertGreaterEqual(d["score"], 0.3)
        self.assertTrue(os.path.getsize(os.path.join(vis, "val_000.jpg")) > 1000)
        # without --conf, each class from the model's own count threshold
        with open(os.path.join(self.model, "model.json")) as f:
            thr = dict(zip(CLASSES, json.load(f)["postprocess"]["score_thresholds"]))
        r = run("predict", "--model", self.model, "--json", img)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout.strip())
        self.assertEqual(sum(out["counts"].values()), len(out["detections"]))
        for d in out["detections"]:
            self.assertGreaterEqual(d["score"], thr[d["label"]] - 1e-5, (d, thr))

    def test_resume_finishes(self):
        out = os.path.join(self.tmp, "resume")
        r = run("train", "--task", "det", "--data", self.data, "--out", out, "--imgsz", "64", "--epochs", "2",
                "--batch", "8", "--json")
        self.assertEqual(r.returncode, 0, r.stderr[-1000:])
        # the checkpoint says 2 of 2 epochs: resuming has nothing left to do and keeps the model
        r = run("train", "--task", "det", "--data", self.data, "--out", out, "--resume", "--json")
        self.assertEqual(r.returncode, 0, r.stderr[-1000:])
        self.assertFalse([l for l in r.stdout.splitlines() if '"event":"epoch"' in l])

    def test_bad_labels(self):
        bad = os.path.join(self.tmp, "bad")
        make_coco(bad, 4, 3, split="train")
        p = os.path.join(bad, "annotations", "instances_train.json")
        with open(p) as f:
            j = json.load(f)
        j["annotations"][1]["bbox"] = [120, 10, 30, 10]  # outside the 128 px wide image
        with open(p, "w") as f:
            json.dump(j, f)
        r = run("train", "--task", "det", "--data", bad, "--out", os.path.join(self.tmp, "bad_out"), "--imgsz", "64",
                "--epochs", "1")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("instances_train.json", r.stderr)
        r = run("train", "--task", "det", "--data", bad, "--out", os.path.join(self.tmp, "bad_out"), "--imgsz", "64",
                "--epochs", "1", "--skip-bad", "--json")
        self.assertEqual(r.returncode, 0, r.stderr[-1000:])
        self.assertIn("skipped 1 bad label", r.stdout)
        r = run("train", "--task", "det", "--data", self.data, "--out", os.path.join(self.tmp, "x"), "--imgsz", "100")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("multiple of 32", r.stderr)
        r = run("train", "--task", "det", "--data", self.data, "--out", os.path.join(self.tmp, "x"), "--imgsz", "64",
                "--class-balance", "5000")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--class-balance 5000 is not in [0, 1000]", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "x")))


if __name__ == "__main__":
    unittest.main()
