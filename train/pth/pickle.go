package pth

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/big"
	"sort"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// dtype is what a storage class holds.
type dtype struct {
	name string // safetensors' spelling
	size int    // bytes per element
}

// storageClasses are the torch.<Name>Storage globals accepted, by name. torch.save names a
// tensor's storage by its legacy class even in PyTorch 2 (torch/_tensor.py wraps it in a
// TypedStorage whose _pickle_storage_type is "FloatStorage", ...). Float weights come in the four
// float classes; LongStorage holds batch norm's num_batches_tracked. The other integer and bool
// classes are not weights and are refused.
var storageClasses = map[string]dtype{
	"FloatStorage":    {"F32", 4},
	"HalfStorage":     {"F16", 2},
	"BFloat16Storage": {"BF16", 2},
	"DoubleStorage":   {"F64", 8},
	"LongStorage":     {"I64", 8},
}

// Allowed lists the Python globals a file may name, as module.name; every other is refused.
// torch.save of a state dict writes collections.OrderedDict (the dict itself, its _metadata and
// each tensor's empty backward hooks), torch._utils._rebuild_tensor_v2 (every tensor),
// torch._utils._rebuild_parameter (a tensor saved as an nn.Parameter, as state_dict(keep_vars=True)
// does) and the storage classes.
func Allowed() []string {
	out := []string{"collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter"}
	for name := range storageClasses {
		out = append(out, "torch."+name)
	}
	sort.Strings(out)
	return out
}

// Pickle opcodes, by the letter or byte Python's pickle module writes for them.
const (
	opMark           = '('
	opStop           = '.'
	opBinInt         = 'J'
	opBinInt1        = 'K'
	opBinInt2        = 'M'
	opNone           = 'N'
	opBinPersID      = 'Q'
	opReduce         = 'R'
	opShortBinString = 'U'
	opBinUnicode     = 'X'
	opAppend         = 'a'
	opBuild          = 'b'
	opGlobal         = 'c'
	opAppends        = 'e'
	opBinGet         = 'h'
	opLongBinGet     = 'j'
	opEmptyList      = ']'
	opBinPut         = 'q'
	opLongBinPut     = 'r'
	opSetItem        = 's'
	opTuple          = 't'
	opEmptyTuple     = ')'
	opSetItems       = 'u'
	opBinFloat       = 'G'
	opEmptyDict      = '}'
	opProto          = 0x80
	opTuple1         = 0x85
	opTuple2         = 0x86
	opTuple3         = 0x87
	opNewTrue        = 0x88
	opNewFalse       = 0x89
	opLong1          = 0x8a
)

// argument kinds of the accepted opcodes
const (
	argNone   = iota
	argFixed  // n bytes
	argLen1   // a 1-byte length, then that many bytes
	argLen4   // a 4-byte little-endian length, then that many bytes
	argGlobal // two lines: module and name
)

// opcode describes an accepted opcode: its argument, and about how many bytes the unpickler
// allocates for it (its Go value, a stack slot, and a share of the dict or tuple it may end up
// in; a MARK allocates a new 16-slot stack, a REDUCE an OrderedDict or a tensor view).
type opcode struct {
	name string
	arg  int
	n    int
	cost int
}

// accepted are the opcodes torch.save writes for a state dict: those that
// torch.load(weights_only=True) reads (torch/_weights_only_unpickler.py, which every torchvision
// weights file passes since PyTorch 2.6 made it the default), less NEWOBJ and EMPTY_SET, which no
// accepted global needs. They are protocol 2's; protocol 4's FRAME, STACK_GLOBAL and MEMOIZE
// appear only when a file was saved with pickle_protocol >= 4, which torch.load(weights_only=True)
// does not read either.
var accepted = map[byte]opcode{
	opMark:           {"MARK", argNone, 0, 320},
	opStop:           {"STOP", argNone, 0, 0},
	opBinInt:         {"BININT", argFixed, 4, 64},
	opBinInt1:        {"BININT1", argFixed, 1, 64},
	opBinInt2:        {"BININT2", argFixed, 2, 64},
	opNone:           {"NONE", argNone, 0, 64},
	opBinPersID:      {"BINPERSID", argNone, 0, 160},
	opReduce:         {"REDUCE", argNone, 0, 512},
	opShortBinString: {"SHORT_BINSTRING", argLen1, 0, 96},
	opBinUnicode:     {"BINUNICODE", argLen4, 0, 96},
	opAppend:         {"APPEND", argNone, 0, 32},
	opBuild:          {"BUILD", argNone, 0, 64},
	opGlobal:         {"GLOBAL", argGlobal, 0, 128},
	opAppends:        {"APPENDS", argNone, 0, 32},
	opBinGet:         {"BINGET", argFixed, 1, 64},
	opLongBinGet:     {"LONG_BINGET", argFixed, 4, 64},
	opEmptyList:      {"EMPTY_LIST", argNone, 0, 128},
	opBinPut:         {"BINPUT", argFixed, 1, 64},
	opLongBinPut:     {"LONG_BINPUT", argFixed, 4, 64},
	opSetItem:        {"SETITEM", argNone, 0, 160},
	opTuple:          {"TUPLE", argNone, 0, 96},
	opEmptyTuple:     {"EMPTY_TUPLE", argNone, 0, 96},
	opSetItems:       {"SETITEMS", argNone, 0, 160},
	opBinFloat:       {"BINFLOAT", argFixed, 8, 64},
	opEmptyDict:      {"EMPTY_DICT", argNone, 0, 256},
	opProto:          {"PROTO", argFixed, 1, 0},
	opTuple1:         {"TUPLE1", argNone, 0, 96},
	opTuple2:         {"TUPLE2", argNone, 0, 96},
	opTuple3:         {"TUPLE3", argNone, 0, 128},
	opNewTrue:        {"NEWTRUE", argNone, 0, 64},
	opNewFalse:       {"NEWFALSE", argNone, 0, 64},
	opLong1:          {"LONG1", argLen1, 0, 128},
}

// refusedOps names the other pickle opcodes, for the error that refuses them.
var refusedOps = map[byte]string{
	'0': "POP", '1': "POP_MARK", '2': "DUP", 'F': "FLOAT", 'I': "INT", 'L': "LONG", 'P': "PERSID",
	'S': "STRING", 'T': "BINSTRING", 'V': "UNICODE", 'd': "DICT", 'g': "GET", 'i': "INST", 'l': "LIST",
	'o': "OBJ", 'p': "PUT", 'B': "BINBYTES", 'C': "SHORT_BINBYTES", 0x81: "NEWOBJ", 0x82: "EXT1",
	0x83: "EXT2", 0x84: "EXT4", 0x8b: "LONG4", 0x8c: "SHORT_BINUNICODE", 0x8d: "BINUNICODE8",
	0x8e: "BINBYTES8", 0x8f: "EMPTY_SET", 0x90: "ADDITEMS", 0x91: "FROZENSET", 0x92: "NEWOBJ_EX",
	0x93: "STACK_GLOBAL", 0x94: "MEMOIZE", 0x95: "FRAME", 0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER",
	0x98: "READONLY_BUFFER",
}

// maxUnpickleBytes bounds what the unpickler may allocate, by the costs in accepted. A ResNet-50
// state dict needs about 2 MB.
const maxUnpickleBytes = 256 << 20

// scan walks a pickle's opcodes before anything is unpickled: every opcode must be accepted,
// every argument must lie inside the pickle, every global must be allowed, and the allocations
// the opcodes imply must stay within maxUnpickleBytes. gopickle allocates a string's or a frame's
// length before reading it and panics on some malformed input; after scan, no length it reads can
// exceed the pickle, and the panics that remain are recovered in unpickle.
func scan(p []byte) error {
	cost := 0
	for i := 0; i < len(p); {
		at, code := i, p[i]
		op, ok := accepted[code]
		if !ok {
			if name, known := refusedOps[code]; known {
				return fmt.Errorf("pickle opcode %s (%#02x) at byte %d is not one torch.save writes for a state dict "+
					"with its default protocol 2; save the file again with torch.save(state_dict, path)", name, code, at)
			}
			return fmt.Errorf("byte %d: %#02x is not a pickle opcode", at, code)
		}
		i++
		switch op.arg {
		case argFixed:
			i += op.n
		case argLen1:
			if i < len(p) {
				n := int(p[i])
				if code == opLong1 && n == 0 {
					return fmt.Errorf("byte %d: LONG1 with no bytes", at)
				}
				i += 1 + n
				cost += n
			} else {
				i++
			}
		case argLen4:
			if i+4 <= len(p) {
				n := binary.LittleEndian.Uint32(p[i:])
				if uint64(n) > uint64(len(p)) {
					return fmt.Errorf("byte %d: %s of %d bytes in a pickle of %d (truncated or damaged)", at, op.name, n, len(p))
				}
				i += 4 + int(n)
				cost += int(n)
			} else {
				i += 4
			}
		case argGlobal:
			module, n1 := line(p[i:])
			name, n2 := line(p[min(i+n1, len(p)):])
			if n1 < 0 || n2 < 0 {
				return fmt.Errorf("byte %d: GLOBAL without its two lines (truncated pickle)", at)
			}
			i += n1 + n2
			if !allowedGlobal(module, name) {
				return refusedGlobal(module, name, at)
			}
		}
		if i > len(p) {
			return fmt.Errorf("byte %d: %s runs past the end of the %d-byte pickle (truncated)", at, op.name, len(p))
		}
		if cost += op.cost; cost > maxUnpickleBytes {
			return fmt.Errorf("byte %d: the pickle would need more than %d MB to unpickle; not a state dict", at,
				maxUnpickleBytes>>20)
		}
		if code == opStop {
			return nil
		}
	}
	return fmt.Errorf("the pickle ends after %d bytes without STOP (truncated)", len(p))
}

// line returns the text before the first newline of p and the bytes it takes with the newline,
// or -1 when p has no newline.
func line(p []byte) (string, int) {
	n := bytes.IndexByte(p, '\n')
	if n < 0 {
		return "", -1
	}
	return string(p[:n]), n + 1
}

func allowedGlobal(module, name string) bool {
	switch {
	case module == "collections" && name == "OrderedDict",
		module == "torch._utils" && (name == "_rebuild_tensor_v2" || name == "_rebuild_parameter"):
		return true
	}
	_, ok := storageClasses[name]
	return ok && module == "torch"
}

func refusedGlobal(module, name string, at int) error {
	return fmt.Errorf("the pickle names the Python global %s.%s (byte %d), which a weights file does not need; "+
		"refused (a state dict names only %s; a whole pickled model or other objects must be saved as "+
		"model.state_dict())", printable(module), printable(name), at, strings.Join(Allowed(), ", "))
}

// printable quotes s when it holds anything but the characters of a Python dotted name.
func printable(s string) string {
	for _, r := range s {
		if !(r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return fmt.Sprintf("%q", s)
		}
	}
	return s
}

// findClass is the unpickler's only source of globals (scan has checked them already).
func findClass(module, name string) (any, error) {
	switch {
	case module == "torch._utils" && name == "_rebuild_tensor_v2":
		return rebuildTensorV2{}, nil
	case module == "torch._utils" && name == "_rebuild_parameter":
		return rebuildParameter{}, nil
	}
	if dt, ok := storageClasses[name]; ok && module == "torch" {
		return &storageClass{name: name, dtype: dt}, nil
	}
	return nil, refusedGlobal(module, name, -1)
}

// storageClass is the value of a torch.<Name>Storage global. It is not callable.
type storageClass struct {
	name  string
	dtype dtype
}

// storageRef is a storage the pickle refers to by a persistent id; its bytes are read later,
// when a tensor that uses it is made.
type storageRef struct {
	key   string
	class *storageClass
	numel int
}

// view is a tensor as _rebuild_tensor_v2 describes it: elements of a storage from an offset,
// with a size and a stride per dimension (in elements).
type view struct {
	storage      *storageRef
	offset       int
	size, stride []int
}

// rebuildTensorV2 is torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
// requires_grad, backward_hooks[, metadata]).
type rebuildTensorV2 struct{}

func (rebuildTensorV2) Call(args ...any) (any, error) {
	const fn = "torch._utils._rebuild_tensor_v2"
	if len(args) != 6 && len(args) != 7 {
		return nil, fmt.Errorf("%s called with %d arguments; want 6 or 7", fn, len(args))
	}
	st, ok := args[0].(*storageRef)
	if !ok {
		return nil, fmt.Errorf("%s: storage argument is %s, not a storage", fn, pyType(args[0]))
	}
	off, ok := args[1].(int)
	if !ok || off < 0 {
		return nil, fmt.Errorf("%s: storage offset %s is not a non-negative int", fn, describe(args[1]))
	}
	size, err := ints(args[2])
	if err != nil {
		return nil, fmt.Errorf("%s: size %w", fn, err)
	}
	stride, err := ints(args[3])
	if err != nil {
		return nil, fmt.Errorf("%s: stride %w", fn, err)
	}
	if len(size) != len(stride) {
		return nil, fmt.Errorf("%s: size %v and stride %v differ in length", fn, size, stride)
	}
	if _, ok := args[4].(bool); !ok {
		return nil, fmt.Errorf("%s: requires_grad is %s, not a bool", fn, pyType(args[4]))
	}
	if !empty(args[5]) {
		return nil, fmt.Errorf("%s: backward hooks are %s; a saved state dict has none", fn, describe(args[5]))
	}
	if len(args) == 7 && !empty(args[6]) {
		return nil, fmt.Errorf("%s: tensor metadata %s is not supported", fn, describe(args[6]))
	}
	return &view{storage: st, offset: off, size: size, stride: stride}, nil
}

// rebuildParameter is torch._utils._rebuild_parameter(data, requires_grad, backward_hooks).
type rebuildParameter struct{}

func (rebuildParameter) Call(args ...any) (any, error) {
	const fn = "torch._utils._rebuild_parameter"
	if len(args) != 3 {
		return nil, fmt.Errorf("%s called with %d arguments; want 3", fn, len(args))
	}
	v, ok := args[0].(*view)
	if !ok {
		return nil, fmt.Errorf("%s: data is %s, not a tensor", fn, pyType(args[0]))
	}
	if _, ok := args[1].(bool); !ok {
		return nil, fmt.Errorf("%s: requires_grad is %s, not a bool", fn, pyType(args[1]))
	}
	if !empty(args[2]) {
		return nil, fmt.Errorf("%s: backward hooks are %s; a saved state dict has none", fn, describe(args[2]))
	}
	return v, nil
}

// ints reads a tuple of non-negative ints.
func ints(v any) ([]int, error) {
	t, ok := v.(*types.Tuple)
	if !ok {
		return nil, fmt.Errorf("is %s, not a tuple", pyType(v))
	}
	out := make([]int, len(*t))
	for i, x := range *t {
		n, ok := x.(int)
		if !ok || n < 0 {
			return nil, fmt.Errorf("%s: element %d is %s, not a non-negative int", describe(v), i, describe(x))
		}
		out[i] = n
	}
	return out, nil
}

// empty reports whether v is None or an empty dict.
func empty(v any) bool {
	switch d := v.(type) {
	case nil:
		return true
	case *types.OrderedDict:
		return d.Len() == 0
	case *types.Dict:
		return d.Len() == 0
	}
	return false
}

// persistentLoad resolves the persistent ids torch.save writes for storages:
// ('storage', torch.<Name>Storage, key, location, numel), the bytes in <archive>/data/<key>.
func (a *archive) persistentLoad(refs map[string]*storageRef) func(any) (any, error) {
	return func(id any) (any, error) {
		t, ok := id.(*types.Tuple)
		if !ok || t.Len() != 5 {
			return nil, fmt.Errorf("persistent id %s is not ('storage', class, key, location, numel)", describe(id))
		}
		kind, _ := t.Get(0).(string)
		class, okClass := t.Get(1).(*storageClass)
		key, okKey := t.Get(2).(string)
		_, okLoc := t.Get(3).(string)
		numel, okNumel := t.Get(4).(int)
		if kind != "storage" || !okClass || !okKey || !okLoc || !okNumel || numel < 0 {
			return nil, fmt.Errorf("persistent id %s is not ('storage', class, key, location, numel)", describe(id))
		}
		if r := refs[key]; r != nil {
			if r.class.name != class.name || r.numel != numel {
				return nil, fmt.Errorf("storage %q is named twice, as %d %s and as %d %s elements", key, r.numel,
					r.class.name, numel, class.name)
			}
			return r, nil
		}
		r := &storageRef{key: key, class: class, numel: numel}
		refs[key] = r
		return r, nil
	}
}

// unpickle checks data.pkl with scan and runs gopickle's unpickler over it.
func (a *archive) unpickle() (root any, err error) {
	name := a.prefix + "data.pkl"
	p, err := a.record("data.pkl", maxPickle)
	if err != nil {
		return nil, err
	}
	if err := scan(p); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("%s: malformed pickle (%s)", name, oneLine(fmt.Sprint(r)))
		}
	}()
	u := pickle.NewUnpickler(bytes.NewReader(p))
	u.FindClass = findClass
	u.PersistentLoad = a.persistentLoad(map[string]*storageRef{})
	root, err = u.Load()
	if err != nil {
		return nil, fmt.Errorf("%s: %s", name, oneLine(err.Error()))
	}
	return root, nil
}

// oneLine keeps an error of the unpickler (which may print a whole Go value) on one short line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 400 {
		s = s[:400] + "..."
	}
	return s
}

type item struct {
	name string
	view *view
}

// stateDictItems reads the unpickled state dict: a dict or OrderedDict of name -> tensor.
func stateDictItems(root any) ([]item, error) {
	var keys, values []any
	switch d := root.(type) {
	case *types.OrderedDict:
		for e := d.List.Front(); e != nil; e = e.Next() {
			entry := e.Value.(*types.OrderedDictEntry)
			keys, values = append(keys, entry.Key), append(values, entry.Value)
		}
	case *types.Dict:
		for _, e := range *d {
			keys, values = append(keys, e.Key), append(values, e.Value)
		}
	default:
		return nil, fmt.Errorf("the pickle holds %s, not a state dict (a dict of tensors); save model.state_dict()", pyType(root))
	}
	seen := make(map[string]bool, len(keys))
	items := make([]item, 0, len(keys))
	for i, k := range keys {
		name, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("key %d of the state dict is %s, not a name", i, describe(k))
		}
		if seen[name] {
			return nil, fmt.Errorf("the state dict holds %q twice", name)
		}
		seen[name] = true
		v, ok := values[i].(*view)
		if !ok {
			return nil, fmt.Errorf("state dict entry %q is %s, not a tensor (a checkpoint that holds the state dict "+
				"under a key? save model.state_dict() itself)", name, pyType(values[i]))
		}
		items = append(items, item{name, v})
	}
	return items, nil
}

// pyType names the Python type of an unpickled value.
func pyType(v any) string {
	switch v.(type) {
	case nil:
		return "None"
	case bool:
		return "a bool"
	case int, *big.Int:
		return "an int"
	case float64:
		return "a float"
	case string:
		return "a str"
	case *types.Tuple:
		return "a tuple"
	case *types.List:
		return "a list"
	case *types.Dict:
		return "a dict"
	case *types.OrderedDict:
		return "an OrderedDict"
	case *view:
		return "a tensor"
	case *storageRef:
		return "a storage"
	case *storageClass:
		return "a storage class"
	case rebuildTensorV2, rebuildParameter, *types.OrderedDictClass:
		return "a function"
	}
	return fmt.Sprintf("a %T", v)
}

// describe shows a small value, or its type.
func describe(v any) string { return describeDepth(v, 2) }

func describeDepth(v any, depth int) string {
	switch x := v.(type) {
	case int, bool, float64:
		return fmt.Sprint(x)
	case string:
		if len(x) > 40 {
			x = x[:40] + "..."
		}
		return fmt.Sprintf("%q", x)
	case *types.Tuple:
		if x.Len() <= 8 && depth > 0 {
			parts := make([]string, x.Len())
			for i, e := range *x {
				parts[i] = describeDepth(e, depth-1)
			}
			return "(" + strings.Join(parts, ", ") + ")"
		}
		return fmt.Sprintf("a tuple of %d", x.Len())
	}
	return pyType(v)
}
