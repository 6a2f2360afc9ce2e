#!/usr/bin/env python3
"""Does fine-tuning help? (issue 4, acceptance 3)

A ResNet-18 is trained by AutoCV on five Fashion-MNIST classes (0-4), exported to ONNX,
and used with `autocv train --init FILE.onnx` to fine-tune on the other five classes (5-9)
with only 50 training images per class; the same network is trained from scratch on those
250 images for the same number of epochs. Both are evaluated on the test images of
classes 5-9, and both figures are printed. Usage (from the repository root, after make):

    /usr/bin/python3 bench/finetune.py [--build build] [--pretrain-epochs 4] [--epochs 15]
"""
import argparse
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np

FMNIST = "/usr/share/datasets/fashion-mnist"
NAMES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    nd = data[3]
    dims = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def png(img):
    h, w = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def write_folder(root, images, labels, classes, per_class=None):
    seen = {c: 0 for c in classes}
    for i, (im, y) in enumerate(zip(images, labels)):
        y = int(y)
        if y not in seen or (per_class and seen[y] >= per_class):
            continue
        seen[y] += 1
        d = os.path.join(root, NAMES[y])
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "%05d.png" % i), "wb") as f:
            f.write(png(im))


def autocv(build, *args):
    t0 = time.time()
    p = subprocess.run([os.path.join(build, "autocv")] + [str(a) for a in args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit("autocv %s failed:\n%s" % (args[0], p.stderr))
    return p.stdout, time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--pretrain-epochs", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="autocv-finetune-")
    try:
        xtr, ytr = idx(FMNIST + "/train-images-idx3-ubyte.gz"), idx(FMNIST + "/train-labels-idx1-ubyte.gz")
        xte, yte = idx(FMNIST + "/t10k-images-idx3-ubyte.gz"), idx(FMNIST + "/t10k-labels-idx1-ubyte.gz")
        src = os.path.join(tmp, "src")
        write_folder(src, xtr, ytr, range(5))
        few = os.path.join(tmp, "few")
        write_folder(os.path.join(few, "train"), xtr, ytr, range(5, 10), per_class=50)
        write_folder(os.path.join(few, "test"), xte, yte, range(5, 10))
        common = ["--imgsz", 32, "--threads", a.threads, "--json"]
        _, t_pre = autocv(a.build, "train", "--data", src, "--out", os.path.join(tmp, "pre"), "--model", "resnet18",
                          "--epochs", a.pretrain_epochs, *common)
        onnx = os.path.join(tmp, "pre.onnx")
        autocv(a.build, "export", "--model", os.path.join(tmp, "pre"), "--format", "onnx", "--out", onnx)
        results = {}
        for name, extra in (("fine-tuned from the ONNX export", ["--init", onnx]),
                            ("from scratch", ["--model", "resnet18"])):
            out = os.path.join(tmp, name.split()[0])
            _, t = autocv(a.build, "train", "--data", few, "--out", out, "--epochs", a.epochs, "--val-split", "0.2",
                          "--seed", 1, *extra, *common)
            ev, _ = autocv(a.build, "eval", "--model", out, "--data", few, "--split", "test", "--json")
            results[name] = (json.loads(ev.strip().splitlines()[-1])["top1"], t)
        print("ResNet-18, Fashion-MNIST classes 5-9, 250 training images, %d epochs (pretraining on classes 0-4: "
              "%d epochs, %.0f s)" % (a.epochs, a.pretrain_epochs, t_pre))
        for name, (top1, t) in results.items():
            print("  %-34s test top-1 %.4f   (%.0f s)" % (name, top1, t))
        ft, sc = results["fine-tuned from the ONNX export"][0], results["from scratch"][0]
        print("  fine-tuning %s by %+.4f" % ("helps" if ft > sc else "does NOT help", ft - sc))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
