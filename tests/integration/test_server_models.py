"""The model repository over real HTTP (issue 5, "Model repository"): external models uploaded
as ONNX files and zipped model directories (versions 1, 2, ...), listing, reading, describing
and tagging, the zip download that `autocv predict` loads as it is, the ONNX export and its
re-import, models that cannot run and hostile zips refused with nothing stored, deleting
versions and models (409 while deployed), and publishing a training job's model (its error
paths; a succeeded job is simulated by a job row and a model folder, since the scheduler's
own flow is tested with the scheduler)."""
import io
import json
import os
import shutil
import sqlite3
import time
import unittest
import urllib.parse
import zipfile

from helpers import json_lines, run, tmpdir
from routes_images import multipart, random_png
from routes_models import tiny_onnx, upload_model
from server import Server

PASSWORD = "user-password-123"


def now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class TestServerModels(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(["--max-upload-mb", "8"]).start()
        cls.admin = cls.srv.admin_token()
        cls.tokens = {}
        for name, roles in (("eng", ["engineer"]), ("vie", ["viewer"])):
            r = cls.srv.request("POST", "/api/v1/users", cls.admin, {"username": name, "password": PASSWORD,
                                                                    "roles": roles})
            assert r.status == 201, r
            cls.tokens[name] = cls.srv.login(name, PASSWORD)
        cls.eng = cls.tokens["eng"]
        cls.tmp = tmpdir("autocv-models-")

    @classmethod
    def tearDownClass(cls):
        cls.srv.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- helpers ------------------------------------------------------------------------------
    def req(self, method, path, token=None, **kw):
        return self.srv.request(method, path, token or self.eng, **kw)

    def db(self):
        return sqlite3.connect(os.path.join(self.srv.data, "autocv.db"), timeout=30)

    def sql(self, query, args=()):
        db = self.db()
        try:
            cur = db.execute(query, args)
            rows = cur.fetchall()
            db.commit()
            return rows, cur.lastrowid
        finally:
            db.close()

    def version_count(self, name):
        r = self.req("GET", "/api/v1/models/%s/versions" % name)
        return r.json()["total"] if r.status == 200 else None

    def model_dirs(self):
        root = os.path.join(self.srv.data, "models")
        return sorted(os.path.relpath(os.path.join(d, x), root) for d, sub, _ in os.walk(root) for x in sub)

    def tmp_entries(self):
        return sorted(os.listdir(os.path.join(self.srv.data, "tmp")))

    def download(self, name, v, dest):
        r = self.req("GET", "/api/v1/models/%s/versions/%d/download" % (name, v))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["content-type"], "application/zip")
        self.assertEqual(r.headers["content-disposition"], 'attachment; filename="%s-v%d.zip"' % (name, v))
        with zipfile.ZipFile(io.BytesIO(r.body)) as z:
            z.extractall(dest)
            return sorted(z.namelist())

    def zip_bytes(self, files, links=()):
        """files: {name: bytes}; links: [(name, target)] written as symbolic links."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for n, data in files.items():
                z.writestr(n, data)
            for n, target in links:
                zi = zipfile.ZipInfo(n)
                zi.create_system = 3
                zi.external_attr = (0o120777 << 16)
                z.writestr(zi, target)
        return buf.getvalue()

    def model_files(self, name, v):
        """The files of a stored version, as {name: bytes} (from the download)."""
        d = os.path.join(self.tmp, "files-%s-%d" % (name, v))
        self.download(name, v, d)
        out = {}
        for f in os.listdir(d):
            with open(os.path.join(d, f), "rb") as fh:
                out[f] = fh.read()
        return out

    def predict(self, model, image):
        rc, out, err = run("predict", "--model", model, "--json", "--threads", "1", image)
        self.assertEqual(rc, 0, err)
        return json_lines(out)[0]

    # ---- uploads, reads, changes ------------------------------------------------------------
    def test_upload_versions_list_get_patch(self):
        r = upload_model(self.srv, self.eng, "Shapes", fields={"description": "first", "tags": '["a1", "b2"]'})
        self.assertEqual(r.status, 201, r)
        v1 = r.json()
        self.assertEqual(r.headers["location"], "/api/v1/models/Shapes/versions/1")
        self.assertEqual((v1["model"], v1["version"], v1["task"], v1["source"]), ("Shapes", 1, "cls", "upload"))
        self.assertEqual((v1["description"], v1["tags"], v1["classes"]), ("first", ["a1", "b2"], ["a", "b", "c"]))
        self.assertEqual(v1["input"], {"channels": 3, "height": 16, "width": 16, "mean": [0.485, 0.456, 0.406],
                                       "std": [0.229, 0.224, 0.225], "resize": "stretch"})
        self.assertEqual(v1["info"]["params"], 3 * 3 * 3 * 3 + 3)
        self.assertEqual(v1["info"]["arch"], "onnx")
        self.assertGreater(v1["info"]["gflops"], 0)
        self.assertGreater(v1["info"]["size_bytes"], 84 * 4)
        self.assertEqual((v1["lineage"]["format"], v1["lineage"]["filename"], v1["lineage"]["uploaded_by"]),
                         ("onnx", "tiny.onnx", "eng"))
        self.assertEqual((v1["evaluations"], v1["deployments"], v1["job_id"]), ([], [], None))
        # One name per line works as well as JSON; explicit normalization; a new version 2.
        r = upload_model(self.srv, self.eng, "shapes", data=tiny_onnx(seed=1), classes=None,
                         fields={"classes": "red\ngreen\n blue \n", "mean": "0.5, 0.5,0.5", "std": "0.25,0.25,0.25"})
        self.assertEqual(r.status, 201, r)
        v2 = r.json()
        self.assertEqual((v2["model"], v2["version"], v2["classes"]), ("Shapes", 2, ["red", "green", "blue"]))
        self.assertEqual((v2["input"]["mean"], v2["input"]["std"]), ([0.5] * 3, [0.25] * 3))
        self.assertEqual(r.headers["location"], "/api/v1/models/Shapes/versions/2")
        # The folders are where the rows say, complete; nothing is left in DATA/tmp.
        mid = self.req("GET", "/api/v1/models/shapes").json()["id"]
        for v in (1, 2):
            d = os.path.join(self.srv.data, "models", str(mid), str(v))
            self.assertEqual(sorted(os.listdir(d)), ["model.json", "original.onnx", "weights.safetensors"])
        self.assertEqual(self.tmp_entries(), [])
        # The model
        m = self.req("GET", "/api/v1/models/SHAPES").json()
        self.assertEqual((m["name"], m["task"], m["latest_version"], m["versions"]), ("Shapes", "cls", 2, 2))
        # Lists: substring and task filters, paging.
        self.assertEqual(upload_model(self.srv, self.eng, "other-net").status, 201)
        names = [x["name"] for x in self.req("GET", "/api/v1/models?limit=1000").json()["items"]]
        self.assertIn("Shapes", names)
        self.assertIn("other-net", names)
        page = self.req("GET", "/api/v1/models?q=HAPE").json()
        self.assertEqual([x["name"] for x in page["items"]], ["Shapes"])
        self.assertEqual(page["total"], 1)
        self.assertEqual(self.req("GET", "/api/v1/models?q=hape&task=det").json()["total"], 0)
        self.assertEqual(self.req("GET", "/api/v1/models?q=hape&task=cls").json()["total"], 1)
        vs = self.req("GET", "/api/v1/models/Shapes/versions", self.tokens["vie"]).json()
        self.assertEqual(([x["version"] for x in vs["items"]], vs["total"]), ([2, 1], 2))
        self.assertNotIn("evaluations", vs["items"][0])
        vs = self.req("GET", "/api/v1/models/Shapes/versions?limit=1&offset=1").json()
        self.assertEqual([x["version"] for x in vs["items"]], [1])
        # Description and tags of the model and of a version.
        r = self.req("PATCH", "/api/v1/models/Shapes", json_body={"description": "shape classifier",
                                                                   "tags": ["demo", "cpu"]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["description"], r.json()["tags"]), ("shape classifier", ["demo", "cpu"]))
        r = self.req("PATCH", "/api/v1/models/Shapes/versions/1", json_body={"tags": ["baseline"]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["tags"], r.json()["description"]), (["baseline"], "first"))
        self.assertEqual(self.req("GET", "/api/v1/models/Shapes/versions/1").json()["tags"], ["baseline"])
        self.assertEqual(self.req("GET", "/api/v1/models/Shapes/versions/2").json()["tags"], [])
        r = self.req("PATCH", "/api/v1/models/Shapes", json_body={"name": "renamed"})
        self.assertEqual(r.status, 422, r)
        self.assertIn("name", r.json()["error"]["message"])
        self.assertEqual(self.req("PATCH", "/api/v1/models/Shapes", json_body={"tags": "x"}).status, 400)
        self.assertEqual(self.req("PATCH", "/api/v1/models/Shapes", json_body={"tags": ["bad\ttag"]}).status, 422)
        self.assertEqual(self.req("PATCH", "/api/v1/models/Shapes/versions/9", json_body={"tags": []}).status, 404)
        # Viewers read but do not change.
        self.assertEqual(self.req("PATCH", "/api/v1/models/Shapes", self.tokens["vie"],
                                  json_body={"tags": []}).status, 403)
        self.assertEqual(upload_model(self.srv, self.tokens["vie"], "Shapes").status, 403)
        # Versions that do not exist, and {v} that is not a version number.
        for v in ("0", "3", "abc", "-1", "1x", "99999999999"):
            r = self.req("GET", "/api/v1/models/Shapes/versions/" + v)
            self.assertEqual(r.status, 404, (v, r))
        self.assertEqual(self.req("GET", "/api/v1/models/nope").status, 404)
        self.assertEqual(self.req("GET", "/api/v1/models/nope/versions").status, 404)
        # Every change is in the audit log.
        audit = self.req("GET", "/api/v1/audit?limit=1000", self.admin).json()["items"]
        acts = {(a["action"], a["target_type"]) for a in audit if a["actor"] == "eng"}
        self.assertTrue({("create", "model"), ("create", "model_version"), ("update", "model"),
                         ("update", "model_version")} <= acts, acts)

    def test_onnx_metadata_names_the_classes(self):
        meta = {"classes": json.dumps(["cat", "dog", "eel"]), "normalization": json.dumps({"mean": [0, 0, 0],
                                                                                           "std": [1, 1, 1]})}
        r = upload_model(self.srv, self.eng, "meta-net", data=tiny_onnx(metadata=meta), classes=None)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json()["classes"], ["cat", "dog", "eel"])
        self.assertEqual(r.json()["input"]["std"], [1, 1, 1])
        # Given names win over the metadata's.
        r = upload_model(self.srv, self.eng, "meta-net", data=tiny_onnx(metadata=meta))
        self.assertEqual((r.status, r.json()["classes"], r.json()["version"]), (201, ["a", "b", "c"], 2))
        # Dynamic height/width: imgsz picks the side.
        r = upload_model(self.srv, self.eng, "meta-net", data=tiny_onnx(side="H"), fields={"imgsz": "24"})
        self.assertEqual(r.status, 201, r)
        self.assertEqual((r.json()["input"]["height"], r.json()["input"]["width"]), (24, 24))

    # ---- downloads ----------------------------------------------------------------------------
    def test_download_loads_in_autocv_predict(self):
        onnx_bytes = tiny_onnx(seed=7)
        r = upload_model(self.srv, self.eng, "dl-net", data=onnx_bytes)
        self.assertEqual(r.status, 201, r)
        d = os.path.join(self.tmp, "dl-net")
        self.assertEqual(self.download("dl-net", 1, d), ["model.json", "original.onnx", "weights.safetensors"])
        with open(os.path.join(d, "original.onnx"), "rb") as f:
            self.assertEqual(f.read(), onnx_bytes)
        img = os.path.join(self.tmp, "probe.png")
        with open(img, "wb") as f:
            f.write(random_png(20, 20, seed=3))
        got = self.predict(d, img)
        # The same file run directly by the engine gives the same scores (its classes are numbered).
        onnx_path = os.path.join(self.tmp, "dl.onnx")
        with open(onnx_path, "wb") as f:
            f.write(onnx_bytes)
        ref = self.predict(onnx_path, img)
        names = {"class_0": "a", "class_1": "b", "class_2": "c"}
        self.assertEqual([names[x["label"]] for x in ref["topk"]], [x["label"] for x in got["topk"]])
        for a, b in zip(ref["topk"], got["topk"]):
            self.assertAlmostEqual(a["score"], b["score"], places=5)
        # Downloads are open to every user; unknown versions are 404.
        self.assertEqual(self.req("GET", "/api/v1/models/dl-net/versions/1/download", self.tokens["vie"]).status, 200)
        self.assertEqual(self.req("GET", "/api/v1/models/dl-net/versions/2/download").status, 404)
        self.assertEqual(self.tmp_entries(), [])

    def test_export_onnx_round_trip(self):
        r = upload_model(self.srv, self.eng, "exp-net", data=tiny_onnx(seed=5), classes=("x", "y", "z"))
        self.assertEqual(r.status, 201, r)
        r = self.req("GET", "/api/v1/models/exp-net/versions/1/export?format=onnx", self.tokens["vie"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["content-type"], "application/octet-stream")
        self.assertEqual(r.headers["content-disposition"], 'attachment; filename="exp-net-v1.onnx"')
        exported = r.body
        try:
            import onnx
        except ImportError:
            onnx = None
        if onnx is not None:
            m = onnx.load_from_string(exported)
            onnx.checker.check_model(m)
            meta = {p.key: p.value for p in m.metadata_props}
            self.assertEqual(json.loads(meta["classes"]), ["x", "y", "z"])
        # Uploaded again without class names: the export's metadata carries them, and the scores agree.
        r = upload_model(self.srv, self.eng, "exp-net", data=exported, classes=None, filename="exp.onnx")
        self.assertEqual(r.status, 201, r)
        self.assertEqual((r.json()["version"], r.json()["classes"]), (2, ["x", "y", "z"]))
        img = os.path.join(self.tmp, "exp.png")
        with open(img, "wb") as f:
            f.write(random_png(16, 16, seed=11))
        outs = []
        for v in (1, 2):
            d = os.path.join(self.tmp, "exp-%d" % v)
            self.download("exp-net", v, d)
            outs.append(self.predict(d, img)["topk"])
        self.assertEqual([x["label"] for x in outs[0]], [x["label"] for x in outs[1]])
        for a, b in zip(*outs):
            self.assertAlmostEqual(a["score"], b["score"], places=5)
        self.assertEqual(self.req("GET", "/api/v1/models/exp-net/versions/1/export?format=tflite").status, 422)
        self.assertEqual(self.req("GET", "/api/v1/models/exp-net/versions/1/export").status, 400)

    def test_zip_upload_and_raw_body(self):
        r = upload_model(self.srv, self.eng, "zip-src", data=tiny_onnx(seed=2))
        self.assertEqual(r.status, 201, r)
        files = self.model_files("zip-src", 1)
        files["metrics.json"] = json.dumps({"accuracy": 0.75}).encode()
        # Inside one top folder, with other files beside (ignored); the names replaced.
        z = self.zip_bytes({"export/" + k: v for k, v in files.items() if k != "original.onnx"})
        r = upload_model(self.srv, self.eng, "from-zip", data=z, filename="m.zip", classes=("p", "q", "r"),
                         fields={"mean": "0.1,0.2,0.3", "std": "0.5,0.5,0.5", "description": "zipped"})
        self.assertEqual(r.status, 201, r)
        v = r.json()
        self.assertEqual((v["version"], v["classes"], v["metrics"], v["description"]),
                         (1, ["p", "q", "r"], {"accuracy": 0.75}, "zipped"))
        self.assertEqual((v["input"]["mean"], v["lineage"]["format"]), ([0.1, 0.2, 0.3], "zip"))
        self.assertEqual(sorted(self.model_files("from-zip", 1)), ["metrics.json", "model.json",
                                                                   "weights.safetensors"])
        # The raw body, options in the query string.
        flat = self.zip_bytes({k: v for k, v in files.items() if k in ("model.json", "weights.safetensors")})
        r = self.req("POST", "/api/v1/models/from-zip/versions?tags=raw,body&description=raw", data=flat,
                     content_type="application/zip")
        self.assertEqual(r.status, 201, r)
        self.assertEqual((r.json()["version"], r.json()["tags"], r.json()["classes"]), (2, ["raw", "body"],
                                                                                       ["a", "b", "c"]))
        r = self.req("POST", "/api/v1/models/raw-onnx/versions?classes=%5B%22u%22,%22v%22,%22w%22%5D",
                     data=tiny_onnx(), content_type="application/octet-stream")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json()["classes"], ["u", "v", "w"])
        # Options that do not fit the model.
        for fields, why in (({"task": "det"}, "task"), ({"imgsz": "32"}, "imgsz"),
                            ({"mean": "0.5,0.5", "std": "1,1"}, "channels")):
            r = upload_model(self.srv, self.eng, "from-zip", data=flat, filename="m.zip", classes=None, fields=fields)
            self.assertEqual(r.status, 422, (fields, r))
            self.assertIn(why, r.json()["error"]["message"])
        r = upload_model(self.srv, self.eng, "from-zip", data=flat, filename="m.zip", classes=("a", "b"))
        self.assertEqual(r.status, 422, r)
        self.assertIn("2 classes", r.json()["error"]["message"])
        self.assertEqual(self.version_count("from-zip"), 2)

    # ---- refusals -------------------------------------------------------------------------------
    def assert_refused(self, r, status, words, name):
        self.assertEqual(r.status, status, r)
        msg = r.json()["error"]["message"]
        for w in words:
            self.assertIn(w, msg)
        self.assertNotIn(self.srv.data, msg)  # no server path in messages
        return msg

    def test_models_that_cannot_run_are_refused(self):
        # (no activation: NaN weights must reach the output, a ReLU would turn them into zeros)
        r = upload_model(self.srv, self.eng, "good", data=tiny_onnx(op="Identity"))
        self.assertEqual(r.status, 201, r)
        files = self.model_files("good", 1)
        dirs = self.model_dirs()
        # An operator the engine does not have: named, and nothing stored (no new model either).
        r = upload_model(self.srv, self.eng, "good", data=tiny_onnx(op="LSTM"))
        self.assert_refused(r, 422, ["LSTM", "not supported"], "good")
        r = upload_model(self.srv, self.eng, "never-made", data=tiny_onnx(op="Mish"))
        self.assert_refused(r, 422, ["Mish"], "never-made")
        self.assertEqual(self.req("GET", "/api/v1/models/never-made").status, 404)
        # Not ONNX at all; ONNX without class names.
        self.assert_refused(upload_model(self.srv, self.eng, "good", data=b"\x00garbage" * 10), 422, [], "good")
        self.assert_refused(upload_model(self.srv, self.eng, "good", classes=None), 422, ["classes"], "good")
        # A zipped model with truncated or broken weights, or without model.json.
        w = files["weights.safetensors"]
        bad = dict(files, **{"weights.safetensors": w[:len(w) - 40]})
        self.assert_refused(upload_model(self.srv, self.eng, "good", data=self.zip_bytes(bad), filename="m.zip",
                                         classes=None), 422, ["weights.safetensors"], "good")
        hdr = int.from_bytes(w[:8], "little")
        nan = w[:8 + hdr] + b"\x00\x00\xc0\x7f" * ((len(w) - 8 - hdr) // 4)
        r = upload_model(self.srv, self.eng, "good", data=self.zip_bytes(dict(files, **{"weights.safetensors": nan})),
                         filename="m.zip", classes=None)
        self.assert_refused(r, 422, ["NaN"], "good")
        r = upload_model(self.srv, self.eng, "good", data=self.zip_bytes({"weights.safetensors": w}), classes=None)
        self.assert_refused(r, 422, ["model.json"], "good")
        mj = json.loads(files["model.json"])
        mj["classes"] = ["only-one"]
        r = upload_model(self.srv, self.eng, "good", classes=None, data=self.zip_bytes(
            {"model.json": json.dumps(mj).encode(), "weights.safetensors": w}))
        self.assert_refused(r, 422, ["classes"], "good")
        # A classifier whose model.json claims to be a detector: its graph says otherwise (422).
        mj = json.loads(files["model.json"])
        mj["task"] = "det"
        r = upload_model(self.srv, self.eng, "good", classes=None, data=self.zip_bytes(
            {"model.json": json.dumps(mj).encode(), "weights.safetensors": w}))
        self.assert_refused(r, 422, ["not a detector"], "good")
        self.assertEqual(self.version_count("good"), 1)
        self.assertEqual(self.model_dirs(), dirs)
        self.assertEqual(self.tmp_entries(), [])

    def test_hostile_zips_and_bad_requests(self):
        files = {"model.json": b"{}", "weights.safetensors": b"x"}
        cases = [
            (self.zip_bytes(dict(files, **{"../x": b"evil"})), ".."),
            (self.zip_bytes(dict(files, **{"/etc/x": b"evil"})), "absolute"),
            (self.zip_bytes(files, links=[("link", "/etc/passwd")]), "link"),
            (self.zip_bytes(dict(files, **{"f%02d" % i: b"." for i in range(20)})), "entries"),
            (self.zip_bytes({"model.json": b"{}", "weights.safetensors": b"\0" * (9 << 20)}), "MiB"),
        ]
        for data, word in cases:
            r = upload_model(self.srv, self.eng, "hostile", data=data, filename="h.zip", classes=None)
            self.assertIn(r.status, (400, 413, 422), (word, r))
            self.assertIn(word, r.json()["error"]["message"], r)
        self.assertEqual(self.req("GET", "/api/v1/models/hostile").status, 404)
        # Names
        for bad in ("-x", ".x", "a b", "a/b", "x" * 101, "naïve"):
            r = upload_model(self.srv, self.eng, urllib.parse.quote(bad, safe=""))
            self.assertIn(r.status, (404, 422), (bad, r))
            if r.status == 422:
                self.assertIn("model name", r.json()["error"]["message"])
        self.assertEqual(upload_model(self.srv, self.eng, "-x").status, 422)
        self.assertEqual(upload_model(self.srv, self.eng, "x" * 101).status, 422)
        self.assertEqual(upload_model(self.srv, self.eng, "ok.name_1-2").status, 201)
        # No file; a JSON body; a file under another field; bad option values.
        body, ct = multipart([], {"classes": "[]"})
        self.assertEqual(self.req("POST", "/api/v1/models/x/versions", data=body, content_type=ct).status, 400)
        self.assertEqual(self.req("POST", "/api/v1/models/x/versions", json_body={}).status, 415)
        body, ct = multipart([("m.onnx", tiny_onnx())], {"classes": '["a","b","c"]'}, name="upload")
        self.assertEqual(self.req("POST", "/api/v1/models/x/versions", data=body, content_type=ct).status, 400)
        for fields in ({"mean": "0.5"}, {"mean": "a,b,c", "std": "1,1,1"}, {"imgsz": "big"}, {"tags": "[1"},
                       {"classes": "[1, 2, 3]"}):
            r = upload_model(self.srv, self.eng, "x", fields=fields)
            self.assertEqual(r.status, 400, (fields, r))
        for fields in ({"classes": '["a","a","b"]'}, {"classes": '["a","","b"]'}, {"std": "0,1,1", "mean": "0,0,0"},
                       {"tags": json.dumps(["t"] * 65)}, {"task": "foo"}):
            r = upload_model(self.srv, self.eng, "x", fields=fields)
            self.assertEqual(r.status, 422, (fields, r))
        self.assertEqual(self.req("GET", "/api/v1/models/x").status, 404)
        self.assertEqual(self.tmp_entries(), [])

    # ---- deletion ------------------------------------------------------------------------------
    def test_delete_versions_and_deployed_conflict(self):
        for seed in (1, 2, 3):
            self.assertEqual(upload_model(self.srv, self.eng, "del-net", data=tiny_onnx(seed=seed)).status, 201)
        m = self.req("GET", "/api/v1/models/del-net").json()
        root = os.path.join(self.srv.data, "models", str(m["id"]))
        self.assertEqual(sorted(os.listdir(root)), ["1", "2", "3"])
        v1 = self.req("GET", "/api/v1/models/del-net/versions/1").json()
        # A deployment of version 1 (the deployments API is tested on its own: a row will do).
        _, dep = self.sql("INSERT INTO deployments(name, model_version_id, created_at, updated_at) "
                          "VALUES('del-prod', ?, ?, ?)", (v1["id"], now_iso(), now_iso()))
        self.assertEqual(self.req("GET", "/api/v1/models/del-net/versions/1").json()["deployments"],
                         [{"id": dep, "name": "del-prod"}])
        r = self.req("DELETE", "/api/v1/models/del-net/versions/1")
        self.assertEqual(r.status, 409, r)
        self.assertIn("version 1 of del-net is deployed as del-prod", r.json()["error"]["message"])
        r = self.req("DELETE", "/api/v1/models/del-net")
        self.assertEqual(r.status, 409, r)
        self.assertIn("deployed as del-prod", r.json()["error"]["message"])
        self.assertEqual(sorted(os.listdir(root)), ["1", "2", "3"])
        # An undeployed version goes, row and folder.
        self.assertEqual(self.req("DELETE", "/api/v1/models/del-net/versions/2", self.tokens["vie"]).status, 403)
        self.assertEqual(self.req("DELETE", "/api/v1/models/del-net/versions/2").status, 204)
        self.assertEqual(self.req("GET", "/api/v1/models/del-net/versions/2").status, 404)
        self.assertEqual(self.req("DELETE", "/api/v1/models/del-net/versions/2").status, 404)
        self.assertEqual(sorted(os.listdir(root)), ["1", "3"])
        self.assertEqual([x["version"] for x in self.req("GET", "/api/v1/models/del-net/versions").json()["items"]],
                         [3, 1])
        # Undeployed, version 1 goes too; then the model with what is left.
        self.sql("DELETE FROM deployments WHERE id = ?", (dep,))
        self.assertEqual(self.req("DELETE", "/api/v1/models/del-net/versions/1").status, 204)
        self.assertEqual(sorted(os.listdir(root)), ["3"])
        self.assertEqual(self.req("DELETE", "/api/v1/models/del-net").status, 204)
        self.assertFalse(os.path.exists(root))
        # the folders were moved aside inside the transaction and removed after it: nothing left
        self.assertEqual([n for n in os.listdir(os.path.dirname(root)) if n.startswith(".trash")], [])
        self.assertEqual(self.req("GET", "/api/v1/models/del-net").status, 404)
        self.assertEqual(self.sql("SELECT COUNT(*) FROM model_versions v JOIN models m ON m.id = v.model_id "
                                  "WHERE m.name = 'del-net'")[0], [(0,)])
        # The name is free again, numbering starts over.
        r = upload_model(self.srv, self.eng, "del-net")
        self.assertEqual((r.status, r.json()["version"]), (201, 1))

    # ---- publishing ---------------------------------------------------------------------------
    def make_job(self, project, kind="train", status="succeeded", model_files=None):
        _, jid = self.sql("INSERT INTO jobs(project_id, kind, status, algorithm, params_json, result_json, "
                          "created_at, updated_at) VALUES(?, ?, ?, 'compact', '{\"epochs\":1}', "
                          "'{\"val\":{\"accuracy\":0.5}}', ?, ?)", (project, kind, status, now_iso(), now_iso()))
        self.sql("UPDATE jobs SET dir = ? WHERE id = ?", ("jobs/%d" % jid, jid))
        if model_files is not None:
            d = os.path.join(self.srv.data, "jobs", str(jid), "model")
            os.makedirs(d)
            for n, data in model_files.items():
                with open(os.path.join(d, n), "wb") as f:
                    f.write(data)
        return jid

    def test_publish(self):
        pid = self.srv.make_project(self.admin, "publish project", {})
        r = upload_model(self.srv, self.eng, "pub-src")
        self.assertEqual(r.status, 201, r)
        files = self.model_files("pub-src", 1)
        files.pop("original.onnx")
        files["metrics.json"] = b'{"accuracy":0.9}'
        files["checkpoint.safetensors"] = b"not copied"
        ok = self.make_job(pid, model_files=files)
        url = "/api/v1/jobs/%d/publish"
        # Unknown job; a job that has not succeeded; a job that is not training; bad bodies.
        self.assertEqual(self.req("POST", url % 999999, self.admin, json_body={"model": "pub"}).status, 404)
        running = self.make_job(pid, status="running")
        r = self.req("POST", url % running, self.admin, json_body={"model": "pub"})
        self.assertEqual(r.status, 409, r)
        self.assertIn("running", r.json()["error"]["message"])
        ev = self.make_job(pid, kind="evaluate")
        r = self.req("POST", url % ev, self.admin, json_body={"model": "pub"})
        self.assertEqual(r.status, 409, r)
        self.assertIn("evaluate", r.json()["error"]["message"])
        self.assertEqual(self.req("POST", url % ok, self.admin, json_body={}).status, 400)
        self.assertEqual(self.req("POST", url % ok, self.admin, json_body={"model": "bad name"}).status, 422)
        self.assertEqual(self.req("POST", url % ok, self.admin, json_body={"model": "p", "x": 1}).status, 422)
        # eng is not a member of the project: it does not see the job.
        self.assertEqual(self.req("POST", url % ok, json_body={"model": "pub"}).status, 404)
        # A job whose model folder is gone.
        gone = self.make_job(pid)
        r = self.req("POST", url % gone, self.admin, json_body={"model": "pub"})
        self.assertEqual(r.status, 404, r)
        # The succeeded job: its model, metrics and lineage.
        r = self.req("POST", url % ok, self.admin, json_body={"model": "pub", "description": "d", "tags": ["t"]})
        self.assertEqual(r.status, 201, r)
        v = r.json()
        self.assertEqual(r.headers["location"], "/api/v1/models/pub/versions/1")
        self.assertEqual((v["source"], v["job_id"], v["metrics"], v["description"], v["tags"]),
                         ("job", ok, {"accuracy": 0.9}, "d", ["t"]))
        self.assertEqual(v["lineage"], {"job_id": ok, "dataset_version_id": None, "dataset_version": None,
                                        "project_id": pid, "algorithm": "compact", "params": {"epochs": 1},
                                        "published_by": "admin"})
        self.assertEqual(self.req("GET", "/api/v1/models/pub").json()["project_id"], pid)
        self.assertEqual(sorted(self.model_files("pub", 1)), ["metrics.json", "model.json", "weights.safetensors"])
        # Without metrics.json the job's result is the metrics.
        files.pop("metrics.json")
        r = self.req("POST", url % self.make_job(pid, model_files=files), self.admin, json_body={"model": "pub"})
        self.assertEqual((r.status, r.json()["version"], r.json()["metrics"]), (201, 2, {"val": {"accuracy": 0.5}}))


if __name__ == "__main__":
    unittest.main()
