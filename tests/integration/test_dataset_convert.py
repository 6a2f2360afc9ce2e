"""autocv dataset convert / info on generated detection datasets: COCO -> YOLO -> VOC -> COCO
keeps every box and class (checked against the source JSON, and the YOLO and VOC files checked
against the formats' own definitions by Python), split selection, format detection, bad labels
(an error naming the file and line, or skipped and counted with --skip-bad) and usage errors."""
import json
import os
import shutil
import struct
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


def bmp_bytes(w, h):
    """A 24-bit bottom-up BMP of a flat gray image."""
    row = (w * 3 + 3) // 4 * 4
    return (b"BM" + struct.pack("<IHHI", 54 + row * h, 0, 0, 54) +
            struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, row * h, 0, 0, 0, 0) + b"\x80" * (row * h))


def put(root, rel, data):
    """Writes data (str: UTF-8 text as given, no newline translation; bytes) at root/rel."""
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def put_png(root, rel, w=40, h=20):
    put(root, rel, png_bytes(w, h, bytes(w * h * 3)))


class RealWorldExports(unittest.TestCase):
    """Detection datasets laid out as Ultralytics, Roboflow, LabelImg, CVAT and Label Studio
    export them: read through `dataset convert --to coco`, every image, box and class checked."""

    def setUp(self):
        self.dir = tmpdir("autocv-it-rw-")
        self.n = 0

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def read(self, data, *extra, ok=True):
        """Converts data to COCO; returns ({split: classes}, {split: {file_name: [(class, x, y, w, h)]}})
        or, with ok=False, (rc, stderr)."""
        self.n += 1
        out = os.path.join(self.dir, "out%d" % self.n)
        rc, o, e = run("dataset", "convert", "--data", data, "--to", "coco", "--out", out, "--json", *extra)
        if not ok:
            return rc, e
        self.assertEqual(rc, 0, e)
        classes, boxes = {}, {}
        for fn in os.listdir(os.path.join(out, "annotations")):
            split = fn[len("instances_"):-len(".json")]
            with open(os.path.join(out, "annotations", fn)) as f:
                doc = json.load(f)
            cats = {c["id"]: c["name"] for c in doc["categories"]}
            classes[split] = [cats[k] for k in sorted(cats)]
            got, sizes = boxes_by_file(doc)
            boxes[split] = {k: [(b[0], *[round(x, 4) for x in b[1:5]]) for b in v] for k, v in got.items()}
        return classes, boxes

    def test_ultralytics_yaml_and_labels(self):
        d = os.path.join(self.dir, "u")
        # names as a block map with nc, path absolute, train as a list of folders, val as a .txt
        # list ("./" relative to the list, and absolute), test as a block list; CRLF + a BOM
        put(d, "data.yaml", "\ufeff# Ultralytics\r\npath: %s\r\ntrain: [images/train, images/extra]\r\n"
                            "val: lists/val.txt\r\ntest:\r\n  - images/test\r\nnc: 2\r\nnames:\r\n  0: bolt\r\n"
                            "  1: nut\r\ndownload: |\r\n  import os\r\n" % d)
        # trailing spaces, blank lines, CRLF, scientific notation
        put_png(d, "images/train/a.png")
        put(d, "labels/train/a.txt", "1 0.5 0.5 0.5 0.5  \r\n\r\n  \r\n0 5e-1 2.5E-01 2.5e-1 5.0e-01\r\n")
        put_png(d, "images/train/bg.png")  # no label file: a background image
        put_png(d, "images/train/empty.png")
        put(d, "labels/train/empty.txt", "")
        # a segment label (Ultralytics' -seg export): 40 points -> its bounding box
        put_png(d, "images/train/seg.png")
        pts = " ".join("%.3f %.3f" % (0.25 + 0.5 * (i % 2), 0.1 + 0.8 * (i // 20)) for i in range(40))
        put(d, "labels/train/seg.txt", "1 %s\n0 0.1 0.1 0.3 0.1 0.2 0.4\n" % pts)
        # extensions in any case, .jpeg, .bmp
        for name in ("UP.JPG", "UP2.PNG", "x.jpeg", "Mixed.Jpg"):
            put_png(d, "images/extra/" + name)
            put(d, "labels/extra/%s.txt" % name.rsplit(".", 1)[0], "0 0.5 0.5 0.5 0.5\n")
        put(d, "images/extra/b.bmp", bmp_bytes(40, 20))
        put(d, "labels/extra/b.txt", "1 0.25 0.5 0.5 1\n")
        put_png(d, "lists/images/v1.png")
        put(d, "lists/labels/v1.txt", "1 0.5 0.5 0.1 0.1\n")
        put_png(d, "images/val/v2.png")
        put(d, "labels/val/v2.txt", "0 0.5 0.5 0.1 0.1\n")
        put(d, "lists/val.txt", "./images/v1.png\r\n%s/images/val/v2.png\r\n" % d)
        put_png(d, "images/test/t.png")
        classes, boxes = self.read(d)
        self.assertEqual(classes, {s: ["bolt", "nut"] for s in ("train", "val", "test")})
        self.assertEqual(boxes["train"], {
            "a.png": [("nut", 10, 5, 20, 10), ("bolt", 15, 0, 10, 10)], "bg.png": [], "empty.png": [],
            "seg.png": [("nut", 10, 2, 20, 16), ("bolt", 4, 2, 8, 6)],
            "UP.JPG": [("bolt", 10, 5, 20, 10)], "UP2.PNG": [("bolt", 10, 5, 20, 10)],
            "x.jpeg": [("bolt", 10, 5, 20, 10)], "Mixed.Jpg": [("bolt", 10, 5, 20, 10)],
            "b.bmp": [("nut", 0, 0, 20, 20)]})
        self.assertEqual(boxes["val"], {"v1.png": [("nut", 18, 9, 4, 2)], "v2.png": [("bolt", 18, 9, 4, 2)]})
        self.assertEqual(boxes["test"], {"t.png": []})

    def test_ultralytics_relative_path_and_flow_map(self):
        d = os.path.join(self.dir, "r")
        put(d, "cfg/data.yaml", "path: ../ds  # relative to this file\ntrain: images/train\nval: images/train\n"
                                "names: {0: bolt, 1: 'nut'}\n")
        put_png(d, "ds/images/train/a.png")
        put(d, "ds/labels/train/a.txt", "1 0.5 0.5 0.5 0.5\n")
        classes, boxes = self.read(os.path.join(d, "cfg", "data.yaml"))
        self.assertEqual(classes["train"], ["bolt", "nut"])
        self.assertEqual(boxes["train"], {"a.png": [("nut", 10, 5, 20, 10)]})

    def test_ultralytics_refusals(self):
        d = os.path.join(self.dir, "bad")
        put_png(d, "images/train/a.png")
        put(d, "data.yaml", "train: images/train\nval: images/val\nnames: [bolt]\n")
        rc, e = self.read(d, ok=False)
        self.assertEqual(rc, 1)
        self.assertIn("data.yaml:2: val: 'images/val' not found", e)
        put(d, "data.yaml", "train: images/train\nnc: 3\nnames: [bolt, nut]\n")
        rc, e = self.read(d, ok=False)
        self.assertIn("data.yaml:2: nc is 3 but names lists 2 classes", e)
        put(d, "data.yaml", "train: images/train\nnames: [bolt]\n")
        put(d, "images/train/b.webp", b"RIFF\x00\x00\x00\x00WEBPVP8 ")
        rc, e = self.read(d, ok=False)
        self.assertEqual(rc, 1)
        self.assertIn("images/train/b.webp: not a JPEG, PNG or BMP image but a WebP image (convert it", e)
        classes, boxes = self.read(d, "--skip-bad")
        self.assertEqual(boxes["train"], {"a.png": []})
        put(d, "labels/train/a.txt", "0 0.1 0.1 0.2 0.2 0.3\n")  # 6 fields: neither a box nor a polygon
        rc, e = self.read(d, "--skip-bad", ok=False)
        self.assertEqual(rc, 0)
        os.remove(os.path.join(d, "images/train/b.webp"))
        rc, e = self.read(d, ok=False)
        self.assertIn("labels/train/a.txt:1: malformed line (6 fields", e)

    def test_roboflow_yolo(self):
        d = os.path.join(self.dir, "rf")
        put(d, "data.yaml", "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\nnc: 2\n"
                            "names: ['bolt', 'nut']\n\nroboflow:\n  workspace: w\n  project: p\n  version: 3\n"
                            "  license: CC BY 4.0\n  url: https://universe.roboflow.com/w/p/3\n")
        for split in ("train", "valid"):
            put_png(d, "%s/images/%s_a.jpg" % (split, split))
            put(d, "%s/labels/%s_a.txt" % (split, split), "1 0.5 0.5 0.5 0.5\n")
        # no test/ folder (Roboflow names one in any case): every split read is train and valid
        classes, boxes = self.read(d)
        self.assertEqual(sorted(boxes), ["train", "val"])
        self.assertEqual(boxes["val"], {"valid_a.jpg": [("nut", 10, 5, 20, 10)]})
        rc, e = self.read(d, "--split", "test", ok=False)
        self.assertEqual(rc, 1)
        self.assertIn("data.yaml:3: test: '../test/images' not found", e)
        put_png(d, "test/images/test_a.jpg")
        classes, boxes = self.read(d, "--split", "test")
        self.assertEqual(boxes, {"test": {"test_a.jpg": []}})

    VOC = """<?xml version="1.0" encoding="ISO-8859-1"?>
<!-- written by LabelImg / CVAT -->
<annotation verified="yes">
  <folder>JPEGImages</folder>
  <filename>%s</filename>
  <path>C:\\Users\\me\\%s</path>
  <source><database>Unknown</database></source>
  %s
  <segmented>0</segmented>
  <object id="1">
    <name><![CDATA[bolt]]></name>
    <pose>Unspecified</pose>
    <truncated>1</truncated>
    <occluded>0</occluded>
    <difficult>0</difficult>
    <bndbox><xmin>12.5</xmin><ymin>3</ymin><xmax>30.25</xmax><ymax>18</ymax></bndbox>
    <part><name>head</name><bndbox><xmin>13</xmin><ymin>4</ymin><xmax>15</xmax><ymax>6</ymax></bndbox></part>
  </object>
  <object>
    <name> caf\xe9 </name>
    <difficult>1</difficult>
    <bndbox>
      <xmin>1</xmin> <ymin>1</ymin> <xmax>40</xmax> <ymax>20</ymax>
    </bndbox>
  </object>
</annotation>
"""

    def test_voc_labelimg_cvat(self):
        d = os.path.join(self.dir, "voc")
        size = "<size><width>40</width><height>20</height><depth>3</depth></size>"
        files = {"a": ("a.png", size), "b": ("b.jpg", "<size><width>0</width><height>0</height></size>"),
                 "c": ("photo_c.png", ""), "e": ("e", "")}
        put_png(d, "JPEGImages/a.png")
        put_png(d, "JPEGImages/b.PNG")  # <filename> says .jpg
        put_png(d, "JPEGImages/photo_c.png")  # not the xml's name
        put_png(d, "JPEGImages/e.png")  # <filename> without an extension
        for stem, (fn, sz) in files.items():
            put(d, "Annotations/%s.xml" % stem, (self.VOC % (fn, fn, sz)).encode("latin-1"))
        put(d, "ImageSets/Main/train.txt", "a\nb\n")
        put(d, "ImageSets/Main/val.txt", "c\ne\n")
        put(d, "ImageSets/Main/bolt_train.txt", "a  1\nb -1\n")  # per-class lists: not splits
        classes, boxes = self.read(d)
        self.assertEqual(classes, {"train": ["bolt", "café"], "val": ["bolt", "café"]})
        # 1-based inclusive pixel indices: x1 = xmin - 1, x2 = xmax; parts are no objects
        want = [("bolt", 11.5, 2, 18.75, 16), ("café", 0, 0, 40, 20)]
        self.assertEqual(boxes["train"], {"a.png": want, "b.PNG": want})
        self.assertEqual(boxes["val"], {"photo_c.png": want, "e.png": want})
        # CVAT's subset list (ImageSets/Main/default.txt) and an unsplit set answer to train
        shutil.rmtree(os.path.join(d, "ImageSets"))
        put(d, "ImageSets/Main/default.txt", "a\nb\nc\ne\n")
        rc, o, e = run("dataset", "info", "--data", d, "--split", "train", "--json")
        self.assertEqual(rc, 0, e)
        self.assertEqual((json.loads(o)["images"], json.loads(o)["boxes"]), (4, 8))

    @staticmethod
    def coco_doc():
        return {"info": {"description": "export"}, "licenses": [{"id": 1, "name": "CC BY 4.0"}],
                "categories": [{"id": 0, "name": "hardware", "supercategory": "none"},
                               {"id": 1, "name": "bolt", "supercategory": "hardware"},
                               {"id": 5, "name": "nut", "supercategory": "hardware"}],
                "images": [{"id": 0, "file_name": "sub/dir/a.png", "width": 40, "height": 20},
                           {"id": 1, "file_name": "b.png"}],  # no size: read from the file
                "annotations": [
                    {"id": 1, "image_id": 0, "category_id": 1, "bbox": [1.5, 2.25, 10.5, 5.0],
                     "segmentation": [[1.5, 2.25, 12, 2.25, 12, 7.25]]},  # no area, no iscrowd
                    {"id": 2, "image_id": 1, "category_id": 5, "bbox": [0, 0, 5, 5], "iscrowd": 1, "area": 25,
                     "segmentation": {"counts": [0, 5, 35], "size": [20, 40]}}]}

    def test_coco_roboflow(self):
        d = os.path.join(self.dir, "rfc")
        for split in ("train", "valid", "test"):
            put(d, "%s/_annotations.coco.json" % split, json.dumps(self.coco_doc()))
            put_png(d, "%s/sub/dir/a.png" % split)
            put_png(d, "%s/b.png" % split)
        classes, boxes = self.read(d)
        # Roboflow's dataset-level category (id 0, supercategory "none") is no class
        self.assertEqual(classes, {s: ["bolt", "nut"] for s in ("train", "valid", "test")})
        self.assertEqual(boxes["valid"], {"sub/dir/a.png": [("bolt", 1.5, 2.25, 10.5, 5)],
                                          "b.png": [("nut", 0, 0, 5, 5)]})
        # a box that uses it: refused, naming the annotation
        doc = self.coco_doc()
        doc["annotations"][1]["category_id"] = 0
        put(d, "test/_annotations.coco.json", json.dumps(doc))
        rc, e = self.read(d, ok=False)
        self.assertEqual(rc, 1)
        self.assertIn("test/_annotations.coco.json: annotation id 2 (annotations[1]): category_id 0 ('hardware') "
                      "is the supercategory of the other categories", e)

    def test_coco_label_studio_and_cvat(self):
        # Label Studio: result.json and images/ (file names with a Windows separator too)
        ls = os.path.join(self.dir, "ls")
        doc = self.coco_doc()
        doc["images"][0]["file_name"] = "images\\a.png"
        doc["images"][1]["file_name"] = "images/b.png"
        put(ls, "result.json", json.dumps(doc))
        put_png(ls, "images/a.png")
        put_png(ls, "images/b.png")
        classes, boxes = self.read(ls)
        self.assertEqual(boxes["train"], {"images/a.png": [("bolt", 1.5, 2.25, 10.5, 5)],
                                          "images/b.png": [("nut", 0, 0, 5, 5)]})
        # CVAT: annotations/instances_default.json, images/ ("default" answers to train)
        cv = os.path.join(self.dir, "cvat")
        doc = self.coco_doc()
        doc["categories"] = [{"id": 1, "name": "bolt", "supercategory": ""}, {"id": 2, "name": "nut", "supercategory": ""}]
        doc["annotations"][1]["category_id"] = 2
        put(cv, "annotations/instances_default.json", json.dumps(doc))
        put_png(cv, "images/sub/dir/a.png")
        put_png(cv, "images/b.png")
        classes, boxes = self.read(cv, "--split", "train")
        self.assertEqual(boxes["train"], {"sub/dir/a.png": [("bolt", 1.5, 2.25, 10.5, 5)], "b.png": [("nut", 0, 0, 5, 5)]})
        # an image missing on disk, an annotation of an unknown image: errors naming them
        os.remove(os.path.join(cv, "images/sub/dir/a.png"))
        rc, e = self.read(cv, ok=False)
        self.assertIn("instances_default.json: image id 0 (images[0]): image file 'sub/dir/a.png' not found", e)
        put_png(cv, "images/sub/dir/a.png")
        doc["annotations"][1]["image_id"] = 9
        put(cv, "annotations/instances_default.json", json.dumps(doc))
        rc, e = self.read(cv, ok=False)
        self.assertIn("instances_default.json: annotation id 2 (annotations[1]): image_id 9 is not an image", e)


if __name__ == "__main__":
    unittest.main()
