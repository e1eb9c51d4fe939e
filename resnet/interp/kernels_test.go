package interp

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/fast"
)

// kernelChoices is every Options.Kernels value that runs on this CPU, the
// reference first.
func kernelChoices() []string {
	ks := []string{"ref", "auto"}
	for _, isa := range fast.Available() {
		ks = append(ks, isa.String())
	}
	return ks
}

// int8Models are small int8 graphs that between them use every fast kernel
// (CONV_2D of several geometries, FULLY_CONNECTED, ADD) next to the
// reference-only ones.
func int8Models(t *testing.T) map[string]*resnet.Model {
	r := rand.New(rand.NewPCG(51, 52))
	cal := calibration{"input": {-2, 2}, "c1": {0, 3}, "d1": {0, 3}, "c2": {-3, 3}, "a1": {0, 2}, "g1": {0, 1}, "f1": {-1, 1}}
	return map[string]*resnet.Model{
		"chain":          chainModel(newChainWeights(r), cal),
		"conv3x3":        convModel(r, 11, 13, 5, 70, &resnet.Conv2DOptions{Padding: resnet.PaddingSame, StrideW: 1, StrideH: 1, Activation: resnet.ActRelu}),
		"conv3x3stride2": convModel(r, 9, 8, 64, 64, &resnet.Conv2DOptions{Padding: resnet.PaddingSame, StrideW: 2, StrideH: 2}),
		"conv3x3dilated": convModel(r, 12, 10, 3, 9, &resnet.Conv2DOptions{Padding: resnet.PaddingSame, StrideW: 1, StrideH: 1, DilationW: 2, DilationH: 3}),
	}
}

// runAll fills every graph input from a fixed seed, invokes, and returns
// every tensor's bytes (KeepAll keeps the intermediates).
func runAll(t *testing.T, m *resnet.Model, opts Options) [][]byte {
	t.Helper()
	opts.KeepAll = true
	it, err := New(m, opts)
	if err != nil {
		t.Fatalf("New(%+v): %v", opts, err)
	}
	defer it.Close()
	r := rand.New(rand.NewPCG(7, 8))
	for k := range it.NumInputs() {
		in := it.Input(k)
		if f := in.Float32(); f != nil {
			for i := range f {
				f[i] = float32(r.NormFloat64())
			}
		} else {
			copy(in.Int8(), randInt8s(r, len(in.Int8())))
		}
	}
	for range 2 { // twice: a second run must not depend on the first's scratch
		if err := it.Invoke(); err != nil {
			t.Fatal(err)
		}
	}
	out := make([][]byte, it.NumTensors())
	for i := range out {
		out[i] = slices.Clone(it.TensorByIndex(i).Bytes())
	}
	return out
}

func TestEveryKernelChoiceGivesTheReferenceBytesInEveryTensor(t *testing.T) {
	for name, m := range int8Models(t) {
		want := runAll(t, m, Options{Kernels: "ref", Threads: 1})
		for _, k := range kernelChoices() {
			for _, threads := range []int{1, 2, 3} {
				t.Run(fmt.Sprintf("%s/kernels=%s/threads=%d", name, k, threads), func(t *testing.T) {
					got := runAll(t, m, Options{Kernels: k, Threads: threads})
					for i := range want {
						if !slices.Equal(got[i], want[i]) {
							t.Errorf("tensor %d %q differs from the reference kernels' result", i, m.Tensors[i].Name)
						}
					}
				})
			}
		}
	}
}

func TestInvokeDoesNotAllocateOnAnyKernelPathOrThreadCount(t *testing.T) {
	for name, m := range int8Models(t) {
		for _, k := range kernelChoices() {
			for _, threads := range []int{1, 2} {
				it, err := New(m, Options{Kernels: k, Threads: threads})
				if err != nil {
					t.Fatal(err)
				}
				if n := testing.AllocsPerRun(20, func() { _ = it.Invoke() }); n != 0 {
					t.Errorf("%s with kernels %q and %d threads: Invoke allocates %v times per run, want 0", name, k, threads, n)
				}
				it.Close()
			}
		}
	}
}

func TestNewRejectsUnknownKernelChoices(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	m := convModel(r, 4, 4, 3, 4, &resnet.Conv2DOptions{Padding: resnet.PaddingSame, StrideW: 1, StrideH: 1})
	_, err := New(m, Options{Kernels: "sse9"})
	if err == nil || !strings.Contains(err.Error(), `"sse9"`) || !strings.Contains(err.Error(), "avx512vnni") {
		t.Errorf("New with Kernels \"sse9\": error %v, want one naming the bad value and the known families", err)
	}
	for _, isa := range []fast.ISA{fast.AVX512VNNI, fast.AVXVNNI, fast.AVX2, fast.NEON, fast.NEONDot} {
		if isa.Supported() {
			continue
		}
		if _, err := New(m, Options{Kernels: isa.String()}); err == nil || !strings.Contains(err.Error(), "cannot run") {
			t.Errorf("New with Kernels %q on a CPU without it: error %v, want a refusal", isa, err)
		}
	}
}

func TestNewBoundsThreads(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 3))
	m := convModel(r, 4, 4, 3, 4, &resnet.Conv2DOptions{Padding: resnet.PaddingSame, StrideW: 1, StrideH: 1})
	for _, n := range []int{-1, MaxThreads + 1, 100000} {
		_, err := New(m, Options{Threads: n})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprint(n)) || !strings.Contains(err.Error(), fmt.Sprint(MaxThreads)) {
			t.Errorf("New with Threads %d: error %v; want one naming %d and the bound %d", n, err, n, MaxThreads)
		}
	}
	it, err := New(m, Options{Threads: MaxThreads})
	if err != nil {
		t.Fatalf("New with Threads %d (the bound): %v", MaxThreads, err)
	}
	defer it.Close()
	if err := it.Invoke(); err != nil {
		t.Errorf("Invoke with %d threads: %v", MaxThreads, err)
	}
}

func TestCloseStopsTheInterpreterButNotItsClones(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	m := convModel(r, 6, 6, 3, 4, &resnet.Conv2DOptions{Padding: resnet.PaddingSame, StrideW: 1, StrideH: 1})
	it, err := New(m, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	cl := it.Clone()
	it.Close()
	it.Close() // twice is harmless
	if err := it.Invoke(); err == nil {
		t.Error("Invoke after Close succeeded, want an error")
	}
	if err := cl.Invoke(); err != nil {
		t.Errorf("the clone of a closed interpreter fails: %v", err)
	}
	cl.Close()
}
