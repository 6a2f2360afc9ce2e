"""ONNX export end to end on the real build/autocv: models AutoCV trained (one short epoch
on a synthetic ImageFolder, so the batch-norm statistics and weights are not the initial
ones) for compact, resnet18 and mobilenetv2, and an "opmix" model directory written here
that uses every other operator the exporter knows (asymmetric pads, groups, dilation,
transposed convolution, every activation (GELU included), ceil-mode and count_include_pad
pooling, nearest and bilinear upsampling, broadcasting arithmetic, concat, strided slice,
reshape, flatten, layer norm over the channels of NCHW and over the last axis, softmax,
log-softmax, dropout), are exported with `autocv export`, checked
with onnx.checker (Debian's python3-onnx), run in ONNX Runtime (npm onnxruntime-node
1.19.2, through node) and re-imported by `autocv infer --model FILE.onnx`, each against
`autocv infer` on the model directory with the same random input at batch 1 and 3:
max|diff| / max|reference| < 1e-4.

ONNX Runtime comes from bench/node_modules when `make bench` installed it there, else it is
installed once into $AUTOCV_BUILD/ort-node with `npm install --ignore-scripts`; without
node or npm (or when the install fails) that sub-check is skipped with the reason."""
import json
import os
import shutil
import struct
import subprocess
import unittest

import numpy as np

from helpers import BUILD, ROOT, make_imagefolder, run, tmpdir

PY = "/usr/bin/python3"
MODELS = ["compact", "resnet18", "mobilenetv2"]
TOL = 1e-4
ORT_VERSION = "1.19.2"

# Reads the input (raw float32, dims given as JSON), runs the model, writes raw float32.
ORT_RUNNER = r"""
const fs = require('fs');
const ort = require('onnxruntime-node');
(async () => {
  const [model, inPath, dimsJson, outPath] = process.argv.slice(2);
  const buf = fs.readFileSync(inPath);
  const data = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  const s = await ort.InferenceSession.create(model, {intraOpNumThreads: 2, interOpNumThreads: 1});
  const r = await s.run({[s.inputNames[0]]: new ort.Tensor('float32', data, JSON.parse(dimsJson))});
  const y = r[s.outputNames[0]];
  fs.writeFileSync(outPath, Buffer.from(y.data.buffer, y.data.byteOffset, y.data.byteLength));
  console.log(JSON.stringify({dims: y.dims}));
})().catch((e) => { console.error(String(e && e.message ? e.message : e)); process.exit(1); });
"""


def ort_modules():
    """The node_modules folder holding onnxruntime-node, or (None, reason)."""
    bench = os.path.join(ROOT, "bench", "node_modules")
    if os.path.isdir(os.path.join(bench, "onnxruntime-node")):
        return bench, None
    if not shutil.which("node"):
        return None, "node is not installed"
    d = os.path.join(BUILD, "ort-node")
    mods = os.path.join(d, "node_modules")
    if os.path.isdir(os.path.join(mods, "onnxruntime-node")):
        return mods, None
    if not shutil.which("npm"):
        return None, "npm is not installed"
    os.makedirs(d, exist_ok=True)
    p = subprocess.run(["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix", d,
                        "onnxruntime-node@" + ORT_VERSION], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=300)
    if p.returncode != 0 or not os.path.isdir(os.path.join(mods, "onnxruntime-node")):
        return None, "npm install onnxruntime-node@%s failed: %s" % (
            ORT_VERSION, p.stdout.decode(errors="replace").strip().splitlines()[-1:])
    return mods, None


def write_opmix(d, seed=3):
    """A model directory (model.json + weights.safetensors) whose graph uses every operator
    and attribute the exporter handles; random weights; input 3x16x16, 3 classes."""
    rng = np.random.default_rng(seed)
    nodes, weights = [], {}

    def add(op, name="", inputs=(), attrs=None, **kw):
        n = dict(op=op, name=name, **kw)
        if inputs:
            n["inputs"] = list(inputs)
        if attrs:
            n["attrs"] = attrs
        nodes.append(n)
        return len(nodes) - 1

    def param(name, shape, positive=False, scale=0.5):
        v = rng.standard_normal(shape).astype(np.float32) * scale
        if positive:
            v = np.abs(v) + 0.5
        weights[name] = v
        return add("param", name, shape=list(shape), trainable=True, init="zero")

    def conv(name, x, shape, kernel, stride, pads, dil, groups, bias, t=False, out_pad=None):
        w = param(name + ".weight", shape)
        ins = [x, w] + ([param(name + ".bias", [bias])] if bias else [])
        at = dict(kernel=[kernel, kernel], stride=[stride, stride], pads=pads, dilation=[dil, dil], groups=groups)
        if t:
            at["output_padding"] = out_pad
        return add("convt2d" if t else "conv2d", name, ins, at)

    def act(x, kind, alpha=0.0):
        return add("act", "", [x], dict(kind=kind, alpha=alpha))

    def pool(op, x, k, s, pads, ceil, cip=False):
        return add(op, "", [x], dict(kernel=[k, k], stride=[s, s], pads=pads, dilation=[1, 1], ceil_mode=ceil,
                                     count_include_pad=cip))

    RELU, RELU6, LEAKY, SILU, SIGMOID, HSWISH, HSIGMOID, TANH, GELU = range(9)
    x = add("input", "input", shape=[1, 3, 16, 16])
    y = conv("conv_a", x, [8, 3, 3, 3], 3, 2, [1, 0, 2, 1], 1, 1, 8)                     # 8x9x8
    bn = [param("bn.weight", [8]), param("bn.bias", [8]), param("bn.running_mean", [8]),
          param("bn.running_var", [8], positive=True)]
    y = act(add("batchnorm", "bn", [y] + bn, dict(eps=1e-5, momentum=0.1)), LEAKY, 0.1)
    y = act(conv("conv_b", y, [8, 2, 3, 3], 3, 1, [2, 2, 2, 2], 2, 4, 0), SILU)           # 8x9x8
    y = act(conv("deconv", y, [8, 2, 3, 3], 3, 2, [1, 1, 1, 1], 1, 2, 4, t=True, out_pad=[1, 1]), HSWISH)  # 4x18x16
    y = pool("maxpool", y, 3, 2, [1, 1, 1, 1], True)                                     # 4x10x9
    p = pool("avgpool", y, 3, 1, [1, 1, 1, 1], False, False)                             # 4x10x9
    q = pool("avgpool", y, 2, 2, [0, 0, 1, 1], True, True)                               # 4x6x5
    t1 = act(add("upsample", "", [p], dict(size=[20, 18], bilinear=False, align_corners=False)), HSIGMOID)
    t2 = add("upsample", "", [q], dict(size=[15, 13], bilinear=True, align_corners=False))
    t2 = act(add("upsample", "", [t2], dict(size=[20, 18], bilinear=True, align_corners=True)), TANH)
    y = add("binary", "", [t1, t2], dict(op=0))
    y = add("binary", "", [y, param("scale", [1, 4, 1, 1])], dict(op=2))
    y = add("binary", "", [y, param("shift", [4, 1, 1])], dict(op=1))
    y = add("binary", "", [y, param("div", [1, 1, 18], positive=True)], dict(op=3))
    y = act(act(y, SIGMOID), RELU6)
    # layer norm over the channels of NCHW (ConvNeXt's LayerNorm2d), exact GELU
    y = add("layernorm", "ln_c", [y, param("ln_c.weight", [4], positive=True), param("ln_c.bias", [4])],
            dict(axis=1, eps=1e-6))
    y = act(y, GELU)
    z = act(add("binary", "", [y, param("gain", [1], positive=True)], dict(op=2)), RELU)
    y = add("concat", "", [y, add("slice", "", [z], dict(axis=1, start=1, end=3, step=1))], dict(axis=1))  # 6x20x18
    y = add("slice", "", [y], dict(axis=2, start=1, end=19, step=2))                      # 6x9x18
    y = add("reshape", "", [add("gap", "", [y])], dict(spec=[0, -1]))                     # 6
    y = add("linear", "fc1", [y, param("fc1.weight", [5, 6]), param("fc1.bias", [5])])
    y = add("layernorm", "ln_f", [y, param("ln_f.weight", [5], positive=True), param("ln_f.bias", [5])],
            dict(axis=1, eps=1e-5))                                                       # the last axis
    y = add("softmax", "", [y], dict(axis=1, log=False))
    f = add("reshape", "", [add("gap", "", [p])], dict(flatten_axis=1))                   # 4
    y = add("dropout", "", [add("concat", "", [y, f], dict(axis=1))], dict(p=0.5))        # 9
    y = add("linear", "fc2", [y, param("fc2.weight", [3, 9], scale=0.2), param("fc2.bias", [3])])
    y = add("softmax", "", [y], dict(axis=1, log=True))
    os.makedirs(d, exist_ok=True)
    model = {"format_version": 1, "autocv_version": "0.1.0", "task": "cls", "arch": "opmix",
             "classes": ["a", "b", "c"], "input": {"channels": 3, "height": 16, "width": 16},
             "normalization": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
             "preprocess": {"resize": "stretch", "crop_frac": 0.875}, "graph": {"nodes": nodes, "output": y}}
    with open(os.path.join(d, "model.json"), "w") as fh:
        json.dump(model, fh)
    header, blob = {}, b""
    for k, v in weights.items():
        b = v.tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [len(blob), len(blob) + len(b)]}
        blob += b
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(d, "weights.safetensors"), "wb") as fh:
        fh.write(struct.pack("<Q", len(h)) + h + blob)
    return d


def rel_err(a, b):
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


class TestOnnxExport(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tmpdir("autocv-export-")
        data = make_imagefolder(os.path.join(cls.tmp, "data"), classes=3, per_class=8, size=32)
        cls.dirs = {}
        for m in MODELS:
            d = os.path.join(cls.tmp, m)
            run("train", "--task", "cls", "--data", data, "--out", d, "--model", m, "--epochs", "1",
                "--batch", "8", "--imgsz", "32", "--threads", "2", "--json", check=True)
            cls.dirs[m] = d
        cls.dirs["opmix"] = write_opmix(os.path.join(cls.tmp, "opmix"))
        rng = np.random.default_rng(7)
        cls.inputs = {}
        for side in (32, 16):
            for n in (1, 3):
                x = rng.standard_normal((n, 3, side, side)).astype(np.float32)
                p = os.path.join(cls.tmp, "x%d_%d.npy" % (n, side))
                np.save(p, x)
                cls.inputs[n, side] = (p, x)
        cls.ort_mods, cls.ort_na = ort_modules()
        cls.runner = os.path.join(cls.tmp, "ort_run.js")
        with open(cls.runner, "w") as f:
            f.write(ORT_RUNNER)
        cls.figures = []

    @classmethod
    def tearDownClass(cls):
        for line in cls.figures:
            print(line)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def infer(self, model, n, side=32):
        out = os.path.join(self.tmp, "y_%s_%d.npy" % (os.path.basename(model).replace(".", "_"), n))
        run("infer", "--model", model, "--input", self.inputs[n, side][0], "--output", out, "--threads", "2",
            check=True)
        return np.load(out)

    def ort(self, onnx_path, n, side):
        x = self.inputs[n, side][1]
        raw_in, raw_out = os.path.join(self.tmp, "ort_in.bin"), os.path.join(self.tmp, "ort_out.bin")
        x.tofile(raw_in)
        env = dict(os.environ, NODE_PATH=self.ort_mods)
        p = subprocess.run(["node", self.runner, onnx_path, raw_in, json.dumps(list(x.shape)), raw_out],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        dims = json.loads(p.stdout.decode().strip().splitlines()[-1])["dims"]
        return np.fromfile(raw_out, dtype=np.float32).reshape(dims)

    def export_one(self, m):
        path = os.path.join(self.tmp, m + ".onnx")
        rc, out, err = run("export", "--model", self.dirs[m], "--format", "onnx", "--out", path)
        self.assertEqual(rc, 0, err)
        self.assertIn("exported", out)
        return path

    def check_model(self, m, path, side, classes):
        code = ("import json, sys, onnx\n"
                "mp = onnx.load(sys.argv[1]); onnx.checker.check_model(mp, full_check=True)\n"
                "print(json.dumps({'opset': mp.opset_import[0].version, 'ir': mp.ir_version,\n"
                "  'meta': {p.key: p.value for p in mp.metadata_props},\n"
                "  'in': [d.dim_param or d.dim_value for d in mp.graph.input[0].type.tensor_type.shape.dim],\n"
                "  'out': [d.dim_param or d.dim_value for d in mp.graph.output[0].type.tensor_type.shape.dim],\n"
                "  'inits': sorted(t.name for t in mp.graph.initializer)}))\n")
        p = subprocess.run([PY, "-c", code, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        if p.returncode != 0 and b"No module named 'onnx'" in p.stderr:
            self.skipTest("python3-onnx is not installed")
        self.assertEqual(p.returncode, 0, "onnx.checker rejected %s: %s" % (path, p.stderr.decode(errors="replace")))
        info = json.loads(p.stdout)
        self.assertEqual((info["opset"], info["ir"]), (13, 7))
        self.assertEqual(info["in"], ["N", 3, side, side])
        self.assertEqual(info["out"], ["N", 3])
        meta = info["meta"]
        self.assertEqual(json.loads(meta["classes"]), classes)
        self.assertEqual(meta["task"], "cls")
        self.assertEqual(meta["arch"], m)
        self.assertEqual(json.loads(meta["input_size"]), [side, side])
        self.assertEqual(meta["channels"], "3")
        with open(os.path.join(self.dirs[m], "model.json")) as f:
            mj = json.load(f)
        norm = json.loads(meta["normalization"])
        np.testing.assert_allclose(norm["mean"], mj["normalization"]["mean"], rtol=1e-6)
        np.testing.assert_allclose(norm["std"], mj["normalization"]["std"], rtol=1e-6)
        self.assertIn("autocv_version", meta)
        # the parameters keep their names
        self.assertTrue(any(n.endswith(".running_mean") for n in info["inits"]))
        self.assertTrue(any(n.endswith(".weight") for n in info["inits"]))

    def check(self, m, side=32, classes=("bar_h", "bar_v", "square")):
        path = self.export_one(m)
        self.check_model(m, path, side, list(classes))
        for n in (1, 3):
            ref = self.infer(self.dirs[m], n, side)
            self.assertEqual(ref.shape, (n, 3))
            back = self.infer(path, n, side)
            e = rel_err(back, ref)
            self.figures.append("%-12s batch %d  re-import (autocv infer FILE.onnx): %.2e" % (m, n, e))
            self.assertLess(e, TOL, "%s batch %d: re-imported export differs: %g" % (m, n, e))
            if self.ort_mods:
                y = self.ort(path, n, side)
                e = rel_err(y, ref)
                self.figures.append("%-12s batch %d  ONNX Runtime %s:              %.2e" % (m, n, ORT_VERSION, e))
                self.assertLess(e, TOL, "%s batch %d: ONNX Runtime differs: %g" % (m, n, e))
        if not self.ort_mods:
            self.figures.append("%-12s ONNX Runtime sub-check skipped: %s" % (m, self.ort_na))
        # `autocv import` reads the metadata back: class names, normalization, preprocessing
        back_dir = os.path.join(self.tmp, m + "-reimported")
        rc, out, err = run("import", path, "--out", back_dir)
        self.assertEqual(rc, 0, err)
        with open(os.path.join(back_dir, "model.json")) as f:
            bj = json.load(f)
        with open(os.path.join(self.dirs[m], "model.json")) as f:
            mj = json.load(f)
        self.assertEqual(bj["classes"], list(classes))
        self.assertEqual(bj["arch"], m)
        np.testing.assert_allclose(bj["normalization"]["mean"], mj["normalization"]["mean"], rtol=1e-6)
        np.testing.assert_allclose(bj["normalization"]["std"], mj["normalization"]["std"], rtol=1e-6)
        self.assertEqual(bj["preprocess"]["resize"], mj["preprocess"]["resize"])

    def test_detector(self):
        """det-s and det-s-p2: the (N, 64 + classes, anchors) output in AutoCV, re-imported, and ONNX Runtime."""
        from test_cli_det import make_coco
        data = os.path.join(self.tmp, "det-data")
        make_coco(data, 6, 5)
        for arch, anchors in (("det-s", 8 * 8 + 4 * 4 + 2 * 2), ("det-s-p2", 16 * 16 + 8 * 8 + 4 * 4 + 2 * 2)):
            with self.subTest(arch=arch):
                self.check_detector(data, arch, anchors)

    def check_detector(self, data, arch, anchors):
        d = os.path.join(self.tmp, arch)
        run("train", "--task", "det", "--data", data, "--out", d, "--model", arch, "--epochs", "1", "--batch", "3",
            "--imgsz", "64", "--threads", "2", "--json", check=True)
        path = os.path.join(self.tmp, arch + ".onnx")
        rc, out, err = run("export", "--model", d, "--format", "onnx", "--out", path)
        self.assertEqual(rc, 0, err)
        code = ("import json, sys, onnx\n"
                "mp = onnx.load(sys.argv[1]); onnx.checker.check_model(mp, full_check=True)\n"
                "print(json.dumps({p.key: p.value for p in mp.metadata_props}))\n")
        p = subprocess.run([PY, "-c", code, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        meta = json.loads(p.stdout)
        self.assertEqual((meta["task"], meta["arch"], json.loads(meta["classes"])), ("det", arch, ["square", "bar"]))
        # the count thresholds training chose travel in the metadata and come back on import
        with open(os.path.join(d, "model.json")) as f:
            thr = json.load(f)["postprocess"]["score_thresholds"]
        self.assertEqual(len(thr), 2)
        self.assertEqual(json.loads(meta["postprocess"])["score_thresholds"], thr)
        x = np.random.default_rng(3).random((2, 3, 64, 64), dtype=np.float32)
        xp = os.path.join(self.tmp, "det_x.npy")
        np.save(xp, x)
        outs = {}
        for name, model in (("dir", d), ("onnx", path)):
            o = os.path.join(self.tmp, "det_y_%s.npy" % name)
            run("infer", "--model", model, "--input", xp, "--output", o, "--threads", "2", check=True)
            outs[name] = np.load(o)
        self.assertEqual(outs["dir"].shape, (2, 66, anchors))
        e = rel_err(outs["onnx"], outs["dir"])
        self.figures.append("%-12s batch 2  re-import (autocv infer FILE.onnx): %.2e" % (arch, e))
        self.assertLess(e, TOL)
        if self.ort_mods:
            self.inputs[2, 64] = (xp, x)
            y = self.ort(path, 2, 64)
            e = rel_err(y, outs["dir"])
            self.figures.append("%-12s batch 2  ONNX Runtime %s:              %.2e" % (arch, ORT_VERSION, e))
            self.assertLess(e, TOL)
        back = os.path.join(self.tmp, arch + "-reimported")
        rc, out, err = run("import", path, "--out", back)
        self.assertEqual(rc, 0, err)
        with open(os.path.join(back, "model.json")) as f:
            bj = json.load(f)
        self.assertEqual((bj["task"], bj["classes"], bj["preprocess"]["resize"]), ("det", ["square", "bar"], "letterbox"))
        self.assertEqual(bj["postprocess"]["score_thresholds"], thr)
        o = os.path.join(self.tmp, "det_y_back.npy")
        run("infer", "--model", back, "--input", xp, "--output", o, "--threads", "2", check=True)
        self.assertLess(rel_err(np.load(o), outs["dir"]), TOL)

    def test_compact(self):
        self.check("compact")

    def test_resnet18(self):
        self.check("resnet18")

    def test_mobilenetv2(self):
        self.check("mobilenetv2")

    def test_opmix(self):
        self.check("opmix", 16, ("a", "b", "c"))

    def test_bad_format_and_missing_model(self):
        rc, _, err = run("export", "--model", self.dirs["compact"], "--format", "tflite", "--out",
                         os.path.join(self.tmp, "x.tflite"))
        self.assertEqual(rc, 2)
        self.assertIn("--format 'tflite' is not supported", err)
        out = os.path.join(self.tmp, "none.onnx")
        rc, _, err = run("export", "--model", os.path.join(self.tmp, "nope"), "--out", out)
        self.assertEqual(rc, 1)
        self.assertIn("autocv export: error:", err)
        self.assertFalse(os.path.exists(out))

    def test_unexportable_node_is_named(self):
        # a dilated average pool has no ONNX form before opset 19: an error naming the node
        d = write_opmix(os.path.join(self.tmp, "dilated"))
        with open(os.path.join(d, "model.json")) as f:
            mj = json.load(f)
        k = next(i for i, n in enumerate(mj["graph"]["nodes"]) if n["op"] == "avgpool")
        mj["graph"]["nodes"][k]["attrs"].update(kernel=[2, 2], pads=[1, 1, 1, 1], dilation=[2, 2])
        with open(os.path.join(d, "model.json"), "w") as f:
            json.dump(mj, f)
        out = os.path.join(self.tmp, "dilated.onnx")
        rc, _, err = run("export", "--model", d, "--out", out)
        self.assertEqual(rc, 1, err)
        self.assertIn("node %d '' (avgpool): dilated average pooling needs opset 19" % k, err)
        self.assertFalse(os.path.exists(out))

    def test_reexport_of_onnx_file(self):
        # an .onnx file is accepted as --model too (imported, then written again)
        src = self.export_one("compact")
        again = os.path.join(self.tmp, "again.onnx")
        rc, _, err = run("export", "--model", src, "--out", again)
        self.assertEqual(rc, 0, err)
        ref = self.infer(self.dirs["compact"], 3)
        e = rel_err(self.infer(again, 3), ref)
        self.assertLess(e, TOL)


if __name__ == "__main__":
    unittest.main()
