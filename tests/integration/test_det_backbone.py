"""A detector's backbone from an imported classifier (issue 6): `autocv train --task det
--backbone MODEL [--freeze-backbone]` with a .onnx classifier exported by PyTorch and with an
AutoCV classification model directory. Checked: the features chosen (strides, channels), the
classifier's weights copied exactly (and kept exactly when frozen), the fixed input conversion
(RGB in [0, 1] -> the classifier's normalization), training that learns, eval / predict /
export on the result, kill and --resume ending bitwise the same, and the refusals."""
import json
import os
import shutil
import subprocess
import time
import unittest

from helpers import AUTOCV, make_imagefolder, safetensors_load, tmpdir
from test_cli_det import CLASSES, make_coco, run

PY = "/usr/bin/python3"

# A small classifier in PyTorch: four stride-2 stages after a stride-2 stem (stride 32),
# exported in eval mode (its batch norms folded into the convolutions, as torch.onnx does).
EXPORT = r"""
import sys, torch, torch.nn as nn
torch.manual_seed(0)
def cbr(i, o, s):
    return [nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]
layers = cbr(3, 8, 2) + cbr(8, 16, 2) + cbr(16, 16, 1) + cbr(16, 24, 2) + cbr(24, 32, 2)
if sys.argv[2] == "32":  # one more stage: stride 32
    layers += cbr(32, 48, 2)
net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(layers[-3].out_channels, 5))
for m in net.modules():  # running statistics that are not the identity, so folding shows
    if isinstance(m, nn.BatchNorm2d):
        m.running_mean.uniform_(-0.2, 0.2); m.running_var.uniform_(0.5, 2.0)
net.eval()
torch.onnx.export(net, torch.randn(1, 3, 64, 64), sys.argv[1], opset_version=13,
                  input_names=["input"], output_names=["logits"])
"""

# A classifier with what makes picking features harder: an unpadded stem and a floor-mode pool
# (a 31x31 map where 32x32 is expected), squeeze-and-excitation blocks (a global pool that reads
# each level without leaving it) and reduction blocks whose second branch computes a 1x1
# convolution at the old size before its strided one (as Inception's do).
BRANCHY = r"""
import sys, torch, torch.nn as nn
torch.manual_seed(0)
class SE(nn.Module):
    def __init__(s, c):
        super().__init__(); s.a = nn.Conv2d(c, c // 2, 1); s.b = nn.Conv2d(c // 2, c, 1)
    def forward(s, x):
        return x * torch.sigmoid(s.b(torch.relu(s.a(x.mean((2, 3), keepdim=True)))))
class Red(nn.Module):
    def __init__(s, i, o):
        super().__init__()
        s.a = nn.Sequential(nn.Conv2d(i, o // 2, 3, 2, 1), nn.ReLU())
        s.b = nn.Sequential(nn.Conv2d(i, 8, 1), nn.ReLU(), nn.Conv2d(8, o // 2, 3, 2, 1), nn.ReLU())
    def forward(s, x):
        return torch.cat([s.a(x), s.b(x)], 1)
net = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 0), nn.ReLU(), nn.MaxPool2d(3, 2), SE(16),
                    Red(16, 24), SE(24), Red(24, 32), SE(32), Red(32, 48), SE(48),
                    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(48, 5)).eval()
torch.onnx.export(net, torch.randn(1, 3, 128, 128), sys.argv[1], opset_version=13,
                  input_names=["input"], output_names=["logits"])
"""


def last_json(text):
    return json.loads(text.strip().splitlines()[-1])


class TestDetBackbone(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tmpdir("autocv-det-bb-")
        cls.data = os.path.join(cls.tmp, "data")
        make_coco(cls.data, 24, 1, split="train")
        make_coco(cls.data, 8, 2, split="val")
        cls.onnx = os.path.join(cls.tmp, "small.onnx")
        cls.onnx16 = os.path.join(cls.tmp, "small16.onnx")  # stops at stride 16
        for path, stride in ((cls.onnx, "32"), (cls.onnx16, "16")):
            r = subprocess.run([PY, "-c", EXPORT, path, stride], capture_output=True, text=True, timeout=300)
            if r.returncode:
                raise RuntimeError("exporting the classifier failed: " + r.stderr[-2000:])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def train(self, out, *extra, timeout=900):
        return run("train", "--task", "det", "--data", self.data, "--out", out, "--imgsz", "128", "--batch", "8",
                   "--threads", "2", "--json", *extra, timeout=timeout)

    def onnx_weights(self):
        import onnx
        from onnx import numpy_helper
        return {t.name: numpy_helper.to_array(t) for t in onnx.load(self.onnx).graph.initializer}

    def test_onnx_backbone_frozen(self):
        import numpy as np
        out = os.path.join(self.tmp, "frozen")
        r = self.train(out, "--backbone", self.onnx, "--freeze-backbone", "--model", "det-s", "--epochs", "2")
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        with open(os.path.join(out, "model.json")) as f:
            mj = json.load(f)
        bb = mj["provenance"]["backbone"]
        self.assertEqual((bb["path"], bb["frozen"]), (self.onnx, True))
        # det-s takes strides 8, 16, 32: the stages of 24, 32 and 48 channels
        self.assertEqual([(f["stride"], f["channels"]) for f in bb["features"]], [(8, 24), (16, 32), (32, 48)])
        self.assertEqual(mj["provenance"]["config"]["backbone"], self.onnx)
        w = safetensors_load(os.path.join(out, "weights.safetensors"))
        src = self.onnx_weights()
        used = 0
        for name, a in src.items():
            key = "backbone." + name
            if key not in w:
                continue
            used += 1
            # frozen: exactly the classifier's values after two epochs (EMA included)
            self.assertTrue(np.array_equal(w[key].reshape(a.shape), a), key)
        # every convolution of the six stages (weight and folded bias); the classifier's head is not used
        self.assertEqual(used, 12)
        self.assertFalse([k for k in w if k.startswith("backbone.") and k[9:] not in src])
        # RGB in [0, 1] -> ImageNet normalization (the importer's default for 3 channels)
        mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
        np.testing.assert_allclose(w["backbone_input.weight"].reshape(3, 3), np.diag(1 / std), rtol=1e-6)
        np.testing.assert_allclose(w["backbone_input.bias"], -mean / std, rtol=1e-6)
        # the neck and heads trained
        self.assertIn("adapt.1.conv.weight", w)
        self.assertIn("head.cls.0.2.bias", w)
        # eval, predict, export on the result
        r = run("eval", "--model", out, "--data", self.data, "--split", "val", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(last_json(r.stdout)["images"], 8)
        img = os.path.join(self.data, "images", "val", "val_000.png")
        r = run("predict", "--model", out, "--json", img)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(set(last_json(r.stdout)["counts"]), set(CLASSES))
        onnx_out = os.path.join(self.tmp, "frozen.onnx")
        r = run("export", "--model", out, "--out", onnx_out)
        self.assertEqual(r.returncode, 0, r.stderr)
        # the exported network computes what the model directory does
        x = np.random.default_rng(0).random((1, 3, 128, 128), dtype=np.float32)
        xin = os.path.join(self.tmp, "x.npy")
        np.save(xin, x)
        outs = []
        for m in (out, onnx_out):
            y = os.path.join(self.tmp, "y%d.npy" % len(outs))
            r = run("infer", "--model", m, "--input", xin, "--output", y)
            self.assertEqual(r.returncode, 0, r.stderr)
            outs.append(np.load(y))
        np.testing.assert_allclose(outs[0], outs[1], rtol=1e-4, atol=1e-4)

    def test_model_dir_backbone(self):
        import numpy as np
        # an AutoCV ResNet-18 classifier (batch norms, running statistics, its data's normalization)
        folder = make_imagefolder(os.path.join(self.tmp, "shapes"), classes=3, per_class=12, size=32)
        cls_dir = os.path.join(self.tmp, "r18")
        r = run("train", "--task", "cls", "--data", folder, "--out", cls_dir, "--model", "resnet18", "--epochs", "1",
                "--threads", "2", "--json")
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        with open(os.path.join(cls_dir, "model.json")) as f:
            cj = json.load(f)
        src = safetensors_load(os.path.join(cls_dir, "weights.safetensors"))
        out = os.path.join(self.tmp, "on_r18")
        r = self.train(out, "--backbone", cls_dir, "--model", "det-s-p2", "--epochs", "2")
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        with open(os.path.join(out, "model.json")) as f:
            mj = json.load(f)
        bb = mj["provenance"]["backbone"]
        self.assertFalse(bb["frozen"])
        # -p2 adds stride 4: ResNet-18's four stages, each named after its last layer
        self.assertEqual([(f["stride"], f["channels"]) for f in bb["features"]],
                         [(4, 64), (8, 128), (16, 256), (32, 512)])
        for f, stage in zip(bb["features"], ("layer1", "layer2", "layer3", "layer4")):
            self.assertIn(stage, f["node"])
        w = safetensors_load(os.path.join(out, "weights.safetensors"))
        norm = cj["normalization"]
        mean, std = np.array(norm["mean"]), np.array(norm["std"])
        np.testing.assert_allclose(w["backbone_input.weight"].reshape(3, 3), np.diag(1 / std), rtol=1e-6)
        np.testing.assert_allclose(w["backbone_input.bias"], -mean / std, rtol=1e-6)
        # not frozen: the backbone trained away from the classifier's weights, with the same shapes;
        # the classifier's head (global pool, fc) is left out
        self.assertEqual(w["backbone.layer1.0.conv1.weight"].shape, src["layer1.0.conv1.weight"].shape)
        self.assertFalse(np.array_equal(w["backbone.layer1.0.conv1.weight"], src["layer1.0.conv1.weight"]))
        self.assertNotIn("backbone.fc.weight", w)
        self.assertEqual(len([k for k in w if k.startswith("backbone.")]),
                         len([k for k in src if not k.startswith("fc.")]))

    def test_onnx_backbone_learns(self):
        out = os.path.join(self.tmp, "learns")
        r = self.train(out, "--backbone", self.onnx, "--model", "det-s", "--epochs", "40", "--close-mosaic", "10",
                       "--warmup", "2", "--val-every", "40")
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        r = run("eval", "--model", out, "--data", self.data, "--split", "val", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        got = last_json(r.stdout)
        print("backbone learns: val AP50 %.3f" % got["map50"])
        self.assertGreater(got["map50"], 0.5, got)

    def test_classifier_to_stride_16(self):
        # the stride-32 level is a stride-2 Conv of the stride-16 one
        out = os.path.join(self.tmp, "s16")
        r = self.train(out, "--backbone", self.onnx16, "--model", "det-s", "--epochs", "1")
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        with open(os.path.join(out, "model.json")) as f:
            feats = json.load(f)["provenance"]["backbone"]["features"]
        self.assertEqual([(f["stride"], f["channels"]) for f in feats], [(8, 24), (16, 32)])
        w = safetensors_load(os.path.join(out, "weights.safetensors"))
        self.assertEqual(w["adapt.2.conv.weight"].shape, (128, 32, 1, 1))   # stride 16 -> det-s's 128
        self.assertEqual(w["adapt.3.conv.weight"].shape, (256, 128, 3, 3))  # stride 32 made from it
        r = run("predict", "--model", out, "--json", os.path.join(self.data, "images", "val", "val_000.png"))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_features_of_a_branchy_classifier(self):
        path = os.path.join(self.tmp, "branchy.onnx")
        r = subprocess.run([PY, "-c", BRANCHY, path], capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        out = os.path.join(self.tmp, "branchy")
        r = self.train(out, "--backbone", path, "--model", "det-s-p2", "--epochs", "1")
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        with open(os.path.join(out, "model.json")) as f:
            feats = json.load(f)["provenance"]["backbone"]["features"]
        # each level's squeeze-and-excitation output (a multiply), after the reduction's
        # concat: not the second branch's 1x1 convolution at the old size, not the concat
        # before the block's global pool
        self.assertEqual([(f["stride"], f["channels"]) for f in feats], [(4, 16), (8, 24), (16, 32), (32, 48)])
        for f in feats:
            self.assertTrue(f["node"].startswith("binary"), f)
        self.assertEqual(feats[0]["size"], [31, 31])  # resized to 32x32
        self.assertEqual(feats[1]["size"], [16, 16])
        self.assertIn("31x31 resized to 32x32", r.stdout)

    def test_kill_and_resume_is_bitwise_identical(self):
        args = ("--backbone", self.onnx, "--model", "det-s", "--epochs", "3", "--imgsz", "64", "--val-every", "3")
        full = os.path.join(self.tmp, "full")
        r = run("train", "--task", "det", "--data", self.data, "--out", full, "--batch", "8", "--threads", "2",
                "--json", *args)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        part = os.path.join(self.tmp, "part")
        p = subprocess.Popen([AUTOCV, "train", "--task", "det", "--data", self.data, "--out", part, "--batch", "8",
                              "--threads", "2", "--json", *args], stdout=subprocess.PIPE, text=True)
        killed = False
        for line in p.stdout:
            if '"event":"epoch"' in line:  # the first epoch's checkpoint is written
                time.sleep(0.2)
                p.kill()
                killed = True
                break
        p.wait()
        p.stdout.close()
        self.assertTrue(killed)
        os.replace(self.onnx, self.onnx + ".moved")  # resuming needs only the checkpoint
        try:
            r = run("train", "--task", "det", "--data", self.data, "--out", part, "--resume", "--json")
        finally:
            os.replace(self.onnx + ".moved", self.onnx)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        with open(os.path.join(full, "weights.safetensors"), "rb") as a, \
                open(os.path.join(part, "weights.safetensors"), "rb") as b:
            self.assertEqual(a.read(), b.read())

    def test_refusals(self):
        out = os.path.join(self.tmp, "bad")
        cases = [
            (("--backbone", os.path.join(self.tmp, "missing.onnx")), "missing.onnx"),
            (("--freeze-backbone",), "--freeze-backbone needs --backbone"),
            (("--backbone", self.onnx, "--init", self.onnx), "exclusive"),
            (("--backbone", self.onnx, "--resume"), "checkpoint"),
        ]
        # a detector is not a classifier
        det = os.path.join(self.tmp, "det_small")
        r = self.train(det, "--model", "det-s", "--epochs", "1", "--imgsz", "64")
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        cases.append((("--backbone", det), "use --init"))
        # a classifier that never gets to stride 8 (the compact digits model: stride 4)
        folder = make_imagefolder(os.path.join(self.tmp, "digits"), classes=2, per_class=6, size=28)
        compact = os.path.join(self.tmp, "compact")
        r = run("train", "--task", "cls", "--data", folder, "--out", compact, "--model", "compact", "--epochs", "1",
                "--json")
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        cases.append((("--backbone", compact, "--model", "det-s"), "no feature map at stride 8"))
        # a text file named .onnx
        junk = os.path.join(self.tmp, "junk.onnx")
        with open(junk, "w") as f:
            f.write("not a model\n")
        cases.append((("--backbone", junk), "junk.onnx"))
        for extra, want in cases:
            r = self.train(out, "--epochs", "1", *extra)
            self.assertNotEqual(r.returncode, 0, extra)
            self.assertIn(want, r.stderr, (extra, r.stderr))
            self.assertNotIn("Traceback", r.stderr)
            self.assertFalse(os.path.exists(os.path.join(out, "model.json")), extra)


if __name__ == "__main__":
    unittest.main()
