package resnet

import (
	"fmt"
	"math"
)

// This file holds the rules a .tflite file must follow beyond what Validate
// needs to hold and run a model: each operator's own rules as TFLite's
// Prepare applies them (tensorflow/lite/kernels/*.cc) and the int8
// quantization specification
// (https://www.tensorflow.org/lite/performance/quantization_spec). Our
// kernels would run most of these files anyway, taking for example a bias
// scale from input × weight scales whatever the file says, but they would
// then compute something other than what the file describes, and a real
// TFLite refuses them or reads them differently. So Load refuses them, and
// Marshal refuses to write them.
//
// Validate does not apply these rules: models built in memory (tests, the
// agent's head export) may leave out what the file format spells out, such
// as a bias's quantization, and the interpreter accepts them.

// minNormalScale is the smallest normal float32, 2^-126. The specification
// asks for normal scales: a denormal one loses precision in every product
// and gives effective multipliers far below what fixed point represents.
const minNormalScale = 0x1p-126

// biasScaleTolerance is how far, relatively, a bias scale may differ from
// input scale × weight scale. Converters compute the product in float32 or
// in double from unrounded scales, which differ by a few units in the last
// place (about 1e-7); the kernels use the product, not the bias scale, so a
// bias of B output steps lands δ·B steps away from what the file says, a
// tenth of a step for B = 1000 at this δ.
const biasScaleTolerance = 1e-4

// sameScaleTolerance is how far apart the scales of an operator that must
// keep its input's quantization may be: TFLite's pooling Prepare allows
// 1e-6, and resnet/interp applies the same.
const sameScaleTolerance = 1e-6

// maxDepthwiseStride is the largest stride TFLite's DEPTHWISE_CONV_2D
// Prepare accepts.
const maxDepthwiseStride = 0xFFFF

// validateSpec checks every operator of m against its TFLite rules and the
// int8 specification. It assumes m passed Validate (indices in range,
// input and output counts right, options of the right type, quantization
// parameters self-consistent). Errors name the operator, the tensor and its
// role, and the rule.
func (m *Model) validateSpec() error {
	for i := range m.Operators {
		c := specCheck{m: m, i: i, op: &m.Operators[i]}
		if err := c.check(); err != nil {
			return err
		}
	}
	return nil
}

type specCheck struct {
	m  *Model
	i  int
	op *Operator
}

func (c *specCheck) tensor(t int) *Tensor { return &c.m.Tensors[t] }

// failOp reports a broken rule of the operator itself (its options).
func (c *specCheck) failOp(format string, args ...any) error {
	return fmt.Errorf("model: %s: %s", c.m.opRef(c.i), fmt.Sprintf(format, args...))
}

// fail reports a broken rule about tensor t in the given role.
func (c *specCheck) fail(role string, t int, format string, args ...any) error {
	return fmt.Errorf("model: %s: %s %s: %s", c.m.opRef(c.i), role, c.m.tensorRef(t), fmt.Sprintf(format, args...))
}

// input returns the tensor index of input k, or -1 when it is absent or
// omitted.
func (c *specCheck) input(k int) int {
	if k < len(c.op.Inputs) {
		return c.op.Inputs[k]
	}
	return -1
}

func (c *specCheck) check() error {
	op := c.op
	in, out := c.input(0), op.Outputs[0]
	if err := c.options(); err != nil {
		return err
	}
	info, _ := Op(op.Op) // Validate checked op is supported
	switch info.Quant {
	case QuantWeighted:
		role := "filter"
		if op.Op == OpFullyConnected {
			role = "weights"
		}
		if err := c.activation("input", in); err != nil {
			return err
		}
		w := c.input(1)
		if err := c.weights(role, w, info.WeightChannelDim); err != nil {
			return err
		}
		if b := c.input(2); b >= 0 && c.tensor(in).Type == Int8 {
			if err := c.bias(b, in, w, role); err != nil {
				return err
			}
		}
		return c.activation("output", out)
	case QuantOwnRange:
		// Every input that is not a constant (MEAN's axes) is an activation.
		var acts []int
		for k := range op.Inputs {
			if t := c.input(k); t >= 0 && len(c.tensor(t).Data) == 0 {
				acts = append(acts, t)
			}
		}
		for k, t := range acts {
			role := "input"
			if len(acts) > 1 {
				role = fmt.Sprintf("input %d", k+1)
			}
			if err := c.activation(role, t); err != nil {
				return err
			}
		}
		return c.activation("output", out)
	case QuantKeepInput:
		if err := c.activation("input", in); err != nil {
			return err
		}
		if err := c.activation("output", out); err != nil {
			return err
		}
		return c.sameQuant(in, out)
	case QuantSoftmax:
		if err := c.activation("input", in); err != nil {
			return err
		}
		if err := c.activation("output", out); err != nil {
			return err
		}
		return c.softmaxOutput(in, out)
	case QuantBoundary:
		// A constant DEQUANTIZE input may be per-channel (weights kept in
		// int8 for a float model); what it may be is this runtime's business.
		if op.Op == OpDequantize && len(c.tensor(in).Data) != 0 {
			return nil
		}
		if err := c.activation("input", in); err != nil {
			return err
		}
		return c.activation("output", out)
	}
	return nil
}

// options checks option values that TFLite's Prepare refuses and that
// Validate lets through because models built in memory use them.
func (c *specCheck) options() error {
	if o, ok := c.op.Options.(*DepthwiseConv2DOptions); ok {
		if o.StrideW > maxDepthwiseStride || o.StrideH > maxDepthwiseStride {
			return c.failOp("strides (w, h) [%d %d]: TFLite's DEPTHWISE_CONV_2D accepts strides up to %d",
				o.StrideW, o.StrideH, maxDepthwiseStride)
		}
	}
	return nil
}

// normalScales checks that every scale of tensor t is a normal float32.
func (c *specCheck) normalScales(role string, t int) error {
	q := c.tensor(t).Quant
	if q == nil {
		return nil
	}
	for k, s := range q.Scale {
		if s < minNormalScale {
			return c.fail(role, t, "scale[%d] is %g, a denormal float32: the int8 specification needs normal scales (at least 2^-126 = %g)",
				k, s, minNormalScale)
		}
	}
	return nil
}

// activation checks an int8 activation tensor (t may be -1 for an absent
// optional input): one scale and one zero point for the whole tensor, the
// scale normal. Other types are left to the interpreter's type checks.
func (c *specCheck) activation(role string, t int) error {
	if t < 0 || c.tensor(t).Type != Int8 {
		return nil
	}
	if q := c.tensor(t).Quant; len(q.Scale) != 1 {
		return c.fail(role, t, "%d scales along dimension %d: the int8 specification quantizes activations per tensor (one scale and zero point)",
			len(q.Scale), q.Dim)
	}
	return c.normalScales(role, t)
}

// weights checks int8 weights: symmetric (every zero point 0), per tensor or
// per channel along dim (the output channels), normal scales.
func (c *specCheck) weights(role string, t, dim int) error {
	if t < 0 || c.tensor(t).Type != Int8 {
		return nil
	}
	q := c.tensor(t).Quant
	for k, z := range q.ZeroPoint {
		if z != 0 {
			return c.fail(role, t, "zero point[%d] is %d: the int8 specification makes weights symmetric (zero point 0)", k, z)
		}
	}
	if len(q.Scale) > 1 && q.Dim != dim {
		return c.fail(role, t, "per-channel scales along dimension %d: %s weights are quantized along dimension %d (their output channels)",
			q.Dim, c.op.Op, dim)
	}
	return c.normalScales(role, t)
}

// bias checks the bias b of an int8 convolution or fully connected
// operator with input in and weights w: INT32, zero point 0, and each
// channel's scale equal to input scale × that channel's weight scale.
func (c *specCheck) bias(b, in, w int, wRole string) error {
	bt := c.tensor(b)
	if bt.Type != Int32 {
		return c.fail("bias", b, "type %v, but an int8 %s takes an INT32 bias", bt.Type, c.op.Op)
	}
	q := bt.Quant
	if q == nil || len(q.Scale) == 0 {
		return c.fail("bias", b, "no quantization parameters, but the int8 specification gives a bias the scale input scale × weight scale and zero point 0")
	}
	for k, z := range q.ZeroPoint {
		if z != 0 {
			return c.fail("bias", b, "zero point[%d] is %d: the int8 specification gives a bias zero point 0", k, z)
		}
	}
	if err := c.normalScales("bias", b); err != nil {
		return err
	}
	it, wt := c.tensor(in), c.tensor(w)
	if wt.Type != Int8 || len(it.Quant.Scale) != 1 {
		return nil // refused elsewhere: weights of another type, per-channel input
	}
	inScale, bs, ws := it.Quant.Scale[0], q.Scale, wt.Quant.Scale
	if len(bs) > 1 && len(ws) > 1 && len(bs) != len(ws) {
		return c.fail("bias", b, "%d scales, but %s %s has %d: the int8 specification gives a bias one scale per weight scale",
			len(bs), wRole, c.m.tensorRef(w), len(ws))
	}
	for ch := range max(len(bs), len(ws)) {
		kb, kw := min(ch, len(bs)-1), min(ch, len(ws)-1)
		want := float64(inScale) * float64(ws[kw]) // exact: 24-bit significands
		if got := float64(bs[kb]); math.Abs(got-want) > biasScaleTolerance*want {
			return c.fail("bias", b, "scale[%d] is %g, but the int8 specification requires input scale × %s scale[%d] = %g × %g = %g (relative tolerance %g; input %s, %s %s)",
				kb, bs[kb], wRole, kw, inScale, ws[kw], float32(want), biasScaleTolerance, c.m.tensorRef(in), wRole, c.m.tensorRef(w))
		}
	}
	return nil
}

// sameQuant checks that an int8 output keeps its input's quantization, as
// the specification requires of pooling, padding and reshaping.
func (c *specCheck) sameQuant(in, out int) error {
	it, ot := c.tensor(in), c.tensor(out)
	if it.Type != Int8 || ot.Type != Int8 {
		return nil
	}
	si, so := it.Quant.Scale[0], ot.Quant.Scale[0]
	zi, zo := it.Quant.ZeroPoint[0], ot.Quant.ZeroPoint[0]
	if math.Abs(float64(si)-float64(so)) > sameScaleTolerance || zi != zo {
		return c.fail("output", out, "scale %g and zero point %d differ from input %s (scale %g, zero point %d): the int8 specification has %s keep its input's quantization",
			so, zo, c.m.tensorRef(in), si, zi, c.op.Op)
	}
	return nil
}

// softmaxOutput checks the fixed output quantization of int8 SOFTMAX: scale
// 1/256 and zero point -128, with the tolerance of TFLite's Prepare.
func (c *specCheck) softmaxOutput(in, out int) error {
	if c.tensor(in).Type != Int8 || c.tensor(out).Type != Int8 {
		return nil
	}
	q := c.tensor(out).Quant
	if s, z := q.Scale[0], q.ZeroPoint[0]; math.Abs(float64(s)-1.0/256) > 0.001/256 || z != -128 {
		return c.fail("output", out, "scale %g and zero point %d: int8 SOFTMAX outputs have scale 1/256 and zero point -128 (int8 specification)", s, z)
	}
	return nil
}
