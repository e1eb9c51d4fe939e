package quant

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

// LayerCorrection reports the bias correction of one layer.
type LayerCorrection struct {
	Name     string
	Channels int
	// Before and After are the mean over channels of |mean output error|
	// (int8 minus float, over the calibration set), in the output's real
	// units, measured with every earlier layer already corrected.
	Before, After float64
	// Step is the output's int8 step, to read Before and After in LSB.
	Step float64
	// Skipped counts channels left alone: after a ReLU they were almost
	// never active, so their error says little about their bias.
	Skipped int
}

// minActive is the share of positive outputs below which a ReLU channel's
// bias is not corrected.
const minActive = 0.05

// correctBiases is empirical bias correction (after Nagel et al., "Data-Free
// Quantization Through Weight Equalization and Bias Correction", 2019): the
// rounding of weights shifts each output channel's mean; measure the shift
// on the calibration data and take it out of the int32 bias. Layers are
// corrected in graph order, each measured with the earlier ones corrected,
// so one int8 pass over the samples per layer.
//
// A fused ReLU hides the pre-activation error where the output is 0; with
// the output active a fraction p of the time, the mean post-ReLU error is
// about p times the bias shift, so the shift is estimated as error / p.
//
// Logits whose range was chosen for the scores are left alone: their
// error is mostly the clipping of extremes, on purpose, and taking its mean
// out of the bias would shift every sample's logits to pay for a few.
func correctBiases(f *resnet.Model, q *quantizer, src Samples) ([]LayerCorrection, error) {
	var targets []layer
	logits := logitsTensors(f)
	for _, l := range q.layers {
		if l.qBias >= 0 && !l.exact && !logits[l.fOut] {
			targets = append(targets, l)
		}
	}
	if len(targets) == 0 {
		return nil, nil
	}
	fIt, err := interp.New(f, interp.Options{KeepAll: true, Threads: 1})
	if err != nil {
		return nil, fmt.Errorf("quant: bias correction: preparing the float model: %w", err)
	}
	defer fIt.Close()
	fMean := make([][]float64, len(targets))
	fActive := make([][]float64, len(targets))
	for k, l := range targets {
		c := channels(f.Tensors[l.fOut].Shape)
		fMean[k], fActive[k] = make([]float64, c), make([]float64, c)
	}
	perChannel := make([]float64, len(targets)) // values per channel over all samples
	err = forEach(src, func(si int, s Sample) error {
		if err := setInputs(fIt, s, si); err != nil {
			return err
		}
		if err := fIt.Invoke(); err != nil {
			return err
		}
		for k, l := range targets {
			v := fIt.TensorByIndex(l.fOut).Float32()
			c := len(fMean[k])
			for i, x := range v {
				fMean[k][i%c] += float64(x)
				if x > 0 {
					fActive[k][i%c]++
				}
			}
			perChannel[k] += float64(len(v) / c)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for k := range targets {
		for c := range fMean[k] {
			fMean[k][c] /= perChannel[k]
			fActive[k][c] /= perChannel[k]
		}
	}

	report := make([]LayerCorrection, len(targets))
	for L := 0; L <= len(targets); L++ {
		// Measure the layer corrected last (its After) and the next one.
		var measure []int
		if L > 0 {
			measure = append(measure, L-1)
		}
		if L < len(targets) {
			measure = append(measure, L)
		}
		qMean, err := int8Means(q.out, targets, measure, src)
		if err != nil {
			return nil, fmt.Errorf("quant: bias correction: %w", err)
		}
		if L > 0 {
			report[L-1].After = meanAbsDiff(qMean[L-1], fMean[L-1], nil)
		}
		if L == len(targets) {
			break
		}
		l := targets[L]
		out := &q.out.Tensors[l.qOut]
		rep := &report[L]
		rep.Name, rep.Channels, rep.Step = l.name, len(fMean[L]), float64(out.Quant.Scale[0])
		var skip []bool
		if l.relu {
			skip = make([]bool, len(fMean[L]))
			for c, a := range fActive[L] {
				skip[c] = a < minActive
			}
		}
		rep.Before = meanAbsDiff(qMean[L], fMean[L], nil)
		bt := &q.out.Tensors[l.qBias]
		if bt.NumElements() != len(fMean[L]) || len(l.biasScale) != len(fMean[L]) {
			return nil, fmt.Errorf("quant: bias correction: layer %q has %d channels but %d biases", l.name, len(fMean[L]), bt.NumElements())
		}
		// A fresh slice: interpreters built earlier keep using the old one.
		data := append([]byte(nil), bt.Data...)
		for c := range fMean[L] {
			if skip != nil && skip[c] {
				rep.Skipped++
				continue
			}
			shift := qMean[L][c] - fMean[L][c]
			if l.relu {
				shift /= fActive[L][c]
			}
			old := float64(int32(binary.LittleEndian.Uint32(data[4*c:])))
			nb := math.Round(old - shift/l.biasScale[c])
			nb = math.Max(math.MinInt32, math.Min(math.MaxInt32, nb))
			binary.LittleEndian.PutUint32(data[4*c:], uint32(int32(nb)))
		}
		bt.Data = data
	}
	return report, nil
}

func channels(shape []int) int {
	if len(shape) == 0 {
		return 1
	}
	return shape[len(shape)-1]
}

// int8Means runs the int8 model on every sample and returns, for the
// measured targets, the per-channel mean of their dequantized outputs.
func int8Means(m *resnet.Model, targets []layer, measure []int, src Samples) ([][]float64, error) {
	it, err := interp.New(m, interp.Options{KeepAll: true, Threads: 1})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	means := make([][]float64, len(targets))
	counts := make([]float64, len(targets))
	for _, k := range measure {
		means[k] = make([]float64, channels(m.Tensors[targets[k].qOut].Shape))
	}
	err = forEach(src, func(si int, s Sample) error {
		if err := setInputs(it, s, si); err != nil {
			return err
		}
		if err := it.Invoke(); err != nil {
			return err
		}
		for _, k := range measure {
			t := it.TensorByIndex(targets[k].qOut)
			sc, zp := float64(t.Quant.Scale[0]), t.Quant.ZeroPoint[0]
			c := len(means[k])
			v := t.Int8()
			for i, x := range v {
				means[k][i%c] += sc * float64(int64(x)-zp)
			}
			counts[k] += float64(len(v) / c)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, k := range measure {
		for c := range means[k] {
			means[k][c] /= counts[k]
		}
	}
	return means, nil
}

func meanAbsDiff(a, b []float64, skip []bool) float64 {
	s, n := 0.0, 0
	for i := range a {
		if skip != nil && skip[i] {
			continue
		}
		s += math.Abs(a[i] - b[i])
		n++
	}
	if n == 0 {
		return 0
	}
	return s / float64(n)
}
