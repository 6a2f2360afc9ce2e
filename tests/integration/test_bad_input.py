"""Every bad input of the classification CLI gets a clear error naming what is wrong,
never a crash, and nothing half-written (issue: engine, section 6)."""
import os
import shutil
import struct
import unittest
import zlib

from helpers import json_lines, make_imagefolder, png_bytes, read, run, shape_image, tmpdir

import random


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


class TestBadInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tmpdir()
        cls.data = make_imagefolder(os.path.join(cls.tmp, "good"), classes=2, per_class=16)
        cls.model = os.path.join(cls.tmp, "model")
        rc, out, err = run("train", "--data", cls.data, "--out", cls.model, "--epochs", "1", "--batch", "8",
                           "--json")
        assert rc == 0, err
        good = read(os.path.join(cls.data, "bar_h", "bar_h_000.png"))
        cls.bad = os.path.join(cls.tmp, "bad")
        os.makedirs(cls.bad)
        cls.files = {
            "zero.png": b"",
            "text.jpg": b"this is a text file, not a JPEG\n",
            "truncated.png": good[: len(good) // 2],
            "truncated.jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xdb\x00\x43\x00",
            "corrupt.png": good[:40] + b"\x00" * 60 + good[100:],
            # a valid PNG header declaring 30000 x 30000 pixels with a tiny body
            "huge.png": png_bytes(1, 1, b"\x00\x00\x00", width_override=30000, height_override=30000),
        }
        for name, data in cls.files.items():
            write(os.path.join(cls.bad, name), data)
        write(os.path.join(cls.bad, "one.png"), png_bytes(1, 1, b"\x80\x40\x20"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def assertFails(self, args, *needles, code=None):
        rc, out, err = run(*args)
        self.assertNotEqual(rc, 0, "expected failure: %s\n%s" % (args, out))
        self.assertLess(rc, 128, "crashed (signal): %s\n%s" % (args, err))
        if code is not None:
            self.assertEqual(rc, code)
        lines = [l for l in err.strip().splitlines() if l]
        self.assertTrue(lines, "no error message")
        for n in needles:
            self.assertIn(n, err, "message does not name %r: %s" % (n, err))
        return err

    def test_bad_images_each_named(self):
        for name in self.files:
            p = os.path.join(self.bad, name)
            self.assertFails(["predict", "--model", self.model, p], name)

    def test_huge_image_refused_by_limit(self):
        err = self.assertFails(["predict", "--model", self.model, os.path.join(self.bad, "huge.png")], "huge.png")
        self.assertIn("30000", err)

    def test_one_by_one_image_decodes(self):
        rc, out, err = run("predict", "--model", self.model, "--json", os.path.join(self.bad, "one.png"))
        self.assertEqual(rc, 0, err)
        self.assertIn('"label"', out)

    def test_predict_continues_past_bad_image(self):
        good = os.path.join(self.data, "bar_v", "bar_v_001.png")
        rc, out, err = run("predict", "--model", self.model, "--json", os.path.join(self.bad, "zero.png"), good)
        self.assertEqual(rc, 1)
        self.assertEqual(len(json_lines(out)), 1)
        self.assertIn("zero.png", err)

    def test_empty_class_folder(self):
        d = os.path.join(self.tmp, "emptyclass")
        make_imagefolder(d, classes=2, per_class=4)
        os.makedirs(os.path.join(d, "zz_empty"))
        self.assertFails(["train", "--data", d, "--out", os.path.join(self.tmp, "m1"), "--epochs", "1"], "zz_empty")
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "m1", "model.json")))

    def test_no_images_at_all(self):
        d = os.path.join(self.tmp, "noimages")
        os.makedirs(os.path.join(d, "a"))
        write(os.path.join(d, "a", "readme.txt"), b"hello")
        self.assertFails(["train", "--data", d, "--out", os.path.join(self.tmp, "m2")], "noimages")

    def test_missing_dataset(self):
        self.assertFails(["train", "--data", "/nonexistent/data", "--out", os.path.join(self.tmp, "m3")],
                         "/nonexistent/data")

    def test_unknown_model_name(self):
        err = self.assertFails(["train", "--data", self.data, "--out", os.path.join(self.tmp, "m4"), "--model",
                                "resnet9000"], "resnet9000")
        self.assertIn("resnet18", err)

    def test_missing_and_malformed_flags(self):
        self.assertFails(["train", "--data", self.data], "--out", code=2)
        self.assertFails(["train", "--data", self.data, "--out", "x", "--epochs", "ten"], "--epochs", code=2)
        self.assertFails(["train", "--data", self.data, "--out", "x", "--bogus", "1"], "--bogus", code=2)
        self.assertFails(["train", "--data", self.data, "--out", "x", "--epochs"], "--epochs", code=2)
        self.assertFails(["eval", "--model", self.model], "--data", code=2)
        self.assertFails(["frobnicate"], "frobnicate", code=2)
        self.assertFails(["predict", "--model", self.model], "no images", code=2)
        self.assertFails(["train", "--task", "seg", "--data", self.data, "--out", "x"], "--task", code=2)

    def test_model_dir_errors(self):
        self.assertFails(["eval", "--model", "/nonexistent/m", "--data", self.data], "/nonexistent/m")
        broken = os.path.join(self.tmp, "broken")
        shutil.copytree(self.model, broken)
        write(os.path.join(broken, "model.json"), b"{not json")
        self.assertFails(["predict", "--model", broken, os.path.join(self.bad, "one.png")], "model.json")
        shutil.rmtree(broken)
        shutil.copytree(self.model, broken)
        os.remove(os.path.join(broken, "weights.safetensors"))
        self.assertFails(["predict", "--model", broken, os.path.join(self.bad, "one.png")], "weights.safetensors")

    def test_infer_bad_npy(self):
        p = os.path.join(self.tmp, "bad.npy")
        write(p, b"\x93NUMPY\x01\x00garbage")
        self.assertFails(["infer", "--model", self.model, "--input", p, "--output", os.path.join(self.tmp, "o.npy")],
                         "bad.npy")
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "o.npy")))

    def test_training_skips_unreadable_images(self):
        d = os.path.join(self.tmp, "someBad")
        make_imagefolder(d, classes=2, per_class=20)
        write(os.path.join(d, "bar_h", "broken_1.png"), b"")
        write(os.path.join(d, "bar_v", "broken_2.jpg"), b"not an image")
        rc, out, err = run("train", "--data", d, "--out", os.path.join(self.tmp, "m5"), "--epochs", "1", "--batch",
                           "8", "--val-split", "0.2", "--json")
        self.assertEqual(rc, 0, err)
        done = json_lines(out)[-1]
        self.assertEqual(done["event"], "done")
        self.assertGreaterEqual(done["skipped_images"], 1)
        self.assertTrue(any("skipped" in e.get("message", "") for e in json_lines(out)))


if __name__ == "__main__":
    unittest.main()
