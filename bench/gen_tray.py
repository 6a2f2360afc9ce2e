#!/usr/bin/python3
"""Synthetic detection benchmark: machine parts on a tray or a conveyor belt, in COCO format.

    bench/gen_tray.py --out DIR [--train 1000] [--val 100] [--test 200] [--imgsz 320]
                      [--width W --height H] [--seed 0] [--classes bolt,nut,...] [--workers 2]

writes DIR/annotations/instances_{train,val,test}.json and DIR/images/{train,val,test}/*.jpg
(PNG when Pillow is missing) and prints a summary. Everything is drawn from the seed: every
image has its own generator seeded by (seed, split, index), so the same arguments give
byte-identical files whatever the number of workers.

Classes (category ids 1..K in the order given; default all seven):
  parts    bolt (side view: hex head, threaded shank), nut (top view: hexagon with a hole and
           chamfered corners), washer (ring), bracket (L-shaped sheet metal with holes),
           spring (side view of a coil)
  defects  scratch (a thin line on a part's surface), dent (a small pit with a rim on a
           part), each annotated with its own small box. A defect is drawn in contrast with
           the part under it (dark on bright metal, bright on dark metal, as raking light shows
           it) and at least about 1.6 px wide, so that it stays visible after the camera's
           blur, noise and JPEG (version 1 drew bright 1-px lines on bright metal: half of the
           defects could not be seen, so no detector and no inspector could label them)
A class left out of --classes is not drawn at all (it would be an unlabelled object).

Each image: a textured background (rubber belt with streaks and seams, plastic tray with a
compartment grid, or perforated steel), stickers and debris on it, 3..25 parts (the share of
each class varies from image to image) with random rotation, size (x0.7..1.3), finish (steel,
zinc, brass, black oxide), metallic shading and soft shadows, often touching or overlapping;
distractor screws (round Phillips heads, not a class) among them; then global lighting
(gain, gradient, vignette, white balance, gamma), Gaussian blur (sigma 0..1.2), sensor noise
and JPEG quality 72..95.

Occlusion: a part is only placed where it leaves every part already there at least 60 % of its
pixels visible (and itself at least 60 % inside the image), so no part is more than 40 %
hidden; a defect stays either >= 60 % visible or wholly hidden. Boxes are tight to the visible
pixels (coverage >= 0.5 in the rendered ownership map, before blur): bbox = [x, y, w, h] in
pixels with x, y the top-left pixel edge; area = the number of visible pixels (as COCO's mask
area). An object under --min-visible (default 0.4) of its pixels is not annotated (a safety
net: placement already prevents it; the summary counts any). iscrowd is 0 everywhere.
"""
import argparse
import io
import json
import math
import multiprocessing
import os
import struct
import sys
import time
import zlib

import numpy as np

try:
    from PIL import Image
except ImportError:  # PNG fallback below
    Image = None

VERSION = 2  # 2: defects drawn in contrast with the part under them (1: often invisible after blur)
PARTS = ["bolt", "nut", "washer", "bracket", "spring"]
DEFECTS = ["scratch", "dent"]
ALL_CLASSES = PARTS + DEFECTS
DEFECT_HOSTS = {"bolt", "nut", "washer", "bracket"}
SPLITS = ("train", "val", "test")
PLACE_MIN_VISIBLE = 0.6  # a placement may not leave any earlier part (or defect) less visible

# Finishes: (albedo RGB, specular strength, probability)
FINISHES = [
    ((0.62, 0.63, 0.65), 0.55, 0.45),   # bright steel
    ((0.50, 0.52, 0.56), 0.45, 0.20),   # dull steel
    ((0.70, 0.68, 0.58), 0.50, 0.12),   # yellow zinc
    ((0.72, 0.56, 0.28), 0.55, 0.10),   # brass
    ((0.20, 0.20, 0.22), 0.35, 0.13),   # black oxide
]
_FIN_P = np.array([f[2] for f in FINISHES])
_FIN_P = _FIN_P / _FIN_P.sum()


# ---------------------------------------------------------------- signed distances (object frame)

def sd_box(u, v, hx, hy):
    qx, qy = np.abs(u) - hx, np.abs(v) - hy
    return np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0)


def sd_round_box(u, v, hx, hy, r):
    r = min(r, hx, hy)
    return sd_box(u, v, hx - r, hy - r) - r


def sd_hex(u, v, apothem):
    """Regular hexagon with flat sides at v = +-apothem (Inigo Quilez's exact form)."""
    kx, ky, kz = -0.866025404, 0.5, 0.577350269
    px, py = np.abs(u), np.abs(v)
    d = 2.0 * np.minimum(kx * px + ky * py, 0.0)
    px = px - d * kx
    py = py - d * ky
    px = px - np.clip(px, -kz * apothem, kz * apothem)
    py = py - apothem
    return np.hypot(px, py) * np.sign(py)


def sd_segments(u, v, pts):
    """Distance to each segment of the polyline pts (n, 2): array (n-1, ...)."""
    a, b = pts[:-1], pts[1:]
    ax, ay = a[:, 0, None, None], a[:, 1, None, None]
    bx, by = (b[:, 0] - a[:, 0])[:, None, None], (b[:, 1] - a[:, 1])[:, None, None]
    pu, pv = u[None] - ax, v[None] - ay
    h = np.clip((pu * bx + pv * by) / (bx * bx + by * by), 0.0, 1.0)
    return np.hypot(pu - bx * h, pv - by * h)


def sd_segment(x, y, ax, ay, bx, by):
    dx, dy = bx - ax, by - ay
    px, py = x - ax, y - ay
    h = np.clip((px * dx + py * dy) / max(dx * dx + dy * dy, 1e-9), 0.0, 1.0)
    return np.hypot(px - dx * h, py - dy * h)


# ---------------------------------------------------------------- shapes

class Shape:
    """A part or distractor in its own frame: sdf(u, v) -> (signed distance, albedo modulation);
    rb bounds it (|p| <= rb), bevel is the width of its rounded edge, height its shadow length."""

    def __init__(self, kind, rb, bevel, height, fn):
        self.kind, self.rb, self.bevel, self.height, self.fn = kind, rb, bevel, height, fn


def make_shape(kind, rng, s):
    """s: pixels per unit at 320 px (image scale) times the object's own size factor."""
    if kind == "nut":
        ap = rng.uniform(11.0, 15.0) * s          # apothem: half the width across flats
        hole = ap * rng.uniform(0.48, 0.58)
        chamfer = ap * rng.uniform(0.95, 1.02)

        def fn(u, v):
            r = np.hypot(u, v)
            d = np.maximum(sd_hex(u, v, ap), hole - r)
            mod = np.where(r > chamfer, 0.78, 1.0)                       # chamfered corners
            mod = mod * np.where(r < hole + 0.18 * ap, 0.72 + 0.12 * np.sin(r * 2.2), 1.0)  # thread
            return d, mod
        return Shape(kind, ap * 1.155 + 1, max(1.2, 0.12 * ap), 0.30 * ap, fn)
    if kind == "washer":
        R = rng.uniform(10.0, 15.5) * s
        r0 = R * rng.uniform(0.42, 0.55)

        def fn(u, v):
            r = np.hypot(u, v)
            return np.maximum(r - R, r0 - r), None
        return Shape(kind, R + 1, max(1.0, 0.22 * (R - r0)), 0.12 * R, fn)
    if kind == "bolt":
        L = rng.uniform(44.0, 62.0) * s
        hs = rng.uniform(3.8, 5.0) * s            # shank half-width
        hh = hs * rng.uniform(1.55, 1.85)         # head half-width
        lh = hh * rng.uniform(0.9, 1.2)           # head length
        pitch = max(1.6, hs * rng.uniform(0.55, 0.75))
        tstart = -L / 2 + lh + (L - lh) * rng.uniform(0.0, 0.45)
        uh = -L / 2 + lh / 2
        us = (-L / 2 + lh + L / 2) / 2

        def fn(u, v):
            head = sd_round_box(u - uh, v, lh / 2, hh, 0.8)
            thr = u > tstart
            shank = sd_round_box(u - us, v, (L - lh) / 2, hs, 0.45 * hs)
            wave = np.sin(2 * np.pi * (u + 0.35 * v) / pitch)
            shank = shank + np.where(thr, 0.14 * hs * (1 + wave), 0.0)
            d = np.minimum(head, shank)
            facet = np.where(np.abs(v) > hh / 3, 0.8, 1.05)                 # hex head faces
            mod = np.where(head < shank, facet, np.where(thr, 0.86 + 0.14 * wave, 1.0))
            return d, mod
        return Shape(kind, math.hypot(L / 2, hh) + 1, hs, 1.3 * hs, fn)
    if kind == "bracket":
        a1 = rng.uniform(30.0, 44.0) * s
        a2 = rng.uniform(20.0, 32.0) * s
        t = rng.uniform(7.5, 10.0) * s
        cu, cv = a1 / 2 * 0.55, a2 / 2 * 0.55       # move the centre of mass near the origin
        holes = [(a1 * 0.62 - cu, t / 2 - cv), (t / 2 - cu, a2 * 0.66 - cv)]
        hr = t * rng.uniform(0.22, 0.3)

        def fn(u, v):
            arm1 = sd_box(u - (a1 / 2 - cu), v - (t / 2 - cv), a1 / 2, t / 2)
            arm2 = sd_box(u - (t / 2 - cu), v - (a2 / 2 - cv), t / 2, a2 / 2)
            d = np.minimum(arm1, arm2)
            for hu, hv in holes:
                d = np.maximum(d, hr - np.hypot(u - hu, v - hv))
            bend = np.where((np.abs(u - (t - cu)) < 0.9) & (v - cv > t), 0.8, 1.0)   # bend line
            return d, bend
        rb = max(math.hypot(a1 - cu, t - cv), math.hypot(t - cu, a2 - cv), math.hypot(cu, cv)) + 1
        return Shape(kind, rb, 1.0 * max(s, 0.5), 0.22 * t, fn)
    if kind == "spring":
        L = rng.uniform(34.0, 50.0) * s
        A = rng.uniform(6.5, 9.5) * s
        w = rng.uniform(1.2, 1.7) * s             # wire radius
        n = int(rng.integers(5, 9)) * 2
        xs = np.linspace(-L / 2 + 2 * w, L / 2 - 2 * w, n + 1)
        ys = np.where(np.arange(n + 1) % 2 == 0, -A, A)
        ys[0] = ys[-1] = 0.0
        pts = np.stack([np.concatenate([[-L / 2], xs, [L / 2]]), np.concatenate([[0.0], ys, [0.0]])], 1)
        front = np.ones(len(pts) - 1)
        front[2::2] = 0.62                        # the far side of each coil, in shade

        def fn(u, v):
            ds = sd_segments(u, v, pts)
            k = np.argmin(ds, axis=0)
            return np.min(ds, axis=0) - w, front[k]
        return Shape(kind, math.hypot(L / 2, A) + w + 1, w, 1.6 * w + A * 0.15, fn)
    if kind == "screw":                           # distractor: round Phillips head from above
        R = rng.uniform(6.0, 9.5) * s
        cw = max(0.7, 0.12 * R)
        cl = 0.55 * R

        def fn(u, v):
            r = np.hypot(u, v)
            cross = np.minimum(sd_box(u, v, cl, cw), sd_box(u, v, cw, cl))
            return r - R, np.where(cross < 0, 0.3, 1.0)
        return Shape(kind, R + 1, 0.7 * R, 0.35 * R, fn)
    raise ValueError(kind)


# ---------------------------------------------------------------- image helpers

def box_blur(a, r):
    """Separable box blur of radius r (int) along the first two axes, zero outside."""
    if r <= 0:
        return a
    for ax in (0, 1):
        n = a.shape[ax]
        pad = [(0, 0)] * a.ndim
        pad[ax] = (r + 1, r)
        c = np.cumsum(np.pad(a, pad), axis=ax)
        a = (np.take(c, np.arange(2 * r + 1, n + 2 * r + 1), axis=ax) - np.take(c, np.arange(0, n), axis=ax)) / (2 * r + 1)
    return a


def gauss_blur(img, sigma):
    if sigma < 0.25:
        return img
    r = int(math.ceil(2.5 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k = (k / k.sum()).astype(np.float32)
    h, w = img.shape[:2]
    p = np.pad(img, ((r, r), (0, 0), (0, 0)), mode="edge")
    out = sum(k[i] * p[i:i + h] for i in range(2 * r + 1))
    p = np.pad(out, ((0, 0), (r, r), (0, 0)), mode="edge")
    return sum(k[i] * p[:, i:i + w] for i in range(2 * r + 1))


def smooth_noise(rng, h, w, cell):
    """Value noise: a coarse random grid upsampled bilinearly to h x w, roughly in [-1, 1]."""
    gh, gw = int(h / cell) + 2, int(w / cell) + 2
    g = rng.standard_normal((gh, gw), dtype=np.float32)
    x = np.arange(w, dtype=np.float32) / cell
    x0 = x.astype(int)
    fx = x - x0
    rows = g[:, x0] * (1 - fx) + g[:, x0 + 1] * fx          # (gh, w): along x first, then y
    y = np.arange(h, dtype=np.float32) / cell
    y0 = y.astype(int)
    fy = (y - y0)[:, None]
    return rows[y0] * (1 - fy) + rows[y0 + 1] * fy


def background(rng, h, w, s):
    kind = rng.choice(["belt", "tray", "perforated"], p=[0.45, 0.35, 0.2])
    if kind == "belt":
        base = rng.uniform(0.10, 0.30)
        tint = np.array([1.0, 1.0, 1.0]) + rng.uniform(-0.06, 0.06, 3) * np.array([1, 0.5, 1])
        vert = rng.random() < 0.5
        hh, ww = (w, h) if vert else (h, w)
        streak = smooth_noise(rng, hh, max(2, ww // 24), 1.5)
        xi = np.minimum((np.arange(ww) / 24).astype(int), streak.shape[1] - 1)
        g = base * (1 + 0.10 * streak[:, xi] + 0.06 * smooth_noise(rng, hh, ww, 40 * s))
        g = g + 0.018 * rng.standard_normal((hh, ww), dtype=np.float32)   # rubber grain
        for _ in range(int(rng.integers(0, 3))):                               # seams across
            x = int(rng.integers(0, ww))
            g[:, x:x + max(1, int(2 * s))] *= 0.65
        if rng.random() < 0.5:                                                 # side rail
            rw = int(rng.uniform(8, 18) * s)
            side = rng.random() < 0.5
            sl = slice(0, rw) if side else slice(hh - rw, hh)
            g[sl, :] = rng.uniform(0.45, 0.7) + 0.04 * smooth_noise(rng, rw, ww, 6)
            g[(rw if side else hh - rw - 2):(rw + 2 if side else hh - rw), :] *= 0.4
        if vert:
            g = g.T
        img = g[:, :, None] * tint[None, None, :]
    else:
        base = rng.uniform(0.32, 0.62)
        tints = [(1.0, 1.0, 1.0), (0.85, 0.95, 1.12), (0.9, 1.08, 0.92), (1.1, 1.0, 0.85)]
        tint = np.array(tints[int(rng.integers(0, len(tints)))]) * rng.uniform(0.94, 1.06, 3)
        g = base * (1 + 0.05 * smooth_noise(rng, h, w, 50 * s) + 0.03 * smooth_noise(rng, h, w, 6 * s))
        g = g + 0.012 * rng.standard_normal((h, w), dtype=np.float32)
        yy = np.arange(h, dtype=np.float32)[:, None]
        xx = np.arange(w, dtype=np.float32)[None, :]
        if kind == "tray":                                   # compartment ridges, lit from a side
            pitch = rng.uniform(90, 170) * s
            ox, oy = rng.uniform(0, pitch, 2)
            rw = max(1.5, 3.0 * s)
            for coord in (xx + ox, yy + oy):
                m = np.mod(coord, pitch)
                g = np.where(m < rw, g * 1.25, g)
                g = np.where((m >= rw) & (m < 2 * rw), g * 0.72, g)
        else:                                                # punched holes in a grid
            pitch = rng.uniform(14, 24) * s
            ox, oy = rng.uniform(0, pitch, 2)
            mx = np.mod(xx + ox, pitch) - pitch / 2
            my = np.mod(yy + oy, pitch) - pitch / 2
            r = np.hypot(mx, my)
            hr = pitch * rng.uniform(0.18, 0.3)
            g = g * np.clip(0.25 + 0.75 * (r - hr + 0.5), 0.25, 1.0)
        img = g[:, :, None] * tint[None, None, :]
    return np.ascontiguousarray(img, dtype=np.float32)


def draw_sticker(img, rng, s):
    h, w = img.shape[:2]
    hw, hh = rng.uniform(16, 34) * s, rng.uniform(9, 18) * s
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    a = rng.uniform(0, np.pi)
    rb = math.hypot(hw, hh) + 2
    x0, x1 = max(0, int(cx - rb)), min(w, int(cx + rb) + 1)
    y0, y1 = max(0, int(cy - rb)), min(h, int(cy + rb) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5
    dx, dy = xx - cx, yy - cy
    u = math.cos(a) * dx + math.sin(a) * dy
    v = -math.sin(a) * dx + math.cos(a) * dy
    al = np.clip(0.5 - sd_box(u, v, hw, hh), 0, 1)[:, :, None]
    paper = np.array([rng.uniform(0.8, 0.95), rng.uniform(0.78, 0.95), rng.uniform(0.7, 0.92)], np.float32)
    if rng.random() < 0.3:
        paper = paper * np.array([1.0, rng.uniform(0.7, 1.0), rng.uniform(0.3, 0.6)], np.float32)
    ink = np.ones_like(u)
    if rng.random() < 0.5:                                    # barcode
        bars = rng.random(64) < 0.5
        k = np.clip(((u + hw * 0.8) / (1.6 * hw) * 64).astype(int), 0, 63)
        ink = np.where((np.abs(u) < hw * 0.8) & (np.abs(v) < hh * 0.6) & bars[k], 0.15, 1.0)
    else:                                                     # lines of "text"
        lh = max(2.0, 3.2 * s)
        row = np.floor((v + hh) / lh)
        word = rng.random((64, 64)) < 0.7
        wi = np.clip(((u + hw) / max(1.0, 4 * s)).astype(int), 0, 63)
        ri = np.clip(row.astype(int), 0, 63)
        ink = np.where((np.mod(v + hh, lh) < lh * 0.5) & (np.abs(u) < hw * 0.85) & (np.abs(v) < hh * 0.8)
                       & word[ri, wi], 0.25, 1.0)
    col = paper[None, None, :] * ink[:, :, None]
    sub = img[y0:y1, x0:x1]
    sub *= 1 - 0.25 * box_blur(al, 1)       # slight edge shadow
    img[y0:y1, x0:x1] = sub * (1 - al) + col * al


def draw_debris(img, rng, s):
    h, w = img.shape[:2]
    n = int(rng.integers(5, 60))
    imp = np.zeros((h, w), np.float32)
    ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
    imp[ys, xs] = rng.uniform(-1, 1, n) * 6
    for _ in range(int(rng.integers(0, 4))):                 # a fibre or a chip of swarf
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        a, L = rng.uniform(0, np.pi), rng.uniform(4, 14) * s
        t = np.linspace(0, L, max(2, int(L)))
        px = np.clip((x + np.cos(a) * t + 2 * np.sin(t / 3)).astype(int), 0, w - 1)
        py = np.clip((y + np.sin(a) * t).astype(int), 0, h - 1)
        imp[py, px] = rng.choice([-1.0, 1.0]) * 2.5
    d = box_blur(imp, 1)
    img *= np.clip(1 + 0.5 * d, 0.3, 1.8)[:, :, None]


# ---------------------------------------------------------------- one image

def render_image(seed, split_idx, index, w, h, classes, min_visible):
    rng = np.random.default_rng(np.random.SeedSequence([seed, split_idx, index, VERSION]))
    s = min(w, h) / 320.0
    parts = [c for c in classes if c in PARTS]
    want_scratch, want_dent = "scratch" in classes, "dent" in classes
    img = background(rng, h, w, s)
    for _ in range(int(rng.choice([0, 0, 1, 1, 2]))):
        draw_sticker(img, rng, s)
    draw_debris(img, rng, s)

    # light from one direction for the whole image; shadows fall away from it
    az = rng.uniform(0, 2 * np.pi)
    elev = rng.uniform(0.55, 0.95)
    L = np.array([math.cos(az) * math.cos(elev), math.sin(az) * math.cos(elev), math.sin(elev)], np.float32)
    H = L + np.array([0, 0, 1], np.float32)
    H = H / np.linalg.norm(H)
    shadow_dir = -L[:2] / max(1e-6, np.linalg.norm(L[:2]))
    shadow_k = rng.uniform(0.3, 0.6)

    n_parts = int(rng.integers(3, 26))
    mix = rng.dirichlet(np.full(len(parts), 1.2))
    queue = [parts[i] for i in rng.choice(len(parts), n_parts, p=mix)]
    queue += ["screw"] * int(rng.choice([0, 0, 0, 1, 1, 2, 3]))
    rng.shuffle(queue)

    idmap = np.zeros((h, w), np.int16)        # 0: background, k: object k (1-based) on top
    objs = []       # dict(kind, full (pixels), vis (pixels still on top), annotate, win (its window))
    defects = []    # dict(kind, parent, ys, xs, full, vis)
    placed = []     # (cx, cy, rb) of parts, for placing neighbours
    for kind in queue:
        shape = make_shape(kind, rng, s * rng.uniform(0.7, 1.3))
        rb = shape.rb
        sh_len = shape.height * rng.uniform(0.8, 1.2)
        blur_r = max(1, int(round(0.35 * shape.height + 1)))
        m = int(math.ceil(sh_len + 2 * blur_r + 2))
        ok = False
        for _attempt in range(25):
            if placed and rng.random() < 0.4:                 # next to a placed part: touching, overlapping
                px_, py_, prb = placed[int(rng.integers(0, len(placed)))]
                a = rng.uniform(0, 2 * np.pi)
                dist = (prb + rb) * rng.uniform(0.45, 1.0)
                cx, cy = px_ + math.cos(a) * dist, py_ + math.sin(a) * dist
            else:
                cx, cy = rng.uniform(0.25 * rb, w - 0.25 * rb), rng.uniform(0.25 * rb, h - 0.25 * rb)
            ang = rng.uniform(0, 2 * np.pi)
            X0, Y0 = int(math.floor(cx - rb)) - m, int(math.floor(cy - rb)) - m
            X1, Y1 = int(math.ceil(cx + rb)) + m + 1, int(math.ceil(cy + rb)) + m + 1
            x0, y0, x1, y1 = max(0, X0), max(0, Y0), min(w, X1), min(h, Y1)
            if x1 <= x0 or y1 <= y0:
                continue
            yy, xx = np.mgrid[Y0:Y1, X0:X1].astype(np.float32) + 0.5
            dx, dy = xx - cx, yy - cy
            ca, sa = math.cos(ang), math.sin(ang)
            u, v = ca * dx + sa * dy, -sa * dx + ca * dy
            sdf, mod = shape.fn(u, v)
            alpha = np.clip(0.5 - sdf, 0.0, 1.0)
            mask = alpha >= 0.5
            full = int(mask.sum())
            if full == 0:
                continue
            mc = mask[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0]
            inside = int(mc.sum())
            if kind != "screw" and inside < PLACE_MIN_VISIBLE * full:
                continue
            if kind == "screw" and inside == 0:
                continue
            sub = idmap[y0:y1, x0:x1]
            lost = np.bincount(sub[mc], minlength=len(objs) + 1)
            bad = any(o["annotate"] and o["vis"] - lost[i + 1] < PLACE_MIN_VISIBLE * o["full"]
                      for i, o in enumerate(objs) if lost[i + 1])
            dlost = []
            if not bad:
                for d in defects:
                    sel = (d["ys"] >= y0) & (d["ys"] < y1) & (d["xs"] >= x0) & (d["xs"] < x1)
                    if not sel.any():
                        dlost.append(0)
                        continue
                    yy_, xx_ = d["ys"][sel], d["xs"][sel]
                    hit = int((mc[yy_ - y0, xx_ - x0] & (idmap[yy_, xx_] == d["parent"])).sum())
                    nv = d["vis"] - hit
                    if hit and 0 < nv < PLACE_MIN_VISIBLE * d["full"]:
                        bad = True
                        break
                    dlost.append(hit)
            if bad:
                continue
            ok = True
            break
        if not ok:
            continue
        for i, o in enumerate(objs):
            o["vis"] -= int(lost[i + 1])
        for d, hit in zip(defects, dlost):
            d["vis"] -= hit

        # shadow: the soft, offset silhouette darkens what lies under the part
        oxs, oys = int(round(shadow_dir[0] * sh_len)), int(round(shadow_dir[1] * sh_len))
        sh = np.roll(np.roll(alpha, oys, axis=0), oxs, axis=1)
        sh = box_blur(box_blur(sh, blur_r), max(1, blur_r // 2))
        canvas = img[y0:y1, x0:x1]
        shc = sh[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0]
        canvas *= (1 - shadow_k * shc)[:, :, None]

        # metallic shading from a rounded-edge height profile
        gy, gx = np.gradient(sdf)
        dd = np.clip(-sdf / shape.bevel, 0.0, 1.0)
        slope = np.minimum((1 - dd) / np.sqrt(np.maximum(1 - (1 - dd) ** 2, 1e-3)), 4.0)
        nx, ny = gx * slope, gy * slope
        nn = np.sqrt(nx * nx + ny * ny + 1)
        ndl = np.clip((nx * L[0] + ny * L[1] + L[2]) / nn, 0, 1)
        ndh = np.clip((nx * H[0] + ny * H[1] + H[2]) / nn, 0, 1)
        fi = int(rng.choice(len(FINISHES), p=_FIN_P))
        alb = np.array(FINISHES[fi][0], np.float32) * rng.uniform(0.85, 1.15)
        spec_k = FINISHES[fi][1] * rng.uniform(0.7, 1.3)
        gdir = rng.uniform(0, 2 * np.pi)
        env = 1 + rng.uniform(0.05, 0.25) * (math.cos(gdir) * u + math.sin(gdir) * v) / rb
        brushed = rng.standard_normal(256, dtype=np.float32)
        env = env + 0.05 * brushed[(np.abs(v) * 1.3 / max(s, 0.3)).astype(int) % 256]
        shade = (0.3 + 0.7 * ndl) * env
        if mod is not None:
            shade = shade * mod
        col = alb[None, None, :] * shade[:, :, None] + (spec_k * ndh ** 24)[:, :, None]
        a3 = alpha[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0, None]
        canvas[:] = canvas * (1 - a3) + col[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0] * a3
        objs.append(dict(kind=kind, full=full, vis=inside, annotate=kind != "screw", win=(y0, y1, x0, x1)))
        oid = len(objs)
        sub[mc] = oid
        if kind == "screw":
            continue
        placed.append((cx, cy, rb))

        # defects on this part's surface, inside it with a margin
        if kind not in DEFECT_HOSTS:
            continue
        todo = []
        if want_scratch and rng.random() < 0.35:
            todo.append("scratch")
        if want_dent and rng.random() < 0.2:
            todo.append("dent")
        for dk in todo:
            if dk == "scratch":
                ln, wd = rng.uniform(9, 18) * s, max(1.2, rng.uniform(1.6, 2.4) * s)
                if kind == "bolt":
                    ln *= 1.3
                margin = 1.2
            else:
                ra = max(1.6, rng.uniform(3.0, 5.0) * s)
                rb2 = max(1.1, ra * rng.uniform(0.45, 0.7))
                margin = rb2 + 0.5
            cand = np.argwhere(sdf < -margin)
            if len(cand) == 0:
                continue
            for _t in range(8):
                py, px = cand[int(rng.integers(0, len(cand)))]
                dcx, dcy = X0 + px + 0.5, Y0 + py + 0.5
                if kind == "bolt" and rng.random() < 0.6:      # along the shank, mostly
                    da = ang + rng.uniform(-0.2, 0.2)
                else:
                    da = rng.uniform(0, np.pi)
                ex, ey = math.cos(da), math.sin(da)
                if dk == "scratch":
                    t = np.linspace(-ln / 2, ln / 2, 9)
                    qx = np.clip((dcx + ex * t - X0).astype(int), 0, sdf.shape[1] - 1)
                    qy = np.clip((dcy + ey * t - Y0).astype(int), 0, sdf.shape[0] - 1)
                    if (sdf[qy, qx] > -1.0).any():        # the whole line on the part
                        continue
                    dist = sd_segment(xx, yy, dcx - ex * ln / 2, dcy - ey * ln / 2, dcx + ex * ln / 2, dcy + ey * ln / 2)
                    da_ = np.clip(0.5 - (dist - wd / 2), 0, 1) * alpha
                else:
                    pu, pv = ex * (xx - dcx) + ey * (yy - dcy), -ey * (xx - dcx) + ex * (yy - dcy)
                    e = np.sqrt((pu / ra) ** 2 + (pv / rb2) ** 2)
                    da_ = np.clip((1 - e) * min(ra, rb2) + 0.5, 0, 1) * alpha
                dm = np.zeros_like(mask)
                dm[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0] = da_[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0] >= 0.5
                if dm.sum() < 3 or (sdf[dm] > (-0.5 if dk == "scratch" else -1.0)).any():
                    continue
                dac = da_[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0, None]
                # the part's brightness around the mark decides whether it shows dark or bright
                lum = float(canvas[dm[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0]].mean())
                if dk == "scratch":                      # a thin line, dark on bright metal
                    tone = rng.uniform(0.05, 0.2) if lum > 0.4 else rng.uniform(0.8, 1.0)
                    canvas[:] = canvas * (1 - 0.95 * dac) + tone * 0.95 * dac
                else:                                    # a pit, and a rim on the side facing the light
                    rim = np.clip(1 - np.abs(e - 1.2) * 2.5, 0, 1) * np.clip(
                        0.3 - ((xx - dcx) * L[0] + (yy - dcy) * L[1]) / ra, 0, 1) * alpha
                    rc = rim[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0, None]
                    if lum > 0.4:                        # dark pit, bright rim
                        pit, rim_tone = rng.uniform(0.08, 0.25), 0.6
                    else:                                # on dark metal: a bright pit wall
                        pit, rim_tone = rng.uniform(0.7, 0.9), 0.3
                    canvas[:] = canvas * (1 - dac) + pit * dac + rim_tone * rc * (1 - dac)
                ys, xs = np.nonzero(dm)
                ys, xs = ys + Y0, xs + X0
                defects.append(dict(kind=dk, parent=oid, ys=ys, xs=xs, full=len(ys), vis=len(ys)))
                break

    # ---- annotations from the final ownership map
    anns, dropped, vis_frac = [], 0, []
    for i, o in enumerate(objs):
        if not o["annotate"]:
            continue
        wy0, wy1, wx0, wx1 = o["win"]
        ys, xs = np.nonzero(idmap[wy0:wy1, wx0:wx1] == i + 1)
        ys, xs = ys + wy0, xs + wx0
        n = len(ys)
        if n == 0 or n < min_visible * o["full"]:
            dropped += 1
            continue
        vis_frac.append(n / o["full"])
        anns.append((o["kind"], int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1, n))
    for d in defects:
        own = idmap[d["ys"], d["xs"]] == d["parent"]
        n = int(own.sum())
        if n == 0:
            continue
        if n < min_visible * d["full"]:
            dropped += 1
            continue
        ys, xs = d["ys"][own], d["xs"][own]
        anns.append((d["kind"], int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1, n))

    # ---- camera: lighting, white balance, blur, noise
    yy = np.arange(h, dtype=np.float32)[:, None] / h - 0.5
    xx = np.arange(w, dtype=np.float32)[None, :] / w - 0.5
    ga = rng.uniform(0, 2 * np.pi)
    grad = 1 + rng.uniform(0, 0.35) * (xx * math.cos(ga) + yy * math.sin(ga)) * 2
    r2 = (xx ** 2 + yy ** 2) * 2
    vign = 1 - rng.uniform(0, 0.3) * r2
    gain = rng.uniform(0.7, 1.3)
    wb = np.array([rng.uniform(0.92, 1.08), 1.0, rng.uniform(0.92, 1.08)], np.float32)
    img *= (gain * grad * vign)[:, :, None] * wb[None, None, :]
    img = np.clip(img, 0, 1) ** np.float32(rng.uniform(0.85, 1.15))
    img = gauss_blur(img, rng.uniform(0.0, 1.2))
    img = img + rng.uniform(0.004, 0.03) * rng.standard_normal(img.shape, dtype=np.float32)
    img = img + rng.uniform(0.0, 0.01) * rng.standard_normal((h, w, 1), dtype=np.float32)
    img8 = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    quality = int(rng.integers(72, 96))
    return img8, quality, anns, (dropped, vis_frac)


# ---------------------------------------------------------------- encoding

def png_bytes(img8):
    h, w = img8.shape[:2]
    raw = b"".join(b"\x00" + img8[y].tobytes() for y in range(h))

    def chunk(t, d):
        c = struct.pack(">I", len(d)) + t + d
        return c + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def encode(img8, quality):
    if Image is None:
        return png_bytes(img8), ".png"
    buf = io.BytesIO()
    Image.fromarray(img8).save(buf, format="JPEG", quality=quality)
    return buf.getvalue(), ".jpg"


def _work(job):
    out, split, split_idx, index, seed, w, h, classes, min_visible = job
    img8, quality, anns, dropped = render_image(seed, split_idx, index, w, h, classes, min_visible)
    data, ext = encode(img8, quality)
    name = "%s_%06d%s" % (split, index, ext)
    with open(os.path.join(out, "images", split, name), "wb") as f:
        f.write(data)
    return index, name, anns, dropped


def parse_classes(values):
    names = []
    for v in values or []:
        names += [x.strip() for x in v.split(",") if x.strip()]
    if not names:
        return list(ALL_CLASSES)
    for n in names:
        if n not in ALL_CLASSES:
            raise SystemExit("gen_tray: unknown class %r (known: %s)" % (n, ", ".join(ALL_CLASSES)))
    if len(set(names)) != len(names):
        raise SystemExit("gen_tray: --classes names a class twice")
    if not any(n in PARTS for n in names):
        raise SystemExit("gen_tray: --classes needs at least one part class (%s)" % ", ".join(PARTS))
    return names


def _tune_malloc():
    """Keeps glibc from giving every image-sized temporary its own mmap (and page faults): the
    generator allocates a few MB per numpy expression; this halves its run time. No-op elsewhere."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 << 20)    # M_MMAP_THRESHOLD
        libc.mallopt(-1, 128 << 20)   # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def generate(out, counts, w, h, seed, classes, workers=2, min_visible=0.4, quiet=False):
    """Writes the dataset; returns the summary dict."""
    t0 = time.time()
    _tune_malloc()               # before the workers fork, so they inherit it
    cat_id = {c: i + 1 for i, c in enumerate(classes)}
    os.makedirs(os.path.join(out, "annotations"), exist_ok=True)
    jobs = []
    for si, split in enumerate(SPLITS):
        os.makedirs(os.path.join(out, "images", split), exist_ok=True)
        jobs += [(out, split, si, i, seed, w, h, tuple(classes), min_visible) for i in range(counts[split])]
    if workers > 1 and len(jobs) > 8:
        with multiprocessing.Pool(workers) as pool:
            results = pool.map(_work, jobs, chunksize=max(1, min(16, len(jobs) // (4 * workers))))
    else:
        results = [_work(j) for j in jobs]
    summary = {"seed": seed, "width": w, "height": h, "classes": classes, "splits": {}}
    pos = 0
    for split in SPLITS:
        res = results[pos:pos + counts[split]]
        pos += counts[split]
        images, anns = [], []
        per_class = {c: 0 for c in classes}
        part_counts, dropped, fracs = [], 0, []
        for index, name, objs, (drop, vis_frac) in res:
            fracs += vis_frac
            iid = index + 1
            images.append({"id": iid, "file_name": name, "width": w, "height": h})
            dropped += drop
            npart = 0
            for kind, x0, y0, x1, y1, area in objs:
                anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": cat_id[kind],
                             "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                             "area": float(area), "iscrowd": 0})
                per_class[kind] += 1
                npart += kind in PARTS
            part_counts.append(npart)
        coco = {
            "info": {"description": "AutoCV synthetic tray benchmark (bench/gen_tray.py)", "version": str(VERSION),
                     "seed": seed, "split": split},
            "licenses": [],
            "images": images,
            "annotations": anns,
            "categories": [{"id": cat_id[c], "name": c, "supercategory": "part" if c in PARTS else "defect"}
                           for c in classes],
        }
        with open(os.path.join(out, "annotations", "instances_%s.json" % split), "w") as f:
            json.dump(coco, f, separators=(",", ":"))
        summary["splits"][split] = {
            "images": len(images), "objects": len(anns), "per_class": per_class,
            "mean_parts_per_image": (sum(part_counts) / len(part_counts)) if part_counts else 0.0,
            "min_parts": min(part_counts) if part_counts else 0, "max_parts": max(part_counts) if part_counts else 0,
            "mean_objects_per_image": (len(anns) / len(images)) if images else 0.0,
            "dropped_under_min_visible": dropped,
            "parts_partly_hidden": (sum(f < 0.95 for f in fracs) / len(fracs)) if fracs else 0.0,
            "min_part_visible": min(fracs) if fracs else 1.0}
    summary["seconds"] = round(time.time() - t0, 2)
    if not quiet:
        print("gen_tray: %s, %dx%d, seed %d, %d workers, %.1f s" % (out, w, h, seed, workers, summary["seconds"]))
        for split in SPLITS:
            sp = summary["splits"][split]
            if not sp["images"]:
                continue
            print("  %-5s %5d images, %6d objects (%.2f per image; parts %.2f per image, %d..%d)%s" % (
                split, sp["images"], sp["objects"], sp["mean_objects_per_image"], sp["mean_parts_per_image"],
                sp["min_parts"], sp["max_parts"],
                ", %d dropped under --min-visible" % sp["dropped_under_min_visible"] if sp["dropped_under_min_visible"] else ""))
            print("        " + ", ".join("%s %d" % (c, n) for c, n in sp["per_class"].items()))
            print("        %.0f%% of parts partly hidden (by other parts or the image edge; > 5%% of their pixels), "
                  "least visible %.0f%%" % (100 * sp["parts_partly_hidden"], 100 * sp["min_part_visible"]))
    return summary


def main(argv=None):
    ap = argparse.ArgumentParser(description="Synthetic parts-on-a-tray detection benchmark in COCO format.")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--val", type=int, default=100)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--imgsz", type=int, default=320, help="square image side (default 320)")
    ap.add_argument("--width", type=int, help="image width (overrides --imgsz)")
    ap.add_argument("--height", type=int, help="image height (overrides --imgsz)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--classes", nargs="+", help="class names, comma or space separated (default: %s)"
                    % ",".join(ALL_CLASSES))
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--min-visible", type=float, default=0.4,
                    help="annotate an object only when at least this share of its pixels is visible")
    ap.add_argument("--json", action="store_true", help="print the summary as one JSON line at the end")
    a = ap.parse_args(argv)
    w = a.width or a.imgsz
    h = a.height or a.imgsz
    if w < 64 or h < 64 or w > 8192 or h > 8192:
        ap.error("image size must be 64..8192 pixels a side (got %dx%d)" % (w, h))
    for k in SPLITS:
        if getattr(a, k) < 0:
            ap.error("--%s must be >= 0" % k)
    if a.seed < 0:
        ap.error("--seed must be >= 0")
    classes = parse_classes(a.classes)
    summary = generate(a.out, {k: getattr(a, k) for k in SPLITS}, w, h, a.seed, classes,
                       workers=max(1, a.workers), min_visible=a.min_visible)
    if a.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
