package web

import (
	"encoding/json"
	"testing"

	"github.com/shortcut-edge/shortcut/agent/payload"
)

// TestCameraEventsReachTheViewersAndTheRecentList checks the page's side
// of the camera events (new, update, end): each goes to every viewer as a
// "camera_event" and stays among the recent events /api/v1/status lists.
func TestCameraEventsReachTheViewersAndTheRecentList(t *testing.T) {
	h := NewHub()
	sub := h.subscribe()
	defer h.unsubscribe(sub)
	h.CameraEvent(payload.CameraEvent{Type: payload.EventNew, ID: "front-1-1", Camera: "front", Label: "mug", Score: 0.9})
	h.CameraEvent(payload.CameraEvent{Type: payload.EventEnd, ID: "front-1-1", Camera: "front", Label: "mug", Duration: 2.5})
	for _, want := range []string{payload.EventNew, payload.EventEnd} {
		ev := <-sub.ch
		var e payload.CameraEvent
		if err := json.Unmarshal(ev.Data, &e); err != nil || ev.Type != TypeCameraEvent || e.Type != want || e.Label != "mug" {
			t.Errorf("viewer got %s %s (%v), want a camera_event %s of mug", ev.Type, ev.Data, err, want)
		}
	}
	if r := h.Recent(); len(r) != 2 || r[0].Type != TypeCameraEvent {
		t.Errorf("recent events %v, want the two camera events", r)
	}
}
