"""Every bad input of the classification CLI gets a clear error naming what is wrong,
never a crash, and nothing half-written (issue: engine, section 6)."""
import json
import os
import re
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

    # ---- images as cameras, phones and other tools write them -------------------------------

    def _jpeg(self):
        """A 32x32 baseline JPEG of a shape (torchvision's encoder), or skip."""
        try:
            import torch
            from torchvision.io import encode_jpeg
        except ImportError:
            self.skipTest("torchvision is not installed")
        rng = random.Random(5)
        px = bytearray(32 * 32 * 3)
        for i in range(len(px)):
            px[i] = rng.randint(0, 255)
        t = torch.tensor(list(px), dtype=torch.uint8).reshape(32, 32, 3).permute(2, 0, 1).contiguous()
        return bytes(encode_jpeg(t, quality=90).numpy().tobytes())

    def test_predict_odd_but_whole_files(self):
        jpg = self._jpeg()
        sof = jpg.index(b"\xff\xc0")
        rle8 = self._bmp_rle8()
        cases = {
            "no_eoi.jpg": (jpg[:-2], None),                                   # EOI marker missing: all pixels there
            "stray.jpg": (jpg[:-2] + b"\x00\x00\x11" + jpg[-2:], None),       # stray bytes before EOI
            "png_named.jpg": (read(os.path.join(self.data, "bar_h", "bar_h_000.png")), None),
            "rle8.bmp": (rle8, None),
            "cut.jpg": (jpg[:len(jpg) - 40], "truncated JPEG data"),
            "deep.jpg": (jpg[:sof + 4] + b"\x0c" + jpg[sof + 5:], "unsupported JPEG variant"),  # 12-bit
            "w.webp": (b"RIFF\x10\x00\x00\x00WEBPVP8 \x00\x00\x00\x00", "but a WebP image"),
            "h.heic": (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "but a HEIF/HEIC image"),
            "._x.jpg": (b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X", "AppleDouble"),
        }
        d = os.path.join(self.tmp, "odd")
        for name, (data, _) in cases.items():
            write(os.path.join(d, name), data)
        for name, (_, err_has) in cases.items():
            rc, out, err = run("predict", "--model", self.model, "--json", os.path.join(d, name))
            self.assertLess(rc, 128, "%s crashed: %s" % (name, err))
            if err_has is None:
                self.assertEqual(rc, 0, "%s: %s" % (name, err))
                self.assertEqual(len(json_lines(out)), 1, name)
            else:
                self.assertEqual(rc, 1, name)
                self.assertIn(name, err)
                self.assertIn(err_has, err)

    @staticmethod
    def _bmp_rle8():
        """A 4x2 RLE8 BMP: a run, an absolute run, end of line, a run, end of bitmap."""
        pal = b"".join(bytes((i, 255 - i, i // 2, 0)) for i in range(256))
        data = bytes([4, 10, 0, 0, 0, 4, 1, 2, 3, 4, 0, 1])
        off = 14 + 40 + len(pal)
        hdr = struct.pack("<IiiHHIIiiII", 40, 4, 2, 1, 8, 1, len(data), 2835, 2835, 256, 0)
        return b"BM" + struct.pack("<IHHI", off + len(data), 0, 0, off) + hdr + pal + data

    def _tree(self, name, layout):
        """Writes {relative path: bytes} under tmp/name (a None value makes a folder)."""
        root = os.path.join(self.tmp, name)
        shutil.rmtree(root, ignore_errors=True)
        for rel, data in layout.items():
            p = os.path.join(root.encode(), rel if isinstance(rel, bytes) else rel.encode())
            if data is None:
                os.makedirs(p, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(p), exist_ok=True)
                with open(p, "wb") as f:
                    f.write(data)
        return root

    def test_imagefolder_as_users_bring_it(self):
        rng = random.Random(3)
        t = {}
        for c, cls in enumerate(["bolt M6", "\u87ba\u6bcd"]):  # a space; Chinese (nut)
            for i in range(6):
                t["%s/img%d.%s" % (cls, i, ["png", "PNG", "Png"][i % 3])] = shape_image(c, rng)
            t["%s/2024/line 3/deep.png" % cls] = shape_image(c, rng)   # nested folders are read
            t["%s/.DS_Store" % cls] = b"\x00\x00\x00\x01Bud1"
            t["%s/._img0.png" % cls] = b"\x00\x05\x16\x07\x00\x02\x00\x00"
            t["%s/Thumbs.db" % cls] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
            t["%s/desktop.ini" % cls] = b"[.ShellClassInfo]\r\n"
            t["%s/@eaDir/img0.png/SYNOPHOTO_THUMB_S.png" % cls] = shape_image(c, rng)  # NAS thumbnails
        t["bolt M6/phone.webp"] = b"RIFF\x10\x00\x00\x00WEBPVP8 \x00\x00\x00\x00"
        t["__MACOSX/bolt M6/._img1.PNG"] = b"\x00\x05\x16\x07"
        t[".DS_Store"] = b"x"
        t["Thumbs.db"] = b"x"
        d = self._tree("wild", t)
        os.symlink(os.path.join(d, "bolt M6", "img1.PNG"), os.path.join(d, "bolt M6", "linked.png"))
        os.symlink("/nonexistent/gone.png", os.path.join(d, "bolt M6", "dangling.png"))
        m = os.path.join(self.tmp, "m_wild")
        rc, out, err = run("train", "--data", d, "--out", m, "--epochs", "1", "--batch", "4", "--val-split", "0.25",
                           "--json")
        self.assertEqual(rc, 0, err)
        msgs = [e.get("message", "") for e in json_lines(out) if e.get("event") == "log"]
        first = msgs[0]
        n_train, n_val = (int(x) for x in re.search(r"(\d+) train / (\d+) val images", first).groups())
        self.assertEqual(n_train + n_val, 7 + 1 + 7)        # per class 6 + nested; + the symlink
        self.assertGreater(n_val, 0)
        self.assertIn("2 classes", first)
        self.assertTrue(any("left out 1 files" in m_ and "phone.webp" in m_ for m_ in msgs), msgs)
        self.assertEqual(json_lines(out)[-1]["skipped_images"], 0)  # no metadata file was read as an image
        mj = json.loads(read(os.path.join(m, "model.json")))
        self.assertEqual(mj["classes"], ["bolt M6", "\u87ba\u6bcd"])

    def test_val_folder_with_foreign_or_missing_classes(self):
        rng = random.Random(4)
        t = {"train/%s/%d.png" % (c, i): shape_image(k, rng) for k, c in enumerate("ab") for i in range(4)}
        t.update({"val/%s/%d.png" % (c, i): shape_image(k % 2, rng) for k, c in enumerate("acd") for i in range(2)})
        d = self._tree("foreign", t)
        m = os.path.join(self.tmp, "m_foreign")
        err = self.assertFails(["train", "--data", d, "--out", m, "--epochs", "1"], "val")
        self.assertIn('2 class folders are not among the training classes: "c", "d"', err)
        self.assertIn('the training classes are "a", "b"', err)
        self.assertFalse(os.path.exists(os.path.join(m, "model.json")))
        # val/ lacking a class (an empty folder for it) validates on the others
        shutil.rmtree(os.path.join(d, "val", "c"))
        shutil.rmtree(os.path.join(d, "val", "d"))
        os.makedirs(os.path.join(d, "val", "b"))
        write(os.path.join(d, "val", "b", "notes.txt"), b"to do")
        rc, out, err = run("train", "--data", d, "--out", m, "--epochs", "1", "--batch", "4", "--json")
        self.assertEqual(rc, 0, err)
        self.assertIn("8 train / 2 val images, 2 classes", json_lines(out)[0]["message"])
        # an empty class folder in train/ is refused
        shutil.rmtree(os.path.join(d, "train", "b"))
        os.makedirs(os.path.join(d, "train", "b"))
        err = self.assertFails(["train", "--data", d, "--out", m + "2", "--epochs", "1"], os.path.join("train", "b"))
        self.assertIn("empty class folder", err)
        self.assertFalse(os.path.exists(os.path.join(m + "2", "model.json")))

    def test_class_folder_name_not_utf8(self):
        rng = random.Random(6)
        t = {b"caf\xe9/%d.png" % i: shape_image(0, rng) for i in range(4)}
        t.update({b"tea/%d.png" % i: shape_image(1, rng) for i in range(4)})
        d = self._tree("latin1", t)
        m = os.path.join(self.tmp, "m_latin1")
        err = self.assertFails(["train", "--data", d, "--out", m, "--epochs", "1"], "not valid UTF-8")
        self.assertIn("classes.txt", err)
        self.assertNotIn("epoch", err)
        write(os.path.join(d, "classes.txt"), "caf\u00e9\ntea\n".encode())
        rc, out, err = run("train", "--data", d, "--out", m, "--epochs", "1", "--batch", "4", "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(read(os.path.join(m, "model.json")))["classes"], ["caf\u00e9", "tea"])


if __name__ == "__main__":
    unittest.main()
