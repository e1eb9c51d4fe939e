package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/shortcut-edge/shortcut/agent"
	"github.com/shortcut-edge/shortcut/agent/agenttest"
	"github.com/shortcut-edge/shortcut/agent/head"
)

// sceneSource is a camera that the test points at one scene or another.
// Each scene is an images: source (PNG files, looping); every frame's seq
// is recorded with the scene and file it showed, so that a prediction can
// be traced back to its picture.
type sceneSource struct {
	mu     sync.Mutex
	scenes map[string]agent.FrameSource
	files  map[string][]string
	cur    string
	seq    uint64
	shots  map[uint64]shot
}

type shot struct {
	scene string
	index int // position of the file in the scene
}

func newSceneSource(t *testing.T, scenes map[string]string) *sceneSource {
	s := &sceneSource{scenes: map[string]agent.FrameSource{}, files: map[string][]string{}, shots: map[uint64]shot{}}
	for name, dir := range scenes {
		src, err := agent.OpenSource(agent.CameraConfig{ID: name, Source: "images:" + dir + "?loop=1"})
		if err != nil {
			t.Fatal(err)
		}
		s.scenes[name] = src
		s.files[name], _ = filepath.Glob(filepath.Join(dir, "*.png"))
	}
	return s
}

// point switches the camera to a scene and returns the first seq it will
// show there.
func (s *sceneSource) point(scene string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = scene
	return s.seq + 1
}

func (s *sceneSource) Next(ctx context.Context) (agent.Frame, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := s.scenes[s.cur]
	f, err := src.Next(ctx)
	if err != nil {
		return f, err
	}
	n := len(s.files[s.cur])
	s.seq++
	s.shots[s.seq] = shot{s.cur, int(f.Seq-1) % n}
	f.Seq = s.seq
	return f, nil
}

func (s *sceneSource) shotOf(seq uint64) shot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shots[seq]
}

func (s *sceneSource) Close() error { return nil }

// writeScene writes n 32x32 PNGs of one kind into dir: "red" things (a
// reddish blob of random size and place on a dark, noisy background) or
// "stripes" (black and white bars of random width and phase).
func writeScene(t *testing.T, dir, kind string, n int, seed uint64) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	r := rand.New(rand.NewPCG(seed, 77))
	for i := range n {
		img := image.NewRGBA(image.Rect(0, 0, 32, 32))
		switch kind {
		case "red":
			cx, cy, rad := 8+r.IntN(16), 8+r.IntN(16), 7+r.IntN(6)
			tint := uint8(170 + r.IntN(80))
			for y := 0; y < 32; y++ {
				for x := 0; x < 32; x++ {
					c := color.RGBA{uint8(20 + r.IntN(30)), uint8(20 + r.IntN(30)), uint8(20 + r.IntN(30)), 255}
					if (x-cx)*(x-cx)+(y-cy)*(y-cy) <= rad*rad {
						c = color.RGBA{tint, uint8(r.IntN(50)), uint8(r.IntN(50)), 255}
					}
					img.SetRGBA(x, y, c)
				}
			}
		case "stripes":
			w, phase := 2+r.IntN(4), r.IntN(8)
			hi, lo := uint8(200+r.IntN(55)), uint8(r.IntN(50))
			for y := 0; y < 32; y++ {
				for x := 0; x < 32; x++ {
					v := lo
					if ((x+phase)/w)%2 == 0 {
						v = hi
					}
					img.SetRGBA(x, y, color.RGBA{v, v, v, 255})
				}
			}
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%02d.png", kind, i)))
		if err != nil {
			t.Fatal(err)
		}
		png.Encode(f, img)
		f.Close()
	}
}

// commander sends commands to one agent and waits for their replies.
type commander struct {
	t   *testing.T
	sub *agenttest.Subscriber
	dev string
	n   atomic.Int64
}

func newCommander(t *testing.T, brokerURL, dev string) *commander {
	return &commander{t: t, dev: dev, sub: subscribe(t, brokerURL, "shortcut/"+dev+"/reply/#", "shortcut/"+dev+"/event")}
}

// send publishes payload (with a fresh id added when it is a map) to
// cmd/<name> and returns the reply carrying that id.
func (c *commander) send(name string, payload any) agent.Reply {
	c.t.Helper()
	id := fmt.Sprintf("%s-%d", name, c.n.Add(1))
	var raw []byte
	switch p := payload.(type) {
	case map[string]any:
		p["id"] = id
		raw, _ = json.Marshal(p)
	case string: // sent as it is; the reply carries whatever id it holds
		raw = []byte(p)
		var v struct{ ID string }
		json.Unmarshal(raw, &v)
		id = v.ID
	}
	start := len(c.sub.On("shortcut/" + c.dev + "/reply/" + name))
	c.sub.Publish("shortcut/"+c.dev+"/cmd/"+name, raw)
	var r agent.Reply
	c.sub.WaitFor("shortcut/"+c.dev+"/reply/"+name, "the reply to "+name+" "+string(raw[:min(len(raw), 200)]), func(ms []msg) bool {
		for _, m := range ms[min(start, len(ms)):] {
			var got agent.Reply
			if json.Unmarshal([]byte(m.Payload), &got) == nil && got.ID == id {
				r = got
				return true
			}
		}
		return false
	})
	if r.Device != c.dev || r.Command != name || r.Time == "" {
		c.t.Errorf("reply %+v does not name device %s and command %s", r, c.dev, name)
	}
	return r
}

func (c *commander) ok(name string, payload any, result any) agent.Reply {
	c.t.Helper()
	r := c.send(name, payload)
	if !r.OK {
		c.t.Fatalf("%s %v: %s: %s", name, payload, r.Code, r.Error)
	}
	if result != nil {
		if err := json.Unmarshal(r.Result, result); err != nil {
			c.t.Fatalf("%s result %s: %v", name, r.Result, err)
		}
	}
	return r
}

// runAgent starts an agent and returns a stop function that waits for it.
func runAgent(t *testing.T, cfg agent.Config, opt agent.Options) (*agent.Agent, func()) {
	t.Helper()
	if opt.Logger == nil {
		opt.Logger = quietLog()
	}
	a, err := agent.New(cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	stop := running(t, a)
	base := "http://" + a.HTTPAddr()
	waitUntil(t, "the agent subscribed to its commands", func() bool { return health(t, base).MQTT.Commands })
	return a, stop
}

// predictionsFrom collects n predictions of frames with seq >= from.
func predictionsFrom(t *testing.T, sub *agenttest.Subscriber, topic string, from uint64, n int) []agent.Prediction {
	t.Helper()
	var out []agent.Prediction
	sub.WaitFor(topic, fmt.Sprintf("%d predictions from seq %d", n, from), func(ms []msg) bool {
		out = out[:0]
		for _, m := range ms {
			var p agent.Prediction
			if json.Unmarshal([]byte(m.Payload), &p) == nil && p.Seq >= from {
				out = append(out, p)
			}
		}
		return len(out) >= n
	})
	return out
}

func TestTeachingALabelOverMQTTSwitchesPredictionsKeepsBaseClassesAndSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	for _, s := range []struct {
		name, kind string
		seed       uint64
	}{{"red-train", "red", 1}, {"red-test", "red", 2}, {"stripes-train", "stripes", 3}, {"stripes-test", "stripes", 4}} {
		writeScene(t, filepath.Join(dir, s.name), s.kind, 16, s.seed)
	}
	model := agenttest.WriteModel(t, dir, agenttest.ModelConfig{Size: 32, Labels: []string{"cat", "dog", "empty"}, Seed: 5})
	broker := startMosquitto(t, 0)
	cfg := testConfig(broker.URL())
	cfg.Model.Path = model
	cfg.Cameras[0].FPS = 100
	cfg.Cameras[0].Queue = 4
	cfg.Learning.Enabled = true
	cfg.Learning.StateDir = filepath.Join(dir, "state")
	scenes := map[string]string{}
	for _, s := range []string{"red-train", "red-test", "stripes-train", "stripes-test"} {
		scenes[s] = filepath.Join(dir, s)
	}
	cam := newSceneSource(t, scenes)
	cam.point("stripes-test")
	opt := agent.Options{OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return cam, nil }}
	sub := subscribe(t, broker.URL(), "shortcut/testdev/front/prediction")
	cmd := newCommander(t, broker.URL(), "testdev")
	_, stop := runAgent(t, cfg, opt)
	const topic = "shortcut/testdev/front/prediction"

	// What the model's own classifier says about every held-out stripes
	// picture, before any teaching.
	baseLabel := map[int]string{}
	votes := map[string]int{}
	sub.WaitFor(topic, "the model's own label for each of the 16 stripes pictures", func(ms []msg) bool {
		for _, m := range ms {
			var p agent.Prediction
			if json.Unmarshal([]byte(m.Payload), &p) != nil {
				continue
			}
			if sh := cam.shotOf(p.Seq); sh.scene == "stripes-test" && baseLabel[sh.index] == "" {
				baseLabel[sh.index] = p.Label
				votes[p.Label]++
				if p.Model.HeadVersion != "" {
					t.Errorf("before training, head_version is %q; want the model's own (\"\")", p.Model.HeadVersion)
				}
			}
		}
		return len(baseLabel) == 16
	})
	background := ""
	for l, n := range votes {
		if background == "" || n > votes[background] {
			background = l
		}
	}
	t.Logf("the base model calls the stripes %v", votes)

	// Teach: the red thing in view, then the scene without it, under the
	// label the model already gives it.
	var learned agent.LearnResult
	cam.point("red-train")
	cmd.ok(agent.CmdLearn, map[string]any{"label": "red thing", "count": 12, "interval_ms": 0}, &learned)
	if learned.Added != 12 || learned.Total != 12 || learned.Label != "red thing" || learned.Camera != "front" || len(learned.Seqs) != 12 {
		t.Errorf("learn result %+v, want 12 examples of \"red thing\" from camera front", learned)
	}
	for _, seq := range learned.Seqs {
		if sh := cam.shotOf(seq); sh.scene != "red-train" {
			t.Errorf("example from seq %d showed %q; want only frames taken after the command (red-train)", seq, sh.scene)
		}
	}
	// Saved at once, each example with a thumbnail of what the model saw.
	d, _ := head.OpenDir(cfg.Learning.StateDir)
	saved, _, err := d.Load()
	if err != nil || len(saved.Examples.Labels) != 1 || len(saved.Examples.Labels[0].Thumbnails) != 12 {
		t.Fatalf("state after learning: %v, %+v; want 12 examples with thumbnails", err, saved.Examples.Labels)
	}
	for i, th := range saved.Examples.Labels[0].Thumbnails {
		img, err := jpeg.Decode(bytes.NewReader(th))
		if err != nil || img.Bounds().Dx() != 32 || img.Bounds().Dy() != 32 {
			t.Errorf("thumbnail %d: %v; want a 32x32 JPEG (the model's input)", i, err)
		}
	}
	cam.point("stripes-train")
	cmd.ok(agent.CmdLearn, map[string]any{"label": background, "count": 12, "interval_ms": 5}, nil)
	var labels agent.LabelsResult
	cmd.ok(agent.CmdLabels, map[string]any{}, &labels)
	if want := []agent.LabelCount{{Label: "red thing", Count: 12}, {Label: background, Count: 12}}; !slices.Equal(labels.Labels, want) || labels.Head != nil {
		t.Errorf("labels %+v, want %v and no head yet", labels, want)
	}

	var trained agent.HeadInfo
	cmd.ok(agent.CmdTrain, map[string]any{}, &trained)
	t.Logf("trained head %s: labels %v, validation accuracy %.3f on %d, %d iterations, %.1f ms",
		trained.Version, trained.Labels, trained.ValidationAccuracy, trained.ValidationExamples, trained.Iterations, trained.Milliseconds)
	if !slices.Equal(trained.Labels, []string{"cat", "dog", "empty", "red thing"}) || !strings.HasPrefix(trained.Version, "h-") {
		t.Fatalf("trained head %+v: want the model's labels plus \"red thing\", and a version", trained)
	}
	cmd.sub.WaitFor("shortcut/testdev/event", "a head_trained event", func(ms []msg) bool {
		for _, m := range ms {
			var e agent.Event
			if json.Unmarshal([]byte(m.Payload), &e) == nil && e.Kind == agent.EventHeadTrained && e.Head != nil && e.Head.Version == trained.Version {
				return true
			}
		}
		return false
	})

	// accuracy points the camera at a scene and measures, over 48 frames
	// of the head with version, the share of predictions that give
	// want(picture), and the share of pictures whose most frequent label
	// is want(picture).
	accuracy := func(scene, version string, want func(index int) string) (frames, pictures float64) {
		t.Helper()
		from := cam.point(scene)
		right, total := 0, 0
		perPicture := map[int]map[string]int{}
		for _, p := range predictionsFrom(t, sub, topic, from, 48) {
			if p.Model.HeadVersion != version {
				t.Fatalf("prediction of seq %d has head_version %q, want %q", p.Seq, p.Model.HeadVersion, version)
			}
			i := cam.shotOf(p.Seq).index
			if p.Label == want(i) {
				right++
			}
			total++
			if perPicture[i] == nil {
				perPicture[i] = map[string]int{}
			}
			perPicture[i][p.Label]++
		}
		agree := 0
		for i, votes := range perPicture {
			best := ""
			for l, n := range votes {
				if best == "" || n > votes[best] {
					best = l
				}
			}
			if best == want(i) {
				agree++
			}
		}
		return float64(right) / float64(total), float64(agree) / float64(len(perPicture))
	}
	isRed := func(int) string { return "red thing" }
	asBefore := func(i int) string { return baseLabel[i] }
	newAcc, _ := accuracy("red-test", trained.Version, isRed)
	_, baseAcc := accuracy("stripes-test", trained.Version, asBefore)
	t.Logf("held-out frames: the new label on %.3f of red frames; the base label as before on %.3f of stripes pictures", newAcc, baseAcc)
	if newAcc < 0.9 {
		t.Errorf("held-out red frames are \"red thing\" in %.3f of predictions, want >= 0.9", newAcc)
	}
	// Teaching the stripes as the label most of them had moves the odd
	// ones out to it: the measure allows that, not more.
	if baseAcc < 0.85 {
		t.Errorf("held-out stripes pictures keep their base label in %.3f of cases, want >= 0.85", baseAcc)
	}
	if _, red := accuracy("stripes-test", trained.Version, isRed); red > 0 {
		t.Errorf("%.3f of held-out stripes pictures became \"red thing\"; the new label must not take other scenes", red)
	}

	// Export writes the merged model; reset goes back to the model's own
	// classifier; import brings the exported head back.
	var exp agent.ExportResult
	cmd.ok(agent.CmdExport, map[string]any{}, &exp)
	if filepath.Dir(exp.Path) != cfg.Learning.StateDir || exp.SHA256 != fileSHA(t, exp.Path) || exp.HeadVersion != trained.Version {
		t.Errorf("export %+v: want a file in %s with its sha256 and the head's version", exp, cfg.Learning.StateDir)
	}
	if c, err := agent.LoadModel(exp.Path); err != nil || !slices.Equal(c.Info().Labels, trained.Labels) {
		t.Errorf("the exported model does not load with the head's labels: %v", err)
	}
	cmd.ok(agent.CmdReset, map[string]any{}, nil)
	from := cam.point("red-test")
	for _, p := range predictionsFrom(t, sub, topic, from+10, 5) {
		if p.Model.HeadVersion != "" || p.Label == "red thing" {
			t.Errorf("after reset, prediction %+v still comes from the trained head", p)
		}
	}
	// The exported head is int8: read back, it is close to the trained one
	// but not equal, so it has a version of its own.
	var imp agent.ImportResult
	cmd.ok(agent.CmdImport, map[string]any{"path": filepath.Base(exp.Path)}, &imp)
	if imp.Head == nil || !slices.Equal(imp.Head.Labels, trained.Labels) || imp.Head.Version == "" || imp.Path != exp.Path {
		t.Fatalf("import %+v: want the exported head (labels %v) back", imp, trained.Labels)
	}
	imported := imp.Head.Version
	if got, _ := accuracy("red-test", imported, isRed); got < 0.9 {
		t.Errorf("with the imported head, held-out red frames are \"red thing\" in %.3f of predictions, want >= 0.9", got)
	}

	// A restart loads the saved head (the imported one) and the examples.
	stop()
	cam.point("stripes-test")
	_, stop = runAgent(t, cfg, opt)
	defer stop()
	cmd.ok(agent.CmdLabels, map[string]any{}, &labels)
	if labels.Head == nil || labels.Head.Version != imported || len(labels.Labels) != 2 {
		t.Fatalf("after a restart, labels %+v; want head %s and both labels' examples", labels, imported)
	}
	after, _ := accuracy("red-test", imported, isRed)
	t.Logf("after the restart: new label %.3f", after)
	if after < 0.9 {
		t.Errorf("after a restart, held-out red frames are \"red thing\" in %.3f of predictions, want >= 0.9", after)
	}
}

// learningAgent runs an agent on a fake model with an embedding (fast), its
// learning state in a directory of the test's own.
func learningAgent(t *testing.T, train func(context.Context, *head.Trainer) (*head.Head, error)) (*commander, string) {
	t.Helper()
	broker := startMosquitto(t, 0)
	cfg := testConfig(broker.URL())
	cfg.Learning.Enabled = true
	cfg.Learning.StateDir = t.TempDir()
	cfg.Learning.MaxCount = 20
	cfg.Cameras[0].FPS = 100
	src := agenttest.Tensors(framesFor(0, 1)...)
	src.Loop = true
	model := fakeModel(contractTable)
	model.Model.EmbeddingDim = 4
	model.Embed = func(in []float32) []float32 { return []float32{in[0], 1 - in[0], 0.5, 0.25} }
	runAgent(t, cfg, agent.Options{Train: train,
		OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return src, nil },
		LoadModel:  func(string) (agent.Classifier, error) { return model, nil }})
	return newCommander(t, broker.URL(), "testdev"), cfg.Learning.StateDir
}

func stateFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "state-*.bin"))
	return m
}

func TestBadCommandsGetErrorRepliesAndChangeNothing(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	cmd, stateDir := learningAgent(t, func(ctx context.Context, tr *head.Trainer) (*head.Head, error) {
		started <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return tr.Train(ctx)
	})
	cmd.ok(agent.CmdLearn, map[string]any{"label": "cat", "count": 3, "interval_ms": 0}, nil)
	cmd.ok(agent.CmdLearn, map[string]any{"label": "Küche-2", "count": 2}, nil)
	var before agent.LabelsResult
	cmd.ok(agent.CmdLabels, map[string]any{}, &before)
	files := stateFiles(t, stateDir)

	for _, tc := range []struct {
		name, command string
		payload       any
		code, says    string
	}{
		{"a label with a slash", agent.CmdLearn, map[string]any{"label": "a/b"}, "invalid", "not allowed"},
		{"a label with an emoji", agent.CmdLearn, map[string]any{"label": "cat 🐱"}, "invalid", "not allowed"},
		{"an empty label", agent.CmdForget, map[string]any{"label": ""}, "invalid", "empty"},
		{"a huge count", agent.CmdLearn, map[string]any{"label": "cat", "count": 100000}, "invalid", "count 100000: want 1 to 20"},
		{"a zero count", agent.CmdLearn, map[string]any{"label": "cat", "count": 0}, "invalid", "count 0"},
		{"a negative interval", agent.CmdLearn, map[string]any{"label": "cat", "interval_ms": -5}, "invalid", "interval_ms"},
		{"an unknown camera", agent.CmdLearn, map[string]any{"label": "cat", "camera": "back"}, "invalid", `camera "back"`},
		{"an unknown field", agent.CmdLearn, map[string]any{"label": "cat", "colour": "red"}, "invalid", `unknown field "colour"`},
		{"a string for a number", agent.CmdLearn, map[string]any{"label": "cat", "count": "ten"}, "invalid", `field "count"`},
		{"malformed JSON", agent.CmdLearn, `{"label": "cat",`, "invalid", "not valid JSON"},
		{"two JSON values", agent.CmdLabels, `{} {}`, "invalid", "more than one"},
		{"a payload above 64 KiB", agent.CmdLearn, `{"label": "` + strings.Repeat("x", 70000) + `"}`, "invalid", "limit is 65536"},
		{"an unknown command", "dance", map[string]any{}, "unknown_command", "learn, forget, labels, train, reset, export, import"},
		{"forgetting a label never taught", agent.CmdForget, map[string]any{"label": "dog"}, "invalid", "no examples"},
		{"export without a trained head", agent.CmdExport, map[string]any{}, "invalid", "train first"},
		{"import from outside the state directory", agent.CmdImport, map[string]any{"path": "/etc/passwd"}, "invalid", "outside the state directory"},
		{"import with ..", agent.CmdImport, map[string]any{"path": "../x.tflite"}, "invalid", ""},
		{"import of a file that is not there", agent.CmdImport, map[string]any{"path": "nope.tflite"}, "invalid", "nope.tflite"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := cmd.send(tc.command, tc.payload)
			if r.OK || r.Code != tc.code || !strings.Contains(r.Error, tc.says) {
				t.Errorf("reply %+v; want code %q and an error saying %q", r, tc.code, tc.says)
			}
		})
	}

	t.Run("commands that conflict with a running training are busy", func(t *testing.T) {
		start := len(cmd.sub.On("shortcut/testdev/reply/train"))
		cmd.sub.Publish("shortcut/testdev/cmd/train", []byte(`{"id":"first"}`))
		<-started
		for _, c := range []struct{ name, payload string }{
			{agent.CmdTrain, `{"id":"second"}`}, {agent.CmdForget, `{"id":"f","label":"cat"}`}, {agent.CmdReset, `{"id":"r"}`}, {agent.CmdImport, `{"id":"i","path":"x.tflite"}`},
		} {
			r := cmd.send(c.name, c.payload)
			if r.OK || r.Code != "busy" || !strings.Contains(r.Error, "training") {
				t.Errorf("%s during training: %+v; want a busy error naming the training", c.name, r)
			}
		}
		var labels agent.LabelsResult
		cmd.ok(agent.CmdLabels, map[string]any{}, &labels)
		if !labels.Training {
			t.Errorf("labels during training says training=false")
		}
		close(release)
		var first agent.Reply
		cmd.sub.WaitFor("shortcut/testdev/reply/train", "the first training's reply", func(ms []msg) bool {
			for _, m := range ms[start:] {
				if json.Unmarshal([]byte(m.Payload), &first) == nil && first.ID == "first" {
					return true
				}
			}
			return false
		})
		if !first.OK {
			t.Errorf("the training that was running: %+v, want ok", first)
		}
	})

	var after agent.LabelsResult
	cmd.ok(agent.CmdLabels, map[string]any{}, &after)
	if !slices.Equal(after.Labels, before.Labels) {
		t.Errorf("labels after the bad commands %v, before %v; nothing should be lost", after.Labels, before.Labels)
	}
	if got := stateFiles(t, stateDir); len(files) == 0 || !strings.HasPrefix(filepath.Base(got[len(got)-1]), "state-") {
		t.Errorf("state files before %v, after %v", files, got)
	}
}

func TestLearnWithoutFramesRepliesWithWhatItGot(t *testing.T) {
	broker := startMosquitto(t, 0)
	cfg := testConfig(broker.URL())
	cfg.Learning.Enabled = true
	cfg.Learning.StateDir = t.TempDir()
	cfg.Cameras = append(cfg.Cameras, agent.CameraConfig{ID: "still", Source: "synthetic", Queue: 2})
	model := fakeModel(contractTable)
	model.Model.EmbeddingDim = 4
	model.Embed = func(in []float32) []float32 { return []float32{in[0], 1, 2, 3} }
	hold := make(chan struct{}) // the still camera never gives a frame
	t.Cleanup(func() { close(hold) })
	_, stop := runAgent(t, cfg, agent.Options{
		OpenSource: func(c agent.CameraConfig) (agent.FrameSource, error) {
			src := agenttest.Tensors(framesFor(0)...)
			src.Loop = true
			if c.ID == "still" {
				src.Start = hold
			}
			return src, nil
		},
		LoadModel: func(string) (agent.Classifier, error) { return model, nil }})
	defer stop()
	cmd := newCommander(t, broker.URL(), "testdev")
	// The agent stops while the learn waits: the reply says so.
	cmd.sub.Publish("shortcut/testdev/cmd/learn", []byte(`{"id":"w","label":"cat","camera":"still","count":2}`))
	var labels agent.LabelsResult
	waitUntil(t, "the learn command to be waiting for frames", func() bool {
		cmd.ok(agent.CmdLabels, map[string]any{}, &labels)
		return len(labels.Learning) == 1
	})
	if labels.Learning[0] != (agent.Capturing{Camera: "still", Label: "cat"}) {
		t.Errorf("learning in progress %+v", labels.Learning)
	}
	r := cmd.send(agent.CmdLearn, map[string]any{"label": "cat", "camera": "front"})
	if r.OK || r.Code != "busy" {
		t.Errorf("learning the same label on another camera meanwhile: %+v, want busy", r)
	}
	stop()
	ms := cmd.sub.WaitFor("shortcut/testdev/reply/learn", "the waiting learn's reply", func(ms []msg) bool {
		return slices.ContainsFunc(ms, func(m msg) bool { return strings.Contains(m.Payload, `"id":"w"`) })
	})
	for _, m := range ms {
		var r agent.Reply
		if json.Unmarshal([]byte(m.Payload), &r) == nil && r.ID == "w" && (r.OK || !strings.Contains(r.Error, "stopping")) {
			t.Errorf("reply to a learn cut short by a stop: %+v", r)
		}
	}
}

func TestForgetRemovesATaughtLabelFromExamplesAndHead(t *testing.T) {
	cmd, _ := learningAgent(t, nil)
	cmd.ok(agent.CmdLearn, map[string]any{"label": "cat", "count": 6, "interval_ms": 0}, nil)
	cmd.ok(agent.CmdLearn, map[string]any{"label": "bird", "count": 6, "interval_ms": 0}, nil)
	var h agent.HeadInfo
	cmd.ok(agent.CmdTrain, map[string]any{}, &h)
	if !slices.Equal(h.Labels, []string{"cat", "bird"}) {
		t.Fatalf("a fake model has no classifier to extend: the head's labels are %v, want the taught ones", h.Labels)
	}
	var f agent.ForgetResult
	cmd.ok(agent.CmdForget, map[string]any{"label": "bird"}, &f)
	if f.Removed != 6 || !f.RemovedFromHead || f.HeadVersion == h.Version || f.HeadVersion == "" {
		t.Errorf("forget bird: %+v; want 6 examples removed, the label gone from the head, a new head version", f)
	}
	var labels agent.LabelsResult
	cmd.ok(agent.CmdLabels, map[string]any{}, &labels)
	if !slices.Equal(labels.Labels, []agent.LabelCount{{Label: "cat", Count: 6}}) || labels.Head == nil || !slices.Equal(labels.Head.Labels, []string{"cat"}) {
		t.Errorf("after forgetting bird: %+v", labels)
	}
}

func TestLearningStateFallsBackWhenTheNewestFileIsDamaged(t *testing.T) {
	stateDir := t.TempDir()
	d, err := head.OpenDir(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := head.NewStore(4, head.Limits{})
	for range 3 {
		st.Add("cat", []float32{1, 2, 3, 4}, nil)
	}
	if _, err := d.Save(head.State{Examples: st.Snapshot()}); err != nil {
		t.Fatal(err)
	}
	st.Add("dog", []float32{4, 3, 2, 1}, nil)
	if _, err := d.Save(head.State{Examples: st.Snapshot()}); err != nil {
		t.Fatal(err)
	}
	files := stateFiles(t, stateDir)
	newest := files[len(files)-1]
	b, _ := os.ReadFile(newest)
	os.WriteFile(newest, b[:len(b)/2], 0o600) // a power cut mid-write on a file system that reorders

	broker := startMosquitto(t, 0)
	cfg := testConfig(broker.URL())
	cfg.Learning.Enabled = true
	cfg.Learning.StateDir = stateDir
	model := fakeModel(contractTable)
	model.Model.EmbeddingDim = 4
	model.Embed = func(in []float32) []float32 { return []float32{in[0], 1, 2, 3} }
	var logs strings.Builder
	var mu sync.Mutex
	runAgent(t, cfg, agent.Options{Logger: logTo(&logs, &mu),
		OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return agenttest.Tensors(framesFor(0)...), nil },
		LoadModel:  func(string) (agent.Classifier, error) { return model, nil }})
	cmd := newCommander(t, broker.URL(), "testdev")
	var labels agent.LabelsResult
	cmd.ok(agent.CmdLabels, map[string]any{}, &labels)
	if !slices.Equal(labels.Labels, []agent.LabelCount{{Label: "cat", Count: 3}}) {
		t.Errorf("labels %v; want the older generation's (cat: 3)", labels.Labels)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "damaged learning state skipped") || !strings.Contains(logs.String(), filepath.Base(newest)) {
		t.Errorf("the fallback is not logged with the damaged file's name:\n%s", logs.String())
	}
}

func TestLearningCommandsOnAModelWithoutEmbeddingAreUnavailable(t *testing.T) {
	broker := startMosquitto(t, 0)
	cfg := testConfig(broker.URL())
	cfg.Learning.Enabled = true
	cfg.Learning.StateDir = t.TempDir()
	runAgent(t, cfg, agent.Options{
		OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return agenttest.Tensors(framesFor(0)...), nil },
		LoadModel:  func(string) (agent.Classifier, error) { return fakeModel(contractTable), nil }})
	cmd := newCommander(t, broker.URL(), "testdev")
	for name, payload := range map[string]map[string]any{
		agent.CmdLearn: {"label": "cat"}, agent.CmdTrain: {}, agent.CmdExport: {}, agent.CmdForget: {"label": "cat"},
	} {
		r := cmd.send(name, payload)
		if r.OK || r.Code != "unavailable" || !strings.Contains(r.Error, "embedding") {
			t.Errorf("%s on a model without embedding: %+v; want unavailable, naming the embedding", name, r)
		}
	}
}

func TestStateDirectoryComesFromTheConfigOrSystemd(t *testing.T) {
	for _, tc := range []struct {
		name, configured, env, want string
	}{
		{"learning.state_dir wins", "/srv/a", "/var/lib/x", "/srv/a"},
		{"then STATE_DIRECTORY (the first of several)", "", "/var/lib/shortcut-test:/var/lib/other", "/var/lib/shortcut-test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := agent.StateDir(agent.LearningConfig{StateDir: tc.configured}, func(k string) string {
				if k == "STATE_DIRECTORY" {
					return tc.env
				}
				return ""
			}); got != tc.want {
				t.Errorf("state directory %q, want %q", got, tc.want)
			}
		})
	}
	if got := agent.StateDir(agent.LearningConfig{}, func(string) string { return "" }); got != agent.DefaultStateDir {
		t.Errorf("without either, %q; want %q", got, agent.DefaultStateDir)
	}
}

func logTo(b *strings.Builder, mu *sync.Mutex) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{b, mu}, nil))
}

type lockedWriter struct {
	b  *strings.Builder
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func TestLearningStateThatDoesNotFitTheModelIsLeftAloneAndSaid(t *testing.T) {
	stateDir := t.TempDir()
	d, _ := head.OpenDir(stateDir)
	st, _ := head.NewStore(8, head.Limits{})
	st.Add("cat", []float32{1, 2, 3, 4, 5, 6, 7, 8}, nil)
	if _, err := d.Save(head.State{Examples: st.Snapshot()}); err != nil {
		t.Fatal(err)
	}
	before := stateFiles(t, stateDir)
	broker := startMosquitto(t, 0)
	cfg := testConfig(broker.URL())
	cfg.Learning.Enabled = true
	cfg.Learning.StateDir = stateDir
	model := fakeModel(contractTable)
	model.Model.EmbeddingDim = 4 // the examples have 8 values
	model.Embed = func(in []float32) []float32 { return []float32{in[0], 1, 2, 3} }
	runAgent(t, cfg, agent.Options{
		OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return agenttest.Tensors(framesFor(0)...), nil },
		LoadModel:  func(string) (agent.Classifier, error) { return model, nil }})
	cmd := newCommander(t, broker.URL(), "testdev")
	r := cmd.send(agent.CmdLearn, map[string]any{"label": "dog"})
	if r.OK || r.Code != "unavailable" || !strings.Contains(r.Error, "another model's embedding") || !strings.Contains(r.Error, stateDir) {
		t.Errorf("learn with examples of another model: %+v; want unavailable, naming the state directory", r)
	}
	if after := stateFiles(t, stateDir); !slices.Equal(after, before) {
		t.Errorf("state files %v became %v; the other model's examples must stay untouched", before, after)
	}
}

func TestAnUnusableStateDirectoryStopsTheAgentAtStart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(file, nil, 0o600)
	cfg := testConfig("tcp://127.0.0.1:1")
	cfg.Learning.Enabled = true
	cfg.Learning.StateDir = filepath.Join(file, "state")
	_, err := agent.New(cfg, agent.Options{Logger: quietLog(),
		LoadModel: func(string) (agent.Classifier, error) { return fakeModel(contractTable), nil }})
	if err == nil || !strings.Contains(err.Error(), "learning.state_dir") || !strings.Contains(err.Error(), "learning.enabled: false") {
		t.Errorf("New with a state directory under a file: %v; want an error naming learning.state_dir and the way out", err)
	}
}
