package fast

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shortcut-edge/shortcut/resnet"
)

// TestRunnerClaimsEachUnitOnce runs many small jobs back to back, as a
// small network's operators do, and checks that every unit of every job
// runs exactly once. A helper that claims late, across the start of the
// next job, ran a unit twice and made done pass units, so that the caller
// waited for ever (the 2-thread ResNet-20 hang); the deadline below turns
// such a hang into a failure instead of a stuck test.
func TestRunnerClaimsEachUnitOnce(t *testing.T) {
	jobs := 200_000
	if testing.Short() {
		jobs = 50_000
	}
	for _, threads := range []int{2, 3} {
		r := NewRunner(threads, 0)
		counts := make([]atomic.Int32, 64)
		fail := make(chan string, 1)
		finished := make(chan struct{})
		go func() {
			defer close(finished)
			for k := range jobs {
				n := 1 + (k*7)%len(counts) // sizes vary from job to job
				r.job = job{kind: jobCount, count: counts[:n], units: n}
				r.run()
				r.job = job{}
				for u := range counts[:n] {
					if c := counts[u].Swap(0); c != 1 {
						fail <- fmt.Sprintf("job %d (%d units): unit %d ran %d times", k, n, u, c)
						return
					}
				}
			}
		}()
		select {
		case <-finished:
		case <-time.After(2 * time.Minute):
			t.Fatalf("threads=%d: the runner did not finish %d jobs (a unit counted twice leaves the caller waiting)", threads, jobs)
		}
		select {
		case msg := <-fail:
			t.Fatalf("threads=%d: %s", threads, msg)
		default:
		}
		r.Close()
	}
}

// TestRunnerSizesInt8ConvChunksByWork checks that an int8 convolution's
// jobs are split by their work, as float ones are: a small layer (CIFAR
// ResNet-20's 32x32x16 3x3, a few tens of microseconds) goes to two
// threads in halves, one claim each, while a large one (ResNet-50's
// 56x56x64 3x3) keeps about four chunks per thread.
func TestRunnerSizesInt8ConvChunksByWork(t *testing.T) {
	for _, tc := range []struct {
		c         convCase
		wantHalve bool
	}{
		{convCase{1, 32, 32, 16, 16, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu}, true},
		{convCase{1, 56, 56, 64, 64, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu}, false},
	} {
		t.Run(tc.c.String(), func(t *testing.T) {
			r := rand.New(rand.NewPCG(5, 6))
			p, filter, bias := randomConv(r, tc.c)
			c, err := NewConv(&p, filter, bias, Go)
			if err != nil {
				t.Fatal(err)
			}
			run := NewRunner(2, c.ScratchBytes())
			defer run.Close()
			in := randomInt8s(r, p.Batch*p.InH*p.InW*p.InC)
			out := make([]int8, p.Batch*p.OutH*p.OutW*p.OutC)
			run.Conv(c, in, out) // the tiles job runs last: its chunk stays
			units := c.blocks * c.mtiles
			want := max(1, units/8)
			if tc.wantHalve {
				want = (units + 1) / 2
			}
			if got := int(run.chunk.Load()); got != want {
				t.Fatalf("%d tiles of %d multiply-accumulates: chunks of %d tiles, want %d", units, c.tileWork(), got, want)
			}
		})
	}
}
