"""The Annotation and Review tabs of the web UI in a real browser (issue 7): starts the real
server, creates what a project owner would have set up through the API (users of several
roles, a project with its members, labels, images), then drives Debian's chromium with
playwright-core (tests/e2e/annotation_review.mjs): an engineer creates an annotation set from
chosen images, splits it into tasks, assigns them and puts one in the pool, and sees the
progress; annotators' work is saved and submitted through the API; a reviewer rejects one
image with a comment and accepts the rest by keyboard; the annotator sees the comment and
opens the next image to do; another annotator claims the pooled task. In a second project, a
classifier trained, published and deployed through the API pre-annotates a classification set
from the browser; the proposals' summary follows what annotators then do with them.

Afterwards the server's state is checked through the API: what the browser did must be there.
Screenshots (ui_annotation_en/zh.png, ui_review_en/zh.png, ui_annotation_mine_en.png) go to a
temporary folder, or to AUTOCV_E2E_SCREENSHOTS."""
import random
import time
import unittest

from e2e_common import BrowserTest
from helpers import png_bytes
from platform_data import CLASSES, fmnist, import_reviewed_version


def tray_image(rng, w=160, h=120):
    """A metal tray seen from above: a brushed gradient with a few bolts (PNG bytes)."""
    bolts = [(rng.randrange(20, w - 20), rng.randrange(20, h - 20), rng.randrange(7, 12)) for _ in range(3)]
    base = rng.randrange(110, 160)
    px = bytearray()
    for y in range(h):
        for x in range(w):
            v = base + (x * 50) // w + ((x * 5 + y * 3) % 9) - 4
            for cx, cy, r in bolts:
                d2 = (x - cx) ** 2 + (y - cy) ** 2
                if d2 < r * r:
                    v = 60 + (d2 * 50) // (r * r)
            v = max(0, min(255, v))
            px += bytes((v, v, min(255, v + 10)))
    return png_bytes(w, h, bytes(px))


class TestAnnotationReviewUI(BrowserTest, unittest.TestCase):
    TMP_PREFIX = "autocv-e2e-ann-"

    def test_annotation_and_review_in_chromium(self):
        self.require_browser()
        t0 = time.time()
        # users of several roles, each a member of the project in that role
        roles = {"eng1": "engineer", "ann1": "annotator", "ann2": "annotator", "rev1": "reviewer"}
        passwords, ids = {}, {}
        for name, role in roles.items():
            passwords[name] = "%s-password-123" % name
            r = self.req("POST", "/api/v1/users", {"username": name, "password": passwords[name], "roles": [role]})
            self.assertEqual(r.status, 201, r)
            ids[name] = r.json()["id"]
        pid = self.srv.make_project(self.admin, "Bolt tray", {ids[n]: roles[n] for n in roles})
        r = self.req("POST", "/api/v1/projects/%d/labels" % pid,
                     data="name,color\nscratch,#e8590c\ndent,#1f5eff\nok,#12b886\n", content_type="text/csv")
        self.assertEqual(r.status, 201, r)
        rng = random.Random(11)
        parts, extras = [], []
        for name in ["part_%02d.png" % i for i in range(8)] + ["extra_%02d.png" % i for i in range(2)]:
            r = self.req("POST", "/api/v1/projects/%d/images?filename=%s" % (pid, name), data=tray_image(rng),
                         content_type="image/png")
            self.assertEqual(r.status, 201, r)
            (parts if name.startswith("part_") else extras).append(r.json()["images"][0]["id"])

        # a second project with a deployed classifier and a classification set nobody labelled yet
        fp = self.srv.make_project(self.admin, "Fashion line", {ids["eng1"]: "engineer", ids["ann1"]: "annotator"})
        _, version = import_reviewed_version(self.srv, self.admin, fp, fmnist("train", 200), name="belt v1")
        r = self.req("POST", "/api/v1/projects/%d/training-jobs" % fp,
                     {"dataset_version_id": version["id"], "algorithm": "compact", "params": {"epochs": 1}})
        self.assertEqual(r.status, 201, r)
        job = r.json()["id"]
        for name, (c, png) in zip(["new_%02d.png" % i for i in range(12)], fmnist("test", 12)):
            r = self.req("POST", "/api/v1/projects/%d/images?filename=%s" % (fp, name), data=png, content_type="image/png")
            self.assertEqual(r.status, 201, r)
        r = self.req("POST", "/api/v1/projects/%d/annotation-sets" % fp,
                     {"name": "New garments", "task": "cls", "filter": {"filename": "new_*"}})
        self.assertEqual((r.status, r.json()["total"]), (201, 12), r)
        fset = r.json()["id"]
        deadline = time.time() + 120
        while self.req("GET", "/api/v1/jobs/%d" % job).json()["status"] not in ("succeeded", "failed", "cancelled"):
            self.assertLess(time.time(), deadline, "the training job did not finish in 120 s")
            time.sleep(0.2)
        self.assertEqual(self.req("GET", "/api/v1/jobs/%d" % job).json()["status"], "succeeded")
        self.assertEqual(self.req("POST", "/api/v1/jobs/%d/publish" % job, {"model": "belt"}).status, 201)
        r = self.req("POST", "/api/v1/deployments", {"model": "belt", "name": "belt-line"})
        self.assertEqual(r.status, 201, r)

        shots = self.shots_dir()
        config = self.config(shots, {
            "project": pid,
            "passwords": passwords,
            "engineer": "eng1",
            "annotators": ["ann1", "ann2"],
            "reviewer": "rev1",
            "parts": parts,
            "fashion_project": fp,
            "fashion_set": fset,
            "classes": CLASSES,
        }, admin=False)
        out = self.run_browser("annotation_review.mjs", config, 150, prepared_since=t0)
        result = self.tagged(out, "RESULT")

        # The server holds what the browser did: the set of the chosen images ...
        sets = self.req("GET", "/api/v1/projects/%d/annotation-sets" % pid).json()["items"]
        self.assertEqual([(s["name"], s["task"], s["total"]) for s in sets], [("Tray boxes", "det", 8)])
        sid = sets[0]["id"]
        self.assertEqual(sid, result["set"])
        items = self.req("GET", "/api/v1/annotation-sets/%d/items?limit=100" % sid).json()["items"]
        self.assertEqual(sorted(i["image_id"] for i in items), sorted(parts))  # not the extras
        # ... its tasks: 3 + 3 + 2 images, in turn to ann1 and ann2, Task 3 pooled and claimed
        tasks = self.req("GET", "/api/v1/annotation-sets/%d/tasks" % sid).json()["items"]
        self.assertEqual([(t["name"], t["total"], t["assignee"]) for t in tasks],
                         [("Task 1", 3, "ann1"), ("Task 2", 3, "ann2"), ("Task 3", 2, result["claimed_by"])])
        self.assertEqual(result["claimed_by"], "ann2")
        # ... the reviews: one rejection with its comment, the other four accepted, by rev1
        by_id = {i["image_id"]: i for i in items}
        rejected = by_id[result["rejected"]]
        self.assertEqual((rejected["status"], rejected["review_comment"], rejected["reviewer"]),
                         ("rejected", result["comment"], "rev1"))
        submitted = [i for ids_ in result["work"].values() for i in ids_]
        self.assertEqual(len(submitted), 5)
        for i in submitted:
            if i != result["rejected"]:
                self.assertEqual((by_id[i]["status"], by_id[i]["reviewer"]), ("accepted", "rev1"), i)
        counts = sets[0]["counts"]
        self.assertEqual((counts["accepted"], counts["rejected"], counts["submitted"], counts["new"]), (4, 1, 0, 3))
        progress = self.req("GET", "/api/v1/annotation-sets/%d/progress" % sid).json()
        self.assertEqual({r["username"]: (r["accepted"], r["rejected"]) for r in progress["reviewers"]}, {"rev1": (4, 1)})
        # the audit log names who split and who claimed
        audit = self.req("GET", "/api/v1/audit?limit=200").json()["items"]
        acts = {(a["actor"], a["action"], a["target_type"]) for a in audit}
        self.assertIn(("eng1", "create", "annotation_set"), acts)
        self.assertIn(("eng1", "split", "annotation_set"), acts)
        self.assertIn(("eng1", "update", "annotation_task"), acts)  # Task 3 back to the pool
        self.assertIn(("ann2", "claim", "annotation_task"), acts)
        # the pre-annotation the browser started: every image got the model's proposal, and the
        # summary counts what the annotator did with three of them
        pj = self.req("GET", "/api/v1/jobs/%d" % result["pre_job"]).json()
        self.assertEqual((pj["kind"], pj["status"], pj["params"]["model"], pj["creator"]), ("pre_annotate", "succeeded", "belt", "eng1"))
        self.assertEqual((pj["result"]["set_id"], pj["result"]["proposed"]), (fset, 12))
        stats = self.req("GET", "/api/v1/annotation-sets/%d/pre-annotations" % fset).json()
        self.assertEqual([stats[k] for k in ("proposed", "pending", "accepted_unchanged", "corrected", "deleted")], [12, 9, 1, 1, 1])
        self.assert_shots(shots, ["annotation_en", "annotation_zh", "review_en", "review_zh", "annotation_mine_en", "preannotation_en"])
        print("browser flow: %.1f s; whole test %.1f s" % (result["seconds"], time.time() - t0))


if __name__ == "__main__":
    unittest.main()
