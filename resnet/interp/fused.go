package interp

import "github.com/shortcut-edge/shortcut/resnet/internal/fast"

// fusedKernel stands in for an operator whose work a neighbouring
// operator's kernel does (an int8 ADD done by the convolution before it, a
// PAD done by the pooling after it). It keeps the program's kernels one per
// model operator, so that profiles and the arm64 estimate
// (internal/armestimate, which reads the name of each eval) still see every
// operator; its eval does nothing. with is the index of the operator whose
// kernel does the work.
type fusedKernel struct{ with int }

func (fusedKernel) eval([]Tensor, *fast.Runner) {}
