#!/usr/bin/python3
"""PyTorch reference values for tests/unit/test_optim.c.

Builds the same deterministic inputs as the C test and prints, one float per line
('%.9g', exact for float32), what PyTorch computes:

  optim_ref.py sgd   STEPS N LR MOMENTUM DAMPENING NESTEROV WD MASKMOD
  optim_ref.py adamw STEPS N LR BETA1 BETA2 EPS WD MASKMOD
      -> the N parameters after STEPS steps of torch.optim.SGD / torch.optim.AdamW
  optim_ref.py clip  N SCALE MAXNORM
      -> the total norm, then the N clipped gradients (torch.nn.utils.clip_grad_norm_)

Inputs (every value rounded to float32, as the C test does with (float) casts):
  params[i]      = 0.8 * sin(i * 0.37 + 0.5)
  grad_k[i]      = sin(i * 0.1 + k) * (0.5 + 0.1 * k)          (step k = 0 .. STEPS-1)
  lr_k           = LR * (1 - 0.5 * k / STEPS)                   (a decaying schedule)
  clip grads[i]  = SCALE * sin(i * 0.1 + 1)
  MASKMOD > 0: element i gets no weight decay when i % MASKMOD == 0 (a second param group
  with weight_decay=0); MASKMOD = 0: decay everywhere.

Exits with status 2 and a message on stderr when PyTorch is missing.
"""
import math
import struct
import sys

try:
    import torch
except ImportError as e:  # a declared test dependency (python3-torch)
    sys.stderr.write("optim_ref.py: PyTorch is not importable by %s (%s); "
                     "install python3-torch (make deps)\n" % (sys.executable, e))
    sys.exit(2)


def f32(x):
    """Rounds a Python float to the nearest float32, as C's (float) cast."""
    return struct.unpack("f", struct.pack("f", x))[0]


def init_params(n):
    return [0.8 * math.sin(i * 0.37 + 0.5) for i in range(n)]


def grad_at(n, k):
    return [math.sin(i * 0.1 + k) * (0.5 + 0.1 * k) for i in range(n)]


def lr_at(lr, k, steps):
    return f32(lr * (1.0 - 0.5 * k / steps))


def run_optim(kind, steps, n, lr, hyper, wd, maskmod):
    full = torch.tensor(init_params(n), dtype=torch.float32)
    if maskmod > 0:
        idx_decay = torch.tensor([i for i in range(n) if i % maskmod != 0], dtype=torch.long)
        idx_plain = torch.tensor([i for i in range(n) if i % maskmod == 0], dtype=torch.long)
    else:
        idx_decay = torch.arange(n)
        idx_plain = torch.zeros(0, dtype=torch.long)
    p_decay = full[idx_decay].clone().requires_grad_(True)
    p_plain = full[idx_plain].clone().requires_grad_(True)
    groups = [{"params": [p_decay], "weight_decay": wd},
              {"params": [p_plain], "weight_decay": 0.0}]
    if kind == "sgd":
        momentum, dampening, nesterov = hyper
        opt = torch.optim.SGD(groups, lr=lr, momentum=momentum, dampening=dampening,
                              nesterov=nesterov)
    else:
        beta1, beta2, eps = hyper
        opt = torch.optim.AdamW(groups, lr=lr, betas=(beta1, beta2), eps=eps)
    for k in range(steps):
        g = torch.tensor(grad_at(n, k), dtype=torch.float32)
        p_decay.grad = g[idx_decay].clone()
        p_plain.grad = g[idx_plain].clone()
        for group in opt.param_groups:
            group["lr"] = lr_at(lr, k, steps)
        opt.step()
    out = torch.empty(n, dtype=torch.float32)
    with torch.no_grad():
        out[idx_decay] = p_decay
        out[idx_plain] = p_plain
    return out.tolist()


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 1
    mode = argv[1]
    if mode == "sgd" and len(argv) == 10:
        steps, n = int(argv[2]), int(argv[3])
        lr, momentum, dampening = float(argv[4]), float(argv[5]), float(argv[6])
        nesterov, wd, maskmod = bool(int(argv[7])), float(argv[8]), int(argv[9])
        vals = run_optim("sgd", steps, n, lr, (momentum, dampening, nesterov), wd, maskmod)
    elif mode == "adamw" and len(argv) == 10:
        steps, n = int(argv[2]), int(argv[3])
        lr, beta1, beta2, eps = float(argv[4]), float(argv[5]), float(argv[6]), float(argv[7])
        wd, maskmod = float(argv[8]), int(argv[9])
        vals = run_optim("adamw", steps, n, lr, (beta1, beta2, eps), wd, maskmod)
    elif mode == "clip" and len(argv) == 5:
        n, scale, max_norm = int(argv[2]), float(argv[3]), float(argv[4])
        p = torch.zeros(n, dtype=torch.float32, requires_grad=True)
        p.grad = torch.tensor([scale * math.sin(i * 0.1 + 1) for i in range(n)],
                              dtype=torch.float32)
        norm = torch.nn.utils.clip_grad_norm_([p], max_norm)
        vals = [float(norm)] + p.grad.tolist()
    else:
        sys.stderr.write("optim_ref.py: bad arguments %r\n%s" % (argv[1:], __doc__))
        return 1
    sys.stdout.write("".join("%.9g\n" % v for v in vals))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
