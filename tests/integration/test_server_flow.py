"""The model side of the platform end to end over real HTTP (issue 5), on a few hundred real
Fashion-MNIST images: dataset version -> training job with defaults -> its event stream ->
publish -> a second version -> evaluate both on the test split -> compare -> deploy -> predict
on held-out images (the same answers as `autocv predict`) -> pre-annotate a new set -> an
annotator confirms, corrects and deletes proposals -> the set's pre-annotation figures."""
import json
import os
import subprocess
import tempfile
import time
import unittest

from helpers import AUTOCV
from platform_data import CLASSES, fmnist, import_reviewed_version, sse_events
from routes_images import multipart
from server import Server
from test_server_jobs import wait_job


class TestModelFlow(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(["--job-threads", "2"]).start()
        cls.admin = cls.srv.admin_token()
        r = cls.srv.request("POST", "/api/v1/projects", cls.admin, {"name": "flow"})
        cls.project = r.json()["id"]
        cls.set_id, cls.version = import_reviewed_version(cls.srv, cls.admin, cls.project, fmnist("train", 400),
                                                          split={"train": 0.7, "val": 0.1, "test": 0.2})

    @classmethod
    def tearDownClass(cls):
        cls.srv.cleanup()

    def req(self, method, path, body=None, token=None, **kw):
        return self.srv.request(method, path, token or self.admin, json_body=body, **kw)

    def ok(self, r, status=200):
        self.assertEqual(r.status, status, r)
        return r.json()

    def train_and_publish(self, params, algorithm="auto"):
        job = self.ok(self.req("POST", "/api/v1/projects/%d/training-jobs" % self.project,
                               {"dataset_version_id": self.version["id"], "algorithm": algorithm, "params": params}), 201)
        events = sse_events(self.srv, self.admin, "/api/v1/jobs/%d/events" % job["id"])
        self.assertEqual(events[-1][1:3], ("status", {"status": "succeeded", "seq": events[-1][0]}), events[-3:])
        self.assertTrue(any(e == "epoch" for _, e, _ in events))
        v = self.ok(self.req("POST", "/api/v1/jobs/%d/publish" % job["id"], {"model": "fmnist-cls"}), 201)
        return job, v

    def test_flow(self):
        # two trained versions with their lineage
        job1, v1 = self.train_and_publish({"epochs": 10, "seed": 1})
        job2, v2 = self.train_and_publish({"epochs": 5, "seed": 2}, algorithm="compact")
        self.assertEqual((v1["version"], v2["version"]), (1, 2))
        got = self.ok(self.req("GET", "/api/v1/models/fmnist-cls/versions/1"))
        self.assertEqual(got["lineage"]["job_id"], job1["id"])
        self.assertEqual(got["lineage"]["dataset_version_id"], self.version["id"])
        self.assertEqual(got["lineage"]["params"], {"epochs": 10, "seed": 1})
        self.assertEqual(got["classes"], sorted(CLASSES))
        # evaluate both on the test split, then compare
        evals = []
        for v in (1, 2):
            e = self.ok(self.req("POST", "/api/v1/models/fmnist-cls/versions/%d/evaluations" % v,
                                 {"dataset_version_id": self.version["id"], "split": "test"}), 201)
            evals.append(e)
        reports = []
        for e in evals:
            j = wait_job(self.srv, self.admin, e["job_id"])
            self.assertEqual(j["status"], "succeeded", j)
            rep = self.ok(self.req("GET", "/api/v1/evaluations/%d" % e["id"]))
            self.assertEqual(rep["status"], "succeeded")
            reports.append(rep["report"])
        for rep, floor in zip(reports, (0.35, 0.25)):
            acc, perf = rep["accuracy"], rep["performance"]
            self.assertEqual(acc["images"], self.version["counts"]["images"]["test"])
            self.assertGreater(acc["top1"], floor)  # chance is 0.1
            self.assertEqual(len(acc["per_class"]), 10)
            self.assertEqual(len(acc["confusion"]), 10)
            for k in ("p50", "p90", "p99"):
                self.assertGreater(perf["latency_ms"][k], 0)
            self.assertGreater(perf["throughput_ips"], 0)
            self.assertIn(perf["best_batch"], (1, 8))
            self.assertGreater(perf["peak_memory_mb"], 1)
            self.assertGreater(perf["model_size_bytes"], 1000)
            self.assertGreater(perf["params"], 1000)
        cmp = self.ok(self.req("GET", "/api/v1/models/fmnist-cls/compare?versions=1,2&dataset_version_id=%d"
                               % self.version["id"]))
        self.assertEqual([x["version"] for x in cmp["items"]], [1, 2])
        self.assertEqual([x["top1"] for x in cmp["items"]], [r["accuracy"]["top1"] for r in reports])
        # models are global, evaluations are of a project's data: someone outside the project
        # sees the version but not its evaluations (their figures and dataset versions)
        self.ok(self.req("POST", "/api/v1/users", {"username": "outsider", "password": "outsider-password",
                                                   "roles": ["engineer"]}), 201)
        outsider = self.srv.login("outsider", "outsider-password")
        seen = self.ok(self.req("GET", "/api/v1/models/fmnist-cls/versions/1", token=outsider))
        self.assertEqual(seen["evaluations"], [])
        self.assertEqual(len(self.ok(self.req("GET", "/api/v1/models/fmnist-cls/versions/1"))["evaluations"]), 1)
        # deploy version 1, predict held-out images: the same answers as the CLI on the published model
        dep = self.ok(self.req("POST", "/api/v1/deployments", {"model": "fmnist-cls", "version": 1, "name": "fmnist"}),
                      201)
        held = fmnist("test", 12)
        tmp = tempfile.mkdtemp(prefix="autocv-flow-")
        paths = []
        for i, (_, png) in enumerate(held):
            p = os.path.join(tmp, "held%02d.png" % i)
            with open(p, "wb") as f:
                f.write(png)
            paths.append(p)
        # the published version is a copy of the job's model directory
        mdir = os.path.join(self.srv.data, "jobs", str(job1["id"]), "model")
        cli = subprocess.run([AUTOCV, "predict", "--json", "--model", mdir] + paths,
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(cli.returncode, 0, cli.stderr)
        want = [json.loads(l) for l in cli.stdout.splitlines()]
        correct = 0
        for (label, png), w in zip(held, want):
            r = self.ok(self.req("POST", "/api/v1/deployments/%d/predict" % dep["id"], data=png,
                                 content_type="image/png"))
            self.assertEqual(r["label"], w["label"])
            self.assertAlmostEqual(r["score"], w["score"], places=4)
            self.assertEqual(r["version"], 1)
            correct += r["label"] == CLASSES[label]
        self.assertGreater(correct, 3)
        bad = self.req("POST", "/api/v1/deployments/%d/predict" % dep["id"], data=b"\x89PNG\r\n\x1a\nbroken",
                       content_type="image/png")
        self.assertIn(bad.status, (400, 422), bad)
        # pre-annotate a new set of unlabelled images with version 1
        fresh = fmnist("test", 16, offset=100)
        body, ct = multipart([("fresh%02d.png" % i, png) for i, (_, png) in enumerate(fresh)])
        up = self.ok(self.srv.request("POST", "/api/v1/projects/%d/images" % self.project, self.admin, data=body,
                                      content_type=ct), 201)
        ids = [im["id"] for im in up["images"]]
        s = self.ok(self.req("POST", "/api/v1/projects/%d/annotation-sets" % self.project,
                             {"name": "line feedback", "task": "cls", "image_ids": ids}), 201)
        job = self.ok(self.req("POST", "/api/v1/annotation-sets/%d/pre-annotate" % s["id"],
                               {"model": "fmnist-cls", "version": 1, "score_threshold": 0.0}), 201)
        done = wait_job(self.srv, self.admin, job["id"])
        self.assertEqual(done["status"], "succeeded", done)
        self.assertEqual(done["result"]["proposed"], len(ids))
        stats = self.ok(self.req("GET", "/api/v1/annotation-sets/%d/pre-annotations" % s["id"]))
        self.assertEqual((stats["proposed"], stats["pending"]), (len(ids), len(ids)))
        item = "/api/v1/annotation-sets/%d/items/%d" % (s["id"], ids[0])
        it = self.ok(self.req("GET", item))
        prop = it["proposal"]["proposal"]["tags"][0]
        self.assertEqual(it["tags"], [prop["label"]])
        self.assertGreater(prop["score"], 0)
        self.assertEqual((it["proposal"]["model"], it["proposal"]["version"]), ("fmnist-cls", 1))
        # confirm three, correct one, delete one
        for k, iid in enumerate(ids[:5]):
            path = "/api/v1/annotation-sets/%d/items/%d" % (s["id"], iid)
            cur = self.ok(self.req("GET", path))
            tags = cur["tags"] if k < 3 else ([c for c in sorted(CLASSES) if c != cur["tags"][0]][:1] if k == 3 else [])
            self.ok(self.req("PUT", path, {"revision": cur["revision"], "tags": tags}))
            if tags:
                self.ok(self.req("POST", path + "/submit"))
        stats = self.ok(self.req("GET", "/api/v1/annotation-sets/%d/pre-annotations" % s["id"]))
        self.assertEqual((stats["accepted_unchanged"], stats["corrected"], stats["deleted"], stats["pending"]),
                         (3, 1, 1, len(ids) - 5))
        self.assertAlmostEqual(stats["acceptance_rate"], 0.6)
        # a second run proposes nothing: every image is either proposed or annotated already
        job = self.ok(self.req("POST", "/api/v1/annotation-sets/%d/pre-annotate" % s["id"],
                               {"model": "fmnist-cls", "score_threshold": 0.0}), 201)
        self.assertEqual(wait_job(self.srv, self.admin, job["id"])["result"]["proposed"], 0)


if __name__ == "__main__":
    unittest.main()
