#!/usr/bin/env python3
"""Time PyTorch's training step of the CIFAR ResNets that `shortcut-train bench-train` times.

Same network as train/models (He et al. 2016 CIFAR layout: 3x3 conv stem, three stages of basic
blocks, option-A shortcuts = strided subsampling + zero channels, global average pool, linear),
same optimizer (AdamW, decoupled weight decay), same fixed random batch kept on the device.
Each mode prints one line:

    torch arch=resnet20 mode=fp32 batch=128 step_ms=9.876 img_per_s=12960.1

and each architecture ends with `torch_best arch=... mode=... img_per_s=...`.

Modes: fp32, channels_last, bf16 (autocast), channels_last_bf16, compile (torch.compile, fp32).
Usage: python3 scripts/gpu/torch_step.py --archs resnet20,resnet56 --batch 128 --steps 100
"""

import argparse
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride, plain):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.extra, self.plain = stride, cout - cin, plain

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        if not self.plain:
            s = x
            if self.stride > 1:
                s = s[:, :, :: self.stride, :: self.stride]
            if self.extra > 0:
                s = F.pad(s, (0, 0, 0, 0, 0, self.extra))  # zero channels after the input's
            y = y + s
        return F.relu(y)


class CifarResNet(nn.Module):
    def __init__(self, depth, width=16, channels=3, classes=10, plain=False):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth {depth} is not 6k+2")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        blocks, cin = [], width
        for stage in range(3):
            cout = width << stage
            for b in range(n):
                stride = 2 if stage > 0 and b == 0 else 1
                blocks.append(Block(cin, cout, stride, plain))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.blocks(x)
        return self.fc(x.mean((2, 3)))


def make_model(arch, width, channels, classes):
    plain = arch.startswith("plain")
    depth = int(arch.removeprefix("plain").removeprefix("resnet"))
    return CifarResNet(depth, width, channels, classes, plain)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(arch, mode, args, device):
    torch.manual_seed(1)
    h, w, c = args.input
    model = make_model(arch, args.width, c, args.classes).to(device)
    x = torch.randn(args.batch, c, h, w, device=device)
    y = torch.randint(0, args.classes, (args.batch,), device=device)
    channels_last = mode.startswith("channels_last")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    kw = {}
    if device.type == "cuda":
        kw["fused"] = True  # PyTorch's fastest AdamW; falls back below where unsupported
    try:
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wd, **kw)
    except (TypeError, RuntimeError):
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wd)
    step_model = model
    if mode == "compile":
        step_model = torch.compile(model)
    bf16 = mode.endswith("bf16")
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        if bf16:
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                loss = F.cross_entropy(step_model(x), y)
        else:
            loss = F.cross_entropy(step_model(x), y)
        loss.backward()
        opt.step()
        return loss

    t0 = time.perf_counter()
    step()
    sync(device)
    first = time.perf_counter() - t0
    for _ in range(args.warmup):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync(device)
    dt = (time.perf_counter() - t0) / args.steps
    loss = float(loss)
    if loss != loss:
        raise RuntimeError(f"{arch} {mode}: loss is NaN")
    return first, dt


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", default="resnet20,resnet56")
    p.add_argument("--modes", default="fp32,channels_last,bf16")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--input", default="32,32,3", help="H,W,C")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--wd", type=float, default=5e-4)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    args = p.parse_args()
    args.input = [int(v) for v in args.input.split(",")]
    if len(args.input) != 3:
        p.error("--input wants H,W,C")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        name = torch.cuda.get_device_name(device)
    else:
        name = f"cpu ({torch.get_num_threads()} threads)"
    print(f"torch_version={torch.__version__} device={name.replace(' ', '_')}", flush=True)
    failed = False
    for arch in args.archs.split(","):
        best = None
        for mode in args.modes.split(","):
            try:
                first, dt = bench(arch, mode, args, device)
            except Exception as e:  # a mode this PyTorch or device lacks: say so, go on
                print(f"torch arch={arch} mode={mode} error={type(e).__name__}: {str(e).splitlines()[0][:200]}",
                      flush=True)
                failed = True
                continue
            ips = args.batch / dt
            print(f"torch arch={arch} mode={mode} batch={args.batch} first_step_s={first:.2f} "
                  f"step_ms={1000 * dt:.3f} img_per_s={ips:.1f}", flush=True)
            if best is None or ips > best[1]:
                best = (mode, ips)
        if best:
            print(f"torch_best arch={arch} mode={best[0]} img_per_s={best[1]:.1f}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
