package models

import (
	"math"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/shortcut-edge/shortcut/train/backend"
)

// paramCount counts weights from the layer list (conv: k*k*in*out, batch norm: scale and offset,
// dense: weights and biases), as PyTorch counts parameters.
func paramCount(n *Net) int {
	total := 0
	for _, l := range n.Layers {
		switch l.Kind {
		case OpConv:
			total += l.Kernel * l.Kernel * l.In * l.Out
		case OpBatchNorm:
			total += 2 * l.Out
		case OpDense:
			total += l.In*l.Out + l.Out
		}
	}
	return total
}

func TestArchitecturesHaveThePublishedParameterCounts(t *testing.T) {
	cases := []struct {
		arch    string
		h, c, k int
		want    int
	}{
		// torchvision's counts for 224x224 RGB, 1000 classes.
		{"resnet18", 224, 3, 1000, 11689512},
		{"resnet34", 224, 3, 1000, 21797672},
		{"resnet50", 224, 3, 1000, 25557032},
		{"resnet101", 224, 3, 1000, 44549160},
		{"resnet152", 224, 3, 1000, 60192808},
		// He et al. (Table 6) report 0.27M, 0.85M and 1.7M for CIFAR ResNet-20, -56 and -110;
		// option-A shortcuts add no weights, so the plain twin has the same count.
		{"resnet20", 32, 3, 10, 269722},
		{"plain20", 32, 3, 10, 269722},
		{"resnet56", 32, 3, 10, 853018},
		{"resnet110", 32, 3, 10, 1727962},
	}
	paper := map[string]float64{"resnet20": 0.27, "plain20": 0.27, "resnet56": 0.85, "resnet110": 1.7}
	for _, tc := range cases {
		n, err := New(Config{Arch: tc.arch, Height: tc.h, Width: tc.h, Channels: tc.c, NumClasses: tc.k})
		if err != nil {
			t.Fatal(err)
		}
		got := paramCount(n)
		if got != tc.want {
			t.Errorf("%s: %d parameters, want %d", tc.arch, got, tc.want)
		}
		if m, ok := paper[tc.arch]; ok && math.Abs(float64(got)/1e6-m) > 0.005*max(1, m*10) {
			t.Errorf("%s: %.3fM parameters, the paper says %.2fM", tc.arch, float64(got)/1e6, m)
		}
	}
}

func TestPlainNetsHaveNoShortcuts(t *testing.T) {
	for arch, blocks := range map[string]int{"plain20": 9, "resnet20": 9, "plain50": 16, "resnet50": 16, "plain18": 8, "resnet152": 50} {
		n, err := New(Config{Arch: arch, Height: 32, Width: 32, Channels: 3, NumClasses: 10})
		if err != nil {
			t.Fatal(err)
		}
		adds := 0
		for _, l := range n.Layers {
			if l.Kind == OpAdd {
				adds++
			}
		}
		want := blocks
		if strings.HasPrefix(arch, "plain") {
			want = 0
		}
		if adds != want {
			t.Errorf("%s: %d residual additions, want %d", arch, adds, want)
		}
	}
}

func TestNewRejectsBadConfigurations(t *testing.T) {
	cases := map[string]Config{
		"depth not 6k+2": {Arch: "resnet21", Height: 32, Width: 32, Channels: 3, NumClasses: 10},
		"unknown":        {Arch: "vgg16", Height: 32, Width: 32, Channels: 3, NumClasses: 10},
		"tiny input":     {Arch: "resnet20", Height: 4, Width: 4, Channels: 3, NumClasses: 10},
		"one class":      {Arch: "resnet20", Height: 32, Width: 32, Channels: 3, NumClasses: 1},
	}
	for name, cfg := range cases {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted %+v", name, cfg)
		}
	}
}

func TestEveryArchitectureRunsOnSmallInputs(t *testing.T) {
	be, err := backend.NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		arch     string
		width    int
		h, w, c  int
		trainToo bool
	}{
		{"resnet8", 4, 28, 28, 1, true},  // grey Fashion-MNIST size, odd stage sizes (7x7)
		{"plain20", 4, 14, 14, 1, false}, //
		{"resnet18", 4, 32, 32, 3, true}, // ImageNet layout on CIFAR-sized images, max pool gradient
		{"resnet34", 2, 40, 24, 3, false},
		{"resnet50", 2, 32, 32, 1, true}, // bottleneck v1.5, projection shortcuts
	}
	for _, tc := range cases {
		t.Run(tc.arch, func(t *testing.T) {
			n, err := New(Config{Arch: tc.arch, BaseWidth: tc.width, Height: tc.h, Width: tc.w, Channels: tc.c, NumClasses: 7})
			if err != nil {
				t.Fatal(err)
			}
			x := tensors.FromShape(shapes.Make(dtypes.Float32, 2, tc.h, tc.w, tc.c))
			ctx := context.New()
			out := context.MustExecOnce(be, ctx, func(ctx *context.Context, x *Node) *Node {
				ctx.SetTraining(x.Graph(), tc.trainToo)
				logits := n.Build(ctx, Portable, x)
				if !tc.trainToo {
					return logits
				}
				grads := ctx.BuildTrainableVariablesGradientsGraph(ReduceAllSum(logits))
				total := ReduceAllSum(logits)
				for _, g := range grads {
					total = Add(total, MulScalar(ReduceAllSum(g), 0))
				}
				return BroadcastToDims(total, 2, 7)
			}, x)
			if d := out.Shape().Dimensions; len(d) != 2 || d[0] != 2 || d[1] != 7 {
				t.Errorf("logits shape %v, want [2 7]", d)
			}
		})
	}
}
