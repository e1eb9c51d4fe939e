package quant

import (
	"fmt"
	"math"
	"strings"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

// Range is the real interval a float tensor covered during calibration.
type Range struct{ Min, Max float32 }

// Ranges maps a float model's tensor index to its calibrated range.
type Ranges map[int]Range

// Sample holds one value per model input, each flattened in NHWC order.
type Sample [][]float32

// Method chooses how the values a tensor took on the calibration set become
// its int8 range.
type Method int

const (
	// MinMax covers every value seen: nothing is clipped, but one outlier
	// coarsens the step for all the others.
	MinMax Method = iota
	// Percentile clips |x| at the given percentile (Options.Percentile,
	// 99.99 by default) of the tensor's values over the calibration set.
	Percentile
	// MSE picks the clipping magnitude that minimizes the expected squared
	// quantization error (rounding inside the range, clipping outside) over
	// the tensor's histogram.
	MSE
)

// Methods lists the method names ParseMethod accepts.
var Methods = []string{"minmax", "percentile", "mse"}

func (m Method) String() string {
	if int(m) >= 0 && int(m) < len(Methods) {
		return Methods[m]
	}
	return fmt.Sprintf("Method(%d)", int(m))
}

// MarshalText writes the method's name (in JSON reports).
func (m Method) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// ParseMethod reads a method name: minmax, percentile or mse.
func ParseMethod(s string) (Method, error) {
	for i, n := range Methods {
		if strings.EqualFold(s, n) {
			return Method(i), nil
		}
	}
	return 0, fmt.Errorf("calibration method %q: want one of %s", s, strings.Join(Methods, ", "))
}

// Defaults of the calibration options.
const (
	DefaultPercentile = 99.99
	DefaultBins       = 2048
	// RecommendedMinSamples is the least calibration data the command line
	// accepts: fewer images give ranges that depend on which ones were drawn.
	RecommendedMinSamples = 32
)

// Calibrate runs the float model on every sample and records the min and max
// of every activation tensor (graph inputs included).
func Calibrate(f *resnet.Model, samples []Sample) (Ranges, error) {
	r, _, err := CalibrateWith(f, samples, Options{})
	return r, err
}

// TensorRange is what calibration chose for one activation tensor.
type TensorRange struct {
	Tensor   int
	Name     string
	Observed Range // min and max over the calibration set
	Chosen   Range // the range quantization uses
	// Clipped is the fraction of calibration values outside Chosen.
	Clipped float64
	// MinMaxBecause is set when the tensor kept its min/max range whatever
	// the method (graph outputs), and says why.
	MinMaxBecause string
	// Logits is set for logits that only a SOFTMAX reads: under every
	// method their range is the one ChooseLogitsRange picks for the scores.
	Logits *LogitsChoice `json:",omitempty"`
	// Unused is set when the int8 tensor does not take its own range but
	// shares another's quantization (pooling and PAD outputs, lossless
	// channel selections) or has a fixed one (SOFTMAX), and says why.
	Unused string
}

// stats is what calibration learns about one tensor.
type stats struct {
	min, max float32
	count    int64
	zeros    int64     // exact zeros, kept out of the histogram: they quantize exactly
	hist     []float64 // nonzero values over [min, max]
}

// CalibrateWith runs the float model on the samples and chooses a range for
// every activation tensor with o.Method (CalibrateSamples on samples already
// in memory).
func CalibrateWith(f *resnet.Model, samples []Sample, o Options) (Ranges, *Report, error) {
	return CalibrateSamples(f, SampleSlice(samples), o)
}

// CalibrateSamples runs the float model on every sample of src, one at a
// time, and chooses a range for every activation tensor with o.Method. Only
// statistics are kept, never the samples or the activations: each tensor's
// min and max, and for the histogram methods a second pass fills o.Bins
// bins over that extent. Memory stays bounded whatever the sample count:
// the interpreter's arena, the histograms, and the logits of at most
// maxLogitsSamples samples for ChooseLogitsRange.
//
// Graph outputs keep their min/max range under every method: the embedding
// output is the agent's input for head training. Logits that only a SOFTMAX
// reads get, under every method, the range that best keeps the calibration
// samples' top-1 and scores (ChooseLogitsRange).
func CalibrateSamples(f *resnet.Model, src Samples, o Options) (Ranges, *Report, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, nil, err
	}
	n := src.Len()
	if n == 0 {
		return nil, nil, fmt.Errorf("quant: calibration needs at least one sample; pass representative inputs (for example %d or more training images)", max(o.MinSamples, RecommendedMinSamples))
	}
	if n < o.MinSamples {
		return nil, nil, fmt.Errorf("quant: %d calibration samples, at least %d are required; draw more images from the training data", n, o.MinSamples)
	}
	it, err := interp.New(f, interp.Options{KeepAll: true, Threads: 1})
	if err != nil {
		return nil, nil, fmt.Errorf("quant: preparing the float model: %w", err)
	}
	defer it.Close()
	st := map[int]*stats{}
	keep := minMaxTensors(f)
	logits := map[int][][]float64{}
	for ti := range logitsTensors(f) {
		logits[ti] = nil
	}
	if err := pass(f, it, src, st, false, logits); err != nil {
		return nil, nil, err
	}
	if o.Method != MinMax {
		for _, s := range st {
			s.hist = make([]float64, o.Bins)
		}
		if err := pass(f, it, src, st, true, nil); err != nil {
			return nil, nil, err
		}
	}
	rep := &Report{Method: o.Method, Samples: n}
	if o.Method == Percentile {
		rep.Percentile = o.Percentile
	}
	r := Ranges{}
	for ti := range f.Tensors {
		s, ok := st[ti]
		if !ok {
			continue
		}
		tr := TensorRange{Tensor: ti, Name: f.Tensors[ti].Name, Observed: Range{s.min, s.max}, Chosen: Range{s.min, s.max}}
		v, isLogits := logits[ti]
		switch why := keep[ti]; {
		case isLogits:
			lc, err := ChooseLogitsRange(v, v)
			if err != nil {
				return nil, nil, fmt.Errorf("quant: tensor %d %q: %w", ti, f.Tensors[ti].Name, err)
			}
			tr.Chosen = lc.Range
			tr.Logits = &lc
		case o.Method == MinMax:
		case why != "":
			tr.MinMaxBecause = why
		case o.Method == Percentile:
			t := s.absQuantile(o.Percentile / 100)
			tr.Chosen = s.clip(t)
		case o.Method == MSE:
			tr.Chosen = s.clip(s.mseThreshold())
		}
		switch {
		case isLogits:
			tr.Clipped = logitsOutside(v, tr.Chosen)
		case s.hist != nil:
			tr.Clipped = s.outside(tr.Chosen) / float64(s.count)
		}
		r[ti] = tr.Chosen
		rep.Ranges = append(rep.Ranges, tr)
	}
	return r, rep, nil
}

// minMaxTensors names the tensors whose range is never clipped, and why.
func minMaxTensors(f *resnet.Model) map[int]string {
	keep := map[int]string{}
	for _, o := range f.Outputs {
		keep[o] = "graph output"
	}
	return keep
}

// logitsTensors are the tensors whose range ChooseLogitsRange picks: the
// inputs of SOFTMAX operators that are not graph outputs.
func logitsTensors(f *resnet.Model) map[int]bool {
	keep := minMaxTensors(f)
	out := map[int]bool{}
	for _, op := range f.Operators {
		if op.Op == resnet.OpSoftmax && len(op.Inputs) > 0 && keep[op.Inputs[0]] == "" {
			out[op.Inputs[0]] = true
		}
	}
	return out
}

// logitsOutside is the share of logit values outside r.
func logitsOutside(v [][]float64, r Range) float64 {
	out, n := 0, 0
	for _, s := range v {
		for _, x := range s {
			if x < float64(r.Min) || x > float64(r.Max) {
				out++
			}
			n++
		}
	}
	return float64(out) / float64(max(n, 1))
}

// setInputs copies a sample into the interpreter's inputs, quantizing it for
// int8 inputs.
func setInputs(it *interp.Interpreter, s Sample, si int) error {
	if len(s) != it.NumInputs() {
		return fmt.Errorf("quant: sample %d has %d inputs, the model takes %d", si, len(s), it.NumInputs())
	}
	for k, v := range s {
		in := it.Input(k)
		if in.NumElements() != len(v) {
			return fmt.Errorf("quant: sample %d input %d has %d values, the model's input %q takes %d (shape %v)",
				si, k, len(v), in.Name, in.NumElements(), in.Shape)
		}
		if err := in.SetFloat32(v); err != nil {
			return fmt.Errorf("quant: sample %d input %d: %w", si, k, err)
		}
	}
	return nil
}

// pass runs every sample and updates the stats of every float activation:
// extent on the first pass, histograms on the second.
//
// With logits set (the first pass), the tensors it has keys for are also
// kept whole, one slice per sample (at most maxLogitsSamples of them, a
// seeded reservoir past that), for ChooseLogitsRange.
func pass(f *resnet.Model, it *interp.Interpreter, src Samples, st map[int]*stats, histogram bool, logits map[int][][]float64) error {
	var res logitsReservoir
	return forEach(src, func(si int, s Sample) error {
		if err := setInputs(it, s, si); err != nil {
			return err
		}
		if err := it.Invoke(); err != nil {
			return fmt.Errorf("quant: running calibration sample %d: %w", si, err)
		}
		slot, appending, keep := 0, false, false
		if len(logits) > 0 {
			slot, appending, keep = res.slot()
		}
		for ti := range f.Tensors {
			t := &f.Tensors[ti]
			if t.Data != nil || t.Type != resnet.Float32 {
				continue
			}
			vals := it.TensorByIndex(ti).Float32()
			if len(vals) == 0 {
				continue
			}
			if histogram {
				st[ti].add(vals)
				continue
			}
			if v, ok := logits[ti]; ok && keep {
				var s []float64
				if appending {
					s = make([]float64, len(vals))
					logits[ti] = append(v, s)
				} else {
					s = v[slot]
				}
				for i, x := range vals {
					s[i] = float64(x)
				}
			}
			lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
			for i, x := range vals {
				if x != x || math.IsInf(float64(x), 0) {
					return fmt.Errorf("quant: tensor %d %q holds %v at element %d on calibration sample %d; the float model or its input is broken", ti, t.Name, x, i, si)
				}
				lo, hi = min(lo, x), max(hi, x)
			}
			old, ok := st[ti]
			if !ok {
				st[ti] = &stats{min: lo, max: hi}
				continue
			}
			old.min, old.max = min(lo, old.min), max(hi, old.max)
		}
		return nil
	})
}

func (s *stats) binWidth() float64 { return (float64(s.max) - float64(s.min)) / float64(len(s.hist)) }

func (s *stats) add(vals []float32) {
	n := len(s.hist)
	w := s.binWidth()
	for _, x := range vals {
		s.count++
		if x == 0 {
			s.zeros++
			continue
		}
		b := n - 1
		if w > 0 {
			b = min(n-1, max(0, int((float64(x)-float64(s.min))/w)))
		}
		s.hist[b]++
	}
}

// below estimates how many nonzero values are < v, taking values uniform
// inside each bin.
func (s *stats) below(v float64) float64 {
	w := s.binWidth()
	if w <= 0 {
		if v > float64(s.min) {
			return float64(s.count - s.zeros)
		}
		return 0
	}
	pos := (v - float64(s.min)) / w
	total := 0.0
	for b, c := range s.hist {
		switch {
		case float64(b+1) <= pos:
			total += c
		case float64(b) < pos:
			total += c * (pos - float64(b))
		}
	}
	return total
}

// outside estimates how many values lie outside r.
func (s *stats) outside(r Range) float64 {
	nonzero := float64(s.count - s.zeros)
	return s.below(float64(r.Min)) + (nonzero - s.below(float64(r.Max)))
}

// absQuantile is the magnitude t with a fraction q of the values in [-t, t].
func (s *stats) absQuantile(q float64) float64 {
	maxAbs := math.Max(math.Abs(float64(s.min)), math.Abs(float64(s.max)))
	allowed := (1 - q) * float64(s.count)
	tail := func(t float64) float64 { return s.outside(Range{float32(-t), float32(t)}) }
	lo, hi := 0.0, maxAbs
	for range 60 {
		mid := (lo + hi) / 2
		if tail(mid) > allowed {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}

// clip narrows the observed extent, widened to hold zero as every int8
// range does, to [-t, t].
func (s *stats) clip(t float64) Range {
	lo, hi := math.Min(float64(s.min), 0), math.Max(float64(s.max), 0)
	return Range{Min: float32(math.Max(lo, -t)), Max: float32(math.Min(hi, t))}
}

// mseThreshold searches the clipping magnitude t that minimizes the expected
// squared error of quantizing the histogram to ActParams(clip(t)): values
// inside the range carry the uniform rounding noise step^2/12, values outside
// the clipping error. Exact zeros cost nothing (zero is exactly
// representable).
func (s *stats) mseThreshold() float64 {
	maxAbs := math.Max(math.Abs(float64(s.min)), math.Abs(float64(s.max)))
	if maxAbs == 0 || s.count == s.zeros {
		return maxAbs
	}
	w := s.binWidth()
	centers := make([]float64, len(s.hist))
	for b := range centers {
		centers[b] = float64(s.min) + (float64(b)+0.5)*w
	}
	cost := func(t float64) float64 {
		r := s.clip(t)
		sc, zp, err := ActParams(float64(r.Min), float64(r.Max))
		if err != nil {
			return math.Inf(1)
		}
		step := float64(sc)
		qlo, qhi := step*float64(-128-zp), step*float64(127-zp)
		noise := step * step / 12
		e := 0.0
		for b, c := range s.hist {
			if c == 0 {
				continue
			}
			v := centers[b]
			switch {
			case v < qlo:
				e += c * (v - qlo) * (v - qlo)
			case v > qhi:
				e += c * (v - qhi) * (v - qhi)
			default:
				e += c * noise
			}
		}
		return e
	}
	const steps = 400
	best, bestCost := maxAbs, cost(maxAbs)
	for k := 1; k < steps; k++ {
		t := maxAbs * float64(k) / steps
		if c := cost(t); c < bestCost {
			best, bestCost = t, c
		}
	}
	return best
}
