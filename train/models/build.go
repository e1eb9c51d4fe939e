package models

import (
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Build adds the network to the graph of images (NHWC float, normalized) and returns the
// logits [N, NumClasses]. Variables live in ctx under each layer's name; training mode (batch
// statistics, moving averages) follows ctx.IsTraining.
func (n *Net) Build(ctx *context.Context, ops Ops, images *Node) *Node {
	dims := images.Shape().Dimensions
	if len(dims) != 4 || dims[1] != n.Height || dims[2] != n.Width || dims[3] != n.Channels {
		panic(fmt.Sprintf("model %s: input shape %s, want [N, %d, %d, %d]", n.Arch, images.Shape(),
			n.Height, n.Width, n.Channels))
	}
	t := map[string]*Node{InputName: images}
	for _, l := range n.Layers {
		in := t[l.Inputs[0]]
		var y *Node
		switch l.Kind {
		case OpConv:
			y = conv2d(ctx.In(l.Name), ops, in, l.Out, l.Kernel, l.Stride, l.Pad)
		case OpBatchNorm:
			y = batchNorm(ctx.In(l.Name), in)
		case OpReLU:
			y = Max(in, ScalarZero(in.Graph(), in.DType()))
		case OpAdd:
			y = Add(in, t[l.Inputs[1]])
		case OpShortcutA:
			y = shortcutA(in, l.Out, l.Stride)
		case OpMaxPool:
			y = maxPool(in)
		case OpGlobalAvgPool:
			y = globalAvgPool(in)
		case OpDense:
			y = dense(ctx.In(l.Name), ops, in, l.Out)
		default:
			panic(fmt.Sprintf("model %s: layer %s has unknown kind %q", n.Arch, l.Name, l.Kind))
		}
		t[l.Name] = y
	}
	return t[n.Output()]
}

// shortcutA subsamples x by stride and appends zero channels up to out (He et al., option A).
func shortcutA(x *Node, out, stride int) *Node {
	if stride > 1 {
		x = Slice(x, AxisRange(), AxisRange().Stride(stride), AxisRange().Stride(stride), AxisRange())
	}
	d := x.Shape().Dimensions
	if extra := out - d[3]; extra > 0 {
		zeros := Zeros(x.Graph(), shapes.Make(x.DType(), d[0], d[1], d[2], extra))
		x = Concatenate([]*Node{x, zeros}, 3)
	}
	return x
}
