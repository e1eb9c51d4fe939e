package interp

import (
	"fmt"
	"strings"

	"github.com/shortcut-edge/shortcut/resnet"
)

// The kernel registry. Each op_*.go file registers the Prepare of its
// operators here in init, and holds their kernels' Eval beside it; the
// operators themselves (names, inputs, options, quantization rule) are the
// format layer's registry, resnet.Op. TestEveryRegisteredOperatorHasAKernel
// checks that the two list the same operators.

// preparers maps an operator to its Prepare: shapes, quantization
// multipliers and weights once, at New, returning the kernel Invoke runs.
var preparers = map[resnet.OpCode]func(*opContext) (kernel, error){}

func register(code resnet.OpCode, prepare func(*opContext) (kernel, error)) {
	if _, ok := resnet.Op(code); !ok {
		panic(fmt.Sprintf("interp: a kernel for %v, which resnet's operator registry does not know", code))
	}
	if _, dup := preparers[code]; dup {
		panic(fmt.Sprintf("interp: two kernels registered for %v", code))
	}
	preparers[code] = prepare
}

// prepare dispatches on the operator code.
func (c *opContext) prepare() (kernel, error) {
	if p, ok := preparers[c.op.Op]; ok {
		return p(c)
	}
	return nil, c.errorf("operator is not supported by this runtime (supported: %s)", supportedOps())
}

func supportedOps() string {
	return strings.Join(resnet.SupportedOpNames(), ", ")
}
