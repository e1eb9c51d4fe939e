package train

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/train/h5"
)

func TestKerasKeyDropsTheVariableSuffixAndANestedModelsName(t *testing.T) {
	for in, want := range map[string]string{
		"conv1_conv/kernel:0":          "conv1_conv/kernel",
		"resnet50/conv1_conv/kernel:0": "conv1_conv/kernel",
		"dense_1/bias:0":               "dense_1/bias",
		"conv1_bn/moving_variance":     "conv1_bn/moving_variance",
	} {
		if got := kerasKey(in); got != want {
			t.Errorf("kerasKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// The small Keras-shaped files of train/h5/testdata (written by h5wasm): layer_names, whole or
// split, weight_names, nested datasets.
func TestReadKerasH5FindsEveryWeightUnderItsKerasName(t *testing.T) {
	for _, name := range []string{"v0-fixed.h5", "v0-float64-split.h5", "v0-vlen-deflate.h5", "v3-latest-chunked.h5"} {
		path := filepath.Join("h5", "testdata", name)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		kf, err := readKerasH5(path, b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := []string{"input_1", "conv1_pad", "conv1_conv", "conv1_bn", "dense"}; !slices.Equal(kf.layers, want) {
			t.Errorf("%s: layers %q, want %q", name, kf.layers, want)
		}
		if want := []string{"conv1_conv/kernel", "conv1_conv/bias", "conv1_bn/gamma", "dense/kernel", "dense/bias"}; !slices.Equal(kf.order, want) {
			t.Errorf("%s: weights %q, want %q", name, kf.order, want)
		}
		// Not ResNet50: the error names the first tensor the network needs that is missing or
		// mis-shaped, and nothing is written.
		out := filepath.Join(t.TempDir(), "export")
		_, _, err = exportKeras(ImportOptions{Path: path, Arch: "keras-resnet50", Height: 32}, out)
		if err == nil || !strings.Contains(err.Error(), "conv1_conv/conv1_conv/kernel:0 is [3 3 2 4], want [7 7 3 64]") ||
			!strings.Contains(err.Error(), "missing: conv1_bn/beta") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: %s written after the error", name, out)
		}
	}
}

// The classifier is found by its shape whatever its name: Keras' own ImageNet file calls it
// predictions, the name train/models gives it too, and a Dense added by the user is dense,
// dense_1, ...
func TestTheKerasClassifierIsFoundByItsShape(t *testing.T) {
	for _, tc := range []struct {
		keys []string
		want []string
	}{
		{[]string{"conv1_conv/kernel", "conv5_block3_3_bn/gamma", "predictions/kernel", "predictions/bias"}, []string{"predictions"}},
		{[]string{"conv1_conv/kernel", "dense_1/kernel", "dense_1/bias"}, []string{"dense_1"}},
		{[]string{"conv1_conv/kernel", "conv1_bn/gamma"}, nil},
		{[]string{"dense/kernel", "dense_2/kernel"}, []string{"dense", "dense_2"}},
	} {
		kf := &kerasFile{tensors: map[string]*kerasTensor{}}
		for _, k := range tc.keys {
			shape := []int{7, 7, 3, 64}
			if strings.HasSuffix(k, "/bias") || strings.HasSuffix(k, "/gamma") {
				shape = []int{64}
			} else if !strings.HasPrefix(k, "conv") {
				shape = []int{2048, 10}
			}
			kf.tensors[k] = &kerasTensor{d: &h5.Dataset{Shape: shape}}
			kf.order = append(kf.order, k)
		}
		got, err := kf.heads()
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%v: heads %v, %v; want %v", tc.keys, got, err, tc.want)
		}
	}
}
