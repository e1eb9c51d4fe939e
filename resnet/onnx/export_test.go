package onnx

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
)

func TestEveryRegisteredOperatorIsMapped(t *testing.T) {
	for _, code := range resnet.Ops() {
		if _, ok := converters[code]; !ok {
			t.Errorf("operator %v is in resnet's registry but the ONNX exporter has no mapping for it (resnet/onnx/ops.go)", code)
		}
	}
}

// graphSummary is what a test reads back from exported bytes with a small
// protowire decoder of its own: node op types, graph input and output names.
type graphSummary struct {
	irVersion, opset int64
	ops              []string
	inputs, outputs  []string
	inits            int
}

func fields(t *testing.T, b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, n uint64)) {
	t.Helper()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad protobuf tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		switch typ {
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				t.Fatalf("bad protobuf bytes field %d: %v", num, protowire.ParseError(n))
			}
			f(num, typ, v, 0)
			b = b[n:]
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				t.Fatalf("bad varint field %d", num)
			}
			f(num, typ, nil, v)
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				t.Fatalf("bad field %d", num)
			}
			b = b[n:]
		}
	}
}

func summarize(t *testing.T, model []byte) graphSummary {
	t.Helper()
	var s graphSummary
	name := func(vi []byte) (out string) {
		fields(t, vi, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) {
			if num == 1 {
				out = string(v)
			}
		})
		return
	}
	fields(t, model, func(num protowire.Number, _ protowire.Type, v []byte, x uint64) {
		switch num {
		case 1:
			s.irVersion = int64(x)
		case 8:
			fields(t, v, func(num protowire.Number, _ protowire.Type, _ []byte, x uint64) {
				if num == 2 {
					s.opset = int64(x)
				}
			})
		case 7:
			fields(t, v, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) {
				switch num {
				case 1:
					fields(t, v, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) {
						if num == 4 {
							s.ops = append(s.ops, string(v))
						}
					})
				case 5:
					s.inits++
				case 11:
					s.inputs = append(s.inputs, name(v))
				case 12:
					s.outputs = append(s.outputs, name(v))
				}
			})
		}
	})
	return s
}

func count(ops []string, op string) int {
	n := 0
	for _, o := range ops {
		if o == op {
			n++
		}
	}
	return n
}

func TestExportedResNetKeepsInputAndBothOutputs(t *testing.T) {
	m, err := build.ResNet(build.Config{Depth: 8, Input: [3]int{16, 16, 3}, Classes: 5, Weights: build.RandomWeights(3)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Export(m, Options{})
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	s := summarize(t, b)
	if s.irVersion != irVersion || s.opset != opsetV {
		t.Errorf("ir_version %d opset %d, want %d and %d", s.irVersion, s.opset, irVersion, opsetV)
	}
	in := m.Tensors[m.Inputs[0]].Name
	if len(s.inputs) != 1 || s.inputs[0] != in {
		t.Errorf("graph inputs %v, want [%s]", s.inputs, in)
	}
	want := []string{m.Tensors[m.Outputs[0]].Name, m.Tensors[m.Outputs[1]].Name}
	if strings.Join(s.outputs, ",") != strings.Join(want, ",") {
		t.Errorf("graph outputs %v, want %v (scores, then the embedding)", s.outputs, want)
	}
	// ResNet-8: 7 convolutions plus one 1x1 shortcut per stage change (2).
	if got := count(s.ops, "Conv"); got != 9 {
		t.Errorf("%d Conv nodes, want 9: %v", got, s.ops)
	}
	if count(s.ops, "QuantizeLinear")+count(s.ops, "DequantizeLinear") != 0 {
		t.Errorf("a float model was exported with Q/DQ nodes: %v", s.ops)
	}
	// The input is transposed to NCHW once; nothing else is transposed
	// (the pooled [1,C,1,1] becomes [1,C] with a Reshape).
	if got := count(s.ops, "Transpose"); got != 1 {
		t.Errorf("%d Transpose nodes, want 1 (the input): %v", got, s.ops)
	}
}

func TestInt8ExportUsesQDQWithOneDequantizePerConsumer(t *testing.T) {
	m := int8ResNet(t, 8, [3]int{16, 16, 3}, 5, false)
	for _, acts := range []Activations{Int8, UInt8} {
		b, err := Export(m, Options{Activations: acts})
		if err != nil {
			t.Fatalf("Export %s: %v", acts, err)
		}
		s := summarize(t, b)
		convs := count(s.ops, "Conv")
		// Each Conv reads a DequantizeLinear of its input, of its weights and
		// of its bias.
		if dq := count(s.ops, "DequantizeLinear"); dq < 3*convs {
			t.Errorf("%s: %d DequantizeLinear for %d Conv; want at least 3 per Conv", acts, dq, convs)
		}
	}
}

func TestUnsupportedOperatorIsNamed(t *testing.T) {
	m := &resnet.Model{
		Tensors: []resnet.Tensor{
			{Name: "a", Type: resnet.Float32, Shape: []int{1, 4}},
			{Name: "b", Type: resnet.Float32, Shape: []int{1, 4}},
			{Name: "c", Type: resnet.Float32, Shape: []int{1, 8}},
		},
		// BuiltinOperator 2 is CONCATENATION, which resnet does not register.
		Operators: []resnet.Operator{{Op: 2, Version: 1, Inputs: []int{0, 1}, Outputs: []int{2}}},
		Inputs:    []int{0, 1},
		Outputs:   []int{2},
	}
	_, err := Export(m, Options{})
	if err == nil {
		t.Fatal("Export of a model with operator 2 succeeded; want an error naming it")
	}
	for _, want := range []string{"operator 0", "BuiltinOperator(2)", "no mapping", "CONV_2D"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestRunTimeWeightsAreRefusedNamingTheOperator(t *testing.T) {
	m := &resnet.Model{
		Tensors: []resnet.Tensor{
			{Name: "x", Type: resnet.Float32, Shape: []int{1, 4}},
			{Name: "w", Type: resnet.Float32, Shape: []int{3, 4}},
			{Name: "y", Type: resnet.Float32, Shape: []int{1, 3}},
		},
		Operators: []resnet.Operator{{Op: resnet.OpFullyConnected, Version: 1, Inputs: []int{0, 1}, Outputs: []int{2},
			Options: &resnet.FullyConnectedOptions{}}},
		Inputs:  []int{0, 1},
		Outputs: []int{2},
	}
	_, err := Export(m, Options{})
	if err == nil {
		t.Fatal("Export of a FULLY_CONNECTED whose weights are a graph input succeeded; want an error")
	}
	for _, want := range []string{"operator 0 (FULLY_CONNECTED)", `"w"`, "constant"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestUnknownActivationsOptionIsRefused(t *testing.T) {
	m := int8ResNet(t, 8, [3]int{8, 8, 3}, 3, false)
	if _, err := Export(m, Options{Activations: "int4"}); err == nil || !strings.Contains(err.Error(), `"int4"`) {
		t.Errorf("Export with activations int4: %v, want an error naming it", err)
	}
}

func TestPermuteMovesChannelsFirst(t *testing.T) {
	// A [1,2,2,3] NHWC tensor of bytes 0..11 in NCHW order.
	raw := make([]byte, 12)
	for i := range raw {
		raw[i] = byte(i)
	}
	got, shape := permute(raw, 1, []int{1, 2, 2, 3}, []int{0, 3, 1, 2})
	want := []byte{0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11}
	if string(got) != string(want) || shape[1] != 3 || shape[3] != 2 {
		t.Errorf("permute = %v %v, want %v [1 3 2 2]", got, shape, want)
	}
}

func TestSamePaddingPutsTheExtraCellAtTheEnd(t *testing.T) {
	for _, c := range []struct{ in, k, s, before, after int }{
		{32, 3, 1, 1, 1}, {32, 3, 2, 0, 1}, {7, 7, 2, 3, 3}, {8, 1, 2, 0, 0}, {5, 4, 1, 1, 2},
	} {
		b, a := samePads(c.in, c.k, c.s, 1)
		if b != c.before || a != c.after {
			t.Errorf("samePads(in %d, k %d, s %d) = %d,%d; want %d,%d", c.in, c.k, c.s, b, a, c.before, c.after)
		}
	}
}
