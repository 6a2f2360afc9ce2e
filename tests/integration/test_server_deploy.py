"""Deployments over real HTTP (issue 5, "Deployment"): a classifier version deployed in one
call, predict on a raw JPEG and a multipart PNG giving what `autocv predict --json` gives,
concurrent predicts, a version switch (and rollback) under load without a failed request, the
KServe v2 metadata and inference calls against predict and `autocv infer`, corrupt images,
unknown deployments, the roles that may not deploy, deletion while requests run, and a restart
that loads the deployments again (one whose model is gone is marked failed, and a PATCH
reloads it).

The model versions are real model directories trained here for one epoch, copied under the
server's data folder and recorded in the models and model_versions tables with sqlite3, so
these tests do not depend on the model repository's upload route."""
import http.client
import io
import json
import os
import random
import shutil
import sqlite3
import threading
import time
import unittest

import numpy as np

from helpers import make_imagefolder, read, run, shape_image, tmpdir
from routes_images import multipart
from server import Server

PASSWORD = "user-password-123"
USERS = {"eng": ["engineer"], "ope": ["operator"], "ann": ["annotator"], "vie": ["viewer"], "rev": ["reviewer"]}
CLASSES = ["bar_h", "bar_v", "square"]


def train_models(root):
    """Two versions of a 3-class shapes classifier (different seeds, so different answers)."""
    data = make_imagefolder(os.path.join(root, "shapes"), classes=3, per_class=12)
    dirs = []
    for seed in (1, 2):
        out = os.path.join(root, "model%d" % seed)
        run("train", "--task", "cls", "--data", data, "--out", out, "--epochs", "1", "--imgsz", "32", "--threads",
            "2", "--seed", seed, check=True)
        dirs.append(out)
    return dirs


def register_model(data_dir, name, version_dirs, task="cls"):
    """Copies model directories to DATA/models/<model id>/<version> and records them as the
    versions 1.. of model name (what the repository does on upload); returns the model id."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    db = sqlite3.connect(os.path.join(data_dir, "autocv.db"), timeout=30)
    try:
        cur = db.execute("INSERT INTO models(name, task, created_at, updated_at) VALUES (?, ?, ?, ?)",
                         (name, task, now, now))
        mid = cur.lastrowid
        for v, src in enumerate(version_dirs, 1):
            rel = "models/%d/%d" % (mid, v)
            shutil.copytree(src, os.path.join(data_dir, rel))
            try:
                classes = json.loads(read(os.path.join(src, "model.json")))["classes"]
            except (OSError, ValueError, KeyError):
                classes = []  # a broken model (tests of refusals)
            db.execute("INSERT INTO model_versions(model_id, version, task, source, dir, classes_json, created_at) "
                       "VALUES (?, ?, ?, 'upload', ?, ?, ?)", (mid, v, task, rel, json.dumps(classes), now))
        db.commit()
    finally:
        db.close()
    return mid


def jpeg_of(png, size=None, quality=90):
    from PIL import Image
    im = Image.open(io.BytesIO(png)).convert("RGB")
    if size:
        im = im.resize(size)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def cli_predict(model_dir, path, topk):
    rc, out, err = run("predict", "--model", model_dir, "--topk", topk, "--json", path)
    assert rc == 0, err
    return json.loads(out.strip().splitlines()[-1])


class Client:
    """One keep-alive connection (one per thread)."""

    def __init__(self, port, token):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.token = token

    def request(self, method, path, body=None, content_type=None):
        h = {"Authorization": "Bearer " + self.token}
        if content_type:
            h["Content-Type"] = content_type
        self.conn.request(method, path, body=body, headers=h)
        r = self.conn.getresponse()
        data = r.read()
        if r.getheader("Connection", "").lower() == "close":
            self.conn.close()
        return r.status, (json.loads(data) if data else None)

    def close(self):
        self.conn.close()


def start_server(data=None):
    srv = Server(data=data).start()
    admin = srv.admin_token()
    tokens = {"admin": admin}
    for name, roles in USERS.items():
        r = srv.request("POST", "/api/v1/users", admin, {"username": name, "password": PASSWORD, "roles": roles})
        assert r.status == 201, r
        tokens[name] = srv.login(name, PASSWORD)
    return srv, tokens


class TestServerDeploy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tmpdir()
        cls.models = train_models(cls.tmp)
        cls.srv, cls.tokens = start_server()
        register_model(cls.srv.data, "shapes", cls.models)
        # images: a 50x40 JPEG (resized by preprocessing) and a 32x32 PNG (the model's size)
        rng = random.Random(5)
        cls.png = shape_image(2, rng)
        cls.jpeg = jpeg_of(shape_image(1, rng), size=(50, 40))
        cls.png_path = os.path.join(cls.tmp, "img.png")
        cls.jpeg_path = os.path.join(cls.tmp, "img.jpg")
        with open(cls.png_path, "wb") as f:
            f.write(cls.png)
        with open(cls.jpeg_path, "wb") as f:
            f.write(cls.jpeg)

    @classmethod
    def tearDownClass(cls):
        cls.srv.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def req(self, method, path, who="admin", **kw):
        return self.srv.request(method, path, self.tokens[who], **kw)

    def deploy(self, name, version=1, threads=1, who="eng"):
        r = self.req("POST", "/api/v1/deployments", who, json_body={"model": "shapes", "version": version,
                                                                     "name": name, "threads": threads})
        self.assertEqual(r.status, 201, r)
        return r.json()

    def predict(self, dep_id, data, content_type="image/jpeg", topk=None, who="eng"):
        q = "?topk=%d" % topk if topk else ""
        return self.req("POST", "/api/v1/deployments/%d/predict%s" % (dep_id, q), who, data=data,
                        content_type=content_type)

    def assert_same_as_cli(self, answer, model_dir, path, topk):
        cli = cli_predict(model_dir, path, topk)
        self.assertEqual(answer["label"], cli["label"])
        self.assertEqual([p["label"] for p in answer["predictions"]], [p["label"] for p in cli["topk"]])
        for a, b in zip(answer["predictions"], cli["topk"]):
            self.assertAlmostEqual(a["score"], b["score"], delta=1e-5)
            self.assertEqual(CLASSES[a["index"]], a["label"])
        self.assertAlmostEqual(answer["score"], cli["score"], delta=1e-5)

    # ---- create ------------------------------------------------------------------------------
    def test_create_and_read(self):
        dep = self.deploy("read-me", version=2, threads=2, who="ope")
        for k in ("id", "name", "model", "version", "model_version_id", "task", "threads", "status", "classes",
                  "created_at", "updated_at", "stats"):
            self.assertIn(k, dep)
        self.assertEqual((dep["name"], dep["model"], dep["version"], dep["task"], dep["threads"], dep["status"]),
                         ("read-me", "shapes", 2, "cls", 2, "ready"))
        self.assertEqual(dep["classes"], CLASSES)
        self.assertEqual(dep["input"], {"channels": 3, "height": 32, "width": 32})
        self.assertEqual(dep["stats"]["requests"], 0)
        # any user reads it; the list holds it
        r = self.req("GET", "/api/v1/deployments/%d" % dep["id"], "ann")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["name"], "read-me")
        names = [d["name"] for d in self.req("GET", "/api/v1/deployments?limit=1000", "vie").json()["items"]]
        self.assertIn("read-me", names)
        # default version: the latest; default name: the model's
        r = self.req("POST", "/api/v1/deployments", "eng", json_body={"model": "shapes"})
        self.assertEqual(r.status, 201, r)
        self.assertEqual((r.json()["name"], r.json()["version"], r.json()["threads"]), ("shapes", 2, 1))
        self.assertEqual(r.headers["location"], "/api/v1/deployments/%d" % r.json()["id"])
        self.assertEqual(self.req("DELETE", "/api/v1/deployments/%d" % r.json()["id"], "eng").status, 204)

    def test_create_refusals(self):
        def create(body, who="eng"):
            return self.req("POST", "/api/v1/deployments", who, json_body=body)
        r = create({"model": "no-such-model"})
        self.assertEqual(r.status, 404, r)
        self.assertIn("no-such-model", r.json()["error"]["message"])
        r = create({"model": "shapes", "version": 9})
        self.assertEqual(r.status, 404, r)
        self.assertIn("latest is 2", r.json()["error"]["message"])
        self.assertEqual(create({"version": 1}).status, 400)
        self.assertEqual(create({"model": "shapes", "name": "bad name!"}).status, 422)
        self.assertEqual(create({"model": "shapes", "name": "x" * 101}).status, 422)
        self.assertEqual(create({"model": "shapes", "threads": 0}).status, 422)
        self.assertEqual(create({"model": "shapes", "threads": 100000}).status, 422)
        self.assertEqual(create({"model": "shapes", "colour": "red"}).status, 422)
        dep = self.deploy("taken")
        r = create({"model": "shapes", "name": "taken"})
        self.assertEqual(r.status, 409, r)
        # roles that may not deploy
        for who in ("ann", "vie", "rev"):
            r = create({"model": "shapes", "name": "by-" + who}, who)
            self.assertEqual(r.status, 403, "%s: %r" % (who, r))
            self.assertEqual(self.req("PATCH", "/api/v1/deployments/%d" % dep["id"], who,
                                      json_body={"version": 2}).status, 403)
            self.assertEqual(self.req("DELETE", "/api/v1/deployments/%d" % dep["id"], who).status, 403)
            self.assertEqual(self.predict(dep["id"], self.jpeg, who=who).status, 403)
        # a model that cannot be loaded: 422 with the reason, and nothing recorded
        broken = os.path.join(self.tmp, "broken")
        os.makedirs(broken, exist_ok=True)
        with open(os.path.join(broken, "model.json"), "w") as f:
            f.write("{not json")
        register_model(self.srv.data, "broken", [broken])
        r = create({"model": "broken"})
        self.assertEqual(r.status, 422, r)
        self.assertIn("model.json", r.json()["error"]["message"])
        names = [d["name"] for d in self.req("GET", "/api/v1/deployments?limit=1000").json()["items"]]
        self.assertNotIn("broken", names)
        # a version recorded as a detector whose directory holds a classifier, and a model without versions
        register_model(self.srv.data, "detector", [self.models[0]], task="det")
        r = create({"model": "detector"})
        self.assertEqual(r.status, 422, r)
        self.assertIn("records a det model", r.json()["error"]["message"])
        register_model(self.srv.data, "empty", [])
        r = create({"model": "empty"})
        self.assertEqual(r.status, 404, r)
        self.assertIn("no versions", r.json()["error"]["message"])

    # ---- predict -----------------------------------------------------------------------------
    def test_predict_matches_cli(self):
        dep = self.deploy("cls-a", version=1, threads=2)
        r = self.predict(dep["id"], self.jpeg, "image/jpeg", topk=3)
        self.assertEqual(r.status, 200, r)
        a = r.json()
        self.assertEqual((a["deployment"], a["model"], a["version"], a["task"]), ("cls-a", "shapes", 1, "cls"))
        self.assertEqual(a["image"], {"width": 50, "height": 40})
        self.assertEqual(len(a["predictions"]), 3)
        for k in ("decode", "preprocess", "inference", "total"):
            self.assertGreaterEqual(a["time_ms"][k], 0)
        self.assertGreaterEqual(a["time_ms"]["total"], a["time_ms"]["inference"])
        self.assert_same_as_cli(a, self.models[0], self.jpeg_path, 3)
        # a multipart PNG, in a part named 'image' (and 'file'); the default topk is all 3 here
        for field in ("image", "file"):
            body, ct = multipart([("img.png", self.png)], name=field)
            r = self.predict(dep["id"], body, ct)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["image"], {"width": 32, "height": 32})
            self.assert_same_as_cli(r.json(), self.models[0], self.png_path, 3)
        r = self.predict(dep["id"], self.png, "application/octet-stream", topk=1)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.json()["predictions"]), 1)
        self.assertEqual(self.predict(dep["id"], self.png, "image/png", topk=None, who="ope").status, 200)
        stats = self.req("GET", "/api/v1/deployments/%d" % dep["id"]).json()["stats"]
        self.assertEqual((stats["requests"], stats["errors"]), (5, 0))
        self.assertGreater(stats["mean_ms"], 0)
        # bad parameters
        self.assertEqual(self.req("POST", "/api/v1/deployments/%d/predict?topk=0" % dep["id"], "eng", data=self.png,
                                  content_type="image/png").status, 400)
        body, ct = multipart([("img.png", self.png)], name="picture")
        r = self.predict(dep["id"], body, ct)
        self.assertEqual(r.status, 400, r)
        self.assertIn("'image'", r.json()["error"]["message"])
        self.assertEqual(self.req("POST", "/api/v1/deployments/%d/predict" % dep["id"], "eng",
                                  json_body={"image": "x"}).status, 415)

    def test_concurrent_predicts(self):
        dep = self.deploy("cls-conc", version=1, threads=2)
        expect = self.predict(dep["id"], self.jpeg).json()
        results, errors = [], []

        def worker():
            c = Client(self.srv.port, self.tokens["eng"])
            try:
                for _ in range(8):
                    st, body = c.request("POST", "/api/v1/deployments/%d/predict" % dep["id"], self.jpeg,
                                         "image/jpeg")
                    (results if st == 200 else errors).append((st, body))
            except Exception as e:  # noqa: BLE001 - any failure is a test failure
                errors.append(repr(e))
            finally:
                c.close()
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(results), 64)
        for _, body in results:
            self.assertEqual(body["predictions"], expect["predictions"])
        stats = self.req("GET", "/api/v1/deployments/%d" % dep["id"]).json()["stats"]
        self.assertEqual((stats["requests"], stats["errors"], stats["in_flight"]), (65, 0, 0))

    def test_switch_version_under_load(self):
        dep = self.deploy("cls-switch", version=1, threads=2)
        path = "/api/v1/deployments/%d/predict" % dep["id"]
        v1 = self.predict(dep["id"], self.jpeg).json()
        stop = threading.Event()
        seen = [[] for _ in range(3)]
        failures = []

        def worker(i):
            c = Client(self.srv.port, self.tokens["ope"])
            try:
                while not stop.is_set():
                    st, body = c.request("POST", path, self.jpeg, "image/jpeg")
                    if st != 200:
                        failures.append((st, body))
                    else:
                        seen[i].append((body["version"], body["predictions"]))
            except Exception as e:  # noqa: BLE001
                failures.append(repr(e))
            finally:
                c.close()

        def wait_for(n):
            deadline = time.time() + 60
            while time.time() < deadline and min(len(s) for s in seen) < n and not failures:
                time.sleep(0.01)
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        try:
            wait_for(5)
            r = self.req("PATCH", "/api/v1/deployments/%d" % dep["id"], "eng", json_body={"version": 2})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["version"], 2)
            self.assertEqual(self.predict(dep["id"], self.jpeg).json()["version"], 2)  # from now on: the new one
            mark = [len(s) for s in seen]
            wait_for(max(mark) + 5)
            r = self.req("PATCH", "/api/v1/deployments/%d" % dep["id"], "ope", json_body={"version": 1})  # rollback
            self.assertEqual(r.status, 200, r)
            self.assertEqual(self.predict(dep["id"], self.jpeg).json()["version"], 1)
            mark2 = [len(s) for s in seen]
            wait_for(max(mark2) + 5)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(failures, [])
        v2 = cli_predict(self.models[1], self.jpeg_path, 3)
        for s in seen:
            versions = [v for v, _ in s]
            # each client moves 1 -> 2 -> 1 once: the switch is atomic, nothing goes back and forth
            runs = [versions[0]] + [b for a, b in zip(versions, versions[1:]) if a != b]
            self.assertEqual(runs, [1, 2, 1], versions)
            for v, preds in s:
                ref = v1["predictions"] if v == 1 else v2["topk"]
                self.assertEqual([p["label"] for p in preds], [p["label"] for p in ref])
                for a, b in zip(preds, ref):
                    self.assertAlmostEqual(a["score"], b["score"], delta=1e-5)
        d = self.req("GET", "/api/v1/deployments/%d" % dep["id"]).json()
        self.assertEqual((d["version"], d["stats"]["errors"]), (1, 0))
        self.assertEqual(self.req("PATCH", "/api/v1/deployments/%d" % dep["id"], "eng",
                                  json_body={"version": 7}).status, 404)
        self.assertEqual(self.req("PATCH", "/api/v1/deployments/%d" % dep["id"], "eng", json_body={}).status, 400)
        self.assertEqual(self.predict(dep["id"], self.jpeg).json()["version"], 1)  # the failed PATCH changed nothing

    # ---- KServe v2 ---------------------------------------------------------------------------
    def preprocessed(self, png_px):
        """The model's preprocessing of a 32x32 image (stretch to its own size: identity, then
        normalization), as NCHW float32."""
        mj = json.loads(read(os.path.join(self.models[0], "model.json")))
        mean = np.array(mj["normalization"]["mean"], np.float32).reshape(3, 1, 1)
        std = np.array(mj["normalization"]["std"], np.float32).reshape(3, 1, 1)
        x = np.asarray(png_px, np.float32).transpose(2, 0, 1) / np.float32(255)
        return ((x - mean) / std)[None].astype(np.float32)

    def test_kserve_v2(self):
        dep = self.deploy("kserve-cls", version=1)
        r = self.srv.request("GET", "/v2/health/ready")
        self.assertEqual((r.status, r.json()), (200, {"ready": True}))
        self.assertEqual(self.srv.request("GET", "/v2/health/live").status, 200)
        r = self.req("GET", "/v2/models/kserve-cls", "vie")
        self.assertEqual(r.status, 200, r)
        meta = r.json()
        self.assertEqual((meta["name"], meta["versions"], meta["platform"]), ("kserve-cls", ["1"], "autocv"))
        self.assertEqual(meta["inputs"], [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 32, 32]}])
        self.assertEqual({o["name"]: o["shape"] for o in meta["outputs"]},
                         {"probabilities": [-1, 3], "logits": [-1, 3]})
        self.assertEqual(self.req("GET", "/v2/models/kserve-cls/versions/1", "ann").status, 200)
        self.assertEqual(self.req("GET", "/v2/models/kserve-cls/ready", "ann").json()["ready"], True)
        r = self.req("GET", "/v2/models/kserve-cls/versions/2", "ann")
        self.assertEqual(r.status, 404)
        self.assertIn("serves version 1", r.json()["error"]["message"])
        self.assertEqual(self.req("GET", "/v2/models/nobody", "ann").status, 404)
        self.assertEqual(self.srv.request("GET", "/v2/models/kserve-cls").status, 401)

        # the probabilities of the preprocessed image equal predict's scores
        from PIL import Image
        px = np.array(Image.open(io.BytesIO(self.png)).convert("RGB"))
        x = self.preprocessed(px)
        pred = self.predict(dep["id"], self.png, "image/png", topk=3).json()
        body = {"id": "req-42", "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                                            "data": x.tolist()}]}  # nested
        r = self.req("POST", "/v2/models/kserve-cls/versions/1/infer", "ope", json_body=body)
        self.assertEqual(r.status, 200, r)
        res = r.json()
        self.assertEqual((res["model_name"], res["model_version"], res["id"]), ("kserve-cls", "1", "req-42"))
        outs = {o["name"]: o for o in res["outputs"]}
        self.assertEqual(set(outs), {"probabilities", "logits"})  # no "outputs" in the request: both
        prob = outs["probabilities"]
        self.assertEqual((prob["shape"], prob["datatype"]), ([1, 3], "FP32"))
        for p in pred["predictions"]:
            self.assertAlmostEqual(prob["data"][p["index"]], p["score"], delta=1e-5)
        z = np.array(outs["logits"]["data"], np.float64)
        sm = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        np.testing.assert_allclose(sm, prob["data"], atol=1e-6)

        # logits of a batch of 2 random tensors (flat data) equal `autocv infer`
        xb = np.random.RandomState(0).randn(2, 3, 32, 32).astype(np.float32)
        npy_in, npy_out = os.path.join(self.tmp, "x.npy"), os.path.join(self.tmp, "y.npy")
        np.save(npy_in, xb)
        run("infer", "--model", self.models[0], "--input", npy_in, "--output", npy_out, check=True)
        ref = np.load(npy_out)
        body = {"inputs": [{"name": "input", "shape": [2, 3, 32, 32], "datatype": "FP32",
                            "data": xb.ravel().tolist()}], "outputs": [{"name": "logits"}]}
        r = self.req("POST", "/v2/models/kserve-cls/infer", "eng", json_body=body)
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("id", r.json())
        [out] = r.json()["outputs"]
        self.assertEqual((out["name"], out["shape"]), ("logits", [2, 3]))
        np.testing.assert_allclose(np.array(out["data"]).reshape(2, 3), ref.reshape(2, 3), atol=1e-5)

        # malformed requests name the field
        def bad(mutate, field, path="/v2/models/kserve-cls/infer"):
            b = {"inputs": [{"name": "input", "shape": [1, 3, 32, 32], "datatype": "FP32",
                             "data": [0.0] * 3072}]}
            mutate(b)
            r = self.req("POST", path, "eng", json_body=b)
            self.assertEqual(r.status, 400, (field, r))
            self.assertIn(field, r.json()["error"]["message"])
        bad(lambda b: b["inputs"][0].update(datatype="INT8"), "inputs[0].datatype")
        bad(lambda b: b["inputs"][0].update(shape=[1, 3, 28, 28]), "inputs[0].shape")
        bad(lambda b: b["inputs"][0].update(shape=[1, 3, 32]), "inputs[0].shape")
        bad(lambda b: b["inputs"][0].update(data=[0.0] * 3071), "inputs[0].data")
        bad(lambda b: b["inputs"][0].update(data=[0.0] * 3073), "inputs[0].data")
        bad(lambda b: b["inputs"][0].update(data=["x"] * 3072), "inputs[0].data")
        bad(lambda b: b["inputs"][0].update(name="images"), "inputs[0].name")
        bad(lambda b: b.update(inputs=[]), "inputs")
        bad(lambda b: b.update(outputs=[{"name": "boxes"}]), "outputs[0].name")
        r = self.req("POST", "/v2/models/kserve-cls/versions/3/infer", "eng", json_body=body)
        self.assertEqual(r.status, 404)
        self.assertIn("serves version 1", r.json()["error"]["message"])
        self.assertEqual(self.req("POST", "/v2/models/kserve-cls/infer", "ann", json_body=body).status, 403)
        self.assertEqual(self.req("POST", "/v2/models/kserve-cls/infer", "vie", json_body=body).status, 403)

    # ---- bad input ---------------------------------------------------------------------------
    def test_bad_images_and_unknown_deployments(self):
        dep = self.deploy("cls-bad")
        for data, ctype in ((b"this is not an image at all", "image/jpeg"), (self.jpeg[:len(self.jpeg) // 2],
                                                                            "image/jpeg"),
                            (self.png[:60], "image/png"), (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image/png")):
            r = self.predict(dep["id"], data, ctype)
            self.assertIn(r.status, (400, 422), r)
            self.assertTrue(r.json()["error"]["message"], r)
        r = self.predict(dep["id"], b"this is not an image at all")
        self.assertIn("JPEG", r.json()["error"]["message"])  # the decoder's reason
        r = self.req("POST", "/api/v1/deployments/%d/predict" % dep["id"], "eng", data=b"", content_type="image/png")
        self.assertEqual(r.status, 400, r)
        self.assertEqual(self.srv.request("GET", "/healthz").status, 200)
        self.assertEqual(self.predict(dep["id"], self.jpeg).status, 200)  # still serving
        stats = self.req("GET", "/api/v1/deployments/%d" % dep["id"]).json()["stats"]
        self.assertEqual((stats["requests"], stats["errors"]), (6, 5))
        # unknown deployments
        self.assertEqual(self.predict(999999, self.jpeg).status, 404)
        self.assertEqual(self.req("GET", "/api/v1/deployments/999999").status, 404)
        self.assertEqual(self.req("PATCH", "/api/v1/deployments/999999", json_body={"version": 1}).status, 404)
        self.assertEqual(self.req("DELETE", "/api/v1/deployments/999999").status, 404)
        self.assertEqual(self.req("POST", "/v2/models/nobody/infer", json_body={"inputs": []}).status, 404)

    # ---- delete and restart --------------------------------------------------------------------
    def test_delete_while_predicting(self):
        dep = self.deploy("cls-gone", threads=2)
        path = "/api/v1/deployments/%d/predict" % dep["id"]
        stop = threading.Event()
        statuses, failures = [], []

        def worker():
            c = Client(self.srv.port, self.tokens["eng"])
            try:
                while not stop.is_set():
                    st, _ = c.request("POST", path, self.jpeg, "image/jpeg")
                    statuses.append(st)
                    if st == 404:
                        return
            except Exception as e:  # noqa: BLE001
                failures.append(repr(e))
            finally:
                c.close()
        threads = [threading.Thread(target=worker) for _ in range(3)]
        for t in threads:
            t.start()
        deadline = time.time() + 30
        while len(statuses) < 6 and time.time() < deadline:
            time.sleep(0.01)
        self.assertEqual(self.req("DELETE", "/api/v1/deployments/%d" % dep["id"], "ope").status, 204)
        for t in threads:
            t.join(30)
        stop.set()
        self.assertEqual(failures, [])
        self.assertEqual(set(statuses), {200, 404}, statuses)  # answered on the old model, then gone
        self.assertEqual(self.req("GET", "/api/v1/deployments/%d" % dep["id"]).status, 404)
        self.assertEqual(self.req("GET", "/v2/models/cls-gone", "eng").status, 404)
        # the name is free again
        self.assertEqual(self.deploy("cls-gone")["name"], "cls-gone")

    def test_restart_loads_deployments(self):
        srv, tokens = start_server()
        try:
            register_model(srv.data, "shapes", self.models)
            register_model(srv.data, "doomed", [self.models[0], self.models[1]])
            r = srv.request("POST", "/api/v1/deployments", tokens["eng"], {"model": "shapes", "version": 2,
                                                                          "name": "keep", "threads": 2})
            self.assertEqual(r.status, 201, r)
            keep = r.json()
            r = srv.request("POST", "/api/v1/deployments", tokens["eng"], {"model": "doomed", "version": 1})
            self.assertEqual(r.status, 201, r)
            doomed = r.json()
            before = srv.request("POST", "/api/v1/deployments/%d/predict" % keep["id"], tokens["eng"], data=self.jpeg,
                                 content_type="image/jpeg").json()
            self.assertEqual(srv.stop(), 0)
            # the doomed model's version 1 disappears while the server is down
            db = sqlite3.connect(os.path.join(srv.data, "autocv.db"))
            rel = db.execute("SELECT dir FROM model_versions WHERE id = ?", (doomed["model_version_id"],)).fetchone()[0]
            db.close()
            shutil.rmtree(os.path.join(srv.data, rel))
            srv.start()
            tokens = {k: srv.login(k, PASSWORD) for k in USERS}
            tokens["admin"] = srv.admin_token()
            items = {d["name"]: d for d in srv.request("GET", "/api/v1/deployments", tokens["vie"]).json()["items"]}
            self.assertEqual(set(items), {"keep", "doomed"})
            self.assertEqual((items["keep"]["status"], items["keep"]["version"], items["keep"]["threads"]),
                             ("ready", 2, 2))
            self.assertEqual(items["doomed"]["status"], "failed")
            self.assertIn("cannot be loaded", items["doomed"]["error"])
            after = srv.request("POST", "/api/v1/deployments/%d/predict" % keep["id"], tokens["eng"], data=self.jpeg,
                                content_type="image/jpeg")
            self.assertEqual(after.status, 200, after)
            self.assertEqual(after.json()["predictions"], before["predictions"])
            # the failed one answers 409 with the reason until a PATCH loads a version
            r = srv.request("POST", "/api/v1/deployments/%d/predict" % doomed["id"], tokens["eng"], data=self.jpeg,
                            content_type="image/jpeg")
            self.assertEqual(r.status, 409, r)
            self.assertEqual(srv.request("GET", "/v2/models/doomed/ready", tokens["eng"]).status, 400)
            r = srv.request("PATCH", "/api/v1/deployments/%d" % doomed["id"], tokens["ope"], {"version": 2})
            self.assertEqual(r.status, 200, r)
            self.assertEqual((r.json()["status"], r.json()["error"], r.json()["version"]), ("ready", None, 2))
            r = srv.request("POST", "/api/v1/deployments/%d/predict" % doomed["id"], tokens["eng"], data=self.jpeg,
                            content_type="image/jpeg")
            self.assertEqual(r.status, 200, r)
            # the deployed version cannot be deleted from the repository (schema: RESTRICT)
            db = sqlite3.connect(os.path.join(srv.data, "autocv.db"), timeout=30)
            db.execute("PRAGMA foreign_keys = ON")
            with self.assertRaises(sqlite3.IntegrityError):
                db.execute("DELETE FROM model_versions WHERE id = ?", (keep["model_version_id"],))
            db.close()
        finally:
            srv.cleanup()


if __name__ == "__main__":
    unittest.main()
