package fast

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
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
