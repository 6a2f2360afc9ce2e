"""Shared helpers for integration tests: the autocv binary, fixture images and datasets
written with the standard library only (PNG via zlib), and command runners."""
import json
import os
import random
import struct
import subprocess
import tempfile
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("AUTOCV_BUILD", os.path.join(ROOT, "build"))
AUTOCV = os.path.join(BUILD, "autocv")


def run(*args, timeout=600, check=False):
    """Runs autocv with args; returns (returncode, stdout, stderr)."""
    p = subprocess.run([AUTOCV] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, cwd=ROOT)
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    if check and p.returncode != 0:
        raise AssertionError("autocv %s failed (%d):\n%s\n%s" % (" ".join(map(str, args)), p.returncode, out, err))
    return p.returncode, out, err


def json_lines(text):
    return [json.loads(l) for l in text.splitlines() if l.startswith("{")]


def png_bytes(w, h, pixels, channels=3, width_override=None, height_override=None):
    """Encodes 8-bit pixels (bytes, row-major, interleaved) as PNG."""
    color = {1: 0, 3: 2, 4: 6}[channels]
    raw = b"".join(b"\x00" + pixels[y * w * channels:(y + 1) * w * channels] for y in range(h))

    def chunk(t, d):
        c = struct.pack(">I", len(d)) + t + d
        return c + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    ihdr = struct.pack(">IIBBBBB", width_override or w, height_override or h, 8, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def shape_image(cls, rng, size=32):
    """A synthetic image of class cls (0: horizontal bar, 1: vertical bar, 2: square,
    3: cross) at a random place with noise; returns PNG bytes."""
    px = bytearray(size * size * 3)
    bg = rng.randint(0, 60)
    for i in range(size * size * 3):
        px[i] = bg + rng.randint(0, 30)
    cx, cy = rng.randint(8, size - 9), rng.randint(8, size - 9)
    col = (rng.randint(150, 255), rng.randint(150, 255), rng.randint(150, 255))

    def put(x, y):
        if 0 <= x < size and 0 <= y < size:
            o = (y * size + x) * 3
            px[o:o + 3] = bytes(col)
    for d in range(-7, 8):
        for t in range(-1, 2):
            if cls == 0:
                put(cx + d, cy + t)
            elif cls == 1:
                put(cx + t, cy + d)
            elif cls == 3:
                put(cx + d, cy + t)
                put(cx + t, cy + d)
    if cls == 2:
        for y in range(cy - 5, cy + 6):
            for x in range(cx - 5, cx + 6):
                put(x, y)
    return png_bytes(size, size, bytes(px))


def make_imagefolder(root, classes=3, per_class=40, size=32, seed=0, split=False):
    """Writes an ImageFolder tree of synthetic shapes; returns root."""
    rng = random.Random(seed)
    names = ["bar_h", "bar_v", "square", "cross"][:classes]
    parts = [("train", per_class), ("test", max(4, per_class // 4))] if split else [("", per_class)]
    for part, n in parts:
        for c, name in enumerate(names):
            d = os.path.join(root, part, name) if part else os.path.join(root, name)
            os.makedirs(d, exist_ok=True)
            for i in range(n):
                with open(os.path.join(d, "%s_%03d.png" % (name, i)), "wb") as f:
                    f.write(shape_image(c, rng, size))
    return root


def read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()


def tmpdir(prefix="autocv-it-"):
    return tempfile.mkdtemp(prefix=prefix)


def safetensors_load(path):
    """Reads a safetensors file of float32 tensors into {name: numpy array}."""
    import numpy as np
    raw = read(path)
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        out[name] = np.frombuffer(raw[base + b:base + e], dtype=np.float32).reshape(t["shape"])
    return out


def small_classifier_onnx(path):
    """Writes a small image classifier exported by PyTorch (five stride-2 3x3 conv + ReLU stages
    of 8, 16, 24, 32, 48 channels, global pool, 4 classes; fixed seed) to path; returns its bytes."""
    code = ("import torch, torch.nn as nn\n"
            "torch.manual_seed(0)\n"
            "c = lambda i, o: [nn.Conv2d(i, o, 3, 2, 1), nn.ReLU()]\n"
            "m = nn.Sequential(*c(3, 8), *c(8, 16), *c(16, 24), *c(24, 32), *c(32, 48),"
            " nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(48, 4)).eval()\n"
            "torch.onnx.export(m, torch.randn(1, 3, 64, 64), %r, opset_version=13)\n" % path)
    subprocess.run(["/usr/bin/python3", "-c", code], check=True, capture_output=True, timeout=300)
    return read(path)
