package quant

import (
	"fmt"
	"math"
	"slices"
)

// LogitsChoice is the int8 range ChooseLogitsRange picked for a SOFTMAX
// input, and how the calibration samples fare with it.
type LogitsChoice struct {
	Range Range
	// Kept is the share of samples whose int8 top-1 score (simulated: the
	// logits rounded to the range, SOFTMAX, scores rounded to 1/256) is the
	// reference top-1 and not tied with another score; KeptMinMax is the
	// same with the logits' min/max range.
	Kept, KeptMinMax float64
	// ScoreError is the mean absolute error of the reference top-1 class's
	// score with Range; ScoreErrorMinMax with the min/max range.
	ScoreError, ScoreErrorMinMax float64
}

// ChooseLogitsRange picks the int8 range of logits that only a SOFTMAX reads.
//
// What the int8 model is for is its scores, which have 1/256 steps, and
// their top-1. Only logits near each sample's largest one move the scores:
// a logit 6 below the top gives a score under 1/256 either way. Min/max
// spends the 256 levels on extremes instead: a model whose logits reach
// +-150 on a few odd images rounds every logit to steps of 1.2, and images
// whose two best classes are closer than that flip at random. This picks,
// from a grid of ranges (upper ends at quantiles of the per-sample top
// logits, lower ends a few units below the lowest top logit), the one with
// the least loss over the samples: 1 for a top-1 that differs from the
// reference or ties with another class (ties are settled by class order,
// luck that a range should not count on), plus the error of the reference
// top-1 class's score.
//
// logits are the values the int8 model's logits approximate, one slice per
// sample; ref are the float model's logits of the same samples (the
// reference top-1 and scores; pass logits again when they are the float
// ones).
func ChooseLogitsRange(logits, ref [][]float64) (LogitsChoice, error) {
	if len(logits) == 0 || len(logits) != len(ref) {
		return LogitsChoice{}, fmt.Errorf("quant: logits range: %d samples of logits and %d of reference logits; want the same, at least 1", len(logits), len(ref))
	}
	c := len(logits[0])
	lo, hi := math.Inf(1), math.Inf(-1)
	tops := make([]float64, len(logits))
	refTop := make([]int, len(ref))
	refScore := make([]float64, len(ref))
	for n, v := range logits {
		if len(v) != c || len(ref[n]) != c || c == 0 {
			return LogitsChoice{}, fmt.Errorf("quant: logits range: sample %d has %d logits and %d reference logits; want %d", n, len(v), len(ref[n]), c)
		}
		tops[n] = math.Inf(-1)
		for _, x := range v {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return LogitsChoice{}, fmt.Errorf("quant: logits range: sample %d has a logit %v", n, x)
			}
			lo, hi, tops[n] = math.Min(lo, x), math.Max(hi, x), math.Max(tops[n], x)
		}
		refTop[n] = argmax(ref[n])
		refScore[n] = softmax(ref[n])[refTop[n]]
	}
	slices.Sort(tops)
	his := []float64{hi}
	for _, q := range []float64{0.999, 0.995, 0.99, 0.98, 0.95, 0.9, 0.8, 0.7, 0.5} {
		his = append(his, tops[int(q*float64(len(tops)-1))])
	}
	los := []float64{lo}
	for _, k := range []float64{32, 24, 16, 12, 10, 8, 6, 4, 3} {
		if l := tops[0] - k; l > lo {
			los = append(los, l)
		}
	}
	eval := func(r Range) (loss float64, kept, scoreErr float64) {
		s, z, err := ActParams(float64(r.Min), float64(r.Max))
		if err != nil {
			return math.Inf(1), 0, 0
		}
		scores := make([]float64, c)
		for n, v := range logits {
			simulateScores(scores, v, float64(s), z)
			e := math.Abs(scores[refTop[n]] - refScore[n])
			scoreErr += e
			if strictTop(scores) == refTop[n] {
				kept++
			} else {
				loss++
			}
			loss += e
		}
		k := float64(len(logits))
		return loss, kept / k, scoreErr / k
	}
	best := LogitsChoice{Range: Range{float32(lo), float32(hi)}}
	bestLoss, kept, se := eval(best.Range)
	best.Kept, best.KeptMinMax, best.ScoreError, best.ScoreErrorMinMax = kept, kept, se, se
	for _, h := range his {
		for _, l := range los {
			if !(l < h) {
				continue
			}
			r := Range{float32(l), float32(h)}
			if loss, kept, se := eval(r); loss < bestLoss {
				bestLoss, best.Range, best.Kept, best.ScoreError = loss, r, kept, se
			}
		}
	}
	return best, nil
}

// simulateScores computes what an int8 SOFTMAX gives for logits v quantized
// with scale s and zero point z: the logits rounded and clamped to int8, the
// scores rounded to TFLite's fixed output step of 1/256.
func simulateScores(dst, v []float64, s float64, z int64) {
	mx := math.Inf(-1)
	for i, x := range v {
		q := math.Max(-128, math.Min(127, math.Round(x/s)+float64(z)))
		dst[i] = s * (q - float64(z))
		mx = math.Max(mx, dst[i])
	}
	sum := 0.0
	for i, x := range dst {
		dst[i] = math.Exp(x - mx)
		sum += dst[i]
	}
	for i := range dst {
		dst[i] = math.Min(255, math.Round(dst[i]/sum*256)) / 256
	}
}

// strictTop is the index of the largest value, or -1 when two share it: a
// tie is resolved by class order, which says nothing about the image, so
// ChooseLogitsRange counts it as a lost top-1.
func strictTop(v []float64) int {
	k := argmax(v)
	for i, x := range v {
		if i != k && x == v[k] {
			return -1
		}
	}
	return k
}

// softmax is exp(v) normalized, computed from the largest value down.
func softmax(v []float64) []float64 {
	mx := v[argmax(v)]
	out := make([]float64, len(v))
	sum := 0.0
	for i, x := range v {
		out[i] = math.Exp(x - mx)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// argmax is the index of the largest value (the first one on ties).
func argmax[T float32 | float64](v []T) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
