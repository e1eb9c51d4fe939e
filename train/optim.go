package train

import (
	"math"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
)

// Schedule gives the learning rate of each step. It runs on the host and feeds the training
// graph a scalar, so changing it never recompiles.
type Schedule struct {
	Kind        string // step, cosine, constant
	Peak        float64
	TotalSteps  int64
	WarmupSteps int64
	Milestones  []float64 // step: fractions of TotalSteps where the rate drops by 10x
}

// At returns the learning rate for step (0-based).
func (s Schedule) At(step int64) float64 {
	if s.WarmupSteps > 0 && step < s.WarmupSteps {
		return s.Peak * float64(step+1) / float64(s.WarmupSteps)
	}
	switch s.Kind {
	case "step":
		lr := s.Peak
		for _, m := range s.Milestones {
			if float64(step) >= m*float64(s.TotalSteps) {
				lr /= 10
			}
		}
		return lr
	case "cosine":
		span := max(1, s.TotalSteps-s.WarmupSteps)
		p := min(1, float64(step-s.WarmupSteps)/float64(span))
		return s.Peak * 0.5 * (1 + math.Cos(math.Pi*p))
	}
	return s.Peak
}

// optimizer applies one update to every trainable variable used by the graph.
type optimizer struct {
	kind        string // sgd or adam
	momentum    float64
	weightDecay float64
}

// decays reports whether weight decay applies to v: conv and dense weights, not batch-norm
// scales, offsets or biases.
func decays(v *context.Variable) bool {
	return v.Name() == "weights" && v.Shape().Rank() >= 2
}

// update builds the optimizer step for loss with learning rate lr (a scalar graph input) and
// increments the global step. Optimizer state lives under the scopes /sgd_momentum, /adam_m and /adam_v.
func (o optimizer) update(ctx *context.Context, loss, lr *Node) {
	g := loss.Graph()
	var vars []*context.Variable
	for v := range ctx.IterVariables() {
		if v.Trainable && v.InUseByGraph(g) {
			vars = append(vars, v)
		}
	}
	grads := ctx.BuildTrainableVariablesGradientsGraph(loss)
	step := optimizers.IncrementGlobalStepGraph(ctx.InAbsPath(context.RootScope), g, loss.DType())
	for i, v := range vars {
		w := v.ValueGraph(g)
		grad := grads[i]
		// State mirrors the variable's scope under a per-optimizer root scope.
		state := func(root string) *context.Variable {
			return ctx.InAbsPath(root+v.Scope()).Checked(false).WithInitializer(initializers.Zero).
				VariableWithShape(v.Name(), v.Shape()).SetTrainable(false)
		}
		switch o.kind {
		case "sgd":
			if o.weightDecay > 0 && decays(v) {
				grad = Add(grad, MulScalar(w, o.weightDecay))
			}
			mv := state("/sgd_momentum")
			m := Add(MulScalar(mv.ValueGraph(g), o.momentum), grad)
			mv.SetValueGraph(m)
			v.SetValueGraph(Sub(w, Mul(m, lr)))
		case "adam":
			const b1, b2, eps = 0.9, 0.999, 1e-8
			mv := state("/adam_m")
			vv := state("/adam_v")
			m := Add(MulScalar(mv.ValueGraph(g), b1), MulScalar(grad, 1-b1))
			s := Add(MulScalar(vv.ValueGraph(g), b2), MulScalar(Square(grad), 1-b2))
			mv.SetValueGraph(m)
			vv.SetValueGraph(s)
			// Bias corrections from the 1-based step.
			c1 := OneMinus(Pow(Scalar(g, loss.DType(), b1), step))
			c2 := OneMinus(Pow(Scalar(g, loss.DType(), b2), step))
			upd := Div(Div(m, c1), AddScalar(Sqrt(Div(s, c2)), eps))
			if o.weightDecay > 0 && decays(v) {
				upd = Add(upd, MulScalar(w, o.weightDecay))
			}
			v.SetValueGraph(Sub(w, Mul(upd, lr)))
		}
	}
}
