"""Classification from the command line, end to end on the real build/autocv:
train -> eval -> predict -> infer -> bench, the JSON contracts, and resume."""
import json
import os
import shutil
import signal
import struct
import subprocess
import unittest

import numpy as np

from helpers import AUTOCV, ROOT, json_lines, make_imagefolder, read, run, safetensors_load, tmpdir


class TestClassificationCLI(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tmpdir()
        cls.data = make_imagefolder(os.path.join(cls.tmp, "shapes"), classes=3, per_class=40, split=True)
        cls.model = os.path.join(cls.tmp, "model")
        rc, out, err = run("train", "--task", "cls", "--data", cls.data, "--out", cls.model, "--epochs", "6",
                           "--batch", "16", "--threads", "2", "--json", "--log-every", "2")
        cls.train_rc, cls.train_out, cls.train_err = rc, out, err

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_train_json_lines_and_model_dir(self):
        self.assertEqual(self.train_rc, 0, self.train_err)
        ev = json_lines(self.train_out)
        kinds = [e["event"] for e in ev]
        self.assertIn("step", kinds)
        self.assertEqual(kinds.count("epoch"), 6)
        self.assertEqual(kinds[-1], "done")
        step = next(e for e in ev if e["event"] == "step")
        for k in ("epoch", "step", "steps", "loss", "lr", "ips", "eta_s"):
            self.assertIn(k, step)
        epoch = [e for e in ev if e["event"] == "epoch"][-1]
        for k in ("train_loss", "val_top1", "val_loss", "lr", "time_s"):
            self.assertIn(k, epoch)
        for f in ("model.json", "weights.safetensors", "metrics.json", "checkpoint.safetensors"):
            self.assertTrue(os.path.exists(os.path.join(self.model, f)), f)
        mj = json.loads(read(os.path.join(self.model, "model.json")))
        self.assertEqual(mj["task"], "cls")
        self.assertEqual(mj["classes"], ["bar_h", "bar_v", "square"])
        self.assertEqual(mj["input"]["channels"], 3)
        self.assertEqual(len(mj["normalization"]["mean"]), 3)
        leftovers = [f for f in os.listdir(self.tmp) if ".tmp-" in f or ".old." in f]
        self.assertEqual(leftovers, [])

    def test_training_learns(self):
        ev = [e for e in json_lines(self.train_out) if e["event"] == "epoch"]
        self.assertLess(ev[-1]["train_loss"], ev[0]["train_loss"])
        self.assertGreaterEqual(max(e["val_top1"] for e in ev), 0.6)

    def test_eval_json_contract(self):
        rc, out, err = run("eval", "--model", self.model, "--data", self.data, "--split", "test", "--json")
        self.assertEqual(rc, 0, err)
        r = json.loads(out.strip().splitlines()[-1])
        self.assertEqual(r["task"], "cls")
        self.assertEqual(r["split"], "test")
        self.assertEqual(r["images"], 30)
        self.assertTrue(0 <= r["top1"] <= 1 and r["top5"] == 1.0)
        self.assertEqual(len(r["per_class"]), 3)
        for pc in r["per_class"]:
            self.assertEqual(set(pc), {"name", "precision", "recall", "f1", "support"})
        conf = np.array(r["confusion"])
        self.assertEqual(conf.shape, (3, 3))
        self.assertEqual(conf.sum(), 30)
        self.assertAlmostEqual(np.trace(conf) / 30.0, r["top1"], places=5)

    def test_eval_matches_classes_by_name(self):
        # a test set with two of the model's three classes: its "square" (index 1 there) is scored
        # as the model's "square" (index 2), so the confusion rows are the full test set's
        rc, out, err = run("eval", "--model", self.model, "--data", self.data, "--split", "test", "--json")
        self.assertEqual(rc, 0, err)
        full = json.loads(out.strip().splitlines()[-1])
        sub = os.path.join(self.tmp, "subset")
        for part in ("train", "test"):
            for name in ("bar_h", "square"):
                shutil.copytree(os.path.join(self.data, part, name), os.path.join(sub, part, name), dirs_exist_ok=True)
        rc, out, err = run("eval", "--model", self.model, "--data", sub, "--split", "test", "--json")
        self.assertEqual(rc, 0, err)
        r = json.loads(out.strip().splitlines()[-1])
        self.assertEqual(r["images"], 20)
        self.assertEqual([pc["name"] for pc in r["per_class"]], ["bar_h", "bar_v", "square"])
        self.assertEqual(r["confusion"], [full["confusion"][0], [0, 0, 0], full["confusion"][2]])
        # a class the model does not know: refused, naming it
        os.rename(os.path.join(sub, "test", "square"), os.path.join(sub, "test", "washer"))
        os.rename(os.path.join(sub, "train", "square"), os.path.join(sub, "train", "washer"))
        rc, out, err = run("eval", "--model", self.model, "--data", sub, "--split", "test", "--json")
        self.assertNotEqual(rc, 0)
        self.assertIn("'washer' is not one of the model's 3 classes", err)

    def test_predict_json_contract(self):
        img = os.path.join(self.data, "test", "square", "square_000.png")
        rc, out, err = run("predict", "--model", self.model, "--topk", "2", "--json", img)
        self.assertEqual(rc, 0, err)
        r = json.loads(out.strip())
        self.assertEqual(r["image"], img)
        self.assertIn(r["label"], ["bar_h", "bar_v", "square"])
        self.assertEqual(len(r["topk"]), 2)
        self.assertEqual(r["topk"][0]["label"], r["label"])
        self.assertAlmostEqual(r["topk"][0]["score"], r["score"], places=5)
        self.assertGreaterEqual(r["topk"][0]["score"], r["topk"][1]["score"])

    def test_infer_npy_matches_predict_logits(self):
        x = np.random.RandomState(0).randn(2, 3, 32, 32).astype(np.float32)
        inp, outp = os.path.join(self.tmp, "in.npy"), os.path.join(self.tmp, "out.npy")
        np.save(inp, x)
        rc, out, err = run("infer", "--model", self.model, "--input", inp, "--output", outp)
        self.assertEqual(rc, 0, err)
        y = np.load(outp)
        self.assertEqual(y.shape, (2, 3))
        self.assertTrue(np.all(np.isfinite(y)))
        # batch independence: each sample alone gives the same logits
        np.save(inp, x[1:2])
        rc, out, err = run("infer", "--model", self.model, "--input", inp, "--output", outp)
        self.assertEqual(rc, 0, err)
        self.assertLess(np.abs(np.load(outp)[0] - y[1]).max(), 1e-4)

    def test_bench_json_contract(self):
        rc, out, err = run("bench", "--model", self.model, "--batch", "2", "--iters", "20", "--json")
        self.assertEqual(rc, 0, err)
        r = json.loads(out.strip())
        self.assertEqual(set(r["latency_ms"]), {"p50", "p90", "p99"})
        self.assertTrue(0 < r["latency_ms"]["p50"] <= r["latency_ms"]["p90"] <= r["latency_ms"]["p99"])
        self.assertGreater(r["throughput_ips"], 0)
        self.assertGreater(r["peak_rss_mb"], 0)


class TestFineTune(unittest.TestCase):
    """--init starts from another model's weights with a new classifier; --freeze-backbone
    trains only that classifier."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tmpdir()
        cls.src_data = make_imagefolder(os.path.join(cls.tmp, "a"), classes=3, per_class=24, seed=1)
        cls.new_data = make_imagefolder(os.path.join(cls.tmp, "b"), classes=4, per_class=16, seed=2)
        cls.src = os.path.join(cls.tmp, "src")
        run("train", "--data", cls.src_data, "--out", cls.src, "--epochs", "2", "--batch", "8", check=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def finetune(self, out, *extra):
        rc, o, err = run("train", "--data", self.new_data, "--out", out, "--init", self.src, "--epochs", "2",
                         "--batch", "8", "--json", *extra)
        self.assertEqual(rc, 0, err)
        return json_lines(o)

    def test_new_classes_and_copied_backbone(self):
        out = os.path.join(self.tmp, "ft")
        ev = self.finetune(out)
        self.assertIn("fine-tuning", ev[0]["message"])
        mj = json.loads(read(os.path.join(out, "model.json")))
        self.assertEqual(mj["classes"], ["bar_h", "bar_v", "cross", "square"])
        src, ft = (safetensors_load(os.path.join(d, "weights.safetensors")) for d in (self.src, out))
        self.assertEqual(ft["classifier.weight"].shape, (4, 128))
        self.assertEqual(set(src), set(ft))
        # trained from the source weights: changed, but still close to them
        w0, w1 = src["features.0.conv.weight"], ft["features.0.conv.weight"]
        self.assertFalse(np.array_equal(w0, w1))
        self.assertLess(np.abs(w1 - w0).max(), 0.5 * np.abs(w0).max())
        x = np.random.RandomState(1).randn(1, 3, 32, 32).astype(np.float32)
        np.save(os.path.join(self.tmp, "x.npy"), x)
        run("infer", "--model", out, "--input", os.path.join(self.tmp, "x.npy"), "--output",
            os.path.join(self.tmp, "y.npy"), check=True)
        self.assertEqual(np.load(os.path.join(self.tmp, "y.npy")).shape, (1, 4))

    def test_freeze_backbone_trains_only_the_classifier(self):
        out = os.path.join(self.tmp, "frozen")
        ev = self.finetune(out, "--freeze-backbone")
        self.assertIn("516 trainable parameters", ev[0]["message"])  # 128 x 4 + 4
        src, ft = (safetensors_load(os.path.join(d, "weights.safetensors")) for d in (self.src, out))
        for name in src:
            if name.startswith("classifier"):
                continue
            if name.endswith("running_mean") or name.endswith("running_var"):
                continue  # batch-norm statistics adapt to the new data
            self.assertTrue(np.array_equal(src[name], ft[name]), name)

    def test_init_errors(self):
        rc, out, err = run("train", "--data", self.new_data, "--out", os.path.join(self.tmp, "x"), "--freeze-backbone")
        self.assertEqual(rc, 2)
        self.assertIn("--init", err)
        rc, out, err = run("train", "--data", self.new_data, "--out", os.path.join(self.tmp, "x"), "--init",
                           "/nonexistent/model")
        self.assertEqual(rc, 1)
        self.assertIn("/nonexistent/model", err)
        rc, out, err = run("train", "--data", self.new_data, "--out", os.path.join(self.tmp, "x"), "--init", self.src,
                           "--model", "resnet18")
        self.assertEqual(rc, 2)


class TestResume(unittest.TestCase):
    """A run killed mid-epoch and resumed ends with bitwise the same weights."""

    def test_kill_and_resume_is_bitwise_identical(self):
        tmp = tmpdir()
        try:
            data = make_imagefolder(os.path.join(tmp, "d"), classes=3, per_class=30, seed=3)
            args = ["train", "--task", "cls", "--data", data, "--epochs", "3", "--batch", "8", "--threads", "2",
                    "--seed", "7", "--json", "--log-every", "1", "--workers", "2"]
            a, b = os.path.join(tmp, "a"), os.path.join(tmp, "b")
            rc, out, err = run(*(args + ["--out", a]))
            self.assertEqual(rc, 0, err)
            # the interrupted run: SIGKILL after the 3rd step of epoch 2
            p = subprocess.Popen([AUTOCV] + args + ["--out", b], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 cwd=ROOT)
            killed = False
            for line in p.stdout:
                e = json.loads(line)
                if e.get("event") == "step" and e["epoch"] == 2 and e["step"] == 3:
                    p.send_signal(signal.SIGKILL)
                    killed = True
                    break
            p.stdout.close()
            p.wait()
            self.assertTrue(killed, "the run ended before it could be killed")
            self.assertTrue(os.path.exists(os.path.join(b, "checkpoint.safetensors")))
            rc, out, err = run(*(args + ["--out", b, "--resume"]))
            self.assertEqual(rc, 0, err)
            self.assertIn("resuming", out)
            wa = read(os.path.join(a, "weights.safetensors"))
            wb = read(os.path.join(b, "weights.safetensors"))
            self.assertEqual(wa, wb, "resumed weights differ from the uninterrupted run")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
