package agent_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shortcut-edge/shortcut/agent"
	"github.com/shortcut-edge/shortcut/agent/agenttest"
)

// modelServer serves model files the way real servers fail: whole, cut
// off once (then resumed with Range), stalled, oversized, missing, and
// per device (the User-Agent names it) a bad copy.
type modelServer struct {
	*httptest.Server
	good, junk []byte
	mu         sync.Mutex
	ranges     []string // Range headers of /cut.tflite requests
	cutOnce    sync.Once
}

func newModelServer(t *testing.T, good []byte) *modelServer {
	s := &modelServer{good: good, junk: []byte("this is not a .tflite model, though its sha256 is right")}
	stop := make(chan struct{})
	serve := func(w http.ResponseWriter, r *http.Request, data []byte) {
		http.ServeContent(w, r, "m.tflite", time.Time{}, strings.NewReader(string(data)))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/good.tflite", func(w http.ResponseWriter, r *http.Request) { serve(w, r, s.good) })
	mux.HandleFunc("/junk.tflite", func(w http.ResponseWriter, r *http.Request) { serve(w, r, s.junk) })
	mux.HandleFunc("/cut.tflite", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.ranges = append(s.ranges, r.Header.Get("Range"))
		s.mu.Unlock()
		cut := false
		s.cutOnce.Do(func() { cut = true })
		if !cut {
			serve(w, r, s.good)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(s.good)))
		w.Write(s.good[:len(s.good)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the connection drops mid-file
	})
	mux.HandleFunc("/stall.tflite", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(s.good)))
		w.Write(s.good[:len(s.good)/2])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	mux.HandleFunc("/big.tflite", func(w http.ResponseWriter, r *http.Request) {
		w.Write(s.good) // no Content-Length: chunked, so only the bytes tell
		w.(http.Flusher).Flush()
		w.Write([]byte("and then some more bytes than announced"))
	})
	mux.HandleFunc("/fleet.tflite", func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.UserAgent(), "(fleet-c)") {
			bad := slices.Clone(s.good)
			bad[len(bad)/2] ^= 0xff
			serve(w, r, bad)
			return
		}
		serve(w, r, s.good)
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(func() { close(stop); s.Close() })
	return s
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// updatingAgent runs an agent on the real model running, with learning
// (commands, the state directory) on and the given device id and groups.
func updatingAgent(t *testing.T, brokerURL, dev, running string, groups ...string) (*agent.Agent, agent.Config, func()) {
	t.Helper()
	cfg := testConfig(brokerURL)
	cfg.Device.ID = dev
	cfg.Device.Groups = groups
	cfg.Model.Path = running
	cfg.Model.Updates.StallTimeout = 300 * time.Millisecond
	cfg.Model.Updates.Attempts = 2
	cfg.Cameras[0].FPS = 20
	cfg.Learning.Enabled = true
	cfg.Learning.StateDir = t.TempDir()
	a, stop := runAgent(t, cfg, agent.Options{})
	return a, cfg, stop
}

// modelsDir lists <state>/models: nothing but installed.json and the model
// files a rollback needs may be there, never a download.
func modelsDirFiles(t *testing.T, stateDir string) []string {
	t.Helper()
	es, _ := os.ReadDir(filepath.Join(stateDir, "models"))
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestModelCommandRefusesBadDownloadsThenInstallsResumesAndRollsBack(t *testing.T) {
	models := realModels(t)
	good, err := os.ReadFile(models[1])
	if err != nil {
		t.Fatal(err)
	}
	srv := newModelServer(t, good)
	broker := startMosquitto(t, 0)
	a, cfg, stop := updatingAgent(t, broker.URL(), "testdev", models[0])
	cmd := newCommander(t, broker.URL(), "testdev")
	first := a.Model().SHA256
	goodSHA, size := sha256Hex(good), int64(len(good))

	bad := []struct {
		name    string
		payload map[string]any
		code    string
		reason  string
	}{
		{"a URL that 404s", map[string]any{"url": srv.URL + "/missing.tflite", "sha256": goodSHA, "size": size}, "failed", "404"},
		{"a stalling server", map[string]any{"url": srv.URL + "/stall.tflite", "sha256": goodSHA, "size": size}, "failed", "stall_timeout"},
		{"more bytes than announced", map[string]any{"url": srv.URL + "/big.tflite", "sha256": goodSHA, "size": size}, "failed", "more than the"},
		{"a wrong hash", map[string]any{"url": srv.URL + "/good.tflite", "sha256": strings.Repeat("0", 64), "size": size}, "failed", "sha256"},
		{"a model that fails to load", map[string]any{"url": srv.URL + "/junk.tflite", "sha256": sha256Hex(srv.junk), "size": len(srv.junk)}, "failed", "running model was kept"},
		{"labels the model does not have", map[string]any{"url": srv.URL + "/good.tflite", "sha256": goodSHA, "size": size, "labels": []string{"x", "y", "z"}}, "failed", "labels"},
		{"a size above model.updates.max_bytes", map[string]any{"url": srv.URL + "/good.tflite", "sha256": goodSHA, "size": cfg.Model.Updates.MaxBytes + 1}, "invalid", "max_bytes"},
		{"an ftp URL", map[string]any{"url": "ftp://example.com/m.tflite", "sha256": goodSHA, "size": size}, "invalid", "http"},
		{"a short hash", map[string]any{"url": srv.URL + "/good.tflite", "sha256": "abc", "size": size}, "invalid", "64 hex"},
		{"an unknown field", map[string]any{"url": srv.URL + "/good.tflite", "sha256": goodSHA, "size": size, "force": true}, "invalid", "force"},
	}
	for _, tc := range bad {
		r := cmd.send("model", tc.payload)
		if r.OK || r.Code != tc.code || !strings.Contains(r.Error, tc.reason) {
			t.Errorf("%s: reply %s %q; want code %s with a reason naming %q", tc.name, r.Code, r.Error, tc.code, tc.reason)
		}
		if got := a.Model().SHA256; got != first {
			t.Fatalf("%s: the running model changed to %s", tc.name, got)
		}
		if files := modelsDirFiles(t, cfg.Learning.StateDir); len(files) != 0 {
			t.Errorf("%s: the state directory's models/ holds %v; want nothing left", tc.name, files)
		}
	}
	failed := cmd.sub.On("shortcut/testdev/event")
	if n := countKind(t, failed, agent.EventModelUpdateFailed); n != 6 {
		t.Errorf("%d model_update_failed events; want one per failed download, check or load (6)", n)
	}

	// Cut off half way, resumed with a Range request.
	var res agent.ModelResult
	cmd.ok("model", map[string]any{"url": srv.URL + "/cut.tflite", "sha256": goodSHA, "size": size, "labels": []string{"cat", "dog", "empty"}}, &res)
	if a.Model().SHA256 != goodSHA || res.Model.SHA256 != goodSHA || res.Previous != models[0] || res.Head != "none" {
		t.Errorf("after the update: running %s, result %+v; want %s running, %s kept for rollback, head none", a.Model().SHA256, res, goodSHA, models[0])
	}
	srv.mu.Lock()
	ranges := slices.Clone(srv.ranges)
	srv.mu.Unlock()
	if want := []string{"", fmt.Sprintf("bytes=%d-", len(good)/2)}; !slices.Equal(ranges, want) {
		t.Errorf("requests of the cut file carried Range %q; want %q (the second resumes)", ranges, want)
	}
	if files := modelsDirFiles(t, cfg.Learning.StateDir); !slices.Equal(files, []string{goodSHA[:16] + ".tflite", "installed.json"}) {
		t.Errorf("models/ holds %v; want the new model and installed.json", files)
	}
	evs := cmd.sub.On("shortcut/testdev/event")
	if countKind(t, evs, agent.EventModelUpdateProgress) < 1 || countKind(t, evs, agent.EventModelUpdated) != 1 {
		t.Errorf("events %v: want progress and one model_updated", evs)
	}

	// The running model again: nothing fetched.
	if r := cmd.send("model", map[string]any{"url": srv.URL + "/good.tflite", "sha256": goodSHA, "size": size}); !r.OK || !strings.Contains(string(r.Result), `"unchanged":true`) {
		t.Errorf("the running model again: %+v; want ok and unchanged", r)
	}
	// A command id that came before is not run again.
	again := `{"id": "same-1", "url": "` + srv.URL + `/good.tflite", "sha256": "` + strings.Repeat("1", 64) + `", "size": 10}`
	cmd.send("model", again)
	if r := cmd.send("model", again); r.OK || r.Code != "duplicate" {
		t.Errorf("a model command id sent twice: %+v; want code duplicate", r)
	}

	var back agent.ModelResult
	cmd.ok("rollback", map[string]any{}, &back)
	if a.Model().SHA256 != first || back.Path != models[0] || !back.RolledBack {
		t.Errorf("after rollback: running %s, result %+v; want %s from %s", a.Model().SHA256, back, first, models[0])
	}
	cmd.ok("rollback", map[string]any{}, &back)
	if a.Model().SHA256 != goodSHA {
		t.Errorf("a second rollback runs %s; want the update %s again", a.Model().SHA256, goodSHA)
	}

	// A restart keeps the installed model, not model.path.
	stop()
	b, _ := runAgent(t, cfg, agent.Options{})
	if b.Model().SHA256 != goodSHA {
		t.Errorf("after a restart the agent runs %s; want the installed update %s", b.Model().SHA256, goodSHA)
	}
}

func countKind(t *testing.T, ms []msg, kind string) int {
	t.Helper()
	n := 0
	for _, m := range ms {
		var e agent.Event
		if json.Unmarshal([]byte(m.Payload), &e) == nil && e.Kind == kind {
			n++
		}
	}
	return n
}

func TestOneGroupMessageUpdatesThreeAgentsAndABadFileFailsOnlyItsOwn(t *testing.T) {
	models := realModels(t)
	good, err := os.ReadFile(models[1])
	if err != nil {
		t.Fatal(err)
	}
	srv := newModelServer(t, good)
	broker := startMosquitto(t, 0)
	devs := []string{"fleet-a", "fleet-b", "fleet-c"} // the server corrupts fleet-c's copy
	agents := map[string]*agent.Agent{}
	for _, d := range devs {
		agents[d], _, _ = updatingAgent(t, broker.URL(), d, models[0], "g1", "other")
	}
	outsider, _, _ := updatingAgent(t, broker.URL(), "outsider", models[0], "g2")
	first := outsider.Model().SHA256
	sub := subscribe(t, broker.URL(), "shortcut/+/reply/#")

	// groupSend publishes one message to the group and returns each
	// member's reply to it.
	groupSend := func(name, payload string) map[string]agent.Reply {
		t.Helper()
		var id struct{ ID string }
		json.Unmarshal([]byte(payload), &id)
		sub.Publish("shortcut/group/g1/cmd/"+name, []byte(payload))
		got := map[string]agent.Reply{}
		for _, d := range devs {
			sub.WaitFor("shortcut/"+d+"/reply/"+name, d+"'s reply to "+id.ID, func(ms []msg) bool {
				for _, m := range ms {
					var r agent.Reply
					if json.Unmarshal([]byte(m.Payload), &r) == nil && r.ID == id.ID {
						got[d] = r
						return true
					}
				}
				return false
			})
		}
		return got
	}

	goodSHA := sha256Hex(good)
	replies := groupSend("model", fmt.Sprintf(`{"id": "fleet-1", "url": %q, "sha256": %q, "size": %d}`, srv.URL+"/fleet.tflite", goodSHA, len(good)))
	for _, d := range devs[:2] {
		if r := replies[d]; !r.OK || agents[d].Model().SHA256 != goodSHA {
			t.Errorf("%s: reply %+v, running %s; want ok and %s", d, r, agents[d].Model().SHA256, goodSHA)
		}
	}
	if r := replies["fleet-c"]; r.OK || r.Code != "failed" || !strings.Contains(r.Error, "sha256") || agents["fleet-c"].Model().SHA256 != first {
		t.Errorf("fleet-c, served a bad copy: reply %+v, running %s; want failed naming the sha256, and %s kept", r, agents["fleet-c"].Model().SHA256, first)
	}
	if outsider.Model().SHA256 != first {
		t.Errorf("an agent of another group took the update")
	}

	// Unknown fields and commands that are not for groups are refused by each member.
	for _, r := range groupSend("model", fmt.Sprintf(`{"id": "fleet-2", "url": %q, "sha256": %q, "size": %d, "reboot": true}`, srv.URL+"/good.tflite", goodSHA, len(good))) {
		if r.OK || r.Code != "invalid" || !strings.Contains(r.Error, "reboot") {
			t.Errorf("a group message with an unknown field: %+v; want invalid naming it", r)
		}
	}
	for _, r := range groupSend("reset", `{"id": "fleet-3"}`) {
		if r.OK || r.Code != "invalid" || !strings.Contains(r.Error, "group") {
			t.Errorf("reset sent to a group: %+v; want invalid (only model and rollback go to groups)", r)
		}
	}

	replies = groupSend("rollback", `{"id": "fleet-4"}`)
	for _, d := range devs[:2] {
		if r := replies[d]; !r.OK || agents[d].Model().SHA256 != first {
			t.Errorf("%s after a group rollback: %+v, running %s; want ok and %s", d, r, agents[d].Model().SHA256, first)
		}
	}
	if r := replies["fleet-c"]; r.OK || r.Code != "invalid" || !strings.Contains(r.Error, "no previous model") {
		t.Errorf("fleet-c, never updated, rollback: %+v; want invalid: no previous model", r)
	}
}

func TestAHeadTrainedOnTheDeviceSurvivesAModelOfItsWidthAndIsSetAsideOtherwise(t *testing.T) {
	broker := startMosquitto(t, 0)
	cfg := testConfig(broker.URL())
	cfg.Learning.Enabled = true
	cfg.Learning.StateDir = t.TempDir()
	cfg.Cameras[0].FPS = 100
	src := agenttest.Tensors(framesFor(0, 1)...)
	src.Loop = true
	// The served files stand for models by their contents: "wide" has an
	// 8-wide embedding, anything else (and model.path) a 4-wide one.
	load := func(path string) (agent.Classifier, error) {
		data, _ := os.ReadFile(path)
		m := fakeModel(contractTable)
		m.Model.SHA256, m.Model.Path = sha256Hex(append(data, path...)), path
		m.Model.EmbeddingDim = 4
		m.Embed = func(in []float32) []float32 { return []float32{in[0], 1 - in[0], 0.5, 0.25} }
		if string(data) == "wide" {
			m.Model.EmbeddingDim = 8
			m.Embed = func(in []float32) []float32 { return []float32{in[0], 1 - in[0], 0.5, 0.25, 0, 0, 0, 0} }
		}
		return m, nil
	}
	a, _ := runAgent(t, cfg, agent.Options{LoadModel: load,
		OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return src, nil }})
	cmd := newCommander(t, broker.URL(), "testdev")
	cmd.ok(agent.CmdLearn, map[string]any{"label": "cat", "count": 2, "interval_ms": 0}, nil)
	cmd.ok(agent.CmdLearn, map[string]any{"label": "bird", "count": 2, "interval_ms": 0}, nil)
	var trained agent.HeadInfo
	cmd.ok(agent.CmdTrain, map[string]any{}, &trained)

	files := map[string][]byte{"/same.tflite": []byte("same width"), "/wide.tflite": []byte("wide")}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(files[r.URL.Path])
	}))
	t.Cleanup(srv.Close)
	update := func(name string) agent.ModelResult {
		var res agent.ModelResult
		cmd.ok(agent.CmdModel, map[string]any{"url": srv.URL + name, "sha256": sha256Hex(files[name]), "size": len(files[name])}, &res)
		return res
	}
	h := trained.Version
	if !strings.HasPrefix(h, "h-") {
		t.Fatalf("after train the head version is %q; want a trained head", h)
	}
	if res := update("/same.tflite"); res.Head != "kept" || res.Model.HeadVersion != h {
		t.Errorf("a model of the same width: %+v; want head kept (%s)", res, h)
	}
	res := update("/wide.tflite")
	if res.Head != "incompatible" || res.Model.HeadVersion == h || a.Model().EmbeddingDim != 8 {
		t.Errorf("a wider model: %+v; want head incompatible and set aside", res)
	}
	if len(stateFiles(t, cfg.Learning.StateDir)) == 0 {
		t.Errorf("the learning state is gone from %s; an incompatible head must stay on disk", cfg.Learning.StateDir)
	}
	var back agent.ModelResult
	cmd.ok(agent.CmdRollback, map[string]any{}, &back)
	if back.Head != "restored" || back.Model.HeadVersion != h {
		t.Errorf("rollback to a model of the head's width: %+v; want the head restored (%s)", back, h)
	}
}
