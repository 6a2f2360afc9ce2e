"""Collaborative annotation, review and dataset versions over real HTTP (issue 3): the whole
flow (users of each role, labels, uploads, sets split into tasks, annotators saving tags,
boxes, polygons, masks in both COCO encodings and text lines, submission, a rejection the
annotator sees, acceptance, progress, versions, exports in every format, and the
ImageFolder export trained with build/autocv); two annotators on one image (stale save 409,
the first's work intact); locks and their expiry; bad input that stores nothing; version
immutability; the pool of tasks; and the role x route matrix of these routes."""
import io
import json
import os
import random
import shutil
import tempfile
import time
import unittest
import xml.etree.ElementTree as ET
import zipfile

import routes_annotations
from helpers import run, shape_image
from routes_images import random_png, upload
from server import Server

PASSWORD = "user-password-123"
# name -> (global roles, project role)
USERS = {
    "eng": (["engineer"], "engineer"),
    "ann1": (["annotator"], "annotator"),
    "ann2": (["annotator"], "annotator"),
    "rev": (["reviewer"], "reviewer"),
    "ope": (["operator"], "operator"),
    "vie": (["viewer"], "viewer"),
    "own": (["viewer"], "owner"),
}
LABELS = ["scratch", "dent", "rust", "serial", "bar_h", "bar_v"]
W, H = 64, 48  # the detection images


def rle_runs(mask, h, w):
    """Column-major COCO runs of a set of (x, y) pixels."""
    runs, cur, n = [], 0, 0
    for x in range(w):
        for y in range(h):
            v = 1 if (x, y) in mask else 0
            if v != cur:
                runs.append(n)
                n, cur = 0, v
            n += 1
    runs.append(n)
    return runs


def rle_string(runs):
    """pycocotools' rleToString."""
    out = []
    for i, x in enumerate(runs):
        if i > 2:
            x -= runs[i - 2]
        more = True
        while more:
            c = x & 0x1f
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


class TestAnnotations(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server().start()
        cls.tmp = tempfile.mkdtemp(prefix="autocv-ann-")
        cls.admin = cls.srv.admin_token()
        cls.tokens, cls.ids = {"admin": cls.admin}, {}
        for name, (roles, _) in list(USERS.items()) + [("outsider", (["engineer"], None))]:
            r = cls.srv.request("POST", "/api/v1/users", cls.admin, {"username": name, "password": PASSWORD,
                                                                     "roles": roles})
            assert r.status == 201, r
            cls.ids[name] = r.json()["id"]
            cls.tokens[name] = cls.srv.login(name, PASSWORD)
        r = cls.srv.request("POST", "/api/v1/projects", cls.admin, {"name": "annotation flow"})
        assert r.status == 201, r
        cls.project = r.json()["id"]
        for name, (_, prole) in USERS.items():
            r = cls.srv.request("PUT", "/api/v1/projects/%d/members/%d" % (cls.project, cls.ids[name]), cls.admin,
                                {"role": prole})
            assert r.status == 201, r
        labels = [{"name": n} for n in LABELS]
        labels[0]["aliases"] = ["kratzer"]
        r = cls.srv.request("POST", "/api/v1/projects/%d/labels" % cls.project, cls.admin, {"labels": labels})
        assert r.status == 201, r
        cls.det_images = cls.upload_all([("part_%02d.png" % i, random_png(W, H, seed=1000 + i)) for i in range(16)])
        rng = random.Random(5)
        files, cls.cls_truth = [], {}
        for i in range(24):
            c = i % 2
            files.append(("shape %02d.png" % i, shape_image(c, rng)))
        ids = cls.upload_all(files)
        for i, iid in enumerate(ids):
            cls.cls_truth[iid] = ["bar_h", "bar_v"][i % 2]
        cls.cls_images = ids

    @classmethod
    def tearDownClass(cls):
        cls.srv.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def upload_all(cls, files):
        ids = []
        for i in range(0, len(files), 8):
            r = upload(cls.srv, cls.admin, cls.project, files[i:i + 8])
            assert r.status in (200, 201), r
            ids += [im["id"] for im in r.json()["images"]]
        assert len(set(ids)) == len(files), ids
        return ids

    # ---- helpers ------------------------------------------------------------------------------
    def req(self, method, path, who="admin", body=None, **kw):
        return self.srv.request(method, path, self.tokens[who], json_body=body, **kw)

    def ok(self, r, status=200):
        self.assertEqual(r.status, status, r)
        return r.json()

    def new_set(self, name, task, image_ids, **extra):
        body = dict({"name": name, "task": task, "image_ids": image_ids}, **extra)
        return self.ok(self.req("POST", "/api/v1/projects/%d/annotation-sets" % self.project, "eng", body), 201)

    def item(self, sid, iid):
        return "/api/v1/annotation-sets/%d/items/%d" % (sid, iid)

    def save(self, sid, iid, who, doc, status=200):
        cur = self.ok(self.req("GET", self.item(sid, iid), who))
        body = dict(doc, revision=cur["revision"])
        return self.ok(self.req("PUT", self.item(sid, iid), who, body), status)

    def annotate_submit_accept(self, sid, docs, who="ann1"):
        for iid, doc in docs.items():
            self.save(sid, iid, who, doc)
            self.assertEqual(self.ok(self.req("POST", self.item(sid, iid) + "/submit", who))["status"], "submitted")
            r = self.ok(self.req("POST", self.item(sid, iid) + "/review", "rev", {"decision": "accept"}))
            self.assertEqual(r["status"], "accepted")

    def export(self, vid, fmt, status=200):
        r = self.req("GET", "/api/v1/dataset-versions/%d/export?format=%s" % (vid, fmt))
        self.assertEqual(r.status, status, r)
        if status != 200:
            return r
        self.assertEqual(r.headers["content-type"], "application/zip")
        self.assertEqual(r.headers.get("transfer-encoding"), "chunked")  # streamed, not sized up front
        self.assertIn("attachment", r.headers["content-disposition"])
        z = zipfile.ZipFile(io.BytesIO(r.body))
        self.assertIsNone(z.testzip())
        return z

    # ---- the whole flow: classification ------------------------------------------------------------
    def test_cls_flow_review_version_export_train(self):
        s = self.new_set("cls flow", "cls", self.cls_images)
        sid = s["id"]
        self.assertEqual((s["total"], s["counts"]["new"], s["task"]), (24, 24, "cls"))
        r = self.ok(self.req("POST", "/api/v1/annotation-sets/%d/tasks" % sid, "eng",
                             {"size": 6, "assignees": [self.ids["ann1"], self.ids["ann2"]]}), 201)
        self.assertEqual(r["created"], 4)
        self.assertEqual([t["assignee"] for t in r["items"]], ["ann1", "ann2", "ann1", "ann2"])
        self.assertEqual([t["total"] for t in r["items"]], [6, 6, 6, 6])
        # Each annotator works through their own tasks.
        for who in ("ann1", "ann2"):
            mine = self.ok(self.req("GET", "/api/v1/annotation-sets/%d/tasks?assignee_id=me" % sid, who))
            self.assertEqual(mine["total"], 2)
            items = self.ok(self.req("GET", "/api/v1/annotation-sets/%d/items?assignee_id=me&limit=100" % sid, who))
            self.assertEqual(items["total"], 12)
            for it in items["items"]:
                g = self.ok(self.req("GET", self.item(sid, it["image_id"]), who))
                self.assertEqual(g["locker"], who)  # opening takes the lock
                saved = self.ok(self.req("PUT", self.item(sid, it["image_id"]), who,
                                         {"revision": g["revision"], "tags": [self.cls_truth[it["image_id"]]]}))
                self.assertEqual((saved["revision"], saved["status"]), (1, "in_progress"))
                sub = self.ok(self.req("POST", self.item(sid, it["image_id"]) + "/submit", who))
                self.assertEqual((sub["status"], sub["locked_by"]), ("submitted", None))
        # An annotator cannot touch an image of someone else's task.
        theirs = self.ok(self.req("GET", "/api/v1/annotation-sets/%d/items?assignee_id=%d" % (sid, self.ids["ann1"]),
                                  "ann2"))["items"][0]["image_id"]
        r = self.req("PUT", self.item(sid, theirs), "ann2", {"revision": 1, "tags": ["bar_h"]})
        self.assertEqual(r.status, 403)
        self.assertIn("ann1", r.json()["error"]["message"])
        # The reviewer's queue; a rejection needs a comment; only reviewers and owners review.
        q = self.ok(self.req("GET", "/api/v1/annotation-sets/%d/review-queue?limit=100" % sid, "rev"))
        self.assertEqual(q["total"], 24)
        self.assertTrue(all(len(it["tags"]) == 1 for it in q["items"]))
        first = q["items"][0]["image_id"]
        self.assertEqual(self.req("POST", self.item(sid, first) + "/review", "rev", {"decision": "reject"}).status, 422)
        self.assertEqual(self.req("POST", self.item(sid, first) + "/review", "ann1", {"decision": "accept"}).status, 403)
        self.assertEqual(self.req("POST", self.item(sid, first) + "/review", "rev", {"decision": "maybe"}).status, 422)
        r = self.ok(self.req("POST", self.item(sid, first) + "/review", "rev",
                             {"decision": "reject", "comment": "the bar is vertical, check again"}))
        self.assertEqual(r["status"], "rejected")
        # The annotator sees the rejection and the comment, fixes and resubmits.
        annotator = r["annotator"]
        g = self.ok(self.req("GET", self.item(sid, first), annotator))
        self.assertEqual((g["status"], g["review_comment"], g["reviewer"]),
                         ("rejected", "the bar is vertical, check again", "rev"))
        rejected = self.ok(self.req("GET", "/api/v1/annotation-sets/%d/items?status=rejected" % sid, annotator))
        self.assertEqual([it["image_id"] for it in rejected["items"]], [first])
        self.ok(self.req("PUT", self.item(sid, first), annotator,
                         {"revision": g["revision"], "tags": [self.cls_truth[first]]}))
        self.ok(self.req("POST", self.item(sid, first) + "/submit", annotator))
        self.assertEqual(self.req("POST", self.item(sid, first) + "/submit", annotator).status, 409)
        # Everything accepted (the owner may review too).
        q = self.ok(self.req("GET", "/api/v1/annotation-sets/%d/review-queue?limit=100" % sid, "own"))
        self.assertEqual(q["total"], 24)
        for it in q["items"]:
            self.ok(self.req("POST", self.item(sid, it["image_id"]) + "/review", "rev",
                             {"decision": "accept", "revision": it["revision"]}))
        self.assertEqual(self.req("POST", self.item(sid, first) + "/review", "rev", {"decision": "accept"}).status, 409)
        # Progress per status, annotator and reviewer.
        p = self.ok(self.req("GET", "/api/v1/annotation-sets/%d/progress" % sid, "vie"))
        self.assertEqual((p["total"], p["counts"]["accepted"], p["done"]), (24, 24, 1.0))
        per = {a["username"]: a for a in p["annotators"]}
        self.assertEqual((per["ann1"]["annotated"], per["ann1"]["accepted"]), (12, 12))
        self.assertEqual(per[annotator]["rejections_received"], 1)
        self.assertEqual(per[annotator]["reviews_received"], 13)
        self.assertGreater(per["ann1"]["throughput_per_hour"], 0)
        rev = {x["username"]: x for x in p["reviewers"]}["rev"]
        self.assertEqual((rev["reviewed"], rev["rejected"]), (25, 1))
        self.assertAlmostEqual(rev["rejection_rate"], 1 / 25)
        # A version: a seeded stratified split, counts per class and split.
        v = self.ok(self.req("POST", "/api/v1/annotation-sets/%d/versions" % sid, "eng",
                             {"name": "shapes v1", "split": {"train": 0.75, "val": 0.25, "test": 0}, "seed": 3}), 201)
        self.assertEqual([l["name"] for l in v["labels"]], ["bar_h", "bar_v"])
        self.assertEqual(v["counts"]["images"], {"train": 18, "val": 6, "test": 0, "total": 24})
        for c in ("bar_h", "bar_v"):
            self.assertEqual(v["counts"]["classes"][c]["images"], {"train": 9, "val": 3, "test": 0, "total": 12})
        self.assertRegex(v["content_hash"], "^[0-9a-f]{64}$")
        self.assertEqual(self.ok(self.req("GET", "/api/v1/dataset-versions/%d" % v["id"], "vie"))["content_hash"],
                         v["content_hash"])
        # The same content and seed give the same split and hash; another seed another split.
        v_same = self.ok(self.req("POST", "/api/v1/annotation-sets/%d/versions" % sid, "eng",
                                  {"name": "shapes v1 again", "split": {"train": 0.75, "val": 0.25}, "seed": 3}), 201)
        self.assertEqual(v_same["content_hash"], v["content_hash"])
        v_other = self.ok(self.req("POST", "/api/v1/annotation-sets/%d/versions" % sid, "eng",
                                   {"name": "shapes v1 seed 4", "split": {"train": 0.75, "val": 0.25}, "seed": 4}), 201)
        self.assertNotEqual(v_other["content_hash"], v["content_hash"])
        # Export as ImageFolder and train on it with the real binary.
        z = self.export(v["id"], "imagefolder")
        names = z.namelist()
        self.assertEqual(len(names), 24)
        self.assertEqual(sorted({n.split("/")[0] for n in names}), ["train", "val"])
        for n in names:
            split, cls, fname = n.split("/")
            iid = int(fname.split("_")[0])
            self.assertEqual(cls, self.cls_truth[iid], n)
            self.assertTrue(fname.endswith(".png"))
        self.assertEqual(z.read(names[0])[:8], b"\x89PNG\r\n\x1a\n")
        data = os.path.join(self.tmp, "shapes")
        z.extractall(data)
        model = os.path.join(self.tmp, "model")
        rc, out, err = run("train", "--task", "cls", "--data", data, "--out", model, "--epochs", "1", "--batch", "8",
                           "--threads", "2", "--json", timeout=300)
        self.assertEqual(rc, 0, err)
        with open(os.path.join(model, "model.json")) as f:
            self.assertEqual(json.load(f)["classes"], ["bar_h", "bar_v"])
        # A classification version has no boxes to export.
        r = self.export(v["id"], "coco", 422)
        self.assertIn("imagefolder", r.json()["error"]["message"])
        self.assertEqual(self.export(v["id"], "pdf", 400).error_code(), "bad_request")
        self.assertEqual(self.export(v["id"], "", 400).status, 400)

    # ---- the whole flow: boxes, polygons, masks, text lines --------------------------------------
    def test_det_seg_ocr_flow_and_exports(self):
        d = self.det_images
        # Detection: boxes (an alias resolves to its label), an image tag.
        det = self.new_set("det flow", "det", d[0:2])["id"]
        docs = {d[0]: {"tags": ["dent"], "shapes": [
                    {"type": "box", "label": "kratzer", "x": 4, "y": 6, "w": 20, "h": 10},
                    {"type": "box", "label": "dent", "x": 30.5, "y": 20, "w": 8, "h": 8, "source": "model",
                     "score": 0.9, "difficult": True}]},
                d[1]: {"shapes": [{"type": "box", "label": "scratch", "x": 0, "y": 0, "w": W, "h": H}]}}
        self.annotate_submit_accept(det, docs)
        g = self.ok(self.req("GET", self.item(det, d[0]), "vie"))
        self.assertEqual([s["label"] for s in g["shapes"]], ["scratch", "dent"])
        self.assertEqual(g["shapes"][1]["source"], "model")
        dv = self.ok(self.req("POST", "/api/v1/annotation-sets/%d/versions" % det, "eng",
                              {"name": "det v1", "split": {"train": 0.5, "val": 0.5, "test": 0}}), 201)
        self.assertEqual([l["name"] for l in dv["labels"]], ["dent", "scratch"])
        self.assertEqual(dv["counts"]["classes"]["scratch"]["instances"]["total"], 2)
        self.assertEqual(dv["counts"]["classes"]["dent"]["instances"]["total"], 2)  # a box and a tag
        # Each image is its group's only one (strata: dent, scratch), so both stay in train.
        self.assertEqual(dv["counts"]["images"], {"train": 2, "val": 0, "test": 0, "total": 2})
        # COCO: one instances file per split that has images, images beside them.
        z = self.export(dv["id"], "coco")
        self.assertEqual(sorted(n for n in z.namelist() if n.startswith("annotations/")),
                         ["annotations/instances_train.json"])
        by_image = {}
        for split in ("train",):
            coco = json.loads(z.read("annotations/instances_%s.json" % split))
            self.assertEqual([c["name"] for c in coco["categories"]], ["dent", "scratch"])
            self.assertEqual(coco["info"]["version"], dv["content_hash"])
            for im in coco["images"]:
                self.assertIn("images/%s/%s" % (split, im["file_name"]), z.namelist())
                self.assertEqual((im["width"], im["height"]), (W, H))
                by_image[im["id"]] = [a for a in coco["annotations"] if a["image_id"] == im["id"]]
        self.assertEqual(sorted(by_image), sorted(d[0:2]))
        a0 = sorted(by_image[d[0]], key=lambda a: a["bbox"][0])
        self.assertEqual(a0[0]["bbox"], [4, 6, 20, 10])
        self.assertEqual((a0[0]["category_id"], a0[0]["area"], a0[0]["iscrowd"]), (2, 200, 0))
        self.assertEqual(a0[1]["category_id"], 1)
        # YOLO: normalized centre boxes, data.yaml with the names.
        z = self.export(dv["id"], "yolo")
        yaml = z.read("data.yaml").decode()
        self.assertIn('0: "dent"', yaml)
        self.assertIn('1: "scratch"', yaml)
        self.assertIn("nc: 2", yaml)
        lab = [n for n in z.namelist() if n.startswith("labels/") and n.split("/")[-1].startswith("%d_" % d[1])][0]
        self.assertEqual(z.read(lab).decode().split(), ["1", "0.500000", "0.500000", "1.000000", "1.000000"])
        img = lab.replace("labels/", "images/").replace(".txt", ".png")
        self.assertIn(img, z.namelist())
        # Pascal VOC: 1-based inclusive boxes, split lists.
        z = self.export(dv["id"], "voc")
        xml_name = [n for n in z.namelist() if n.startswith("Annotations/%d_" % d[0])][0]
        root = ET.fromstring(z.read(xml_name))
        objs = {o.find("name").text: o for o in root.findall("object")}
        bb = objs["scratch"].find("bndbox")
        self.assertEqual([int(bb.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")], [5, 7, 24, 16])
        self.assertEqual((objs["scratch"].find("difficult").text, objs["dent"].find("difficult").text), ("0", "1"))
        self.assertEqual(root.find("size/width").text, str(W))
        stems = z.read("ImageSets/Main/train.txt").decode().split()
        self.assertNotIn("ImageSets/Main/val.txt", z.namelist())
        self.assertEqual(sorted(stems), sorted(n[len("Annotations/"):-4] for n in z.namelist()
                                               if n.startswith("Annotations/")))
        self.assertEqual(len([n for n in z.namelist() if n.startswith("JPEGImages/")]), 2)
        self.assertEqual(self.export(dv["id"], "imagefolder", 422).status, 422)

        # Segmentation: a polygon and masks in both COCO encodings.
        seg = self.new_set("seg flow", "seg", d[2:4])["id"]
        rect = {(x, y) for x in range(10, 20) for y in range(5, 15)}
        two = {(x, y) for x in range(0, 3) for y in range(0, 3)} | {(x, y) for x in range(40, 44) for y in range(30, 32)}
        docs = {d[2]: {"shapes": [{"type": "polygon", "label": "rust", "points": [[2, 2], [30, 2], [30, 20], [2, 20]]},
                                  {"type": "mask", "label": "rust", "rle": {"size": [H, W],
                                                                            "counts": rle_runs(rect, H, W)}}]},
                d[3]: {"shapes": [{"type": "mask", "label": "dent",
                                   "rle": {"size": [H, W], "counts": rle_string(rle_runs(two, H, W))}}]}}
        self.annotate_submit_accept(seg, docs, who="ann2")
        sv = self.ok(self.req("POST", "/api/v1/annotation-sets/%d/versions" % seg, "eng",
                              {"name": "seg v1", "split": {"train": 1}}), 201)
        z = self.export(sv["id"], "coco")
        coco = json.loads(z.read("annotations/instances_train.json"))
        anns = {(a["image_id"], a["category_id"], a["area"]): a for a in coco["annotations"]}
        poly = [a for a in coco["annotations"] if a["image_id"] == d[2] and isinstance(a["segmentation"], list)][0]
        self.assertEqual(poly["segmentation"], [[2, 2, 30, 2, 30, 20, 2, 20]])
        self.assertEqual((poly["bbox"], poly["area"]), ([2, 2, 28, 18], 504))
        m = anns[(d[2], 2, 100)]
        self.assertEqual((m["bbox"], m["segmentation"]["size"]), ([10, 5, 10, 10], [H, W]))
        m2 = anns[(d[3], 1, 17)]
        self.assertEqual(m2["bbox"], [0, 0, 44, 32])
        self.assertIsInstance(m2["segmentation"]["counts"], str)
        z = self.export(sv["id"], "yolo")
        lines = z.read([n for n in z.namelist() if n.startswith("labels/train/%d_" % d[3])][0]).decode().splitlines()
        self.assertEqual(len(lines), 2)  # one outline per region of the mask
        outline = [float(v) for v in lines[0].split()[1:]]
        xs, ys = outline[0::2], outline[1::2]
        self.assertEqual((min(xs), max(xs), min(ys), max(ys)), (0.0, 3 / W, 0.0, 3 / H))

        # OCR: text lines.
        ocr = self.new_set("ocr flow", "ocr", d[4:5])["id"]
        docs = {d[4]: {"shapes": [{"type": "text", "label": "serial", "points": [[5, 5], [40, 5], [40, 15], [5, 15]],
                                   "text": "SN 0042 <&>"}]}}
        self.annotate_submit_accept(ocr, docs)
        ov = self.ok(self.req("POST", "/api/v1/annotation-sets/%d/versions" % ocr, "eng", {"name": "ocr v1"}), 201)
        self.assertEqual(ov["counts"]["images"]["total"], 1)
        self.assertEqual(ov["counts"]["images"]["train"], 1)  # a single image stays in train
        z = self.export(ov["id"], "coco")
        a = json.loads(z.read("annotations/instances_train.json"))["annotations"][0]
        self.assertEqual((a["text"], a["bbox"]), ("SN 0042 <&>", [5, 5, 35, 10]))
        z = self.export(ov["id"], "voc")
        root = ET.fromstring(z.read([n for n in z.namelist() if n.startswith("Annotations/")][0]))
        self.assertEqual(root.find("object/text").text, "SN 0042 <&>")
        z = self.export(ov["id"], "yolo")
        line = z.read([n for n in z.namelist() if n.startswith("labels/")][0]).decode().split()
        self.assertEqual(len(line), 9)  # class + four corners
        items = self.ok(self.req("GET", "/api/v1/dataset-versions/%d/items?split=train" % ov["id"], "ann1"))
        self.assertEqual(items["items"][0]["shapes"][0]["text"], "SN 0042 <&>")
        lst = self.ok(self.req("GET", "/api/v1/projects/%d/dataset-versions?set_id=%d" % (self.project, ocr), "vie"))
        self.assertEqual([x["name"] for x in lst["items"]], ["ocr v1"])
        self.assertNotIn("labels", lst["items"][0])

    # ---- exports imported back ---------------------------------------------------------------------
    def test_exports_import_back(self):
        """A version exported as COCO, YOLO and Pascal VOC and imported into another project gives
        the same images, labels and shapes back, with the flags the format carries (VOC difficult,
        COCO iscrowd); COCO's box polygons are boxes again, so a det set stays det."""
        ims = self.upload_all([("round_%d.png" % i, random_png(W, H, seed=3000 + i)) for i in range(3)])
        det = self.new_set("round trip det", "det", ims[0:2])["id"]
        boxes = {ims[0]: [{"type": "box", "label": "scratch", "x": 4, "y": 6, "w": 20, "h": 10},
                          {"type": "box", "label": "dent", "x": 30, "y": 20, "w": 8, "h": 8, "difficult": True}],
                 ims[1]: [{"type": "box", "label": "scratch", "x": 0, "y": 0, "w": W, "h": H}]}
        self.annotate_submit_accept(det, {i: {"shapes": s} for i, s in boxes.items()})
        dv = self.ok(self.req("POST", "/api/v1/annotation-sets/%d/versions" % det, "eng",
                              {"name": "round det", "split": {"train": 1}}), 201)
        seg = self.new_set("round trip seg", "seg", ims[2:3])["id"]
        rect = {(x, y) for x in range(10, 20) for y in range(5, 15)}
        segs = {ims[2]: [{"type": "polygon", "label": "rust", "points": [[2, 2], [30, 2], [30, 20]]},
                         {"type": "mask", "label": "dent", "rle": {"size": [H, W], "counts": rle_runs(rect, H, W)},
                          "iscrowd": True}]}
        self.annotate_submit_accept(seg, {i: {"shapes": s} for i, s in segs.items()})
        sv = self.ok(self.req("POST", "/api/v1/annotation-sets/%d/versions" % seg, "eng",
                              {"name": "round seg", "split": {"train": 1}}), 201)

        def import_back(vid, fmt):
            r = self.req("GET", "/api/v1/dataset-versions/%d/export?format=%s" % (vid, fmt))
            self.assertEqual(r.status, 200, r)
            p = self.ok(self.req("POST", "/api/v1/projects", "admin", {"name": "round %d %s" % (vid, fmt)}), 201)["id"]
            res = self.ok(self.srv.request("POST", "/api/v1/projects/%d/imports?filename=%s.zip" % (p, fmt), self.admin,
                                           data=r.body, content_type="application/zip", timeout=120), 201)
            self.assertEqual((res["format"], res["skipped"]), (fmt, []), res)
            task = self.ok(self.req("GET", "/api/v1/annotation-sets/%d" % res["set_id"]))["task"]
            got = {}
            for it in self.ok(self.req("GET", "/api/v1/annotation-sets/%d/items?limit=100" % res["set_id"]))["items"]:
                doc = self.ok(self.req("GET", self.item(res["set_id"], it["image_id"])))
                # exported as "<image id>_<name>"
                got[[i for i in ims if it["filename"].endswith("_round_%d.png" % ims.index(i))][0]] = doc["shapes"]
            return task, got

        def want(shapes, keep):
            out = []
            for sh in shapes:
                sh = dict(sh, source="human")
                for flag in ("difficult", "iscrowd"):
                    if flag not in keep:
                        sh.pop(flag, None)
                if sh["type"] == "mask":
                    sh["rle"] = {"size": [H, W], "counts": rle_string(sh["rle"]["counts"])}
                out.append(sh)
            return out

        for fmt, keep in (("coco", ()), ("voc", ("difficult",)), ("yolo", ())):
            task, got = import_back(dv["id"], fmt)
            self.assertEqual(task, "det", fmt)
            self.assertEqual(got, {i: want(s, keep) for i, s in boxes.items()}, fmt)
        task, got = import_back(sv["id"], "coco")
        self.assertEqual(task, "seg")
        self.assertEqual(got, {ims[2]: want(segs[ims[2]], ("iscrowd",))})

    # ---- two annotators, locks ---------------------------------------------------------------------
    def test_two_annotators_stale_save_and_locks(self):
        iid = self.det_images[5]
        sid = self.new_set("conflicts", "det", [iid])["id"]
        box_a = {"type": "box", "label": "dent", "x": 1, "y": 1, "w": 5, "h": 5}
        box_b = {"type": "box", "label": "rust", "x": 9, "y": 9, "w": 3, "h": 3}
        g1 = self.ok(self.req("GET", self.item(sid, iid), "ann1"))
        self.assertEqual(g1["locker"], "ann1")
        self.assertIsNotNone(g1["lock_expires_at"])
        g2 = self.ok(self.req("GET", self.item(sid, iid), "ann2"))  # read only: ann1 holds it
        self.assertEqual((g2["locker"], g2["revision"]), ("ann1", 0))
        # While ann1 holds the lock, ann2 can neither save nor submit.
        r = self.req("PUT", self.item(sid, iid), "ann2", {"revision": 0, "shapes": [box_b]})
        self.assertEqual(r.status, 409)
        e = r.json()["error"]
        self.assertEqual((e["code"], e["locked_by"]["username"], e["lock_expires_at"]),
                         ("conflict", "ann1", g1["lock_expires_at"]))
        self.assertEqual(self.req("POST", self.item(sid, iid) + "/submit", "ann2").status, 409)
        self.ok(self.req("PUT", self.item(sid, iid), "ann1", {"revision": 0, "shapes": [box_a]}))
        self.assertEqual(self.req("DELETE", self.item(sid, iid) + "/lock", "ann2").status, 409)
        self.assertEqual(self.req("DELETE", self.item(sid, iid) + "/lock", "ann1").status, 204)
        # ann2's save is based on revision 0: stale, refused with the current document.
        r = self.req("PUT", self.item(sid, iid), "ann2", {"revision": 0, "shapes": [box_b]})
        self.assertEqual(r.status, 409)
        e = r.json()["error"]
        self.assertEqual(e["revision"], 1)
        self.assertEqual(e["current"]["annotator"], "ann1")
        self.assertEqual(e["current"]["shapes"][0]["label"], "dent")
        self.assertIn("stale", e["message"])
        cur = self.ok(self.req("GET", self.item(sid, iid), "vie"))
        self.assertEqual((cur["revision"], len(cur["shapes"]), cur["shapes"][0]["x"]), (1, 1, 1))
        # Reloaded, ann2 saves on top of ann1's work.
        r = self.ok(self.req("PUT", self.item(sid, iid), "ann2", {"revision": 1, "shapes": cur["shapes"] + [box_b]}))
        self.assertEqual((r["revision"], len(r["shapes"]), r["annotator"], r["locker"]), (2, 2, "ann2", "ann2"))
        # A lock expires after the set's lock_seconds.
        quick = self.new_set("quick locks", "det", [self.det_images[6]], lock_seconds=1)["id"]
        qi = self.item(quick, self.det_images[6])
        self.assertEqual(self.ok(self.req("GET", qi, "ann1"))["locker"], "ann1")
        self.assertEqual(self.req("PUT", qi, "ann2", {"revision": 0, "tags": ["dent"]}).status, 409)
        time.sleep(2.2)
        self.assertIsNone(self.ok(self.req("GET", qi + "?lock=false", "ann2"))["locker"])
        r = self.ok(self.req("PUT", qi, "ann2", {"revision": 0, "tags": ["dent"]}))
        self.assertEqual((r["revision"], r["locker"]), (1, "ann2"))
        # A manager releases anyone's lock.
        self.assertEqual(self.req("DELETE", qi + "/lock", "eng").status, 204)
        self.assertIsNone(self.ok(self.req("GET", qi, "vie"))["locker"])
        # POST .../lock takes or renews it (an open editor keeps it while its user works);
        # someone else's live lock is a 409 that names them; a lapsed one can be taken.
        lk = self.ok(self.req("POST", qi + "/lock", "ann1"))
        self.assertEqual(lk["locker"], "ann1")
        self.assertEqual(self.ok(self.req("GET", qi + "?lock=false", "vie"))["lock_expires_at"], lk["lock_expires_at"])
        r = self.req("POST", qi + "/lock", "ann2")
        self.assertEqual(r.status, 409)
        self.assertEqual(r.json()["error"]["locked_by"]["username"], "ann1")
        time.sleep(1.1)
        again = self.ok(self.req("POST", qi + "/lock", "ann1"))  # renewed: a later expiry
        self.assertGreater(again["lock_expires_at"], lk["lock_expires_at"])
        time.sleep(2.2)
        self.assertEqual(self.ok(self.req("POST", qi + "/lock", "ann2"))["locker"], "ann2")
        self.assertEqual(self.req("POST", self.item(quick, 999999) + "/lock", "ann2").status, 404)
        self.ok(self.req("POST", qi + "/submit", "ann2"))
        r = self.req("POST", qi + "/lock", "ann2")  # submitted: nothing to edit until reviewed
        self.assertEqual(r.status, 409)
        self.assertIn("submitted", r.json()["error"]["message"])

    # ---- bad input --------------------------------------------------------------------------------
    def test_bad_input_stores_nothing(self):
        iid = self.det_images[7]
        sid = self.new_set("bad input", "det", [iid])["id"]
        good = {"tags": ["dent"], "shapes": [{"type": "box", "label": "dent", "x": 1, "y": 2, "w": 3, "h": 4}]}
        saved = self.save(sid, iid, "ann1", good)
        box = lambda **k: dict({"type": "box", "label": "dent", "x": 1, "y": 1, "w": 5, "h": 5}, **k)
        cases = [
            ({"revision": 1, "shapes": [box(x=60, w=10)]}, 422, ["shapes[0].w", "width 64"]),
            ({"revision": 1, "shapes": [box(), box(y=40, h=9)]}, 422, ["shapes[1].h", "height 48"]),
            ({"revision": 1, "shapes": [box(x=-1)]}, 422, ["shapes[0].x"]),
            ({"revision": 1, "shapes": [box(label="no-such-label")]}, 422, ["'no-such-label'", "shapes[0].label"]),
            ({"revision": 1, "tags": ["dent", "ghost"]}, 422, ["tags[1]", "ghost"]),
            ({"revision": 1, "shapes": [{"type": "polygon", "label": "dent", "points": [[0, 0], [5, 0], [5, 5]]}]},
             422, ["det", "polygon"]),
            ({"revision": 1, "shapes": [box(x="left")]}, 400, ["shapes[0].x"]),
            ({"revision": 1, "shapes": [box(w=0)]}, 422, ["shapes[0].w"]),
            ({"revision": 1, "shapes": [box(colour="red")]}, 422, ["colour"]),
            ({"shapes": [box()]}, 400, ["revision"]),
            ({"revision": "1", "shapes": [box()]}, 400, ["revision"]),
        ]
        for body, status, words in cases:
            r = self.req("PUT", self.item(sid, iid), "ann1", body)
            self.assertEqual(r.status, status, (body, r))
            for w in words:
                self.assertIn(w, r.json()["error"]["message"], body)
        for raw in ['{"revision": 1, "shapes": [', "[1, 2]", "not json"]:
            r = self.srv.request("PUT", self.item(sid, iid), self.tokens["ann1"], data=raw,
                                 content_type="application/json")
            self.assertEqual(r.status, 400, (raw, r))
        cur = self.ok(self.req("GET", self.item(sid, iid), "vie"))
        self.assertEqual((cur["revision"], cur["tags"], cur["shapes"]), (1, ["dent"], saved["shapes"]))
        # Masks must match the image.
        seg = self.new_set("bad masks", "seg", [iid])["id"]
        r = self.req("PUT", self.item(seg, iid), "ann1", {"revision": 0, "shapes": [
            {"type": "mask", "label": "rust", "rle": {"size": [W, H], "counts": [5, 10, W * H - 15]}}]})
        self.assertEqual(r.status, 422)
        self.assertIn("rle.size", r.json()["error"]["message"])
        r = self.req("PUT", self.item(seg, iid), "ann1", {"revision": 0, "shapes": [
            {"type": "mask", "label": "rust", "rle": {"size": [H, W], "counts": [5, 10]}}]})
        self.assertEqual(r.status, 422)
        self.assertEqual(self.ok(self.req("GET", self.item(seg, iid) + "?lock=false", "vie"))["revision"], 0)
        # Objects that do not exist; sets that cannot be made.
        self.assertEqual(self.req("PUT", self.item(sid, self.det_images[8]), "ann1", good | {"revision": 0}).status, 404)
        self.assertEqual(self.req("GET", self.item(999999, iid), "ann1").status, 404)
        base = "/api/v1/projects/%d/annotation-sets" % self.project
        r = self.req("POST", base, "eng", {"name": "x1", "task": "det", "image_ids": [iid, 999999]})
        self.assertEqual(r.status, 422)
        self.assertIn("999999", r.json()["error"]["message"])
        self.assertEqual(self.req("POST", base, "eng", {"name": "x2", "task": "pose", "image_ids": []}).status, 422)
        self.assertEqual(self.req("POST", base, "eng", {"task": "det", "image_ids": []}).status, 400)
        self.assertEqual(self.req("POST", base, "eng", {"name": "x3", "task": "det"}).status, 400)
        self.assertEqual(self.req("POST", base, "eng", {"name": "bad input", "task": "det", "image_ids": []}).status,
                         409)
        self.assertEqual(self.req("POST", base, "eng", {"name": "x4", "task": "det",
                                                        "filter": {"uploaded_after": "yesterday"}}).status, 422)
        names = [s["name"] for s in self.ok(self.req("GET", base + "?limit=1000", "vie"))["items"]]
        self.assertFalse([n for n in names if n in ("x1", "x2", "x3", "x4")])
        # Versions need accepted images and a sound split.
        vbase = "/api/v1/annotation-sets/%d/versions" % sid
        r = self.req("POST", vbase, "eng", {"name": "empty"})
        self.assertEqual(r.status, 422)
        self.assertIn("accepted", r.json()["error"]["message"])
        self.assertEqual(self.req("POST", vbase, "eng", {"name": "s", "split": {"train": 0.9, "val": 0.3}}).status, 422)
        self.assertEqual(self.req("POST", vbase, "eng", {"name": "s", "split": {"train": "most"}}).status, 400)
        self.assertEqual(self.req("POST", vbase, "eng", {"name": "s", "seed": -1}).status, 422)

    # ---- immutability ------------------------------------------------------------------------------
    def test_version_immutable_after_edits(self):
        ims = self.det_images[9:12]
        sid = self.new_set("immutable", "det", ims)["id"]
        docs = {i: {"shapes": [{"type": "box", "label": "dent", "x": 2, "y": 2, "w": 10 + k, "h": 10}]}
                for k, i in enumerate(ims)}
        self.annotate_submit_accept(sid, docs)
        v1 = self.ok(self.req("POST", "/api/v1/annotation-sets/%d/versions" % sid, "eng", {"name": "imm v1"}), 201)
        items1 = self.ok(self.req("GET", "/api/v1/dataset-versions/%d/items" % v1["id"]))
        zip1 = self.req("GET", "/api/v1/dataset-versions/%d/export?format=coco" % v1["id"]).body
        # Accepted work is reopened by a manager only; the edit makes it in_progress again.
        acc = self.ok(self.req("GET", self.item(sid, ims[0]), "ann1"))
        r = self.req("PUT", self.item(sid, ims[0]), "ann1", {"revision": acc["revision"], "shapes": []})
        self.assertEqual(r.status, 409)
        self.assertIn("accepted", r.json()["error"]["message"])
        edited = self.ok(self.req("PUT", self.item(sid, ims[0]), "eng", {"revision": acc["revision"], "shapes": [
            {"type": "box", "label": "rust", "x": 30, "y": 30, "w": 5, "h": 5}]}))
        self.assertEqual(edited["status"], "in_progress")
        # The version has not moved: same items, documents, hash and export bytes.
        self.assertEqual(self.ok(self.req("GET", "/api/v1/dataset-versions/%d/items" % v1["id"])), items1)
        self.assertEqual(self.ok(self.req("GET", "/api/v1/dataset-versions/%d" % v1["id"]))["content_hash"],
                         v1["content_hash"])
        self.assertEqual(self.req("GET", "/api/v1/dataset-versions/%d/export?format=coco" % v1["id"]).body, zip1)
        # Only accepted images enter: the reopened one is left out until accepted again.
        v2 = self.ok(self.req("POST", "/api/v1/annotation-sets/%d/versions" % sid, "eng", {"name": "imm v2"}), 201)
        self.assertEqual(v2["counts"]["images"]["total"], 2)
        self.ok(self.req("POST", self.item(sid, ims[0]) + "/submit", "eng"))
        self.ok(self.req("POST", self.item(sid, ims[0]) + "/review", "own", {"decision": "accept"}))
        v3 = self.ok(self.req("POST", "/api/v1/annotation-sets/%d/versions" % sid, "eng", {"name": "imm v3"}), 201)
        self.assertNotEqual(v3["content_hash"], v1["content_hash"])
        self.assertEqual([l["name"] for l in v3["labels"]], ["dent", "rust"])
        self.assertEqual(self.req("POST", "/api/v1/annotation-sets/%d/versions" % sid, "eng",
                                  {"name": "imm v1"}).status, 409)
        # No route changes a version; deleting is for managers.
        self.assertEqual(self.req("PATCH", "/api/v1/dataset-versions/%d" % v1["id"], "eng", {"name": "x"}).status, 405)
        self.assertEqual(self.req("DELETE", "/api/v1/dataset-versions/%d" % v2["id"], "ann1").status, 403)
        self.assertEqual(self.req("DELETE", "/api/v1/dataset-versions/%d" % v2["id"], "eng").status, 204)
        self.assertEqual(self.req("GET", "/api/v1/dataset-versions/%d" % v2["id"]).status, 404)
        # The version keeps its images' bytes even when an image is deleted from the project.
        self.assertEqual(self.req("DELETE", "/api/v1/images/%d" % ims[1]).status, 204)
        self.assertEqual(self.ok(self.req("GET", "/api/v1/annotation-sets/%d" % sid))["total"], 2)
        self.assertEqual(self.req("GET", "/api/v1/dataset-versions/%d/export?format=coco" % v1["id"]).body, zip1)
        # Deleting the set keeps its versions.
        self.assertEqual(self.req("DELETE", "/api/v1/annotation-sets/%d" % sid, "ann1").status, 403)
        self.assertEqual(self.req("DELETE", "/api/v1/annotation-sets/%d" % sid, "eng").status, 204)
        kept = self.ok(self.req("GET", "/api/v1/dataset-versions/%d" % v1["id"]))
        self.assertEqual((kept["set_id"], kept["content_hash"]), (None, v1["content_hash"]))
        self.assertEqual(self.req("GET", "/api/v1/dataset-versions/%d/export?format=coco" % v1["id"]).body, zip1)

    # ---- tasks from a pool ---------------------------------------------------------------------------
    def test_pool_claim_and_reassign(self):
        ims = self.det_images[12:15]
        sid = self.new_set("pool", "det", [])["id"]
        r = self.ok(self.req("POST", "/api/v1/annotation-sets/%d/items" % sid, "eng", {"image_ids": ims + ims[:1]}))
        self.assertEqual((r["added"], r["set"]["total"]), (3, 3))
        t = self.ok(self.req("POST", "/api/v1/annotation-sets/%d/tasks" % sid, "eng", {"size": 2}), 201)
        self.assertEqual([x["total"] for x in t["items"]], [2, 1])
        self.assertEqual([x["assignee"] for x in t["items"]], [None, None])
        self.assertEqual(self.req("POST", "/api/v1/annotation-sets/%d/tasks" % sid, "eng", {"size": 2}).status, 422)
        c1 = self.ok(self.req("POST", "/api/v1/annotation-sets/%d/tasks/claim" % sid, "ann1"))
        c2 = self.ok(self.req("POST", "/api/v1/annotation-sets/%d/tasks/claim" % sid, "ann2"))
        self.assertEqual((c1["assignee"], c2["assignee"], c1["id"] < c2["id"]), ("ann1", "ann2", True))
        self.assertEqual(self.req("POST", "/api/v1/annotation-sets/%d/tasks/claim" % sid, "ann1").status, 404)
        path = "/api/v1/annotation-tasks/%d" % c1["id"]
        self.assertEqual(self.req("PATCH", path, "ann1", {"assignee_id": self.ids["ann2"]}).status, 403)
        r = self.req("PATCH", path, "eng", {"assignee_id": self.ids["vie"]})
        self.assertEqual(r.status, 422)
        self.assertIn("annotate", r.json()["error"]["message"])
        r = self.ok(self.req("PATCH", path, "eng", {"assignee_id": self.ids["ann2"], "name": "front side"}))
        self.assertEqual((r["assignee"], r["name"]), ("ann2", "front side"))
        self.assertIsNone(self.ok(self.req("PATCH", path, "eng", {"assignee_id": None}))["assignee"])
        lst = self.ok(self.req("GET", "/api/v1/annotation-sets/%d/tasks?assignee_id=%d" % (sid, self.ids["ann2"]),
                               "vie"))
        self.assertEqual([x["id"] for x in lst["items"]], [c2["id"]])
        # Filters select images by name pattern and upload date.
        base = "/api/v1/projects/%d/annotation-sets" % self.project
        s = self.ok(self.req("POST", base, "eng", {"name": "by name", "task": "det",
                                                   "filter": {"filename": "PART_0*.png"}}), 201)
        self.assertEqual(s["total"], 10)
        s = self.ok(self.req("POST", base, "eng", {"name": "all", "task": "cls", "filter": {}}), 201)
        self.assertEqual(s["total"], self.ok(self.req("GET", "/api/v1/projects/%d/images" % self.project))["total"])
        s = self.ok(self.req("POST", base, "eng", {"name": "future", "task": "cls",
                                                   "filter": {"uploaded_after": "2999-01-01"}}), 201)
        self.assertEqual(s["total"], 0)

    # ---- permissions ---------------------------------------------------------------------------------
    def test_label_rename_reaches_documents(self):
        r = self.ok(self.req("POST", "/api/v1/projects/%d/labels" % self.project, "eng", {"name": "chip"}), 201)
        lid = r["id"]
        iid = self.cls_images[0]
        sid = self.new_set("rename", "cls", [iid])["id"]
        saved = self.save(sid, iid, "ann1", {"tags": ["chip"], "shapes": []})
        self.ok(self.req("PATCH", "/api/v1/labels/%d" % lid, "eng", {"name": "chipped edge"}))
        cur = self.ok(self.req("GET", self.item(sid, iid), "ann1"))
        self.assertEqual(cur["tags"], ["chipped edge"])
        self.assertGreater(cur["revision"], saved["revision"])
        # the editor still holding the old revision gets a 409, not a silent overwrite
        r = self.req("PUT", self.item(sid, iid), "ann1", {"revision": saved["revision"], "tags": ["chipped edge"],
                                                           "shapes": []})
        self.assertEqual(r.status, 409, r)

    def test_role_route_matrix(self):
        doc = self.ok(self.req("GET", "/api/v1/openapi.json"))
        ops = {(m.upper(), p): op for p, item in doc["paths"].items() for m, op in item.items()}
        for key, (kind, roles) in sorted(routes_annotations.EXPECTED.items()):
            self.assertIn(key, ops)
            self.assertEqual(set(ops[key]["x-permission"]["roles"]), roles | {"admin"}, key)
            method = key[0]
            body = {} if method in ("POST", "PUT", "PATCH") else None
            r = self.srv.request(method, routes_annotations.fill(self, key, None, False), None, json_body=body)
            self.assertEqual(r.status, 401, key)
            for who in ["admin", "own", "eng", "ann1", "rev", "ope", "vie"]:
                allowed = who == "admin" or USERS[who][1] in roles
                r = self.req(method, routes_annotations.fill(self, key, who, allowed), who, body)
                if allowed:
                    self.assertNotIn(r.status, (401, 403), "%s as %s: %r" % (key, who, r))
                else:
                    self.assertEqual(r.status, 403, "%s as %s: %r" % (key, who, r))
            r = self.req(method, routes_annotations.fill(self, key, "outsider", False), "outsider", body)
            self.assertEqual(r.status, 404, "%s as a non-member: %r" % (key, r))


if __name__ == "__main__":
    unittest.main()
