# Writes cpython_state_dict.pkl: the data.pkl that torch.save would write for the state dict
# described in TestWriterPicklesLikeCPython (train/pth/pth_test.go), made by CPython's own pickler
# at torch.save's default protocol 2 with torch.save's persistent ids. It needs no PyTorch:
# stand-ins for the torch globals carry the module names torch's have, and the stand-in tensors
# reduce the way torch.Tensor and nn.Parameter do.
#
#   python3 cpython_state_dict.py   (from this folder)
import collections
import io
import pickle
import sys
import types

torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
torch._utils = torch_utils
sys.modules["torch"], sys.modules["torch._utils"] = torch, torch_utils


def _rebuild_tensor_v2(*args):
    raise RuntimeError("stand-in")


def _rebuild_parameter(*args):
    raise RuntimeError("stand-in")


for f in (_rebuild_tensor_v2, _rebuild_parameter):
    f.__module__ = "torch._utils"
    setattr(torch_utils, f.__name__, f)

classes = {}
for name in ("FloatStorage", "LongStorage", "HalfStorage"):
    cls = type(name, (), {"__module__": "torch"})
    setattr(torch, name, cls)
    classes[name] = cls


class Storage:
    def __init__(self, cls, key, numel):
        self.cls, self.key, self.numel = cls, key, numel


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, offset
        self.size, self.stride = tuple(list(size)), tuple(list(stride))

    def __reduce_ex__(self, proto):
        return (_rebuild_tensor_v2,
                (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict()))


class Parameter:
    def __init__(self, data):
        self.data = data

    def __reduce_ex__(self, proto):
        return (_rebuild_parameter, (self.data, True, collections.OrderedDict()))


def contiguous(shape):
    stride, n = [], 1
    for d in reversed(shape):
        stride.insert(0, n)
        n *= d
    return stride


storages = []


def storage(cls, numel):
    s = Storage(classes[cls], str(len(storages)), numel)
    storages.append(s)
    return s


sd = collections.OrderedDict()
sd["conv1.weight"] = Tensor(storage("FloatStorage", 24), 0, [2, 3, 2, 2], contiguous([2, 3, 2, 2]))
sd["bn1.weight"] = Tensor(storage("HalfStorage", 2), 0, [2], [1])
sd["bn1.num_batches_tracked"] = Tensor(storage("LongStorage", 1), 0, [], [])
fc = storage("FloatStorage", 70100)
sd["fc.weight"] = Tensor(fc, 0, [100, 700], [1, 100])
sd["fc.bias"] = Tensor(fc, 70000, [100], [1])
sd["layer1.0.conv1.weight"] = Parameter(Tensor(storage("FloatStorage", 4), 0, [1, 1, 2, 2], [4, 4, 2, 1]))
for i in range(60):
    sd[f"extra.{i}.weight"] = Tensor(storage("FloatStorage", 3), 0, [3], [1])

# state_dict() sets _metadata: here the root and each entry's module, version 1.
meta = collections.OrderedDict()
for name in sd:
    for module in ("", name.rsplit(".", 1)[0]):
        meta.setdefault(module, {"version": 1})
sd._metadata = meta


def persistent_id(obj):
    if isinstance(obj, Storage):
        return ("storage", obj.cls, obj.key, "cpu", obj.numel)
    return None


buf = io.BytesIO()
pickler = pickle.Pickler(buf, protocol=2)
pickler.persistent_id = persistent_id
pickler.dump(sd)
with open("cpython_state_dict.pkl", "wb") as out:
    out.write(buf.getvalue())
