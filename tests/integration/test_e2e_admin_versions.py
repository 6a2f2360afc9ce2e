"""Dataset versions, project members, administration and model import in a real browser
(issue 7): starts the real server, prepares through the API a project whose annotation set has
accepted Fashion-MNIST images (with two older versions to delete), a user to add as a member
and a small ONNX classifier, then drives Debian's chromium with playwright-core
(tests/e2e/admin_versions.mjs): create a version with the split sliders and read its class x
split table, download its export, delete versions (and see a refusal in words), add a member
and change roles (and see the last-owner refusal), create a user, change roles, disable and
enable, reset a password, create an API token (shown once), revoke it, find all this in the
audit log, import an ONNX model (a refused upload first, then a good one, then a second version
with the class names read from a file), evaluate the imported model on another project's test
set (a refusal in words on one whose labels differ, then the figures on one that matches), in
English and in Chinese.

Afterwards the server's state is checked through the API: what the browser did must be there.
Screenshots go to a temporary folder, or to AUTOCV_E2E_SCREENSHOTS."""
import io
import os
import time
import unittest
import zipfile

from e2e_common import BrowserTest
from platform_data import CLASSES, fmnist, imagefolder_zip
from routes_images import multipart
from routes_models import tiny_onnx

# the imported model's classes, as a dataset version lists its labels: alphabetically
TRAY_CLASSES = ["dent", "ok", "scratch"]


class TestAdminVersionsUI(BrowserTest, unittest.TestCase):
    TMP_PREFIX = "autocv-e2e-adm-"

    def prepare(self):
        """A project with an annotation set of 120 images, 100 of them accepted, two older
        versions of it; a user to add as a member; the ONNX files the browser uploads; the
        quality team's project with the standard test set the imported model is evaluated on."""
        r = self.req("POST", "/api/v1/projects", {"name": "Garment line", "description": "belt 2"})
        self.assertEqual(r.status, 201, r)
        pid = r.json()["id"]
        body, ct = multipart([("fmnist.zip", imagefolder_zip(fmnist("train", 120)))])
        r = self.srv.request("POST", "/api/v1/projects/%d/imports" % pid, self.admin, data=body, content_type=ct,
                             timeout=120)
        self.assertEqual(r.status, 201, r)
        sid = r.json()["set_id"]
        q = self.req("GET", "/api/v1/annotation-sets/%d/review-queue?limit=1000" % sid).json()["items"]
        for it in q[:100]:
            r = self.srv.request("POST", "/api/v1/annotation-sets/%d/items/%d/review" % (sid, it["image_id"]),
                                 self.admin, {"decision": "accept", "revision": it["revision"]}, keepalive=True)
            self.assertEqual(r.status, 200, r)
        for name, seed in (("baseline", 0), ("old copy", 3)):
            r = self.req("POST", "/api/v1/annotation-sets/%d/versions" % sid,
                         {"name": name, "split": {"train": 0.7, "val": 0.15, "test": 0.15}, "seed": seed})
            self.assertEqual(r.status, 201, r)
        r = self.req("POST", "/api/v1/users", {"username": "olga", "password": "olga-password", "roles": ["annotator"]})
        self.assertEqual(r.status, 201, r)
        onnx = os.path.join(self.tmp, "line3-tiny.onnx")
        with open(onnx, "wb") as f:
            f.write(tiny_onnx(classes=3, side=16, seed=1))
        classes_file = os.path.join(self.tmp, "classes.txt")
        with open(classes_file, "w") as f:
            f.write("\n".join(TRAY_CLASSES) + "\n")
        tray_pid, tray_dv = self.prepare_test_set()
        return pid, sid, onnx, classes_file, tray_pid, tray_dv

    def prepare_test_set(self):
        """The factory's standard test set for the line 3 trays, kept by the quality team in a
        project of their own (the admin, who drives the browser, sees every project): 36
        reviewed images of the classes dent, ok and scratch, one version. Returns (project id,
        dataset version id)."""
        r = self.req("POST", "/api/v1/users", {"username": "quality", "password": "quality-password",
                                               "roles": ["engineer"]})
        self.assertEqual(r.status, 201, r)
        quality = self.srv.login("quality", "quality-password")
        r = self.req("POST", "/api/v1/projects", {"name": "Tray quality", "description": "standard test sets"},
                     token=quality)
        self.assertEqual(r.status, 201, r)
        pid = r.json()["id"]
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for i, (_, png) in enumerate(fmnist("test", 36)):
                z.writestr("trays/%s/tray%03d.png" % (TRAY_CLASSES[i % 3], i), png)
        body, ct = multipart([("trays.zip", buf.getvalue())])
        r = self.srv.request("POST", "/api/v1/projects/%d/imports" % pid, quality, data=body, content_type=ct,
                             timeout=120)
        self.assertEqual(r.status, 201, r)
        sid = r.json()["set_id"]
        q = self.req("GET", "/api/v1/annotation-sets/%d/review-queue?limit=1000" % sid, token=quality).json()["items"]
        self.assertEqual(len(q), 36)
        for it in q:
            r = self.srv.request("POST", "/api/v1/annotation-sets/%d/items/%d/review" % (sid, it["image_id"]),
                                 quality, {"decision": "accept", "revision": it["revision"]}, keepalive=True)
            self.assertEqual(r.status, 200, r)
        r = self.req("POST", "/api/v1/annotation-sets/%d/versions" % sid,
                     {"name": "standard test set", "split": {"train": 0.5, "val": 0.2, "test": 0.3}, "seed": 0},
                     token=quality)
        self.assertEqual(r.status, 201, r)
        self.assertEqual([l["name"] for l in r.json()["labels"]], TRAY_CLASSES)
        return pid, r.json()["id"]

    def test_admin_versions_in_chromium(self):
        self.require_browser()
        t0 = time.time()
        pid, sid, onnx, classes_file, tray_pid, tray_dv = self.prepare()
        shots = self.shots_dir()
        config = self.config(shots, {
            "downloads": os.path.join(self.tmp, "downloads"),
            "project": pid,
            "set": sid,
            "onnx": onnx,
            "classes_file": classes_file,
            "tray_project": tray_pid,
            "tray_version": tray_dv,
        })
        out = self.run_browser("admin_versions.mjs", config, 300, prepared_since=t0)
        result = self.tagged(out, "RESULT")

        # ---- dataset versions: the browser's version, with its split and seed; the old ones gone
        versions = self.req("GET", "/api/v1/projects/%d/dataset-versions" % pid).json()["items"]
        self.assertEqual([v["name"] for v in versions], ["v2 browser"])
        v = self.req("GET", "/api/v1/dataset-versions/%d" % versions[0]["id"]).json()
        self.assertEqual((v["split"], v["seed"], v["image_count"]), ({"train": 0.7, "val": 0.2, "test": 0.1}, 7, 100))
        self.assertEqual(result["version_hash"], v["content_hash"])  # what the detail showed
        self.assertEqual(result["table"], {name: [c["images"]["train"], c["images"]["val"], c["images"]["test"],
                                                  c["images"]["total"]] for name, c in v["counts"]["classes"].items()})
        # the export the browser downloaded: ImageFolder, one file per image in its split/class
        with zipfile.ZipFile(result["download"]) as z:
            files = [n for n in z.namelist() if not n.endswith("/")]
        self.assertEqual(len(files), 100)
        per_split = {s: sum(1 for n in files if n.startswith(s + "/")) for s in ("train", "val", "test")}
        self.assertEqual(per_split, {s: v["counts"]["images"][s] for s in ("train", "val", "test")})
        self.assertTrue({n.split("/")[1] for n in files} <= set(CLASSES))

        # ---- members: olga added and made a reviewer; the admin still the owner
        members = {m["username"]: m["role"] for m in self.req("GET", "/api/v1/projects/%d/members" % pid).json()["items"]}
        self.assertEqual(members, {"admin": "owner", "olga": "reviewer"})

        # ---- users: kim created with roles, disabled and enabled again, a new password
        users = {u["username"]: u for u in self.req("GET", "/api/v1/users?limit=100").json()["items"]}
        self.assertIn("kim.line3", users)
        self.assertEqual(users["admin"]["roles"], ["admin"])  # the refused change left it alone
        kim = users["kim.line3"]
        self.assertEqual((sorted(kim["roles"]), kim["disabled"]), (["operator", "reviewer", "viewer"], False))
        self.assertEqual(self.srv.request("POST", "/api/v1/auth/login",
                                          json_body={"username": "kim.line3", "password": "kim-first-pass"}).status, 401)
        self.srv.login("kim.line3", "kim-second-pass")

        # ---- the token: shown once, worked, revoked
        toks = {t["id"]: t for t in self.req("GET", "/api/v1/tokens?include_revoked=true&limit=100").json()["items"]}
        tok = toks[result["token_id"]]
        self.assertEqual((tok["name"], tok["kind"]), ("line 3 camera", "api"))
        self.assertIsNotNone(tok["revoked_at"])
        self.assertEqual(self.srv.request("GET", "/api/v1/auth/me", result["token"]).status, 401)

        # ---- the audit log holds all of it
        def audit(**q):
            qs = "&".join("%s=%s" % kv for kv in q.items())
            return self.req("GET", "/api/v1/audit?limit=200&" + qs).json()["items"]
        self.assertEqual(len(audit(action="create", target_type="dataset_version", actor_id=users["admin"]["id"])), 3)
        self.assertEqual(len(audit(action="delete", target_type="dataset_version")), 2)
        self.assertEqual([e["target_id"] for e in audit(action="create", target_type="member")], [users["olga"]["id"]])
        self.assertTrue(audit(action="update", target_type="member"))
        self.assertEqual([e["target_id"] for e in audit(action="create", target_type="user", target_id=kim["id"])], [kim["id"]])
        self.assertGreaterEqual(len(audit(action="update", target_type="user", target_id=kim["id"])), 4)
        self.assertEqual([e["target_id"] for e in audit(action="revoke", target_type="token")], [result["token_id"]])
        self.assertEqual(len(audit(action="create", target_type="model_version")), 2)

        # ---- the imported model: two versions, classes and normalization as typed
        m = self.req("GET", "/api/v1/models/line3-tiny").json()
        self.assertEqual((m["task"], m["latest_version"]), ("cls", 2))
        v1 = self.req("GET", "/api/v1/models/line3-tiny/versions/1").json()
        self.assertEqual(v1["classes"], ["ok", "scratch", "dent"])
        self.assertEqual((v1["input"]["mean"], v1["input"]["std"]), ([0, 0, 0], [1, 1, 1]))
        self.assertEqual((v1["description"], v1["tags"]), ("from the line 3 PC", ["baseline"]))
        v2 = self.req("GET", "/api/v1/models/line3-tiny/versions/2").json()
        self.assertEqual((v2["classes"], v2["source"]), (TRAY_CLASSES, "upload"))
        self.assertEqual(v2["input"]["mean"], [0.485, 0.456, 0.406])

        # ---- its evaluation on the quality team's test set, the figures the browser showed;
        # the refused one (another project's ten classes) left nothing; version 1, whose classes
        # are the test set's in another order, was evaluated too (classes matched by name)
        self.assertEqual([(e["dataset_version_id"], e["split"], e["status"]) for e in v1["evaluations"]],
                         [(tray_dv, "test", "succeeded")])
        ev1 = self.req("GET", "/api/v1/evaluations/%d" % v1["evaluations"][0]["id"]).json()
        self.assertEqual([c["name"] for c in ev1["report"]["accuracy"]["per_class"]], ["ok", "scratch", "dent"])
        evals = v2["evaluations"]
        self.assertEqual([(e["dataset_version_id"], e["split"], e["status"]) for e in evals],
                         [(tray_dv, "test", "succeeded")])
        ev = self.req("GET", "/api/v1/evaluations/%d" % evals[0]["id"]).json()
        test_images = self.req("GET", "/api/v1/dataset-versions/%d" % tray_dv).json()["counts"]["images"]["test"]
        self.assertEqual(ev["report"]["accuracy"]["images"], test_images)
        self.assertEqual([c["name"] for c in ev["report"]["accuracy"]["per_class"]], TRAY_CLASSES)
        self.assertAlmostEqual(result["eval_top1"], 100 * ev["report"]["accuracy"]["top1"], delta=0.051)

        self.assert_shots(shots, ["%s_%s" % (name, lang) for name in ("versions", "members", "admin", "tokens", "audit", "models_import")
                                  for lang in ("en", "zh")])
        print("browser and checks in %.1f s" % (time.time() - t0))


if __name__ == "__main__":
    unittest.main()
