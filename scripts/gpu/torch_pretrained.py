#!/usr/bin/env python3
"""Issue 16 section 5, the PyTorch witness of `shortcut-train pretrained` (driven by scripts/gpu-pretrained.sh).

    prepare --work DIR [--dry]   weights, inputs and (without --dry) PyTorch's outputs, into DIR
    compare --work DIR           our outputs (DIR/ours-ARCH-FORMAT/{s,e}I.npy) against PyTorch's
    selftest                     the pure-python .npy / safetensors / .pth writers and readers

prepare, for each arch (resnet18, resnet50; torchvision's v1.5 layout, 1000 classes):
  * PyTorch: seed, build the model (torchvision.models.resnetNN(weights=None), or when torchvision
    is missing the same layout defined below with torchvision's state_dict names), then re-draw
    every tensor with the recipe of cmd/train/pretrained_ort_test.go (convolutions N(0, 2/fan_in);
    every batch norm running_var U[0.5, 2], running_mean N(0, 0.1), weight U[0.8, 1.2], bias
    N(0, 0.1), the last batch norm of each residual branch divided by sqrt(blocks); fc.weight
    N(0, 1/in) (FC_GAIN; the ORT test's 4/in saturates torchvision's resnet50), fc.bias
    N(0, 0.1)), so folding errors show and the scores are neither one-hot nor flat; eval(). torch.save(state_dict) -> DIR/ARCH.pth (torch.save's default zip format), the
    safetensors package (or, without it, the pure-python writer here) -> DIR/ARCH.safetensors.
    Forward in float32 on the CPU and, when CUDA is there, on the GPU with TF32 off:
    DIR/ref-DEVICE-ARCH-{l,s,e}I.npy (logits, softmax scores, the flattened avgpool output).
  * --dry (no PyTorch): the same recipe drawn with python's random module (convolutions from a
    uniform law of the same variance, for speed), written by the pure-python safetensors writer
    and by a pure-python imitation of torch.save's zip + pickle (same globals, same layout);
    no reference outputs.
  * both: IMAGES random images (U[0, 1] pixels, normalised with ImageNet's mean/std), written as
    DIR/xI.npy, NHWC float32 [1, 224, 224, 3], the layout `shortcut-train infer` takes (PyTorch
    gets the same numbers permuted to NCHW). Inputs use python's random module in both modes.

compare prints a table and, per arch, format (and device), a line

    pytorch-check: arch=resnet18 format=pth device=cpu max_abs_scores=... max_rel_logits=...
        max_abs_embedding=... max_rel_embedding=... top1_equal=4/4 PASS

Tolerances (float32 on both sides; only the summation order and the batch-norm folding differ):
  scores      max |ours - torch| <= 1e-4 (scores lie in [0, 1]: 1e-4 absolute is 1e-4 of the
              largest possible value)
  logits      ours are log(scores), both centred over the classes (softmax forgets a constant);
              max |diff| <= 1e-4 of the largest |centred torch logit| (or of 1, if that is less)
  embedding   max |diff| <= 1e-4 of the largest |torch embedding value|
  top-1       equal, unless torch's own top-2 margin is within the score tolerance (a tie)
Why 1e-4: ONNX Runtime, the in-repo witness of the same networks with the same recipe, measured
2.2e-5 (scores) and 3.7e-7 (embedding) of the largest value for ResNet-50 at 224
(TestPretrainedAgreesWithAnONNXTwinOfTheTorchvisionNetwork), so 1e-4 leaves 5x and 270x room
for another float32 summation order; a folding mistake shows far above it (batch-norm eps 1e-3
instead of 1e-5: 2.5e-3..5e-3; the running mean left out: 0.03..0.12). The looser 1e-3 relative
on the embedding would let half of the eps mistake through. The CUDA forward (cuDNN may pick
Winograd/FFT algorithms even with TF32 off) is informational: its lines say device=cuda, its
tolerance is 10x looser and it does not decide the exit status; torch CPU vs CUDA is printed
too, as PyTorch's own spread. The check also fails when it would prove little: a torch top
score above 0.99 (saturated) or scores that differ between images by less than 100x the
tolerance (a network that ignores its input).

TORCH_BN_EPS=1e-3 (environment) is a negative control: PyTorch's forward then uses another batch-norm
eps than the saved files, and every CPU line must FAIL.

No numpy anywhere: .npy, safetensors and the .pth imitation are written and read with the
array module; PyTorch tensors go to bytes through ctypes.string_at on their data pointer.
"""

import argparse
import ast
import collections
import ctypes
import hashlib
import io
import json
import math
import os
import random
import struct
import sys
import time
import zipfile
from array import array

ARCHS = {"resnet18": ("basic", [2, 2, 2, 2]), "resnet50": ("bottleneck", [3, 4, 6, 3])}
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
TOL_SCORES = float(os.environ.get("TOL_SCORES", "1e-4"))
TOL_LOGITS_REL = float(os.environ.get("TOL_LOGITS_REL", "1e-4"))
TOL_EMB_REL = float(os.environ.get("TOL_EMB_REL", "1e-4"))
CUDA_FACTOR = 10.0
SATURATED = 0.99
FC_GAIN = float(os.environ.get("FC_GAIN", "1"))  # std of fc.weight times sqrt(in): 2 saturates torchvision's resnet50 (top score 0.998)

assert sys.byteorder == "little", "the writers here assume a little-endian machine"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# torchvision's state dict, written from torchvision's definition (not from our importer).


def state_dict_layout(arch, classes=1000):
    """[(name, shape, dtype)] in torchvision's state_dict order; dtype 'F32' or 'I64'."""
    kind, depths = ARCHS[arch]
    out = []

    def bn(p, c):
        for s in ("weight", "bias", "running_mean", "running_var"):
            out.append((f"{p}.{s}", [c], "F32"))
        out.append((f"{p}.num_batches_tracked", [], "I64"))

    out.append(("conv1.weight", [64, 3, 7, 7], "F32"))
    bn("bn1", 64)
    cin = 64
    exp = 4 if kind == "bottleneck" else 1
    for li, d in enumerate(depths):
        w = 64 << li
        for b in range(d):
            p = f"layer{li + 1}.{b}"
            stride = 2 if li > 0 and b == 0 else 1
            if kind == "basic":
                out.append((f"{p}.conv1.weight", [w, cin, 3, 3], "F32"))
                bn(f"{p}.bn1", w)
                out.append((f"{p}.conv2.weight", [w, w, 3, 3], "F32"))
                bn(f"{p}.bn2", w)
            else:
                out.append((f"{p}.conv1.weight", [w, cin, 1, 1], "F32"))
                bn(f"{p}.bn1", w)
                out.append((f"{p}.conv2.weight", [w, w, 3, 3], "F32"))
                bn(f"{p}.bn2", w)
                out.append((f"{p}.conv3.weight", [w * exp, w, 1, 1], "F32"))
                bn(f"{p}.bn3", w * exp)
            if stride != 1 or cin != w * exp:
                out.append((f"{p}.downsample.0.weight", [w * exp, cin, 1, 1], "F32"))
                bn(f"{p}.downsample.1", w * exp)
            cin = w * exp
    out.append(("fc.weight", [classes, cin], "F32"))
    out.append(("fc.bias", [classes], "F32"))
    return out


def features(arch):
    return 512 if ARCHS[arch][0] == "basic" else 2048


def last_bn(arch):
    return ".bn2." if ARCHS[arch][0] == "basic" else ".bn3."


def blocks(arch):
    return sum(ARCHS[arch][1])


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


# ---------------------------------------------------------------------------------------------
# .npy (version 1.0 written; 1.0-3.0 read), little-endian float32 / int64, C order.


def npy_write(path, shape, data, descr="<f4"):
    if not isinstance(data, (bytes, bytearray)):
        data = data.tobytes()
    dims = ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, dims)
    total = 10 + len(header) + 1
    header += " " * ((64 - total % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1"))
        f.write(data)


def npy_read(path):
    """(shape, array('f') or array('q'))."""
    with open(path, "rb") as f:
        b = f.read()
    if b[:6] != b"\x93NUMPY":
        raise ValueError(f"{path}: not a .npy file")
    if b[6] == 1:
        (hlen,), off = struct.unpack("<H", b[8:10]), 10
    elif b[6] in (2, 3):
        (hlen,), off = struct.unpack("<I", b[8:12]), 12
    else:
        raise ValueError(f"{path}: .npy version {b[6]}")
    h = ast.literal_eval(b[off : off + hlen].decode("latin1"))
    if h["fortran_order"]:
        raise ValueError(f"{path}: fortran_order")
    codes = {"<f4": "f", "<i8": "q"}
    if h["descr"] not in codes:
        raise ValueError(f"{path}: dtype {h['descr']}, want <f4 or <i8")
    a = array(codes[h["descr"]])
    a.frombytes(b[off + hlen :])
    shape = list(h["shape"])
    if len(a) != numel(shape):
        raise ValueError(f"{path}: {len(a)} values for shape {shape}")
    return shape, a


# ---------------------------------------------------------------------------------------------
# safetensors: 8-byte little-endian header length, JSON header, raw little-endian data.


def safetensors_write(path, tensors, metadata=None):
    """tensors: [(name, shape, dtype 'F32'|'I64', bytes)]."""
    header, off = {}, 0
    if metadata:
        header["__metadata__"] = metadata
    for name, shape, dt, raw in tensors:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, _, raw in tensors:
            f.write(raw)


def safetensors_read(path):
    """{name: (dtype, shape, bytes)}"""
    with open(path, "rb") as f:
        b = f.read()
    (n,) = struct.unpack("<Q", b[:8])
    header = json.loads(b[8 : 8 + n])
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        s, e = v["data_offsets"]
        out[name] = (v["dtype"], v["shape"], b[8 + n + s : 8 + n + e])
    return out


# ---------------------------------------------------------------------------------------------
# A pure-python imitation of torch.save(state_dict) (dry mode only: the real run uses torch.save).
# torch.save writes a zip (stored, not compressed) with ARCHIVE/data.pkl (pickle protocol 2: an
# OrderedDict name -> torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False,
# OrderedDict()), each storage a persistent id ('storage', torch.FloatStorage, key, 'cpu',
# numel), the OrderedDict's _metadata as its state), ARCHIVE/data/KEY (raw storages),
# ARCHIVE/byteorder, ARCHIVE/version, ARCHIVE/.format_version, ARCHIVE/.storage_alignment.


def pth_write_imitation(path, tensors):
    """tensors: [(name, shape, dtype, bytes)]; writes what torch.save(state_dict) would."""
    import pickle
    import types

    if "torch" in sys.modules:
        raise RuntimeError("the torch.save imitation installs a stand-in 'torch' module for a moment: call it before importing torch")
    torch_mod = types.ModuleType("torch")
    utils_mod = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*a):  # never called: only its name is pickled
        raise AssertionError

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils_mod._rebuild_tensor_v2 = _rebuild_tensor_v2
    storage_classes = {}
    for cname in ("FloatStorage", "LongStorage"):
        c = type(cname, (), {"__module__": "torch"})
        setattr(torch_mod, cname, c)
        storage_classes[cname] = c
    torch_mod._utils = utils_mod
    sys.modules["torch"], sys.modules["torch._utils"] = torch_mod, utils_mod
    try:

        class Storage:
            def __init__(self, key, cls, n):
                self.key, self.cls, self.n = key, cls, n

        class Tensor:
            def __init__(self, storage, shape):
                self.storage, self.shape = storage, shape

            def __reduce__(self):
                stride, s = [], 1
                for d in reversed(self.shape):
                    stride.insert(0, s)
                    s *= d
                return (_rebuild_tensor_v2, (self.storage, 0, tuple(self.shape), tuple(stride), False, collections.OrderedDict()))

        class Pickler(pickle.Pickler):
            def persistent_id(self, obj):
                if isinstance(obj, Storage):
                    return ("storage", obj.cls, obj.key, "cpu", obj.n)
                return None

        sd = collections.OrderedDict()
        meta = collections.OrderedDict()
        meta[""] = {"version": 1}
        for i, (name, shape, dt, raw) in enumerate(tensors):
            cls = storage_classes["FloatStorage" if dt == "F32" else "LongStorage"]
            sd[name] = Tensor(Storage(str(i), cls, len(raw) // (4 if dt == "F32" else 8)), shape)
            mod = name.rsplit(".", 1)[0]
            if mod not in meta:
                meta[mod] = {"version": 2 if ".bn" in "." + mod or "downsample.1" in mod else 1}
        sd._metadata = meta
        buf = io.BytesIO()
        Pickler(buf, protocol=2).dump(sd)
    finally:
        del sys.modules["torch"], sys.modules["torch._utils"]
    arc = os.path.splitext(os.path.basename(path))[0]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{arc}/data.pkl", buf.getvalue())
        z.writestr(f"{arc}/.format_version", "1")
        z.writestr(f"{arc}/.storage_alignment", "64")
        z.writestr(f"{arc}/byteorder", "little")
        for i, (_, _, _, raw) in enumerate(tensors):
            z.writestr(f"{arc}/data/{i}", raw)
        z.writestr(f"{arc}/version", "3\n")
        z.writestr(f"{arc}/.data/serialization_id", "0" * 40)


# ---------------------------------------------------------------------------------------------
# Inputs (both modes): python's random, U[0, 1] pixels normalised with ImageNet's mean/std, NHWC.


def make_inputs(work, images, size, seed):
    paths = []
    for i in range(images):
        r = random.Random(seed * 1000 + i)
        g = r.random
        m = MEAN * (size * size)
        s = STD * (size * size)
        x = array("f", [(g() - mi) / si for mi, si in zip(m, s)])
        p = os.path.join(work, f"x{i}.npy")
        npy_write(p, [1, size, size, 3], x)
        paths.append(p)
    return paths


# ---------------------------------------------------------------------------------------------
# Dry mode weights: the recipe with python's random module.


def dry_weights(arch, seed):
    r = random.Random(seed)
    g = r.random
    lb, nb = last_bn(arch), blocks(arch)
    out = []
    for name, shape, dt in state_dict_layout(arch):
        n = numel(shape)
        if dt == "I64":
            out.append((name, shape, dt, array("q", [0]).tobytes()))
            continue
        if name.endswith("running_var"):
            v = [0.5 + 1.5 * g() for _ in range(n)]
        elif name.endswith("running_mean") or name.endswith(".bias"):
            v = [r.gauss(0, 0.1) for _ in range(n)]
        elif name == "fc.weight":
            a = math.sqrt(3) * FC_GAIN / math.sqrt(shape[1])
            v = [a * (2 * g() - 1) for _ in range(n)]
        elif len(shape) == 1:
            k = 1 / math.sqrt(nb) if lb in name else 1.0
            v = [k * (0.8 + 0.4 * g()) for _ in range(n)]
        else:  # convolution: uniform with He's variance 2/fan_in
            a = math.sqrt(3) * math.sqrt(2 / (n // shape[0]))
            v = [a * (2 * g() - 1) for _ in range(n)]
        out.append((name, shape, dt, array("f", v).tobytes()))
    return out


# ---------------------------------------------------------------------------------------------
# PyTorch mode.


def torch_model(arch):
    """(model, builder) with torchvision's layout and state_dict names."""
    import torch.nn as nn

    why = "torchvision is not installed"
    try:
        import torchvision

        try:
            m = getattr(torchvision.models, arch)(weights=None)
        except TypeError:  # torchvision < 0.13
            m = getattr(torchvision.models, arch)(pretrained=False)
        return m, f"torchvision {torchvision.__version__}"
    except ImportError:
        pass
    except Exception as e:  # e.g. a torchvision built for another torch
        why = f"torchvision fails: {type(e).__name__}: {e}"

    class BasicBlock(nn.Module):
        expansion = 1

        def __init__(self, cin, w, stride, down):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, w, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(w)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(w, w, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(w)
            self.downsample = down

        def forward(self, x):
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            s = x if self.downsample is None else self.downsample(x)
            return self.relu(y + s)

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, cin, w, stride, down):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, w, 1, 1, 0, bias=False)
            self.bn1 = nn.BatchNorm2d(w)
            self.conv2 = nn.Conv2d(w, w, 3, stride, 1, bias=False)  # v1.5: the stride on the 3x3
            self.bn2 = nn.BatchNorm2d(w)
            self.conv3 = nn.Conv2d(w, w * 4, 1, 1, 0, bias=False)
            self.bn3 = nn.BatchNorm2d(w * 4)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = down

        def forward(self, x):
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.relu(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
            s = x if self.downsample is None else self.downsample(x)
            return self.relu(y + s)

    class ResNet(nn.Module):
        def __init__(self, block, depths, classes=1000):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            cin = 64
            for li, d in enumerate(depths):
                w = 64 << li
                layers = []
                for b in range(d):
                    stride = 2 if li > 0 and b == 0 else 1
                    down = None
                    if stride != 1 or cin != w * block.expansion:
                        down = nn.Sequential(nn.Conv2d(cin, w * block.expansion, 1, stride, bias=False), nn.BatchNorm2d(w * block.expansion))
                    layers.append(block(cin, w, stride, down))
                    cin = w * block.expansion
                setattr(self, f"layer{li + 1}", nn.Sequential(*layers))
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(cin, classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.avgpool(x).flatten(1))

    kind, depths = ARCHS[arch]
    return ResNet(BasicBlock if kind == "basic" else Bottleneck, depths), f"own definition of torchvision's layout ({why})"


def torch_recipe(model, arch):
    """Re-draw every parameter and buffer with the recipe (module docstring), in place."""
    import torch

    lb, nb = last_bn(arch), blocks(arch)
    with torch.no_grad():
        for name, t in model.state_dict(keep_vars=True).items():
            t = t.data
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif name.endswith("running_mean") or name.endswith(".bias"):
                t.normal_(0, 0.1)
            elif name == "fc.weight":
                t.normal_(0, FC_GAIN / math.sqrt(t.shape[1]))
            elif t.dim() == 1:
                t.uniform_(0.8, 1.2)
                if lb in name:
                    t.div_(math.sqrt(nb))
            else:
                t.normal_(0, math.sqrt(2 / (t.numel() // t.shape[0])))


def tf32_off(torch):
    """Turn TF32 off for cuBLAS and cuDNN; says how. PyTorch 2.9 added fp32_precision ("ieee" =
    plain float32) and deprecated allow_tf32; mixing the two APIs can raise, so use one."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    try:
        if conv is not None and hasattr(conv, "fp32_precision") and hasattr(torch.backends.cuda.matmul, "fp32_precision"):
            torch.backends.cuda.matmul.fp32_precision = "ieee"
            conv.fp32_precision = "ieee"
            return f"off (fp32_precision: matmul {torch.backends.cuda.matmul.fp32_precision}, cudnn conv {conv.fp32_precision})"
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        return f"off (allow_tf32: matmul {torch.backends.cuda.matmul.allow_tf32}, cudnn {torch.backends.cudnn.allow_tf32})"
    except Exception as e:  # report, do not stop: the CUDA lines are informational
        return f"UNKNOWN: setting it failed: {type(e).__name__}: {e}"


def tensor_bytes(t):
    t = t.detach().to("cpu").contiguous()
    return ctypes.string_at(t.data_ptr(), t.numel() * t.element_size())


def torch_prepare(args, archs, xs):
    import torch

    torch.set_num_threads(max(1, min(os.cpu_count() or 1, 16)))
    info = {"mode": "pytorch", "torch": torch.__version__, "python": sys.version.split()[0], "archs": {}}
    try:
        from safetensors.torch import save_file

        import safetensors

        info["safetensors_writer"] = f"safetensors {safetensors.__version__}"
    except ImportError:
        save_file = None
        info["safetensors_writer"] = "pure python (the safetensors package is not installed)"
    cuda = torch.cuda.is_available()
    if cuda:
        info["tf32"] = tf32_off(torch)
        info["cuda"] = torch.cuda.get_device_name(0)
        log(f"torch_pretrained: CUDA {info['cuda']}; TF32: {info['tf32']}")
    else:
        info["cuda"] = None
    xt = []
    for p in xs:
        shape, a = npy_read(p)
        x = torch.frombuffer(bytearray(a.tobytes()), dtype=torch.float32).reshape(shape)
        xt.append(x.permute(0, 3, 1, 2).contiguous())  # NHWC -> NCHW
    for ai, arch in enumerate(archs):
        torch.manual_seed(args.seed + ai)
        model, builder = torch_model(arch)
        torch_recipe(model, arch)
        model.eval()
        sd = model.state_dict()
        want = {n: s for n, s, _ in state_dict_layout(arch)}
        got = {n: list(t.shape) for n, t in sd.items()}
        if want != got:
            missing = [(n, s) for n, s in want.items() if got.get(n) != s][:3]
            extra = [(n, s) for n, s in got.items() if want.get(n) != s][:3]
            raise SystemExit(f"{arch}: the model's state_dict is not torchvision's layout (missing {missing}, unexpected {extra})")
        pth = os.path.join(args.work, f"{arch}.pth")
        torch.save(sd, pth)
        st = os.path.join(args.work, f"{arch}.safetensors")
        if save_file is not None:
            save_file({k: v.contiguous() for k, v in sd.items()}, st, metadata={"format": "pt"})
        else:
            dts = {torch.float32: "F32", torch.int64: "I64"}
            safetensors_write(st, [(n, list(t.shape), dts[t.dtype], tensor_bytes(t)) for n, t in sd.items()], {"format": "pt"})
        # The pure-python reader must see the same numbers torch holds (checks both writers' view).
        back = safetensors_read(st)
        for n, t in sd.items():
            if back[n][2] != tensor_bytes(t):
                raise SystemExit(f"{arch}: {st} holds other bytes than the state dict for {n}")
        a = {"builder": builder, "pth_bytes": os.path.getsize(pth), "safetensors_bytes": os.path.getsize(st), "tensors": len(sd)}
        eps = os.environ.get("TORCH_BN_EPS")
        if eps:  # negative control: PyTorch computes another network than the files hold
            for mod in model.modules():
                if isinstance(mod, torch.nn.BatchNorm2d):
                    mod.eps = float(eps)
            a["negative_control"] = f"PyTorch's forward uses batch-norm eps {eps} (the files and ours: 1e-5): the check must FAIL"
            log(f"torch_pretrained: {arch}: NEGATIVE CONTROL: {a['negative_control']}")
        feats = {}
        model.avgpool.register_forward_hook(lambda m, i, o: feats.__setitem__("e", o.flatten(1)))
        devices = ["cpu"] + (["cuda"] if cuda else [])
        for dev in devices:
            m = model.to(dev)
            t0 = time.time()
            with torch.no_grad():
                for i, x in enumerate(xt):
                    logits = m(x.to(dev)).float()
                    scores = torch.softmax(logits, dim=1)
                    for tag, v in (("l", logits), ("s", scores), ("e", feats["e"])):
                        npy_write(os.path.join(args.work, f"ref-{dev}-{arch}-{tag}{i}.npy"), list(v.shape), tensor_bytes(v.float()))
            a[f"forward_s_{dev}"] = round(time.time() - t0, 3)
        model.to("cpu")
        info["archs"][arch] = a
        log(f"torch_pretrained: {arch}: {builder}; wrote {pth} ({a['pth_bytes']} bytes), {st} ({a['safetensors_bytes']} bytes); forward on {', '.join(devices)}")
    return info


def cmd_prepare(args):
    archs = args.archs.split(",")
    for a in archs:
        if a not in ARCHS:
            raise SystemExit(f"--archs: {a!r}: want resnet18 or resnet50")
    os.makedirs(args.work, exist_ok=True)
    t0 = time.time()
    xs = make_inputs(args.work, args.images, args.size, args.seed)
    log(f"torch_pretrained: {len(xs)} inputs [1, {args.size}, {args.size}, 3] NHWC float32 in {time.time() - t0:.1f} s")
    if args.dry:
        info = {"mode": "dry (no PyTorch)", "python": sys.version.split()[0], "safetensors_writer": "pure python", "pth_writer": "pure-python imitation of torch.save", "archs": {}}
        for ai, arch in enumerate(archs):
            t0 = time.time()
            ts = dry_weights(arch, args.seed + ai)
            st, pth = os.path.join(args.work, f"{arch}.safetensors"), os.path.join(args.work, f"{arch}.pth")
            safetensors_write(st, ts, {"format": "pt"})
            pth_write_imitation(pth, ts)
            info["archs"][arch] = {"tensors": len(ts), "floats": sum(len(t[3]) // 4 for t in ts if t[2] == "F32"), "pth_bytes": os.path.getsize(pth), "safetensors_bytes": os.path.getsize(st)}
            log(f"torch_pretrained: {arch}: {len(ts)} tensors drawn and written in {time.time() - t0:.1f} s: {st}, {pth}")
    else:
        info = torch_prepare(args, archs, xs)
    info["images"], info["size"], info["seed"] = args.images, args.size, args.seed
    for arch in archs:
        for ext in ("pth", "safetensors"):
            p = os.path.join(args.work, f"{arch}.{ext}")
            with open(p, "rb") as f:
                info["archs"][arch][f"{ext}_sha256"] = hashlib.sha256(f.read()).hexdigest()
    with open(os.path.join(args.work, "manifest.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps(info, indent=1))


# ---------------------------------------------------------------------------------------------
# Comparison.


def read_vec(path, n):
    shape, a = npy_read(path)
    if shape != [1, n]:
        raise ValueError(f"{path}: shape {shape}, want [1, {n}]")
    return list(a)


def centred(v):
    m = sum(v) / len(v)
    return [x - m for x in v]


def argmax(v):
    return max(range(len(v)), key=v.__getitem__)


def cmd_compare(args):
    archs = args.archs.split(",")
    formats = args.formats.split(",")
    w = args.work
    with open(os.path.join(w, "manifest.json")) as f:
        info = json.load(f)
    dry = info["mode"].startswith("dry")
    devices = [] if dry else ["cpu"] + (["cuda"] if info.get("cuda") else [])
    ok, rows, lines, notes = True, [], [], []
    for arch in archs:
        nf = features(arch)
        refs = {}
        for dev in devices:
            refs[dev] = [
                (read_vec(f"{w}/ref-{dev}-{arch}-l{i}.npy", 1000), read_vec(f"{w}/ref-{dev}-{arch}-s{i}.npy", 1000), read_vec(f"{w}/ref-{dev}-{arch}-e{i}.npy", nf))
                for i in range(args.images)
            ]
        ours = {}
        for fmt in formats:
            d = f"{w}/ours-{arch}-{fmt}"
            try:
                ours[fmt] = [(read_vec(f"{d}/s{i}.npy", 1000), read_vec(f"{d}/e{i}.npy", nf)) for i in range(args.images)]
            except (OSError, ValueError) as e:
                lines.append(f"pytorch-check: arch={arch} format={fmt} FAIL (our outputs are missing: {e})")
                ok = False
        # Our own sanity, both modes: finite, not saturated, input-dependent, pth == safetensors.
        for fmt, outs in ours.items():
            finite = all(math.isfinite(x) for s, e in outs for x in s + e)
            top = max(max(s) for s, _ in outs)
            spread = max(max(abs(a - b) for a, b in zip(s, outs[0][0])) for s, _ in outs)
            ssum = max(abs(sum(s) - 1) for s, _ in outs)
            notes.append(f"ours arch={arch} format={fmt}: finite={finite} top_score_max={top:.4g} scores_spread_between_images={spread:.3g} max|sum(scores)-1|={ssum:.2g} top1={[argmax(s) for s, _ in outs]}")
            if not finite:
                ok = False
        if len(ours) == 2:
            a, b = ours[formats[0]], ours[formats[1]]
            same = all(x == y for (s1, e1), (s2, e2) in zip(a, b) for x, y in zip(s1 + e1, s2 + e2))
            notes.append(f"ours arch={arch}: {formats[0]} and {formats[1]} give {'bit-identical outputs' if same else 'DIFFERENT outputs (the two readers disagree)'}")
            ok = ok and same
        for dev in devices:
            gate = dev == "cpu"
            k = 1.0 if gate else CUDA_FACTOR
            ref = refs[dev]
            top = max(max(s) for _, s, _ in ref)
            spread = max(max(abs(x - y) for x, y in zip(s, ref[0][1])) for _, s, _ in ref)
            sane = top <= SATURATED and spread >= 100 * TOL_SCORES
            if not sane:
                notes.append(f"torch arch={arch} device={dev}: top score {top:.4g} (want <= {SATURATED}), scores differ between images by {spread:.3g} (want >= {100 * TOL_SCORES:g}): the comparison proves little")
            for fmt, outs in ours.items():
                ms = ml = me = mer = 0.0
                t1, ties = 0, 0
                for (l, s, e), (so, eo) in zip(ref, outs):
                    ms = max(ms, max(abs(x - y) for x, y in zip(so, s)))
                    lc = centred(l)
                    lo = centred([math.log(x) if x > 0 else -1e30 for x in so])
                    ml = max(ml, max(abs(x - y) for x, y in zip(lo, lc)) / max(1.0, max(abs(x) for x in lc)))
                    d = max(abs(x - y) for x, y in zip(eo, e))
                    me, mer = max(me, d), max(mer, d / max(1e-30, max(abs(x) for x in e)))
                    ti, to = argmax(s), argmax(so)
                    if ti == to:
                        t1 += 1
                    elif s[ti] - s[to] <= k * TOL_SCORES:
                        ties += 1
                good = ms <= k * TOL_SCORES and ml <= k * TOL_LOGITS_REL and mer <= k * TOL_EMB_REL and t1 + ties == len(ref) and sane
                verdict = ("PASS" if good else "FAIL") + ("" if gate else " (informational)")
                tie = f" top1_ties={ties}" if ties else ""
                lines.append(
                    f"pytorch-check: arch={arch} format={fmt} device={dev} max_abs_scores={ms:.3g} max_rel_logits={ml:.3g} "
                    f"max_abs_embedding={me:.3g} max_rel_embedding={mer:.3g} top1_equal={t1}/{len(ref)}{tie} {verdict}"
                )
                rows.append((arch, fmt, dev, ms, ml, me, mer, f"{t1}/{len(ref)}", verdict))
                if gate and not good:
                    ok = False
        if "cuda" in refs:
            ds = max(max(abs(x - y) for x, y in zip(a[1], b[1])) for a, b in zip(refs["cpu"], refs["cuda"]))
            de = max(max(abs(x - y) for x, y in zip(a[2], b[2])) / max(abs(x) for x in a[2]) for a, b in zip(refs["cpu"], refs["cuda"]))
            notes.append(f"torch arch={arch}: PyTorch CPU vs CUDA (its own spread): max_abs_scores={ds:.3g} max_rel_embedding={de:.3g}")
    print(f"mode: {info['mode']}; torch {info.get('torch', '-')}; cuda {info.get('cuda') or '-'} (TF32 {info.get('tf32', '-')}); safetensors writer: {info.get('safetensors_writer')}")
    for a, v in info["archs"].items():
        if "builder" in v:
            print(f"{a}: model from {v['builder']}")
        if "negative_control" in v:
            print(f"{a}: NEGATIVE CONTROL: {v['negative_control']}")
    print(f"tolerances: scores abs {TOL_SCORES:g}; logits {TOL_LOGITS_REL:g} and embedding {TOL_EMB_REL:g} of the largest |torch value|; cuda x{CUDA_FACTOR:g} (informational)")
    if rows:
        print()
        print(f"{'arch':9} {'format':12} {'device':6} {'max_abs_scores':>14} {'max_rel_logits':>14} {'max_abs_emb':>12} {'max_rel_emb':>12} {'top1':>5}  verdict")
        for r in rows:
            print(f"{r[0]:9} {r[1]:12} {r[2]:6} {r[3]:14.3g} {r[4]:14.3g} {r[5]:12.3g} {r[6]:12.3g} {r[7]:>5}  {r[8]}")
        print()
    for n in notes:
        print(n)
    for ln in lines:
        print(ln)
    if dry:
        print("pytorch-check: SKIPPED: dry run without PyTorch; the PyTorch comparison (torch.save's .pth, PyTorch's forward) needs PyTorch: run without GPU_PRETRAINED_DRY where it is installed (make test does, with Debian's python3-torch)")
        print(f"pytorch-check: dry {'PASS' if ok else 'FAIL'} (our side: both formats imported, run, finite, pth == safetensors)")
    else:
        print(f"pytorch-check: overall {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


# ---------------------------------------------------------------------------------------------


def cmd_selftest(args):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        v = array("f", [1.5, -2.25, 3.0, 0.1, 7, 8])
        npy_write(f"{d}/a.npy", [2, 3], v)
        assert npy_read(f"{d}/a.npy") == ([2, 3], v)
        npy_write(f"{d}/b.npy", [3], array("q", [1, -2, 3]), "<i8")
        assert npy_read(f"{d}/b.npy") == ([3], array("q", [1, -2, 3]))
        assert os.path.getsize(f"{d}/a.npy") == 128 + 24
        ts = [("x.weight", [2, 3], "F32", v.tobytes()), ("x.num_batches_tracked", [], "I64", array("q", [5]).tobytes())]
        safetensors_write(f"{d}/t.safetensors", ts, {"format": "pt"})
        back = safetensors_read(f"{d}/t.safetensors")
        assert back["x.weight"] == ("F32", [2, 3], v.tobytes()) and back["x.num_batches_tracked"][1] == []
        with open(f"{d}/t.safetensors", "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
        assert n % 8 == 0
        if "torch" not in sys.modules:
            pth_write_imitation(f"{d}/t.pth", ts)
            with zipfile.ZipFile(f"{d}/t.pth") as z:
                names = z.namelist()
                pkl = z.read("t/data.pkl")
            assert "t/data/0" in names and "t/byteorder" in names, names
            for g in (b"ctorch._utils\n_rebuild_tensor_v2\n", b"ctorch\nFloatStorage\n", b"ctorch\nLongStorage\n", b"ccollections\nOrderedDict\n"):
                assert g in pkl, g
            import pickletools

            ops = {op.name for op, _, _ in pickletools.genops(pkl)}
            assert "BINPERSID" in ops and "BUILD" in ops, ops
    layout = state_dict_layout("resnet50")
    assert sum(numel(s) for n, s, dt in layout if dt == "F32" and "running" not in n) == 25557032, "resnet50 parameter count"
    assert sum(numel(s) for n, s, dt in state_dict_layout("resnet18") if dt == "F32" and "running" not in n) == 11689512, "resnet18 parameter count"
    assert len(layout) == 320 and len(state_dict_layout("resnet18")) == 122, (len(layout), len(state_dict_layout("resnet18")))
    print("torch_pretrained selftest: PASS (npy, safetensors, torch.save imitation, torchvision parameter counts 11,689,512 / 25,557,032)")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--work", required=True)
    p.add_argument("--archs", default="resnet18,resnet50")
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--dry", action="store_true", help="no PyTorch: pure-python weights, no reference outputs")
    c = sub.add_parser("compare")
    c.add_argument("--work", required=True)
    c.add_argument("--archs", default="resnet18,resnet50")
    c.add_argument("--formats", default="pth,safetensors")
    c.add_argument("--images", type=int, default=4)
    sub.add_parser("selftest")
    args = ap.parse_args()
    if args.cmd == "prepare":
        cmd_prepare(args)
        return 0
    if args.cmd == "compare":
        return cmd_compare(args)
    return cmd_selftest(args)


if __name__ == "__main__":
    sys.exit(main())
