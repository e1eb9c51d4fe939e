package interp

import "github.com/shortcut-edge/shortcut/resnet/internal/fast"

// fusedKernel stands in for an operator whose work a neighbouring
// operator's kernel does (an int8 ADD done by the convolution before it, a
// PAD done by the pooling after it). It keeps the program's kernels one per
// model operator, so that profiles and the arm64 estimate
// (internal/armestimate, which reads the name of each eval) still see every
// operator (the estimate finds evals by their pointer receivers); its eval
// does nothing. with is the index of the operator whose
// kernel does the work.
type fusedKernel struct{ with int }

func (*fusedKernel) eval([]Tensor, *fast.Runner) {}

// Fused returns, for each model operator whose work the kernel of a
// neighbouring operator does (an ADD in the output stage of the
// convolution before it, a PAD read through by the pooling after it), its
// index mapped to that neighbour's. Empty with Options.KeepAll, the
// reference kernels, or where a kernel family has no fused path.
func (it *Interpreter) Fused() map[int]int {
	f := map[int]int{}
	for i, k := range it.prog.kernels {
		if k, ok := k.(*fusedKernel); ok {
			f[i] = k.with
		}
	}
	return f
}
