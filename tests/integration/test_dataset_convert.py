"""autocv dataset convert / info on generated detection datasets: COCO -> YOLO -> VOC -> COCO
keeps every box and class (checked against the source JSON, and the YOLO and VOC files checked
against the formats' own definitions by Python), split selection, format detection, bad labels
(an error naming the file and line, or skipped and counted with --skip-bad) and usage errors."""
import json
import os
import shutil
import unittest
import xml.etree.ElementTree as ET

from helpers import png_bytes, run, tmpdir

NAMES = {12: "screw", 3: "nut", 7: "bolt washer"}  # non-contiguous ids, listed out of order


def make_coco(root):
    """Two splits of PNGs (varied sizes, one image without annotations each), fractional boxes,
    a crowd region with an RLE segmentation. Returns {split: coco dict}."""
    os.makedirs(os.path.join(root, "annotations"))
    out, aid = {}, 1
    for s, split in enumerate(["train", "val"]):
        d = os.path.join(root, "images", split)
        os.makedirs(d)
        images, anns = [], []
        for i in range(4):
            w, h = 50 + 11 * i + s, 40 + 3 * i
            name = "%s_%d.png" % (split, i)
            with open(os.path.join(d, name), "wb") as f:
                f.write(png_bytes(w, h, bytes((x * 13) & 255 for x in range(w * h * 3))))
            images.append({"id": 100 + 7 * i, "file_name": name, "width": w, "height": h})
            if i == 3:
                continue
            for j in range(i + 1):
                cat = [12, 3, 7][(i + j) % 3]
                bb = [1.5 + 2.25 * j + i, 2.125 + j, 9.375 + j, 6.5 + 1.75 * i]
                a = {"id": aid, "image_id": 100 + 7 * i, "category_id": cat, "bbox": bb, "area": 1.0,
                     "iscrowd": 0, "segmentation": [[bb[0], bb[1], bb[0] + bb[2], bb[1], bb[0], bb[1] + bb[3]]]}
                if i == 1 and j == 1:
                    a["iscrowd"] = 1
                    a["segmentation"] = {"counts": "0a1b", "size": [h, w]}
                anns.append(a)
                aid += 1
        doc = {"images": images, "annotations": anns,
               "categories": [{"id": k, "name": v, "supercategory": "part"} for k, v in NAMES.items()]}
        with open(os.path.join(root, "annotations", "instances_%s.json" % split), "w") as f:
            json.dump(doc, f)
        out[split] = doc
    return out


def boxes_by_file(doc):
    """{file_name: [(category name, x, y, w, h, iscrowd)]} in annotation order, and sizes."""
    cats = {c["id"]: c["name"] for c in doc["categories"]}
    imgs = {im["id"]: im for im in doc["images"]}
    out = {im["file_name"]: [] for im in doc["images"]}
    for a in doc["annotations"]:
        out[imgs[a["image_id"]]["file_name"]].append((cats[a["category_id"]], *a["bbox"], a.get("iscrowd", 0)))
    sizes = {im["file_name"]: (im["width"], im["height"]) for im in doc["images"]}
    return out, sizes


class DatasetConvert(unittest.TestCase):
    def setUp(self):
        self.dir = tmpdir("autocv-it-det-")
        self.src = os.path.join(self.dir, "coco")
        self.docs = make_coco(self.src)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def convert(self, *args, ok=True):
        rc, out, err = run("dataset", "convert", *args, "--json")
        if ok:
            self.assertEqual(rc, 0, err)
            return json.loads(out.strip().splitlines()[-1])
        return rc, out, err

    def test_roundtrip_coco_yolo_voc_coco(self):
        y, v, c = (os.path.join(self.dir, n) for n in ("yolo", "voc", "back"))
        s1 = self.convert("--data", self.src, "--to", "yolo", "--out", y)
        self.assertEqual((s1["from"], s1["images"], s1["boxes"], s1["classes"], s1["skipped"]), ("coco", 8, 12, 3, 0))
        self.assertEqual(s1["splits"]["val"]["images"], 4)
        self.assertEqual(s1["splits"]["train"]["crowd"], 1)
        # YOLO by its own definition: class index in the id-sorted category order, normalized centre and size
        order = [NAMES[k] for k in sorted(NAMES)]
        for split, doc in self.docs.items():
            want, sizes = boxes_by_file(doc)
            for fn, boxes in want.items():
                with open(os.path.join(y, "labels", split, fn[:-4] + ".txt")) as f:
                    lines = [l.split() for l in f.read().splitlines() if l.strip()]
                self.assertEqual(len(lines), len(boxes), fn)
                W, H = sizes[fn]
                for l, (name, x, yy, w, h, _) in zip(lines, boxes):
                    self.assertEqual(order[int(l[0])], name)
                    for got, exp in zip(map(float, l[1:]), ((x + w / 2) / W, (yy + h / 2) / H, w / W, h / H)):
                        self.assertAlmostEqual(got, exp, delta=1e-7)
        s2 = self.convert("--data", y, "--to", "voc", "--out", v)
        self.assertEqual((s2["from"], s2["images"], s2["boxes"]), ("yolo", 8, 12))
        # VOC by its own definition: 1-based inclusive pixel indices
        want, _ = boxes_by_file(self.docs["train"])
        root = ET.parse(os.path.join(v, "Annotations", "train_2.xml")).getroot()
        objs = root.findall("object")
        self.assertEqual(len(objs), 3)
        for o, (name, x, yy, w, h, _) in zip(objs, want["train_2.png"]):
            self.assertEqual(o.find("name").text, name)
            bb = o.find("bndbox")
            self.assertAlmostEqual(float(bb.find("xmin").text), x + 1, delta=1e-4)
            self.assertAlmostEqual(float(bb.find("ymax").text), yy + h, delta=1e-4)
        with open(os.path.join(v, "ImageSets", "Main", "val.txt")) as f:
            self.assertEqual(f.read().split(), ["val_%d" % i for i in range(4)])
        s3 = self.convert("--data", v, "--to", "coco", "--out", c)
        self.assertEqual((s3["from"], s3["images"], s3["boxes"], s3["classes"]), ("voc", 8, 12, 3))
        for split, doc in self.docs.items():
            with open(os.path.join(c, "annotations", "instances_%s.json" % split)) as f:
                back = json.load(f)
            want, sizes = boxes_by_file(doc)
            got, gsizes = boxes_by_file(back)
            self.assertEqual(gsizes, sizes)
            self.assertEqual(sorted(got), sorted(want))
            for fn in want:
                self.assertEqual(len(got[fn]), len(want[fn]), fn)
                for g, e in zip(got[fn], want[fn]):
                    self.assertEqual(g[0], e[0])
                    for a, b in zip(g[1:5], e[1:5]):
                        self.assertAlmostEqual(a, b, delta=1e-3)
                    self.assertEqual(g[5], 0)  # YOLO cannot carry iscrowd
            self.assertEqual([cat["name"] for cat in back["categories"]], order)
            for fn in want:
                self.assertTrue(os.path.isfile(os.path.join(c, "images", split, fn)))

    def test_coco_to_coco_keeps_ids_and_crowd(self):
        out = os.path.join(self.dir, "same")
        self.convert("--from", "coco", "--data", self.src, "--to", "coco", "--out", out)
        with open(os.path.join(out, "annotations", "instances_train.json")) as f:
            back = json.load(f)
        self.assertEqual({c["id"]: c["name"] for c in back["categories"]}, NAMES)
        self.assertEqual(sorted(im["id"] for im in back["images"]), [100, 107, 114, 121])
        self.assertEqual(sum(a["iscrowd"] for a in back["annotations"]), 1)
        want, _ = boxes_by_file(self.docs["train"])
        got, _ = boxes_by_file(back)
        self.assertEqual(got, want)  # exact: the same numbers come back

    def test_split_and_info(self):
        out = os.path.join(self.dir, "val_only")
        s = self.convert("--data", self.src, "--to", "yolo", "--out", out, "--split", "val")
        self.assertEqual((s["images"], s["boxes"]), (4, 6))
        self.assertEqual(sorted(os.listdir(os.path.join(out, "images"))), ["val"])
        rc, o, e = run("dataset", "info", "--data", out, "--json")
        self.assertEqual(rc, 0, e)
        info = json.loads(o)
        self.assertEqual((info["format"], info["images"], info["boxes"], info["classes"]), ("yolo", 4, 6, 3))
        self.assertEqual(info["splits"]["val"]["empty"], 1)
        self.assertEqual([c["name"] for c in info["per_class"]], ["nut", "bolt washer", "screw"])
        rc, o, e = run("dataset", "info", "--data", self.src)
        self.assertEqual(rc, 0, e)
        self.assertIn("coco dataset", o)
        self.assertIn("bolt washer", o)
        rc, o, e = run("dataset", "convert", "--data", self.src, "--to", "voc", "--out",
                       os.path.join(self.dir, "x"), "--split", "test")
        self.assertEqual(rc, 1)
        self.assertIn("no split 'test' (found: train, val)", e)

    def test_bad_labels(self):
        y = os.path.join(self.dir, "yolo")
        self.convert("--data", self.src, "--to", "yolo", "--out", y)
        lab = os.path.join(y, "labels", "train", "train_1.txt")
        with open(lab, "a") as f:
            f.write("7 0.5 0.5 0.1 0.1\n")  # line 3: class 7 of 3
        out = os.path.join(self.dir, "v1")
        rc, o, e = self.convert("--data", y, "--to", "voc", "--out", out, ok=False)
        self.assertEqual(rc, 1)
        self.assertIn("labels/train/train_1.txt:3: class 7 is not one of the 3 classes", e)
        s = self.convert("--data", y, "--to", "voc", "--out", os.path.join(self.dir, "v2"), "--skip-bad")
        self.assertEqual((s["skipped"], s["boxes"]), (1, 12))
        self.assertIn("train_1.txt:3", s["first_skipped"])
        # COCO: a box outside the image, named by annotation id
        doc = self.docs["val"]
        doc["annotations"][0]["bbox"] = [45.0, 1.0, 30.0, 5.0]
        with open(os.path.join(self.src, "annotations", "instances_val.json"), "w") as f:
            json.dump(doc, f)
        rc, o, e = run("dataset", "info", "--data", self.src)
        self.assertEqual(rc, 1)
        self.assertIn("instances_val.json: annotation id %d (annotations[0])" % doc["annotations"][0]["id"], e)
        self.assertIn("outside the 51x40 image", e)
        rc, o, e = run("dataset", "info", "--data", self.src, "--skip-bad", "--json")
        self.assertEqual(rc, 0, e)
        self.assertEqual(json.loads(o)["bad_labels"], 1)

    def test_usage_errors(self):
        rc, o, e = run("dataset", "convert", "--data", self.src, "--out", os.path.join(self.dir, "o"))
        self.assertEqual(rc, 2)
        self.assertIn("--to", e)
        rc, o, e = run("dataset", "convert", "--data", self.src, "--to", "pascal", "--out", os.path.join(self.dir, "o"))
        self.assertEqual(rc, 2)
        self.assertIn("'pascal'", e)
        rc, o, e = run("dataset", "convert", "--data", self.src, "--to", "voc", "--out", self.src)
        self.assertEqual(rc, 2)
        self.assertIn("not empty", e)
        rc, o, e = run("dataset", "frobnicate")
        self.assertEqual(rc, 2)
        rc, o, e = run("dataset", "convert", "--data", self.dir + "/nothing", "--to", "voc", "--out",
                       os.path.join(self.dir, "o"))
        self.assertEqual(rc, 1)
        self.assertIn("no such file", e)
        rc, o, e = run("dataset", "--help")
        self.assertEqual(rc, 0)
        self.assertIn("convert", o)


if __name__ == "__main__":
    unittest.main()
