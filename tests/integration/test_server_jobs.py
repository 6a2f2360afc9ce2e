"""Training jobs over real HTTP (issue 5): algorithms, a training job with defaults on a real
dataset version (Fashion-MNIST images imported, reviewed and snapshot through the API), its
server-sent events replayed for a late viewer, logs, cancellation, invalid parameters, a
custom ONNX network, and a server killed with SIGKILL mid-training that resumes the job from
its checkpoint on restart."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from helpers import AUTOCV
from platform_data import CLASSES, fmnist, import_reviewed_version, sse_events
from routes_images import multipart
from server import Server

PY = "/usr/bin/python3"


def wait_job(srv, token, jid, statuses=("succeeded", "failed", "cancelled"), timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        j = srv.request("GET", "/api/v1/jobs/%d" % jid, token).json()
        if j["status"] in statuses:
            return j
        time.sleep(0.2)
    raise AssertionError("job %d still %s after %d s" % (jid, j["status"], timeout))


class TestJobs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(["--job-threads", "1"]).start()
        cls.admin = cls.srv.admin_token()
        r = cls.srv.request("POST", "/api/v1/projects", cls.admin, {"name": "jobs"})
        assert r.status == 201, r
        cls.project = r.json()["id"]
        cls.set_id, cls.version = import_reviewed_version(cls.srv, cls.admin, cls.project, fmnist("train", 200))

    @classmethod
    def tearDownClass(cls):
        cls.srv.cleanup()

    def req(self, method, path, body=None, **kw):
        return self.srv.request(method, path, self.admin, json_body=body, **kw)

    def train(self, params, algorithm=None, status=201):
        body = {"dataset_version_id": self.version["id"], "params": params}
        if algorithm:
            body["algorithm"] = algorithm
        r = self.req("POST", "/api/v1/projects/%d/training-jobs" % self.project, body)
        self.assertEqual(r.status, status, r)
        return r.json()

    def test_algorithms(self):
        r = self.req("GET", "/api/v1/algorithms?task=cls")
        self.assertEqual(r.status, 200, r)
        algs = {a["name"]: a for a in r.json()["items"]}
        for name in ("auto", "compact", "resnet18", "mobilenetv2"):
            self.assertIn(name, algs)
        self.assertGreater(algs["resnet18"]["cost"]["params"], 11_000_000)
        self.assertAlmostEqual(algs["resnet18"]["cost"]["gflops"], 3.64, delta=0.1)  # 2 FLOPs per multiply-add
        p = {x["name"]: x for x in algs["compact"]["params"]}
        self.assertEqual((p["epochs"]["type"], p["epochs"]["min"], p["optimizer"]["choices"]),
                         ("integer", 1, ["sgd", "adamw"]))
        det = {a["name"]: a for a in self.req("GET", "/api/v1/algorithms?task=det").json()["items"]}
        self.assertEqual(set(det), {"auto", "det-s", "det-m", "det-s-p2", "det-m-p2"})
        self.assertAlmostEqual(det["det-m"]["cost"]["gflops"], 28.6, delta=0.3)  # YOLOv8s-sized at 640
        self.assertAlmostEqual(det["det-s-p2"]["cost"]["gflops"], 11.7, delta=0.3)  # det-s + the stride-4 level
        self.assertEqual(self.req("GET", "/api/v1/algorithms?task=seg").json()["items"], [])
        self.assertEqual(self.req("GET", "/api/v1/algorithms?task=nope").status, 400)

    def test_invalid_parameters_are_named(self):
        for params, what in [({"epochs": 0}, "params.epochs"), ({"lr": -1}, "params.lr"),
                             ({"optimizer": "rmsprop"}, "params.optimizer"), ({"bogus": 1}, "params.bogus"),
                             ({"epochs": "many"}, "params.epochs"), ({"freeze_backbone": True}, "params.freeze_backbone")]:
            r = self.req("POST", "/api/v1/projects/%d/training-jobs" % self.project,
                         {"dataset_version_id": self.version["id"], "params": params})
            self.assertEqual(r.status, 422, (params, r))
            self.assertIn(what, r.json()["error"]["message"])
        r = self.req("POST", "/api/v1/projects/%d/training-jobs" % self.project,
                     {"dataset_version_id": self.version["id"], "algorithm": "yolov99"})
        self.assertEqual(r.status, 422)
        self.assertIn("algorithm", r.json()["error"]["message"])
        r = self.req("POST", "/api/v1/projects/%d/training-jobs" % self.project, {"dataset_version_id": 99999})
        self.assertEqual(r.status, 422)
        self.assertIn("dataset_version_id", r.json()["error"]["message"])
        r = self.req("POST", "/api/v1/projects/%d/training-jobs" % self.project, {})
        self.assertEqual(r.status, 422)
        # nothing was queued by any of these
        jobs = self.req("GET", "/api/v1/projects/%d/jobs?kind=train&status=queued" % self.project).json()
        self.assertEqual([j for j in jobs["items"] if j["params"].get("bogus")], [])

    def test_train_with_defaults_events_and_logs(self):
        job = self.train({"epochs": 2, "seed": 1})
        self.assertIn(job["status"], ("queued", "running"))
        self.assertEqual((job["kind"], job["algorithm"], job["params"]), ("train", "auto", {"epochs": 2, "seed": 1}))
        # a live viewer from the start, and a late one after the end see the same stream
        live = sse_events(self.srv, self.admin, "/api/v1/jobs/%d/events" % job["id"])
        done = wait_job(self.srv, self.admin, job["id"])
        self.assertEqual(done["status"], "succeeded", done)
        late = sse_events(self.srv, self.admin, "/api/v1/jobs/%d/events" % job["id"])
        self.assertEqual(live, late)
        ids = [e[0] for e in live]
        self.assertEqual(ids, list(range(1, len(ids) + 1)))
        statuses = [d["status"] for _, ev, d in live if ev == "status"]
        self.assertEqual(statuses, ["queued", "running", "succeeded"])
        steps = [d for _, ev, d in live if ev == "step"]
        epochs = [d for _, ev, d in live if ev == "epoch"]
        self.assertTrue(steps and all(d["loss"] > 0 and d["ips"] > 0 for d in steps), steps[:2])
        self.assertEqual([d["epoch"] for d in epochs], [1, 2])
        self.assertTrue(all(0 <= d["val_top1"] <= 1 for d in epochs))
        # validation images watched through training (the board shows them): the same ones each
        # epoch, named by their image id, spread over the classes, and as right as the accuracy says
        for d in epochs:
            self.assertEqual(len(d["samples"]), 8, d["samples"])
            self.assertEqual([x["path"] for x in d["samples"]], [x["path"] for x in epochs[0]["samples"]])
            for x in d["samples"]:
                self.assertRegex(os.path.basename(x["path"]), r"^\d+\.\w+$")
                self.assertEqual(x["correct"], x["pred"] == x["label"])
                self.assertTrue(0 < x["score"] <= 1)
        self.assertGreater(len({x["label"] for x in epochs[0]["samples"]}), 1)
        # replay after an event id
        tail = sse_events(self.srv, self.admin, "/api/v1/jobs/%d/events" % job["id"],
                          headers={"Last-Event-ID": str(ids[-3])})
        self.assertEqual(tail, live[-2:])
        # the job's result and progress
        self.assertEqual(done["result"]["model_dir"], "jobs/%d/model" % job["id"])
        self.assertAlmostEqual(done["result"]["best_val_top1"], max(d["val_top1"] for d in epochs), places=5)
        self.assertEqual(done["progress"]["epoch"], 2)
        self.assertIsNotNone(done["finished_at"])
        self.assertEqual(done["attempts"], 1)
        # the model is loadable by the CLI and classifies the dataset's classes
        mdir = os.path.join(self.srv.data, done["result"]["model_dir"])
        with open(os.path.join(mdir, "model.json")) as f:
            self.assertEqual(json.load(f)["classes"], sorted(CLASSES))
        logs = self.req("GET", "/api/v1/jobs/%d/logs" % job["id"])
        self.assertEqual(logs.status, 200)
        self.assertIn(b'"event":"epoch"', logs.body)
        lst = self.req("GET", "/api/v1/projects/%d/jobs?kind=train&status=succeeded" % self.project).json()
        self.assertIn(job["id"], [j["id"] for j in lst["items"]])
        # an ended job cannot be cancelled
        self.assertEqual(self.req("POST", "/api/v1/jobs/%d/cancel" % job["id"]).status, 409)

    def test_cancel_running_and_queued(self):
        a = self.train({"epochs": 50})
        b = self.train({"epochs": 1})  # queued behind a (one job at a time)
        wait_job(self.srv, self.admin, a["id"], ("running",))
        r = self.req("POST", "/api/v1/jobs/%d/cancel" % b["id"])
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json()["status"], "cancelled")
        # wait until a has really started training, then cancel it
        deadline = time.time() + 120
        while time.time() < deadline and not self.req("GET", "/api/v1/jobs/%d" % a["id"]).json()["progress"]:
            time.sleep(0.2)
        self.assertEqual(self.req("POST", "/api/v1/jobs/%d/cancel" % a["id"]).status, 202)
        j = wait_job(self.srv, self.admin, a["id"], timeout=60)
        self.assertEqual(j["status"], "cancelled", j)
        ev = sse_events(self.srv, self.admin, "/api/v1/jobs/%d/events" % a["id"])
        self.assertEqual(ev[-1][1:], ("status", {"status": "cancelled", "error": "cancelled by a user",
                                                 "seq": ev[-1][0]}))
        self.assertEqual(self.srv.request("GET", "/healthz").status, 200)

    def test_deleted_project_takes_its_job_folders(self):
        # a running job of a project that is deleted stops, and its folder (log, copied images,
        # checkpoints) goes with it
        r = self.req("POST", "/api/v1/projects", {"name": "jobs-deleted"})
        self.assertEqual(r.status, 201, r)
        pid = r.json()["id"]
        _, ver = import_reviewed_version(self.srv, self.admin, pid, fmnist("train", 40))
        r = self.req("POST", "/api/v1/projects/%d/training-jobs" % pid,
                     {"dataset_version_id": ver["id"], "params": {"epochs": 200}})
        self.assertEqual(r.status, 201, r)
        jid = r.json()["id"]
        jdir = os.path.join(self.srv.data, "jobs", str(jid))
        wait_job(self.srv, self.admin, jid, ("running",))
        deadline = time.time() + 120
        while time.time() < deadline and not os.path.exists(os.path.join(jdir, "log.txt")):
            time.sleep(0.2)
        self.assertTrue(os.path.isdir(jdir))
        self.assertEqual(self.req("DELETE", "/api/v1/projects/%d" % pid).status, 204)
        deadline = time.time() + 60
        while time.time() < deadline and os.path.exists(jdir):
            time.sleep(0.2)
        self.assertFalse(os.path.exists(jdir), "the deleted project's job folder is still there")
        self.assertEqual(self.req("GET", "/api/v1/jobs/%d" % jid).status, 404)
        # a folder no job row names (left by a crash) where the next job's id points: the job
        # starts from an empty folder, not with that folder's log and checkpoint
        items = self.req("GET", "/api/v1/projects/%d/jobs?limit=100" % self.project).json()["items"]
        nxt = max([j["id"] for j in items] + [0]) + 1  # the id the next job gets (the deleted one's, when it was last)
        stale = os.path.join(self.srv.data, "jobs", str(nxt))
        os.makedirs(os.path.join(stale, "model"), exist_ok=True)
        with open(os.path.join(stale, "log.txt"), "w") as f:
            f.write("STALE LOG OF ANOTHER JOB\n")
        job = self.train({"epochs": 1})
        self.assertEqual(job["id"], nxt)
        j = wait_job(self.srv, self.admin, job["id"])
        self.assertEqual(j["status"], "succeeded", j)
        logs = self.req("GET", "/api/v1/jobs/%d/logs" % job["id"])
        self.assertEqual(logs.status, 200)
        self.assertNotIn(b"STALE LOG", logs.body)
        self.assertIn(b'"event":"epoch"', logs.body)

    def test_custom_network(self):
        tmp = tempfile.mkdtemp(prefix="autocv-custom-")
        try:
            path = os.path.join(tmp, "net.onnx")
            code = ("import torch, torch.nn as nn\n"
                    "torch.manual_seed(0)\n"
                    "m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),"
                    " nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)).eval()\n"
                    "torch.onnx.export(m, torch.randn(1, 3, 28, 28), %r, opset_version=13)\n" % path)
            subprocess.run([PY, "-c", code], check=True, capture_output=True, timeout=300)
            with open(path, "rb") as f:
                onnx = f.read()
            body, ct = multipart([("net.onnx", onnx)], {"name": "tinynet", "description": "8 filters"})
            r = self.srv.request("POST", "/api/v1/projects/%d/algorithms" % self.project, self.admin, data=body,
                                 content_type=ct)
            self.assertEqual(r.status, 201, r)
            alg = r.json()
            self.assertEqual((alg["name"], alg["builtin"], alg["info"]["classes"]), ("tinynet", False, 5))
            names = [a["name"] for a in self.req("GET", "/api/v1/projects/%d/algorithms" % self.project).json()["items"]]
            self.assertIn("tinynet", names)
            self.assertIn("resnet18", names)
            # the same name again, and a file that is not a network
            self.assertEqual(self.srv.request("POST", "/api/v1/projects/%d/algorithms" % self.project, self.admin,
                                              data=body, content_type=ct).status, 409)
            bad, bct = multipart([("x.onnx", b"not a network")], {"name": "broken"})
            r = self.srv.request("POST", "/api/v1/projects/%d/algorithms" % self.project, self.admin, data=bad,
                                 content_type=bct)
            self.assertEqual(r.status, 422, r)
            # fine-tune it: its classifier is replaced for the version's 10 classes
            job = self.train({"epochs": 1, "freeze_backbone": True}, algorithm="tinynet")
            done = wait_job(self.srv, self.admin, job["id"])
            self.assertEqual(done["status"], "succeeded", done)
            with open(os.path.join(self.srv.data, done["result"]["model_dir"], "model.json")) as f:
                self.assertEqual(len(json.load(f)["classes"]), 10)
            self.assertEqual(self.req("DELETE", "/api/v1/algorithms/%d" % alg["id"]).status, 204)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class TestJobsRestart(unittest.TestCase):
    def test_sigkill_mid_training_resumes_from_checkpoint(self):
        srv = Server(["--job-threads", "1"]).start()
        try:
            admin = srv.admin_token()
            r = srv.request("POST", "/api/v1/projects", admin, {"name": "restart"})
            pid = r.json()["id"]
            _, version = import_reviewed_version(srv, admin, pid, fmnist("train", 150, offset=1000))
            r = srv.request("POST", "/api/v1/projects/%d/training-jobs" % pid, admin,
                            {"dataset_version_id": version["id"], "algorithm": "compact", "params": {"epochs": 4}})
            self.assertEqual(r.status, 201, r)
            jid = r.json()["id"]
            # kill the server as soon as the first epoch (and its checkpoint) is done
            deadline = time.time() + 300
            while time.time() < deadline:
                j = srv.request("GET", "/api/v1/jobs/%d" % jid, admin).json()
                if j["progress"].get("epoch", 0) >= 1 and "val_top1" in j["progress"]:
                    break
                time.sleep(0.1)
            child = j and srv.request("GET", "/api/v1/jobs/%d" % jid, admin).json()
            self.assertEqual(child["status"], "running")
            srv.kill()
            ckpt = os.path.join(srv.data, "jobs", str(jid), "model", "checkpoint.safetensors")
            self.assertTrue(os.path.exists(ckpt))
            time.sleep(0.5)
            # the child died with the server
            out = subprocess.run(["pgrep", "-f", "jobs/%d/model" % jid], capture_output=True, text=True).stdout
            self.assertEqual(out.strip(), "")
            srv.start()
            admin = srv.admin_token()
            done = wait_job(srv, admin, jid)
            self.assertEqual(done["status"], "succeeded", done)
            self.assertEqual(done["attempts"], 2)
            ev = sse_events(srv, admin, "/api/v1/jobs/%d/events" % jid)
            statuses = [d["status"] for _, e, d in ev if e == "status"]
            self.assertEqual(statuses, ["queued", "running", "queued", "running", "succeeded"])
            # resumed after the checkpointed epoch(s), not from scratch
            requeued = [i for i, (_, e, d) in enumerate(ev) if e == "status" and d["status"] == "queued"][1]
            before = [d["epoch"] for _, e, d in ev[:requeued] if e == "epoch"]
            after = [d["epoch"] for _, e, d in ev[requeued:] if e == "epoch"]
            self.assertGreaterEqual(len(before), 1)
            self.assertEqual(after, list(range(before[-1] + 1, 5)))
            self.assertIn("resume", srv.request("GET", "/api/v1/jobs/%d/logs" % jid, admin).body.decode())
        finally:
            srv.cleanup()


if __name__ == "__main__":
    unittest.main()
