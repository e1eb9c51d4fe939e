package head

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Mode says what happens to the classes the base head already knows.
type Mode int

const (
	// Extend keeps every base class (rows without stored examples stay
	// exactly as they were) and adds the stored labels it lacks.
	Extend Mode = iota
	// Replace makes a head with exactly the stored labels; the base head,
	// if any, only lends its row scale to imprinting.
	Replace
)

func (m Mode) String() string {
	switch m {
	case Extend:
		return "extend"
	case Replace:
		return "replace"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Options tune training. The zero value is a sensible configuration.
type Options struct {
	Mode Mode
	// L2 weighs the penalty (L2/2) * r^2 * ||W - A||^2, where r^2 is the
	// mean squared distance of the embeddings from their mean (so L2 is in logit units and independent
	// of the backbone's activation scale) and A is the anchor: the base
	// model's row for base classes (so they keep what the model learnt,
	// the "L2-SP" of Li et al. 2018) and zero for new classes. 0 means
	// the default 1e-3; use a negative value for no penalty.
	L2 float64
	// MaxIterations bounds the L-BFGS iterations (default 200).
	MaxIterations int
	// Validation is the fraction of each label's examples held out to
	// measure accuracy (default 0.2; negative holds out none). Labels with
	// fewer than MinExamples examples are never split.
	Validation float64
	// MinExamples is how many examples a label needs to be trained; new
	// labels with fewer are imprinted (Head.Imprint) and base labels with
	// fewer keep their base row. Default 5.
	MinExamples int
	// Seed drives the train/validation split, the only randomness.
	Seed uint64
	// Background names the "nothing of interest" label, which must have
	// stored examples (or be a base label). "" for none.
	Background string
}

func (o Options) withDefaults() (Options, error) {
	if o.L2 == 0 {
		o.L2 = 1e-3
	}
	if o.L2 < 0 {
		o.L2 = 0
	}
	if o.MaxIterations == 0 {
		o.MaxIterations = 200
	}
	if o.Validation == 0 {
		o.Validation = 0.2
	}
	if o.Validation < 0 {
		o.Validation = 0
	}
	if o.MinExamples == 0 {
		o.MinExamples = 5
	}
	switch {
	case o.Mode != Extend && o.Mode != Replace:
		return o, fmt.Errorf("head: training mode %d is neither Extend nor Replace", o.Mode)
	case math.IsNaN(o.L2) || math.IsInf(o.L2, 0) || o.L2 > 1e6:
		return o, fmt.Errorf("head: L2 %v is out of range (0, 1e6]", o.L2)
	case o.MaxIterations < 0 || o.MaxIterations > 100000:
		return o, fmt.Errorf("head: MaxIterations %d is out of range [1, 100000]", o.MaxIterations)
	case math.IsNaN(o.Validation) || o.Validation > 0.5:
		return o, fmt.Errorf("head: validation fraction %v is out of range [0, 0.5]", o.Validation)
	case o.MinExamples < 1 || o.MinExamples > MaxPerLabelLimit:
		return o, fmt.Errorf("head: MinExamples %d is out of range [1, %d]", o.MinExamples, MaxPerLabelLimit)
	}
	return o, nil
}

// Report says how a head was trained; it is stored with the head.
type Report struct {
	Mode               string          `json:"mode"`
	Seed               uint64          `json:"seed"`
	Classes            int             `json:"classes"`
	TrainExamples      int             `json:"train_examples"`
	ValidationExamples int             `json:"validation_examples"`
	ValidationAccuracy float64         `json:"validation_accuracy"` // 0 when ValidationExamples is 0
	PerLabel           []LabelAccuracy `json:"per_label,omitempty"`
	// Confusion[i][j] counts the validation examples of label i (the head's
	// label order) that the head predicts as label j; nil without a
	// validation split. Not stored with the head (it grows with the square
	// of the labels); shortcut-train head prints it.
	Confusion    [][]int  `json:"-"`
	Trained      []string `json:"trained,omitempty"`   // labels whose rows were optimised
	Imprinted    []string `json:"imprinted,omitempty"` // new labels with too few examples
	Iterations   int      `json:"iterations"`
	Loss         float64  `json:"loss"`
	Milliseconds float64  `json:"milliseconds"`
}

// LabelAccuracy is one label's validation result.
type LabelAccuracy struct {
	Label    string  `json:"label"`
	Correct  int     `json:"correct"`
	Total    int     `json:"total"`
	Accuracy float64 `json:"accuracy"`
}

// Trainer trains one head from a snapshot of examples. Make one per run;
// Train is meant to run on its own goroutine while the agent keeps
// predicting with the previous head.
type Trainer struct {
	base *Head
	ex   Examples
	opt  Options
}

// NewTrainer checks its inputs now so that Train only fails when
// cancelled. base may be nil in Replace mode; ex is used as given (take it
// from Store.Snapshot, which already copies).
func NewTrainer(base *Head, ex Examples, opt Options) (*Trainer, error) {
	o, err := opt.withDefaults()
	if err != nil {
		return nil, err
	}
	if o.Mode == Extend && base == nil {
		return nil, fmt.Errorf("head: Extend mode needs a base head (FromModel of the running model); use Replace to start from nothing")
	}
	if base != nil && base.dim != ex.Dim {
		return nil, fmt.Errorf("head: examples have embedding width %d but the base head takes %d; were they stored with another model?", ex.Dim, base.dim)
	}
	if err := checkExamples(ex); err != nil {
		return nil, err
	}
	labels := trainLabels(base, ex, o.Mode)
	if len(labels) == 0 {
		return nil, fmt.Errorf("head: nothing to train: no stored examples and no base head")
	}
	if len(labels) > MaxLabelsLimit {
		return nil, fmt.Errorf("head: %d labels; the limit is %d", len(labels), MaxLabelsLimit)
	}
	if o.Background != "" && !slices.Contains(labels, o.Background) {
		return nil, fmt.Errorf("head: background label %q has no stored examples; add some frames showing nothing of interest", o.Background)
	}
	return &Trainer{base: base, ex: ex, opt: o}, nil
}

// checkExamples validates examples that may come from a file or a caller.
func checkExamples(ex Examples) error {
	if ex.Dim < 1 || ex.Dim > MaxDim {
		return fmt.Errorf("head: embedding width %d is out of range [1, %d]", ex.Dim, MaxDim)
	}
	if len(ex.Labels) > MaxLabelsLimit {
		return fmt.Errorf("head: %d labels; the limit is %d", len(ex.Labels), MaxLabelsLimit)
	}
	seen := map[string]bool{}
	for _, l := range ex.Labels {
		if err := CheckLabel(l.Label); err != nil {
			return fmt.Errorf("head: examples: %w", err)
		}
		if seen[l.Label] {
			return fmt.Errorf("head: examples: label %q appears twice", l.Label)
		}
		seen[l.Label] = true
		if len(l.Embeddings) > MaxPerLabelLimit {
			return fmt.Errorf("head: examples: label %q has %d examples; the limit is %d", l.Label, len(l.Embeddings), MaxPerLabelLimit)
		}
		if l.Thumbnails != nil && len(l.Thumbnails) != len(l.Embeddings) {
			return fmt.Errorf("head: examples: label %q has %d thumbnails for %d embeddings", l.Label, len(l.Thumbnails), len(l.Embeddings))
		}
		for i, e := range l.Embeddings {
			if err := checkEmbedding(e, ex.Dim); err != nil {
				return fmt.Errorf("head: examples: label %q example %d: %w", l.Label, i, err)
			}
		}
	}
	return nil
}

// trainLabels is the new head's label list: base labels first in Extend
// mode, then stored labels with at least one example, in stored order.
func trainLabels(base *Head, ex Examples, mode Mode) []string {
	var labels []string
	if mode == Extend && base != nil {
		labels = base.Labels()
	}
	for _, l := range ex.Labels {
		if len(l.Embeddings) > 0 && !slices.Contains(labels, l.Label) {
			labels = append(labels, l.Label)
		}
	}
	return labels
}

// rowPlan is what happens to one row of the new head.
type rowPlan struct {
	label     string
	train     [][]float32 // training split
	val       [][]float32 // validation split
	trainable bool
	w, anchor []float32 // initial row; anchor nil means zero
	b         float32
}

// Train fits the head and returns it with its Report. It stops early with
// ctx's error when ctx is cancelled.
func (t *Trainer) Train(ctx context.Context) (*Head, error) {
	start := time.Now()
	o := t.opt
	dim := t.ex.Dim
	labels := trainLabels(t.base, t.ex, o.Mode)
	byLabel := map[string]LabelExamples{}
	for _, l := range t.ex.Labels {
		byLabel[l.Label] = l
	}
	rowNorm, meanBias := 0.0, float32(0)
	if t.base != nil {
		rowNorm, meanBias = t.base.meanRowNorm(), t.base.meanBias()
		if o.Mode == Replace {
			meanBias = 0
		}
	}
	rows := make([]rowPlan, len(labels))
	rep := Report{Mode: o.Mode.String(), Seed: o.Seed, Classes: len(labels)}
	// With examples of one label only, nothing tells the classes apart:
	// the loss would just grow that row without bound. Such labels are
	// imprinted instead.
	present := 0
	for _, l := range labels {
		if len(byLabel[l].Embeddings) > 0 {
			present++
		}
	}
	for c, label := range labels {
		r := &rows[c]
		r.label = label
		embs := byLabel[label].Embeddings
		r.train, r.val = split(embs, o.Validation, o.MinExamples, o.Seed, label)
		enough := len(embs) >= o.MinExamples && present >= 2
		baseRow := -1
		if o.Mode == Extend {
			baseRow = slices.Index(t.base.labels, label)
		}
		switch {
		case baseRow >= 0:
			r.w = slices.Clone(t.base.w[baseRow*dim : (baseRow+1)*dim])
			r.anchor, r.b = r.w, t.base.b[baseRow]
			r.trainable = enough
		case !enough:
			r.w, r.b = imprintRow(r.train, rowNorm), meanBias
			rep.Imprinted = append(rep.Imprinted, label)
		default:
			r.w, r.b = imprintRow(r.train, rowNorm), meanBias
			r.trainable = true
		}
	}
	var othersW [][]float32
	var othersB []float32
	for _, r := range rows {
		if !slices.Contains(rep.Imprinted, r.label) {
			othersW, othersB = append(othersW, r.w), append(othersB, r.b)
		}
	}
	for c := range rows {
		if r := &rows[c]; slices.Contains(rep.Imprinted, r.label) {
			r.b = imprintBias(r.w, r.train, othersW, othersB)
		}
	}
	var data trainData
	data.build(rows, dim)
	rep.TrainExamples = len(data.y)
	if data.trainable > 0 {
		res, err := data.fit(ctx, rows, o.L2, o.MaxIterations)
		if err != nil {
			return nil, fmt.Errorf("head: training stopped after %d iterations: %w", res.iterations, err)
		}
		rep.Iterations, rep.Loss = res.iterations, res.f
		for _, r := range rows {
			if r.trainable {
				rep.Trained = append(rep.Trained, r.label)
			}
		}
	}
	w := make([]float32, 0, len(rows)*dim)
	b := make([]float32, len(rows))
	for c, r := range rows {
		w = append(w, r.w...)
		b[c] = r.b
	}
	h, err := NewHead(labels, dim, w, b, o.Background)
	if err != nil {
		return nil, fmt.Errorf("head: training produced an unusable head (lower L2 or check the examples): %w", err)
	}
	correct := 0
	logits := make([]float32, len(labels))
	for c, r := range rows {
		if len(r.val) == 0 {
			continue
		}
		if rep.Confusion == nil {
			rep.Confusion = make([][]int, len(labels))
			for i := range rep.Confusion {
				rep.Confusion[i] = make([]int, len(labels))
			}
		}
		la := LabelAccuracy{Label: r.label, Total: len(r.val)}
		for _, e := range r.val {
			logits, _ = h.Logits(logits, e)
			p := argmax32(logits)
			rep.Confusion[c][p]++
			if p == c {
				la.Correct++
			}
		}
		la.Accuracy = float64(la.Correct) / float64(la.Total)
		rep.PerLabel = append(rep.PerLabel, la)
		rep.ValidationExamples += la.Total
		correct += la.Correct
	}
	if rep.ValidationExamples > 0 {
		rep.ValidationAccuracy = float64(correct) / float64(rep.ValidationExamples)
	}
	rep.Milliseconds = float64(time.Since(start).Microseconds()) / 1000
	h.report = rep
	return h, nil
}

// split shuffles one label's examples with a generator seeded by the seed
// and the label (so adding a label does not reshuffle the others) and
// holds out round(frac*n) of them, at least one, when n >= minExamples.
func split(embs [][]float32, frac float64, minExamples int, seed uint64, label string) (train, val [][]float32) {
	n := len(embs)
	nVal := 0
	if frac > 0 && n >= minExamples && n >= 2 {
		nVal = max(1, int(math.Round(frac*float64(n))))
		nVal = min(nVal, n-1)
	}
	if nVal == 0 {
		return embs, nil
	}
	h := uint64(14695981039346656037) // FNV-1a of the label
	for i := 0; i < len(label); i++ {
		h = (h ^ uint64(label[i])) * 1099511628211
	}
	r := rand.New(rand.NewPCG(seed, h))
	idx := r.Perm(n)
	for k, i := range idx {
		if k < nVal {
			val = append(val, embs[i])
		} else {
			train = append(train, embs[i])
		}
	}
	return train, val
}

// trainData is the training split laid out for the loss: embeddings as
// float64 rows, labels, class-balancing weights, and the logits of the
// rows that do not train (computed once).
type trainData struct {
	dim            int
	x              [][]float64
	y              []int     // row index of each example's label
	weight         []float64 // 1 / (labels present * examples of that label)
	fixedRows      []int
	trainRows      []int
	fixedLSE       []float64 // per example: log-sum-exp of the fixed rows' logits (-Inf for none)
	fixedOwn       []float64 // per example: its label's logit when that row is fixed
	meanSqNorm     float64
	classesPresent int
	trainable      int
}

func (d *trainData) build(rows []rowPlan, dim int) {
	d.dim = dim
	for c, r := range rows {
		if r.trainable {
			d.trainRows = append(d.trainRows, c)
		} else {
			d.fixedRows = append(d.fixedRows, c)
		}
		if len(r.train) > 0 {
			d.classesPresent++
		}
	}
	d.trainable = len(d.trainRows)
	for c, r := range rows {
		for _, e := range r.train {
			x := make([]float64, dim)
			var n2 float64
			for i, v := range e {
				x[i] = float64(v)
				n2 += x[i] * x[i]
			}
			d.meanSqNorm += n2
			d.x = append(d.x, x)
			d.y = append(d.y, c)
			d.weight = append(d.weight, 1/float64(d.classesPresent*len(r.train)))
			// The fixed rows enter the loss only through their
			// log-sum-exp (and the label's own logit when it is fixed):
			// compute both once, which keeps a 1000-class base head cheap.
			lse, own := math.Inf(-1), 0.0
			for _, fc := range d.fixedRows {
				z := float64(dot32(rows[fc].w, e)) + float64(rows[fc].b)
				lse = logAddExp(lse, z)
				if fc == c {
					own = z
				}
			}
			d.fixedLSE = append(d.fixedLSE, lse)
			d.fixedOwn = append(d.fixedOwn, own)
		}
	}
	if len(d.x) > 0 {
		// The spread around the mean, not the raw norm: ReLU embeddings
		// share a large positive mean that carries no class information.
		mean := make([]float64, dim)
		for _, x := range d.x {
			axpy64(1/float64(len(d.x)), x, mean)
		}
		d.meanSqNorm = d.meanSqNorm/float64(len(d.x)) - dot64(mean, mean)
	}
}

// fit optimises the trainable rows in place: class-balanced cross-entropy
// plus the anchored L2 penalty, by L-BFGS.
func (d *trainData) fit(ctx context.Context, rows []rowPlan, l2 float64, maxIter int) (lbfgsResult, error) {
	dim, nt := d.dim, len(d.trainRows)
	// theta: nt rows of dim weights, then nt biases.
	theta := make([]float64, nt*dim+nt)
	anchor := make([]float64, nt*dim)
	for k, c := range d.trainRows {
		for i, v := range rows[c].w {
			theta[k*dim+i] = float64(v)
		}
		if a := rows[c].anchor; a != nil {
			for i, v := range a {
				anchor[k*dim+i] = float64(v)
			}
		}
		theta[nt*dim+k] = float64(rows[c].b)
	}
	lambda := l2 * d.meanSqNorm
	// where maps a row index to its position among trainable rows, or -1.
	where := make([]int, len(rows))
	for c := range where {
		where[c] = -1
	}
	for k, c := range d.trainRows {
		where[c] = k
	}
	z := make([]float64, nt)
	fg := func(th, g []float64) float64 {
		clear(g)
		var loss float64
		for i, x := range d.x {
			for k := range d.trainRows {
				z[k] = dot64(th[k*dim:(k+1)*dim], x) + th[nt*dim+k]
			}
			m := d.fixedLSE[i]
			for _, v := range z {
				m = math.Max(m, v)
			}
			sum := math.Exp(d.fixedLSE[i] - m)
			for _, v := range z {
				sum += math.Exp(v - m)
			}
			lse := m + math.Log(sum)
			yc := where[d.y[i]]
			if yc >= 0 {
				loss -= d.weight[i] * (z[yc] - lse)
			} else {
				loss -= d.weight[i] * (d.fixedOwn[i] - lse)
			}
			for k := 0; k < nt; k++ {
				p := math.Exp(z[k] - lse)
				if k == yc {
					p--
				}
				coef := d.weight[i] * p
				axpy64(coef, x, g[k*dim:(k+1)*dim])
				g[nt*dim+k] += coef
			}
		}
		var pen float64
		for j := range anchor {
			diff := th[j] - anchor[j]
			pen += diff * diff
			g[j] += lambda * diff
		}
		return loss + lambda/2*pen
	}
	res, err := minimize(ctx, fg, theta, maxIter)
	if err != nil {
		return res, err
	}
	for k, c := range d.trainRows {
		for i := range rows[c].w {
			rows[c].w[i] = float32(theta[k*dim+i])
		}
		rows[c].b = float32(theta[nt*dim+k])
	}
	return res, nil
}

// logAddExp is log(exp(a) + exp(b)) without overflow.
func logAddExp(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	if math.IsInf(a, -1) {
		return a
	}
	return a + math.Log1p(math.Exp(b-a))
}
