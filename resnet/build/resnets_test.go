package build

import (
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
)

// macs counts the multiply-accumulates of a model's convolutions and
// fully connected layers.
func macs(m *resnet.Model) int64 {
	var n int64
	for _, op := range m.Operators {
		out := m.Tensors[op.Outputs[0]].Shape
		switch op.Op {
		case resnet.OpConv2D:
			w := m.Tensors[op.Inputs[1]].Shape
			n += int64(out[0]*out[1]*out[2]*out[3]) * int64(w[1]*w[2]*w[3])
		case resnet.OpFullyConnected:
			w := m.Tensors[op.Inputs[1]].Shape
			n += int64(out[0]*w[0]) * int64(w[1])
		}
	}
	return n
}

func TestResNetsHaveThePublishedShapeAndCost(t *testing.T) {
	for _, tc := range []struct {
		depth          int
		plain          bool
		input          [3]int
		embedding      int
		convs          int
		macsLo, macsHi float64 // in millions
	}{
		// ResNet-50 v1.5 at 224: 4.09 G MACs (NOTES), 53 convolutions.
		{50, false, [3]int{224, 224, 3}, 2048, 53, 4050, 4150},
		// Keras ResNet50 without top at 32x32: 78.7 M MACs (v1; v1.5 moves
		// the stride, which costs more at this size).
		{50, false, [3]int{32, 32, 3}, 2048, 53, 70, 110},
		{18, false, [3]int{224, 224, 3}, 512, 20, 1750, 1850},
		{34, false, [3]int{224, 224, 3}, 512, 36, 3550, 3700},
		// CIFAR ResNet-20: about 41 M MACs, 19 convolutions + 2 projections.
		{20, false, [3]int{32, 32, 3}, 64, 21, 39, 43},
		{20, true, [3]int{32, 32, 3}, 64, 19, 39, 43},
		{56, false, [3]int{32, 32, 3}, 64, 57, 120, 130},
		{110, false, [3]int{28, 28, 1}, 64, 111, 150, 260},
	} {
		m, err := ResNet(Config{Depth: tc.depth, Plain: tc.plain, Input: tc.input, Classes: 10, Weights: RandomWeights(1)})
		if err != nil {
			t.Fatalf("ResNet-%d: %v", tc.depth, err)
		}
		convs := 0
		for _, op := range m.Operators {
			if op.Op == resnet.OpConv2D {
				convs++
			}
		}
		emb := m.Tensors[m.Outputs[1]].Shape
		mm := float64(macs(m)) / 1e6
		t.Logf("ResNet-%d plain=%v %v: %d convolutions, embedding %v, %.1f M MACs", tc.depth, tc.plain, tc.input, convs, emb, mm)
		if emb[1] != tc.embedding {
			t.Errorf("ResNet-%d: embedding width %d, want %d", tc.depth, emb[1], tc.embedding)
		}
		if convs != tc.convs {
			t.Errorf("ResNet-%d plain=%v: %d convolutions, want %d", tc.depth, tc.plain, convs, tc.convs)
		}
		if mm < tc.macsLo || mm > tc.macsHi {
			t.Errorf("ResNet-%d %v: %.1f M MACs, want %.0f..%.0f", tc.depth, tc.input, mm, tc.macsLo, tc.macsHi)
		}
	}
}

func TestResNetRejectsBadConfigs(t *testing.T) {
	for _, c := range []Config{
		{Depth: 21, Input: [3]int{32, 32, 3}, Classes: 10, Weights: RandomWeights(1)},
		{Depth: 20, Input: [3]int{32, 32, 3}, Classes: 0, Weights: RandomWeights(1)},
		{Depth: 20, Input: [3]int{0, 32, 3}, Classes: 10, Weights: RandomWeights(1)},
		{Depth: 20, Input: [3]int{32, 32, 3}, Classes: 10},
	} {
		if _, err := ResNet(c); err == nil {
			t.Errorf("ResNet(%+v) gave no error", c)
		}
	}
}
