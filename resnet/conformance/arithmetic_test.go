package conformance

import (
	"context"
	"fmt"
	"github.com/shortcut-edge/shortcut/internal/compare"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shortcut-edge/shortcut/internal/npy"
	"github.com/shortcut-edge/shortcut/internal/witness"
	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

// arithMode is one way of running our interpreter against the witness.
type arithMode struct {
	name string
	opts interp.Options
}

var arithModes = []arithMode{
	{"reference", interp.Options{Threads: 1, Kernels: "ref"}},
	{"xnnpack/ref", interp.Options{Threads: 1, Kernels: "ref", Arithmetic: interp.ArithmeticXNNPACK}},
	{"xnnpack/fast", interp.Options{Threads: 1, Arithmetic: interp.ArithmeticXNNPACK}},
}

// arithCase is an int8 case with how many random inputs to run and whether
// the "xnnpack" arithmetic must reproduce the witness byte for byte.
type arithCase struct {
	tcase
	reps  int
	exact bool
}

func arithCases() []arithCase {
	var cs []arithCase
	for _, c := range opCases() {
		for _, io := range []quant.IO{quant.FloatIO, quant.Int8IO} {
			q := c
			q.int8, q.io = true, io
			q.name = map[quant.IO]string{quant.FloatIO: "int8-floatio/", quant.Int8IO: "int8-int8io/"}[io] + c.name
			cs = append(cs, arithCase{tcase: q, reps: 2, exact: true})
		}
	}
	resnet20 := func() (*resnet.Model, error) {
		return build.ResNet(build.Config{Depth: 20, Input: [3]int{32, 32, 3}, Classes: 10, Weights: build.RandomWeights(20)})
	}
	resnet18 := func() (*resnet.Model, error) {
		return build.ResNet(build.Config{Depth: 18, Input: [3]int{64, 64, 3}, Classes: 100, Weights: build.RandomWeights(18)})
	}
	cs = append(cs,
		arithCase{tcase: tcase{name: "int8-floatio/mobilenet_chain_33x33", build: mobileNetChain, int8: true}, reps: 8, exact: true},
		arithCase{tcase: tcase{name: "int8-floatio/cifar_resnet20_32x32", int8: true, model: resnet20}, reps: 8, exact: true},
		arithCase{tcase: tcase{name: "int8-int8io/cifar_resnet20_32x32", int8: true, io: quant.Int8IO, model: resnet20}, reps: 8, exact: true},
		arithCase{tcase: tcase{name: "int8-floatio/resnet18_64x64", int8: true, model: resnet18, calib: 2}, reps: 6, exact: true},
	)
	return cs
}

// modeStats accumulates the distance of one mode's outputs to the witness.
type modeStats struct {
	maxLSB      float64
	diff, total int
}

func (s modeStats) String() string {
	return fmt.Sprintf("%4.3g LSB %7.3f%%", s.maxLSB, 100*float64(s.diff)/float64(max(s.total, 1)))
}

// TestArithmeticModesAgainstTFLite runs every int8 case in both arithmetic
// modes (and the "xnnpack" one on the fast kernels too) against LiteRT.js /
// tfjs-tflite and tabulates, per mode, the largest distance in LSB and the
// share of output elements that differ at all. It requires the fast kernels
// to agree with the reference kernels in "xnnpack" mode, and "xnnpack" to
// be byte-exact where the case says so.
func TestArithmeticModesAgainstTFLite(t *testing.T) {
	if err := witness.Available(); err != nil {
		t.Fatalf("the real TFLite witness is not installed: %v", err)
	}
	dir := t.TempDir()
	cases := arithCases()
	type run struct {
		c      int
		m      *resnet.Model
		inputs [][]any
		outDir string
	}
	var runs []run
	var jobs []witness.Job
	for i, c := range cases {
		p, err := prepare(t, dir, 500+i, c.tcase)
		if err != nil {
			t.Errorf("%s: preparing: %v", c.name, err)
			continue
		}
		r := rand.New(rand.NewPCG(uint64(i), 1234))
		for rep := range c.reps {
			ru := run{c: i, m: p.m, outDir: filepath.Join(dir, fmt.Sprintf("a%03d_%d.out", i, rep))}
			if err := os.Mkdir(ru.outDir, 0o755); err != nil {
				t.Fatal(err)
			}
			job := witness.Job{Model: p.path, OutputDir: ru.outDir, Engine: witness.LiteRT, Threads: 1}
			if c.io == quant.Int8IO {
				job.Engine = witness.TFJS
			}
			for k, ti := range p.m.Inputs {
				data := randomInput(r, &p.m.Tensors[ti])
				path := filepath.Join(dir, fmt.Sprintf("a%03d_%d.in%d.npy", i, rep, k))
				if err := npy.Write(path, p.m.Tensors[ti].Shape, data); err != nil {
					t.Fatal(err)
				}
				job.Inputs = append(job.Inputs, path)
				ru.inputs = append(ru.inputs, []any{data})
			}
			runs = append(runs, ru)
			jobs = append(jobs, job)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	results, err := witness.Run(ctx, jobs)
	if err != nil {
		t.Fatalf("running the witness: %v", err)
	}
	stats := make([][]modeStats, len(cases))
	for i := range stats {
		stats[i] = make([]modeStats, len(arithModes))
	}
	interps := map[*resnet.Model][]*interp.Interpreter{}
	for ri, ru := range runs {
		c := cases[ru.c]
		if results[ri].Err != nil {
			t.Errorf("%s: TFLite (%s) failed: %v", c.name, jobs[ri].Engine, results[ri].Err)
			continue
		}
		its := interps[ru.m]
		if its == nil {
			for _, mode := range arithModes {
				it, err := interp.New(ru.m, mode.opts)
				if err != nil {
					t.Fatalf("%s: interp.New with %+v: %v", c.name, mode.opts, err)
				}
				its = append(its, it)
			}
			interps[ru.m] = its
		}
		outs := make([][]any, len(arithModes))
		for mi, it := range its {
			for k, in := range ru.inputs {
				switch v := in[0].(type) {
				case []float32:
					copy(it.Input(k).Float32(), v)
				case []int8:
					copy(it.Input(k).Int8(), v)
				}
			}
			if err := it.Invoke(); err != nil {
				t.Fatalf("%s: Invoke (%s): %v", c.name, arithModes[mi].name, err)
			}
			for k, ti := range ru.m.Outputs {
				o := it.Output(k)
				var data any
				if o.Type == resnet.Int8 {
					data = append([]int8(nil), o.Int8()...)
				} else {
					data = append([]float32(nil), o.Float32()...)
				}
				outs[mi] = append(outs[mi], data)
				_, theirs, err := npy.Read(filepath.Join(ru.outDir, fmt.Sprintf("output_%d.npy", k)))
				if err != nil {
					t.Fatalf("%s: reading TFLite output %d: %v", c.name, k, err)
				}
				a, b := compare.Floats(data), compare.Floats(theirs)
				scale := 1.0
				if q := ru.m.QuantBehind(ti); q != nil && o.Type != resnet.Int8 {
					scale = float64(q.Scale[0])
				}
				st := &stats[ru.c][mi]
				for e := range a {
					d := math.Abs(a[e]-b[e]) / scale
					st.maxLSB = math.Max(st.maxLSB, d)
					if d > 1e-3 {
						st.diff++
					}
					st.total++
				}
			}
		}
		// The fast kernels must give the reference kernels' bytes in
		// "xnnpack" mode as they do in "reference" mode.
		for k := range outs[1] {
			if d, _, _, _ := diff(outs[1][k], outs[2][k], nil); d != 0 {
				t.Errorf("%s output %d: xnnpack mode on the fast kernels differs from the reference kernels by %g", c.name, k, d)
			}
		}
	}
	var table []string
	for i, c := range cases {
		row := fmt.Sprintf("| %-48s |", c.name)
		for _, st := range stats[i] {
			row += " " + st.String() + " |"
		}
		table = append(table, row)
		if c.exact && stats[i][1].diff != 0 {
			t.Errorf("%s: the xnnpack arithmetic differs from TFLite on %d of %d elements (max %g LSB); want none", c.name, stats[i][1].diff, stats[i][1].total, stats[i][1].maxLSB)
		}
	}
	head := "| case |"
	for _, m := range arithModes {
		head += " " + m.name + ": max, differing |"
	}
	t.Logf("our outputs against TFLite (XNNPACK), per arithmetic:\n%s\n%s", head, strings.Join(table, "\n"))
}
