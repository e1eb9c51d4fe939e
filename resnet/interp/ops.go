package interp

import (
	"github.com/shortcut-edge/shortcut/resnet/internal/fast"
	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// The prepared operators. Each holds the indices of the tensors it reads and
// writes, its reference-kernel parameters and its constant weights as typed
// slices (shared read-only by clones). eval only fetches views and calls the
// kernel: no checks, maps, allocation or formatting on this path. Kernels
// from resnet/internal/fast run through the interpreter's fast.Runner,
// which holds their scratch memory and worker threads.

// fastConvKernel is an int8 CONV_2D, or an int8 FULLY_CONNECTED with
// symmetric weights seen as a 1x1 convolution, on the fast micro-kernels.
type fastConvKernel struct {
	in, out int
	c       *fast.Conv
}

func (k *fastConvKernel) eval(ts []Tensor, run *fast.Runner) {
	run.Conv(k.c, ts[k.in].Int8(), ts[k.out].Int8())
}

// fastDepthwiseKernel is an int8 DEPTHWISE_CONV_2D split by output rows.
type fastDepthwiseKernel struct {
	in, out int
	d       *fast.Depthwise
}

func (k *fastDepthwiseKernel) eval(ts []Tensor, run *fast.Runner) {
	run.Depthwise(k.d, ts[k.in].Int8(), ts[k.out].Int8())
}

// fastMaxPoolKernel is an int8 MAX_POOL_2D split by output rows.
type fastMaxPoolKernel struct {
	in, out int
	m       *fast.MaxPool
}

func (k *fastMaxPoolKernel) eval(ts []Tensor, run *fast.Runner) {
	run.MaxPool(k.m, ts[k.in].Int8(), ts[k.out].Int8())
}

// fastAddKernel is an int8 ADD by table lookup.
type fastAddKernel struct {
	in1, in2, out int
	a             *fast.Add
}

func (k *fastAddKernel) eval(ts []Tensor, run *fast.Runner) {
	run.Add(k.a, ts[k.in1].Int8(), ts[k.in2].Int8(), ts[k.out].Int8())
}

type convKernel struct {
	in, out   int
	depthwise bool
	quantized bool
	p         ref.Conv
	filterI8  []int8
	biasI32   []int32
	filterF32 []float32
	biasF32   []float32
}

func (k *convKernel) eval(ts []Tensor, _ *fast.Runner) {
	switch {
	case k.quantized && k.depthwise:
		ref.DepthwiseConvInt8(&k.p, ts[k.in].Int8(), k.filterI8, k.biasI32, ts[k.out].Int8())
	case k.quantized:
		ref.ConvInt8(&k.p, ts[k.in].Int8(), k.filterI8, k.biasI32, ts[k.out].Int8())
	case k.depthwise:
		ref.DepthwiseConvFloat(&k.p, ts[k.in].Float32(), k.filterF32, k.biasF32, ts[k.out].Float32())
	default:
		ref.ConvFloat(&k.p, ts[k.in].Float32(), k.filterF32, k.biasF32, ts[k.out].Float32())
	}
}

type fullyConnectedKernel struct {
	in, out    int
	quantized  bool
	p          ref.FullyConnected
	weightsI8  []int8
	biasI32    []int32
	weightsF32 []float32
	biasF32    []float32
}

func (k *fullyConnectedKernel) eval(ts []Tensor, _ *fast.Runner) {
	if k.quantized {
		ref.FullyConnectedInt8(&k.p, ts[k.in].Int8(), k.weightsI8, k.biasI32, ts[k.out].Int8())
	} else {
		ref.FullyConnectedFloat(&k.p, ts[k.in].Float32(), k.weightsF32, k.biasF32, ts[k.out].Float32())
	}
}

type addKernel struct {
	in1, in2, out int
	quantized     bool
	p             ref.Add
}

func (k *addKernel) eval(ts []Tensor, _ *fast.Runner) {
	if k.quantized {
		ref.AddInt8(&k.p, ts[k.in1].Int8(), ts[k.in2].Int8(), ts[k.out].Int8())
	} else {
		ref.AddFloat(&k.p, ts[k.in1].Float32(), ts[k.in2].Float32(), ts[k.out].Float32())
	}
}

type poolKernel struct {
	in, out   int
	average   bool
	quantized bool
	p         ref.Pool
}

func (k *poolKernel) eval(ts []Tensor, _ *fast.Runner) {
	switch {
	case k.quantized && k.average:
		ref.AveragePoolInt8(&k.p, ts[k.in].Int8(), ts[k.out].Int8())
	case k.quantized:
		ref.MaxPoolInt8(&k.p, ts[k.in].Int8(), ts[k.out].Int8())
	case k.average:
		ref.AveragePoolFloat(&k.p, ts[k.in].Float32(), ts[k.out].Float32())
	default:
		ref.MaxPoolFloat(&k.p, ts[k.in].Float32(), ts[k.out].Float32())
	}
}

type meanKernel struct {
	in, out   int
	quantized bool
	p         ref.Mean
}

func (k *meanKernel) eval(ts []Tensor, _ *fast.Runner) {
	if k.quantized {
		ref.MeanInt8(&k.p, ts[k.in].Int8(), ts[k.out].Int8())
	} else {
		ref.MeanFloat(&k.p, ts[k.in].Float32(), ts[k.out].Float32())
	}
}

type padKernel struct {
	in, out   int
	quantized bool
	value     int8 // int8 pad value: the output zero point
	p         ref.Pad
}

func (k *padKernel) eval(ts []Tensor, _ *fast.Runner) {
	if k.quantized {
		ref.PadTensor(&k.p, ts[k.in].Int8(), ts[k.out].Int8(), k.value)
	} else {
		ref.PadTensor(&k.p, ts[k.in].Float32(), ts[k.out].Float32(), 0)
	}
}

// copyKernel is RESHAPE and SQUEEZE: same bytes, new shape.
type copyKernel struct{ in, out int }

func (k *copyKernel) eval(ts []Tensor, _ *fast.Runner) { copy(ts[k.out].data, ts[k.in].data) }

type softmaxKernel struct {
	in, out   int
	quantized bool
	p         ref.Softmax
}

func (k *softmaxKernel) eval(ts []Tensor, _ *fast.Runner) {
	if k.quantized {
		ref.SoftmaxInt8(&k.p, ts[k.in].Int8(), ts[k.out].Int8())
	} else {
		ref.SoftmaxFloat(&k.p, ts[k.in].Float32(), ts[k.out].Float32())
	}
}

type quantizeKernel struct {
	in, out int
	scale   float32
	zp      int32
}

func (k *quantizeKernel) eval(ts []Tensor, _ *fast.Runner) {
	ref.QuantizeInt8(ts[k.in].Float32(), ts[k.out].Int8(), k.scale, k.zp)
}

type requantizeKernel struct {
	in, out int
	p       ref.Requant
}

func (k *requantizeKernel) eval(ts []Tensor, _ *fast.Runner) {
	ref.RequantizeInt8(&k.p, ts[k.in].Int8(), ts[k.out].Int8())
}

type dequantizeKernel struct {
	in, out int
	scale   float32
	zp      int32
}

func (k *dequantizeKernel) eval(ts []Tensor, _ *fast.Runner) {
	ref.DequantizeInt8(ts[k.in].Int8(), ts[k.out].Float32(), k.scale, k.zp)
}

// macs is the number of multiply-accumulates one inference performs in
// convolutions and fully connected layers (padding taps included), for
// benchmarks' GMAC/s.
func (p *program) macs() int64 {
	var n int64
	for _, k := range p.kernels {
		switch k := k.(type) {
		case *fastConvKernel:
			n += k.c.MACs()
		case *fastDepthwiseKernel:
			n += k.d.MACs()
		case *convKernel:
			q := &k.p
			perOut := int64(q.FilterH * q.FilterW * q.InC)
			if k.depthwise {
				perOut = int64(q.FilterH * q.FilterW)
			}
			n += int64(q.Batch*q.OutH*q.OutW*q.OutC) * perOut
		case *fullyConnectedKernel:
			n += int64(k.p.Batch) * int64(k.p.InDepth) * int64(k.p.OutDepth)
		}
	}
	return n
}
