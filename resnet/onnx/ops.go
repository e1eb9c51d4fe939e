package onnx

import (
	"encoding/binary"
	"slices"

	"github.com/shortcut-edge/shortcut/resnet"
)

// converters maps every operator of resnet's registry (resnet/ops.go) to
// its ONNX form; TestEveryRegisteredOperatorIsMapped fails when the registry
// gains one that is not here.
var converters = map[resnet.OpCode]func(*exporter, *resnet.Operator) error{
	resnet.OpConv2D:          (*exporter).conv,
	resnet.OpDepthwiseConv2D: (*exporter).conv,
	resnet.OpFullyConnected:  (*exporter).fullyConnected,
	resnet.OpAdd:             (*exporter).addOp,
	resnet.OpMean:            (*exporter).mean,
	resnet.OpAveragePool2D:   (*exporter).pool,
	resnet.OpMaxPool2D:       (*exporter).pool,
	resnet.OpPad:             (*exporter).pad,
	resnet.OpReshape:         (*exporter).reshape,
	resnet.OpSqueeze:         (*exporter).squeeze,
	resnet.OpSoftmax:         (*exporter).softmax,
	resnet.OpQuantize:        (*exporter).quantize,
	resnet.OpDequantize:      (*exporter).dequantize,
}

func mappedNames() []string {
	var names []string
	for c := range converters {
		names = append(names, c.String())
	}
	slices.Sort(names)
	return names
}

// constInts reads a constant INT32 (or INT64) tensor such as axes, paddings
// or a shape.
func (e *exporter) constInts(ti int, what string) ([]int, error) {
	if ti < 0 {
		return nil, e.errf("%s is missing", what)
	}
	t := &e.m.Tensors[ti]
	if t.Data == nil {
		return nil, e.errf("%s (tensor %q) is computed at run time; the exporter needs it constant", what, t.Name)
	}
	var out []int
	switch t.Type {
	case resnet.Int32:
		for i := 0; i+4 <= len(t.Data); i += 4 {
			out = append(out, int(int32(binary.LittleEndian.Uint32(t.Data[i:]))))
		}
	case resnet.Int64:
		for i := 0; i+8 <= len(t.Data); i += 8 {
			out = append(out, int(int64(binary.LittleEndian.Uint64(t.Data[i:]))))
		}
	default:
		return nil, e.errf("%s (tensor %q) has type %v; want INT32 or INT64", what, t.Name, t.Type)
	}
	return out, nil
}

// weights converts a constant weight tensor to an ONNX initializer in layout
// perm (ONNX dimension i is .tflite dimension perm[i]), reshaped to dims, and
// returns the float value a node consumes: the initializer itself, or a
// DequantizeLinear of the int8 one (per channel along the axis that the
// .tflite's quantized dimension becomes).
func (e *exporter) weights(ti int, perm, dims []int, what string) (name string, q *resnet.Quant, err error) {
	t := &e.m.Tensors[ti]
	if t.Data == nil {
		return "", nil, e.errf("%s (tensor %q) is computed at run time; the exporter needs constant weights", what, t.Name)
	}
	switch t.Type {
	case resnet.Float32:
		raw, _ := permute(t.Data, 4, t.Shape, perm)
		return e.init(t.Name, dtFloat, dims, raw), nil, nil
	case resnet.Int8:
		raw, _ := permute(t.Data, 1, t.Shape, perm)
		w := e.init(t.Name, dtInt8, dims, raw)
		scale, zp, axis, err := e.weightQuant(t, perm, dims, dtInt8)
		if err != nil {
			return "", nil, err
		}
		var attrs []attribute
		if axis >= 0 {
			attrs = append(attrs, intAttr("axis", int64(axis)))
		}
		return e.add("DequantizeLinear", []string{w, scale, zp}, t.Name+"/dq", attrs...), t.Quant, nil
	}
	return "", nil, e.errf("%s (tensor %q) has type %v; weights must be FLOAT32 or INT8", what, t.Name, t.Type)
}

// weightQuant writes the scale and zero-point initializers of a weight or
// bias tensor; axis is -1 for per-tensor parameters.
func (e *exporter) weightQuant(t *resnet.Tensor, perm, dims []int, typ dataType) (scale, zp string, axis int, err error) {
	q := t.Quant
	if q == nil || len(q.Scale) == 0 {
		return "", "", 0, e.errf("tensor %q is %v without quantization parameters", t.Name, t.Type)
	}
	n := len(q.Scale)
	zps := make([]int64, n)
	copy(zps, q.ZeroPoint)
	axis = -1
	shape := []int(nil)
	if n > 1 {
		axis = slices.Index(perm, q.Dim)
		if axis < 0 || q.Dim >= len(t.Shape) || t.Shape[q.Dim] != n {
			return "", "", 0, e.errf("tensor %q has %d scales along dimension %d of %v", t.Name, n, q.Dim, t.Shape)
		}
		if len(dims) != len(perm) { // reshaped: the channel axis must survive at the same place
			return "", "", 0, e.errf("tensor %q: per-channel parameters on a reshaped weight", t.Name)
		}
		shape = []int{n}
	}
	scale = e.constant(t.Name+"/scale", dtFloat, shape, f32raw(q.Scale...))
	var raw []byte
	for _, z := range zps {
		switch typ {
		case dtInt8:
			raw = append(raw, byte(int8(z)))
		case dtInt32:
			raw = binary.LittleEndian.AppendUint32(raw, uint32(int32(z)))
		}
	}
	zp = e.constant(t.Name+"/zero_point", typ, shape, raw)
	return scale, zp, axis, nil
}

// bias converts an optional bias: float as is, int32 through a
// DequantizeLinear whose scale is input scale x weight scale (what TFLite's
// kernels and ONNX's QLinearConv both assume), zero point 0.
func (e *exporter) bias(ti int, in *value, w *resnet.Quant) (string, error) {
	if ti < 0 {
		return "", nil
	}
	t := &e.m.Tensors[ti]
	if t.Data == nil {
		return "", e.errf("bias %q is computed at run time; the exporter needs a constant bias", t.Name)
	}
	switch t.Type {
	case resnet.Float32:
		return e.init(t.Name, dtFloat, t.Shape, t.Data), nil
	case resnet.Int32:
		if in.q == nil || w == nil {
			return "", e.errf("bias %q is INT32 but the input or the weights are not int8", t.Name)
		}
		inScale, _, _ := in.q.src.PerTensor()
		scales := make([]float32, len(w.Scale))
		for i, s := range w.Scale {
			scales[i] = inScale * s
		}
		b := e.init(t.Name, dtInt32, t.Shape, t.Data)
		var shape []int
		var attrs []attribute
		if len(scales) > 1 {
			shape = []int{len(scales)}
			attrs = append(attrs, intAttr("axis", 0))
		}
		scale := e.constant(t.Name+"/scale", dtFloat, shape, f32raw(scales...))
		zp := e.constant("bias_zero_point", dtInt32, shape, make([]byte, 4*len(scales)))
		return e.add("DequantizeLinear", []string{b, scale, zp}, t.Name+"/dq", attrs...), nil
	}
	return "", e.errf("bias %q has type %v; want FLOAT32 or INT32", t.Name, t.Type)
}

// input returns operand k of op as a value, checking its rank when rank > 0.
func (e *exporter) input(op *resnet.Operator, k, rank int) (*value, error) {
	if k >= len(op.Inputs) || op.Inputs[k] < 0 {
		return nil, e.errf("input %d is missing", k)
	}
	v, err := e.get(op.Inputs[k])
	if err != nil {
		return nil, err
	}
	if rank > 0 && len(v.shape) != rank {
		return nil, e.errf("input %d %q has shape %v; want rank %d", k, e.m.Tensors[op.Inputs[k]].Name, v.shape, rank)
	}
	return v, nil
}

func (e *exporter) outName(op *resnet.Operator) string {
	return e.m.Tensors[op.Outputs[0]].Name
}

func (e *exporter) conv(op *resnet.Operator) error {
	x, err := e.input(op, 0, 4)
	if err != nil {
		return err
	}
	x = e.toNCHW(x)
	wt := &e.m.Tensors[op.Inputs[1]]
	if len(wt.Shape) != 4 {
		return e.errf("weights %q have shape %v; want rank 4", wt.Name, wt.Shape)
	}
	var strideH, strideW, dilH, dilW, group int
	var pad resnet.Padding
	var act resnet.Activation
	var perm, dims []int
	kh, kw := wt.Shape[1], wt.Shape[2]
	switch o := op.Options.(type) {
	case *resnet.Conv2DOptions:
		strideH, strideW, dilH, dilW, pad, act = o.StrideH, o.StrideW, o.DilationH, o.DilationW, o.Padding, o.Activation
		if wt.Shape[3] == 0 || x.shape[3]%wt.Shape[3] != 0 {
			return e.errf("weights %v do not fit input channels %d", wt.Shape, x.shape[3])
		}
		group = x.shape[3] / wt.Shape[3]
		perm, dims = []int{0, 3, 1, 2}, []int{wt.Shape[0], wt.Shape[3], kh, kw} // OHWI -> OIHW
	case *resnet.DepthwiseConv2DOptions:
		strideH, strideW, dilH, dilW, pad, act = o.StrideH, o.StrideW, o.DilationH, o.DilationW, o.Padding, o.Activation
		if wt.Shape[0] != 1 || wt.Shape[3]%x.shape[3] != 0 {
			return e.errf("depthwise weights %v do not fit input channels %d", wt.Shape, x.shape[3])
		}
		group = x.shape[3]
		perm, dims = []int{3, 0, 1, 2}, []int{wt.Shape[3], 1, kh, kw} // [1,H,W,C*M] -> [C*M,1,H,W]
	default:
		return e.errf("options %T are not convolution options", op.Options)
	}
	dilH, dilW = max(dilH, 1), max(dilW, 1)
	in, err := e.weightedInputs(op, x, perm, dims)
	if err != nil {
		return err
	}
	attrs := []attribute{
		ints("kernel_shape", kh, kw), ints("strides", strideH, strideW), ints("dilations", dilH, dilW),
		ints("pads", spatialPads(pad, x.shape[1], x.shape[2], kh, kw, strideH, strideW, dilH, dilW)...),
		intAttr("group", int64(group)),
	}
	y := e.add("Conv", in, e.outName(op)+"/conv", attrs...)
	if y, err = e.activation(y, act); err != nil {
		return err
	}
	return e.output(op.Outputs[0], y, true)
}

func (e *exporter) fullyConnected(op *resnet.Operator) error {
	x, err := e.input(op, 0, 0)
	if err != nil {
		return err
	}
	o, _ := op.Options.(*resnet.FullyConnectedOptions)
	if o == nil {
		return e.errf("options %T are not FULLY_CONNECTED options", op.Options)
	}
	wt := &e.m.Tensors[op.Inputs[1]]
	if len(wt.Shape) != 2 {
		return e.errf("weights %q have shape %v; want [out, in]", wt.Name, wt.Shape)
	}
	units, depth := wt.Shape[0], wt.Shape[1]
	n := 1
	for _, d := range x.shape {
		n *= d
	}
	if depth == 0 || n%depth != 0 {
		return e.errf("input %v does not hold rows of %d values", x.shape, depth)
	}
	// TFLite flattens the input to [n/depth, depth] in its own (NHWC) order.
	x = e.toPlain(x)
	if len(x.shape) != 2 || x.shape[1] != depth {
		flat := e.add("Reshape", []string{x.name, e.int64s("shape", n/depth, depth)}, x.name+"/flat")
		x = &value{name: flat, typ: x.typ, shape: []int{n / depth, depth}, q: x.q}
	}
	in, err := e.weightedInputs(op, x, []int{0, 1}, []int{units, depth})
	if err != nil {
		return err
	}
	y := e.add("Gemm", in, e.outName(op)+"/gemm", intAttr("transB", 1))
	if y, err = e.activation(y, o.Activation); err != nil {
		return err
	}
	out := &e.m.Tensors[op.Outputs[0]]
	if len(out.Shape) != 2 { // KeepNumDims: [..., units]
		y = e.add("Reshape", []string{y, e.int64s("shape", out.Shape...)}, y+"/shape")
		if err := e.output(op.Outputs[0], y, false); err != nil {
			return err
		}
		if len(out.Shape) == 4 {
			e.vals[op.Outputs[0]] = e.toNCHW(e.vals[op.Outputs[0]])
		}
		return nil
	}
	return e.output(op.Outputs[0], y, false)
}

func (e *exporter) addOp(op *resnet.Operator) error {
	a, err := e.input(op, 0, 0)
	if err != nil {
		return err
	}
	b, err := e.input(op, 1, 0)
	if err != nil {
		return err
	}
	o, _ := op.Options.(*resnet.AddOptions)
	if o == nil {
		return e.errf("options %T are not ADD options", op.Options)
	}
	// Both operands in one layout: NCHW when both are 4-D, else NHWC order
	// (broadcasting a lower-rank operand follows the .tflite's axes).
	if len(a.shape) == 4 && len(b.shape) == 4 {
		a, b = e.toNCHW(a), e.toNCHW(b)
	} else {
		a, b = e.toPlain(a), e.toPlain(b)
	}
	y := e.add("Add", []string{e.float(a), e.float(b)}, e.outName(op)+"/add")
	if y, err = e.activation(y, o.Activation); err != nil {
		return err
	}
	return e.output(op.Outputs[0], y, a.nchw)
}

func normAxes(axes []int, rank int) ([]int, bool) {
	out := make([]int, 0, len(axes))
	for _, a := range axes {
		if a < 0 {
			a += rank
		}
		if a < 0 || a >= rank {
			return nil, false
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out, true
}

func (e *exporter) mean(op *resnet.Operator) error {
	x, err := e.input(op, 0, 0)
	if err != nil {
		return err
	}
	o, _ := op.Options.(*resnet.ReducerOptions)
	if o == nil {
		return e.errf("options %T are not MEAN options", op.Options)
	}
	raw, err := e.constInts(op.Inputs[1], "axes")
	if err != nil {
		return err
	}
	axes, ok := normAxes(raw, len(x.shape))
	if !ok {
		return e.errf("axes %v are out of range for input %v", raw, x.shape)
	}
	out := &e.m.Tensors[op.Outputs[0]]
	if len(x.shape) == 4 && slices.Equal(axes, []int{1, 2}) {
		// Global average pooling over H and W.
		x = e.toNCHW(x)
		y := e.add("GlobalAveragePool", []string{e.float(x)}, out.Name+"/gap")
		if o.KeepDims {
			return e.output(op.Outputs[0], y, true)
		}
		// [N,C,1,1] -> [N,C] after quantizing, so the 8-bit Reshape is exact.
		if out.Type == resnet.Int8 {
			q, err := e.qparamsOf("output "+out.Name, out.Quant, e.activationType())
			if err != nil {
				return err
			}
			y = e.add("QuantizeLinear", []string{y, q.scale, q.zp}, out.Name+"/pooled")
			r := e.add("Reshape", []string{y, e.int64s("shape", out.Shape...)}, out.Name)
			e.vals[op.Outputs[0]] = &value{name: r, typ: q.typ, shape: out.Shape, q: q}
			return nil
		}
		y = e.add("Reshape", []string{y, e.int64s("shape", out.Shape...)}, out.Name)
		return e.output(op.Outputs[0], y, false)
	}
	x = e.toPlain(x)
	keep := int64(0)
	if o.KeepDims {
		keep = 1
	}
	y := e.add("ReduceMean", []string{e.float(x)}, out.Name+"/mean", ints("axes", axes...), intAttr("keepdims", keep))
	if err := e.output(op.Outputs[0], y, false); err != nil {
		return err
	}
	if len(out.Shape) == 4 {
		e.vals[op.Outputs[0]] = e.toNCHW(e.vals[op.Outputs[0]])
	}
	return nil
}

func (e *exporter) pool(op *resnet.Operator) error {
	x, err := e.input(op, 0, 4)
	if err != nil {
		return err
	}
	x = e.toNCHW(x)
	o, _ := op.Options.(*resnet.Pool2DOptions)
	if o == nil {
		return e.errf("options %T are not pool options", op.Options)
	}
	attrs := []attribute{
		ints("kernel_shape", o.FilterH, o.FilterW), ints("strides", o.StrideH, o.StrideW),
		ints("pads", spatialPads(o.Padding, x.shape[1], x.shape[2], o.FilterH, o.FilterW, o.StrideH, o.StrideW, 1, 1)...),
	}
	out := &e.m.Tensors[op.Outputs[0]]
	if op.Op == resnet.OpMaxPool2D {
		if o.Activation == resnet.ActNone && sameQuant(out, x) {
			// The maximum of 8-bit values with one scale is exact in 8 bits.
			e.keep(op.Outputs[0], x, e.add("MaxPool", []string{x.name}, out.Name, attrs...), true)
			return nil
		}
		y := e.add("MaxPool", []string{e.float(x)}, out.Name+"/maxpool", attrs...)
		if y, err = e.activation(y, o.Activation); err != nil {
			return err
		}
		return e.output(op.Outputs[0], y, true)
	}
	// TFLite averages over the cells inside the input only.
	attrs = append(attrs, intAttr("count_include_pad", 0))
	y := e.add("AveragePool", []string{e.float(x)}, out.Name+"/avgpool", attrs...)
	if y, err = e.activation(y, o.Activation); err != nil {
		return err
	}
	return e.output(op.Outputs[0], y, true)
}

func (e *exporter) pad(op *resnet.Operator) error {
	x, err := e.input(op, 0, 0)
	if err != nil {
		return err
	}
	p, err := e.constInts(op.Inputs[1], "paddings")
	if err != nil {
		return err
	}
	r := len(x.shape)
	if len(p) != 2*r {
		return e.errf("paddings hold %d values for an input of rank %d; want %d", len(p), r, 2*r)
	}
	// ONNX pads: all begins in axis order, then all ends.
	order := make([]int, r)
	for i := range order {
		order[i] = i
	}
	if x.nchw {
		order = []int{0, 3, 1, 2}
	}
	pads := make([]int, 2*r)
	for i, a := range order {
		pads[i], pads[r+i] = p[2*a], p[2*a+1]
	}
	padsName := e.int64s("pads", pads...)
	out := &e.m.Tensors[op.Outputs[0]]
	if sameQuant(out, x) {
		// 8-bit PAD fills with the zero point: real 0, exact.
		e.keep(op.Outputs[0], x, e.add("Pad", []string{x.name, padsName, x.q.zp}, out.Name), x.nchw)
		return nil
	}
	y := e.add("Pad", []string{e.float(x), padsName, e.scalarF32("zero", 0)}, out.Name+"/pad")
	return e.output(op.Outputs[0], y, x.nchw)
}

// reshapeTo gives value x the .tflite output shape of op, in NHWC order,
// with an ONNX operator made by mk (Reshape, Squeeze); 8-bit values are
// reshaped as they are.
func (e *exporter) reshapeTo(op *resnet.Operator, mk func(in string) string) error {
	x, err := e.input(op, 0, 0)
	if err != nil {
		return err
	}
	x = e.toPlain(x)
	out := &e.m.Tensors[op.Outputs[0]]
	var y string
	switch {
	case x.q == nil || sameQuant(out, x):
		y = mk(x.name)
		if x.q == nil {
			if err := e.output(op.Outputs[0], y, false); err != nil {
				return err
			}
		} else {
			e.keep(op.Outputs[0], x, y, false)
		}
	default:
		if err := e.output(op.Outputs[0], mk(e.float(x)), false); err != nil {
			return err
		}
	}
	if len(out.Shape) == 4 {
		e.vals[op.Outputs[0]] = e.toNCHW(e.vals[op.Outputs[0]])
	}
	return nil
}

func (e *exporter) reshape(op *resnet.Operator) error {
	out := &e.m.Tensors[op.Outputs[0]]
	shape := e.int64s("shape", out.Shape...)
	return e.reshapeTo(op, func(in string) string {
		return e.add("Reshape", []string{in, shape}, out.Name)
	})
}

func (e *exporter) squeeze(op *resnet.Operator) error {
	in := &e.m.Tensors[op.Inputs[0]]
	out := &e.m.Tensors[op.Outputs[0]]
	o, _ := op.Options.(*resnet.SqueezeOptions)
	var dims []int
	if o != nil {
		dims = o.SqueezeDims
	}
	axes, ok := normAxes(dims, len(in.Shape))
	if !ok {
		return e.errf("squeeze dimensions %v are out of range for input %v", dims, in.Shape)
	}
	if len(dims) == 0 { // no dimensions given: every dimension of size 1
		for i, d := range in.Shape {
			if d == 1 {
				axes = append(axes, i)
			}
		}
	}
	if len(axes) == 0 {
		return e.reshape(op)
	}
	axesName := e.int64s("axes", axes...)
	return e.reshapeTo(op, func(x string) string {
		return e.add("Squeeze", []string{x, axesName}, out.Name)
	})
}

func (e *exporter) softmax(op *resnet.Operator) error {
	x, err := e.input(op, 0, 0)
	if err != nil {
		return err
	}
	o, _ := op.Options.(*resnet.SoftmaxOptions)
	beta := float32(1)
	if o != nil && o.Beta != 0 {
		beta = o.Beta
	}
	axis := int64(len(x.shape) - 1) // TFLite: the last (channel) axis
	if x.nchw {
		axis = 1
	}
	f := e.float(x)
	if beta != 1 {
		f = e.add("Mul", []string{f, e.scalarF32("beta", beta)}, f+"/beta")
	}
	out := e.outName(op)
	y := e.add("Softmax", []string{f}, out+"/softmax", intAttr("axis", axis))
	return e.output(op.Outputs[0], y, x.nchw)
}

func (e *exporter) quantize(op *resnet.Operator) error {
	x, err := e.input(op, 0, 0)
	if err != nil {
		return err
	}
	out := &e.m.Tensors[op.Outputs[0]]
	if out.Type != resnet.Int8 {
		return e.errf("output %q has type %v; QUANTIZE is exported to INT8 only", out.Name, out.Type)
	}
	// From float, or a requantization of another int8 tensor.
	return e.output(op.Outputs[0], e.float(x), x.nchw)
}

func (e *exporter) dequantize(op *resnet.Operator) error {
	x, err := e.input(op, 0, 0)
	if err != nil {
		return err
	}
	if x.q == nil {
		return e.errf("input %q is not int8", e.m.Tensors[op.Inputs[0]].Name)
	}
	return e.output(op.Outputs[0], e.float(x), x.nchw)
}

// weightedInputs are a Conv's or Gemm's inputs: the activation as float,
// the weights (input 1, permuted to perm and shaped dims) and, when the
// operator has one, the bias (input 2).
func (e *exporter) weightedInputs(op *resnet.Operator, x *value, perm, dims []int) ([]string, error) {
	w, wq, err := e.weights(op.Inputs[1], perm, dims, "weights")
	if err != nil {
		return nil, err
	}
	in := []string{e.float(x), w}
	if len(op.Inputs) > 2 && op.Inputs[2] >= 0 {
		b, err := e.bias(op.Inputs[2], x, wq)
		if err != nil {
			return nil, err
		}
		in = append(in, b)
	}
	return in, nil
}
