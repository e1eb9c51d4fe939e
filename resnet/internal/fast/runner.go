package fast

import (
	"runtime"
	"sync/atomic"
	"unsafe"
)

// Runner runs prepared kernels for one interpreter: it owns the scratch
// memory they need and, with more than one thread, a fixed set of worker
// goroutines that share each operator's output tiles. The calling goroutine
// always works on the operator itself; with one thread nothing is
// synchronized at all. A Runner is used by one goroutine at a time; Close
// stops its workers.
//
// Work is claimed in small chunks from a shared counter, not split in fixed
// shares: a helper whose core is taken by another process (a camera, the
// MQTT client, another program on the board) leaves its chunks to the
// others instead of holding every operator back until the kernel schedules
// it again. The caller waits only for chunks already claimed.
type Runner struct {
	threads int
	scratch []byte
	workers []worker

	wake  []chan struct{} // a wake-up per helper (threads-1), never more than one pending
	gen   atomic.Uint64   // job generation: helpers that spin watch it
	next  atomic.Uint64   // the current job's generation << 32 | the next unit to claim
	units atomic.Int64    // the current job's units
	chunk atomic.Int64    // units claimed at a time
	done  atomic.Int64    // units finished
	job   job
}

// minChunkWork is the least work, in multiply-accumulates, that a chunk of
// a job with known unit work holds (tens of microseconds of a core).
const minChunkWork = 1 << 22

// closedIndex is next's unit index while a job is being set up: no job has
// that many units.
const closedIndex = 1<<32 - 1

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
	fpool   *FMaxPool
	in, in2 []int8
	out     []int8
	fin     []float32
	fout    []float32
	count   []atomic.Int32
	units   int
	// unitWork: multiply-accumulates (or floats copied) per unit, where
	// known (0: not).
	unitWork int
}

const (
	jobPad = iota
	jobTiles
	jobAdd
	jobMaxPool
	jobDepthwise
	jobFPad
	jobFTiles
	jobFMaxPool
	jobCount // tests: counts each unit's runs in count
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
	seen := r.gen.Load()
	for {
		for i := 0; i < helperSpin && r.gen.Load() == seen; i++ {
		}
		if r.gen.Load() == seen {
			// Parked until the next job's wake-up.
			if _, ok := <-wake; !ok {
				return
			}
		} else {
			// Spinning saw the job: drop its wake-up, or it would wake
			// this helper for nothing later.
			select {
			case _, ok := <-wake:
				if !ok {
					return
				}
			default:
			}
		}
		seen = r.gen.Load()
		r.claim(id)
	}
}

// claim does chunks of the current job until none is left. A unit is
// claimed by a compare-and-swap of next, which holds the job's generation
// beside the unit index: a helper that read next during one job and swaps
// after the next job began fails instead of claiming a unit of the new job
// under the old job's count. (With a plain add, such a late claim ran a
// unit of the new job twice and counted it twice: done passed units and the
// caller waited for ever, seen as a hang at 2 threads on ResNet-20.) The
// job's fields are written before next is stored, so a claim that succeeds
// reads a complete job, and that job cannot end before the claimed units
// are counted done.
func (r *Runner) claim(id int) {
	for {
		v := r.next.Load()
		n := r.units.Load() // stored before next: this job's or a newer one's
		lo := int64(uint32(v))
		if lo >= n {
			return
		}
		hi := min(lo+r.chunk.Load(), n)
		if !r.next.CompareAndSwap(v, v+uint64(hi-lo)) {
			continue // another thread claimed, or a new job began
		}
		r.do(id, int(lo), int(hi))
		r.done.Add(hi - lo)
	}
}

// run shares r.job's units among every thread and returns when all are done.
func (r *Runner) run() {
	n := r.job.units
	if r.threads == 1 || n <= 1 {
		r.do(0, 0, n)
		return
	}
	// The new generation goes into next first, closed (no unit index
	// reaches it): a helper that read the last job's next fails its swap
	// from here on, so it cannot claim under the new units.
	g := r.gen.Load() + 1 // only this goroutine writes gen
	r.next.Store(g<<32 | closedIndex)
	// About four chunks per thread: small enough that a descheduled helper
	// holds little back, large enough that claiming costs nothing. But a
	// chunk of a job whose units' work is known holds at least
	// minChunkWork: each chunk costs a claim and a count on lines the
	// threads share, and a fresh start of the kernel loop, which a small
	// layer (ResNet-20's are tens of microseconds) feels in full.
	r.chunk.Store(int64(chunkUnits(n, r.threads, r.job.unitWork)))
	r.units.Store(int64(n))
	r.done.Store(0)
	r.next.Store(g << 32)
	r.gen.Store(g)
	for _, ch := range r.wake {
		select {
		case ch <- struct{}{}:
		default: // one is pending already
		}
	}
	r.claim(0) // returns when every unit is claimed: late helpers find none
	for i := 0; r.done.Load() != int64(n); i++ {
		if i >= callerSpin {
			runtime.Gosched() // a helper finishing its chunk may be queued on this P
		}
	}
}

// chunkUnits is the units a thread claims at a time from a job of n units
// of unitWork each (0: unknown), shared by threads (see run).
func chunkUnits(n, threads, unitWork int) int {
	chunk := max(1, n/(4*threads))
	if w := unitWork; w > 0 {
		chunk = max(chunk, min((minChunkWork+w-1)/w, (n+threads-1)/threads))
	}
	return chunk
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
		j.conv.tiles(src, j.out, j.in2, lo, hi, &w.spill)
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
	case jobFMaxPool:
		j.fpool.run(j.fin, j.fout, lo, hi)
	case jobCount:
		for u := lo; u < hi; u++ {
			j.count[u].Add(1)
		}
	}
}

// Conv runs c: output = ref.ConvInt8(c's parameters, input). The runner's
// scratch must be at least c.ScratchBytes().
func (r *Runner) Conv(c *Conv, input, output []int8) {
	if !c.direct {
		// As for FConv: a padded row's bytes stand in for its work.
		r.job = job{kind: jobPad, conv: c, in: input, units: c.padRows(), unitWork: c.pw * c.c4}
		r.run()
	}
	r.job = job{kind: jobTiles, conv: c, in: input, out: output, units: c.blocks * c.mtiles,
		unitWork: c.tileWork()}
	r.run()
	r.job = job{}
}

// ConvAdd runs a convolution prepared by FuseAdd. residual and output
// have the convolution's output length; residual may be the very same
// slice as output (in place: each residual value is read before the sum
// at its position is written) but must not otherwise overlap output or input.
func (r *Runner) ConvAdd(c *Conv, input, residual, output []int8) {
	if c.addT == nil {
		panic("fast: ConvAdd of a convolution that FuseAdd did not prepare")
	}
	n := c.m * c.p.OutC
	if len(residual) < n || len(output) < n {
		panic("fast: ConvAdd: residual or output shorter than the convolution's output")
	}
	if !c.direct {
		r.job = job{kind: jobPad, conv: c, in: input, units: c.padRows(), unitWork: c.pw * c.c4}
		r.run()
	}
	r.job = job{kind: jobTiles, conv: c, in: input, in2: residual[:n], out: output[:n], units: c.blocks * c.mtiles,
		unitWork: c.tileWork()}
	r.run()
	r.job = job{}
}

// tileWork is the multiply-accumulates of one of c's tiles (mr pixels x
// nr channels x every tap's bytes; the padding channels of c4 included,
// which the kernel multiplies too).
func (c *Conv) tileWork() int { return mr * c.nr * len(c.taps) * c.kbytes }

// FConv runs c: output = ref.ConvFloat(c's parameters, input), within
// float rounding (see NewFConv). The runner's scratch must be at least
// c.ScratchBytes().
func (r *Runner) FConv(c *FConv, input, output []float32) {
	if !c.direct {
		// A padded row's floats stand in for its work: a copy is cheaper
		// than a multiply-accumulate, so a pad splits in halves.
		r.job = job{kind: jobFPad, fconv: c, fin: input, units: c.padRows(), unitWork: c.pw * c.p.InC}
		r.run()
	}
	r.job = job{kind: jobFTiles, fconv: c, fin: input, fout: output, units: c.blocks * c.mtiles,
		unitWork: c.mr * c.nr * len(c.taps) * c.k}
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
