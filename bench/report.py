#!/usr/bin/python3
"""Turns the raw outputs of bench/run.sh into the `make bench` table and results.json.

  report.py --raw DIR --out results.json [--threads N]

DIR holds, per measurement, ROUND.BENCH.ENGINE.{out,err,rc,load,foreign} (stdout: one JSON
object; stderr; exit status; the 1-minute load average just before it; the share of the
machine's CPU other processes used while it ran), plus torch_na / ort_na (why an engine is
not available, empty when it is), load_start, load_end and elapsed. Each figure is the
median over the rounds; ratios are taken between those medians and are written as
"AutoCV speed / peer speed", so > 1 always means AutoCV is faster:
  training:  AutoCV images/s / peer images/s            target >= 2.0 against PyTorch
  inference: peer latency / AutoCV latency (batch 1 and 8, latency of the whole batch)
                                                        target >= 1.0 against ONNX Runtime
A second table gives each engine's best round (the one least slowed by other load) and the
ratios between those, for reading results from a busy machine. Standard library only.
"""
import argparse
import glob
import json
import os
import platform
import statistics
import subprocess
import sys

ENGINES = ("autocv", "pytorch", "onnxruntime")
BENCHES = [
    # name, label, kind, unit, engines measured, target peer, target ratio
    ("train_resnet18", "train ResNet-18 64x64 b32", "train", "img/s", ("autocv", "pytorch"), "pytorch", 2.0),
    ("train_compact", "train compact 1x28x28 b64", "train", "img/s", ("autocv", "pytorch"), "pytorch", 2.0),
    ("infer_resnet18_b1", "infer ResNet-18 224 b1", "infer", "ms", ENGINES, "onnxruntime", 1.0),
    ("infer_mobilenetv2_b1", "infer MobileNetV2 224 b1", "infer", "ms", ENGINES, "onnxruntime", 1.0),
    ("infer_resnet18_b8", "infer ResNet-18 224 b8", "infer", "ms", ("autocv", "onnxruntime"), "onnxruntime", 1.0),
    ("infer_mobilenetv2_b8", "infer MobileNetV2 224 b8", "infer", "ms", ("autocv", "onnxruntime"), "onnxruntime",
     1.0),
]
SHORT = {"pytorch": "PyTorch", "onnxruntime": "ORT", "autocv": "AutoCV"}


def read(path, default=""):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def last_line(text):
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    return lines[-1] if lines else ""


def value_of(kind, obj):
    """The figure a benchmark reports: images/s for training, median latency for inference."""
    if kind == "train":
        return float(obj["images_per_s"])
    return float(obj["latency_ms"]["p50"])


def collect(raw, bench, kind, engine):
    """Per-round values, their outputs and the errors of one engine on one benchmark."""
    vals, outs, errors, loads, foreign = [], [], [], [], []
    for rc_path in sorted(glob.glob(os.path.join(raw, "*.%s.%s.rc" % (bench, engine))),
                          key=lambda p: int(os.path.basename(p).split(".")[0])):
        base = rc_path[:-3]
        rnd = int(os.path.basename(base).split(".")[0])
        rc = read(rc_path, "?")
        out, err = read(base + ".out"), read(base + ".err")
        for path, dst in ((base + ".load", loads), (base + ".foreign", foreign)):
            try:
                dst.append(float(read(path, "x")))
            except ValueError:
                pass
        obj = None
        try:
            obj = json.loads(last_line(out))
        except ValueError:
            pass
        if rc == "0" and isinstance(obj, dict) and "error" not in obj:
            try:
                vals.append(value_of(kind, obj))
                outs.append(dict(obj, round=rnd))
                continue
            except (KeyError, TypeError, ValueError):
                pass
        why = (obj or {}).get("error") if isinstance(obj, dict) else None
        why = why or last_line(err) or last_line(out) or "no output"
        if rc == "124":
            why = "timed out after 600 s"
        errors.append("round %d: exit %s: %s" % (rnd, rc, why))
    return vals, outs, errors, loads, foreign


def machine_info():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    rev = ""
    try:
        rev = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(), "autocv_git": rev}


def fmt(v, unit):
    if v is None:
        return "n/a"
    return ("%.1f" if unit == "img/s" else "%.2f") % v


def best_of(kind, vals):
    return (max(vals) if kind == "train" else min(vals)) if vals else None


def print_table(head, rows):
    table = [head] + rows
    width = [max(len(r[i]) for r in table) for i in range(len(head))]
    left = (0,) + tuple(range(4, len(head)))  # text columns; the figures are right-aligned
    line = lambda r: "| " + " | ".join(c.ljust(width[i]) if i in left else c.rjust(width[i])
                                        for i, c in enumerate(r)) + " |"
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in width) + "|")
    for r in rows:
        print(line(r))


def ratio_of(kind, autocv, peer):
    if autocv is None or peer is None or autocv <= 0 or peer <= 0:
        return None
    return autocv / peer if kind == "train" else peer / autocv


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    na = {"autocv": "", "pytorch": read(os.path.join(a.raw, "torch_na")),
          "onnxruntime": read(os.path.join(a.raw, "ort_na"))}

    results, rows, best_rows, notes, all_loads, all_foreign = [], [], [], [], [], []
    versions = {}
    for name, label, kind, unit, engines, target_peer, target in BENCHES:
        entry = {"name": name, "label": label, "kind": kind, "unit": unit,
                 "figure": "images/s (batch / median step)" if kind == "train" else "median latency ms",
                 "engines": {}, "ratios": {}}
        med, best = {}, {}
        for e in engines:
            vals, outs, errors, loads, foreign = collect(a.raw, name, kind, e)
            all_loads += loads
            all_foreign += foreign
            info = {"rounds": vals, "errors": errors, "foreign_cpu_share": foreign}
            if vals:
                med[e] = statistics.median(vals)
                best[e] = best_of(kind, vals)
                info.update(median=med[e], best=best[e], min=min(vals), max=max(vals), outputs=outs)
                for key in ("torch", "ort"):
                    if key in outs[-1]:
                        versions[key] = outs[-1][key]
            else:
                info["na"] = na[e] or (errors[-1] if errors else "not measured")
            if errors:
                notes.append("%s %s: %s" % (label, SHORT[e], errors[-1]))
            entry["engines"][e] = info
        # the same architecture on both sides: trainable parameter counts must agree (not for
        # inference rows, where AutoCV runs PyTorch's exported .onnx file: the exporter folds
        # batch norm into the convolutions, so that file has fewer parameters by design)
        pa = entry["engines"]["autocv"].get("outputs", [{}])[0].get("params")
        pt = entry["engines"].get("pytorch", {}).get("outputs", [{}])[0].get("params")
        if pa is not None and pt is not None and pa != pt and kind == "train":
            notes.append("%s: parameter counts differ (AutoCV %d, PyTorch %d)" % (label, pa, pt))
        entry["params"] = {"autocv": pa, "pytorch": pt}
        ratio_txt, best_txt = [], []
        entry["best_ratios"] = {}
        for e in engines[1:]:
            r = ratio_of(kind, med.get("autocv"), med.get(e))
            entry["ratios"][e] = r
            ratio_txt.append("%s %s" % (SHORT[e], "n/a" if r is None else "%.2fx" % r))
            rb = ratio_of(kind, best.get("autocv"), best.get(e))
            entry["best_ratios"][e] = rb
            best_txt.append("%s %s" % (SHORT[e], "n/a" if rb is None else "%.2fx" % rb))
        r = entry["ratios"].get(target_peer)
        entry["target"] = {"peer": target_peer, "min_ratio": target, "met": None if r is None else r >= target}
        if kind == "train":
            tgt = ">= %.0fx %s img/s" % (target, SHORT[target_peer])
        else:
            tgt = "<= %s latency" % SHORT[target_peer]
        verdict = "n/a" if r is None else ("met" if r >= target else "MISSED")
        rows.append(["%s (%s)" % (label, unit)] + [fmt(med.get(e), unit) if e in engines else "-" for e in ENGINES]
                    + ["; ".join(ratio_txt), "%s: %s" % (tgt, verdict)])
        best_rows.append(["%s (%s)" % (label, unit)] + [fmt(best.get(e), unit) if e in engines else "-"
                                                          for e in ENGINES] + ["; ".join(best_txt)])
        results.append(entry)

    load_start = read(os.path.join(a.raw, "load_start"))
    load_end = read(os.path.join(a.raw, "load_end"))
    load_mean = statistics.mean(all_loads) if all_loads else None
    foreign_mean = statistics.mean(all_foreign) if all_foreign else None
    mach = machine_info()
    rounds = max([len(e["engines"]["autocv"]["rounds"]) + len(e["engines"]["autocv"]["errors"])
                  for e in results] or [0])

    head = ["benchmark", "AutoCV", "PyTorch", "ONNX Runtime", "ratio (AutoCV speed / peer)", "target"]
    print()
    print("AutoCV vs PyTorch %s and ONNX Runtime %s, %d threads each, median of %d rounds, same run"
          % (versions.get("torch", "?"), versions.get("ort", "?"), a.threads, rounds))
    print("machine: %s, %s cores; load average %s at start, %s at end%s"
          % (mach["cpu"] or "?", mach["cores"], load_start.split()[0] if load_start else "?",
             load_end.split()[0] if load_end else "?",
             "" if load_mean is None else ", %.2f mean during measurements" % load_mean))
    if foreign_mean is not None:
        print("other processes used %.0f%% of the machine's CPU during the measurements (mean; steal included)"
              % (100 * foreign_mean))
    print_table(head, rows)
    print("ratio > 1: AutoCV faster (training: images/s over the peer's; inference: the peer's latency over AutoCV's)")
    for e, why in na.items():
        if why:
            print("%s: n/a (%s)" % (SHORT[e] if e != "onnxruntime" else "ONNX Runtime", why))
    busy = (foreign_mean is not None and foreign_mean > 0.1) or (load_mean is not None and load_mean > 0.5 * a.threads)
    if busy:
        print("warning: the machine was busy: figures are noisy. Each engine's best round (least disturbed):")
        print_table(head[:5], best_rows)
    for n in notes:
        print("note: " + n)

    doc = {"format": 1, "threads": a.threads, "rounds": rounds, "machine": mach,
           "load": {"start": load_start, "end": load_end, "mean_during": load_mean,
                    "foreign_cpu_share_mean": foreign_mean},
           "elapsed_s": float(read(os.path.join(a.raw, "elapsed"), "0") or 0),
           "versions": versions, "not_available": {k: v for k, v in na.items() if v}, "benchmarks": results}
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, a.out)
    print("results: %s" % a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
