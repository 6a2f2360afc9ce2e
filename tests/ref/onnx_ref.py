#!/usr/bin/python3
"""Reference data for tests/integration/test_onnx.py: torchvision models exported to ONNX
by torch.onnx, with random inputs and PyTorch's outputs.

Usage: /usr/bin/python3 tests/ref/onnx_ref.py OUTDIR [--models a,b] [--opsets 13,17] [--size N]

For each model and opset writes OUTDIR/<model>_op<opset>.onnx (dynamic batch axis), and
per model OUTDIR/<model>_in_b<B>.npy / <model>_out_b<B>.npy for batches 1 and 4: random
NCHW inputs and the eval-mode outputs of the same weights in PyTorch (float32).

Weights are random (seeded), and every batch norm gets random affine parameters and
running statistics, so that eval mode is not close to the identity. Models (torchvision,
10 classes): resnet18, resnet50, mobilenet_v2, mobilenet_v3_small, squeezenet1_1, vgg11_bn,
shufflenet_v2_x0_5 (channel shuffle: Reshape, a Transpose that moves data, Reshape),
efficientnet_b0 and regnet_y_400mf (squeeze-and-excitation, SiLU); "convnext", a small
torchvision ConvNeXt (torchvision.models.convnext.ConvNeXt with three stages of widths 24, 48
and 96 instead of convnext_tiny's 96 to 768, which is 110 MB per opset): LayerNorm2d and the
channels-last blocks (Permute, LayerNorm, Linear, GELU, Linear, Permute, layer scale),
LayerNorm decomposed below opset 17 and LayerNormalization from 17, GELU as Erf; and "opmix", a small
network written here that exercises the operators the torchvision classifiers do not (ConvTranspose, Resize nearest and bilinear, Pad merged into
a convolution, Split, Slice with steps, Concat, a batch norm not after a convolution,
LeakyRelu, Sigmoid, Tanh, HardSigmoid, HardSwish, Clip with any range, ReduceMean, the
Shape/Gather/Concat/Reshape arithmetic of x.view(x.size(0), -1), Gemm, MatMul, LogSoftmax).
Input side: --size (default 64) except vgg11_bn, whose adaptive pooling to 7x7 exports
only for sides that are multiples of 224 / 32 * 7 = 224. Needs Debian's python3-torch,
python3-torchvision, python3-onnx and python3-numpy.
"""
import argparse
import os
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

SEED = 4242


class OpMix(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, 2, 1)
        self.bn = nn.BatchNorm2d(16)
        self.c2 = nn.Conv2d(16, 16, 3, 1, 0, groups=4, dilation=2)
        self.ct = nn.ConvTranspose2d(16, 8, 3, 2, 1, output_padding=1)
        self.c3 = nn.Conv2d(24, 32, 3, 1, 0)
        self.fc = nn.Linear(32, 20)
        self.w = nn.Parameter(torch.randn(20, 10) * 0.2)

    def forward(self, x):
        a = F.leaky_relu(self.c1(x), 0.1)                 # (N, 16, S/2, S/2)
        a = self.bn(a + 0.5)                               # a batch norm after an Add
        b = self.c2(F.pad(a, (2, 2, 2, 2)))                # Pad merged into a dilated grouped conv
        c = torch.tanh(b) * torch.sigmoid(b) - F.hardsigmoid(b) / 2
        c = F.hardswish(c) + torch.clamp(c, -1.0, 2.0)
        u = self.ct(c)                                     # (N, 8, S, S)
        d = F.interpolate(c, scale_factor=2.0, mode="nearest")
        cat = torch.cat([u, d], 1)
        p, q = torch.split(cat, [8, 16], dim=1)
        cat = torch.cat([q, p], 1)[:, :, 1:-1:2, ::2]
        bil = F.interpolate(cat, size=(40, 40), mode="bilinear", align_corners=False)
        m = F.max_pool2d(bil, 3, 2, 1)
        av = F.avg_pool2d(m, 3, 1, 1, count_include_pad=False)
        h = F.relu6(self.c3(av))
        g = h.mean((2, 3), keepdim=True)
        g = g.view(g.size(0), -1)
        o = torch.matmul(self.fc(g), self.w)
        return F.log_softmax(o, 1)


def build(name):
    if name == "opmix":
        return OpMix()
    if name == "convnext":
        from torchvision.models.convnext import CNBlockConfig, ConvNeXt
        return ConvNeXt([CNBlockConfig(24, 48, 2), CNBlockConfig(48, 96, 1), CNBlockConfig(96, None, 1)],
                        stochastic_depth_prob=0.1, num_classes=10)
    return getattr(torchvision.models, name)(num_classes=10)


def randomize_bn(model, gen):
    """Batch norms get random statistics, layer norms random affine parameters and ConvNeXt's
    layer scales (1e-6 at init) values near 1, so that no block is close to the identity."""
    for name, p in model.named_parameters():
        if name.endswith("layer_scale"):
            p.data = torch.rand(p.shape, generator=gen) * 0.5 + 0.25
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            m.weight.data = torch.rand(m.weight.shape, generator=gen) + 0.5
            m.bias.data = torch.randn(m.bias.shape, generator=gen) * 0.2
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = torch.rand(c, generator=gen) + 0.5
            m.bias.data = torch.randn(c, generator=gen) * 0.2
            m.running_mean.data = torch.randn(c, generator=gen) * 0.2
            m.running_var.data = torch.rand(c, generator=gen) + 0.5


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--models", default="resnet18,resnet50,mobilenet_v2,mobilenet_v3_small,squeezenet1_1,vgg11_bn,"
                    "shufflenet_v2_x0_5,efficientnet_b0,regnet_y_400mf,convnext,opmix")
    ap.add_argument("--opsets", default="13,17")
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(2)
    warnings.filterwarnings("ignore")
    for k, name in enumerate(args.models.split(",")):
        torch.manual_seed(SEED + k)
        gen = torch.Generator().manual_seed(SEED + 100 + k)
        model = build(name)
        randomize_bn(model, gen)
        model.eval()
        size = 224 if name == "vgg11_bn" else args.size
        for b in (1, 4):
            x = torch.randn(b, 3, size, size, generator=gen)
            with torch.no_grad():
                y = model(x)
            np.save(os.path.join(args.out, "%s_in_b%d.npy" % (name, b)), x.numpy())
            np.save(os.path.join(args.out, "%s_out_b%d.npy" % (name, b)), y.numpy())
        for op in args.opsets.split(","):
            path = os.path.join(args.out, "%s_op%s.onnx" % (name, op))
            torch.onnx.export(model, torch.randn(1, 3, size, size), path, opset_version=int(op),
                              input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
        print("wrote", name, flush=True)


if __name__ == "__main__":
    main()
