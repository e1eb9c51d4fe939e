package agent_test

import (
	"bytes"
	"fmt"
	"image/jpeg"
	"regexp"
	"strings"
	"testing"
)

// eventID is an event's id: <camera>-<start, Unix ms>-<n>.
var eventID = regexp.MustCompile(`^([a-z0-9_-]+)-([0-9]{13})-([1-9][0-9]*)$`)

// normaliseEventID checks id's shape and keeps what does not change from
// run to run: the camera and the event's number.
func normaliseEventID(t *testing.T, topic, id string) string {
	t.Helper()
	p := eventID.FindStringSubmatch(id)
	if p == nil {
		t.Errorf("%s: event id %q, want <camera>-<start unix ms>-<n>", topic, id)
		return id
	}
	return p[1] + "-<ms>-" + p[3]
}

// normaliseSnapshot checks that a snapshot is a JPEG and stands for it by
// its size in pixels (the bytes differ between encoder versions).
func normaliseSnapshot(t *testing.T, m msg) string {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader([]byte(m.Payload)))
	if err != nil {
		t.Errorf("%s: %d bytes that do not decode as JPEG: %v", m.Topic, len(m.Payload), err)
		return "<not a JPEG>"
	}
	if !strings.HasPrefix(m.Payload, "\xff\xd8") {
		t.Errorf("%s: a JPEG without its start-of-image marker", m.Topic)
	}
	return fmt.Sprintf("<jpeg %dx%d>", img.Bounds().Dx(), img.Bounds().Dy())
}
