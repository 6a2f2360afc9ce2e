#!/usr/bin/python3
"""Reference data for tests/unit/test_zoo.c, computed by torchvision.

Usage: /usr/bin/python3 tests/ref/zoo_ref.py OUTDIR

Writes OUTDIR/zoo.json:

  {"format": 1, "torchvision": "0.14.1",
   "models": {"resnet18": {"params": {"conv1.weight": [64, 3, 7, 7], ...},
                           "n_params": 11689512, "macs": 1814073344}, ...}}

for resnet18, resnet34, resnet50 and mobilenetv2 with 1000 classes: every state_dict entry
but num_batches_tracked with its shape, the trainable parameter count, and the multiply-
accumulates of Conv2d and Linear layers for one 3x224x224 image, counted by forward hooks
(on the meta device: shapes only).

For resnet18 and mobilenetv2 it also writes OUTDIR/<model>/: one float32 .npy per
state_dict tensor (random weights, and random batch-norm statistics so that eval mode is
not the identity), input.npy (2, 3, 64, 64) and output.npy, the eval-mode logits (computed
in the dtype NUMERIC gives). Needs Debian's python3-torch, python3-torchvision and python3-numpy.
"""
import copy
import json
import os
import sys

import numpy as np
import torch
import torchvision

SEED = 20240612
MODELS = {
    "resnet18": torchvision.models.resnet18,
    "resnet34": torchvision.models.resnet34,
    "resnet50": torchvision.models.resnet50,
    "mobilenetv2": torchvision.models.mobilenet_v2,
}
# Models whose outputs are checked, with the dtype torch computes the reference in: float64
# where it is cheap; torch's float64 depthwise convolution is a slow generic path (about
# 20 s for mobilenet_v2), so that one runs in float32 (its error, ~1e-6 relative, is far
# below the test's 1e-4).
NUMERIC = {"resnet18": torch.float64, "mobilenetv2": torch.float32}


def count_macs(model):
    """Conv2d and Linear multiply-accumulates for one 3x224x224 image. The model runs on
    the meta device (shapes only, no arithmetic); model itself is left as it was."""
    model = copy.deepcopy(model).to("meta")
    total = [0]

    def conv_hook(mod, inp, out):
        kh, kw = mod.kernel_size
        total[0] += out.numel() * (mod.in_channels // mod.groups) * kh * kw

    def linear_hook(mod, inp, out):
        total[0] += mod.in_features * mod.out_features

    hooks = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, 224, 224, device="meta"))
    return total[0]


def randomize_weights(model, gen):
    """Batch-norm statistics and affine terms away from their 0/1 initial values; Linear
    weights at unit gain (mobilenet_v2's N(0, 0.01) init would shrink the logits, and with
    them what the comparison can see)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / m.in_features ** 0.5)
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)


def write_numeric(name, model, outdir, gen, dtype):
    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    randomize_weights(model, gen)
    model.eval()
    tensors = {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        fn = k + ".npy"
        np.save(os.path.join(d, fn), v.detach().numpy().astype(np.float32))
        tensors[k] = fn
    x = torch.randn(2, 3, 64, 64, generator=gen)
    np.save(os.path.join(d, "input.npy"), x.numpy().astype(np.float32))
    # exactly the float32 weights the C side gets, widened to dtype
    with torch.no_grad():
        y = model.to(dtype)(x.to(dtype))
    np.save(os.path.join(d, "output.npy"), y.numpy())
    with open(os.path.join(d, "index.json"), "w") as f:
        json.dump({"tensors": tensors, "input": "input.npy", "output": "output.npy"}, f, indent=1)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(SEED)
    doc = {"format": 1, "torchvision": torchvision.__version__, "models": {}}
    for name, ctor in MODELS.items():
        model = ctor(weights=None, num_classes=1000)
        params = {k: list(v.shape) for k, v in model.state_dict().items()
                  if not k.endswith("num_batches_tracked")}
        n_params = sum(p.numel() for p in model.parameters())
        doc["models"][name] = {"params": params, "n_params": n_params, "macs": count_macs(model)}
        if name in NUMERIC:
            write_numeric(name, model, outdir, gen, NUMERIC[name])
    with open(os.path.join(outdir, "zoo.json"), "w") as f:
        json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
