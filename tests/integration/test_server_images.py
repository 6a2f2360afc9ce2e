"""Images, the blob store and archive imports over real HTTP (issue 3): many files per upload
with per-file refusals (corrupt, text, truncated, empty, a header declaring 400 megapixels)
while the rest is stored, deduplication, listing with filters and paging, file bytes with
their ETag, thumbnails, EXIF orientation, deletion with its audit entry, imports of
ImageFolder, COCO, YOLO and Pascal VOC archives built here, hostile archives refused with
nothing left behind, an oversize upload, the start-up collection of orphan blobs, and the
role x route matrix of these routes."""
import hashlib
import io
import json
import math
import os
import random
import socket
import sqlite3
import struct
import tarfile
import threading
import time
import unittest
import zipfile

from helpers import png_bytes
from routes_images import EXPECTED, fill, multipart, random_png, upload
from server import Server

USERS = {
    "eng": (["engineer"], "engineer"),
    "ann": (["annotator"], "annotator"),
    "rev": (["reviewer"], "reviewer"),
    "ope": (["operator"], "operator"),
    "vie": (["viewer"], "viewer"),
    "own": (["viewer"], "owner"),
}
PASSWORD = "user-password-123"


def jpeg_size(data):
    """(width, height) from a JPEG's SOF marker."""
    assert data[:2] == b"\xff\xd8", data[:4]
    i = 2
    while i < len(data):
        assert data[i] == 0xff, "bad marker at %d" % i
        m = data[i + 1]
        seg = struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xc0 <= m <= 0xcf and m not in (0xc4, 0xc8, 0xcc):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + seg
    raise AssertionError("no SOF marker")


def with_exif_orientation(jpeg, orientation):
    """The JPEG with an APP1 Exif segment saying orientation (big-endian TIFF)."""
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) \
        + b"\x00\x00\x00\x00"
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


def rle_from_string(s):
    """pycocotools' rleFrString."""
    cnts, p = [], 0
    while p < len(s):
        x = k = 0
        more = 1
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1f) << (5 * k)
            more = c & 0x20
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(cnts) > 2:
            x += cnts[-2]
        cnts.append(x)
    return cnts


def rle_to_string(cnts):
    """pycocotools' rleToString."""
    out = []
    for i, x in enumerate(cnts):
        if i > 2:
            x -= cnts[i - 2]
        more = 1
        while more:
            c = x & 0x1f
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def zip_bytes(entries, compression=zipfile.ZIP_DEFLATED):
    """entries: [(name or ZipInfo, bytes)]."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in entries:
            z.writestr(name, data)
    return buf.getvalue()


def tar_bytes(entries, mode="w:gz"):
    """entries: [(TarInfo or name, bytes or None)]."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as t:
        for ti, data in entries:
            if isinstance(ti, str):
                ti = tarfile.TarInfo(ti)
                ti.size = len(data)
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


class TestServerImages(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(["--max-upload-mb", "8"]).start()
        cls.admin = cls.srv.admin_token()
        cls.tokens, cls.ids = {"admin": cls.admin}, {}
        for name, (roles, _) in list(USERS.items()) + [("outsider", (["engineer"], None))]:
            r = cls.srv.request("POST", "/api/v1/users", cls.admin,
                                {"username": name, "password": PASSWORD, "roles": roles})
            assert r.status == 201, r
            cls.ids[name] = r.json()["id"]
            cls.tokens[name] = cls.srv.login(name, PASSWORD)
        cls.admin_id = cls.srv.request("GET", "/api/v1/auth/me", cls.admin).json()["id"]
        cls.project = cls.make_project("images matrix")

    @classmethod
    def tearDownClass(cls):
        cls.srv.cleanup()

    @classmethod
    def make_project(cls, name):
        return cls.srv.make_project(cls.admin, name, {cls.ids[u]: prole for u, (_, prole) in USERS.items()})

    def new_project(self):
        return self.make_project("p-%s-%f" % (self._testMethodName, time.time()))

    def req(self, method, path, who="admin", **kw):
        return self.srv.request(method, path, self.tokens.get(who, who), **kw)

    def post_archive(self, pid, data, ct="application/zip", query=""):
        return self.req("POST", "/api/v1/projects/%d/imports%s" % (pid, query), data=data, content_type=ct,
                        timeout=120)

    def blob_files(self):
        out = set()
        root = os.path.join(self.srv.data, "blobs")
        for d, _, files in os.walk(root):
            out.update(os.path.join(d, f) for f in files)
        return out

    def tmp_files(self):
        return os.listdir(os.path.join(self.srv.data, "tmp"))

    def db(self):
        return sqlite3.connect("file:%s?mode=ro" % os.path.join(self.srv.data, "autocv.db"), uri=True)

    def count(self, sql, *args):
        with self.db() as db:
            return db.execute(sql, args).fetchone()[0]

    def items_of(self, set_id):
        with self.db() as db:
            rows = db.execute("SELECT i.filename, ai.status, ai.revision, ai.doc_json, ai.annotated_by FROM "
                              "annotation_items ai JOIN images i ON i.id = ai.image_id WHERE ai.set_id = ? "
                              "ORDER BY i.filename", (set_id,)).fetchall()
        return {r[0]: {"status": r[1], "revision": r[2], "doc": json.loads(r[3]), "annotated_by": r[4]} for r in rows}

    def labels_of(self, pid):
        return {l["name"] for l in self.req("GET", "/api/v1/projects/%d/labels?limit=1000" % pid).json()["items"]}

    # ---- uploads ---------------------------------------------------------------------------
    def test_upload_many_with_per_file_errors(self):
        pid = self.new_project()
        blobs0 = self.blob_files()
        good = [("good%d.png" % i, random_png(16 + i, 12, seed=1000 + i)) for i in range(6)]
        tiny = ("one.png", png_bytes(1, 1, b"\x10\x20\x30"))
        bad = [
            ("corrupt.png", b"\x89PNG\r\n\x1a\n" + bytes(random.Random(5).randrange(256) for _ in range(300))),
            ("notes.txt", b"this is not an image\n"),
            ("truncated.png", random_png(40, 40, seed=77)[:150]),
            ("empty.png", b""),
            ("huge.png", png_bytes(2, 2, b"\x00" * 12, width_override=20000, height_override=20000)),
        ]
        files = good[:3] + [bad[0], bad[1]] + good[3:] + [bad[2], bad[3], tiny, bad[4]]
        r = upload(self.srv, self.admin, pid, files)
        self.assertEqual(r.status, 201, r)
        body = r.json()
        names = [i["filename"] for i in body["images"]]
        self.assertEqual(names, [g[0] for g in good] + ["one.png"])
        for img, (_, data) in zip(body["images"], good + [tiny]):
            self.assertEqual(img["hash"], hashlib.sha256(data).hexdigest())
            self.assertEqual(img["format"], "png")
            self.assertFalse(img["duplicate"])
            self.assertEqual(img["size"], len(data))
        self.assertEqual((body["images"][0]["width"], body["images"][0]["height"]), (16, 12))
        self.assertEqual((body["images"][-1]["width"], body["images"][-1]["height"]), (1, 1))
        errors = {e["filename"]: e["error"] for e in body["errors"]}
        self.assertEqual(set(errors), {b[0] for b in bad})
        self.assertIn("not a JPEG, PNG or BMP", errors["notes.txt"])
        self.assertIn("empty", errors["empty.png"])
        self.assertIn("truncated", errors["truncated.png"].lower())
        self.assertRegex(errors["huge.png"], "pixel|limit|large")
        for e in errors.values():
            self.assertTrue(e)
        # Stored: 7 images, each with its file and thumbnail; nothing of the refused files.
        self.assertEqual(self.req("GET", "/api/v1/projects/%d/images" % pid).json()["total"], 7)
        self.assertEqual(len(self.blob_files() - blobs0), 14)
        self.assertEqual(self.tmp_files(), [])
        # Nothing usable at all: 422 with the reasons, nothing stored.
        blobs1 = self.blob_files()
        r = upload(self.srv, self.admin, pid, bad[:2])
        self.assertEqual(r.status, 422, r)
        self.assertEqual(r.error_code(), "unprocessable")
        self.assertEqual(len(r.json()["errors"]), 2)
        self.assertEqual(r.json()["images"], [])
        self.assertEqual(self.blob_files(), blobs1)
        # No file at all, or a JSON body: 400 / 415.
        body, ct = multipart([], {"note": "x"})
        self.assertEqual(self.req("POST", "/api/v1/projects/%d/images" % pid, data=body, content_type=ct).status, 400)
        self.assertEqual(self.req("POST", "/api/v1/projects/%d/images" % pid, json_body={}).status, 415)
        # One image as the raw body.
        raw = random_png(9, 9, seed=4242)
        r = self.req("POST", "/api/v1/projects/%d/images?filename=raw.png" % pid, data=raw, content_type="image/png")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json()["images"][0]["filename"], "raw.png")
        # An annotator may upload; a viewer may not.
        self.assertEqual(upload(self.srv, self.tokens["ann"], self.project, [("a.png", random_png(seed=31))]).status, 201)
        self.assertEqual(upload(self.srv, self.tokens["vie"], self.project, [("v.png", random_png(seed=32))]).status, 403)

    def test_dedupe(self):
        pid, pid2 = self.new_project(), self.new_project()
        data = random_png(20, 20, seed=99)
        r = upload(self.srv, self.admin, pid, [("first.png", data), ("again.png", data)])
        self.assertEqual(r.status, 201, r)
        a, b = r.json()["images"]
        self.assertEqual(a["id"], b["id"])
        self.assertEqual((a["duplicate"], b["duplicate"]), (False, True))
        self.assertEqual(b["filename"], "first.png")
        blobs = self.blob_files()
        r = upload(self.srv, self.admin, pid, [("third.png", data)])
        self.assertEqual((r.status, r.json()["images"][0]["id"], r.json()["images"][0]["duplicate"]), (201, a["id"], True))
        self.assertEqual(self.req("GET", "/api/v1/projects/%d/images" % pid).json()["total"], 1)
        # Another project lists the image on its own, but the bytes are stored once.
        r = upload(self.srv, self.admin, pid2, [("other.png", data)])
        self.assertEqual(r.status, 201)
        self.assertNotEqual(r.json()["images"][0]["id"], a["id"])
        self.assertFalse(r.json()["images"][0]["duplicate"])
        self.assertEqual(self.blob_files(), blobs)
        self.assertEqual(self.count("SELECT refs FROM blobs WHERE hash = ?", a["hash"]), 2)
        # Deleting one project's image keeps the other's file.
        self.assertEqual(self.req("DELETE", "/api/v1/images/%d" % a["id"]).status, 204)
        self.assertEqual(self.req("GET", "/api/v1/images/%d/file" % r.json()["images"][0]["id"]).body, data)
        self.assertEqual(self.count("SELECT refs FROM blobs WHERE hash = ?", a["hash"]), 1)

    def test_file_etag_and_thumbnail(self):
        pid = self.new_project()
        big, small = random_png(600, 300, seed=5), random_png(40, 30, seed=6)
        r = upload(self.srv, self.admin, pid, [("big.png", big), ("small.png", small)])
        self.assertEqual(r.status, 201, r)
        ib, is_ = r.json()["images"]
        f = self.req("GET", "/api/v1/images/%d/file" % ib["id"])
        self.assertEqual(f.status, 200)
        self.assertEqual(f.body, big)
        self.assertEqual(f.headers["content-type"], "image/png")
        self.assertEqual(f.headers["etag"], '"%s"' % hashlib.sha256(big).hexdigest())
        r304 = self.req("GET", "/api/v1/images/%d/file" % ib["id"], headers={"If-None-Match": f.headers["etag"]})
        self.assertEqual(r304.status, 304)
        self.assertEqual(r304.body, b"")
        self.assertEqual(self.req("GET", "/api/v1/images/%d/file" % ib["id"],
                                  headers={"If-None-Match": '"0000"'}).status, 200)
        for img, expect in ((ib, (256, 128)), (is_, (40, 30))):
            t = self.req("GET", "/api/v1/images/%d/thumbnail" % img["id"])
            self.assertEqual(t.status, 200)
            self.assertEqual(t.headers["content-type"], "image/jpeg")
            self.assertEqual(t.headers["etag"], '"%s"' % img["thumb_hash"])
            self.assertEqual(hashlib.sha256(t.body).hexdigest(), img["thumb_hash"])
            self.assertEqual(jpeg_size(t.body), expect)
            self.assertTrue(t.body.endswith(b"\xff\xd9"))
        meta = self.req("GET", "/api/v1/images/%d" % ib["id"]).json()
        self.assertEqual((meta["width"], meta["height"], meta["channels"]), (600, 300, 3))
        self.assertEqual(meta["annotations"], [])
        self.assertEqual(self.req("GET", "/api/v1/images/999999").status, 404)
        self.assertEqual(self.req("GET", "/api/v1/images/%d/file" % ib["id"], "outsider").status, 404)
        # A JPEG with EXIF orientation 6 (rotate 90) is reported as displayed: width and height swap.
        wide = self.req("GET", "/api/v1/images/%d/thumbnail" % ib["id"]).body
        rotated = with_exif_orientation(wide, 6)
        r = upload(self.srv, self.admin, pid, [("rotated.jpg", rotated)])
        self.assertEqual(r.status, 201, r)
        img = r.json()["images"][0]
        self.assertEqual((img["format"], img["width"], img["height"]), ("jpeg", 128, 256))
        self.assertEqual(self.req("GET", "/api/v1/images/%d/file" % img["id"]).body, rotated)
        self.assertEqual(self.req("GET", "/api/v1/images/%d/file" % img["id"]).headers["content-type"], "image/jpeg")
        self.assertEqual(jpeg_size(self.req("GET", "/api/v1/images/%d/thumbnail" % img["id"]).body), (128, 256))

    def test_list_filters_and_paging(self):
        pid = self.new_project()
        files = [("img%02d.png" % i, random_png(10, 10, seed=500 + i)) for i in range(12)]
        r = upload(self.srv, self.admin, pid, files)
        self.assertEqual(r.status, 201, r)
        ids = [i["id"] for i in r.json()["images"]]
        base = "/api/v1/projects/%d/images" % pid
        page = self.req("GET", base + "?limit=5&offset=5").json()
        self.assertEqual(([i["id"] for i in page["items"]], page["total"], page["limit"], page["offset"]),
                         (ids[5:10], 12, 5, 5))
        # Keyset paging with next_after.
        seen, after = [], None
        while True:
            page = self.req("GET", base + "?limit=5" + ("&after=%d" % after if after else "")).json()
            seen += [i["id"] for i in page["items"]]
            self.assertEqual(page["total"], 12)
            after = page.get("next_after")
            if after is None:
                break
        self.assertEqual(seen, ids)
        self.assertEqual(self.req("GET", base + "?q=IMG01").json()["total"], 1)
        today = time.strftime("%Y-%m-%d", time.gmtime())
        self.assertEqual(self.req("GET", base + "?since=" + today).json()["total"], 12)
        self.assertEqual(self.req("GET", base + "?until=" + today).json()["total"], 12)
        self.assertEqual(self.req("GET", base + "?since=2999-01-01").json()["total"], 0)
        self.assertEqual(self.req("GET", base + "?until=2000-01-01T00:00:00Z").json()["total"], 0)
        for bad in ("since=yesterday", "status=done", "set_id=x", "limit=0", "annotated_by=-1", "after=abc"):
            self.assertEqual(self.req("GET", base + "?" + bad).status, 400, bad)
        # Annotation filters, on a set made by an import (status submitted).
        arch = zip_bytes([("cat/c1.png", random_png(seed=1)), ("cat/c2.png", random_png(seed=2)),
                          ("dog/d1.png", random_png(seed=3))])
        r = self.post_archive(pid, arch)
        self.assertEqual(r.status, 201, r)
        sid = r.json()["set_id"]
        self.assertEqual(self.req("GET", base).json()["total"], 15)
        q = base + "?set_id=%d" % sid
        self.assertEqual(self.req("GET", q).json()["total"], 3)
        self.assertEqual(self.req("GET", q + "&status=submitted").json()["total"], 3)
        self.assertEqual(self.req("GET", q + "&status=accepted").json()["total"], 0)
        self.assertEqual(self.req("GET", q + "&label=cat").json()["total"], 2)
        self.assertEqual(self.req("GET", base + "?label=dog").json()["total"], 1)
        self.assertEqual(self.req("GET", base + "?label=bird").json()["total"], 0)
        self.assertEqual(self.req("GET", base + "?annotated_by=%d" % self.admin_id).json()["total"], 3)
        self.assertEqual(self.req("GET", base + "?annotated_by=%d" % self.ids["eng"]).json()["total"], 0)
        self.assertEqual(self.req("GET", base + "?status=submitted&label=dog").json()["total"], 1)
        other = self.new_project()
        r = self.req("GET", base + "?set_id=%d&status=new" % sid)
        self.assertEqual(r.json()["total"], 0)
        self.assertEqual(self.req("GET", "/api/v1/projects/%d/images?set_id=%d" % (other, sid)).status, 422)
        # Every member may list (a viewer too); the image shows its set.
        self.assertEqual(self.req("GET", q, "vie").json()["total"], 3)
        dog = self.req("GET", base + "?label=dog").json()["items"][0]
        ann = self.req("GET", "/api/v1/images/%d" % dog["id"]).json()["annotations"]
        self.assertEqual([(a["set_id"], a["status"], a["task"]) for a in ann], [(sid, "submitted", "cls")])

    def test_delete_and_audit(self):
        pid = self.make_project("delete-%f" % time.time())
        data = random_png(12, 12, seed=321)
        r = upload(self.srv, self.admin, pid, [("gone.png", data)])
        img = r.json()["images"][0]
        blobs = self.blob_files()
        path = os.path.join(self.srv.data, "blobs", img["hash"][:2], img["hash"])
        self.assertIn(path, blobs)
        self.assertEqual(self.req("DELETE", "/api/v1/images/%d" % img["id"], "ann").status, 403)
        self.assertEqual(self.req("DELETE", "/api/v1/images/%d" % img["id"], "eng").status, 204)
        self.assertEqual(self.req("GET", "/api/v1/images/%d" % img["id"]).status, 404)
        self.assertEqual(self.req("DELETE", "/api/v1/images/%d" % img["id"]).status, 404)
        gone = blobs - self.blob_files()
        self.assertEqual(gone, {path, os.path.join(self.srv.data, "blobs", img["thumb_hash"][:2], img["thumb_hash"])})
        self.assertEqual(self.count("SELECT count(*) FROM blobs WHERE hash = ?", img["hash"]), 0)
        audit = self.req("GET", "/api/v1/audit?target_type=image&target_id=%d" % img["id"]).json()["items"]
        self.assertEqual([a["action"] for a in audit], ["delete", "create"])
        self.assertEqual(audit[0]["actor"], "eng")
        self.assertEqual(audit[0]["details"]["filename"], "gone.png")
        # Uploading the bytes again stores them again.
        r = upload(self.srv, self.admin, pid, [("back.png", data)])
        self.assertFalse(r.json()["images"][0]["duplicate"])
        self.assertIn(path, self.blob_files())

    # ---- imports --------------------------------------------------------------------------
    def test_import_imagefolder(self):
        pid = self.new_project()
        self.assertEqual(self.req("POST", "/api/v1/projects/%d/labels" % pid, json_body={"labels": [
            {"name": "cat"}, {"name": "canine", "aliases": ["dog"]}]}).status, 201)
        dup = random_png(seed=77)
        entries = [("flowers/train/cat/c1.png", random_png(seed=71)), ("flowers/train/cat/c2.png", random_png(seed=72)),
                   ("flowers/train/dog/d1.png", random_png(seed=73)), ("flowers/val/dog/d2.png", dup),
                   ("flowers/val/dog/d2-copy.png", dup), ("flowers/README.txt", b"readme"),
                   ("__MACOSX/flowers/._c1.png", b"junk"), ("flowers/train/cat/.DS_Store", b"junk"),
                   ("flowers/val/cat/broken.png", b"\x89PNG\r\n\x1a\nbroken"), ("flowers/loose.png", random_png(seed=74))]
        body, ct = multipart([("flowers.zip", zip_bytes(entries))])
        r = self.req("POST", "/api/v1/projects/%d/imports" % pid, data=body, content_type=ct)
        self.assertEqual(r.status, 201, r)
        res = r.json()
        self.assertEqual((res["format"], res["images"], res["images_existing"], res["labels_created"],
                          res["annotations"]), ("imagefolder", 5, 0, 0, 4))
        self.assertEqual(r.headers["location"], "/api/v1/imports/%d" % res["import"]["id"])
        skipped = {s["path"]: s["reason"] for s in res["skipped"]}
        self.assertIn("README.txt", skipped)
        self.assertIn("same bytes", skipped["val/dog/d2.png"])
        self.assertIn("val/cat/broken.png", skipped)
        self.assertEqual(res["skipped_total"], 3)
        self.assertEqual(self.labels_of(pid), {"cat", "canine"})  # "dog" is an alias of canine
        rec = res["import"]
        self.assertEqual((rec["status"], rec["format"], rec["set_id"], rec["filename"]),
                         ("succeeded", "imagefolder", res["set_id"], "flowers.zip"))
        self.assertEqual(rec["summary"]["images"], 5)
        with self.db() as db:
            name, task = db.execute("SELECT name, task FROM annotation_sets WHERE id = ?", (res["set_id"],)).fetchone()
        self.assertEqual((name, task), ("flowers", "cls"))
        items = self.items_of(res["set_id"])
        self.assertEqual({k: v["doc"]["tags"] for k, v in items.items()},
                         {"c1.png": ["cat"], "c2.png": ["cat"], "d1.png": ["canine"], "d2-copy.png": ["canine"],
                          "loose.png": []})
        for k, v in items.items():
            # Reviewers check imported classes; an image without a class still needs one.
            self.assertEqual((v["status"], v["revision"], v["doc"]["shapes"], v["annotated_by"]),
                             ("new" if k == "loose.png" else "submitted", 1, [], self.admin_id))
        imgs = self.req("GET", "/api/v1/projects/%d/images" % pid).json()["items"]
        self.assertEqual({(i["source"], i["import_id"]) for i in imgs}, {("import", rec["id"])})
        # The same archive again: the images exist already, a second set "flowers (2)".
        r = self.post_archive(pid, zip_bytes(entries), query="?filename=flowers.zip")
        self.assertEqual(r.status, 201, r)
        self.assertEqual((r.json()["images"], r.json()["images_existing"], r.json()["labels_created"]), (0, 5, 0))
        self.assertEqual(self.req("GET", "/api/v1/imports/%d" % r.json()["import"]["id"]).json()["status"], "succeeded")
        with self.db() as db:
            self.assertEqual(db.execute("SELECT name FROM annotation_sets WHERE id = ?",
                                        (r.json()["set_id"],)).fetchone()[0], "flowers (2)")
        lst = self.req("GET", "/api/v1/projects/%d/imports" % pid).json()
        self.assertEqual(lst["total"], 2)
        self.assertEqual(lst["items"][0]["id"], r.json()["import"]["id"])  # newest first
        # Plain images without folders: imported without a set.
        r = self.post_archive(pid, tar_bytes([("a.png", random_png(seed=701)), ("b.png", random_png(seed=702))]),
                              "application/gzip", "?filename=loose.tar.gz")
        self.assertEqual(r.status, 201, r)
        self.assertEqual((r.json()["format"], r.json()["set_id"], r.json()["images"]), ("images", None, 2))

    def test_import_coco(self):
        pid = self.new_project()
        W, H = 40, 30
        counts = [100, 50, 30, 20, 1000]  # sums to 1200 = 40 * 30
        comp = [300, 600, 300]
        coco = {
            "images": [{"id": 1, "file_name": "a.png", "width": W, "height": H},
                       {"id": 2, "file_name": "b.png", "width": W, "height": H},
                       {"id": 5, "file_name": "empty.png", "width": W, "height": H},
                       {"id": 6, "file_name": "badcat.png", "width": W, "height": H},
                       {"id": 7, "file_name": "missing.png", "width": W, "height": H}],
            "categories": [{"id": 3, "name": "bolt", "supercategory": "part"},
                           {"id": 17, "name": "nut", "supercategory": "part"}],
            "annotations": [
                {"id": 10, "image_id": 1, "category_id": 3, "bbox": [2.5, 3, 10, 8], "area": 80, "iscrowd": 0},
                {"id": 11, "image_id": 1, "category_id": 17, "segmentation": [[1, 1, 20, 1, 20, 15, 1, 15]],
                 "bbox": [1, 1, 19, 14], "iscrowd": 0},
                {"id": 12, "image_id": 2, "category_id": 17, "segmentation": {"size": [H, W], "counts": counts},
                 "bbox": [0, 0, 40, 30], "iscrowd": 1},
                {"id": 13, "image_id": 2, "category_id": 3,
                 "segmentation": {"size": [H, W], "counts": rle_to_string(comp)}, "bbox": [0, 0, 1, 1], "iscrowd": 0},
                {"id": 14, "image_id": 2, "category_id": 3, "bbox": [50, 50, 5, 5], "iscrowd": 0},
                {"id": 15, "image_id": 6, "category_id": 99, "bbox": [1, 1, 2, 2], "iscrowd": 0},
                {"id": 16, "image_id": 1, "category_id": 3, "bbox": [-5, -5, 10, 10], "iscrowd": 0},
            ],
        }
        entries = [("annotations/instances_train.json", json.dumps(coco).encode())]
        for i, name in enumerate(["a.png", "b.png", "empty.png", "badcat.png"]):
            entries.append(("images/train/" + name, random_png(W, H, seed=900 + i)))
        entries.append(("images/train/extra.png", random_png(W, H, seed=999)))
        r = self.post_archive(pid, tar_bytes(entries), "application/gzip", "?filename=parts.tar.gz")
        self.assertEqual(r.status, 201, r)
        res = r.json()
        self.assertEqual((res["format"], res["images"], res["labels_created"], res["crowd"]), ("coco", 3, 2, 1))
        self.assertEqual(self.labels_of(pid), {"bolt", "nut"})
        reasons = " | ".join("%s: %s" % (s["path"], s["reason"]) for s in res["skipped"])
        self.assertIn("missing.png", reasons)
        self.assertIn("category_id 99", reasons)
        self.assertIn("extra.png: not listed", reasons)
        self.assertIn("annotation 14", reasons)  # a box outside the image
        with self.db() as db:
            self.assertEqual(db.execute("SELECT task FROM annotation_sets WHERE id = ?",
                                        (res["set_id"],)).fetchone()[0], "seg")
        items = self.items_of(res["set_id"])
        self.assertEqual(set(items), {"a.png", "b.png", "empty.png"})
        # A seg set: an annotation with only a bbox becomes its rectangle as a polygon.
        a = items["a.png"]["doc"]["shapes"]
        self.assertEqual(a[0], {"type": "polygon", "label": "bolt", "points": [[2.5, 3], [12.5, 3], [12.5, 11], [2.5, 11]],
                                "source": "human"})
        self.assertEqual(a[1], {"type": "polygon", "label": "nut", "points": [[1, 1], [20, 1], [20, 15], [1, 15]],
                                "source": "human"})
        self.assertEqual(a[2]["points"], [[0, 0], [5, 0], [5, 5], [0, 5]])  # clamped to the image
        b = items["b.png"]["doc"]["shapes"]
        self.assertEqual(len(b), 2)
        self.assertEqual((b[0]["type"], b[0]["label"], b[0]["rle"]["size"]), ("mask", "nut", [H, W]))
        self.assertEqual(set(b[0]), {"type", "label", "rle", "source", "iscrowd"})  # the crowd flag is kept
        self.assertIs(b[0]["iscrowd"], True)
        self.assertNotIn("iscrowd", b[1])
        self.assertEqual(rle_from_string(b[0]["rle"]["counts"]), counts)
        self.assertEqual((b[1]["type"], b[1]["label"], b[1]["rle"]["counts"]), ("mask", "bolt", rle_to_string(comp)))
        self.assertEqual(items["empty.png"]["doc"], {"tags": [], "shapes": []})
        self.assertEqual(res["annotations"], 5)
        # A COCO file that is not JSON fails the import (and leaves nothing).
        n0 = self.req("GET", "/api/v1/projects/%d/images" % pid).json()["total"]
        r = self.post_archive(pid, zip_bytes([("annotations/instances_val.json", b"{not json"),
                                              ("images/val/x.png", random_png(seed=5))]))
        self.assertEqual(r.status, 422, r)
        self.assertIn("instances_val.json", r.json()["error"]["message"])
        self.assertEqual(self.req("GET", "/api/v1/projects/%d/images" % pid).json()["total"], n0)
        # A COCO JSON elsewhere, images beside it.
        r = self.post_archive(pid, zip_bytes([("set/coco.json", json.dumps(
            {"images": [{"id": 1, "file_name": "q.png"}], "annotations": [],
             "categories": [{"id": 1, "name": "bolt"}]}).encode()), ("set/q.png", random_png(seed=4444))]))
        self.assertEqual((r.status, r.json()["format"], r.json()["images"]), (201, "coco", 1), r)

    def test_import_yolo(self):
        pid = self.new_project()
        W, H = 64, 32
        yaml = b"path: .\ntrain: images/train\nval: images/val\nnames:\n  - screw\n  - 'washer'  # flat\n  - gear\n"
        entries = [("data.yaml", yaml),
                   ("images/train/a.png", random_png(W, H, seed=61)),
                   ("labels/train/a.txt", b"0 0.5 0.5 0.5 0.25\n\n2 0.1 0.1 0.9 0.1 0.5 0.9\n"),
                   ("images/train/b.png", random_png(W, H, seed=62)),
                   ("labels/train/b.txt", b"1 0.25 0.25 0.5 0.5\n"),
                   ("images/val/c.png", random_png(W, H, seed=63)),  # no label file: no objects
                   ("images/val/d.png", random_png(W, H, seed=64)),
                   ("labels/val/d.txt", b"7 0.5 0.5 0.1 0.1\n"),  # unknown class: skipped
                   ("labels/val/orphan.txt", b"0 0.5 0.5 0.1 0.1\n")]
        r = self.post_archive(pid, zip_bytes(entries))
        self.assertEqual(r.status, 201, r)
        res = r.json()
        self.assertEqual((res["format"], res["images"], res["labels_created"]), ("yolo", 3, 3))
        self.assertEqual(self.labels_of(pid), {"screw", "washer", "gear"})
        reasons = {s["path"]: s["reason"] for s in res["skipped"]}
        self.assertIn("class 7", reasons["images/val/d.png"])
        self.assertIn("without its image", reasons["labels/val/orphan.txt"])
        items = self.items_of(res["set_id"])
        # A polygon makes it a seg set: the box line becomes its rectangle.
        a = items["a.png"]["doc"]["shapes"]
        self.assertEqual(a[0], {"type": "polygon", "label": "screw", "points": [[16, 12], [48, 12], [48, 20], [16, 20]],
                                "source": "human"})
        self.assertEqual((a[1]["type"], a[1]["label"]), ("polygon", "gear"))
        self.assertEqual(a[1]["points"], [[6.4, 3.2], [57.6, 3.2], [32, 28.8]])
        self.assertEqual(items["b.png"]["doc"]["shapes"][0]["label"], "washer")
        self.assertEqual(items["c.png"]["doc"]["shapes"], [])
        with self.db() as db:
            self.assertEqual(db.execute("SELECT task FROM annotation_sets WHERE id = ?",
                                        (res["set_id"],)).fetchone()[0], "seg")
        # names as a map, boxes only: a det set.
        r = self.post_archive(pid, zip_bytes([("ds/data.yaml", b"names: {0: screw, 1: spring}\n"),
                                              ("ds/images/e.png", random_png(W, H, seed=65)),
                                              ("ds/labels/e.txt", b"1 0.5 0.5 1 1\n")]))
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json()["labels_created"], 1)
        e = self.items_of(r.json()["set_id"])["e.png"]["doc"]["shapes"]
        self.assertEqual(e, [{"type": "box", "label": "spring", "x": 0, "y": 0, "w": 64, "h": 32, "source": "human"}])
        with self.db() as db:
            self.assertEqual(db.execute("SELECT task FROM annotation_sets WHERE id = ?",
                                        (r.json()["set_id"],)).fetchone()[0], "det")

    def test_import_voc(self):
        pid = self.new_project()
        xml = b"""<?xml version="1.0"?>
<!-- LabelImg -->
<annotation verified="no">
  <folder>VOC2012</folder>
  <filename>p1.png</filename>
  <size><width>50</width><height>40</height><depth>3</depth></size>
  <object><name>nut&amp;bolt</name><pose>Unspecified</pose><truncated>0</truncated><difficult>1</difficult>
    <bndbox><xmin>11</xmin><ymin>6</ymin><xmax>30</xmax><ymax>25</ymax></bndbox></object>
  <object><name> washer </name><difficult>0</difficult>
    <bndbox><xmin>1</xmin><ymin>1</ymin><xmax>50</xmax><ymax>40</ymax></bndbox></object>
</annotation>
"""
        entries = [("VOCdevkit/VOC2012/Annotations/p1.xml", xml),
                   ("VOCdevkit/VOC2012/JPEGImages/p1.png", random_png(50, 40, seed=81)),
                   ("VOCdevkit/VOC2012/Annotations/p2.xml", b"<annotation><filename>p2.png</filename><object>"),
                   ("VOCdevkit/VOC2012/JPEGImages/p2.png", random_png(50, 40, seed=82)),
                   ("VOCdevkit/VOC2012/ImageSets/Main/train.txt", b"p1\np2\n")]
        r = self.post_archive(pid, tar_bytes(entries, "w"), "application/x-tar")
        self.assertEqual(r.status, 201, r)
        res = r.json()
        self.assertEqual((res["format"], res["images"], res["labels_created"], res["difficult"]), ("voc", 1, 2, 1))
        self.assertEqual(self.labels_of(pid), {"nut&bolt", "washer"})
        reasons = {s["path"]: s["reason"] for s in res["skipped"]}
        self.assertIn("malformed XML", reasons["Annotations/p2.xml"])
        self.assertIn("no annotation file", reasons["JPEGImages/p2.png"])
        shapes = self.items_of(res["set_id"])["p1.png"]["doc"]["shapes"]
        self.assertEqual(shapes, [
            {"type": "box", "label": "nut&bolt", "x": 10, "y": 5, "w": 20, "h": 20, "source": "human", "difficult": True},
            {"type": "box", "label": "washer", "x": 0, "y": 0, "w": 50, "h": 40, "source": "human"}])

    def test_hostile_archives_leave_nothing(self):
        pid = self.new_project()
        png = random_png(seed=1234)

        def symlink_tar():
            ti = tarfile.TarInfo("images/link.png")
            ti.type, ti.linkname = tarfile.SYMTYPE, "/etc/passwd"
            return tar_bytes([("images/a.png", png), (ti, None)])

        def hardlink_tar():
            ti = tarfile.TarInfo("b.png")
            ti.type, ti.linkname = tarfile.LNKTYPE, "a.png"
            return tar_bytes([("a.png", png), (ti, None)])

        def device_tar():
            ti = tarfile.TarInfo("dev")
            ti.type = tarfile.CHRTYPE
            return tar_bytes([("a.png", png), (ti, None)])

        def symlink_zip():
            zi = zipfile.ZipInfo("cat/link.png")
            zi.create_system = 3
            zi.external_attr = (0o120777 << 16)
            return zip_bytes([("cat/a.png", png), (zi, b"/etc/passwd")])

        def declared_huge_tar():
            ti = tarfile.TarInfo("cat/huge.png")
            ti.size = 1 << 40
            return ti.tobuf(format=tarfile.GNU_FORMAT) + b"\x00" * 4096

        def bomb_zip():
            return zip_bytes([("cat/a.png", png), ("cat/bomb.png", b"\x00" * (100 << 20))])

        cases = [
            ("dotdot", zip_bytes([("cat/a.png", png), ("../evil.png", png)]), "application/zip", 422, ".."),
            ("nested dotdot", zip_bytes([("cat/../../evil.png", png)]), "application/zip", 422, ".."),
            ("absolute", tar_bytes([("cat/a.png", png), ("/tmp/abs.png", png)]), "application/gzip", 422, "absolute"),
            ("symlink", symlink_tar(), "application/gzip", 422, "symbolic link"),
            ("hardlink", hardlink_tar(), "application/gzip", 422, "hard link"),
            ("device", device_tar(), "application/gzip", 422, "device"),
            ("zip symlink", symlink_zip(), "application/zip", 422, "symbolic link"),
            ("declared 1 TiB", declared_huge_tar(), "application/x-tar", 413, "declares"),
            ("zip bomb", bomb_zip(), "application/zip", 413, "zip bomb"),
            ("not an archive", bytes(random.Random(3).randrange(256) for _ in range(5000)), "application/zip", 422,
             "not a zip or tar"),
            ("an image", png, "application/octet-stream", 422, "not a zip or tar"),
            ("text", b"hello\n" * 100, "application/x-tar", 422, "not a zip or tar"),
            ("no images", zip_bytes([("notes/readme.txt", b"x")]), "application/zip", 422, "no image"),
            ("duplicate entry", tar_bytes([("cat/a.png", png), ("cat/a.png", png)]), "application/gzip", 422, "twice"),
        ]
        self.assertLess(len(cases[8][1]), 1 << 20)  # the bomb really is small
        before = (self.blob_files(), self.req("GET", "/api/v1/projects/%d/images" % pid).json()["total"],
                  self.labels_of(pid), self.count("SELECT count(*) FROM annotation_sets WHERE project_id = ?", pid))
        for name, data, ct, status, words in cases:
            r = self.post_archive(pid, data, ct)
            self.assertEqual(r.status, status, "%s: %r" % (name, r))
            self.assertIn(words, r.json()["error"]["message"], name)
            after = (self.blob_files(), self.req("GET", "/api/v1/projects/%d/images" % pid).json()["total"],
                     self.labels_of(pid), self.count("SELECT count(*) FROM annotation_sets WHERE project_id = ?", pid))
            self.assertEqual(after, before, name)
            self.assertEqual(self.tmp_files(), [], name)
            rec = self.req("GET", "/api/v1/imports/%d" % r.json()["import_id"]).json()
            self.assertEqual(rec["status"], "failed", name)
            self.assertIn(words, rec["error"], name)
        # An empty body.
        r = self.post_archive(pid, b"")
        self.assertEqual(r.status, 400, r)

    def test_failed_import_removes_what_it_stored(self):
        pid = self.new_project()
        r = self.post_archive(pid, zip_bytes([("cat/a.png", random_png(seed=9001))]), query="?set_name=batch%201")
        self.assertEqual(r.status, 201, r)
        before = (self.blob_files(), self.req("GET", "/api/v1/projects/%d/images" % pid).json()["total"],
                  self.labels_of(pid))
        # New images and a new label, but the set name is taken: fails after the blobs were written.
        arch = zip_bytes([("dog/x%d.png" % i, random_png(seed=9100 + i)) for i in range(5)])
        body, ct = multipart([("more.zip", arch)], {"set_name": "batch 1"})
        r = self.req("POST", "/api/v1/projects/%d/imports" % pid, data=body, content_type=ct)
        self.assertEqual(r.status, 409, r)
        self.assertIn("batch 1", r.json()["error"]["message"])
        after = (self.blob_files(), self.req("GET", "/api/v1/projects/%d/images" % pid).json()["total"],
                 self.labels_of(pid))
        self.assertEqual(after, before)
        self.assertEqual(self.tmp_files(), [])
        self.assertEqual(self.count("SELECT count(*) FROM images WHERE project_id = ? AND source = 'import'", pid), 1)
        # Only engineers and owners import.
        self.assertEqual(self.post_archive(self.project, arch, "application/zip").status, 201)
        r = self.req("POST", "/api/v1/projects/%d/imports" % self.project, "ann", data=arch,
                     content_type="application/zip")
        self.assertEqual(r.status, 403)

    def raw_status(self, head, body=b""):
        """Sends a request by hand (the server may answer before the body is sent, then close);
        returns the status and the answer."""
        s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=30)
        try:
            s.sendall(head)
            try:
                for i in range(0, len(body), 65536):
                    s.sendall(body[i:i + 65536])
            except (BrokenPipeError, ConnectionResetError):
                pass
            out = b""
            try:
                while b"\r\n\r\n" not in out or len(out) < 200:
                    d = s.recv(65536)
                    if not d:
                        break
                    out += d
            except ConnectionResetError:
                pass
        finally:
            s.close()
        return int(out.split(b" ")[1]), out

    def test_oversize_upload_413(self):
        pid = self.new_project()
        blobs = self.blob_files()
        auth = b"Authorization: Bearer %s\r\n" % self.admin.encode()
        for path, ct in (("/api/v1/projects/%d/images" % pid, b"multipart/form-data; boundary=acvboundary0123456789"),
                         ("/api/v1/projects/%d/imports" % pid, b"application/zip")):
            # Declared too large: answered from the headers.
            st, out = self.raw_status(b"POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
                                      % (path.encode(), auth, ct, 9 << 20))
            self.assertEqual(st, 413, out)
            self.assertIn(b"payload_too_large", out)
            # Chunked: refused once it passes the limit.
            payload = os.urandom(9 << 20)
            if ct.startswith(b"multipart"):
                payload = (b"--acvboundary0123456789\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n\r\n"
                           + payload + b"\r\n--acvboundary0123456789--\r\n")
            body = b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + 65536]), payload[i:i + 65536])
                            for i in range(0, len(payload), 65536)) + b"0\r\n\r\n"
            st, out = self.raw_status(b"POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Type: %s\r\n"
                                      b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" % (path.encode(), auth, ct),
                                      body)
            self.assertEqual(st, 413, out)
        self.assertEqual(self.blob_files(), blobs)
        self.assertEqual(self.req("GET", "/api/v1/projects/%d/images" % pid).json()["total"], 0)
        self.assertEqual(self.tmp_files(), [])

    def test_restart_collects_orphans(self):
        srv = Server().start()
        try:
            tok = srv.admin_token()
            pid = srv.request("POST", "/api/v1/projects", tok, {"name": "restart"}).json()["id"]
            data = random_png(seed=8080)
            r = upload(srv, tok, pid, [("keep.png", data)])
            self.assertEqual(r.status, 201)
            iid = r.json()["images"][0]["id"]
            self.assertEqual(srv.stop(), 0)
            # What a crash between a blob write and its commit leaves; an import cut short.
            orphan = hashlib.sha256(b"orphan").hexdigest()
            os.makedirs(os.path.join(srv.data, "blobs", orphan[:2]), exist_ok=True)
            with open(os.path.join(srv.data, "blobs", orphan[:2], orphan), "wb") as f:
                f.write(b"orphan")
            db = sqlite3.connect(os.path.join(srv.data, "autocv.db"))
            db.execute("INSERT INTO imports(project_id, filename, status, created_at) VALUES(?, 'cut.zip', 'running', "
                       "'2024-01-01T00:00:00Z')", (pid,))
            db.commit()
            db.close()
            srv.start()
            tok = srv.admin_token()
            self.assertFalse(os.path.exists(os.path.join(srv.data, "blobs", orphan[:2], orphan)))
            self.assertEqual(srv.request("GET", "/api/v1/images/%d/file" % iid, tok).body, data)
            imports = srv.request("GET", "/api/v1/projects/%d/imports" % pid, tok).json()["items"]
            self.assertEqual((imports[0]["status"], imports[0]["filename"]), ("failed", "cut.zip"))
            self.assertIn("interrupted", imports[0]["error"])
            self.assertIn("removed 1 unreferenced blob", srv.log_text())
        finally:
            srv.cleanup()

    def test_sigkill_during_uploads(self):
        """Every acknowledged upload survives a SIGKILL; nothing half-written remains."""
        srv = Server().start()
        try:
            tok = srv.admin_token()
            pid = srv.request("POST", "/api/v1/projects", tok, {"name": "kill"}).json()["id"]
            acked, stop = {}, threading.Event()
            lock = threading.Lock()

            def client(k):
                n = 0
                while not stop.is_set():
                    files = [("k%d_%d_%d.png" % (k, n, j), random_png(48, 48, seed=(k << 20) + n * 8 + j)) for j in range(3)]
                    n += 1
                    try:
                        r = upload(srv, tok, pid, files)
                    except OSError:
                        return
                    if r.status == 201:
                        with lock:
                            for img in r.json()["images"]:
                                acked[img["id"]] = img["hash"]
            threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
            for t in threads:
                t.start()
            time.sleep(1.5)
            srv.kill()
            stop.set()
            for t in threads:
                t.join()
            self.assertGreater(len(acked), 10)
            srv.start()
            tok = srv.admin_token()
            for iid, h in acked.items():
                r = srv.request("GET", "/api/v1/images/%d/file" % iid, tok)
                self.assertEqual((r.status, hashlib.sha256(r.body).hexdigest()), (200, h), iid)
            # Every blob file is complete and named by a row; every row has its file.
            with sqlite3.connect("file:%s?mode=ro" % os.path.join(srv.data, "autocv.db"), uri=True) as db:
                rows = {h for (h,) in db.execute("SELECT hash FROM blobs")}
                nimg = db.execute("SELECT count(*) FROM images").fetchone()[0]
            files = {}
            for d, _, names in os.walk(os.path.join(srv.data, "blobs")):
                for f in names:
                    with open(os.path.join(d, f), "rb") as fh:
                        files[f] = hashlib.sha256(fh.read()).hexdigest()
            self.assertEqual(set(files), rows)
            for name, digest in files.items():
                self.assertEqual(name, digest)
            self.assertGreaterEqual(nimg, len(acked))
            self.assertEqual(len(rows), 2 * nimg)
        finally:
            srv.cleanup()

    # ---- permissions ------------------------------------------------------------------------
    def test_openapi_documents_these_routes(self):
        doc = self.req("GET", "/api/v1/openapi.json").json()
        ops = {(m.upper(), p): op for p, item in doc["paths"].items() for m, op in item.items()}
        for key, (kind, roles) in EXPECTED.items():
            self.assertIn(key, ops)
            perm = ops[key]["x-permission"]
            self.assertEqual((perm["kind"], set(perm["roles"])), (kind, roles | {"admin"}), key)
        self.assertIn("Image", doc["components"]["schemas"])
        self.assertIn("multipart/form-data", ops[("POST", "/api/v1/projects/{id}/images")]["requestBody"]["content"])

    def test_role_route_matrix(self):
        checked = 0
        for key in sorted(EXPECTED):
            kind, roles = EXPECTED[key]
            method = key[0]
            body = {} if method in ("POST", "PUT", "PATCH") else None
            r = self.srv.request(method, fill(self, key, None, False), None, json_body=body)
            self.assertEqual(r.status, 401, key)
            for who in ["admin"] + list(USERS):
                ok = who == "admin" or USERS[who][1] in roles
                r = self.req(method, fill(self, key, who, ok), who, json_body=body)
                if ok:
                    self.assertNotIn(r.status, (401, 403, 404), "%s as %s: %r" % (key, who, r))
                else:
                    self.assertEqual(r.status, 403, "%s as %s: %r" % (key, who, r))
                    self.assertEqual(r.error_code(), "forbidden")
                checked += 1
            r = self.req(method, fill(self, key, "outsider", False), "outsider", json_body=body)
            self.assertEqual(r.status, 404, "%s as a non-member: %r" % (key, r))
        self.assertEqual(checked, 7 * len(EXPECTED))


def box(label, x, y, w, h, **flags):
    return dict({"type": "box", "label": label, "x": x, "y": y, "w": w, "h": h, "source": "human"}, **flags)


def rect_polygon(label, x, y, w, h, **flags):
    return dict({"type": "polygon", "label": label, "points": [[x, y], [x + w, y], [x + w, y + h], [x, y + h]],
                 "source": "human"}, **flags)


class TestImportOtherTools(unittest.TestCase):
    """Archives laid out exactly as Ultralytics, Roboflow, LabelImg, CVAT and Label Studio export
    them, imported through the real server: the images, labels, the set's task and every shape
    checked through the API, refusals and per-file reports checked by their messages (the same
    inputs as test_dataset_convert.py's RealWorldExports, which reads them with the CLI)."""
    W, H = 40, 20

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(["--max-upload-mb", "8"]).start()
        cls.admin = cls.srv.admin_token()
        cls.seed = 5000

    @classmethod
    def tearDownClass(cls):
        cls.srv.cleanup()

    def req(self, method, path, **kw):
        return self.srv.request(method, path, self.admin, **kw)

    def png(self):
        TestImportOtherTools.seed += 1
        return random_png(self.W, self.H, seed=self.seed)

    def project(self):
        r = self.req("POST", "/api/v1/projects", json_body={"name": "p-%s-%f" % (self._testMethodName, time.time())})
        self.assertEqual(r.status, 201, r)
        return r.json()["id"]

    def imp(self, pid, entries, name="ds.zip", status=201):
        r = self.req("POST", "/api/v1/projects/%d/imports?filename=%s" % (pid, name), data=zip_bytes(entries),
                     content_type="application/zip", timeout=120)
        self.assertEqual(r.status, status, r)
        return r.json()

    def labels(self, pid):
        return sorted(l["name"] for l in self.req("GET", "/api/v1/projects/%d/labels?limit=1000" % pid).json()["items"])

    def images(self, pid):
        return sorted(i["filename"] for i in self.req("GET", "/api/v1/projects/%d/images?limit=1000" % pid).json()["items"])

    def task(self, sid):
        return self.req("GET", "/api/v1/annotation-sets/%d" % sid).json()["task"]

    def shapes(self, sid):
        """{filename: shapes} of a set, read item by item through the API."""
        items = self.req("GET", "/api/v1/annotation-sets/%d/items?limit=1000" % sid).json()["items"]
        out = {}
        for it in items:
            doc = self.req("GET", "/api/v1/annotation-sets/%d/items/%d" % (sid, it["image_id"])).json()
            self.assertEqual(doc["status"], "submitted")
            out[it["filename"]] = doc["shapes"]
        return out

    @staticmethod
    def skipped(res):
        return {s["path"]: s["reason"] for s in res["skipped"]}

    # ---- YOLO / Ultralytics / Roboflow ------------------------------------------------------------
    def test_yolo_ultralytics_layout(self):
        pid = self.project()
        # A BOM, CRLF; path absolute (another machine's); train a flow list of folders, val a .txt
        # list, test a block list; names a block map with nc; a download: script block.
        yaml = ("\ufeff# Ultralytics\r\npath: /home/me/datasets/parts\r\ntrain: [images/train, images/extra]\r\n"
                "val: lists/val.txt\r\ntest:\r\n  - images/test\r\nnc: 2\r\nnames:\r\n  0: bolt\r\n  1: nut\r\n"
                "download: |\r\n  import os\r\n  names: [x]\r\n")
        pts = " ".join("%.4f %.4f" % (0.5 + 0.25 * math.cos(i * math.pi / 20), 0.5 + 0.4 * math.sin(i * math.pi / 20))
                       for i in range(40))  # an ellipse of 40 points
        entries = [
            ("data.yaml", yaml.encode()),
            ("README.dataset.txt", b"2 classes, exported by hand\n"),
            ("images/train/a.png", self.png()),
            # a BOM, trailing spaces, blank lines, CRLF, scientific notation
            ("labels/train/a.txt", b"\xef\xbb\xbf1 0.5 0.5 0.5 0.5  \r\n\r\n  \r\n0 5e-1 2.5E-01 2.5e-1 5.0e-01\r\n"),
            ("images/train/bg.png", self.png()),  # no label file: a background image
            ("images/train/empty.png", self.png()),
            ("labels/train/empty.txt", b""),
            ("images/extra/UP.JPG", self.png()),
            ("labels/extra/UP.txt", b"0 0.5 0.5 0.5 0.5\n"),
            ("images/extra/Mixed.Jpeg", self.png()),
            ("labels/extra/Mixed.txt", b"1.0 0.5 0.5 0.5 0.5\n"),
            ("images/extra/w.webp", b"RIFF\x00\x00\x00\x00WEBPVP8 "),
            ("lists/images/v1.png", self.png()),
            ("lists/labels/v1.txt", b"1 0.5 0.5 0.1 0.1\n"),
            ("images/val/v2.png", self.png()),
            ("labels/val/v2.txt", b"0 0.5 0.5 0.1 0.1\n"),
            ("lists/val.txt", b"./images/v1.png\r\n/home/me/datasets/parts/images/val/v2.png\r\nimages/val/gone.png\r\n"),
            ("images/test/t.png", self.png()),
            ("labels/test/orphan.txt", b"0 0.5 0.5 0.1 0.1\n"),
        ]
        res = self.imp(pid, entries)
        self.assertEqual((res["format"], res["images"], res["labels_created"]), ("yolo", 8, 2))
        self.assertEqual(self.labels(pid), ["bolt", "nut"])
        self.assertEqual(self.task(res["set_id"]), "det")
        got = self.shapes(res["set_id"])
        self.assertEqual(got, {
            "a.png": [box("nut", 10, 5, 20, 10), box("bolt", 15, 0, 10, 10)], "bg.png": [], "empty.png": [],
            "UP.JPG": [box("bolt", 10, 5, 20, 10)], "Mixed.Jpeg": [box("nut", 10, 5, 20, 10)],
            "v1.png": [box("nut", 18, 9, 4, 2)], "v2.png": [box("bolt", 18, 9, 4, 2)], "t.png": []})
        sk = self.skipped(res)
        self.assertEqual(set(sk), {"lists/val.txt", "images/extra/w.webp", "labels/test/orphan.txt"}, sk)
        self.assertIn("line 3: image 'images/val/gone.png' is not in the archive", sk["lists/val.txt"])
        self.assertIn("not a JPEG, PNG or BMP image", sk["images/extra/w.webp"])
        self.assertIn("without its image", sk["labels/test/orphan.txt"])
        # Segment lines (Ultralytics -seg): polygons, so the set takes polygons (seg) and a box
        # line becomes its rectangle.
        res = self.imp(pid, [("data.yaml", b"names: [bolt, nut]\n"), ("images/s.png", self.png()),
                             ("labels/s.txt", ("1 %s\n0 0.5 0.5 0.5 0.5\n" % pts).encode())], "seg.zip")
        self.assertEqual(self.task(res["set_id"]), "seg", res)
        s = self.shapes(res["set_id"])["s.png"]
        self.assertEqual((s[0]["type"], s[0]["label"], len(s[0]["points"])), ("polygon", "nut", 40))
        self.assertEqual(s[1], rect_polygon("bolt", 10, 5, 20, 10))

    def test_yolo_names_and_nc(self):
        pid = self.project()
        cases = [(b"names: ['bolt', \"nut\"]\n", ["bolt", "nut"]),
                 (b"nc: 2\nnames: {0: bolt, 1: nut}  # a flow map\n", ["bolt", "nut"]),
                 (b"names:\n- bolt\n- nut\nnc: 2\n", ["bolt", "nut"]),
                 (b"names: [bolt,\n  nut]\n", ["bolt", "nut"]),
                 (b"names:\n  1: nut\n  0: bolt\n", ["bolt", "nut"]),
                 (b"nc: 2\n", ["class_0", "class_1"]),
                 (None, ["bolt", "nut"]),  # no yaml: classes.txt (below)
                 (None, ["0", "1"])]  # no names anywhere: the class numbers
        for i, (yaml, names) in enumerate(cases):
            p = self.project()
            extra = [("data.yaml", yaml)] if yaml else [("classes.txt", b"\xef\xbb\xbfbolt\r\nnut\r\n")] if i == 6 else []
            res = self.imp(p, extra + [("images/a.png", self.png()),
                                       ("labels/a.txt", b"1 0.5 0.5 0.5 0.5\n0 0.25 0.25 0.1 0.1\n")], "n%d.zip" % i)
            self.assertEqual(res["skipped"], [], yaml)
            self.assertEqual(sorted(self.labels(p)), names, yaml)
            self.assertEqual([s["label"] for s in self.shapes(res["set_id"])["a.png"]], names[::-1], yaml)
        # Refused, naming the file and line; nothing is stored.
        for yaml, msg in [(b"train: images\nnc: 3\nnames: [bolt, nut]\n", "data.yaml line 2: nc is 3 but names lists 2"),
                          (b"names: [bolt, nut, bolt]\n", "data.yaml: classes 0 and 2 are both named 'bolt'"),
                          (b"names:\n  0: bolt\n  2: nut\n", "data.yaml: names has no class 1"),
                          (b"names: [bolt, nut\n", "data.yaml line 1: the [...] or {...} is not closed")]:
            r = self.imp(pid, [("data.yaml", yaml), ("images/a.png", self.png()),
                               ("labels/a.txt", b"0 0.5 0.5 0.5 0.5\n")], status=422)
            self.assertIn(msg, r["error"]["message"])
        self.assertEqual((self.images(pid), self.labels(pid)), ([], []))

    def test_yolo_roboflow_under_a_top_folder(self):
        pid = self.project()
        yaml = (b"train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\nnc: 2\nnames: ['bolt', 'nut']\n\n"
                b"roboflow:\n  workspace: w\n  project: p\n  version: 3\n  license: CC BY 4.0\n"
                b"  url: https://universe.roboflow.com/w/p/3\n")
        entries = [("mydata/data.yaml", yaml), ("mydata/README.roboflow.txt", b"Exported via roboflow.com\n"),
                   ("mydata/train/images/a_jpg.rf.1.jpg", self.png()),
                   ("mydata/train/labels/a_jpg.rf.1.txt", b"1 0.5 0.5 0.5 0.5\n"),
                   ("mydata/valid/images/b_jpg.rf.2.jpg", self.png()),
                   ("mydata/valid/labels/b_jpg.rf.2.txt", b"0 0.25 0.5 0.5 1\n")]
        # No test/ folder (Roboflow names one in any case): passed over.
        res = self.imp(pid, entries, "mydata.zip")
        self.assertEqual((res["format"], res["images"], res["skipped"]), ("yolo", 2, []))
        self.assertEqual(self.shapes(res["set_id"]), {"a_jpg.rf.1.jpg": [box("nut", 10, 5, 20, 10)],
                                                      "b_jpg.rf.2.jpg": [box("bolt", 0, 0, 20, 20)]})
        # A split data.yaml names that is not in the archive is reported (test is not).
        entries[0] = ("mydata/data.yaml", yaml.replace(b"../valid/images", b"../val/images"))
        entries[2] = ("mydata/train/images/a_jpg.rf.1.jpg", self.png())
        entries[4] = ("mydata/valid/images/b_jpg.rf.2.jpg", self.png())
        res = self.imp(pid, entries, "mydata.zip")
        self.assertEqual(res["images"], 2)
        self.assertEqual(self.skipped(res), {"data.yaml": "line 2: val: '../val/images' is not in the archive"})

    # ---- Pascal VOC / LabelImg / CVAT -------------------------------------------------------------
    VOC = """<?xml version="1.0" encoding="ISO-8859-1"?>
<!-- written by LabelImg / CVAT -->
<annotation verified="yes">
  <folder>JPEGImages</folder>
  <filename>%s</filename>
  <path>C:\\\\Users\\\\me\\\\%s</path>
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
    <attributes><attribute><name>rusty</name><value>true</value></attribute></attributes>
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
        pid = self.project()
        size = "<size><width>40</width><height>20</height><depth>3</depth></size>"
        files = {"a": ("a.png", size), "b": ("b.jpg", "<size><width>0</width><height>0</height></size>"),
                 "c": ("photo_c.png", ""), "e": ("e", ""), "f": ("f.jpg", "")}
        entries = [("JPEGImages/a.png", self.png()), ("JPEGImages/b.PNG", self.png()),  # <filename> says .jpg
                   ("JPEGImages/photo_c.png", self.png()),  # not the xml's name
                   ("JPEGImages/e.png", self.png()),  # <filename> without an extension
                   ("JPEGImages/F.BMP.png", self.png()),  # no image for f.xml
                   ("ImageSets/Main/default.txt", b"a\nb\nc\ne\n"), ("labelmap.txt", b"# label:color_rgb\nbolt:1,2,3\n"),
                   ("SegmentationClass/a.png", self.png())]
        for stem, (fn, sz) in files.items():
            entries.append(("Annotations/%s.xml" % stem, (self.VOC % (fn, fn, sz)).encode("latin-1")))
        res = self.imp(pid, entries, "cvat-voc.zip")
        self.assertEqual((res["format"], res["images"], res["difficult"]), ("voc", 4, 4))
        self.assertEqual(self.labels(pid), ["bolt", "café"])
        self.assertEqual(self.task(res["set_id"]), "det")
        # 1-based inclusive pixel indices: x = xmin - 1, w = xmax - xmin + 1; parts are no objects;
        # <difficult> is kept as the flag.
        want = [box("bolt", 11.5, 2, 18.75, 16), box("café", 0, 0, 40, 20, difficult=True)]
        self.assertEqual(self.shapes(res["set_id"]), {"a.png": want, "b.PNG": want, "photo_c.png": want, "e.png": want})
        sk = self.skipped(res)
        self.assertIn("its image 'f.jpg' is not in the archive", sk["Annotations/f.xml"])
        self.assertIn("no annotation file names this image", sk["JPEGImages/F.BMP.png"])
        self.assertIn("a VOC segmentation mask", sk["SegmentationClass/a.png"])
        # LabelImg's default layout: each XML beside its image, no Annotations/ folder.
        res = self.imp(pid, [("shots/x.png", self.png()), ("shots/x.xml", (self.VOC % ("x.png", "x.png", size)).encode("latin-1")),
                             ("shots/y.png", self.png())], "labelimg.zip")
        self.assertEqual((res["format"], res["images"]), ("voc", 1))
        self.assertEqual(self.shapes(res["set_id"]), {"x.png": want})
        self.assertIn("no annotation file names this image", self.skipped(res)["shots/y.png"])
        # A malformed object: the file is skipped naming the object and its line.
        bad = b"<annotation><filename>g.png</filename>\n<object><name>bolt</name>\n<bndbox><xmin>1</xmin></bndbox></object></annotation>"
        res = self.imp(pid, [("Annotations/g.xml", bad), ("JPEGImages/g.png", self.png()),
                             ("Annotations/h.xml", (self.VOC % ("h.png", "h.png", size)).encode("latin-1")),
                             ("JPEGImages/h.png", self.png())], "bad-voc.zip")
        self.assertEqual(res["images"], 1)
        self.assertIn("object 1 ('bolt', line 2) has no numeric <bndbox>", self.skipped(res)["Annotations/g.xml"])

    # ---- COCO / Roboflow / Label Studio / CVAT ----------------------------------------------------
    @staticmethod
    def coco_doc(prefix=""):
        return {"info": {"description": "export"}, "licenses": [{"id": 1, "name": "CC BY 4.0"}],
                "categories": [{"id": 0, "name": "hardware", "supercategory": "none"},
                               {"id": 1, "name": "bolt", "supercategory": "hardware"},
                               {"id": 5, "name": "nut", "supercategory": "hardware"}],
                "images": [{"id": 0, "file_name": "sub/dir/%sa.png" % prefix, "width": 40, "height": 20},
                           {"id": 1, "file_name": prefix + "b.png"}],
                "annotations": [
                    {"id": 1, "image_id": 0, "category_id": 1, "bbox": [1.5, 2.25, 10.5, 5.0],
                     "segmentation": [[1.5, 2.25, 12, 2.25, 12, 7.25]]},  # no area, no iscrowd
                    {"id": 2, "image_id": 1, "category_id": 5, "bbox": [0, 0, 5, 5], "iscrowd": 1, "area": 25,
                     "segmentation": {"counts": [0, 5, 15, 5, 775], "size": [20, 40]}}]}

    def test_coco_roboflow(self):
        pid = self.project()
        entries = []
        for split in ("train", "valid", "test"):
            entries += [("%s/_annotations.coco.json" % split, json.dumps(self.coco_doc(split + "_")).encode()),
                        ("%s/sub/dir/%s_a.png" % (split, split), self.png()), ("%s/%s_b.png" % (split, split), self.png())]
        entries.append(("README.roboflow.txt", b"Exported via roboflow.com\n"))
        res = self.imp(pid, entries, "roboflow-coco.zip")
        self.assertEqual((res["format"], res["images"], res["crowd"], res["skipped"]), ("coco", 6, 3, []))
        # Roboflow's dataset-level category (id 0, supercategory "none") is no label.
        self.assertEqual(self.labels(pid), ["bolt", "nut"])
        self.assertEqual(self.task(res["set_id"]), "seg")
        got = self.shapes(res["set_id"])
        self.assertEqual(got["valid_a.png"], [{"type": "polygon", "label": "bolt", "points": [[1.5, 2.25], [12, 2.25], [12, 7.25]],
                                               "source": "human"}])
        self.assertEqual(got["test_b.png"], [{"type": "mask", "label": "nut", "rle": {"size": [20, 40], "counts": "05?0hg0"},
                                              "iscrowd": True, "source": "human"}])
        # A box that uses it: that image is skipped, naming the annotation and the category.
        doc = self.coco_doc()
        doc["annotations"][1]["category_id"] = 0
        res = self.imp(pid, [("_annotations.coco.json", json.dumps(doc).encode()), ("sub/dir/a.png", self.png()),
                             ("b.png", self.png())], "rf2.zip")
        self.assertEqual(res["images"], 1)
        self.assertIn("annotation 2: category_id 0 ('hardware') is the supercategory of the other categories",
                      self.skipped(res)["b.png"])

    def test_coco_label_studio_and_cvat(self):
        # Label Studio: result.json and images/ (a Windows separator too), boxes only: a det set.
        pid = self.project()
        doc = self.coco_doc()
        doc["categories"] = [{"id": 0, "name": "bolt"}, {"id": 7, "name": "nut"}]
        doc["images"][0]["file_name"] = "images\\a.png"
        doc["images"][1]["file_name"] = "images/b.png"
        doc["annotations"][0].pop("segmentation")
        doc["annotations"][0]["category_id"] = 0
        doc["annotations"][1].update(category_id=7, segmentation=[], iscrowd=0, ignore=0)
        res = self.imp(pid, [("result.json", json.dumps(doc).encode()), ("images/a.png", self.png()),
                             ("images/b.png", self.png())], "project-1-at-2024.zip")
        self.assertEqual((res["format"], res["images"], res["skipped"]), ("coco", 2, []))
        self.assertEqual(self.task(res["set_id"]), "det")
        # A result.json that is not JSON fails the import naming it (never imported as plain images).
        r = self.imp(self.project(), [("result.json", b'{"images": [,]}'), ("images/a.png", self.png())], status=422)
        self.assertIn("result.json: line 1 column", r["error"]["message"])
        self.assertEqual(self.shapes(res["set_id"]), {"a.png": [box("bolt", 1.5, 2.25, 10.5, 5)],
                                                      "b.png": [box("nut", 0, 0, 5, 5)]})
        # CVAT: annotations/instances_default.json and images/; an annotation of an unknown image
        # and an image record whose file is missing are reported naming them.
        pid = self.project()
        doc = self.coco_doc()
        doc["categories"] = [{"id": 1, "name": "bolt", "supercategory": ""}, {"id": 2, "name": "nut", "supercategory": ""}]
        doc["annotations"][1].update(category_id=2, segmentation=[], iscrowd=0, attributes={"occluded": False})
        doc["images"].append({"id": 4, "file_name": "gone.png", "width": 40, "height": 20})
        doc["annotations"].append({"id": 3, "image_id": 9, "category_id": 1, "bbox": [0, 0, 1, 1]})
        res = self.imp(pid, [("annotations/instances_default.json", json.dumps(doc).encode()),
                             ("images/sub/dir/a.png", self.png()), ("images/b.png", self.png())], "cvat.zip")
        self.assertEqual((res["format"], res["images"]), ("coco", 2))
        self.assertEqual(self.labels(pid), ["bolt", "nut"])
        sk = self.skipped(res)
        self.assertIn("annotation 3: image_id 9 is not an image of the file (left out)", sk["annotations/instances_default.json"])
        self.assertIn("named in annotations/instances_default.json (image id 4) but not found", sk["gone.png"])
        got = self.shapes(res["set_id"])
        self.assertEqual(got["a.png"], [{"type": "polygon", "label": "bolt", "points": [[1.5, 2.25], [12, 2.25], [12, 7.25]],
                                         "source": "human"}])
        self.assertEqual(got["b.png"], [rect_polygon("nut", 0, 0, 5, 5)])


if __name__ == "__main__":
    unittest.main()
