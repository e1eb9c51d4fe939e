// Package quant turns a float32 model into an int8 TFLite model per
// TFLite's quantization spec: symmetric int8 weights (per output channel for
// convolutions), int32 biases, asymmetric int8 activations whose ranges are
// calibrated by running the float model on representative inputs with our
// own interpreter.
//
// Data flows: train's float export (model.json + weights.bin) -> ReadExport
// -> float *resnet.Model (or one from resnet/build) + calibration samples
// (Samples, read one at a time: only range statistics are kept) ->
// CalibrateSamples (min/max, percentile or MSE ranges per tensor) -> Quantize ->
// optional bias correction -> int8 *resnet.Model -> Marshal -> .tflite. Run
// (RunSamples) does all of it and returns a Report of what it decided; Comparison runs
// the float and int8 models side by side for per-layer SQNR.
package quant

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"strings"

	"github.com/shortcut-edge/shortcut/resnet"
)

// IO selects the type of the quantized model's inputs and outputs.
type IO int

const (
	// FloatIO keeps float32 inputs and outputs, with QUANTIZE after each
	// input and DEQUANTIZE before each output (what LiteRT.js accepts, and
	// what lets a user feed normalized pixels directly).
	FloatIO IO = iota
	// Int8IO exposes the int8 tensors directly.
	Int8IO
)

// Options control calibration and quantization. The zero value is min/max
// calibration without bias correction and float inputs and outputs.
type Options struct {
	IO IO
	// Method picks how calibrated values become ranges (see Method).
	Method Method
	// Percentile is the share of |values| (in percent) a Percentile range
	// keeps; 0 means DefaultPercentile.
	Percentile float64
	// Bins is the histogram resolution of Percentile and MSE; 0 means
	// DefaultBins.
	Bins int
	// BiasCorrection subtracts, layer by layer, the mean output error of
	// every convolution and fully connected layer from its int32 bias
	// (empirical bias correction, after Nagel et al. 2019).
	BiasCorrection bool
	// RefitHead refits the classifier (the last FULLY_CONNECTED layer) to
	// the int8 embedding by ridge regression onto the float logits of the
	// calibration samples (see HeadRefit).
	RefitHead bool
	// HeadRidge is the refit's ridge strength relative to the mean squared
	// embedding value; 0 means DefaultHeadRidge.
	HeadRidge float64
	// MinSamples is the least number of calibration samples accepted; 0
	// means 1.
	MinSamples int
	// Log receives warnings (a tensor whose range collapsed, ...); nil
	// discards them. They are also listed in Report.Warnings.
	Log *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Method < MinMax || o.Method > MSE {
		return o, fmt.Errorf("quant: unknown calibration method %d; use MinMax, Percentile or MSE", int(o.Method))
	}
	if o.Percentile == 0 {
		o.Percentile = DefaultPercentile
	}
	if !(o.Percentile > 50 && o.Percentile <= 100) {
		return o, fmt.Errorf("quant: percentile %g must be in (50, 100], e.g. 99.99", o.Percentile)
	}
	if o.Bins == 0 {
		o.Bins = DefaultBins
	}
	if o.Bins < 16 || o.Bins > 1<<20 {
		return o, fmt.Errorf("quant: %d histogram bins; want 16 to %d", o.Bins, 1<<20)
	}
	if o.MinSamples < 0 {
		return o, fmt.Errorf("quant: MinSamples %d must not be negative", o.MinSamples)
	}
	o.MinSamples = max(o.MinSamples, 1)
	if o.HeadRidge == 0 {
		o.HeadRidge = DefaultHeadRidge
	}
	if !(o.HeadRidge > 0) || math.IsInf(o.HeadRidge, 0) {
		return o, fmt.Errorf("quant: head ridge %g must be a positive number, e.g. %g", o.HeadRidge, DefaultHeadRidge)
	}
	if o.IO != FloatIO && o.IO != Int8IO {
		return o, fmt.Errorf("quant: unknown IO %d; use FloatIO or Int8IO", int(o.IO))
	}
	return o, nil
}

// Report says what calibration and quantization decided, for people.
type Report struct {
	Method     Method
	Percentile float64 // for Percentile
	Samples    int
	// Ranges has one entry per calibrated activation tensor, in tensor order.
	Ranges []TensorRange
	// Warnings lists what produced a working but suspicious model, such as a
	// tensor that was zero on every calibration input.
	Warnings []string
	// Exact lists the convolutions whose int8 form is lossless (the 0/1
	// channel-selection convolutions of option-A shortcuts): their output
	// shares the input's scale and zero point.
	Exact []string
	// BiasCorrection has one entry per corrected layer.
	BiasCorrection []LayerCorrection
	// HeadRefit says how the classifier was refit (nil: it was not).
	HeadRefit *HeadRefit `json:",omitempty"`
}

// Result is a quantized model and how it was made.
type Result struct {
	Model  *resnet.Model
	Report *Report
}

// Model calibrates and quantizes in one step (Run without the report).
func Model(f *resnet.Model, samples []Sample, o Options) (*resnet.Model, error) {
	r, err := Run(f, samples, o)
	if err != nil {
		return nil, err
	}
	return r.Model, nil
}

// Run calibrates the float model on the samples with o.Method, quantizes it,
// applies bias correction when o.BiasCorrection is set, then refits the
// classifier when o.RefitHead is set (RunSamples on samples already in
// memory).
func Run(f *resnet.Model, samples []Sample, o Options) (*Result, error) {
	return RunSamples(f, SampleSlice(samples), o)
}

// RunSamples is Run on calibration data read one sample at a time
// (CalibrateSamples): the samples are never all in memory. Bias correction
// and the head refit read src again; the refit keeps each sample's
// embedding and float logits (its features, not its image).
func RunSamples(f *resnet.Model, src Samples, o Options) (*Result, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	r, rep, err := CalibrateSamples(f, src, o)
	if err != nil {
		return nil, err
	}
	q, err := quantize(f, r, o)
	if err != nil {
		return nil, err
	}
	rep.Warnings = append(rep.Warnings, q.warnings...)
	rep.Exact = q.exact
	for k := range rep.Ranges {
		rep.Ranges[k].Unused = q.forced[rep.Ranges[k].Tensor]
	}
	if o.BiasCorrection {
		if rep.BiasCorrection, err = correctBiases(f, q, src); err != nil {
			return nil, err
		}
	}
	if o.RefitHead {
		nw := len(q.warnings)
		if rep.HeadRefit, err = refitHead(f, q, src, o.HeadRidge); err != nil {
			return nil, err
		}
		rep.Warnings = append(rep.Warnings, q.warnings[nw:]...)
	}
	return &Result{Model: q.out, Report: rep}, nil
}

// ActParams computes asymmetric int8 parameters for a real range, widened to
// hold zero exactly as TFLite requires.
func ActParams(lo, hi float64) (scale float32, zp int64, err error) {
	if math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return 0, 0, fmt.Errorf("range [%g, %g] is not finite", lo, hi)
	}
	lo, hi = math.Min(lo, 0), math.Max(hi, 0)
	if collapsed(lo, hi) {
		// A tensor that is zero on every calibration input: any scale
		// represents it; pick one that keeps small values representable.
		hi = 1e-3
	}
	s := (hi - lo) / 255
	z := math.Round(-128 - lo/s)
	z = math.Max(-128, math.Min(127, z))
	return float32(s), int64(z), nil
}

// collapsed reports a range too narrow to quantize: ActParams widens it to
// [0, 1e-3] and Run lists the tensor in Report.Warnings.
func collapsed(lo, hi float64) bool { return math.Max(hi, 0)-math.Min(lo, 0) < 1e-12 }

// Quantize converts a float model to int8 using the ranges in r. Options
// other than IO and Log are calibration's and are not used here.
func Quantize(f *resnet.Model, r Ranges, o Options) (*resnet.Model, error) {
	q, err := quantize(f, r, o)
	if err != nil {
		return nil, err
	}
	return q.out, nil
}

func quantize(f *resnet.Model, r Ranges, o Options) (*quantizer, error) {
	q := &quantizer{f: f, r: r, o: o, out: &resnet.Model{Description: f.Description + " int8", Meta: f.Meta},
		qIdx: make([]int, len(f.Tensors)), forced: map[int]string{}}
	for i := range q.qIdx {
		q.qIdx[i] = -1
	}
	if err := q.run(); err != nil {
		return nil, err
	}
	return q, nil
}

type quantizer struct {
	f    *resnet.Model
	r    Ranges
	o    Options
	out  *resnet.Model
	qIdx []int // float tensor index -> int8 tensor index in out

	warnings []string
	exact    []string
	forced   map[int]string // float tensor -> why its int8 twin's quantization was not calibrated
	layers   []layer        // convolutions and fully connected layers, for bias correction
}

// layer ties a float CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED to its
// int8 twin.
type layer struct {
	name       string    // output tensor name
	fOut, qOut int       // output tensor in the float and the int8 model
	qBias      int       // int32 bias tensor in the int8 model (-1: none)
	biasScale  []float64 // real value of one bias unit, per channel
	relu       bool      // fused ReLU or ReLU6: the output hides the error where it is 0
	exact      bool      // lossless selection convolution
	op         resnet.OpCode
	qIn, qW    int // input activation and int8 weights in the int8 model
	fW, fBias  int // weights and bias (-1: none) in the float model
}

func (q *quantizer) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	q.warnings = append(q.warnings, msg)
	if q.o.Log != nil {
		q.o.Log.Warn(msg)
	}
}

func (q *quantizer) add(t resnet.Tensor) int {
	q.out.Tensors = append(q.out.Tensors, t)
	return len(q.out.Tensors) - 1
}

func (q *quantizer) emit(code resnet.OpCode, opts resnet.Options, ins, outs []int) {
	q.out.Operators = append(q.out.Operators, resnet.Operator{Op: code, Version: int8Version(code), Inputs: ins, Outputs: outs, Options: opts})
}

// activation returns (creating on first use) the int8 tensor standing for
// float tensor i, with its quantization from the calibrated range or forced;
// why says, for a forced quantization, where it comes from.
func (q *quantizer) activation(i int, forced *resnet.Quant, why string) (int, error) {
	if q.qIdx[i] >= 0 {
		return q.qIdx[i], nil
	}
	ft := &q.f.Tensors[i]
	qp := forced
	if forced != nil {
		q.forced[i] = why
	}
	if qp == nil {
		rg, ok := q.r[i]
		if !ok {
			return -1, fmt.Errorf("quant: tensor %d %q has no calibrated range (was it produced by the model?)", i, ft.Name)
		}
		s, z, err := ActParams(float64(rg.Min), float64(rg.Max))
		if err != nil {
			return -1, fmt.Errorf("quant: tensor %d %q: %w", i, ft.Name, err)
		}
		if collapsed(float64(rg.Min), float64(rg.Max)) {
			q.warn("tensor %d %q was 0 on every calibration input (range [%g, %g]); its int8 range was widened to [0, 0.001], so it stays 0: a dead layer, or calibration data unlike the real inputs",
				i, ft.Name, rg.Min, rg.Max)
		}
		qp = &resnet.Quant{Scale: []float32{s}, ZeroPoint: []int64{z}}
	}
	q.qIdx[i] = q.add(resnet.Tensor{Name: ft.Name, Type: resnet.Int8, Shape: ft.Shape, Quant: copyQuant(qp)})
	return q.qIdx[i], nil
}

func copyQuant(p *resnet.Quant) *resnet.Quant {
	return &resnet.Quant{Scale: append([]float32(nil), p.Scale...), ZeroPoint: append([]int64(nil), p.ZeroPoint...), Dim: p.Dim}
}

func (q *quantizer) quantOf(outIdx int) *resnet.Quant { return q.out.Tensors[outIdx].Quant }

func (q *quantizer) run() error {
	f := q.f
	for _, in := range f.Inputs {
		ft := f.Tensors[in]
		if ft.Type != resnet.Float32 {
			return fmt.Errorf("quant: input tensor %d %q is %v; the float model must have FLOAT32 inputs", in, ft.Name, ft.Type)
		}
		qi, err := q.activation(in, nil, "")
		if err != nil {
			return err
		}
		if q.o.IO == FloatIO {
			fi := q.add(resnet.Tensor{Name: ft.Name, Type: resnet.Float32, Shape: ft.Shape})
			q.out.Tensors[qi].Name = ft.Name + "/int8"
			q.emit(resnet.OpQuantize, nil, []int{fi}, []int{qi})
			q.out.Inputs = append(q.out.Inputs, fi)
		} else {
			q.out.Inputs = append(q.out.Inputs, qi)
		}
	}
	for oi, op := range f.Operators {
		if err := q.op(oi, op); err != nil {
			return err
		}
	}
	for _, o := range f.Outputs {
		qo := q.qIdx[o]
		if qo < 0 {
			return fmt.Errorf("quant: output tensor %d %q is never produced", o, f.Tensors[o].Name)
		}
		if q.o.IO == FloatIO {
			name := q.out.Tensors[qo].Name
			q.out.Tensors[qo].Name = name + "/int8"
			fo := q.add(resnet.Tensor{Name: name, Type: resnet.Float32, Shape: q.out.Tensors[qo].Shape})
			q.emit(resnet.OpDequantize, nil, []int{qo}, []int{fo})
			q.out.Outputs = append(q.out.Outputs, fo)
		} else {
			q.out.Outputs = append(q.out.Outputs, qo)
		}
	}
	return nil
}

func floats(t *resnet.Tensor) []float32 {
	v := make([]float32, len(t.Data)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return v
}

func (q *quantizer) op(oi int, op resnet.Operator) error {
	f := q.f
	in := func(k int) (int, error) {
		i := op.Inputs[k]
		if q.qIdx[i] < 0 {
			return -1, fmt.Errorf("quant: operator %d (%v): input tensor %d %q is not an activation produced before it", oi, op.Op, i, f.Tensors[i].Name)
		}
		return q.qIdx[i], nil
	}
	info, ok := resnet.Op(op.Op)
	rule := resnet.QuantBoundary
	if ok {
		rule = info.Quant
	}
	switch rule {
	case resnet.QuantWeighted:
		x, err := in(0)
		if err != nil {
			return err
		}
		wt := &f.Tensors[op.Inputs[1]]
		if wt.Data == nil || wt.Type != resnet.Float32 {
			return fmt.Errorf("quant: operator %d (%v): weights tensor %q must be a FLOAT32 constant", oi, op.Op, wt.Name)
		}
		dim := info.WeightChannelDim
		// FULLY_CONNECTED per tensor, as the spec and older runtimes expect.
		perChannel := op.Op != resnet.OpFullyConnected
		wq, wScales, err := symmetricInt8(wt, dim, perChannel)
		if err != nil {
			return fmt.Errorf("quant: operator %d (%v): %w", oi, op.Op, err)
		}
		w := q.add(wq)
		inScale := float64(q.quantOf(x).Scale[0])
		ins := []int{x, w, -1}
		l := layer{name: f.Tensors[op.Outputs[0]].Name, fOut: op.Outputs[0], qBias: -1, relu: reluFused(op.Options),
			op: op.Op, qIn: x, qW: w, fW: op.Inputs[1], fBias: -1}
		if len(op.Inputs) > 2 && op.Inputs[2] >= 0 {
			l.fBias = op.Inputs[2]
			bt := &f.Tensors[op.Inputs[2]]
			bq, err := biasInt32(bt, inScale, wScales)
			if err != nil {
				return fmt.Errorf("quant: operator %d (%v): %w", oi, op.Op, err)
			}
			ins[2] = q.add(bq)
			l.qBias = ins[2]
			for c := range bq.NumElements() {
				l.biasScale = append(l.biasScale, inScale*wScales[min(c, len(wScales)-1)])
			}
		}
		// A convolution that only picks input channels (weights 0 or 1, one
		// 1 per output channel at most, zero bias, no activation) is
		// lossless when its output keeps the input's scale and zero point:
		// every output is an input value or zero.
		var forced *resnet.Quant
		if op.Op == resnet.OpConv2D && isSelection(f, op) {
			forced = q.quantOf(x)
			l.exact = true
			q.exact = append(q.exact, l.name)
		}
		y, err := q.activation(op.Outputs[0], forced, "shares its input's scale: a lossless channel selection")
		if err != nil {
			return err
		}
		l.qOut = y
		q.layers = append(q.layers, l)
		q.emit(op.Op, op.Options, ins, []int{y})
	case resnet.QuantOwnRange:
		ins := make([]int, len(op.Inputs))
		for k, i := range op.Inputs {
			if f.Tensors[i].Data != nil { // MEAN's axes
				ins[k] = q.add(f.Tensors[i])
				continue
			}
			x, err := in(k)
			if err != nil {
				return err
			}
			ins[k] = x
		}
		y, err := q.activation(op.Outputs[0], nil, "")
		if err != nil {
			return err
		}
		q.emit(op.Op, op.Options, ins, []int{y})
	case resnet.QuantKeepInput:
		// These keep the input's scale and zero point: TFLite requires it
		// for pooling and PAD, and it makes RESHAPE a copy.
		x, err := in(0)
		if err != nil {
			return err
		}
		ins := []int{x}
		for _, i := range op.Inputs[1:] {
			ins = append(ins, q.add(f.Tensors[i]))
		}
		y, err := q.activation(op.Outputs[0], q.quantOf(x), fmt.Sprintf("shares its input's scale, as %v requires", op.Op))
		if err != nil {
			return err
		}
		q.emit(op.Op, op.Options, ins, []int{y})
	case resnet.QuantSoftmax:
		x, err := in(0)
		if err != nil {
			return err
		}
		y, err := q.activation(op.Outputs[0], &resnet.Quant{Scale: []float32{1.0 / 256}, ZeroPoint: []int64{-128}}, "SOFTMAX output, fixed at scale 1/256")
		if err != nil {
			return err
		}
		q.emit(op.Op, op.Options, []int{x}, []int{y})
	default:
		return fmt.Errorf("quant: operator %d: %v cannot be quantized (supported: %s)", oi, op.Op, strings.Join(quantizable(), ", "))
	}
	return nil
}

// symmetricInt8 quantizes weights to [-127, 127], one scale per slice along
// dim (or one for the whole tensor).
func symmetricInt8(t *resnet.Tensor, dim int, perChannel bool) (resnet.Tensor, []float64, error) {
	v := floats(t)
	if len(v) != t.NumElements() {
		return resnet.Tensor{}, nil, fmt.Errorf("weights %q: %d values for shape %v", t.Name, len(v), t.Shape)
	}
	channels, inner := 1, 1
	if perChannel {
		channels = t.Shape[dim]
		for _, d := range t.Shape[dim+1:] {
			inner *= d
		}
	}
	chanOf := func(i int) int {
		if !perChannel {
			return 0
		}
		return (i / inner) % channels
	}
	maxAbs := make([]float64, channels)
	for i, x := range v {
		a := math.Abs(float64(x))
		if math.IsNaN(a) || math.IsInf(a, 0) {
			return resnet.Tensor{}, nil, fmt.Errorf("weights %q: element %d is %v; retrain or fix the export", t.Name, i, x)
		}
		c := chanOf(i)
		maxAbs[c] = math.Max(maxAbs[c], a)
	}
	scales := make([]float64, channels)
	qs := make([]float32, channels)
	zps := make([]int64, channels)
	for c, m := range maxAbs {
		s := m / 127
		if s == 0 {
			s = 1 // an all-zero channel: any scale represents it exactly
		}
		scales[c], qs[c] = s, float32(s)
	}
	data := make([]byte, len(v))
	for i, x := range v {
		// Round with the float32 scale the file will carry.
		r := math.Round(float64(x) / float64(qs[chanOf(i)]))
		data[i] = byte(int8(math.Max(-127, math.Min(127, r))))
	}
	for c := range scales {
		scales[c] = float64(qs[c])
	}
	qp := &resnet.Quant{Scale: qs, ZeroPoint: zps}
	if perChannel {
		qp.Dim = dim
	}
	return resnet.Tensor{Name: t.Name, Type: resnet.Int8, Shape: append([]int(nil), t.Shape...), Data: data, Quant: qp}, scales, nil
}

// biasInt32 quantizes a bias with scale inScale*wScale[c] and zero point 0.
func biasInt32(t *resnet.Tensor, inScale float64, wScales []float64) (resnet.Tensor, error) {
	v := floats(t)
	qs := make([]float32, len(v))
	zps := make([]int64, len(v))
	data := make([]byte, 4*len(v))
	for c, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return resnet.Tensor{}, fmt.Errorf("bias %q: element %d is %v", t.Name, c, x)
		}
		ws := wScales[0]
		if len(wScales) > 1 {
			ws = wScales[c]
		}
		s := inScale * ws
		qs[c] = float32(s)
		r := math.Round(float64(x) / s)
		r = math.Max(math.MinInt32, math.Min(math.MaxInt32, r))
		binary.LittleEndian.PutUint32(data[4*c:], uint32(int32(r)))
	}
	if len(wScales) == 1 {
		qs, zps = qs[:1], zps[:1]
	}
	return resnet.Tensor{Name: t.Name, Type: resnet.Int32, Shape: append([]int(nil), t.Shape...), Data: data,
		Quant: &resnet.Quant{Scale: qs, ZeroPoint: zps}}, nil
}

func reluFused(o resnet.Options) bool {
	var a resnet.Activation
	switch v := o.(type) {
	case *resnet.Conv2DOptions:
		a = v.Activation
	case *resnet.DepthwiseConv2DOptions:
		a = v.Activation
	case *resnet.FullyConnectedOptions:
		a = v.Activation
	}
	return a == resnet.ActRelu || a == resnet.ActRelu6 || a == resnet.ActReluN1To1
}

// isSelection reports a 1x1 CONV_2D whose weights are 0 or 1 with at most one
// 1 per output channel, with a zero (or no) bias and no activation: a
// subsampling channel selection such as an option-A shortcut.
func isSelection(f *resnet.Model, op resnet.Operator) bool {
	o, ok := op.Options.(*resnet.Conv2DOptions)
	if !ok || o.Activation != resnet.ActNone || len(op.Inputs) < 2 {
		return false
	}
	w := &f.Tensors[op.Inputs[1]]
	if len(w.Shape) != 4 || w.Shape[1] != 1 || w.Shape[2] != 1 || w.Data == nil || w.Type != resnet.Float32 {
		return false
	}
	in, v := w.Shape[3], floats(w)
	if len(v) != w.NumElements() {
		return false
	}
	for oc := range w.Shape[0] {
		ones := 0
		for _, x := range v[oc*in : (oc+1)*in] {
			switch x {
			case 0:
			case 1:
				ones++
			default:
				return false
			}
		}
		if ones > 1 {
			return false
		}
	}
	if len(op.Inputs) > 2 && op.Inputs[2] >= 0 {
		for _, x := range floats(&f.Tensors[op.Inputs[2]]) {
			if x != 0 {
				return false
			}
		}
	}
	return true
}

// int8Version is the operator version converters write for the int8 kernel
// (the registry's Int8Version); a runtime refuses versions it does not know.
func int8Version(code resnet.OpCode) int {
	if info, ok := resnet.Op(code); ok {
		return info.Int8Version
	}
	return 1
}

// quantizable names the operators a float model may hold for Quantize: every
// registered one but the float<->int8 boundaries, which Quantize inserts.
func quantizable() []string {
	var names []string
	for _, code := range resnet.Ops() {
		if info, _ := resnet.Op(code); info.Quant != resnet.QuantBoundary {
			names = append(names, info.Name)
		}
	}
	return names
}
