package quant

import (
	"fmt"
	"math/rand/v2"
)

// Samples is calibration data that is read one sample at a time, as often as
// the options need: once for min/max ranges, twice for the histogram methods
// (extent, then histograms), and again for bias correction (once per layer)
// and the head refit. Nothing in this package keeps a sample after its
// callback returns, so a source that decodes an image per call (a folder of
// JPEGs, a dataset's training split) holds one image in memory, not all of
// them.
type Samples interface {
	// Len is the number of samples; every pass must give exactly this many.
	Len() int
	// Each calls fn with every sample in the same order on every pass, i
	// counting from 0, and stops at fn's first error. The sample's slices
	// need only stay valid until fn returns: a source may reuse them.
	Each(fn func(i int, s Sample) error) error
}

// SampleSlice is calibration data already in memory.
type SampleSlice []Sample

// Len is the number of samples.
func (s SampleSlice) Len() int { return len(s) }

// Each calls fn with every sample in order.
func (s SampleSlice) Each(fn func(i int, s Sample) error) error {
	for i, x := range s {
		if err := fn(i, x); err != nil {
			return err
		}
	}
	return nil
}

// SampleFunc is calibration data made on demand: Make(i) returns sample i
// (decoding a file, drawing a dataset image). Make may return the same
// slices every call, refilled.
type SampleFunc struct {
	N    int
	Make func(i int) (Sample, error)
}

// Len is N.
func (s SampleFunc) Len() int { return s.N }

// Each makes the samples one after the other and calls fn with each.
func (s SampleFunc) Each(fn func(i int, s Sample) error) error {
	for i := range s.N {
		x, err := s.Make(i)
		if err != nil {
			return err
		}
		if err := fn(i, x); err != nil {
			return err
		}
	}
	return nil
}

// forEach runs fn over one pass of src and checks that the pass gave the
// samples Len promised, numbered in order: a source that gives fewer or
// more on a later pass would calibrate on data the report does not describe.
func forEach(src Samples, fn func(i int, s Sample) error) error {
	n, want := 0, src.Len()
	err := src.Each(func(i int, s Sample) error {
		if i != n || n >= want {
			return fmt.Errorf("quant: the calibration source gave sample %d as its %d-th of %d; a source must give samples 0..%d in order on every pass", i, n+1, want, want-1)
		}
		n++
		return fn(i, s)
	})
	if err != nil {
		return err
	}
	if n != want {
		return fmt.Errorf("quant: the calibration source gave %d samples on a pass, it promised %d; a source must give the same samples on every pass", n, want)
	}
	return nil
}

// maxLogitsSamples bounds how many samples' logits calibration keeps for
// ChooseLogitsRange, the one range choice that needs each sample's whole
// logit vector (its top-1 and scores) rather than a histogram. Up to this
// many samples every one is kept, so the choice is exactly what it was when
// calibration held all samples; past it a uniform reservoir (Vitter's
// algorithm R, seeded, so the same data gives the same model) keeps this
// many: 2,048 x 1,000 ImageNet logits is 16 MB, whatever the sample count.
const maxLogitsSamples = 2048

// logitsReservoir decides, sample by sample, which slot of the kept logits
// (if any) a sample's logits take.
type logitsReservoir struct {
	seen int
	rng  *rand.Rand
}

// slot returns the index to store the next sample's logits at, with
// appending = true while the reservoir fills; ok is false when the sample
// is not kept.
func (r *logitsReservoir) slot() (k int, appending, ok bool) {
	n := r.seen
	r.seen++
	if n < maxLogitsSamples {
		return n, true, true
	}
	if r.rng == nil {
		r.rng = rand.New(rand.NewPCG(0x5eed, 0x10915))
	}
	if j := r.rng.IntN(n + 1); j < maxLogitsSamples {
		return j, false, true
	}
	return 0, false, false
}
