// Package models defines the ResNets that shortcut-train trains: the CIFAR family of He et al.
// (ResNet-20/32/44/56/110 and their plain twins without shortcuts) and the ImageNet layout
// (ResNet-18/34 basic blocks, ResNet-50 bottleneck v1.5), for any input size and channel count.
//
// A network is described once, as a list of layers (Net), and that description is read twice:
// Net.Build makes the GoMLX graph for training; the exporter (package train) writes the same
// list with batch norm folded, so the two cannot disagree about the graph.
package models

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind is the operation of a Layer.
type Kind string

const (
	OpConv          Kind = "conv"            // k x k convolution, no bias, symmetric zero padding
	OpBatchNorm     Kind = "batchnorm"       // per-channel batch normalization
	OpReLU          Kind = "relu"            //
	OpAdd           Kind = "add"             // elementwise sum of two inputs
	OpShortcutA     Kind = "shortcut_a"      // option A: take every Stride-th pixel, zero-pad channels In -> Out
	OpMaxPool       Kind = "maxpool"         // Kernel x Kernel, Stride, Pad (padding never wins the max)
	OpGlobalAvgPool Kind = "global_avg_pool" // mean over the spatial axes: [N,H,W,C] -> [N,C]
	OpDense         Kind = "dense"           // fully connected with bias: [N,In] -> [N,Out]
)

// Layer is one operation of a network. Its output tensor is called Name; Name is also the
// variable scope of layers that have weights (Conv, BatchNorm, Dense).
type Layer struct {
	Kind   Kind
	Name   string
	Inputs []string
	In     int // input channels (features for Dense)
	Out    int // output channels (features for Dense)
	Kernel int
	Stride int
	Pad    int // zero padding on every spatial side
}

// InputName is the name of the network input tensor (NHWC, normalized float32).
const InputName = "input"

// Net is a whole network: layers in execution order, the last one producing the logits.
type Net struct {
	Arch       string
	Height     int
	Width      int
	Channels   int
	NumClasses int
	Layers     []Layer
}

// Output is the name of the logits tensor.
func (n *Net) Output() string { return n.Layers[len(n.Layers)-1].Name }

// Config selects an architecture.
type Config struct {
	// Arch is resnet<d> or plain<d> with d = 6k+2 (CIFAR layout: 8, 20, 32, 44, 56, 110, ...),
	// or resnet18/34/50/101/152 and their plain twins plain18/34/50/101/152 (ImageNet layout; add
	// the prefix "imagenet-" to be explicit).
	Arch string
	// BaseWidth is the channel count of the first stage; 0 means 16 (CIFAR) or 64 (ImageNet).
	BaseWidth int
	// Height, Width, Channels describe the input images (e.g. 28, 28, 1 for Fashion-MNIST).
	Height, Width, Channels int
	NumClasses              int
}

// imagenetLayouts are the ImageNet ResNets' blocks per stage (He et al.,
// Table 1); depths 50 and up use bottleneck blocks.
var imagenetLayouts = map[string]struct {
	blocks     []int
	bottleneck bool
}{
	"18": {[]int{2, 2, 2, 2}, false}, "34": {[]int{3, 4, 6, 3}, false}, "50": {[]int{3, 4, 6, 3}, true},
	"101": {[]int{3, 4, 23, 3}, true}, "152": {[]int{3, 8, 36, 3}, true},
}

// ArchNames lists example architecture names accepted by New.
var ArchNames = []string{"resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
	"plain20", "plain32", "plain44", "plain56", "plain110", "resnet18", "resnet34", "resnet50", "resnet101",
	"resnet152", "plain18", "plain34", "plain50", "plain101", "plain152"}

// New returns the layer list of the network cfg describes.
func New(cfg Config) (*Net, error) {
	if cfg.Height < 8 || cfg.Width < 8 {
		return nil, fmt.Errorf("model %s: input %dx%d too small (need at least 8x8)", cfg.Arch, cfg.Height, cfg.Width)
	}
	if cfg.Channels < 1 || cfg.NumClasses < 2 {
		return nil, fmt.Errorf("model %s: need channels >= 1 and classes >= 2, got %d channels, %d classes",
			cfg.Arch, cfg.Channels, cfg.NumClasses)
	}
	if cfg.BaseWidth < 0 {
		return nil, fmt.Errorf("model %s: negative base width %d", cfg.Arch, cfg.BaseWidth)
	}
	arch := strings.ToLower(strings.TrimSpace(cfg.Arch))
	b := &netBuilder{net: &Net{Arch: arch, Height: cfg.Height, Width: cfg.Width, Channels: cfg.Channels,
		NumClasses: cfg.NumClasses}, last: InputName, ch: cfg.Channels}
	name := strings.TrimPrefix(arch, "imagenet-")
	if layout, ok := imagenetLayouts[strings.TrimPrefix(strings.TrimPrefix(name, "resnet"), "plain")]; ok &&
		(strings.HasPrefix(name, "resnet") || strings.HasPrefix(name, "plain")) {
		b.imagenet(cfg, layout.blocks, layout.bottleneck, strings.HasPrefix(name, "plain"))
		return b.net, nil
	}
	switch {
	case strings.HasPrefix(arch, "resnet") || strings.HasPrefix(arch, "plain"):
		plain := strings.HasPrefix(arch, "plain")
		depth, err := strconv.Atoi(strings.TrimPrefix(strings.TrimPrefix(arch, "resnet"), "plain"))
		if err != nil || depth < 8 || (depth-2)%6 != 0 {
			return nil, fmt.Errorf("model %q: CIFAR depth must be 6k+2 >= 8 (20, 32, 44, 56, 110), "+
				"or use resnet18/34/50; known: %s", cfg.Arch, strings.Join(ArchNames, ", "))
		}
		b.cifar(cfg, (depth-2)/6, plain)
	default:
		return nil, fmt.Errorf("model %q: unknown architecture; known: %s", cfg.Arch, strings.Join(ArchNames, ", "))
	}
	return b.net, nil
}

// netBuilder appends layers, tracking the current tensor and its channel count.
type netBuilder struct {
	net  *Net
	last string
	ch   int
}

func (b *netBuilder) add(l Layer) string {
	if l.Inputs == nil {
		l.Inputs = []string{b.last}
	}
	b.net.Layers = append(b.net.Layers, l)
	b.last = l.Name
	return l.Name
}

// convBN appends conv -> batchnorm (-> relu), named prefix+"conv"+suffix etc. (torchvision style).
func (b *netBuilder) convBN(conv, bn, relu string, from string, out, k, stride int) string {
	b.add(Layer{Kind: OpConv, Name: conv, Inputs: []string{from}, In: b.chOf(from), Out: out, Kernel: k,
		Stride: stride, Pad: k / 2})
	b.add(Layer{Kind: OpBatchNorm, Name: bn, In: out, Out: out})
	if relu != "" {
		b.add(Layer{Kind: OpReLU, Name: relu, In: out, Out: out})
	}
	return b.last
}

// chOf returns the channel count of a named tensor.
func (b *netBuilder) chOf(name string) int {
	if name == InputName {
		return b.net.Channels
	}
	for i := len(b.net.Layers) - 1; i >= 0; i-- {
		if b.net.Layers[i].Name == name {
			return b.net.Layers[i].Out
		}
	}
	panic("models: unknown tensor " + name)
}

func (b *netBuilder) head() {
	feat := b.chOf(b.last)
	b.add(Layer{Kind: OpGlobalAvgPool, Name: "avgpool", In: feat, Out: feat})
	b.add(Layer{Kind: OpDense, Name: "fc", In: feat, Out: b.net.NumClasses})
}

// cifar builds He et al.'s CIFAR ResNet: 3x3 conv, three stages of n basic blocks with widths
// w, 2w, 4w (stride 2 at the start of stages 2 and 3), option-A shortcuts, average pool, fc.
func (b *netBuilder) cifar(cfg Config, n int, plain bool) {
	w := cfg.BaseWidth
	if w == 0 {
		w = 16
	}
	x := b.convBN("conv1", "bn1", "relu1", InputName, w, 3, 1)
	for stage := range 3 {
		width := w << stage
		for blk := range n {
			stride := 1
			if stage > 0 && blk == 0 {
				stride = 2
			}
			p := fmt.Sprintf("layer%d.%d.", stage+1, blk)
			in := b.chOf(x)
			b.convBN(p+"conv1", p+"bn1", p+"relu1", x, width, 3, stride)
			y := b.convBN(p+"conv2", p+"bn2", "", b.last, width, 3, 1)
			if !plain {
				short := x
				if stride != 1 || in != width {
					short = b.add(Layer{Kind: OpShortcutA, Name: p + "shortcut", Inputs: []string{x}, In: in,
						Out: width, Stride: stride})
				}
				y = b.add(Layer{Kind: OpAdd, Name: p + "add", Inputs: []string{y, short}, In: width, Out: width})
			}
			x = b.add(Layer{Kind: OpReLU, Name: p + "relu2", Inputs: []string{y}, In: width, Out: width})
		}
	}
	b.head()
}

// imagenet builds torchvision's ResNet layout: 7x7/2 conv, 3x3/2 max pool, four stages
// (widths w, 2w, 4w, 8w; bottleneck blocks expand by 4 with the stride on the 3x3 conv, v1.5),
// projection shortcuts (1x1 conv + batch norm) where the shape changes.
func (b *netBuilder) imagenet(cfg Config, blocks []int, bottleneck, plain bool) {
	w := cfg.BaseWidth
	if w == 0 {
		w = 64
	}
	b.convBN("conv1", "bn1", "relu1", InputName, w, 7, 2)
	x := b.add(Layer{Kind: OpMaxPool, Name: "maxpool", In: w, Out: w, Kernel: 3, Stride: 2, Pad: 1})
	for stage, n := range blocks {
		width := w << stage
		for blk := range n {
			stride := 1
			if stage > 0 && blk == 0 {
				stride = 2
			}
			p := fmt.Sprintf("layer%d.%d.", stage+1, blk)
			in := b.chOf(x)
			var y string
			out := width
			if bottleneck {
				out = 4 * width
				b.convBN(p+"conv1", p+"bn1", p+"relu1", x, width, 1, 1)
				b.convBN(p+"conv2", p+"bn2", p+"relu2", b.last, width, 3, stride)
				y = b.convBN(p+"conv3", p+"bn3", "", b.last, out, 1, 1)
			} else {
				b.convBN(p+"conv1", p+"bn1", p+"relu1", x, width, 3, stride)
				y = b.convBN(p+"conv2", p+"bn2", "", b.last, width, 3, 1)
			}
			if plain {
				// The plain twin: the same convolutions without the shortcut.
				x = b.add(Layer{Kind: OpReLU, Name: p + "relu", Inputs: []string{y}, In: out, Out: out})
				continue
			}
			short := x
			if stride != 1 || in != out {
				short = b.convBN(p+"downsample.0", p+"downsample.1", "", x, out, 1, stride)
			}
			y = b.add(Layer{Kind: OpAdd, Name: p + "add", Inputs: []string{y, short}, In: out, Out: out})
			x = b.add(Layer{Kind: OpReLU, Name: p + "relu", Inputs: []string{y}, In: out, Out: out})
		}
	}
	b.head()
}
