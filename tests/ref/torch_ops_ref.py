#!/usr/bin/python3
"""Reference values for the engine's kernels (src/nn/kernels.h), computed by PyTorch.

Usage: /usr/bin/python3 tests/ref/torch_ops_ref.py OUTDIR

For each named case it draws random float32 inputs from a fixed seed, runs the PyTorch
op in float64 on exactly those values, and takes gradients by autograd of
L = sum(out * R) for a random R (for scalar losses L = loss). It writes every input and
output as a .npy file into OUTDIR plus OUTDIR/cases.json:

  {"format": 1, "seed": S, "cases": [
     {"name": "...", "op": "conv2d", "attrs": {...},
      "arrays": {"x": "<name>.x.npy", "out": "<name>.out.npy", "dx": ..., ...}}, ...]}

Inputs are float32 (what the C kernels get), outputs float64, integer outputs (argmax)
int64. Array roles per op are documented at each case builder below; tests/unit/
test_torch_ref.c is the consumer. Needs Debian's python3-torch and python3-numpy;
torchvision is not needed (sigmoid_focal_loss is written out as torchvision defines it).
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

SEED = 20240611


class Writer:
    """Collects cases and writes their arrays as .npy files into one directory."""

    def __init__(self, outdir):
        self.outdir = outdir
        self.cases = []
        self.names = set()

    def case(self, name, op, attrs, arrays):
        assert name not in self.names, name
        self.names.add(name)
        files = {}
        for role, a in arrays.items():
            if a is None:
                continue
            if isinstance(a, torch.Tensor):
                a = a.detach().cpu().numpy()
            a = np.ascontiguousarray(a)
            if a.dtype not in (np.float32, np.float64, np.int64):
                raise TypeError(f"{name}.{role}: unexpected dtype {a.dtype}")
            fname = f"{name}.{role}.npy"
            np.save(os.path.join(self.outdir, fname), a)
            files[role] = fname
        self.cases.append({"name": name, "op": op, "attrs": attrs, "arrays": files})

    def finish(self):
        doc = {"format": 1, "seed": SEED, "cases": self.cases}
        tmp = os.path.join(self.outdir, "cases.json.tmp")
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, os.path.join(self.outdir, "cases.json"))


rng = np.random.default_rng(SEED)


def randn(*shape, scale=1.0, shift=0.0):
    return (rng.standard_normal(shape) * scale + shift).astype(np.float32)


def uniform(lo, hi, *shape):
    return rng.uniform(lo, hi, shape).astype(np.float32)


def t(a, grad=True):
    """float32 numpy -> float64 leaf tensor (exactly the same values)."""
    if a is None:
        return None
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def backward_weighted(out):
    """Draws R like out, backpropagates L = sum(out * R); returns R as float32."""
    R = randn(*out.shape)
    (out * torch.tensor(R, dtype=torch.float64)).sum().backward()
    return R


def grad_of(x):
    return None if x is None else x.grad


# ---- convolution ------------------------------------------------------------------------
# roles: x (N,C,H,W), w, b (optional), R; out, dx, dw, db.
# attrs: stride [h,w], pad [t,l,b,r], dil [h,w], groups, out_pad [h,w] (transposed only).

def conv_case(W, name, N, C, H, Wd, K, kh, kw, stride=(1, 1), pad=(0, 0, 0, 0), dil=(1, 1),
              groups=1, bias=True):
    x = randn(N, C, H, Wd)
    w = randn(K, C // groups, kh, kw, scale=1.0 / np.sqrt(C // groups * kh * kw))
    b = randn(K) if bias else None
    tx, tw, tb = t(x), t(w), t(b)
    pt, pl, pb, pr = pad
    if pt == pb and pl == pr:
        out = F.conv2d(tx, tw, tb, stride=stride, padding=(pt, pl), dilation=dil, groups=groups)
    else:
        out = F.conv2d(F.pad(tx, (pl, pr, pt, pb)), tw, tb, stride=stride, padding=0,
                       dilation=dil, groups=groups)
    R = backward_weighted(out)
    W.case(name, "conv2d",
           {"stride": list(stride), "pad": list(pad), "dil": list(dil), "groups": groups},
           {"x": x, "w": w, "b": b, "R": R, "out": out, "dx": tx.grad, "dw": tw.grad,
            "db": grad_of(tb)})


def convt_case(W, name, N, C, H, Wd, K, kh, kw, stride=(1, 1), pad=(0, 0, 0, 0), dil=(1, 1),
               groups=1, out_pad=(0, 0), bias=True):
    """Transposed conv; an asymmetric pad crops the unpadded output [pad_t, full - pad_b)."""
    x = randn(N, C, H, Wd)
    w = randn(C, K // groups, kh, kw, scale=1.0 / np.sqrt(C // groups * kh * kw))
    b = randn(K) if bias else None
    tx, tw, tb = t(x), t(w), t(b)
    pt, pl, pb, pr = pad
    if pt == pb and pl == pr:
        out = F.conv_transpose2d(tx, tw, tb, stride=stride, padding=(pt, pl),
                                 output_padding=out_pad, groups=groups, dilation=dil)
    else:
        full = F.conv_transpose2d(tx, tw, tb, stride=stride, padding=0,
                                  output_padding=out_pad, groups=groups, dilation=dil)
        out = full[:, :, pt:full.shape[2] - pb, pl:full.shape[3] - pr]
    R = backward_weighted(out)
    W.case(name, "convt2d",
           {"stride": list(stride), "pad": list(pad), "dil": list(dil), "groups": groups,
            "out_pad": list(out_pad)},
           {"x": x, "w": w, "b": b, "R": R, "out": out, "dx": tx.grad, "dw": tw.grad,
            "db": grad_of(tb)})


def conv_cases(W):
    conv_case(W, "conv_3x3_p1_b1", 1, 3, 8, 9, 5, 3, 3, pad=(1, 1, 1, 1))
    conv_case(W, "conv_3x3_p1_b4", 4, 6, 10, 10, 8, 3, 3, pad=(1, 1, 1, 1))
    conv_case(W, "conv_3x3_p1_nobias", 2, 4, 7, 6, 5, 3, 3, pad=(1, 1, 1, 1), bias=False)
    conv_case(W, "conv_3x3_s2_p1", 4, 5, 11, 12, 7, 3, 3, stride=(2, 2), pad=(1, 1, 1, 1))
    conv_case(W, "conv_3x3_s2_nopad", 2, 3, 9, 10, 4, 3, 3, stride=(2, 2))
    conv_case(W, "conv_3x3_dil2_p2", 2, 4, 12, 11, 6, 3, 3, pad=(2, 2, 2, 2), dil=(2, 2))
    conv_case(W, "conv_3x3_groups2", 4, 6, 8, 8, 10, 3, 3, pad=(1, 1, 1, 1), groups=2)
    conv_case(W, "conv_3x3_depthwise", 4, 8, 9, 9, 8, 3, 3, pad=(1, 1, 1, 1), groups=8)
    conv_case(W, "conv_3x3_depthwise_s2_nobias", 1, 6, 10, 9, 6, 3, 3, stride=(2, 2),
              pad=(1, 1, 1, 1), groups=6, bias=False)
    conv_case(W, "conv_1x1_b4", 4, 16, 6, 7, 12, 1, 1)
    conv_case(W, "conv_1x1_s2_nobias", 1, 8, 8, 8, 16, 1, 1, stride=(2, 2), bias=False)
    conv_case(W, "conv_7x7_s2_p3_stem", 2, 3, 32, 32, 16, 7, 7, stride=(2, 2), pad=(3, 3, 3, 3),
              bias=False)
    conv_case(W, "conv_asym_pad_tlbr_0112", 2, 3, 8, 9, 4, 3, 3, pad=(0, 1, 1, 2))
    conv_case(W, "conv_asym_pad_s2_1010", 4, 3, 9, 8, 5, 2, 2, stride=(2, 2), pad=(1, 0, 1, 0))
    conv_case(W, "conv_rect_k3x5_s1x2", 2, 4, 9, 13, 6, 3, 5, stride=(1, 2), pad=(1, 2, 1, 2))
    # wide enough for oneDNN's blocked (8/16-channel) kernels in the CPU backend
    conv_case(W, "conv_3x3_p1_c32_k64", 2, 32, 16, 16, 64, 3, 3, pad=(1, 1, 1, 1))
    conv_case(W, "conv_3x3_s2_p1_c64_depthwise", 2, 64, 14, 14, 64, 3, 3, stride=(2, 2),
              pad=(1, 1, 1, 1), groups=64, bias=False)
    conv_case(W, "conv_1x1_c64_k32_nobias", 2, 64, 8, 8, 32, 1, 1, bias=False)
    convt_case(W, "convt_4x4_s2_p1", 2, 6, 5, 6, 4, 4, 4, stride=(2, 2), pad=(1, 1, 1, 1))
    convt_case(W, "convt_3x3_s2_p1_outpad1", 4, 5, 5, 4, 3, 3, 3, stride=(2, 2),
               pad=(1, 1, 1, 1), out_pad=(1, 1))
    convt_case(W, "convt_2x2_s2", 1, 4, 4, 5, 6, 2, 2, stride=(2, 2), bias=False)
    convt_case(W, "convt_3x3_groups2_s2_outpad", 2, 6, 4, 4, 4, 3, 3, stride=(2, 2),
               pad=(1, 1, 1, 1), out_pad=(1, 0), groups=2)
    convt_case(W, "convt_3x3_dil2", 2, 3, 5, 5, 4, 3, 3, pad=(1, 1, 1, 1), dil=(2, 2))
    convt_case(W, "convt_4x4_s2_p1_c32_k16", 2, 32, 8, 8, 16, 4, 4, stride=(2, 2),
               pad=(1, 1, 1, 1))
    convt_case(W, "convt_asym_pad_0112", 2, 4, 4, 5, 3, 3, 3, stride=(2, 2), pad=(0, 1, 1, 2))


# ---- batch norm ----------------------------------------------------------------------
# roles: x (N,C,H,W), gamma, beta (optional), running_mean, running_var (before), R;
# out, dx, dgamma, dbeta, running_mean_out, running_var_out (after the step),
# save_mean, save_rstd (training: batch mean and 1/sqrt(biased var + eps)).
# attrs: training, eps, momentum.

def bn_case(W, name, N, C, H, Wd, training, affine=True, eps=1e-5, momentum=0.1):
    x = randn(N, C, H, Wd, scale=1.5, shift=0.7)
    g = uniform(0.5, 1.5, C) if affine else None
    b = randn(C, scale=0.5) if affine else None
    rm = randn(C, scale=0.3)
    rv = uniform(0.5, 2.0, C)
    tx, tg, tb = t(x), t(g), t(b)
    trm = torch.tensor(rm, dtype=torch.float64)
    trv = torch.tensor(rv, dtype=torch.float64)
    out = F.batch_norm(tx, trm, trv, tg, tb, training=training, momentum=momentum, eps=eps)
    R = backward_weighted(out)
    xd = tx.detach()
    save_mean = xd.mean(dim=(0, 2, 3))
    save_rstd = 1.0 / torch.sqrt(xd.var(dim=(0, 2, 3), unbiased=False) + eps)
    W.case(name, "batchnorm", {"training": training, "eps": eps, "momentum": momentum},
           {"x": x, "gamma": g, "beta": b, "running_mean": rm, "running_var": rv, "R": R,
            "out": out, "dx": tx.grad, "dgamma": grad_of(tg), "dbeta": grad_of(tb),
            "running_mean_out": trm, "running_var_out": trv,
            "save_mean": save_mean if training else None,
            "save_rstd": save_rstd if training else None})


def bn_cases(W):
    bn_case(W, "bn_train_b4", 4, 6, 5, 5, True)
    bn_case(W, "bn_train_b1", 1, 5, 7, 7, True)
    bn_case(W, "bn_train_noaffine", 4, 3, 4, 6, True, affine=False)
    bn_case(W, "bn_train_mom03_eps1e-3", 2, 4, 3, 3, True, eps=1e-3, momentum=0.3)
    bn_case(W, "bn_train_c32", 4, 32, 8, 8, True)
    bn_case(W, "bn_eval_b4", 4, 6, 5, 5, False)
    bn_case(W, "bn_eval_c32", 2, 32, 6, 6, False)
    bn_case(W, "bn_eval_noaffine", 2, 3, 4, 4, False, affine=False)


# ---- activations ---------------------------------------------------------------------
# roles: x, R; out, dx. attrs: kind, alpha.

ACTS = {
    "relu": lambda x, a: F.relu(x),
    "relu6": lambda x, a: F.relu6(x),
    "leaky_relu": lambda x, a: F.leaky_relu(x, a),
    "silu": lambda x, a: F.silu(x),
    "sigmoid": lambda x, a: torch.sigmoid(x),
    "hardswish": lambda x, a: F.hardswish(x),
    "hardsigmoid": lambda x, a: F.hardsigmoid(x),
    "tanh": lambda x, a: torch.tanh(x),
    "gelu": lambda x, a: F.gelu(x),
}


def act_cases(W):
    for kind, fn in ACTS.items():
        alpha = 0.1 if kind == "leaky_relu" else 0.0
        x = randn(3, 7, 11, scale=4.0)  # covers the hard-* and relu6 kinks at -3, 3, 6
        tx = t(x)
        out = fn(tx, alpha)
        R = backward_weighted(out)
        W.case("act_" + kind, "act", {"kind": kind, "alpha": alpha},
               {"x": x, "R": R, "out": out, "dx": tx.grad})


# ---- pooling ---------------------------------------------------------------------------
# maxpool roles: x, R; out, dx, argmax (int64, index into the unpadded input plane).
# avgpool roles: x, R; out, dx. gap roles: x (N,C,H,W), R; out (N,C), dx.
# attrs: kernel [h,w], stride [h,w], pad [t,l,b,r], dil [h,w], ceil_mode, count_include_pad.

def maxpool_case(W, name, N, C, H, Wd, k, s, pad=(0, 0, 0, 0), dil=(1, 1), ceil=False):
    x = randn(N, C, H, Wd)
    tx = t(x)
    pt, pl, pb, pr = pad
    if pt == pb and pl == pr:
        out, idx = F.max_pool2d(tx, k, s, (pt, pl), dil, ceil_mode=ceil, return_indices=True)
    else:
        xp = F.pad(tx, (pl, pr, pt, pb), value=float("-inf"))
        out, idx = F.max_pool2d(xp, k, s, 0, dil, ceil_mode=ceil, return_indices=True)
        wp = Wd + pl + pr
        idx = (idx // wp - pt) * Wd + (idx % wp - pl)  # back into the unpadded plane
    R = backward_weighted(out)
    W.case(name, "maxpool",
           {"kernel": list(k), "stride": list(s), "pad": list(pad), "dil": list(dil),
            "ceil_mode": ceil, "count_include_pad": False},
           {"x": x, "R": R, "out": out, "dx": tx.grad, "argmax": idx.to(torch.int64)})


def avgpool_case(W, name, N, C, H, Wd, k, s, p=(0, 0), ceil=False, include_pad=True):
    x = randn(N, C, H, Wd)
    tx = t(x)
    out = F.avg_pool2d(tx, k, s, p, ceil_mode=ceil, count_include_pad=include_pad)
    R = backward_weighted(out)
    W.case(name, "avgpool",
           {"kernel": list(k), "stride": list(s), "pad": [p[0], p[1], p[0], p[1]],
            "dil": [1, 1], "ceil_mode": ceil, "count_include_pad": include_pad},
           {"x": x, "R": R, "out": out, "dx": tx.grad})


def pool_cases(W):
    maxpool_case(W, "maxpool_3x3_s2_p1", 2, 3, 9, 10, (3, 3), (2, 2), pad=(1, 1, 1, 1))
    maxpool_case(W, "maxpool_3x3_s2_p1_stem", 1, 4, 16, 16, (3, 3), (2, 2), pad=(1, 1, 1, 1))
    maxpool_case(W, "maxpool_2x2_s2", 4, 3, 8, 10, (2, 2), (2, 2))
    maxpool_case(W, "maxpool_2x2_s2_odd", 2, 2, 7, 9, (2, 2), (2, 2))
    maxpool_case(W, "maxpool_3x3_s2_ceil", 2, 3, 8, 9, (3, 3), (2, 2), ceil=True)
    maxpool_case(W, "maxpool_3x3_s2_p1_ceil", 2, 3, 10, 11, (3, 3), (2, 2), pad=(1, 1, 1, 1),
                 ceil=True)
    maxpool_case(W, "maxpool_2x2_s2_ceil_odd", 2, 2, 7, 9, (2, 2), (2, 2), ceil=True)
    maxpool_case(W, "maxpool_3x3_s1_p1_dil2", 2, 3, 8, 9, (3, 3), (1, 1), pad=(1, 1, 1, 1),
                 dil=(2, 2))
    maxpool_case(W, "maxpool_5x5_s1_p2_spp", 1, 4, 8, 8, (5, 5), (1, 1), pad=(2, 2, 2, 2))
    maxpool_case(W, "maxpool_asym_pad_1001", 2, 3, 7, 8, (2, 2), (2, 2), pad=(1, 0, 0, 1))
    for incl in (True, False):
        tag = "incl" if incl else "excl"
        avgpool_case(W, "avgpool_3x3_s2_p1_" + tag, 2, 3, 9, 10, (3, 3), (2, 2), (1, 1),
                     include_pad=incl)
        avgpool_case(W, "avgpool_3x3_s2_p1_ceil_" + tag, 2, 3, 10, 11, (3, 3), (2, 2), (1, 1),
                     ceil=True, include_pad=incl)
        avgpool_case(W, "avgpool_3x3_s1_p1_" + tag, 1, 2, 6, 7, (3, 3), (1, 1), (1, 1),
                     include_pad=incl)
    avgpool_case(W, "avgpool_2x2_s2", 4, 3, 8, 10, (2, 2), (2, 2))
    avgpool_case(W, "avgpool_3x3_s2_ceil", 2, 3, 8, 9, (3, 3), (2, 2), ceil=True)
    avgpool_case(W, "avgpool_2x2_s2_ceil_odd", 2, 2, 7, 9, (2, 2), (2, 2), ceil=True)
    for name, shape in (("gap_b2", (2, 5, 7, 7)), ("gap_b1_1x1", (1, 8, 1, 1)),
                        ("gap_b4_rect", (4, 3, 5, 9))):
        x = randn(*shape)
        tx = t(x)
        out = F.adaptive_avg_pool2d(tx, 1).reshape(shape[0], shape[1])
        R = backward_weighted(out)
        W.case(name, "gap", {}, {"x": x, "R": R, "out": out, "dx": tx.grad})


# ---- resize ------------------------------------------------------------------------------
# roles: x (N,C,H,W), R; out (N,C,OH,OW), dx. attrs: mode, align_corners.
# Sizes are given (not scale factors) so PyTorch uses scale = in/out; the nearest sizes are
# coprime or exact multiples, where float and exact floor(dst*in/out) cannot disagree.

def resize_cases(W):
    sizes = [((5, 6), (10, 12)), ((5, 7), (8, 11)), ((9, 10), (4, 7)), ((4, 4), (4, 4)),
             ((6, 5), (3, 5))]
    for mode in ("nearest", "bilinear"):
        for ac in ((None,) if mode == "nearest" else (False, True)):
            for (h, w), (oh, ow) in sizes:
                x = randn(2, 3, h, w)
                tx = t(x)
                out = F.interpolate(tx, size=(oh, ow), mode=mode, align_corners=ac)
                R = backward_weighted(out)
                tag = mode if ac is None else f"{mode}_ac{int(ac)}"
                W.case(f"resize_{tag}_{h}x{w}_to_{oh}x{ow}", "resize",
                       {"mode": mode, "align_corners": bool(ac)},
                       {"x": x, "R": R, "out": out, "dx": tx.grad})


# ---- broadcasting binary, concat, slice ----------------------------------------------------
# binary roles: a, b, R; out, da, db. attrs: op.
# concat roles: x0..x{n-1}, R; out, dx0..; attrs: axis, n.  slice roles: x, R; out, dx;
# attrs: axis, start, len, step.

def binary_cases(W):
    shapes = [((2, 3, 4, 5), (1, 3, 1, 1)), ((4, 1, 5), (3, 1)), ((3, 4), (3, 4)),
              ((1, 6), (5, 1)), ((2, 1, 3, 1, 2, 2), (1, 4, 1, 2, 1, 2))]
    for op in ("add", "sub", "mul", "div"):
        for i, (sa, sb) in enumerate(shapes):
            a = randn(*sa)
            if op == "div":
                b = (uniform(0.5, 2.0, *sb) * np.where(rng.random(sb) < 0.5, -1, 1)).astype(
                    np.float32)
            else:
                b = randn(*sb)
            ta, tb = t(a), t(b)
            out = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}[op](
                ta, tb)
            R = backward_weighted(out)
            W.case(f"binary_{op}_{i}", "binary", {"op": op},
                   {"a": a, "b": b, "R": R, "out": out, "da": ta.grad, "db": tb.grad})


def concat_slice_cases(W):
    for name, shapes, axis in (("concat_ch3", [(2, 3, 4, 5), (2, 1, 4, 5), (2, 4, 4, 5)], 1),
                               ("concat_last2", [(3, 2, 3), (3, 2, 4)], 2),
                               ("concat_first2", [(2, 3), (4, 3)], 0)):
        xs = [randn(*s) for s in shapes]
        txs = [t(x) for x in xs]
        out = torch.cat(txs, dim=axis)
        R = backward_weighted(out)
        arrays = {"R": R, "out": out}
        for i, (x, tx) in enumerate(zip(xs, txs)):
            arrays[f"x{i}"] = x
            arrays[f"dx{i}"] = tx.grad
        W.case(name, "concat", {"axis": axis, "n": len(xs)}, arrays)
    for name, shape, axis, start, length, step in (("slice_ch_step2", (2, 10, 3), 1, 1, 4, 2),
                                                    ("slice_last", (3, 4, 9), 2, 2, 5, 1),
                                                    ("slice_first_step3", (8, 5), 0, 0, 3, 3)):
        x = randn(*shape)
        tx = t(x)
        idx = [slice(None)] * len(shape)
        idx[axis] = slice(start, start + step * (length - 1) + 1, step)
        out = tx[tuple(idx)]
        R = backward_weighted(out)
        W.case(name, "slice", {"axis": axis, "start": start, "len": length, "step": step},
               {"x": x, "R": R, "out": out, "dx": tx.grad})


# ---- linear, softmax ----------------------------------------------------------------------
# linear roles: x (M,IN), w (OUT,IN), b (optional), R; out, dx, dw, db.
# softmax roles: x, R; out, dx. attrs: axis, log.

def linear_cases(W):
    for name, M, IN, OUT, bias in (("linear_b4", 4, 37, 19, True),
                                   ("linear_b1_nobias", 1, 16, 5, False),
                                   ("linear_b8_head", 8, 128, 10, True),
                                   ("linear_b3_nobias", 3, 7, 33, False)):
        x = randn(M, IN)
        w = randn(OUT, IN, scale=1.0 / np.sqrt(IN))
        b = randn(OUT) if bias else None
        tx, tw, tb = t(x), t(w), t(b)
        out = F.linear(tx, tw, tb)
        R = backward_weighted(out)
        W.case(name, "linear", {}, {"x": x, "w": w, "b": b, "R": R, "out": out, "dx": tx.grad,
                                    "dw": tw.grad, "db": grad_of(tb)})


def softmax_cases(W):
    for name, shape, axis in (("softmax_mid", (3, 7, 5), 1), ("softmax_rows", (4, 10), 1),
                              ("softmax_first", (6, 4), 0)):
        for log in (False, True):
            x = randn(*shape, scale=3.0)
            tx = t(x)
            out = (F.log_softmax if log else F.softmax)(tx, dim=axis)
            R = backward_weighted(out)
            W.case(("log" if log else "") + name, "softmax", {"axis": axis, "log": log},
                   {"x": x, "R": R, "out": out, "dx": tx.grad})


# layernorm roles: x, gamma, beta, R; out, dx, dgamma, dbeta. attrs: axis (the one normalized
# axis), eps. The last axis is F.layer_norm; axis 1 of NCHW is ConvNeXt's LayerNorm2d (a
# layer norm of the channels-last permutation).

def layernorm_cases(W):
    for name, shape, axis, eps in (("layernorm_last", (4, 6, 10), 2, 1e-5), ("layernorm_rows", (5, 16), 1, 1e-6),
                                   ("layernorm_nchw", (2, 8, 5, 3), 1, 1e-6)):
        x = randn(*shape, scale=2.0, shift=0.5)
        D = shape[axis]
        g, b = uniform(0.5, 1.5, D), randn(D, scale=0.3)
        tx, tg, tb = t(x), t(g), t(b)
        if axis == len(shape) - 1:
            out = F.layer_norm(tx, (D,), tg, tb, eps)
        else:
            out = F.layer_norm(tx.permute(0, 2, 3, 1), (D,), tg, tb, eps).permute(0, 3, 1, 2)
        R = backward_weighted(out)
        W.case(name, "layernorm", {"axis": axis, "eps": eps},
               {"x": x, "gamma": g, "beta": b, "R": R, "out": out, "dx": tx.grad, "dgamma": tg.grad,
                "dbeta": tb.grad})


# ---- losses (scalar, L = loss) --------------------------------------------------------------
# cross_entropy roles: x (N,K) logits, target (N, floats, < 0 ignored), weight (K, optional);
# out (shape (), the loss), dx. attrs: label_smoothing.
# cross_entropy_soft roles: x, target (N,K); out, dx.
# bce_logits / focal roles: x, target; out, dx. focal attrs: alpha, gamma.

def ce_case(W, name, N, K, ls=0.0, weighted=False, n_ignored=0):
    x = randn(N, K, scale=2.0)
    y = rng.integers(0, K, N)
    if n_ignored:
        y[rng.choice(N, n_ignored, replace=False)] = -1
    wt = uniform(0.2, 2.0, K) if weighted else None
    tx = t(x)
    loss = F.cross_entropy(tx, torch.tensor(y, dtype=torch.int64),
                           weight=None if wt is None else t(wt, False), ignore_index=-1,
                           label_smoothing=ls)
    loss.backward()
    W.case(name, "cross_entropy", {"label_smoothing": ls},
           {"x": x, "target": y.astype(np.float32), "weight": wt, "out": loss, "dx": tx.grad})


def sigmoid_focal_loss(inputs, targets, alpha, gamma):
    """torchvision.ops.sigmoid_focal_loss (reduction='mean'), written out."""
    p = torch.sigmoid(inputs)
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.mean()


def loss_cases(W):
    ce_case(W, "ce_plain", 8, 10)
    ce_case(W, "ce_b1", 1, 5)
    ce_case(W, "ce_ls01", 8, 10, ls=0.1)
    ce_case(W, "ce_weights", 12, 6, weighted=True)
    ce_case(W, "ce_weights_ls01", 12, 6, ls=0.1, weighted=True)
    ce_case(W, "ce_ignore", 10, 7, n_ignored=3)
    ce_case(W, "ce_ignore_ls01", 10, 7, ls=0.1, n_ignored=3)
    ce_case(W, "ce_ignore_weights_ls01", 16, 5, ls=0.1, weighted=True, n_ignored=4)
    for name, N, K in (("ce_soft", 6, 5), ("ce_soft_b1", 1, 9)):
        x = randn(N, K, scale=2.0)
        tg = rng.random((N, K)) ** 2
        tg = (tg / tg.sum(axis=1, keepdims=True)).astype(np.float32)
        tx = t(x)
        loss = -(t(tg, False) * F.log_softmax(tx, dim=1)).sum(dim=1).mean()
        loss.backward()
        W.case(name, "cross_entropy_soft", {}, {"x": x, "target": tg, "out": loss, "dx": tx.grad})
    for name, shape, hard in (("bce_soft", (4, 10), False), ("bce_hard", (3, 5, 7), True),
                              ("bce_one", (1,), True)):
        x = randn(*shape, scale=3.0)
        tg = (rng.random(shape) < 0.3) if hard else rng.random(shape)
        tg = np.asarray(tg, dtype=np.float32)
        tx = t(x)
        loss = F.binary_cross_entropy_with_logits(tx, t(tg, False))
        loss.backward()
        W.case(name, "bce_logits", {}, {"x": x, "target": tg, "out": loss, "dx": tx.grad})
    for name, shape, alpha, gamma, hard in (("focal_a025_g2", (6, 20), 0.25, 2.0, True),
                                            ("focal_noalpha_g2", (6, 20), -1.0, 2.0, True),
                                            ("focal_a05_g0", (4, 9), 0.5, 0.0, True),
                                            ("focal_a025_g15_soft", (5, 8), 0.25, 1.5, False)):
        x = randn(*shape, scale=3.0)
        tg = (rng.random(shape) < 0.2) if hard else rng.random(shape)
        tg = np.asarray(tg, dtype=np.float32)
        tx = t(x)
        loss = sigmoid_focal_loss(tx, t(tg, False), alpha, gamma)
        loss.backward()
        W.case(name, "focal", {"alpha": alpha, "gamma": gamma},
               {"x": x, "target": tg, "out": loss, "dx": tx.grad})


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: torch_ops_ref.py OUTDIR\n")
        return 2
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    W = Writer(outdir)
    conv_cases(W)
    bn_cases(W)
    act_cases(W)
    pool_cases(W)
    resize_cases(W)
    binary_cases(W)
    concat_slice_cases(W)
    linear_cases(W)
    softmax_cases(W)
    layernorm_cases(W)
    loss_cases(W)
    W.finish()
    print(f"torch_ops_ref: {len(W.cases)} cases written to {outdir} (torch {torch.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
