package quant

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

// DefaultHeadRidge is the ridge strength of the head refit, relative to the
// mean squared embedding value: small enough that the fit follows the data,
// large enough that a few hundred samples cannot pull a 2048-wide head far
// from the trained one.
const DefaultHeadRidge = 0.01

// maxRefitFeatures bounds the head refit's normal equations ((D+1)^2 float64
// values: 8193 features are 512 MiB).
const maxRefitFeatures = 8192

// HeadRefit reports the refit of the classifier (the FULLY_CONNECTED layer
// whose logits feed the SOFTMAX). Agreement and ScoreError are measured on
// the calibration samples, the int8 model's scores against the float
// model's, before and after the refit; they show that the fit worked, not
// how well it generalizes (eval on test images says that).
type HeadRefit struct {
	Layer    string
	Samples  int
	Features int
	Ridge    float64
	// AgreementBefore and AgreementAfter are the shares of samples whose
	// int8 top-1 score is the float top-1.
	AgreementBefore, AgreementAfter float64
	// ScoreErrorBefore and ScoreErrorAfter are the mean over samples of
	// the largest absolute score difference, int8 against float.
	ScoreErrorBefore, ScoreErrorAfter float64
	// FitRMSEBefore and FitRMSEAfter are what the regression minimizes: the
	// root mean squared difference between the float logits and the
	// classifier's on the int8 embeddings, in float arithmetic, with the
	// trained weights and with the refit ones. The ridge fit can only
	// lower it.
	FitRMSEBefore, FitRMSEAfter float64
	// Logits is the range chosen again for the refit logits.
	Logits LogitsChoice
}

// refitHead refits the classifier to the int8 network in front of it.
//
// Each int8 layer adds a little noise and the noise of fifty layers adds
// up: the embedding the int8 classifier sees is a slightly distorted copy of
// the float one (per-channel gains and offsets drift, ReLUs cut at slightly
// different places). A model with small margins between its classes turns
// that distortion into systematic flips between them. The classifier is
// linear, so the best weights for the int8 embedding have a closed form:
// ridge regression from the int8 embedding of each calibration sample to
// the float model's logits (the float model is the teacher; no labels are
// used), pulled towards the trained weights:
//
//	min_W,b  sum_n |W e_n + b - z_n|^2 + lambda * tr(E'E)/D * |W - W_float|^2
//
// This is layer-wise reconstruction (Hubara et al., "Improving Post
// Training Neural Quantization", 2020) for the one layer where it is exact
// and cheap. The agent's on-device head training fits its own heads on the
// same int8 embeddings, for the same reason.
func refitHead(f *resnet.Model, q *quantizer, src Samples, ridge float64) (*HeadRefit, error) {
	k, sm := -1, -1
	for i, l := range q.layers {
		if l.op != resnet.OpFullyConnected {
			continue
		}
		for _, op := range q.out.Operators {
			if op.Op == resnet.OpSoftmax && op.Inputs[0] == l.qOut {
				k, sm = i, op.Outputs[0]
			}
		}
	}
	if k < 0 {
		q.warn("head refit: no FULLY_CONNECTED layer feeds a SOFTMAX; nothing was refit")
		return nil, nil
	}
	l := q.layers[k]
	if l.relu {
		q.warn("head refit: the last FULLY_CONNECTED layer %q has a fused activation; it was not refit", l.name)
		return nil, nil
	}
	wShape := f.Tensors[l.fW].Shape
	if len(wShape) != 2 {
		return nil, fmt.Errorf("quant: head refit: weights of %q have shape %v, want [classes, features]", l.name, wShape)
	}
	C, D := wShape[0], wShape[1]
	if D > maxRefitFeatures {
		q.warn("head refit: %q has %d input features, more than the %d the refit solves for; it was not refit", l.name, D, maxRefitFeatures)
		return nil, nil
	}
	w0 := floats(&f.Tensors[l.fW])
	hasBias := l.fBias >= 0
	var b0 []float32
	if hasBias {
		b0 = floats(&f.Tensors[l.fBias])
	}

	// Teacher: the float logits of every sample.
	fIt, err := interp.New(f, interp.Options{KeepAll: true, Threads: 1})
	if err != nil {
		return nil, fmt.Errorf("quant: head refit: preparing the float model: %w", err)
	}
	defer fIt.Close()
	z := make([][]float64, src.Len())
	err = forEach(src, func(si int, s Sample) error {
		if err := setInputs(fIt, s, si); err != nil {
			return err
		}
		if err := fIt.Invoke(); err != nil {
			return fmt.Errorf("quant: head refit: float model on sample %d: %w", si, err)
		}
		v := fIt.TensorByIndex(l.fOut).Float32()
		if len(v) != C {
			return fmt.Errorf("quant: head refit: %q gives %d values, its weights say %d classes", l.name, len(v), C)
		}
		z[si] = make([]float64, C)
		for c, x := range v {
			z[si][c] = float64(x)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	// Student: the int8 embeddings, accumulated into the normal equations.
	n := D
	if hasBias {
		n++ // a constant 1 feature carries the bias
	}
	ne := newNormalEquations(n, C)
	rep := &HeadRefit{Layer: l.name, Samples: src.Len(), Features: D, Ridge: ridge}
	e := make([]float64, n)
	if hasBias {
		e[D] = 1
	}
	embs := make([][]float32, 0, src.Len())
	rep.AgreementBefore, rep.ScoreErrorBefore, err = headScore(q.out, l, sm, src, z, func(emb, logits []float64) error {
		if len(emb) != D {
			return fmt.Errorf("quant: head refit: the int8 input of %q has %d values, its weights take %d", l.name, len(emb), D)
		}
		copy(e, emb)
		ne.add(e, logits)
		e32 := make([]float32, D)
		for i, x := range emb {
			e32[i] = float32(x)
		}
		embs = append(embs, e32)
		return nil
	})
	if err != nil {
		return nil, err
	}

	scale := 0.0
	for i := range D {
		scale += ne.a[i*n+i]
	}
	scale /= float64(D)
	if scale == 0 {
		q.warn("head refit: the int8 embedding in front of %q is 0 on every calibration sample; it was not refit", l.name)
		return nil, nil
	}
	lambda := ridge * scale
	prior := make([][]float64, C)
	for c := range C {
		prior[c] = make([]float64, n)
		for i := range D {
			prior[c][i] = float64(w0[c*D+i])
		}
		if hasBias {
			prior[c][D] = float64(b0[c])
		}
	}
	sol, err := ne.solve(lambda, D, prior)
	if err != nil {
		return nil, fmt.Errorf("quant: head refit of %q: %w", l.name, err)
	}

	rep.FitRMSEBefore = fitRMSE(embs, z, func(c, i int) float64 { return float64(w0[c*D+i]) }, func(c int) float64 {
		if hasBias {
			return float64(b0[c])
		}
		return 0
	})
	rep.FitRMSEAfter = fitRMSE(embs, z, func(c, i int) float64 { return sol[c][i] }, func(c int) float64 {
		if hasBias {
			return sol[c][D]
		}
		return 0
	})

	// Quantize the new weights and bias as the quantizer did the old ones.
	wf := make([]float32, C*D)
	bf := make([]float32, C)
	for c := range C {
		for i := range D {
			wf[c*D+i] = float32(sol[c][i])
		}
		if hasBias {
			bf[c] = float32(sol[c][D])
		}
	}
	wt := floatTensor(f.Tensors[l.fW].Name, wShape, wf)
	wq, wScales, err := symmetricInt8(&wt, 0, false)
	if err != nil {
		return nil, fmt.Errorf("quant: head refit of %q: %w", l.name, err)
	}
	q.out.Tensors[l.qW] = wq
	inScale := float64(q.out.Tensors[l.qIn].Quant.Scale[0])
	qb := make([]float64, C) // the int8 bias, dequantized
	if hasBias {
		bt := floatTensor(f.Tensors[l.fBias].Name, f.Tensors[l.fBias].Shape, bf)
		bq, err := biasInt32(&bt, inScale, wScales)
		if err != nil {
			return nil, fmt.Errorf("quant: head refit of %q: %w", l.name, err)
		}
		q.out.Tensors[l.qBias] = bq
		for c := range C {
			bs := inScale * wScales[min(c, len(wScales)-1)]
			l.biasScale[c] = bs
			qb[c] = bs * float64(int32(binary.LittleEndian.Uint32(bq.Data[4*c:])))
		}
	}

	// The refit logits move: choose their int8 range again, from what the
	// int8 classifier computes (dequantized weights and bias, int8 inputs).
	logits := make([][]float64, len(embs))
	for si, emb := range embs {
		logits[si] = make([]float64, C)
		for c := range C {
			acc := 0.0
			for i, x := range emb {
				acc += float64(int8(wq.Data[c*D+i])) * float64(x)
			}
			logits[si][c] = acc*wScales[0] + qb[c]
		}
	}
	if rep.Logits, err = ChooseLogitsRange(logits, z); err != nil {
		return nil, fmt.Errorf("quant: head refit of %q: %w", l.name, err)
	}
	ls, lz, err := ActParams(float64(rep.Logits.Range.Min), float64(rep.Logits.Range.Max))
	if err != nil {
		return nil, fmt.Errorf("quant: head refit of %q: %w", l.name, err)
	}
	q.out.Tensors[l.qOut].Quant = &resnet.Quant{Scale: []float32{ls}, ZeroPoint: []int64{lz}}

	rep.AgreementAfter, rep.ScoreErrorAfter, err = headScore(q.out, l, sm, src, z, nil)
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// headScore runs the int8 model on the samples and compares its scores (the
// SOFTMAX output sm) with the softmax of the float logits z: the share of
// samples with the same top-1, and the mean largest score difference. With
// each set, it is also called with every sample's dequantized classifier
// input and float logits.
func headScore(m *resnet.Model, l layer, sm int, src Samples, z [][]float64, each func(in, logits []float64) error) (agree, scoreErr float64, err error) {
	it, err := interp.New(m, interp.Options{KeepAll: true, Threads: 1})
	if err != nil {
		return 0, 0, fmt.Errorf("quant: head refit: preparing the int8 model: %w", err)
	}
	defer it.Close()
	var hits, errSum float64
	var buf, scores []float64
	err = forEach(src, func(si int, s Sample) error {
		if err := setInputs(it, s, si); err != nil {
			return err
		}
		if err := it.Invoke(); err != nil {
			return fmt.Errorf("quant: head refit: int8 model on sample %d: %w", si, err)
		}
		scores = dequantized(it.TensorByIndex(sm), scores[:0])
		if argmax(scores) == argmax(z[si]) {
			hits++
		}
		worst, ref := 0.0, softmax(z[si])
		for c, p := range scores {
			worst = math.Max(worst, math.Abs(p-ref[c]))
		}
		errSum += worst
		if each != nil {
			buf = dequantized(it.TensorByIndex(l.qIn), buf[:0])
			if err := each(buf, z[si]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	n := float64(src.Len())
	return hits / n, errSum / n, nil
}

// fitRMSE is the root mean squared difference between z and w e + b.
func fitRMSE(embs [][]float32, z [][]float64, w func(c, i int) float64, b func(c int) float64) float64 {
	var sq float64
	n := 0
	for si, e := range embs {
		for c, zc := range z[si] {
			acc := b(c)
			for i, x := range e {
				acc += w(c, i) * float64(x)
			}
			sq += (acc - zc) * (acc - zc)
			n++
		}
	}
	return math.Sqrt(sq / float64(max(n, 1)))
}

func dequantized(t *interp.Tensor, dst []float64) []float64 {
	s, zp := float64(t.Quant.Scale[0]), t.Quant.ZeroPoint[0]
	for _, x := range t.Int8() {
		dst = append(dst, s*float64(int64(x)-zp))
	}
	return dst
}

func floatTensor(name string, shape []int, v []float32) resnet.Tensor {
	return resnet.Tensor{Name: name, Type: resnet.Float32, Shape: append([]int(nil), shape...), Data: build.Float32Bytes(v)}
}

// normalEquations accumulates X'X (lower triangle) and X'Y for a linear
// least-squares fit of m targets on n features.
type normalEquations struct {
	n, m int
	a    []float64 // n x n, lower triangle filled
	b    []float64 // n x m
	rows int
}

func newNormalEquations(n, m int) *normalEquations {
	return &normalEquations{n: n, m: m, a: make([]float64, n*n), b: make([]float64, n*m)}
}

// add accumulates one row x (n features) with targets y (m values).
// Zero features (most of a ReLU embedding) cost nothing.
func (ne *normalEquations) add(x, y []float64) {
	n, m := ne.n, ne.m
	for i, xi := range x[:n] {
		if xi == 0 {
			continue
		}
		row := ne.a[i*n : i*n+i+1]
		for j, xj := range x[:i+1] {
			row[j] += xi * xj
		}
		bi := ne.b[i*m : (i+1)*m]
		for k, yk := range y[:m] {
			bi[k] += xi * yk
		}
	}
	ne.rows++
}

// solve returns, for each target k, the weights w minimizing
// |X w - y_k|^2 + lambda |w[:reg] - prior[k][:reg]|^2 (features from reg on,
// such as a bias, are not pulled towards the prior), by Cholesky
// factorization of X'X + lambda I.
func (ne *normalEquations) solve(lambda float64, reg int, prior [][]float64) ([][]float64, error) {
	n, m := ne.n, ne.m
	l := append([]float64(nil), ne.a...)
	for i := range reg {
		l[i*n+i] += lambda
	}
	for i := range n {
		for j := 0; j <= i; j++ {
			s := l[i*n+j]
			ri, rj := l[i*n:i*n+j], l[j*n:j*n+j]
			for k := range ri {
				s -= ri[k] * rj[k]
			}
			if i == j {
				if !(s > 0) {
					return nil, fmt.Errorf("the normal equations are singular at feature %d (a feature that is always 0 or a copy of another, with no ridge to hold it)", i)
				}
				l[i*n+i] = math.Sqrt(s)
			} else {
				l[i*n+j] = s / l[j*n+j]
			}
		}
	}
	out := make([][]float64, m)
	y := make([]float64, n)
	for k := range m {
		for i := range n {
			s := ne.b[i*m+k]
			if i < reg {
				s += lambda * prior[k][i]
			}
			for j := range i {
				s -= l[i*n+j] * y[j]
			}
			y[i] = s / l[i*n+i]
		}
		x := make([]float64, n)
		for i := n - 1; i >= 0; i-- {
			s := y[i]
			for j := i + 1; j < n; j++ {
				s -= l[j*n+i] * x[j]
			}
			x[i] = s / l[i*n+i]
		}
		for i, v := range x {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("the fit gave a non-finite weight (target %d, feature %d)", k, i)
			}
		}
		out[k] = x
	}
	return out, nil
}
