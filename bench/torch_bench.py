#!/usr/bin/python3
"""PyTorch side of `make bench` (see bench/README.md); run by Debian's /usr/bin/python3.

  torch_bench.py export DIR
      writes DIR/resnet18.onnx and DIR/mobilenetv2.onnx (1000 classes, Nx3x224x224 with a
      dynamic batch N, opset 13, random weights, eval mode) for ONNX Runtime; prints one
      JSON object
  torch_bench.py train --model resnet18|compact [--imgsz N] [--channels C] [--batch N]
                 [--classes K] [--warmup N] [--steps N] [--seconds S] [--threads T]
      times full training steps (zero_grad, forward, cross-entropy, backward, SGD with
      momentum 0.9 and weight decay 5e-4) in model.train(); prints
      {"images_per_s": batch / median step, "images_per_s_mean", "step_ms", ...}
  torch_bench.py infer --model resnet18|mobilenetv2 [--imgsz N] [--seconds S] [--threads T]
      batch-1 latency in eval mode under torch.no_grad(); prints {"latency_ms": {"p50", ...}}

The timed phase stops after --steps steps or once --seconds have passed, whichever comes
first (always at least 3 timed steps), so a slow machine cannot stretch the bench.
Exits with status 2 and a one-line message on stderr when torch cannot be imported.
"""
import argparse
import json
import os
import statistics
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision
except ImportError as e:  # python3-torch / python3-torchvision are Debian dependencies
    sys.stderr.write("torch_bench.py: PyTorch/torchvision not importable by %s (%s)\n" % (sys.executable, e))
    sys.exit(2)


def compact(in_ch, classes, widths=(32, 64, 128)):
    """src/nn/zoo.c build_compact, layer for layer: 3 stages of 2x [conv3x3 (no bias) + BN +
    ReLU], max-pool 2 between stages, global average pool, flatten, dropout 0.2, linear."""
    layers, c = [], in_ch
    for s, w in enumerate(widths):
        for _ in range(2):
            layers += [nn.Conv2d(c, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
        if s < len(widths) - 1:
            layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Dropout(0.2), nn.Linear(c, classes))


def build(name, in_ch, classes):
    if name == "resnet18":
        if in_ch != 3:
            raise SystemExit("torch_bench.py: resnet18 takes 3 input channels")
        return torchvision.models.resnet18(num_classes=classes)
    if name == "mobilenetv2":
        if in_ch != 3:
            raise SystemExit("torch_bench.py: mobilenetv2 takes 3 input channels")
        return torchvision.models.mobilenet_v2(num_classes=classes)
    if name == "compact":
        return compact(in_ch, classes)
    raise SystemExit("torch_bench.py: unknown model %r (resnet18, mobilenetv2, compact)" % name)


def percentile(v, p):
    v = sorted(v)
    idx = p * (len(v) - 1)
    lo = int(idx)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (idx - lo)


def cmd_export(a):
    os.makedirs(a.dir, exist_ok=True)
    torch.manual_seed(1)
    out = {}
    for name in ("resnet18", "mobilenetv2"):
        m = build(name, 3, 1000).eval()
        x = torch.randn(1, 3, 224, 224)
        path = os.path.join(a.dir, name + ".onnx")
        with torch.no_grad():
            torch.onnx.export(m, x, path, opset_version=13, input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
        out[name] = path
    try:
        import onnx
        for p in out.values():
            onnx.checker.check_model(onnx.load(p))
        out["checked"] = True
    except ImportError:
        out["checked"] = False
    print(json.dumps(out))


def timed_loop(step, warmup, steps, seconds):
    for _ in range(warmup):
        step()
    times, t_end = [], time.perf_counter() + seconds
    while len(times) < steps and (len(times) < 3 or time.perf_counter() < t_end):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def cmd_train(a):
    torch.manual_seed(1)
    m = build(a.model, a.channels, a.classes)
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(a.batch, a.channels, a.imgsz, a.imgsz)
    y = torch.randint(0, a.classes, (a.batch,))
    losses = []

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))

    ms = timed_loop(step, a.warmup, a.steps, a.seconds)
    med = statistics.median(ms)
    print(json.dumps({
        "images_per_s": a.batch * 1000.0 / med, "images_per_s_mean": a.batch * len(ms) * 1000.0 / sum(ms),
        "step_ms_median": med, "step_ms": [round(t, 3) for t in ms], "model": a.model, "imgsz": a.imgsz,
        "channels": a.channels, "batch": a.batch, "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in m.parameters()), "loss_first": losses[0], "loss_last": losses[-1], "torch": torch.__version__}))


def cmd_infer(a):
    torch.manual_seed(1)
    m = build(a.model, 3, 1000).eval()
    x = torch.randn(1, 3, a.imgsz, a.imgsz)
    with torch.no_grad():
        ms = timed_loop(lambda: m(x), a.warmup, 1 << 30, a.seconds)
    print(json.dumps({
        "latency_ms": {"p50": statistics.median(ms), "p90": percentile(ms, 0.9), "p99": percentile(ms, 0.99)},
        "iters": len(ms), "model": a.model, "imgsz": a.imgsz, "batch": 1, "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in m.parameters()), "torch": torch.__version__}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("dir")
    t = sub.add_parser("train")
    t.add_argument("--model", required=True)
    t.add_argument("--imgsz", type=int, default=64)
    t.add_argument("--channels", type=int, default=3)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--classes", type=int, default=10)
    t.add_argument("--warmup", type=int, default=2)
    t.add_argument("--steps", type=int, default=10)
    t.add_argument("--seconds", type=float, default=1e9)
    t.add_argument("--threads", type=int, default=2)
    i = sub.add_parser("infer")
    i.add_argument("--model", required=True)
    i.add_argument("--imgsz", type=int, default=224)
    i.add_argument("--warmup", type=int, default=5)
    i.add_argument("--seconds", type=float, default=3)
    i.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    # Debian's torch starts with one thread here (shared/PEERS.md): set the count explicitly.
    if getattr(a, "threads", None):
        torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    {"export": cmd_export, "train": cmd_train, "infer": cmd_infer}[a.cmd](a)


if __name__ == "__main__":
    main()
