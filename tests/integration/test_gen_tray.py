"""bench/gen_tray.py, the synthetic parts-on-a-tray detection benchmark: well-formed COCO, boxes
inside their images, every class drawn, varying counts, and the same seed giving the same files
(whatever the number of workers) while another seed gives others."""
import json
import os
import shutil
import subprocess
import unittest

from helpers import ROOT, tmpdir

GEN = os.path.join(ROOT, "bench", "gen_tray.py")
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"
CLASSES = ["bolt", "nut", "washer", "bracket", "spring", "scratch", "dent"]


def gen(out, seed, *extra, train=12, val=4, test=4, imgsz=128):
    p = subprocess.run([PY, GEN, "--out", out, "--train", str(train), "--val", str(val), "--test", str(test),
                        "--imgsz", str(imgsz), "--seed", str(seed)] + list(extra),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, cwd=ROOT)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def load(out, split):
    with open(os.path.join(out, "annotations", "instances_%s.json" % split), "rb") as f:
        raw = f.read()
    return raw, json.loads(raw)


def image_size(path):
    """(width, height) of a JPEG (SOFn marker) or PNG (IHDR) file, with the standard library."""
    with open(path, "rb") as f:
        b = f.read()
    if b[:8] == b"\x89PNG\r\n\x1a\n":
        return int.from_bytes(b[16:20], "big"), int.from_bytes(b[20:24], "big")
    assert b[:2] == b"\xff\xd8", "%s: neither JPEG nor PNG" % path
    i = 2
    while i + 9 < len(b):
        assert b[i] == 0xFF, "%s: bad JPEG marker at %d" % (path, i)
        m, n = b[i + 1], int.from_bytes(b[i + 2:i + 4], "big")
        if m in (0xC0, 0xC1, 0xC2):
            return int.from_bytes(b[i + 7:i + 9], "big"), int.from_bytes(b[i + 5:i + 7], "big")
        i += 2 + n
    raise AssertionError("%s: no JPEG frame header" % path)


class TestGenTray(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tmpdir()
        cls.a = os.path.join(cls.tmp, "a")
        cls.b = os.path.join(cls.tmp, "b")
        cls.c = os.path.join(cls.tmp, "c")
        cls.ra = gen(cls.a, 7)
        cls.rb = gen(cls.b, 7, "--workers", "1")
        cls.rc = gen(cls.c, 8)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_runs_and_summarizes(self):
        for rc, out, err in (self.ra, self.rb, self.rc):
            self.assertEqual(rc, 0, err)
            self.assertIn("train", out)
            self.assertIn("per image", out)

    def test_coco_well_formed(self):
        used = set()
        for split, n in (("train", 12), ("val", 4), ("test", 4)):
            _, coco = load(self.a, split)
            self.assertEqual([c["id"] for c in coco["categories"]], list(range(1, 8)))
            self.assertEqual([c["name"] for c in coco["categories"]], CLASSES)
            self.assertEqual(len(coco["images"]), n)
            imgs = {im["id"]: im for im in coco["images"]}
            self.assertEqual(len(imgs), n, "image ids unique")
            for im in coco["images"]:
                self.assertEqual((im["width"], im["height"]), (128, 128))
                path = os.path.join(self.a, "images", split, im["file_name"])
                self.assertEqual(image_size(path), (128, 128), path)
            ids = [a["id"] for a in coco["annotations"]]
            self.assertEqual(len(ids), len(set(ids)), "annotation ids unique")
            per_image = {i: 0 for i in imgs}
            for a in coco["annotations"]:
                im = imgs[a["image_id"]]
                x, y, w, h = a["bbox"]
                self.assertTrue(all(isinstance(v, float) for v in a["bbox"]), a)
                self.assertGreater(w, 0, a)
                self.assertGreater(h, 0, a)
                self.assertGreaterEqual(x, 0, a)
                self.assertGreaterEqual(y, 0, a)
                self.assertLessEqual(x + w, im["width"], a)
                self.assertLessEqual(y + h, im["height"], a)
                self.assertGreater(a["area"], 0, a)
                self.assertLessEqual(a["area"], w * h, a)     # visible pixels within their own box
                self.assertEqual(a["iscrowd"], 0)
                self.assertIn(a["category_id"], range(1, 8))
                used.add(a["category_id"])
                per_image[a["image_id"]] += 1
            if split == "train":
                self.assertGreater(len(set(per_image.values())), 2, "object counts vary: %s" % per_image)
                self.assertGreaterEqual(min(per_image.values()), 3)
        self.assertEqual(used, set(range(1, 8)), "every category used")

    def test_same_seed_same_files_different_seed_different(self):
        for split in ("train", "val", "test"):
            ra, ca = load(self.a, split)
            rb, _ = load(self.b, split)
            rc, _ = load(self.c, split)
            self.assertEqual(ra, rb, split)          # 2 workers vs 1: byte-identical JSON
            self.assertNotEqual(ra, rc, split)
            for im in ca["images"][:3]:
                with open(os.path.join(self.a, "images", split, im["file_name"]), "rb") as f:
                    pa = f.read()
                with open(os.path.join(self.b, "images", split, im["file_name"]), "rb") as f:
                    pb = f.read()
                self.assertEqual(pa, pb, im["file_name"])

    def test_classes_subset_and_bad_class(self):
        out = os.path.join(self.tmp, "subset")
        rc, _, err = gen(out, 1, "--classes", "washer,nut", "--width", "160", "--height", "96",
                         train=4, val=0, test=0)
        self.assertEqual(rc, 0, err)
        _, coco = load(out, "train")
        self.assertEqual([(c["id"], c["name"]) for c in coco["categories"]], [(1, "washer"), (2, "nut")])
        self.assertTrue(coco["annotations"])
        self.assertTrue(all(a["category_id"] in (1, 2) for a in coco["annotations"]))
        self.assertEqual({(im["width"], im["height"]) for im in coco["images"]}, {(160, 96)})
        _, val = load(out, "val")
        self.assertEqual(val["images"], [])
        rc, _, err = gen(os.path.join(self.tmp, "bad"), 1, "--classes", "bolt,gear", train=1, val=0, test=0)
        self.assertNotEqual(rc, 0)
        self.assertIn("gear", err)


if __name__ == "__main__":
    unittest.main()
