package build

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/shortcut-edge/shortcut/resnet"
)

// Role tells a WeightSource what a requested array is for, so a random
// source can initialise it sensibly; sources of trained weights ignore it.
type Role int

const (
	RoleConv      Role = iota // a convolution inside a branch
	RoleBranchEnd             // the last convolution of a residual branch
	RoleBias                  // any bias
	RoleFC                    // classifier weights
)

// WeightSource returns the float32 values of a named array with the given
// shape (OHWI for convolutions, [out,in] for the classifier).
type WeightSource func(name string, shape []int, role Role) ([]float32, error)

// RandomWeights returns a deterministic source of He-initialised, zero-mean
// weights. The last convolution of each residual branch is scaled down so
// activations stay in range through deep residual stacks (as a folded batch
// norm with small gamma would), which keeps int8 tests meaningful.
func RandomWeights(seed uint64) WeightSource {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return func(name string, shape []int, role Role) ([]float32, error) {
		n := product(shape)
		v := make([]float32, n)
		switch role {
		case RoleBias:
			for i := range v {
				v[i] = float32(r.NormFloat64() * 0.05)
			}
			return v, nil
		}
		fanIn := 1
		if len(shape) > 1 {
			fanIn = product(shape[1:])
		}
		std := math.Sqrt(2 / float64(max(fanIn, 1)))
		switch role {
		case RoleBranchEnd:
			std *= 0.3
		case RoleFC:
			std = math.Sqrt(1 / float64(max(fanIn, 1)))
		}
		for i := range v {
			v[i] = float32(r.NormFloat64() * std)
		}
		return v, nil
	}
}

// Config selects a ResNet.
type Config struct {
	// Depth: 20, 32, 44, 56, 110 (CIFAR, 6n+2) or 18, 34, 50 (ImageNet layout).
	Depth int
	// Plain drops every shortcut (the "plain" twin of the paper).
	Plain bool
	// Input is H, W, C (for example 32,32,3 or 224,224,3 or 28,28,1).
	Input   [3]int
	Classes int
	Weights WeightSource
	Meta    resnet.Metadata
}

// CIFAR reports whether a depth has the CIFAR layout (6n+2 layers) rather
// than an ImageNet one (18, 34, 50).
func CIFAR(depth int) bool {
	return depth >= 8 && (depth-2)%6 == 0 && depth != 50
}

// ResNet builds a float model with two outputs: class scores (softmax) and
// the pooled embedding that feeds the classifier.
func ResNet(c Config) (*resnet.Model, error) {
	if c.Classes <= 0 {
		return nil, fmt.Errorf("build: ResNet needs a positive class count, got %d", c.Classes)
	}
	if c.Input[0] <= 0 || c.Input[1] <= 0 || c.Input[2] <= 0 {
		return nil, fmt.Errorf("build: ResNet input %v must be positive H,W,C", c.Input)
	}
	if c.Weights == nil {
		return nil, fmt.Errorf("build: ResNet needs a WeightSource (use RandomWeights for tests)")
	}
	kind := "resnet"
	if c.Plain {
		kind = "plain"
	}
	b := &rb{g: New(fmt.Sprintf("%s-%d %dx%dx%d", kind, c.Depth, c.Input[0], c.Input[1], c.Input[2])), ws: c.Weights, plain: c.Plain}
	x := b.g.Input("input", 1, c.Input[0], c.Input[1], c.Input[2])
	// 50 is also 6n+2; the ImageNet layouts take precedence, as the paper's
	// CIFAR networks are 20, 32, 44, 56 and 110 deep.
	switch {
	case c.Depth == 18 || c.Depth == 34 || c.Depth == 50:
		x = b.imagenet(x, c.Depth)
	case CIFAR(c.Depth):
		x = b.cifar(x, (c.Depth-2)/6)
	default:
		return nil, fmt.Errorf("build: unsupported ResNet depth %d (want 6n+2 for CIFAR, or 18, 34, 50)", c.Depth)
	}
	if b.err != nil {
		return nil, b.err
	}
	emb := b.g.SpatialMean("embedding", x, false)
	width := b.g.Shape(emb)[1]
	w := b.get("logits/weights", []int{c.Classes, width}, RoleFC)
	bias := b.get("logits/bias", []int{c.Classes}, RoleBias)
	if b.err != nil {
		return nil, b.err
	}
	logits := b.g.FullyConnected("logits", emb, c.Classes, w, bias, resnet.ActNone)
	scores := b.g.Softmax("scores", logits, 1)
	b.g.Output(scores)
	b.g.Output(emb)
	meta := c.Meta
	if len(meta.OutputNames) == 0 {
		meta.OutputNames = []string{"scores", "embedding"}
	}
	b.g.SetMeta(meta)
	return b.g.Finish()
}

type rb struct {
	g     *Graph
	ws    WeightSource
	plain bool
	err   error
}

func (b *rb) get(name string, shape []int, role Role) []float32 {
	if b.err != nil {
		return nil
	}
	v, err := b.ws(name, shape, role)
	if err == nil && len(v) != product(shape) {
		err = fmt.Errorf("has %d values, want %d for shape %v", len(v), product(shape), shape)
	}
	if err != nil {
		b.err = fmt.Errorf("build: weights %q: %w", name, err)
	}
	return v
}

func (b *rb) conv(name string, x, out, k, stride int, pad resnet.Padding, act resnet.Activation, role Role) int {
	if b.err != nil {
		return -1
	}
	in := b.g.Shape(x)
	w := b.get(name+"/weights", []int{out, k, k, in[3]}, role)
	bias := b.get(name+"/bias", []int{out}, RoleBias)
	if b.err != nil {
		return -1
	}
	return b.g.Conv2D(name, x, ConvSpec{Out: out, KH: k, KW: k, StrideH: stride, StrideW: stride,
		Padding: pad, Act: act, Weights: w, Bias: bias})
}

// join ends a block: the residual ADD with ReLU, or nothing for plain nets
// (whose last convolution then carries the ReLU itself).
func (b *rb) join(name string, branch, shortcut int) int {
	if b.plain {
		return branch
	}
	return b.g.Add(name+"/add", branch, shortcut, resnet.ActRelu)
}

func (b *rb) lastAct() (resnet.Activation, Role) {
	if b.plain {
		return resnet.ActRelu, RoleConv
	}
	return resnet.ActNone, RoleBranchEnd
}

func (b *rb) shortcut(name string, x, out, stride int) int {
	if b.plain {
		return -1
	}
	in := b.g.Shape(x)
	if in[3] == out && stride == 1 {
		return x
	}
	return b.conv(name+"/shortcut", x, out, 1, stride, resnet.PaddingSame, resnet.ActNone, RoleBranchEnd)
}

// cifar is the paper's CIFAR-10 network: 3x3 conv, three stages of n basic
// blocks with 16, 32, 64 filters, projection shortcuts where shapes change.
func (b *rb) cifar(x, n int) int {
	x = b.conv("conv1", x, 16, 3, 1, resnet.PaddingSame, resnet.ActRelu, RoleConv)
	for s, width := range []int{16, 32, 64} {
		for i := 0; i < n; i++ {
			stride := 1
			if s > 0 && i == 0 {
				stride = 2
			}
			x = b.basic(fmt.Sprintf("stage%d/block%d", s+1, i+1), x, width, stride)
		}
	}
	return x
}

func (b *rb) basic(name string, x, width, stride int) int {
	sc := b.shortcut(name, x, width, stride)
	y := b.conv(name+"/conv1", x, width, 3, stride, resnet.PaddingSame, resnet.ActRelu, RoleConv)
	act, role := b.lastAct()
	y = b.conv(name+"/conv2", y, width, 3, 1, resnet.PaddingSame, act, role)
	return b.join(name, y, sc)
}

func (b *rb) bottleneck(name string, x, mid, stride int) int {
	out := 4 * mid
	sc := b.shortcut(name, x, out, stride)
	y := b.conv(name+"/conv1", x, mid, 1, 1, resnet.PaddingSame, resnet.ActRelu, RoleConv)
	// v1.5: the stride sits on the 3x3 convolution.
	y = b.conv(name+"/conv2", y, mid, 3, stride, resnet.PaddingSame, resnet.ActRelu, RoleConv)
	act, role := b.lastAct()
	y = b.conv(name+"/conv3", y, out, 1, 1, resnet.PaddingSame, act, role)
	return b.join(name, y, sc)
}

// imagenet is the ResNet-18/34/50 layout: explicit zero padding then a 7x7/2
// convolution and a 3x3/2 max pool (as Keras writes it), four stages.
func (b *rb) imagenet(x, depth int) int {
	blocks := map[int][]int{18: {2, 2, 2, 2}, 34: {3, 4, 6, 3}, 50: {3, 4, 6, 3}}[depth]
	x = b.g.Pad("stem/pad", x, [][2]int{{0, 0}, {3, 3}, {3, 3}, {0, 0}})
	x = b.conv("stem/conv", x, 64, 7, 2, resnet.PaddingValid, resnet.ActRelu, RoleConv)
	x = b.g.Pad("stem/pool_pad", x, [][2]int{{0, 0}, {1, 1}, {1, 1}, {0, 0}})
	x = b.g.MaxPool2D("stem/pool", x, 3, 2, resnet.PaddingValid)
	for s, n := range blocks {
		width := 64 << s
		for i := 0; i < n; i++ {
			stride := 1
			if s > 0 && i == 0 {
				stride = 2
			}
			name := fmt.Sprintf("stage%d/block%d", s+1, i+1)
			if depth >= 50 {
				x = b.bottleneck(name, x, width, stride)
			} else {
				x = b.basic(name, x, width, stride)
			}
		}
	}
	return x
}
