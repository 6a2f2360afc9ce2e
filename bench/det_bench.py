#!/usr/bin/env python3
"""The detection benchmark (issue 6): the synthetic tray set (bench/gen_tray.py) at 320x320,
the default detector trained on it with its training wall time and throughput, AP and
counting on the held-out test images, and detector inference latency at 320 and 640 (batch 1)
in AutoCV and in ONNX Runtime running the same exported model, with the ratio.

    /usr/bin/python3 bench/det_bench.py [--build build] [--train 1000] [--epochs 28] [--threads 2]
                                        [--model auto] [--skip-train] [--out DIR]

Writes DIR/det.json (default $BUILD/bench/det) and prints a table. Run it on a quiet machine:
OpenMP threads slow down badly when other processes share the cores."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"


def sh(cmd, **kw):
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, **kw)


def ort_modules(build):
    for d in (os.path.join(ROOT, "bench", "node_modules"), os.path.join(ROOT, build, "ort-node", "node_modules")):
        if os.path.isdir(os.path.join(d, "onnxruntime-node")):
            return d
    return None


def gen_tray_version():
    """gen_tray.py's VERSION, as the generated annotations record it."""
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import gen_tray  # noqa: E402 (the generator next to this file)
    return str(gen_tray.VERSION)


def data_version(path):
    try:
        with open(os.path.join(path, "annotations", "instances_train.json")) as f:
            return str(json.load(f).get("info", {}).get("version"))
    except (OSError, ValueError):
        return None


def model_arch(path):
    """The architecture a model directory records ("det-s", ...), or None."""
    try:
        with open(os.path.join(path, "model.json")) as f:
            return json.load(f).get("arch")
    except (OSError, ValueError):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=28)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="auto", help="detector architecture to train (default: auto)")
    ap.add_argument("--skip-train", action="store_true", help="reuse the trained model in --out")
    ap.add_argument("--quick", action="store_true",
                    help="make bench: 200 training images, 1 epoch (throughput and latency; accuracy not meaningful)")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.quick:
        a.train, a.epochs = 200, 1
    autocv = os.path.join(ROOT, a.build, "autocv")
    out = a.out or os.path.join(ROOT, a.build, "bench", "det")
    os.makedirs(out, exist_ok=True)
    data = os.path.join(out, "tray320-%d" % a.train)
    res = {"threads": a.threads, "train_images": a.train, "epochs": a.epochs, "quick": a.quick}
    if os.path.isdir(data) and data_version(data) != gen_tray_version():
        print("det_bench: %s was written by another version of gen_tray.py (%s, now %s): generating it again"
              % (data, data_version(data), gen_tray_version()), file=sys.stderr)
        shutil.rmtree(data)
    if not os.path.isdir(data):
        sh([PY, os.path.join(ROOT, "bench", "gen_tray.py"), "--out", data, "--train", str(a.train), "--val", "100",
            "--test", "200", "--imgsz", "320", "--seed", "0"])
    model = os.path.join(out, "model320-quick" if a.quick else "model320")  # make bench keeps a full run's model
    if not a.skip_train:
        t0 = time.time()
        p = sh([autocv, "train", "--task", "det", "--data", data, "--out", model, "--imgsz", "320", "--epochs",
                str(a.epochs), "--threads", str(a.threads), "--model", a.model, "--json"], stdout=subprocess.PIPE,
               text=True)
        res["train_wall_s"] = time.time() - t0
        ev = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
        ips = [e["ips"] for e in ev if e.get("event") == "epoch"]
        res["train_ips"] = sorted(ips)[len(ips) // 2] if ips else None
        res["model"] = next((e["model"] for e in ev if e.get("event") == "start"), None)
    p = sh([autocv, "eval", "--model", model, "--data", data, "--split", "test", "--json", "--threads",
            str(a.threads)], stdout=subprocess.PIPE, text=True)
    m = json.loads(p.stdout.strip().splitlines()[-1])
    res.update({k: m[k] for k in ("map50", "map50_95", "map75", "count_mae", "count_exact", "images")})
    # latency: the trained 320 model, and the same architecture built at 640 (weights do not
    # matter for speed: one epoch on a few images makes the model directory)
    tiny = os.path.join(out, "tiny640")
    if not os.path.isdir(tiny):
        sh([PY, os.path.join(ROOT, "bench", "gen_tray.py"), "--out", tiny, "--train", "4", "--val", "2", "--test", "2",
            "--imgsz", "640", "--seed", "1"])
    model640 = os.path.join(out, "model640")
    arch = model_arch(model)
    if not os.path.isdir(model640) or model_arch(model640) != arch:
        shutil.rmtree(model640, ignore_errors=True)
        sh([autocv, "train", "--task", "det", "--data", tiny, "--out", model640, "--imgsz", "640", "--epochs", "1",
            "--batch", "2", "--threads", str(a.threads), "--model", arch or "auto"], stdout=subprocess.DEVNULL)
    res["model"] = res.get("model") or arch
    mods = ort_modules(a.build)
    res["latency"] = {}
    for side, d in ((320, model), (640, model640)):
        onnx = os.path.join(out, "det%d.onnx" % side)
        sh([autocv, "export", "--model", d, "--format", "onnx", "--out", onnx], stdout=subprocess.DEVNULL)
        row = {}
        p = sh([autocv, "bench", "--model", d, "--batch", "1", "--threads", str(a.threads), "--seconds", "5", "--json"],
               stdout=subprocess.PIPE, text=True)
        row["autocv_ms"] = json.loads(p.stdout.strip().splitlines()[-1])["latency_ms"]["p50"]
        if mods:
            env = dict(os.environ, NODE_PATH=mods)
            p = sh(["node", os.path.join(ROOT, "bench", "ort_bench.js"), onnx, "--threads", str(a.threads), "--seconds",
                    "5", "--imgsz", str(side)], stdout=subprocess.PIPE, text=True, env=env)
            row["ort_ms"] = json.loads(p.stdout.strip().splitlines()[-1])["latency_ms"]["p50"]
            row["ratio"] = row["autocv_ms"] / row["ort_ms"]
        res["latency"][str(side)] = row
    with open(os.path.join(out, "det.json"), "w") as f:
        json.dump(res, f, indent=1)
    print("detection benchmark (%d threads, load %s)" % (a.threads, open("/proc/loadavg").read().split()[0]))
    print("  tray 320: %d train images, %s epochs, model %s" % (a.train, a.epochs, res.get("model")))
    if "train_wall_s" in res:
        print("  training wall %.1f min, %.1f img/s (median epoch)" % (res["train_wall_s"] / 60, res["train_ips"] or 0))
    if a.quick:
        print("  (quick run: one epoch, so the accuracy below is not meaningful)")
    print("  test (%d images): AP50 %.4f  AP50-95 %.4f  AP75 %.4f  count exact %.4f  count MAE %.4f" % (
        res["images"], res["map50"], res["map50_95"], res["map75"], res["count_exact"], res["count_mae"]))
    for side, row in res["latency"].items():
        if "ort_ms" in row:
            print("  latency %s px batch 1: AutoCV %.2f ms, ONNX Runtime %.2f ms, ratio %.2f" % (
                side, row["autocv_ms"], row["ort_ms"], row["ratio"]))
        else:
            print("  latency %s px batch 1: AutoCV %.2f ms (ONNX Runtime not installed)" % (side, row["autocv_ms"]))


if __name__ == "__main__":
    main()
