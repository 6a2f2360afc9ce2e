"""Blob references and crash safety over real HTTP (issue 3).

- Deleting a project releases the blob references of everything it deletes (its images, their
  thumbnails, its dataset versions' items) and removes the files nothing refers to any more at
  once, without a restart; bytes another project still uses survive. Deleting one image or one
  version still counts each reference once (schema v3 triggers, no manual unref beside them).
- The server killed with SIGKILL while annotators save documents (and an uploader uploads)
  restarts on the same data directory with every acknowledged write present, and nothing
  half-written: every document parses, the database passes integrity_check and
  foreign_key_check, and every acknowledged upload's file is complete."""
import hashlib
import http.client
import json
import os
import random
import sqlite3
import threading
import time
import unittest

from routes_images import multipart, random_png, upload
from server import Server

PASSWORD = "user-password-123"
W, H = 64, 48


def blob_path(data, h):
    return os.path.join(data, "blobs", h[:2], h)


def blob_files(data):
    out = set()
    for d, _, files in os.walk(os.path.join(data, "blobs")):
        out.update(files)
    return out


def db_ro(data):
    return sqlite3.connect("file:%s?mode=ro" % os.path.join(data, "autocv.db"), uri=True)


class TestProjectDeleteBlobs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server().start()
        cls.admin = cls.srv.admin_token()

    @classmethod
    def tearDownClass(cls):
        cls.srv.cleanup()

    def req(self, method, path, body=None, status=None, **kw):
        r = self.srv.request(method, path, self.admin, json_body=body, **kw)
        if status is not None:
            self.assertEqual(r.status, status, r)
        return r

    def project(self, name):
        pid = self.req("POST", "/api/v1/projects", {"name": name}, 201).json()["id"]
        self.req("POST", "/api/v1/projects/%d/labels" % pid, {"labels": [{"name": "a"}, {"name": "b"}]}, 201)
        return pid

    def upload(self, pid, files):
        r = upload(self.srv, self.admin, pid, files)
        self.assertEqual(r.status, 201, r)
        return r.json()["images"]

    def version(self, pid, image_ids, name):
        """An accepted cls set over image_ids and a version of it; returns the version id."""
        sid = self.req("POST", "/api/v1/projects/%d/annotation-sets" % pid,
                       {"name": name, "task": "cls", "image_ids": image_ids}, 201).json()["id"]
        for n, iid in enumerate(image_ids):
            item = "/api/v1/annotation-sets/%d/items/%d" % (sid, iid)
            self.req("PUT", item, {"revision": 0, "tags": ["ab"[n % 2]]}, 200)
            self.req("POST", item + "/submit", None, 200)
            self.req("POST", item + "/review", {"decision": "accept"}, 200)
        return self.req("POST", "/api/v1/annotation-sets/%d/versions" % sid,
                        {"name": name + " v1", "split": {"train": 0.5, "val": 0.5, "test": 0}, "seed": 1},
                        201).json()["id"]

    def refs(self):
        """{hash: refs} from the blobs table, checked against a recount from the rows that hold
        references (what acv_blobs_gc would compute at a restart)."""
        with db_ro(self.srv.data) as db:
            table = dict(db.execute("SELECT hash, refs FROM blobs").fetchall())
            counted = dict(db.execute(
                "SELECT hash, count(*) FROM (SELECT blob_hash AS hash FROM images UNION ALL "
                "SELECT thumb_hash FROM images WHERE thumb_hash IS NOT NULL UNION ALL "
                "SELECT blob_hash FROM dataset_version_items) GROUP BY hash").fetchall())
            self.assertEqual(db.execute("PRAGMA foreign_key_check").fetchall(), [])
        self.assertEqual(table, counted)
        return table

    def test_schema_has_blob_indexes(self):
        self.assertGreaterEqual(self.req("GET", "/healthz", status=200).json()["schema_version"], 3)
        with db_ro(self.srv.data) as db:
            idx = {r[0]: r[1] for r in db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'")}
            plan = " ".join(r[-1] for r in db.execute(
                "EXPLAIN QUERY PLAN SELECT 1 FROM dataset_version_items WHERE blob_hash = 'x'"))
        self.assertIn("ON images(blob_hash)", idx["images_blob"])
        self.assertIn("ON images(thumb_hash)", idx["images_thumb"])
        self.assertIn("ON dataset_version_items(blob_hash)", idx["dataset_version_items_blob"])
        self.assertIn("dataset_version_items_blob", plan)

    def test_project_delete_collects_blobs(self):
        data = self.srv.data
        rng = random.Random(7)
        shared = random_png(W, H, seed=4242)
        pa, pb = self.project("blobs A"), self.project("blobs B")
        own = self.upload(pa, [("a%d.png" % i, random_png(W, H, seed=rng.randrange(1 << 30))) for i in range(6)])
        both_a = self.upload(pa, [("shared.png", shared)])[0]
        both_b = self.upload(pb, [("shared-again.png", shared)])[0]
        self.assertEqual((both_a["hash"], both_a["thumb_hash"]), (both_b["hash"], both_b["thumb_hash"]))
        only_a = {im["hash"] for im in own} | {im["thumb_hash"] for im in own}
        kept = {both_a["hash"], both_a["thumb_hash"]}
        self.assertTrue(only_a.isdisjoint(kept))
        # Two versions in A: the shared image is in one, and one image survives only in a version.
        self.version(pa, [im["id"] for im in own[:4]] + [both_a["id"]], "set one")
        self.version(pa, [im["id"] for im in own[2:5]], "set two")
        self.req("DELETE", "/api/v1/images/%d" % own[0]["id"], status=204)
        refs = self.refs()
        self.assertFalse(os.path.exists(blob_path(data, own[0]["thumb_hash"])))  # its thumbnail: no version holds it
        self.assertEqual(refs[own[0]["hash"]], 1)  # the version's item
        self.assertEqual(refs[own[2]["hash"]], 3)  # the image and both versions
        self.assertEqual(refs[both_a["hash"]], 3)  # two projects' images and one version
        self.assertEqual(refs[both_a["thumb_hash"]], 2)
        for h in only_a - {own[0]["thumb_hash"]}:
            self.assertTrue(os.path.exists(blob_path(data, h)), h)

        self.req("DELETE", "/api/v1/projects/%d" % pa, status=204)
        # Gone at once, without a restart; what project B uses stays with its count.
        left = blob_files(data)
        self.assertEqual(left & only_a, set())
        self.assertEqual(left, kept)
        refs = self.refs()
        self.assertEqual(refs, {both_b["hash"]: 1, both_b["thumb_hash"]: 1})
        r = self.srv.request("GET", "/api/v1/images/%d/file" % both_b["id"], self.admin)
        self.assertEqual((r.status, r.body), (200, shared))
        self.req("GET", "/api/v1/images/%d/thumbnail" % both_b["id"], status=200)

        # Deleting one image, or one version, counts each reference exactly once.
        extra = self.upload(pb, [("extra.png", random_png(W, H, seed=99))])[0]
        vid = self.version(pb, [extra["id"], both_b["id"]], "set b")
        self.req("DELETE", "/api/v1/images/%d" % extra["id"], status=204)
        self.assertEqual(self.refs()[extra["hash"]], 1)
        self.assertTrue(os.path.exists(blob_path(data, extra["hash"])))
        self.assertFalse(os.path.exists(blob_path(data, extra["thumb_hash"])))
        self.req("DELETE", "/api/v1/dataset-versions/%d" % vid, status=204)
        self.assertFalse(os.path.exists(blob_path(data, extra["hash"])))
        self.assertEqual(self.refs(), {both_b["hash"]: 1, both_b["thumb_hash"]: 1})

        # The last project goes: the store is empty; a restart finds nothing to collect.
        self.req("DELETE", "/api/v1/projects/%d" % pb, status=204)
        self.assertEqual(blob_files(data), set())
        self.assertEqual(self.refs(), {})
        self.srv.stop()
        self.srv.start()
        self.admin = self.srv.admin_token()
        self.__class__.admin = self.admin
        self.assertNotIn("unreferenced blob files", self.srv.log_text())


class Annotator(threading.Thread):
    """Saves documents to its own images in a loop over one keep-alive connection until the
    connection fails (the server was killed) or stop is set. state: {image_id: (revision, doc)}
    acknowledged; pending: (image_id, revision, doc) sent without an answer."""

    def __init__(self, port, token, set_id, state, seed, stop):
        super().__init__(daemon=True)
        self.port, self.token, self.set_id, self.state = port, token, set_id, state
        self.rng = random.Random(seed)
        self.stop = stop
        self.pending = None
        self.acks = 0
        self.error = None

    def doc(self):
        shapes = []
        for _ in range(self.rng.randrange(1, 6)):
            x, y = self.rng.randrange(0, W - 8), self.rng.randrange(0, H - 8)
            shapes.append({"type": "box", "label": self.rng.choice(["scratch", "dent"]), "x": x, "y": y,
                           "w": self.rng.randrange(1, W - x), "h": self.rng.randrange(1, H - y)})
        return {"tags": [], "shapes": shapes}

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        ids = sorted(self.state)
        try:
            while not self.stop.is_set():
                iid = self.rng.choice(ids)
                rev, _ = self.state[iid]
                doc = self.doc()
                self.pending = (iid, rev + 1, doc)
                conn.request("PUT", "/api/v1/annotation-sets/%d/items/%d" % (self.set_id, iid),
                             body=json.dumps(dict(doc, revision=rev)),
                             headers={"Authorization": "Bearer " + self.token, "Content-Type": "application/json"})
                r = conn.getresponse()
                body = r.read()
                if r.status != 200:
                    self.error = "PUT image %d: %d %r" % (iid, r.status, body[:300])
                    return
                got = json.loads(body)
                if got["revision"] != rev + 1:
                    self.error = "PUT image %d: revision %d, expected %d" % (iid, got["revision"], rev + 1)
                    return
                self.state[iid] = (rev + 1, doc)
                self.pending = None
                self.acks += 1
        except (OSError, http.client.HTTPException):
            return  # killed: the pending save may or may not have been committed
        finally:
            conn.close()


class Uploader(threading.Thread):
    """Uploads new images (two per request) until the connection fails; acked: {hash: bytes}."""

    def __init__(self, port, token, project_id, seed, stop):
        super().__init__(daemon=True)
        self.port, self.token, self.project_id = port, token, project_id
        self.rng = random.Random(seed)
        self.stop = stop
        self.acked = {}
        self.error = None

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            while not self.stop.is_set():
                files = [("u%d.png" % self.rng.randrange(1 << 30), random_png(96, 96, seed=self.rng.randrange(1 << 62)))
                         for _ in range(2)]
                body, ct = multipart(files)
                conn.request("POST", "/api/v1/projects/%d/images" % self.project_id, body=body,
                             headers={"Authorization": "Bearer " + self.token, "Content-Type": ct})
                r = conn.getresponse()
                res = r.read()
                if r.status != 201:
                    self.error = "upload: %d %r" % (r.status, res[:300])
                    return
                for im, (_, data) in zip(json.loads(res)["images"], files):
                    self.acked[im["hash"]] = (im["id"], data)
        except (OSError, http.client.HTTPException):
            return
        finally:
            conn.close()


class TestKillDuringSaves(unittest.TestCase):
    ANNOTATORS = 6
    IMAGES_EACH = 4
    ROUNDS = 3

    def setUp(self):
        self.srv = Server().start()

    def tearDown(self):
        self.srv.cleanup()

    def test_acknowledged_saves_survive_sigkill(self):
        srv = self.srv
        admin = srv.admin_token()
        pid = srv.request("POST", "/api/v1/projects", admin, {"name": "crash"}).json()["id"]
        r = srv.request("POST", "/api/v1/projects/%d/labels" % pid, admin,
                        {"labels": [{"name": "scratch"}, {"name": "dent"}]})
        self.assertEqual(r.status, 201, r)
        n = self.ANNOTATORS * self.IMAGES_EACH
        ids = []
        for i in range(0, n, 8):
            r = upload(srv, admin, pid, [("c%02d.png" % j, random_png(W, H, seed=500 + j)) for j in range(i, i + 8)])
            self.assertEqual(r.status, 201, r)
            ids += [im["id"] for im in r.json()["images"]]
        r = srv.request("POST", "/api/v1/projects/%d/annotation-sets" % pid, admin,
                        {"name": "crash set", "task": "det", "image_ids": ids})
        self.assertEqual(r.status, 201, r)
        sid = r.json()["id"]
        tokens, states = [], []
        for a in range(self.ANNOTATORS):
            name = "crash%d" % a
            uid = srv.request("POST", "/api/v1/users", admin,
                              {"username": name, "password": PASSWORD, "roles": ["annotator"]}).json()["id"]
            r = srv.request("PUT", "/api/v1/projects/%d/members/%d" % (pid, uid), admin, {"role": "annotator"})
            self.assertEqual(r.status, 201, r)
            tokens.append(srv.login(name, PASSWORD))
            states.append({iid: (0, None) for iid in ids[a * self.IMAGES_EACH:(a + 1) * self.IMAGES_EACH]})
        uploaded = {}
        rng = random.Random(11)
        total_acks = 0
        for rnd in range(self.ROUNDS):
            stop = threading.Event()
            workers = [Annotator(srv.port, tokens[a], sid, states[a], seed=rnd * 100 + a, stop=stop)
                       for a in range(self.ANNOTATORS)]
            up = Uploader(srv.port, admin, pid, seed=rnd, stop=stop)
            for w in workers + [up]:
                w.start()
            # Kill once every annotator has been acknowledged a few times, at a random moment.
            deadline = time.time() + 30
            while time.time() < deadline and min(w.acks for w in workers) < 3:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.05, 0.4))
            srv.kill()
            stop.set()
            for w in workers + [up]:
                w.join(30)
                self.assertFalse(w.is_alive())
                self.assertIsNone(w.error)
            self.assertGreaterEqual(min(w.acks for w in workers), 3)
            total_acks += sum(w.acks for w in workers)
            uploaded.update(up.acked)

            srv.start()
            for a, w in enumerate(workers):
                for iid, (rev, doc) in list(states[a].items()):
                    r = srv.request("GET", "/api/v1/annotation-sets/%d/items/%d?lock=false" % (sid, iid), admin)
                    self.assertEqual(r.status, 200, r)
                    item = r.json()
                    got = (item["revision"], [{k: s[k] for k in ("type", "label", "x", "y", "w", "h")}
                                              for s in item["shapes"]])
                    acked = (rev, doc["shapes"] if doc else [])
                    if got != acked:
                        # Only the one save in flight at the kill may have landed unacknowledged.
                        self.assertIsNotNone(w.pending, "image %d: %r, acknowledged %r" % (iid, got, acked))
                        p_iid, p_rev, p_doc = w.pending
                        self.assertEqual((iid, got), (p_iid, (p_rev, p_doc["shapes"])))
                        states[a][iid] = (p_rev, p_doc)
            for h, (iid, data) in uploaded.items():
                r = srv.request("GET", "/api/v1/images/%d/file" % iid, admin)
                self.assertEqual((r.status, hashlib.sha256(r.body).hexdigest()), (200, h))
        self.assertGreater(total_acks, self.ROUNDS * self.ANNOTATORS * 3 - 1)
        self.assertGreater(len(uploaded), 0)

        # Nothing half-written: the database is sound, every document parses, every blob is whole.
        self.assertEqual(srv.stop(), 0)
        with db_ro(srv.data) as db:
            self.assertEqual(db.execute("PRAGMA integrity_check").fetchall(), [("ok",)])
            self.assertEqual(db.execute("PRAGMA foreign_key_check").fetchall(), [])
            rows = db.execute("SELECT image_id, revision, doc_json FROM annotation_items WHERE set_id = ?",
                              (sid,)).fetchall()
            blobs = db.execute("SELECT hash, size FROM blobs").fetchall()
        self.assertEqual(len(rows), n)
        final = {iid: st for s in states for iid, st in s.items()}
        for iid, rev, doc_json in rows:
            doc = json.loads(doc_json)
            self.assertIsInstance(doc.get("shapes"), list)
            self.assertEqual(rev, final[iid][0])
        for h, size in blobs:
            with open(blob_path(srv.data, h), "rb") as f:
                data = f.read()
            self.assertEqual((len(data), hashlib.sha256(data).hexdigest()), (size, h))


if __name__ == "__main__":
    unittest.main()
