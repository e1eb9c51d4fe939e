package witness

import (
	"encoding/binary"
	"math"
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
)

// Contract: a model written by resnet.Marshal (Shortcut's own .tflite writer)
// loads in both real TFLite builds and computes an int8 convolution as the
// TFLite quantization rules say. Float inputs and outputs with QUANTIZE and
// DEQUANTIZE inside, because LiteRT.js refuses int8 model I/O.
func TestInt8ConvWrittenByResnetRunsInRealTFLite(t *testing.T) {
	requireWitness(t)
	const (
		h, w, cin, cout = 5, 5, 3, 4
		inScale         = 0.05
		inZero          = -3
		outScale        = 0.1
		outZero         = -128 // ReLU output range starts at zero
	)
	r := rand.New(rand.NewSource(7))
	weights := make([]int8, cout*3*3*cin)
	for i := range weights {
		weights[i] = int8(r.Intn(255) - 127)
	}
	wScale := make([]float32, cout)
	bias := make([]int32, cout)
	bScale := make([]float32, cout)
	for c := range cout {
		wScale[c] = 0.004 * float32(c+1)
		bScale[c] = inScale * wScale[c]
		bias[c] = int32(r.Intn(2001) - 1000)
	}
	wBytes := make([]byte, len(weights))
	for i, v := range weights {
		wBytes[i] = byte(v)
	}
	bBytes := make([]byte, 4*cout)
	for i, v := range bias {
		binary.LittleEndian.PutUint32(bBytes[4*i:], uint32(v))
	}
	zeros := make([]int64, cout)
	m := &resnet.Model{
		Description: "witness contract: int8 conv",
		Tensors: []resnet.Tensor{
			{Name: "image", Type: resnet.Float32, Shape: []int{1, h, w, cin}},
			{Name: "image_q", Type: resnet.Int8, Shape: []int{1, h, w, cin}, Quant: &resnet.Quant{Scale: []float32{inScale}, ZeroPoint: []int64{inZero}}},
			{Name: "filter", Type: resnet.Int8, Shape: []int{cout, 3, 3, cin}, Data: wBytes, Quant: &resnet.Quant{Scale: wScale, ZeroPoint: zeros}},
			{Name: "bias", Type: resnet.Int32, Shape: []int{cout}, Data: bBytes, Quant: &resnet.Quant{Scale: bScale, ZeroPoint: zeros}},
			{Name: "conv_q", Type: resnet.Int8, Shape: []int{1, h, w, cout}, Quant: &resnet.Quant{Scale: []float32{outScale}, ZeroPoint: []int64{outZero}}},
			{Name: "conv", Type: resnet.Float32, Shape: []int{1, h, w, cout}},
		},
		Operators: []resnet.Operator{
			{Op: resnet.OpQuantize, Version: 2, Inputs: []int{0}, Outputs: []int{1}},
			{Op: resnet.OpConv2D, Version: 3, Inputs: []int{1, 2, 3}, Outputs: []int{4},
				Options: &resnet.Conv2DOptions{Padding: resnet.PaddingSame, StrideW: 1, StrideH: 1, Activation: resnet.ActRelu}},
			{Op: resnet.OpDequantize, Version: 2, Inputs: []int{4}, Outputs: []int{5}},
		},
		Inputs:  []int{0},
		Outputs: []int{5},
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatalf("resnet.Marshal: %v", err)
	}
	dir := t.TempDir()
	model := writeFile(t, filepath.Join(dir, "conv_int8.tflite"), data)

	image := make([]float32, h*w*cin)
	for i := range image {
		image[i] = r.Float32()*10 - 5
	}
	// Reference: quantize, integer convolution, requantize in float.
	q := make([]int32, len(image))
	for i, v := range image {
		q[i] = int32(max(-128, min(127, math.Round(float64(v/inScale))+inZero)))
	}
	want := make([]float32, h*w*cout)
	for y := range h {
		for x := range w {
			for c := range cout {
				acc := bias[c]
				for ky := range 3 {
					for kx := range 3 {
						iy, ix := y+ky-1, x+kx-1
						if iy < 0 || iy >= h || ix < 0 || ix >= w {
							continue
						}
						for ci := range cin {
							acc += (q[(iy*w+ix)*cin+ci] - inZero) * int32(weights[((c*3+ky)*3+kx)*cin+ci])
						}
					}
				}
				v := float64(acc) * float64(inScale) * float64(wScale[c])
				qo := max(outZero, min(127, math.Round(v/outScale)+outZero))
				want[(y*w+x)*cout+c] = float32((qo - outZero) * outScale)
			}
		}
	}

	var jobs []Job
	for _, s := range allSetups {
		jobs = append(jobs, Job{
			Model:   model,
			Inputs:  []string{writeNpy(t, filepath.Join(dir, "image.npy"), []int{1, h, w, cin}, image)},
			Outputs: []string{filepath.Join(dir, string(s.engine)+string(rune('0'+s.threads))+".npy")},
			Engine:  s.engine, Threads: s.threads,
		})
	}
	results, err := Run(timeout(t), jobs)
	if err != nil {
		t.Fatal(err)
	}
	var first []float32
	for i, res := range results {
		j := jobs[i]
		if res.Err != nil {
			t.Errorf("%s/%d threads: %v", j.Engine, j.Threads, res.Err)
			continue
		}
		_, out := readNpy(t, j.Outputs[0])
		got := out.([]float32)
		worst := 0.0
		for k := range want {
			worst = math.Max(worst, math.Abs(float64(got[k]-want[k])))
		}
		// TFLite requantizes with a fixed-point multiplier; a float
		// reference may differ by one step of the output scale.
		if worst > outScale*1.01 {
			t.Errorf("%s/%d threads: largest difference from the reference is %g, want at most one output step (%g)", j.Engine, j.Threads, worst, outScale)
		}
		if first == nil {
			first = got
		} else {
			for k := range got {
				if got[k] != first[k] {
					t.Errorf("%s/%d threads: output %d is %g, %s/%d threads gave %g; the builds should agree exactly",
						j.Engine, j.Threads, k, got[k], jobs[0].Engine, jobs[0].Threads, first[k])
					break
				}
			}
		}
	}
}
