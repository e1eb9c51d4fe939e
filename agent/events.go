package agent

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"slices"
	"time"

	"golang.org/x/image/draw"

	"github.com/shortcut-edge/shortcut/agent/publish"
)

// Camera events and snapshots (PAYLOADS.md, "Camera events"): the
// debounced state of a camera, told as events that automations can follow
// the way Frigate users follow Frigate's. An event starts ("new") when a
// label other than "none" becomes the camera's state, is "update"d when the
// label's top score rises by eventScoreStep or more (at most once per
// mqtt.events.update_interval), and ends ("end") when the state leaves the
// label. The picture of the frame that started or bettered the event goes,
// as JPEG, to the retained snapshot topic just before the message, at most
// once per mqtt.snapshots.min_interval and under mqtt.snapshots.max_bytes.

// eventScoreStep is how much the top score must rise for an update: a
// rise in the third decimal is noise, not a better picture.
const eventScoreStep = 0.05

// eventTracker follows one camera's state from frame to frame. Only the
// camera's decide goroutine uses it.
type eventTracker struct {
	camera string
	n      uint64       // events started since the agent started
	cur    *CameraEvent // the open event, nil while the state is none
	// sentTop and sentAt are the top score and the frame time of the open
	// event's last message (new or update).
	sentTop float64
	sentAt  time.Time
	// lastSnap is the frame time of the camera's last snapshot; wantSnap
	// says the open event has a picture held back by min_interval.
	lastSnap time.Time
	wantSnap bool
}

// trackEvent runs for every classified frame, after the state has been
// debounced (c.prevLabel is the state after this frame), and publishes
// the event messages and snapshots this frame causes.
func (a *Agent) trackEvent(c *camera, r classified, st int, model ModelRef) {
	ev, sn := a.cfg.MQTT.Events, a.cfg.MQTT.Snapshots
	if !ev.Enabled && !sn.Enabled {
		return
	}
	tr := c.events
	label, t := c.prevLabel, r.f.Time
	score := 0.0
	if i := labelIndex(r.labels, label, st); i >= 0 {
		score = round(float64(r.scores[i]), 6)
	}
	if tr.cur != nil && tr.cur.Label != label {
		e := *tr.cur
		e.Type, e.EndTime, e.Model = EventEnd, stamp(t), model
		endScore := 0.0
		if i := labelIndex(r.labels, e.Label, -1); i >= 0 {
			endScore = round(float64(r.scores[i]), 6)
		}
		a.publishEvent(c, &e, r, endScore, false)
		tr.cur, tr.wantSnap = nil, false
	}
	if label == "" || label == NoState {
		return
	}
	if tr.cur == nil {
		tr.n++
		tr.cur = &CameraEvent{Type: EventNew, ID: fmt.Sprintf("%s-%d-%d", c.cfg.ID, t.UnixMilli(), tr.n),
			Device: a.cfg.Device.ID, Camera: c.cfg.ID, Label: label, TopScore: score, TopScoreTime: stamp(t),
			StartTime: stamp(t), Model: model}
		if sn.Enabled {
			tr.cur.SnapshotTopic = a.topics.Snapshot(c.cfg.ID)
		}
		tr.wantSnap = sn.Enabled
		snap := a.takeSnapshot(c, tr, r)
		a.publishEvent(c, tr.cur, r, score, snap)
		tr.sentTop, tr.sentAt = score, t
		return
	}
	better := score > tr.cur.TopScore
	if better {
		tr.cur.TopScore, tr.cur.TopScoreTime = score, stamp(t)
	}
	// A rise worth telling, when the last message is old enough; or a
	// picture held back that may go now.
	rise := score >= tr.sentTop+eventScoreStep && t.Sub(tr.sentAt) >= ev.UpdateInterval
	if rise && sn.Enabled {
		tr.wantSnap = true
	}
	late := tr.wantSnap && !rise && snapshotDue(tr, t, sn.MinInterval)
	if !rise && !late {
		return
	}
	e := *tr.cur
	e.Type, e.Model = EventUpdate, model
	snap := a.takeSnapshot(c, tr, r)
	if !rise && !snap {
		return
	}
	a.publishEvent(c, &e, r, score, snap)
	if rise {
		tr.sentTop, tr.sentAt = score, t
	}
}

// endOpenEvent closes the camera's open event when its pipeline stops (the
// source ended, or the agent is stopping: the publisher sends what the
// pipelines handed over before it says offline), so that every "new" has an
// "end". last is the camera's last classified frame.
func (a *Agent) endOpenEvent(c *camera, last classified, model ModelRef) {
	if a.pub == nil || last.f.Time.IsZero() {
		return
	}
	tr := c.events
	if tr == nil || tr.cur == nil {
		return
	}
	e := *tr.cur
	e.Type, e.EndTime, e.Model = EventEnd, stamp(last.f.Time), model
	score := 0.0
	if i := labelIndex(last.labels, e.Label, -1); i >= 0 {
		score = round(float64(last.scores[i]), 6)
	}
	a.publishEvent(c, &e, last, score, false)
	tr.cur, tr.wantSnap = nil, false
}

// labelIndex is label's index among labels; st, the debouncer's state, is
// tried first (it is the index unless a new head changed the labels).
func labelIndex(labels []string, label string, st int) int {
	if st >= 0 && st < len(labels) && labels[st] == label {
		return st
	}
	return slices.Index(labels, label)
}

// snapshotDue says whether min_interval has passed since the camera's
// last snapshot. Frame times, not the clock, decide: subscribers can check
// the limit from the events' times. A frame older than the last snapshot
// (the source's clock went back) starts the interval afresh.
func snapshotDue(tr *eventTracker, t time.Time, min time.Duration) bool {
	return tr.lastSnap.IsZero() || t.Before(tr.lastSnap) || t.Sub(tr.lastSnap) >= min
}

// takeSnapshot publishes r's picture on the camera's snapshot topic when
// the open event wants one and min_interval allows it, and says whether
// it did.
func (a *Agent) takeSnapshot(c *camera, tr *eventTracker, r classified) bool {
	sn := a.cfg.MQTT.Snapshots
	if !tr.wantSnap || !snapshotDue(tr, r.f.Time, sn.MinInterval) {
		return false
	}
	b, err := a.snapshotJPEG(c, r.f, sn.MaxBytes)
	if err != nil {
		a.met.errors.WithLabelValues("snapshot").Inc()
		a.log.Warn("snapshot not published", "camera", c.cfg.ID, "seq", r.f.Seq, "err", err)
		tr.wantSnap = false // the next frames would fail alike
		return false
	}
	tr.lastSnap, tr.wantSnap = r.f.Time, false
	a.pub.Enqueue(publish.Message{Kind: "snapshot", Topic: a.topics.Snapshot(c.cfg.ID), Payload: b, Retained: true})
	return true
}

// publishEvent completes e with r's frame and hands it to the publisher.
// Events are few (state changes) and a subscriber pairs new with end, so
// a full queue is waited for a moment rather than dropping them at once.
func (a *Agent) publishEvent(c *camera, e *CameraEvent, r classified, score float64, snap bool) {
	if !a.cfg.MQTT.Events.Enabled {
		return
	}
	start, _ := time.Parse(time.RFC3339Nano, e.StartTime)
	m := *e
	m.Time, m.Seq, m.Score, m.HasSnapshot = stamp(r.f.Time), r.f.Seq, score, snap
	m.Duration = round(max(r.f.Time.Sub(start), 0).Seconds(), 3)
	a.log.Debug("camera event", "camera", c.cfg.ID, "type", m.Type, "id", m.ID, "label", m.Label, "snapshot", snap)
	a.pub.EnqueueWait(publish.Message{Kind: "camera_event", Topic: a.topics.CameraEvents(c.cfg.ID), Payload: mustJSON(m)}, eventWait)
	a.hub.CameraEvent(m)
}

// eventWait bounds how long a camera waits for room in the publish queue
// for one event message.
const eventWait = 500 * time.Millisecond

// snapshotJPEG is f's picture as a JPEG of at most maxBytes: the decoded
// image when the source gives one, else the source's own full picture
// (OpenCV sources), else the model input. A picture too big is encoded at
// lower qualities, then at half its size, until it fits.
func (a *Agent) snapshotJPEG(c *camera, f Frame, maxBytes int) ([]byte, error) {
	img := f.Image
	if img == nil {
		if sn, ok := c.src.(Snapshotter); ok {
			b, err := sn.Snapshot(a.cfg.HTTP.SnapshotQuality)
			if err != nil {
				return nil, err
			}
			if len(b) <= maxBytes {
				return b, nil
			}
			if img, err = jpeg.Decode(bytes.NewReader(b)); err != nil {
				return nil, fmt.Errorf("the camera's own JPEG (%d bytes) does not decode: %v", len(b), err)
			}
		} else {
			img = pixelsImage(f.Pixels, a.Model(), c.cfg.Preprocess)
		}
	}
	return capJPEG(img, a.cfg.HTTP.SnapshotQuality, maxBytes)
}

// capJPEG encodes img at quality, and at lower qualities and half sizes
// until the JPEG fits in maxBytes.
func capJPEG(img image.Image, quality, maxBytes int) ([]byte, error) {
	var b bytes.Buffer
	for {
		for _, q := range []int{quality, min(quality, 60), min(quality, 40), min(quality, 20)} {
			b.Reset()
			if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: q}); err != nil {
				return nil, fmt.Errorf("JPEG encoding of a %v picture failed: %v", img.Bounds().Size(), err)
			}
			if b.Len() <= maxBytes {
				return b.Bytes(), nil
			}
		}
		sz := img.Bounds().Size()
		if sz.X < 32 || sz.Y < 32 {
			return nil, fmt.Errorf("a %v picture takes %d bytes at JPEG quality 20, over mqtt.snapshots.max_bytes (%d)", sz, b.Len(), maxBytes)
		}
		half := image.NewRGBA(image.Rect(0, 0, sz.X/2, sz.Y/2))
		draw.ApproxBiLinear.Scale(half, half.Bounds(), img, img.Bounds(), draw.Src, nil)
		img = half
	}
}
