"""ONNX import end to end on the real build/autocv: torchvision models exported by
torch.onnx (tests/ref/onnx_ref.py) run through `autocv infer --model X.onnx` and through
`autocv import` + infer on the model directory, against PyTorch's outputs; the other
commands accept a .onnx file; external data; data-moving Transposes in a file with dynamic
height and width (against numpy); and malformed or unsupported files give one clear error
line, exit status 1, no crash and no model directory.

The reference files are generated once per version of onnx_ref.py into
$AUTOCV_BUILD/onnx-ref/<hash>/ (about a minute; vgg11_bn is 0.5 GB per opset)."""
import hashlib
import json
import os
import shutil
import subprocess
import unittest

import numpy as np

from helpers import BUILD, ROOT, png_bytes, read, run, tmpdir

PY = "/usr/bin/python3"
REF_SCRIPT = os.path.join(ROOT, "tests", "ref", "onnx_ref.py")
MODELS = ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "squeezenet1_1", "vgg11_bn",
          "shufflenet_v2_x0_5", "efficientnet_b0", "regnet_y_400mf", "convnext", "opmix"]
OPSETS = [13, 17]
TOL = 1e-4


def ref_dir():
    with open(REF_SCRIPT, "rb") as f:
        h = hashlib.sha256(f.read()).hexdigest()[:12]
    d = os.path.join(BUILD, "onnx-ref", h)
    if not os.path.exists(os.path.join(d, "done")):
        shutil.rmtree(d, ignore_errors=True)
        subprocess.run([PY, REF_SCRIPT, d], check=True, stdout=subprocess.DEVNULL, timeout=900)
        open(os.path.join(d, "done"), "w").close()
    return d


def rel_err(out_path, ref_path):
    a, b = np.load(out_path), np.load(ref_path)
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a.astype(np.float64) - b).max() / np.abs(b).max())


def onnx_model(nodes, inits, in_type=1, in_shape=(1, 3, 8, 8), out_shape=(1, 4)):
    """A small ONNX model (onnx.helper) for the malformed-file tests."""
    import onnx
    from onnx import helper
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", in_type, list(in_shape))],
                          [helper.make_tensor_value_info("output", 1, list(out_shape))], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def raw_tensor(name, dtype, dims, raw):
    """A TensorProto whose raw_data need not fit its dims (onnx.helper would refuse)."""
    from onnx import TensorProto
    t = TensorProto()
    t.name, t.data_type, t.raw_data = name, dtype, raw
    t.dims.extend(dims)
    return t


def good_nodes():
    from onnx import helper
    return [helper.make_node("Conv", ["input", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"], name="relu"),
            helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap"),
            helper.make_node("Flatten", ["p"], ["output"], name="flat")]


def good_inits():
    from onnx import numpy_helper
    rng = np.random.RandomState(0)
    return [numpy_helper.from_array(rng.randn(4, 3, 3, 3).astype(np.float32), "w"),
            numpy_helper.from_array(rng.randn(4).astype(np.float32), "b")]


class TestOnnxImport(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ref = ref_dir()
        cls.tmp = tmpdir("autocv-onnx-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def infer(self, model, name, b):
        out = os.path.join(self.tmp, "out.npy")
        rc, _, err = run("infer", "--model", model, "--input", os.path.join(self.ref, "%s_in_b%d.npy" % (name, b)),
                         "--output", out, "--threads", "2")
        self.assertEqual(rc, 0, err)
        return rel_err(out, os.path.join(self.ref, "%s_out_b%d.npy" % (name, b)))

    def test_models_match_pytorch(self):
        """Acceptance 1: every model, opset and batch within 1e-4 (max|diff| / max|ref|)."""
        worst = 0.0
        for name in MODELS:
            for op in OPSETS:
                path = os.path.join(self.ref, "%s_op%d.onnx" % (name, op))
                mdir = os.path.join(self.tmp, "%s_op%d" % (name, op))
                rc, out, err = run("import", path, "--out", mdir)
                self.assertEqual(rc, 0, err)
                for b in (1, 4):
                    with self.subTest(model=name, opset=op, batch=b):
                        e_onnx = self.infer(path, name, b)
                        e_dir = self.infer(mdir, name, b)
                        print("onnx %-20s opset %d batch %d: rel err %.2e (.onnx)  %.2e (imported dir)"
                              % (name, op, b, e_onnx, e_dir), flush=True)
                        self.assertLess(e_onnx, TOL)
                        self.assertLess(e_dir, TOL)
                        worst = max(worst, e_onnx, e_dir)
                shutil.rmtree(mdir)
        print("onnx worst relative error %.2e" % worst, flush=True)

    def test_import_options_and_commands(self):
        path = os.path.join(self.ref, "opmix_op17.onnx")
        classes = os.path.join(self.tmp, "classes.txt")
        with open(classes, "w") as f:
            f.write("\n".join("c%d" % i for i in range(10)) + "\n")
        mdir = os.path.join(self.tmp, "opmix_dir")
        rc, out, err = run("import", path, "--out", mdir, "--classes", classes, "--mean", "0.5,0.5,0.5",
                           "--std", "0.25,0.25,0.25")
        self.assertEqual(rc, 0, err)
        self.assertIn("imported", out)
        mj = json.loads(read(os.path.join(mdir, "model.json")))
        self.assertEqual(mj["task"], "cls")
        self.assertEqual(mj["arch"], "onnx")
        self.assertEqual(mj["classes"], ["c%d" % i for i in range(10)])
        self.assertEqual(mj["input"], {"channels": 3, "height": 64, "width": 64})
        self.assertEqual(mj["normalization"]["std"], [0.25, 0.25, 0.25])
        self.assertEqual(mj["provenance"]["opset"], 17)
        # parameters keep the initializers' names
        self.assertIn(b"c1.weight", read(os.path.join(mdir, "weights.safetensors"))[:4096])
        # wrong class count, bad flags
        with open(classes, "w") as f:
            f.write("a\nb\n")
        rc, _, err = run("import", path, "--out", os.path.join(self.tmp, "x"), "--classes", classes)
        self.assertEqual(rc, 1)
        self.assertIn("2 class names, the model outputs 10", err)
        rc, _, err = run("import", path, "--out", os.path.join(self.tmp, "x"), "--mean", "0.5,0.5", "--std", "1,1")
        self.assertEqual(rc, 1)
        self.assertIn("3 input channels", err)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "x")))
        rc, _, err = run("import", path)
        self.assertEqual(rc, 2)
        # predict and bench take the .onnx directly
        img = os.path.join(self.tmp, "img.png")
        with open(img, "wb") as f:
            f.write(png_bytes(20, 20, bytes(range(256)) * 4 + bytes(176)))
        rc, out, err = run("predict", "--model", path, "--json", img)
        self.assertEqual(rc, 0, err)
        self.assertTrue(json.loads(out.splitlines()[-1])["label"].startswith("class_"))
        rc, out, err = run("bench", "--model", path, "--iters", "3", "--threads", "2", "--json")
        self.assertEqual(rc, 0, err)
        self.assertGreater(json.loads(out.splitlines()[-1])["throughput_ips"], 0)

    def test_transpose_dynamic_size(self):
        """A data-moving Transpose (channel shuffle and an H/W swap, made of slices and
        concats) in a file whose H and W are dynamic: `infer --model FILE.onnx` imports it at
        the input's size (its folded Shape arithmetic then fits), `import --imgsz` at that
        size; both match numpy exactly. A transpose costing too many slices, and a
        transformer operator, are refused naming the node and what to do."""
        import onnx
        from onnx import TensorProto, helper, numpy_helper
        d = os.path.join(self.tmp, "tr")
        os.makedirs(d)
        i64 = lambda name, v: numpy_helper.from_array(np.array(v, dtype=np.int64), name)
        nodes = [helper.make_node("Shape", ["input"], ["s"], name="shape"),
                 helper.make_node("Slice", ["s", "two", "four"], ["hw"], name="hw"),
                 helper.make_node("Concat", ["g5", "hw"], ["spec5"], name="spec5", axis=0),
                 helper.make_node("Reshape", ["input", "spec5"], ["r5"], name="group"),
                 helper.make_node("Transpose", ["r5"], ["t5"], name="shuffle", perm=[0, 2, 1, 3, 4]),
                 helper.make_node("Concat", ["c4", "hw"], ["spec4"], name="spec4", axis=0),
                 helper.make_node("Reshape", ["t5", "spec4"], ["r4"], name="ungroup"),
                 helper.make_node("Transpose", ["r4"], ["t4"], name="swap_hw", perm=[0, 1, 3, 2]),
                 helper.make_node("Flatten", ["t4"], ["output"], name="flat")]
        inits = [i64("two", [2]), i64("four", [4]), i64("g5", [0, 2, 2]), i64("c4", [0, 4])]
        g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4, "H", "W"])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", "K"])], inits)
        path = os.path.join(d, "shuffle.onnx")
        onnx.save_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
        rng = np.random.RandomState(3)

        def check(model, shape):
            x = rng.randn(*shape).astype(np.float32)
            n, _, h, w = shape
            want = x.reshape(n, 2, 2, h, w).transpose(0, 2, 1, 3, 4).reshape(n, 4, h, w).transpose(0, 1, 3, 2)
            xin, out = os.path.join(d, "x.npy"), os.path.join(d, "y.npy")
            np.save(xin, x)
            rc, _, err = run("infer", "--model", model, "--input", xin, "--output", out, "--threads", "2")
            self.assertEqual(rc, 0, err)
            np.testing.assert_array_equal(np.load(out), want.reshape(n, -1))

        for shape in ((1, 4, 6, 10), (4, 4, 6, 10), (2, 4, 12, 5)):
            with self.subTest(onnx=shape):
                check(path, shape)
        mdir = os.path.join(d, "dir8")
        rc, _, err = run("import", path, "--out", mdir, "--imgsz", "8")
        self.assertEqual(rc, 0, err)
        check(mdir, (3, 4, 8, 8))
        # refused: at 224 the H/W swap costs 224 slices; a transformer operator
        rc, _, err = run("import", path, "--out", os.path.join(d, "big"))
        self.assertEqual(rc, 1)
        self.assertIn("node 'swap_hw' (Transpose)", err)
        self.assertIn("224 slices", err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        # LayerNormalization over the last axis (W here) imports; Erf alone is refused
        ln = [helper.make_node("LayerNormalization", ["input", "sc", "bi"], ["l"], name="ln1", axis=-1, epsilon=1e-3),
              helper.make_node("Flatten", ["l"], ["output"], name="flat")]
        sc, bi = rng.rand(8).astype(np.float32) + 0.5, rng.randn(8).astype(np.float32)
        lg = helper.make_graph(ln, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                               [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 192])],
                               [numpy_helper.from_array(sc, "sc"), numpy_helper.from_array(bi, "bi")])
        lpath = os.path.join(d, "ln.onnx")
        onnx.save_model(helper.make_model(lg, opset_imports=[helper.make_opsetid("", 17)]), lpath)
        x = rng.randn(2, 3, 8, 8).astype(np.float32)
        xd = x.astype(np.float64)
        want = (xd - xd.mean(-1, keepdims=True)) / np.sqrt(xd.var(-1, keepdims=True) + 1e-3) * sc + bi
        xin, out = os.path.join(d, "lx.npy"), os.path.join(d, "ly.npy")
        np.save(xin, x)
        rc, _, err = run("infer", "--model", lpath, "--input", xin, "--output", out, "--threads", "2")
        self.assertEqual(rc, 0, err)
        self.assertLess(np.abs(np.load(out) - want.reshape(2, -1)).max(), 1e-5)
        erf = [helper.make_node("Erf", ["input"], ["e"], name="erf1"), helper.make_node("Flatten", ["e"], ["output"], name="flat")]
        eg = helper.make_graph(erf, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                               [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 192])])
        epath = os.path.join(d, "erf.onnx")
        onnx.save_model(helper.make_model(eg, opset_imports=[helper.make_opsetid("", 13)]), epath)
        rc, _, err = run("import", epath, "--out", os.path.join(d, "erf_dir"))
        self.assertEqual(rc, 1)
        self.assertIn("node 'erf1' (Erf): Erf is supported only in exact GELU", err)
        self.assertFalse(os.path.exists(os.path.join(d, "erf_dir")))

    def test_convnext_finetune_and_export(self):
        """The small ConvNeXt imported from ONNX is fine-tuned one short epoch (`train --init`;
        every layer norm, GELU and channels-last block has a backward pass), then exported
        back to ONNX: onnx.checker accepts the file, and the re-import and ONNX Runtime
        match `autocv infer` on the fine-tuned directory within 1e-4."""
        from test_onnx_export import ORT_RUNNER, ort_modules
        from helpers import make_imagefolder
        d = os.path.join(self.tmp, "cnx")
        data = make_imagefolder(os.path.join(d, "data"), classes=3, per_class=8, size=32)
        ft = os.path.join(d, "ft")
        rc, out, err = run("train", "--data", data, "--out", ft, "--init", os.path.join(self.ref, "convnext_op13.onnx"),
                           "--epochs", "1", "--batch", "8", "--threads", "2", "--json")
        self.assertEqual(rc, 0, err)
        self.assertIn("fine-tuning", out)
        path = os.path.join(d, "ft.onnx")
        rc, out, err = run("export", "--model", ft, "--format", "onnx", "--out", path)
        self.assertEqual(rc, 0, err)
        code = ("import sys, onnx\nmp = onnx.load(sys.argv[1]); onnx.checker.check_model(mp, full_check=True)\n"
                "print(sorted({n.op_type for n in mp.graph.node}))\n")
        p = subprocess.run([PY, "-c", code, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        ops = p.stdout.decode()
        for op in ("Erf", "ReduceMean", "Sqrt"):
            self.assertIn(op, ops)
        x = np.random.RandomState(5).randn(3, 3, 64, 64).astype(np.float32)
        xin = os.path.join(d, "x.npy")
        np.save(xin, x)
        ys = {}
        for name, model in (("dir", ft), ("onnx", path)):
            o = os.path.join(d, "y_%s.npy" % name)
            rc, _, err = run("infer", "--model", model, "--input", xin, "--output", o, "--threads", "2")
            self.assertEqual(rc, 0, err)
            ys[name] = np.load(o)
        self.assertEqual(ys["dir"].shape, (3, 3))
        e = rel_err(os.path.join(d, "y_onnx.npy"), os.path.join(d, "y_dir.npy"))
        print("onnx convnext fine-tuned, exported, re-imported: rel err %.2e" % e, flush=True)
        self.assertLess(e, TOL)
        mods, why = ort_modules()
        if not mods:
            print("onnx convnext ONNX Runtime sub-check skipped: %s" % why, flush=True)
            return
        runner = os.path.join(d, "ort_run.js")
        with open(runner, "w") as f:
            f.write(ORT_RUNNER)
        raw_in, raw_out = os.path.join(d, "in.bin"), os.path.join(d, "out.bin")
        x.tofile(raw_in)
        p = subprocess.run(["node", runner, path, raw_in, json.dumps(list(x.shape)), raw_out], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=dict(os.environ, NODE_PATH=mods), timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        y = np.fromfile(raw_out, dtype=np.float32).reshape(ys["dir"].shape)
        e = float(np.abs(y - ys["dir"]).max() / np.abs(ys["dir"]).max())
        print("onnx convnext fine-tuned, exported, ONNX Runtime: rel err %.2e" % e, flush=True)
        self.assertLess(e, TOL)

    def test_external_data(self):
        import onnx
        d = os.path.join(self.tmp, "ext")
        os.makedirs(d)
        m = onnx.load(os.path.join(self.ref, "resnet18_op13.onnx"))
        path = os.path.join(d, "r18.onnx")
        onnx.save_model(m, path, save_as_external_data=True, all_tensors_to_one_file=True, location="r18.weights",
                        size_threshold=1024)
        self.assertLess(os.path.getsize(path), 1 << 20)
        self.assertLess(self.infer(path, "resnet18", 4), TOL)
        # a location outside the model's folder is refused
        for t in m.graph.initializer:
            for e in t.external_data:
                if e.key == "location":
                    e.value = "../r18.weights"
        bad = os.path.join(d, "bad.onnx")
        onnx.save_model(m, bad)
        rc, _, err = run("infer", "--model", bad, "--input", os.path.join(self.ref, "resnet18_in_b1.npy"),
                         "--output", os.path.join(self.tmp, "o.npy"))
        self.assertEqual(rc, 1)
        self.assertIn("leaves the model's folder", err)
        # a truncated weights file
        with open(os.path.join(d, "r18.weights"), "r+b") as f:
            f.truncate(1000)
        rc, _, err = run("import", path, "--out", os.path.join(self.tmp, "ext_dir"))
        self.assertEqual(rc, 1)
        self.assertIn("too short", err)

    def test_malformed_files(self):
        """Acceptance 5: one clear error line, exit status 1, nothing written."""
        import onnx
        from onnx import TensorProto, helper, numpy_helper
        d = os.path.join(self.tmp, "bad")
        os.makedirs(d)
        cases = {}
        good = onnx_model(good_nodes(), good_inits())
        onnx.save_model(good, os.path.join(d, "good.onnx"))
        blob = read(os.path.join(self.ref, "resnet18_op13.onnx"))
        cases["truncated"] = (blob[:len(blob) * 3 // 5], "does not parse")
        cases["not_protobuf"] = (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, "not an ONNX model")
        cases["empty"] = (b"", "empty file")
        cases["text"] = (b"hello, this is not a model\n" * 20, "not an ONNX model")
        cases["input_int"] = (onnx_model(good_nodes(), good_inits(), in_type=TensorProto.INT32), "element type INT32")
        w = good_inits()
        w[0] = helper.make_tensor("w", TensorProto.COMPLEX64, [4, 3, 3, 3], [0j] * 108)
        cases["weight_complex"] = (onnx_model(good_nodes(), w), "data type COMPLEX64 is not supported")
        w = good_inits()
        w[0] = raw_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], b"\0" * 10)
        cases["raw_size"] = (onnx_model(good_nodes(), w), "raw_data holds 10 bytes")
        w = good_inits()
        w[0] = raw_tensor("w", TensorProto.FLOAT, [1 << 40, 1 << 40], b"")
        cases["absurd_dims"] = (onnx_model(good_nodes(), w), "absurd")
        cases["absurd_input"] = (onnx_model(good_nodes(), good_inits(), in_shape=(1, 3, 1 << 30, 8)), "out of range")
        cases["missing_init"] = (onnx_model(good_nodes(), good_inits()[1:]), "input 'w' is missing")
        cyc = good_nodes()
        cyc[0] = helper.make_node("Conv", ["output", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1])
        cases["cyclic"] = (onnx_model(cyc, good_inits()), "cyclic")
        uns = good_nodes()
        uns[1] = helper.make_node("Einsum", ["c"], ["r"], name="ein1", equation="ij->ij")
        cases["unsupported_op"] = (onnx_model(uns, good_inits()), "node 'ein1' (Einsum): operator 'Einsum' is not supported")
        att = good_nodes()
        att[0] = helper.make_node("Conv", ["input", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1], foo=3)
        cases["unsupported_attr"] = (onnx_model(att, good_inits()), "node 'conv' (Conv): attribute 'foo' is not supported")
        for name, (content, msg) in sorted(cases.items()):
            with self.subTest(case=name):
                path = os.path.join(d, name + ".onnx")
                with open(path, "wb") as f:
                    f.write(content if isinstance(content, bytes) else content.SerializeToString())
                out_dir = os.path.join(d, name + "_dir")
                rc, out, err = run("import", path, "--out", out_dir)
                self.assertEqual(rc, 1, "%s: rc %d, stderr %s" % (name, rc, err))
                self.assertIn(msg, err)
                self.assertEqual(len(err.strip().splitlines()), 1, err)
                self.assertIn(path, err)
                self.assertFalse(os.path.exists(out_dir))
        rc, out, err = run("import", os.path.join(d, "good.onnx"), "--out", os.path.join(d, "good_dir"))
        self.assertEqual(rc, 0, err)


if __name__ == "__main__":
    unittest.main()
