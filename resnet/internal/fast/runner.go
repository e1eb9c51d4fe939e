package fast

import (
	"runtime"
	"sync/atomic"
	"unsafe"
)

// Runner runs prepared kernels for one interpreter: it owns the scratch
// memory they need and, with more than one thread, a fixed set of worker
// goroutines that split each operator's output tiles. The calling goroutine
// always does the first share itself; with one thread nothing is
// synchronized at all. A Runner is used by one goroutine at a time; Close
// stops its workers.
type Runner struct {
	threads int
	scratch []byte
	workers []worker

	wake    []chan struct{} // one token per job per helper goroutine (threads-1)
	gen     atomic.Uint64   // job generation: helpers that spin watch it
	pending atomic.Int32    // helpers still working on the current job
	job     job
}

// worker is one thread's private state, reused by every call.
type worker struct {
	spill  [mr * nr]byte // output of tiles that overhang the tensor
	fargs  ftileArgs
	fspill [fmr * 32]float32 // the same for float tiles (nr up to 32)
	_      [64]byte          // keep workers on separate cache lines
}

// job is the operator being run; helpers read it after their wake-up.
type job struct {
	kind    int
	conv    *Conv
	add     *Add
	pool    *MaxPool
	dw      *Depthwise
	fconv   *FConv
	in, in2 []int8
	out     []int8
	fin     []float32
	fout    []float32
	units   int
}

const (
	jobPad = iota
	jobTiles
	jobAdd
	jobMaxPool
	jobDepthwise
	jobFPad
	jobFTiles
)

// NewRunner makes a runner with the given thread count (at least 1) and
// padded-input scratch of scratchBytes. Helper goroutines start here and
// run until Close.
func NewRunner(threads, scratchBytes int) *Runner {
	threads = max(threads, 1)
	r := &Runner{threads: threads, scratch: alignedBytes(scratchBytes), workers: make([]worker, threads)}
	if threads > 1 {
		r.wake = make([]chan struct{}, threads-1)
		for i := range r.wake {
			r.wake[i] = make(chan struct{}, 1)
			go r.helper(i+1, r.wake[i])
		}
	}
	return r
}

// Threads is the number of threads the runner splits work over.
func (r *Runner) Threads() int { return r.threads }

// Close stops the helper goroutines. The runner must not be used after.
// Calling it twice is harmless.
func (r *Runner) Close() {
	for i, ch := range r.wake {
		if ch != nil {
			close(ch)
			r.wake[i] = nil
		}
	}
}

// Spin budgets, in polls of an atomic: long enough to bridge the gap
// between two operators (tens of microseconds), short enough that an idle
// interpreter parks its helpers at once in human terms. Handing work over
// through the scheduler alone costs tens of microseconds per operator: the
// woken goroutine first lands on the waker's own P.
const (
	helperSpin = 200_000
	callerSpin = 1_000
)

func (r *Runner) helper(id int, wake chan struct{}) {
	// Every job moves the generation by one and sends one token, so
	// "seen" counts the jobs this helper has taken.
	seen := r.gen.Load()
	for {
		for i := 0; i < helperSpin && r.gen.Load() == seen; i++ {
		}
		// The token is sent before the generation moves, so after a
		// successful spin this receive does not block.
		if _, ok := <-wake; !ok {
			return
		}
		seen++
		r.share(id)
		r.pending.Add(-1)
	}
}

// run splits r.job's units over every thread and returns when all are done.
func (r *Runner) run() {
	if r.threads == 1 || r.job.units <= 1 {
		r.do(0, 0, r.job.units)
		return
	}
	r.pending.Store(int32(len(r.wake)))
	for _, ch := range r.wake {
		ch <- struct{}{}
	}
	r.gen.Add(1)
	r.share(0)
	for i := 0; r.pending.Load() != 0; i++ {
		if i >= callerSpin {
			runtime.Gosched() // a parked helper may be queued on this P
		}
	}
}

func (r *Runner) share(id int) {
	n := r.job.units
	lo, hi := id*n/r.threads, (id+1)*n/r.threads
	if lo < hi {
		r.do(id, lo, hi)
	}
}

func (r *Runner) do(id, lo, hi int) {
	j := &r.job
	switch j.kind {
	case jobPad:
		j.conv.pad(j.in, r.scratch, lo, hi)
	case jobTiles:
		w := &r.workers[id]
		src := r.scratch
		if j.conv.direct {
			src = unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(j.in))), len(j.in))
		}
		j.conv.tiles(src, j.out, lo, hi, &w.spill)
	case jobAdd:
		j.add.run(j.in, j.in2, j.out, lo, hi)
	case jobMaxPool:
		j.pool.run(j.in, j.out, lo, hi)
	case jobDepthwise:
		j.dw.run(j.in, j.out, lo, hi)
	case jobFPad:
		j.fconv.pad(j.fin, float32s(r.scratch), lo, hi)
	case jobFTiles:
		w := &r.workers[id]
		src := j.fin
		if !j.fconv.direct {
			src = float32s(r.scratch)
		}
		j.fconv.tiles(src, j.fout, lo, hi, &w.fargs, w.fspill[:])
	}
}

// Conv runs c: output = ref.ConvInt8(c's parameters, input). The runner's
// scratch must be at least c.ScratchBytes().
func (r *Runner) Conv(c *Conv, input, output []int8) {
	if !c.direct {
		r.job = job{kind: jobPad, conv: c, in: input, units: c.padRows()}
		r.run()
	}
	r.job = job{kind: jobTiles, conv: c, in: input, out: output, units: c.blocks * c.mtiles}
	r.run()
	r.job = job{}
}

// FConv runs c: output = ref.ConvFloat(c's parameters, input), within
// float rounding (see NewFConv). The runner's scratch must be at least
// c.ScratchBytes().
func (r *Runner) FConv(c *FConv, input, output []float32) {
	if !c.direct {
		r.job = job{kind: jobFPad, fconv: c, fin: input, units: c.padRows()}
		r.run()
	}
	r.job = job{kind: jobFTiles, fconv: c, fin: input, fout: output, units: c.blocks * c.mtiles}
	r.run()
	r.job = job{}
}

// Add runs a: output = ref.AddInt8(a's parameters, in1, in2).
func (r *Runner) Add(a *Add, in1, in2, output []int8) {
	r.job = job{kind: jobAdd, add: a, in: in1, in2: in2, out: output, units: (len(output) + addChunk - 1) / addChunk}
	r.run()
	r.job = job{}
}

// MaxPool runs m: output = ref.MaxPoolInt8(m's parameters, input).
func (r *Runner) MaxPool(m *MaxPool, input, output []int8) {
	r.job = job{kind: jobMaxPool, pool: m, in: input, out: output, units: m.rows()}
	r.run()
	r.job = job{}
}

// Depthwise runs d: output = ref.DepthwiseConvInt8(d's parameters, input).
func (r *Runner) Depthwise(d *Depthwise, input, output []int8) {
	r.job = job{kind: jobDepthwise, dw: d, in: input, out: output, units: d.rows()}
	r.run()
	r.job = job{}
}
