// Package decide is the agent's decision stage: it turns noisy per-frame
// scores into a stable state per camera (Debouncer, with hysteresis) and
// paces what is published (RateLimiter). It knows scores and times only:
// labels, payloads and MQTT are the publish stage's.
package decide

import (
	"time"

	"github.com/shortcut-edge/shortcut/resnet/modelio"
)

// Config turns per-frame scores into a stable state (the configuration's
// decision section).
type Config struct {
	// A label becomes the state after Frames consecutive frames where it is
	// the top class with score >= Threshold.
	Threshold float64 `yaml:"threshold"`
	Frames    int     `yaml:"frames"`
	// Release is the hysteresis: the current state does not count as lost
	// while its score stays >= Release.
	Release float64 `yaml:"release"`
}

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
func NewDebouncer(d Config) *Debouncer {
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

// RateLimiter lets one event through per interval; interval 0 lets all.
type RateLimiter struct {
	interval time.Duration
	last     time.Time
}

// NewRateLimiter lets perSecond events a second through (0 or less: all).
func NewRateLimiter(perSecond float64) *RateLimiter {
	if perSecond <= 0 {
		return &RateLimiter{}
	}
	return &RateLimiter{interval: time.Duration(float64(time.Second) / perSecond)}
}

// Allow reports whether an event at now may pass, and counts it when it does.
func (r *RateLimiter) Allow(now time.Time) bool {
	if r.interval == 0 || r.last.IsZero() || now.Sub(r.last) >= r.interval {
		r.last = now
		return true
	}
	return false
}
