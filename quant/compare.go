package quant

import (
	"fmt"
	"math"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

// Comparison runs a float model and its int8 version on the same inputs and
// accumulates, per activation tensor, the signal-to-quantization-noise ratio
// of the int8 values (dequantized) against the float ones. Tensors are
// matched by name: the quantizer keeps each activation's name (adding
// "/int8" where a float input or output keeps the plain name).
type Comparison struct {
	fIt, qIt *interp.Interpreter
	pairs    []pair
	samples  int
}

type pair struct {
	name          string
	op            string
	note          string
	fIdx, qIdx    int
	signal, noise float64
	elems         int64
}

// LayerSQNR is the comparison of one activation tensor over every sample
// run: SQNR = 10 log10(sum f^2 / sum (f - q)^2) in dB, +Inf when the int8
// values are exact.
type LayerSQNR struct {
	Name   string
	Op     string // the producing operator in the float model ("input" for graph inputs)
	SQNR   float64
	Signal float64 // mean f^2
	Noise  float64 // mean (f - q)^2
	// Note says when a low SQNR is by design (logits whose int8 range
	// was chosen for the scores clip their extremes).
	Note string `json:",omitempty"`
}

// LogitsNote is the LayerSQNR note of logits that only a SOFTMAX reads.
const LogitsNote = "logits: int8 range chosen for the scores, so clipped extremes count as noise here"

// NewComparison prepares both models (keeping every intermediate tensor).
// The models must have the same inputs; at least one activation name must
// match.
func NewComparison(f, q *resnet.Model, arithmetic string) (*Comparison, error) {
	if len(f.Inputs) != len(q.Inputs) {
		return nil, fmt.Errorf("quant: compare: the float model has %d inputs, the int8 one %d", len(f.Inputs), len(q.Inputs))
	}
	for k := range f.Inputs {
		a, b := f.Tensors[f.Inputs[k]].NumElements(), q.Tensors[q.Inputs[k]].NumElements()
		if a != b {
			return nil, fmt.Errorf("quant: compare: input %d has %d values in the float model, %d in the int8 one", k, a, b)
		}
	}
	byName := map[string]int{}
	for i := range q.Tensors {
		t := &q.Tensors[i]
		if t.Type == resnet.Int8 && t.Data == nil && t.Quant != nil && len(t.Quant.Scale) == 1 {
			byName[t.Name] = i
		}
	}
	c := &Comparison{}
	add := func(fi int, op string) {
		name := f.Tensors[fi].Name
		qi, ok := byName[name]
		if !ok {
			qi, ok = byName[name+"/int8"]
		}
		if ok && f.Tensors[fi].NumElements() == q.Tensors[qi].NumElements() {
			c.pairs = append(c.pairs, pair{name: name, op: op, fIdx: fi, qIdx: qi})
		}
	}
	for _, in := range f.Inputs {
		add(in, "input")
	}
	softmaxIn := map[int]bool{}
	for _, op := range f.Operators {
		if op.Op == resnet.OpSoftmax && len(op.Inputs) > 0 {
			softmaxIn[op.Inputs[0]] = true
		}
	}
	for _, op := range f.Operators {
		for _, o := range op.Outputs {
			if f.Tensors[o].Type == resnet.Float32 {
				add(o, op.Op.String())
				if n := len(c.pairs); softmaxIn[o] && n > 0 && c.pairs[n-1].fIdx == o {
					c.pairs[n-1].note = LogitsNote
				}
			}
		}
	}
	if len(c.pairs) == 0 {
		return nil, fmt.Errorf("quant: compare: no activation of the float model %q has an int8 twin of the same name in %q; was one quantized from the other?", f.Description, q.Description)
	}
	var err error
	if c.fIt, err = interp.New(f, interp.Options{KeepAll: true, Threads: 1}); err != nil {
		return nil, fmt.Errorf("quant: compare: float model: %w", err)
	}
	if c.qIt, err = interp.New(q, interp.Options{KeepAll: true, Threads: 1, Arithmetic: arithmetic}); err != nil {
		c.fIt.Close()
		return nil, fmt.Errorf("quant: compare: int8 model: %w", err)
	}
	return c, nil
}

// Close stops both interpreters.
func (c *Comparison) Close() {
	c.fIt.Close()
	c.qIt.Close()
}

// Run runs one sample through both models, adds it to the per-layer
// statistics and returns output 0 of each (dequantized for int8 outputs),
// valid until the next Run.
func (c *Comparison) Run(s Sample) (fOut, qOut []float32, err error) {
	if err := setInputs(c.fIt, s, c.samples); err != nil {
		return nil, nil, err
	}
	if err := setInputs(c.qIt, s, c.samples); err != nil {
		return nil, nil, err
	}
	if err := c.fIt.Invoke(); err != nil {
		return nil, nil, err
	}
	if err := c.qIt.Invoke(); err != nil {
		return nil, nil, err
	}
	c.samples++
	for k := range c.pairs {
		p := &c.pairs[k]
		fv := c.fIt.TensorByIndex(p.fIdx).Float32()
		qt := c.qIt.TensorByIndex(p.qIdx)
		sc, zp := float64(qt.Quant.Scale[0]), qt.Quant.ZeroPoint[0]
		for i, x := range qt.Int8() {
			f := float64(fv[i])
			d := f - sc*float64(int64(x)-zp)
			p.signal += f * f
			p.noise += d * d
		}
		p.elems += int64(len(fv))
	}
	return Output0(c.fIt), Output0(c.qIt), nil
}

// Merge adds o's per-layer statistics to c's; o must compare the same two
// models (one Comparison per goroutine, merged at the end).
func (c *Comparison) Merge(o *Comparison) {
	c.samples += o.samples
	for k := range c.pairs {
		if k < len(o.pairs) && o.pairs[k].name == c.pairs[k].name {
			c.pairs[k].signal += o.pairs[k].signal
			c.pairs[k].noise += o.pairs[k].noise
			c.pairs[k].elems += o.pairs[k].elems
		}
	}
}

// Output0 returns an interpreter's first output as real values in a new
// slice, dequantizing an int8 one (zeros when it cannot be read as reals).
func Output0(it *interp.Interpreter) []float32 {
	o := it.Output(0)
	v, err := o.Floats()
	if err != nil {
		return make([]float32, o.NumElements())
	}
	return v
}

// Layers returns the statistics of every matched tensor, in graph order.
func (c *Comparison) Layers() []LayerSQNR {
	out := make([]LayerSQNR, len(c.pairs))
	for k, p := range c.pairs {
		l := LayerSQNR{Name: p.name, Op: p.op, SQNR: SQNR(p.signal, p.noise), Note: p.note}
		if p.elems > 0 {
			l.Signal, l.Noise = p.signal/float64(p.elems), p.noise/float64(p.elems)
		}
		out[k] = l
	}
	return out
}

// SQNR is 10 log10(signal / noise) in dB: +Inf for no noise, -Inf for no
// signal with noise.
func SQNR(signal, noise float64) float64 {
	if noise == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(signal/noise)
}
