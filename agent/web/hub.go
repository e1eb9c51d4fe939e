package web

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shortcut-edge/shortcut/agent/payload"
)

// The page's live view: what the agent publishes over MQTT (predictions,
// states, events, command replies) and the progress of learn commands is
// also fanned out to the page's viewers as server-sent events on
// GET /api/v1/events. Nothing is queued for a viewer without bound: a
// viewer that falls eventBuffer events behind is dropped, and its
// browser reconnects and reads /api/v1/status afresh.

// SSE event types (the "event:" field; "data:" is the JSON payload).
const (
	TypePrediction = "prediction" // Prediction, at most predictionRate per camera
	TypeState      = "state"      // State, when a camera's debounced label changes
	TypeEvent      = "event"      // Event: model and head events
	TypeReply      = "reply"      // Reply: every command's answer, from MQTT, HTTP or the button
	TypeProgress   = "progress"   // LearnProgress: one example captured
	TypeHealth     = "health"     // Health: MQTT, cameras, model, every healthEvery while watched
	// TypeCameraEvent is a CameraEvent (new, update, end: agent/events.go),
	// as published on MQTT's camera events topic.
	TypeCameraEvent = "camera_event"
)

// healthEvery is how often a viewer gets the health (MQTT connection,
// camera states): cheap, and only while someone watches.
const healthEvery = 2 * time.Second

// predictionRate caps prediction events per camera per second: enough
// for a live label and bars, cheap on a board's CPU.
const predictionRate = 4

// eventBuffer is how far a viewer may fall behind before it is dropped.
const eventBuffer = 64

// recentEvents is how many events /api/v1/status lists (predictions and
// learn progress excepted: they are live only).
const recentEvents = 20

// Event is one server-sent event (payload.WebEvent).
type Event = payload.WebEvent

// Hub fans events out to the viewers of /api/v1/events.
type Hub struct {
	viewers atomic.Int32 // so that the pipelines skip predictions nobody watches

	mu       sync.Mutex
	subs     map[*sub]struct{}
	recent   []Event              // oldest first, at most recentEvents
	lastPred map[string]time.Time // camera -> time of its last prediction event
}

type sub struct {
	ch   chan Event
	gone chan struct{} // closed when the viewer fell too far behind
}

func NewHub() *Hub {
	return &Hub{subs: map[*sub]struct{}{}, lastPred: map[string]time.Time{}}
}

func (h *Hub) subscribe() *sub {
	s := &sub{ch: make(chan Event, eventBuffer), gone: make(chan struct{})}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	h.viewers.Add(1)
	return s
}

func (h *Hub) unsubscribe(s *sub) {
	h.mu.Lock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		h.viewers.Add(-1)
	}
	h.mu.Unlock()
}

// Publish sends v as an event of type typ to every viewer without
// blocking; a viewer whose buffer is full is dropped.
func (h *Hub) Publish(typ string, v any) {
	ev := Event{Type: typ, Data: payload.JSON(v)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if typ != TypePrediction && typ != TypeProgress && typ != TypeHealth {
		if len(h.recent) == recentEvents {
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

// Prediction publishes p unless nobody watches or the camera had one
// within 1/predictionRate s.
func (h *Hub) Prediction(p payload.Prediction, now time.Time) {
	if h.viewers.Load() == 0 {
		return
	}
	h.mu.Lock()
	last := h.lastPred[p.Camera]
	due := now.Sub(last) >= time.Second/predictionRate
	if due {
		h.lastPred[p.Camera] = now
	}
	h.mu.Unlock()
	if due {
		h.Publish(TypePrediction, p)
	}
}

// Recent is a copy of the latest events, oldest first.
func (h *Hub) Recent() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Event{}, h.recent...)
}

// sseKeepAlive is how often an idle event stream sends a comment, so that
// proxies keep it open and a viewer that left is noticed.
const sseKeepAlive = 15 * time.Second

// ServeEvents streams events to one viewer until it leaves, falls behind,
// or the agent stops (the request's context is Run's). Like
// /stream.mjpeg, each write gets http.write_timeout of its own.
func (h *Hub) ServeEvents(w http.ResponseWriter, r *http.Request, health func() any, writeTimeout time.Duration) {
	rc := http.NewResponseController(w)
	sub := h.subscribe()
	defer h.unsubscribe(sub)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	write := func(format string, args ...any) bool {
		if rc.SetWriteDeadline(time.Now().Add(writeTimeout)) != nil {
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
	healthTick := time.NewTicker(healthEvery)
	defer healthTick.Stop()
	var lastHealth []byte
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sub.gone:
			write("event: dropped\ndata: {\"error\": \"this viewer fell %d events behind; reconnect\"}\n\n", eventBuffer)
			return
		case ev := <-sub.ch:
			if !write("event: %s\ndata: %s\n\n", ev.Type, ev.Data) {
				return
			}
		case <-healthTick.C:
			b := payload.JSON(health())
			if bytes.Equal(b, lastHealth) {
				continue
			}
			lastHealth = b
			if !write("event: %s\ndata: %s\n\n", TypeHealth, b) {
				return
			}
		case <-ping.C:
			if !write(": keep-alive\n\n") {
				return
			}
		}
	}
}

// CameraEvent shows a camera event (new, update, end) to the page's
// viewers and in /api/v1/status's recent events. agent/events.go calls it
// beside the MQTT message.
func (h *Hub) CameraEvent(e payload.CameraEvent) { h.Publish(TypeCameraEvent, e) }
