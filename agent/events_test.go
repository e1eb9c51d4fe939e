package agent_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shortcut-edge/shortcut/agent"
	"github.com/shortcut-edge/shortcut/agent/agenttest"
	"github.com/shortcut-edge/shortcut/train/data"
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

// writeTwoClassPNGs writes, for a camera that loops over dir, each
// picture of pics (Fashion-MNIST test images of two classes, scaled up
// scale times) repeated block times: the state goes back and forth
// between their labels. It returns the largest JPEG of them at quality
// 80, so a test can check that a snapshot cap below it bites.
func writeTwoClassPNGs(t *testing.T, dir string, classes [2]int32, block, scale int) int {
	t.Helper()
	const base = "/usr/share/datasets/fashion-mnist/t10k-"
	n, rows, cols, pixels, err := data.ReadIDXImages(base + "images-idx3-ubyte.gz")
	if err != nil {
		t.Fatalf("%v (install the Debian package dataset-fashion-mnist)", err)
	}
	labels, err := data.ReadIDXLabels(base + "labels-idx1-ubyte.gz")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	biggest, k := 0, 0
	for _, class := range classes {
		i := slices.Index(labels[:n], class)
		if i < 0 {
			t.Fatalf("no test image of class %d", class)
		}
		img := image.NewGray(image.Rect(0, 0, cols*scale, rows*scale))
		for y := range rows * scale {
			for x := range cols * scale {
				img.Pix[y*img.Stride+x] = pixels[i*rows*cols+(y/scale)*cols+x/scale]
			}
		}
		var b bytes.Buffer
		if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 80}); err != nil {
			t.Fatal(err)
		}
		biggest = max(biggest, b.Len())
		b.Reset()
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		for range block {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.png", k)), b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			k++
		}
	}
	return biggest
}

// TestTheBinaryPublishesEventsAndCappedRateLimitedSnapshots runs the built
// agent on the demo model against a real mosquitto, its camera looping
// over a trouser and a bag, four frames each, so that its state goes back
// and forth. Every event must be new, updates, end, in that order, under
// one well-formed id whose times agree; every snapshot a JPEG under
// mqtt.snapshots.max_bytes, announced by exactly one event message, at
// least min_interval (of frame time) after the one before; and the image
// entity's discovery config only documented keys.
func TestTheBinaryPublishesEventsAndCappedRateLimitedSnapshots(t *testing.T) {
	dir := t.TempDir()
	bin := buildAgent(t, dir)
	imgs := filepath.Join(dir, "imgs")
	const maxBytes, minInterval = 1500, 300 * time.Millisecond
	if big := writeTwoClassPNGs(t, imgs, [2]int32{1, 8}, 4, 10); big <= maxBytes {
		t.Fatalf("the pictures take %d bytes as JPEG: the cap of %d would never bite", big, maxBytes)
	}
	broker := startMosquitto(t, 0)
	sub := subscribe(t, broker.URL(), "shortcut/#", "homeassistant/#")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startAgentProc(t, bin, dir, addr, fmt.Sprintf(`device: {id: evdev}
model: {path: %q, watch: false}
cameras:
  - {id: door, source: "images:%s/*.png?loop=1", fps: 20}
decision: {threshold: 0.3, frames: 2, release: 0.2}
mqtt:
  broker: %q
  reconnect_min: 100ms
  reconnect_max: 500ms
  predictions: {enabled: false}
  events: {update_interval: 0s}
  snapshots: {max_bytes: %d, min_interval: %s}
http: {address: %q}
learning: {enabled: false}
`, demoModelPath(t), imgs, broker.URL(), maxBytes, minInterval, addr))
	const topic = "shortcut/evdev/door/events"
	sub.WaitFor(topic, "six events ended", func(ms []msg) bool {
		ends := 0
		for _, m := range ms {
			if strings.Contains(m.Payload, `"type":"end"`) {
				ends++
			}
		}
		return ends >= 6
	})
	// The page sees the same events: /api/v1/status lists the latest.
	var st agent.WebStatus
	if err := json.Unmarshal([]byte(p.get(t, "/api/v1/status")), &st); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, e := range st.Events {
		if e.Type == "camera_event" {
			seen++
		}
	}
	if seen == 0 {
		t.Errorf("/api/v1/status lists no camera_event among %d recent events", len(st.Events))
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.exited
	sub.WaitFor("shortcut/evdev/availability", "offline", hasPayload(agent.Offline))

	var events []agent.CameraEvent
	for _, m := range sub.On(topic) {
		var e agent.CameraEvent
		if err := json.Unmarshal([]byte(m.Payload), &e); err != nil {
			t.Fatalf("%s: %v\n%s", topic, err, m.Payload)
		}
		events = append(events, e)
	}
	checkEventSequence(t, events, "door")
	// A clean stop closes the open event before offline: every new has its end.
	if len(events) == 0 || events[len(events)-1].Type != agent.EventEnd {
		t.Errorf("the last event message before offline is %+v; want the open event's end", events[len(events)-1:])
	}
	labels := map[string]bool{}
	var snapTimes []time.Time
	for _, e := range events {
		labels[e.Label] = true
		if e.SnapshotTopic != "shortcut/evdev/door/snapshot" {
			t.Errorf("event %s %s: snapshot_topic %q", e.ID, e.Type, e.SnapshotTopic)
		}
		if e.HasSnapshot {
			ts, _ := time.Parse(time.RFC3339Nano, e.Time)
			snapTimes = append(snapTimes, ts)
		}
	}
	if len(labels) < 2 {
		t.Errorf("events of labels %v only; the pictures were meant to give two", labels)
	}
	for i := 1; i < len(snapTimes); i++ {
		if d := snapTimes[i].Sub(snapTimes[i-1]); d < minInterval {
			t.Errorf("snapshots %d and %d are %v apart (frame time), under min_interval %v", i-1, i, d, minInterval)
		}
	}
	snaps := sub.On("shortcut/evdev/door/snapshot")
	if len(snaps) != len(snapTimes) || len(snaps) < 2 {
		t.Errorf("%d snapshots published, %d event messages with has_snapshot; want the same, at least 2", len(snaps), len(snapTimes))
	}
	sizes := make([]int, len(snaps))
	for i, m := range snaps {
		sizes[i] = len(m.Payload)
	}
	t.Logf("%d event messages of labels %v; %d snapshots of %v bytes", len(events), slices.Sorted(maps.Keys(labels)), len(snaps), sizes)
	for i, m := range snaps {
		img, err := jpeg.Decode(bytes.NewReader([]byte(m.Payload)))
		switch {
		case err != nil:
			t.Errorf("snapshot %d: %d bytes that do not decode as JPEG: %v", i, len(m.Payload), err)
		case len(m.Payload) > maxBytes:
			t.Errorf("snapshot %d: %d bytes (%v), over max_bytes %d", i, len(m.Payload), img.Bounds().Size(), maxBytes)
		}
	}

	configs := discoveryConfigs(t, sub.All())
	const imgTopic = "homeassistant/image/evdev/door_snapshot/config"
	c, ok := configs[imgTopic]
	if !ok {
		t.Fatalf("no image discovery config on %s", imgTopic)
	}
	checkKeys(t, imgTopic, "image", c)
	dev, _ := c["device"].(map[string]any)
	checkKeys(t, imgTopic, "device", dev)
	if c["image_topic"] != "shortcut/evdev/door/snapshot" || c["content_type"] != "image/jpeg" {
		t.Errorf("image discovery: image_topic %v, content_type %v", c["image_topic"], c["content_type"])
	}
}

// checkEventSequence checks a camera's event messages in arrival order:
// each event is one new, then updates, then one end, not interleaved with
// another; ids are <camera>-<start ms>-<n> with n counting up from 1;
// start, end, top-score times and durations agree.
func checkEventSequence(t *testing.T, events []agent.CameraEvent, camera string) {
	t.Helper()
	var open *agent.CameraEvent
	var prevEnd time.Time
	n := 0
	parse := func(e agent.CameraEvent, what, s string) time.Time {
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Errorf("event %s %s: %s %q: %v", e.ID, e.Type, what, s, err)
		}
		return ts
	}
	for i, e := range events {
		start, at := parse(e, "start_time", e.StartTime), parse(e, "time", e.Time)
		top := parse(e, "top_score_time", e.TopScoreTime)
		if top.Before(start) || top.After(at) || e.TopScore < e.Score && e.Type != agent.EventEnd {
			t.Errorf("event %d (%s %s): top score %v at %v, score %v at %v, start %v", i, e.ID, e.Type, e.TopScore, top, e.Score, at, start)
		}
		if want := round3(at.Sub(start).Seconds()); e.Duration != want {
			t.Errorf("event %d (%s %s): duration_s %v, want %v", i, e.ID, e.Type, e.Duration, want)
		}
		switch e.Type {
		case agent.EventNew:
			if open != nil {
				t.Errorf("event %d: new %s while %s is open", i, e.ID, open.ID)
			}
			n++
			if want := fmt.Sprintf("%s-%d-%d", camera, start.UnixMilli(), n); e.ID != want {
				t.Errorf("event %d: id %q, want %q", i, e.ID, want)
			}
			if !at.Equal(start) || start.Before(prevEnd) {
				t.Errorf("event %d (%s): new at %v, start %v, previous end %v", i, e.ID, at, start, prevEnd)
			}
			open = &events[i]
		case agent.EventUpdate, agent.EventEnd:
			if open == nil || open.ID != e.ID || open.Label != e.Label || open.StartTime != e.StartTime {
				t.Errorf("event %d: %s of %s (%s) does not continue the open event %+v", i, e.Type, e.ID, e.Label, open)
				continue
			}
			if e.TopScore < open.TopScore {
				t.Errorf("event %d (%s): top score fell from %v to %v", i, e.ID, open.TopScore, e.TopScore)
			}
			open = &events[i]
			if e.Type == agent.EventEnd {
				end := parse(e, "end_time", e.EndTime)
				if !end.Equal(at) || e.HasSnapshot {
					t.Errorf("event %d (%s): end_time %v, time %v, has_snapshot %v", i, e.ID, end, at, e.HasSnapshot)
				}
				open, prevEnd = nil, end
			} else if e.EndTime != "" {
				t.Errorf("event %d (%s): update with end_time %q", i, e.ID, e.EndTime)
			}
		default:
			t.Errorf("event %d: type %q", i, e.Type)
		}
	}
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// TestConfigChecksTheEventAndSnapshotKeys: each bad value is reported with
// its key path, all at once.
func TestConfigChecksTheEventAndSnapshotKeys(t *testing.T) {
	yaml := `device: {id: d}
mqtt:
  events: {update_interval: -1s}
  snapshots: {max_bytes: 100, min_interval: -2s}
`
	_, err := agent.ParseConfig("t.yaml", []byte(yaml), agent.ConfigOptions{Getenv: func(string) string { return "" }})
	if err == nil {
		t.Fatal("a snapshot cap of 100 bytes and negative intervals were accepted")
	}
	for _, p := range []string{"mqtt.events.update_interval", "mqtt.snapshots.max_bytes", "mqtt.snapshots.min_interval"} {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("the error does not name %s:\n%v", p, err)
		}
	}
	if _, err := agent.ParseConfig("t.yaml", []byte("device: {id: d}\ncameras: [{id: a, source: synthetic}]\nmqtt: {snapshots: {enabled: false, max_bytes: 0}}\n"),
		agent.ConfigOptions{Getenv: func(string) string { return "" }}); err != nil {
		t.Errorf("max_bytes is checked although snapshots are off: %v", err)
	}
}

// TestTheSnapshotIsRetainedAgainAfterABrokerRestart: a broker restarted
// without persistence has forgotten the retained snapshot; the agent
// publishes it again at the reconnect, as it does the state, so Home
// Assistant's image entity is not left empty.
func TestTheSnapshotIsRetainedAgainAfterABrokerRestart(t *testing.T) {
	broker := startMosquitto(t, 0)
	sub := subscribe(t, broker.URL(), "shortcut/#")
	src := agenttest.Tensors(framesFor(contractFrames...)...)
	start := make(chan struct{})
	src.Start = start // once connected: nothing is queued while the broker is away
	a, err := agent.New(testConfig(broker.URL()), agent.Options{Logger: quietLog(),
		OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return src, nil },
		LoadModel:  func(string) (agent.Classifier, error) { return fakeModel(contractTable), nil }})
	if err != nil {
		t.Fatal(err)
	}
	running(t, a)
	sub.WaitFor("shortcut/testdev/front/availability", "camera online", hasPayload(agent.Online))
	close(start)
	const topic = "shortcut/testdev/front/snapshot"
	first := sub.WaitFor(topic, "the first event's snapshot", atLeast(1))[0]
	sub.WaitFor("shortcut/testdev/front/events", "both events ended", atLeast(4))

	broker.Stop()
	broker = startMosquitto(t, broker.Port)
	subscribe(t, broker.URL(), topic).WaitFor(topic, "the snapshot published again", atLeast(1))
	late := subscribe(t, broker.URL(), topic) // after the republish: what the broker retains
	got := late.WaitFor(topic, "the snapshot retained by the restarted broker", atLeast(1))[0]
	if !got.Retained || got.Payload != first.Payload {
		t.Errorf("after the restart: retained %v, %d bytes; want the %d bytes of the snapshot published before", got.Retained, len(got.Payload), len(first.Payload))
	}
	normaliseSnapshot(t, got)
}

// TestEventUpdatesFollowRisesOfTheTopScore feeds a cat whose score rises
// 0.7, 0.8, 0.82, 0.9 and then fades: with no update_interval each rise of
// 0.05 or more is an update (0.82 is not), and with an hour only new and
// end go out, the end still carrying the best score.
func TestEventUpdatesFollowRisesOfTheTopScore(t *testing.T) {
	table := [][]float32{{0.7, 0.2, 0.1}, {0.8, 0.1, 0.1}, {0.82, 0.1, 0.08}, {0.9, 0.05, 0.05}, {0.35, 0.35, 0.3}}
	for _, tc := range []struct {
		interval time.Duration
		want     []string // type:score:top_score
	}{
		{0, []string{"new:0.7:0.7", "update:0.8:0.8", "update:0.9:0.9", "end:0.35:0.9"}},
		{time.Hour, []string{"new:0.7:0.7", "end:0.35:0.9"}},
	} {
		t.Run(fmt.Sprint("update_interval ", tc.interval), func(t *testing.T) {
			broker := startMosquitto(t, 0)
			sub := subscribe(t, broker.URL(), "shortcut/#")
			cfg := testConfig(broker.URL())
			cfg.MQTT.Events.UpdateInterval = tc.interval
			cfg.MQTT.Snapshots.Enabled = false
			src := agenttest.Tensors(framesFor(0, 0, 1, 2, 3, 4, 4)...)
			start := make(chan struct{})
			src.Start = start
			a, err := agent.New(cfg, agent.Options{Logger: quietLog(),
				OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return src, nil },
				LoadModel:  func(string) (agent.Classifier, error) { return fakeModel(table), nil }})
			if err != nil {
				t.Fatal(err)
			}
			running(t, a)
			sub.WaitFor("shortcut/testdev/front/availability", "camera online", hasPayload(agent.Online))
			close(start)
			const topic = "shortcut/testdev/front/events"
			ms := sub.WaitFor(topic, "the event's end", func(ms []msg) bool {
				return len(ms) > 0 && strings.Contains(ms[len(ms)-1].Payload, `"type":"end"`)
			})
			var events []agent.CameraEvent
			var got []string
			for _, m := range ms {
				var e agent.CameraEvent
				if err := json.Unmarshal([]byte(m.Payload), &e); err != nil {
					t.Fatal(err)
				}
				events = append(events, e)
				got = append(got, fmt.Sprintf("%s:%v:%v", e.Type, e.Score, e.TopScore))
				if e.SnapshotTopic != "" || e.HasSnapshot {
					t.Errorf("%s: snapshot_topic %q, has_snapshot %v with snapshots off", e.Type, e.SnapshotTopic, e.HasSnapshot)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("events %q, want %q", got, tc.want)
			}
			checkEventSequence(t, events, "front")
			if n := len(sub.On("shortcut/testdev/front/snapshot")); n != 0 {
				t.Errorf("%d snapshots with snapshots off", n)
			}
		})
	}
}
