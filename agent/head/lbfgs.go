package head

import (
	"context"
	"math"
)

// objective evaluates f(x) and writes its gradient into g.
type objective func(x, g []float64) float64

// lbfgsResult is what minimize reports.
type lbfgsResult struct {
	f          float64
	iterations int
	evals      int
}

// minimize runs limited-memory BFGS (Nocedal & Wright, Algorithm 7.4 and
// 7.5) with a backtracking Armijo line search from x, in place. The
// softmax loss is smooth and convex, where L-BFGS needs tens of iterations
// where gradient descent needs thousands, and it has no step size to tune.
// Every operation is sequential, so a run is bit-for-bit reproducible.
func minimize(ctx context.Context, fg objective, x []float64, maxIter int) (lbfgsResult, error) {
	const (
		history = 10
		c1      = 1e-4  // Armijo sufficient-decrease constant
		ftol    = 1e-10 // relative decrease below which we stop
		gtol    = 1e-7  // gradient max-norm below which we stop
	)
	n := len(x)
	g := make([]float64, n)
	gNew := make([]float64, n)
	xNew := make([]float64, n)
	d := make([]float64, n)
	s := make([][]float64, history)
	y := make([][]float64, history)
	for i := range s {
		s[i], y[i] = make([]float64, n), make([]float64, n)
	}
	rho := make([]float64, history)
	alpha := make([]float64, history)
	stored, head := 0, 0 // number of pairs, index of the next slot

	var res lbfgsResult
	f := fg(x, g)
	res.evals++
	for res.iterations < maxIter {
		if err := ctx.Err(); err != nil {
			res.f = f
			return res, err
		}
		if maxAbs(g) < gtol {
			break
		}
		// Two-loop recursion: d = -H g.
		for i := range d {
			d[i] = -g[i]
		}
		for k := 0; k < stored; k++ {
			j := (head - 1 - k + history) % history
			alpha[j] = rho[j] * dot64(s[j], d)
			axpy64(-alpha[j], y[j], d)
		}
		gamma := 1 / math.Sqrt(dot64(g, g)) // first step: unit length
		if stored > 0 {
			j := (head - 1 + history) % history
			gamma = dot64(s[j], y[j]) / dot64(y[j], y[j])
		}
		for i := range d {
			d[i] *= gamma
		}
		for k := stored - 1; k >= 0; k-- {
			j := (head - 1 - k + history) % history
			beta := rho[j] * dot64(y[j], d)
			axpy64(alpha[j]-beta, s[j], d)
		}
		slope := dot64(g, d)
		if !(slope < 0) { // not a descent direction: forget the curvature
			stored = 0
			for i := range d {
				d[i] = -g[i] / math.Sqrt(dot64(g, g))
			}
			slope = dot64(g, d)
		}
		step := 1.0
		var fNew float64
		accepted := false
		for try := 0; try < 40; try++ {
			for i := range xNew {
				xNew[i] = x[i] + step*d[i]
			}
			fNew = fg(xNew, gNew)
			res.evals++
			if fNew <= f+c1*step*slope {
				accepted = true
				break
			}
			step /= 2
		}
		if !accepted {
			break // no decrease along d at any scale: at the optimum to rounding
		}
		res.iterations++
		for i := range x {
			s[head][i] = xNew[i] - x[i]
			y[head][i] = gNew[i] - g[i]
		}
		if sy := dot64(s[head], y[head]); sy > 1e-12 {
			rho[head] = 1 / sy
			head = (head + 1) % history
			stored = min(stored+1, history)
		}
		decrease := f - fNew
		copy(x, xNew)
		copy(g, gNew)
		f = fNew
		if decrease <= ftol*math.Max(1, math.Abs(f)) {
			break
		}
	}
	res.f = f
	return res, nil
}

func maxAbs(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	return m
}

func dot64(a, b []float64) float64 {
	var s0, s1, s2, s3 float64
	b = b[:len(a)]
	n := len(a) &^ 3
	for i := 0; i < n; i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for i := n; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// axpy64 computes y += a*x.
func axpy64(a float64, x, y []float64) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += a * v
	}
}
