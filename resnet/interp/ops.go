package interp

// The prepared operators (their types and Eval live in op_*.go, beside their
// Prepare). Each holds the indices of the tensors it reads and
// writes, its reference-kernel parameters and its constant weights as typed
// slices (shared read-only by clones). eval only fetches views and calls the
// kernel: no checks, maps, allocation or formatting on this path. Kernels
// from resnet/internal/fast run through the interpreter's fast.Runner,
// which holds their scratch memory and worker threads.

// macs is the number of multiply-accumulates one inference performs in
// convolutions and fully connected layers (padding taps included), for
// benchmarks' GMAC/s.
func (p *program) macs() int64 {
	var n int64
	for _, k := range p.kernels {
		switch k := k.(type) {
		case *fastConvKernel:
			n += k.c.MACs()
		case *fastFConvKernel:
			n += k.c.MACs()
		case *fastFConvAddKernel:
			n += k.c.MACs()
		case *fastConvAddKernel:
			n += k.c.MACs()
		case *fastDepthwiseKernel:
			n += k.d.MACs()
		case *convKernel:
			q := &k.p
			perOut := int64(q.FilterH * q.FilterW * q.InC)
			if k.depthwise {
				perOut = int64(q.FilterH * q.FilterW)
			}
			n += int64(q.Batch*q.OutH*q.OutW*q.OutC) * perOut
		case *fullyConnectedKernel:
			n += int64(k.p.Batch) * int64(k.p.InDepth) * int64(k.p.OutDepth)
		}
	}
	return n
}
