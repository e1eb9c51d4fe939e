package interp_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

// A calibrated int8 ResNet (bottleneck blocks, 7x7 stem, max pool, stride-2
// shortcuts, adds, mean, classifier, softmax) gives the same bytes in every
// tensor on every kernel path as on the reference kernels.
func TestInt8ResNetIsBitExactOnEveryKernelPath(t *testing.T) {
	m, sample := int8ResNet(t, 50, [3]int{40, 40, 3}, 5, rand.New(rand.NewPCG(9, 9)))
	input := sample()
	run := func(opts interp.Options) [][]byte {
		opts.KeepAll = true
		it, err := interp.New(m, opts)
		if err != nil {
			t.Fatalf("New(%+v): %v", opts, err)
		}
		defer it.Close()
		copy(it.Input(0).Float32(), input)
		if err := it.Invoke(); err != nil {
			t.Fatal(err)
		}
		out := make([][]byte, it.NumTensors())
		for i := range out {
			out[i] = slices.Clone(it.TensorByIndex(i).Bytes())
		}
		return out
	}
	reference := run(interp.Options{Kernels: "ref", Threads: 1})
	for _, arith := range []string{interp.ArithmeticReference, interp.ArithmeticXNNPACK} {
		want := run(interp.Options{Kernels: "ref", Threads: 1, Arithmetic: arith})
		if arith == interp.ArithmeticXNNPACK && slices.EqualFunc(want, reference, slices.Equal) {
			t.Errorf("the xnnpack arithmetic gives exactly the reference bytes on every tensor: it is not in effect")
		}
		for _, k := range []string{"go", "auto", "avx512vnni", "avxvnni", "avx2", "neondot", "neon"} {
			for _, threads := range []int{1, 2} {
				t.Run(fmt.Sprintf("arithmetic=%s/kernels=%s/threads=%d", arith, k, threads), func(t *testing.T) {
					if _, err := interp.New(m, interp.Options{Kernels: k}); err != nil {
						t.Skipf("this CPU cannot run kernels %q: %v", k, err)
					}
					got := run(interp.Options{Kernels: k, Threads: threads, Arithmetic: arith})
					diffs := 0
					for i := range want {
						if !slices.Equal(got[i], want[i]) && diffs < 5 {
							diffs++
							t.Errorf("tensor %d %q differs from the reference kernels' result", i, m.Tensors[i].Name)
						}
					}
				})
			}
		}
	}
	if _, err := interp.New(m, interp.Options{Arithmetic: "tflite"}); err == nil {
		t.Error("Options.Arithmetic \"tflite\" accepted; want an error naming the known values")
	}
}

var _ = resnet.Int8
