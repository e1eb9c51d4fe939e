//go:build armnn

package armnn

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

// testBackends: what armnn-cpu asks for where CpuAcc is installed (arm64
// with libarmnn-cpuacc-backend22, also under qemu), else CpuRef.
func testBackends(t *testing.T) []string {
	if slices.Contains(Registered(), "CpuAcc") {
		b, _ := Backends(AccelArmNNCPU)
		return b
	}
	if !slices.Contains(Registered(), "CpuRef") {
		t.Fatalf("no Arm NN CPU backend installed (registered: %v): apt-get install libarmnn-cpuref-backend22", Registered())
	}
	return []string{"CpuRef"}
}

type rnd struct{ r *rand.Rand }

func (w rnd) normal(n int, std float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(w.r.NormFloat64() * std)
	}
	return v
}

func (w rnd) conv(out, k, in, stride int, act resnet.Activation) build.ConvSpec {
	return build.ConvSpec{Out: out, KH: k, KW: k, StrideH: stride, StrideW: stride, Padding: resnet.PaddingSame, Act: act,
		Weights: w.normal(out*k*k*in, math.Sqrt(2/float64(k*k*in))), Bias: w.normal(out, 0.1)}
}

// chain is a miniature classifier: conv -> depthwise -> add -> mean ->
// fully connected -> softmax, on a 16x16x3 image.
func chain(act resnet.Activation) func(w rnd) (*resnet.Model, error) {
	return func(w rnd) (*resnet.Model, error) {
		g := build.New("armnn-chain")
		x := g.Input("x", 1, 16, 16, 3)
		c := g.Conv2D("conv", x, w.conv(8, 3, 3, 2, act))
		d := g.DepthwiseConv2D("dw", c, build.DepthwiseSpec{KH: 3, KW: 3, Mult: 1, Padding: resnet.PaddingSame, Act: resnet.ActRelu,
			Weights: w.normal(9*8, math.Sqrt(2.0/9)), Bias: w.normal(8, 0.1)})
		a := g.Add("add", c, d, resnet.ActNone)
		m := g.SpatialMean("mean", a, false)
		f := g.FullyConnected("fc", m, 10, w.normal(80, math.Sqrt(1.0/8)), w.normal(10, 0.1), resnet.ActNone)
		g.Output(g.Softmax("softmax", f, 1))
		return g.Finish()
	}
}

func resnet20(w rnd) (*resnet.Model, error) {
	return build.ResNet(build.Config{Depth: 20, Input: [3]int{32, 32, 3}, Classes: 10, Weights: build.RandomWeights(2)})
}

func int8Model(f func(rnd) (*resnet.Model, error), io quant.IO, seed uint64) ([]byte, *resnet.Model, error) {
	w := rnd{rand.New(rand.NewPCG(seed, 1))}
	m, err := f(w)
	if err != nil {
		return nil, nil, err
	}
	if io >= 0 {
		samples := make([]quant.Sample, 4)
		in := m.Tensors[m.Inputs[0]]
		for s := range samples {
			samples[s] = quant.Sample{w.normal(in.NumElements(), 1)}
		}
		if m, err = quant.Model(m, samples, quant.Options{IO: io}); err != nil {
			return nil, nil, err
		}
	}
	b, err := m.Marshal()
	if err != nil {
		return nil, nil, err
	}
	back, err := resnet.Load(b)
	return b, back, err
}

// ours runs our interpreter on float input x (quantizing it for an int8
// input the way the agent does) and returns dequantized output 0.
func ours(m *resnet.Model, x []float32) ([]float32, error) {
	it, err := interp.New(m, interp.Options{})
	if err != nil {
		return nil, err
	}
	in := it.Input(0)
	if err := in.SetFloat32(x); err != nil {
		return nil, err
	}
	if err := it.Invoke(); err != nil {
		return nil, err
	}
	out := it.Output(0)
	if f := out.Float32(); f != nil {
		return append([]float32(nil), f...), nil
	}
	s := make([]float32, out.NumElements())
	for i, v := range out.Int8() {
		s[i] = out.Quant.Scale[0] * float32(int64(v)-out.Quant.ZeroPoint[0])
	}
	return s, nil
}

// TestArmNNSessionsAgreeWithOurRuntime loads small models into Arm NN
// through Load and Session (the path the agent takes), runs three random
// inputs through both, and holds every score within NOTES.md's tolerance.
// It logs the table reported in the issue.
func TestArmNNSessionsAgreeWithOurRuntime(t *testing.T) {
	backends := testBackends(t)
	cases := []struct {
		name string
		f    func(rnd) (*resnet.Model, error)
		io   quant.IO // -1: float model
	}{
		{"chain_int8_floatio", chain(resnet.ActRelu), quant.FloatIO},
		{"chain_int8_int8io", chain(resnet.ActRelu), quant.Int8IO},
		{"chain_float", chain(resnet.ActRelu), -1},
		{"resnet20_cifar_int8_floatio", resnet20, quant.FloatIO},
		{"resnet20_cifar_float", resnet20, -1},
	}
	var rows []string
	for i, c := range cases {
		data, m, err := int8Model(c.f, c.io, uint64(i))
		if err != nil {
			t.Fatalf("%s: building: %v", c.name, err)
		}
		start := time.Now()
		n, err := Load(data, Options{Backends: backends})
		if err != nil {
			t.Errorf("%s: Load on %v: %v", c.name, backends, err)
			continue
		}
		loadMs := time.Since(start).Milliseconds()
		s := n.NewSession()
		r := rand.New(rand.NewPCG(uint64(i), 5))
		worst, limit, unit := 0.0, 0.0, ""
		var runMs int64
		for range 3 {
			x := s.Input()
			for k := range x {
				x[k] = float32(r.NormFloat64())
			}
			want, err := ours(m, x)
			if err != nil {
				t.Fatalf("%s: our runtime: %v", c.name, err)
			}
			t0 := time.Now()
			got, err := s.Run()
			runMs += time.Since(t0).Milliseconds()
			if err != nil {
				t.Fatalf("%s: Arm NN run: %v", c.name, err)
			}
			d, lim, u, err := Agreement(m, want, got)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if d > lim {
				t.Errorf("%s: Arm NN is %.4g %s from our runtime, limit %.4g\nours  %v\nArmNN %v", c.name, d, u, lim, want, got)
			}
			worst, limit, unit = math.Max(worst, d), lim, u
		}
		n.Close()
		rows = append(rows, fmt.Sprintf("| %-28s | %-8s | %8.4g %s | %7.3g | %6d | %6d |", c.name, n.Backends(), worst, unit, limit, loadMs, runMs/3))
	}
	t.Logf("Arm NN %s (%v) against our runtime, 3 random inputs each:\n| model | backend | max diff | limit | load ms | run ms |\n%s",
		Version(), backends, strings.Join(rows, "\n"))
}

// TestModelsArmNNCannotRunAreRefusedNotFatal: a model Arm NN 20.08 rejects
// with an exception, one on which it fails an assert() (caught by the
// probe, in a child process), and a backend that is not there all give a
// *RefusedError, so that the agent falls back to its own kernels.
func TestModelsArmNNCannotRunAreRefusedNotFatal(t *testing.T) {
	backends := testBackends(t)
	reluN1 := func(w rnd) (*resnet.Model, error) {
		g := build.New("relu-n1")
		g.Output(g.Conv2D("c", g.Input("x", 1, 6, 6, 3), w.conv(4, 3, 3, 1, resnet.ActReluN1To1)))
		return g.Finish()
	}
	fc := func(w rnd) (*resnet.Model, error) {
		g := build.New("fc")
		g.Output(g.FullyConnected("fc", g.Input("x", 1, 12), 5, w.normal(60, 0.3), w.normal(5, 0.1), resnet.ActNone))
		return g.Finish()
	}
	reluData, _, err := int8Model(reluN1, quant.FloatIO, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, fcModel, err := int8Model(fc, quant.FloatIO, 2)
	if err != nil {
		t.Fatal(err)
	}
	// Per-axis FULLY_CONNECTED weights (one equal scale per row): valid
	// TFLite, but Arm NN 20.08's optimizer asserts on it.
	for _, op := range fcModel.Operators {
		if op.Op != resnet.OpFullyConnected {
			continue
		}
		for _, ti := range op.Inputs[1:] {
			tn := &fcModel.Tensors[ti]
			q := &resnet.Quant{Dim: 0}
			for range tn.Shape[0] {
				q.Scale = append(q.Scale, tn.Quant.Scale[0])
				q.ZeroPoint = append(q.ZeroPoint, tn.Quant.ZeroPoint[0])
			}
			tn.Quant = q
		}
	}
	fcData, err := fcModel.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	goodData, _, err := int8Model(chain(resnet.ActRelu), quant.FloatIO, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		data     []byte
		backends []string
		aborted  bool
		want     string
	}{
		{"RELU_N1_TO_1 fused into a conv", reluData, backends, false, "RELU_N1_TO_1"},
		{"per-axis FULLY_CONNECTED weights", fcData, backends, true, "Assertion"},
		{"a backend that is not installed", goodData, []string{"NoSuchBackend"}, false, "backend NoSuchBackend is not installed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := Load(tc.data, Options{Backends: tc.backends})
			var r *RefusedError
			if !errors.As(err, &r) {
				t.Fatalf("Load = %v, %v; want a *RefusedError", n, err)
			}
			if r.Aborted != tc.aborted || !strings.Contains(r.Msg, tc.want) {
				t.Fatalf("refusal %+v: want Aborted=%v and a message containing %q", r, tc.aborted, tc.want)
			}
			t.Logf("%v", err)
		})
	}
}

// TestSessionsShareANetAcrossGoroutines: cameras share one Net; concurrent
// runs must serialize and each get its own input's result.
func TestSessionsShareANetAcrossGoroutines(t *testing.T) {
	data, m, err := int8Model(chain(resnet.ActRelu), quant.FloatIO, 4)
	if err != nil {
		t.Fatal(err)
	}
	n, err := Load(data, Options{Backends: testBackends(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := n.NewSession()
			for k := range s.Input() {
				s.Input()[k] = float32(math.Sin(float64(k*(g+1)) / 7))
			}
			want, err := ours(m, s.Input())
			if err != nil {
				errs <- err
				return
			}
			for range 5 {
				got, err := s.Run()
				if err != nil {
					errs <- err
					return
				}
				if d, lim, u, _ := Agreement(m, want, got); d > lim {
					errs <- fmt.Errorf("goroutine %d: %.3g %s from ours (limit %.3g)", g, d, u, lim)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	n.Close()
	if _, err := n.NewSession().Run(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("Run after Close = %v, want a 'closed' error", err)
	}
}
