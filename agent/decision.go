package agent

import (
	"github.com/shortcut-edge/shortcut/resnet/modelio"

	"time"
)

// Debouncer turns noisy per-frame scores into a stable state. A label
// becomes the state after Frames consecutive frames in which it is the top
// class with a score of at least Threshold. Hysteresis: the state is kept
// while its own score stays at or above Release, and is lost (state -1,
// "none") only after Frames consecutive frames below Release.
type Debouncer struct {
	Threshold, Release float32
	Frames             int

	state     int // -1: none yet
	candidate int
	count     int
	low       int // consecutive frames with the state's score below Release
	started   bool
}

// NewDebouncer starts with no state.
func NewDebouncer(d DecisionConfig) *Debouncer {
	return &Debouncer{Threshold: float32(d.Threshold), Release: float32(d.Release), Frames: max(d.Frames, 1), state: -1, candidate: -1}
}

// State is the current stable class index, or -1.
func (d *Debouncer) State() int { return d.state }

// Update feeds one frame's scores and reports the state and whether it
// changed with this frame.
func (d *Debouncer) Update(scores []float32) (state int, changed bool) {
	if !d.started {
		d.started, d.state, d.candidate = true, -1, -1
	}
	top := modelio.Argmax(scores)
	if top >= 0 && scores[top] >= d.Threshold {
		if top == d.candidate {
			d.count++
		} else {
			d.candidate, d.count = top, 1
		}
	} else {
		d.candidate, d.count = -1, 0
	}
	if d.candidate >= 0 && d.candidate != d.state && d.count >= d.Frames {
		d.state, d.low = d.candidate, 0
		return d.state, true
	}
	if d.state >= 0 {
		if d.state < len(scores) && scores[d.state] >= d.Release {
			d.low = 0
		} else if d.low++; d.low >= d.Frames {
			d.state, d.low = -1, 0
			return d.state, true
		}
	}
	return d.state, false
}

// rateLimiter lets one event through per interval; interval 0 lets all.
type rateLimiter struct {
	interval time.Duration
	last     time.Time
}

func newRateLimiter(perSecond float64) *rateLimiter {
	if perSecond <= 0 {
		return &rateLimiter{}
	}
	return &rateLimiter{interval: time.Duration(float64(time.Second) / perSecond)}
}

func (r *rateLimiter) allow(now time.Time) bool {
	if r.interval == 0 || r.last.IsZero() || now.Sub(r.last) >= r.interval {
		r.last = now
		return true
	}
	return false
}
