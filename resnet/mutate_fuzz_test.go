package resnet_test

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"strings"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/tflfb"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

// Structure-aware mutation: take a valid model, change exactly one field of
// its file (an option, a shape dimension, a quantization parameter, a
// tensor index in an operator, a buffer's offset or size, a vector's
// length...) and check what Load does with it. FuzzLoad feeds Load raw
// bytes, which mostly exercises the FlatBuffers verifier; these files are
// well-formed and reach Validate, the spec rules and the interpreter.
//
// A field is found by walking the object form of the file (tflfb's ModelT)
// with reflection, so every field the schema has is a mutation site
// without a list to keep up to date.

// mutationSite is one field of a model's object form.
type mutationSite struct {
	path string        // where, for failure messages: model.Subgraphs[0].Tensors[4].Shape[1]
	set  func(v int64) // changes the field, deriving the new value from v
}

// mutationSites lists every field of mt a mutation may change, in a fixed
// order.
func mutationSites(mt *tflfb.ModelT) []mutationSite {
	var out []mutationSite
	collectSites(reflect.ValueOf(mt).Elem(), "model", &out)
	return out
}

func collectSites(v reflect.Value, path string, out *[]mutationSite) {
	add := func(p string, set func(int64)) { *out = append(*out, mutationSite{p, set}) }
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return
		}
		if v.CanSet() { // an optional table: drop it
			add(path+" (drop)", func(int64) { v.Set(reflect.Zero(v.Type())) })
		}
		collectSites(v.Elem(), path, out)
	case reflect.Interface: // a union's value
		if !v.IsNil() {
			collectSites(v.Elem(), path, out)
		}
	case reflect.Struct:
		value := v.FieldByName("Value")
		union := value.IsValid() && value.Kind() == reflect.Interface
		for i := range v.NumField() {
			name := v.Type().Field(i).Name
			if union && name == "Type" {
				continue // Pack asserts the value's Go type from it
			}
			collectSites(v.Field(i), path+"."+name, out)
		}
	case reflect.Slice:
		add(path+" (length)", func(x int64) { setLength(v, x) })
		if v.Type().Elem().Kind() == reflect.Uint8 {
			// Buffer contents: one byte, not a site per byte of weights.
			add(path+" (one byte)", func(x int64) {
				if n := v.Len(); n > 0 {
					v.Index(int(uint64(x>>8) % uint64(n))).SetUint(uint64(uint8(x)))
				}
			})
			return
		}
		for i := range v.Len() {
			collectSites(v.Index(i), fmt.Sprintf("%s[%d]", path, i), out)
		}
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int:
		add(path, func(x int64) { v.SetInt(x) }) // truncated to the field's width
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint:
		add(path, func(x int64) { v.SetUint(uint64(x)) })
	case reflect.Bool:
		add(path, func(x int64) { v.SetBool(x&1 == 1) })
	case reflect.Float32, reflect.Float64:
		add(path, func(x int64) { v.SetFloat(mutateFloat(v.Float(), x)) })
	}
	// Strings (names, custom codes) change nothing Load checks.
}

// setLength cuts slice v or grows it by repeating its last element (a
// zero one when empty), to a length from 0 to len+2 picked by x.
func setLength(v reflect.Value, x int64) {
	n := int(uint64(x) % uint64(v.Len()+3))
	if n <= v.Len() {
		v.Set(v.Slice(0, n))
		return
	}
	grown := reflect.MakeSlice(v.Type(), n, n)
	reflect.Copy(grown, v)
	for i := v.Len(); i < n; i++ {
		if v.Len() > 0 {
			grown.Index(i).Set(v.Index(v.Len() - 1))
		}
	}
	v.Set(grown)
}

// mutateFloat derives a new float from x: any float32 bit pattern
// (denormals, NaN, infinities, negatives), a small relative change (a
// bias scale slightly off), an integer multiple, or a shift.
func mutateFloat(old float64, x int64) float64 {
	y := x >> 2
	switch x & 3 {
	case 0:
		return float64(math.Float32frombits(uint32(y)))
	case 1:
		return old * (1 + float64(int32(y))/(1<<24))
	case 2:
		return old * float64(int8(y))
	default:
		return old + float64(int16(y))
	}
}

func packModel(mt *tflfb.ModelT) []byte {
	b := flatbuffers.NewBuilder(1 << 16)
	b.FinishWithFileIdentifier(mt.Pack(b), []byte("TFL3"))
	return b.FinishedBytes()
}

// mutationBases are the valid models mutations start from: the test model
// (every operator and option) and the demo ResNet-8 our quantizer wrote.
func mutationBases(t testing.TB) [][]byte {
	t.Helper()
	small, err := resnet.TestModelForMutation().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	demo, err := os.ReadFile(filepath.Join("..", "configs", "demo", "fashion-resnet8-int8.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{small, demo}
}

// checkMutation changes field site%len of base to a value derived from
// value and requires Load to refuse the file with an error of its own (not
// the panic guard's) or to give a model that Marshal writes again, Load
// reads again, and the interpreter prepares and runs (or refuses) without
// panicking.
func checkMutation(t *testing.T, base []byte, site uint32, value int64) {
	mt := tflfb.GetRootAsModel(base, 0).UnPack()
	sites := mutationSites(mt)
	s := sites[int(site%uint32(len(sites)))]
	s.set(value)
	data := packModel(mt)
	what := fmt.Sprintf("%s changed with %d", s.path, value)
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("%s: panic: %v\n%s", what, r, debug.Stack())
		}
	}()
	m, err := resnet.Load(data)
	if err != nil {
		if m != nil {
			t.Fatalf("%s: Load returned a model together with error %v", what, err)
		}
		if strings.Contains(err.Error(), "internal error") {
			t.Fatalf("%s: error came from the panic guard, not from an explicit check: %v", what, err)
		}
		return
	}
	again, err := m.Marshal()
	if err != nil {
		t.Fatalf("%s: Load accepted a model that Marshal refuses: %v", what, err)
	}
	if _, err := resnet.Load(again); err != nil {
		t.Fatalf("%s: Load refuses what Marshal wrote of a model it accepted: %v", what, err)
	}
	it, err := interp.New(m, interp.Options{Threads: 1, MaxArenaBytes: 64 << 20})
	if err != nil {
		return // refused with an error: fine
	}
	defer it.Close()
	for i := range it.NumInputs() {
		in := it.Input(i)
		if f := in.Float32(); f != nil {
			for k := range f {
				f[k] = float32(k%17)/4 - 2
			}
		} else {
			b := in.Bytes()
			for k := range b {
				b[k] = byte(k * 37)
			}
		}
	}
	_ = it.Invoke() // an error is fine; a panic is not
}

// FuzzLoadMutated changes one field of a valid model per input: base picks
// the model, site the field, value its new value. Seeds run as a normal
// test; to search:
//
//	go test ./resnet -run '^$' -fuzz '^FuzzLoadMutated$' -fuzztime 60s -fuzzminimizetime 2s
//
// (Without -fuzzminimizetime the worker spends up to a minute minimizing
// each new input, and the exec count stands still meanwhile.)
//
// Crashers land in testdata/fuzz/FuzzLoadMutated and then run with every
// go test.
func FuzzLoadMutated(f *testing.F) {
	bases := mutationBases(f)
	for b := range bases {
		for _, site := range []uint32{0, 7, 101, 333, 1000, 2024} {
			for _, v := range []int64{0, -1, 2, 1 << 31, 0x0000_0001_0000_0000} {
				f.Add(uint8(b), site, v)
			}
		}
	}
	f.Fuzz(func(t *testing.T, base uint8, site uint32, value int64) {
		checkMutation(t, bases[int(base)%len(bases)], site, value)
	})
}

// TestEveryFieldOfTheTestModelMutated is the exhaustive form of
// FuzzLoadMutated for the small model: every field, a handful of values
// each (zero, -1, one more than usual, huge, a denormal and a NaN for
// floats, a slightly changed float). With -short, three values.
func TestEveryFieldOfTheTestModelMutated(t *testing.T) {
	base := mutationBases(t)[0]
	n := len(mutationSites(tflfb.GetRootAsModel(base, 0).UnPack()))
	values := []int64{
		0, -1, 2, 7, 1 << 31, math.MaxInt64,
		1 << 2, // as a float: the smallest denormal
		int64(math.Float32bits(float32(math.NaN()))) << 2,
		1 | 5<<2,    // as a float: relatively 3e-7 larger
		1 | 8000<<2, // as a float: relatively 5e-4 larger
	}
	if testing.Short() {
		values = values[:3]
	}
	for site := range n {
		for _, v := range values {
			checkMutation(t, base, uint32(site), v)
		}
	}
	t.Logf("%d fields x %d values", n, len(values))
}

// TestMutationBasesLoadUnchanged: the object-form round trip alone must
// give loadable models, or every mutation would only test a refusal.
func TestMutationBasesLoadUnchanged(t *testing.T) {
	for i, base := range mutationBases(t) {
		if _, err := resnet.Load(packModel(tflfb.GetRootAsModel(base, 0).UnPack())); err != nil {
			t.Errorf("base %d repacked: %v", i, err)
		}
	}
}
