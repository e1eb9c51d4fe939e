package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// The page's live view: what the agent publishes over MQTT (predictions,
// states, events, command replies) and the progress of learn commands is
// also fanned out to the page's viewers as server-sent events on
// GET /api/v1/events. Nothing is queued for a viewer without bound: a
// viewer that falls webEventBuffer events behind is dropped, and its
// browser reconnects and reads /api/v1/status afresh.

// SSE event types (the "event:" field; "data:" is the JSON payload).
const (
	webPrediction = "prediction" // Prediction, at most webPredictionRate per camera
	webState      = "state"      // State, when a camera's debounced label changes
	webEvent      = "event"      // Event: model and head events
	webReply      = "reply"      // Reply: every command's answer, from MQTT, HTTP or the button
	webProgress   = "progress"   // LearnProgress: one example captured
	webHealth     = "health"     // Health: MQTT, cameras, model, every webHealthEvery while watched
	// webCameraEvent is a CameraEvent (new, update, end: agent/events.go),
	// as published on MQTT's camera events topic.
	webCameraEvent = "camera_event"
)

// webHealthEvery is how often a viewer gets the health (MQTT connection,
// camera states): cheap, and only while someone watches.
const webHealthEvery = 2 * time.Second

// webPredictionRate caps prediction events per camera per second: enough
// for a live label and bars, cheap on a board's CPU.
const webPredictionRate = 4

// webEventBuffer is how far a viewer may fall behind before it is dropped.
const webEventBuffer = 64

// webRecent is how many events /api/v1/status lists (predictions and
// learn progress excepted: they are live only).
const webRecent = 20

// LearnProgress is a progress event of a learn command: added of requested
// examples of label are in.
type LearnProgress struct {
	Time      string `json:"time"`
	Command   string `json:"command"`
	ID        string `json:"id"`
	Label     string `json:"label"`
	Camera    string `json:"camera"`
	Added     int    `json:"added"`
	Requested int    `json:"requested"`
}

// WebEvent is one server-sent event, as /api/v1/status lists the recent
// ones.
type WebEvent struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// webHub fans events out to the viewers of /api/v1/events.
type webHub struct {
	viewers atomic.Int32 // so that the pipelines skip predictions nobody watches

	mu       sync.Mutex
	subs     map[*webSub]struct{}
	recent   []WebEvent           // oldest first, at most webRecent
	lastPred map[string]time.Time // camera -> time of its last prediction event
}

type webSub struct {
	ch   chan WebEvent
	gone chan struct{} // closed when the viewer fell too far behind
}

func newWebHub() *webHub {
	return &webHub{subs: map[*webSub]struct{}{}, lastPred: map[string]time.Time{}}
}

func (h *webHub) subscribe() *webSub {
	s := &webSub{ch: make(chan WebEvent, webEventBuffer), gone: make(chan struct{})}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	h.viewers.Add(1)
	return s
}

func (h *webHub) unsubscribe(s *webSub) {
	h.mu.Lock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		h.viewers.Add(-1)
	}
	h.mu.Unlock()
}

// publish sends v as an event of type typ to every viewer without
// blocking; a viewer whose buffer is full is dropped.
func (h *webHub) publish(typ string, v any) {
	ev := WebEvent{Type: typ, Data: mustJSON(v)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if typ != webPrediction && typ != webProgress && typ != webHealth {
		if len(h.recent) == webRecent {
			h.recent = append(h.recent[:0], h.recent[1:]...)
		}
		h.recent = append(h.recent, ev)
	}
	for s := range h.subs {
		select {
		case s.ch <- ev:
		default:
			delete(h.subs, s)
			h.viewers.Add(-1)
			close(s.gone)
		}
	}
}

// prediction publishes p unless nobody watches or the camera had one
// within 1/webPredictionRate s.
func (h *webHub) prediction(p Prediction, now time.Time) {
	if h.viewers.Load() == 0 {
		return
	}
	h.mu.Lock()
	last := h.lastPred[p.Camera]
	due := now.Sub(last) >= time.Second/webPredictionRate
	if due {
		h.lastPred[p.Camera] = now
	}
	h.mu.Unlock()
	if due {
		h.publish(webPrediction, p)
	}
}

// recentEvents is a copy of the latest events, oldest first.
func (h *webHub) recentEvents() []WebEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]WebEvent{}, h.recent...)
}

// sseKeepAlive is how often an idle event stream sends a comment, so that
// proxies keep it open and a viewer that left is noticed.
const sseKeepAlive = 15 * time.Second

// serveEvents streams events to one viewer until it leaves, falls behind,
// or the agent stops (the request's context is Run's). Like
// /stream.mjpeg, each write gets http.write_timeout of its own.
func (a *Agent) serveEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	sub := a.web.subscribe()
	defer a.web.unsubscribe(sub)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	write := func(format string, args ...any) bool {
		if rc.SetWriteDeadline(time.Now().Add(a.cfg.HTTP.WriteTimeout)) != nil {
			return false
		}
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// The browser reconnects 2 s after a drop; "hello" tells the page to
	// read /api/v1/status for what it missed.
	if !write("retry: 2000\nevent: hello\ndata: {}\n\n") {
		return
	}
	ping := time.NewTicker(sseKeepAlive)
	defer ping.Stop()
	health := time.NewTicker(webHealthEvery)
	defer health.Stop()
	var lastHealth []byte
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sub.gone:
			write("event: dropped\ndata: {\"error\": \"this viewer fell %d events behind; reconnect\"}\n\n", webEventBuffer)
			return
		case ev := <-sub.ch:
			if !write("event: %s\ndata: %s\n\n", ev.Type, ev.Data) {
				return
			}
		case <-health.C:
			h := mustJSON(a.Health())
			if bytes.Equal(h, lastHealth) {
				continue
			}
			lastHealth = h
			if !write("event: %s\ndata: %s\n\n", webHealth, h) {
				return
			}
		case <-ping.C:
			if !write(": keep-alive\n\n") {
				return
			}
		}
	}
}

// cameraEvent shows a camera event (new, update, end) to the page's
// viewers and in /api/v1/status's recent events. agent/events.go calls it
// beside the MQTT message.
func (h *webHub) cameraEvent(e CameraEvent) { h.publish(webCameraEvent, e) }
