package agent_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/shortcut-edge/shortcut/agent"
	"github.com/shortcut-edge/shortcut/agent/agenttest"
)

// managedAgent is startAuthAgent's agent (a fake model with a 4-wide
// embedding, learning on, user alice and the script token), with what the
// tests of the page's management endpoints need.
type managedAgent struct {
	a      *agent.Agent
	base   string
	broker string
	cfg    agent.Config
	loads  atomic.Int32 // models loaded
}

// startManagedAgent starts it. Its model loader takes any file whose
// content does not say "broken", and gives the model the file's SHA-256.
func startManagedAgent(t *testing.T, mutate func(*agent.Config)) *managedAgent {
	t.Helper()
	m := &managedAgent{}
	broker := startMosquitto(t, 0)
	m.broker = broker.URL()
	cfg := authConfig(t, broker.URL())
	cfg.HTTP.Auth.Tokens[0].SHA256 = tokenSHA()
	if mutate != nil {
		mutate(&cfg)
	}
	m.cfg = cfg
	src := agenttest.Tensors(framesFor(0, 1)...)
	src.Loop = true
	load := func(path string) (agent.Classifier, error) {
		model := fakeModel(contractTable)
		model.Model.EmbeddingDim = 4
		model.Model.Path = path
		model.Embed = func(in []float32) []float32 { return []float32{in[0], 1, 0.5, 0.25} }
		if b, err := os.ReadFile(path); err == nil {
			if bytes.Contains(b, []byte("broken")) {
				return nil, fmt.Errorf("model %q: operator 3 (CONV_2D) has 5 inputs, want 3 (a broken file)", path)
			}
			model.Model.SHA256 = sha256Hex(b)
		}
		m.loads.Add(1)
		return model, nil
	}
	m.a, _ = runAgent(t, cfg, agent.Options{
		OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return src, nil },
		LoadModel:  load})
	m.base = "http://" + m.a.HTTPAddr()
	return m
}

func containing(s string) func([]msg) bool {
	return func(ms []msg) bool {
		for _, m := range ms {
			if strings.Contains(m.Payload, s) {
				return true
			}
		}
		return false
	}
}

var bearerHdr = map[string]string{"Authorization": "Bearer " + scriptToken}

// multipartBody builds a multipart form of fields and files (field name,
// file name, content), in order.
func multipartBody(t *testing.T, fields [][2]string, files [][3]string) (string, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, f := range fields {
		w.WriteField(f[0], f[1])
	}
	for _, f := range files {
		fw, err := w.CreateFormFile(f[0], f[1])
		if err != nil {
			t.Fatal(err)
		}
		fw.Write([]byte(f[2]))
	}
	w.Close()
	return b.String(), w.FormDataContentType()
}

func pngBytes(t *testing.T, w, h int, v uint8) string {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = v
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// labelsOf reads GET /api/v1/labels.
func labelsOf(t *testing.T, base string) agent.WebLabels {
	t.Helper()
	status, _, body := do(t, noRedirect, "GET", base+"/api/v1/labels", "", bearerHdr)
	if status != 200 {
		t.Fatalf("labels: HTTP %d\n%s", status, body)
	}
	var l agent.WebLabels
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		t.Fatal(err)
	}
	return l
}

func examplesOf(l agent.WebLabels, label string) []agent.WebExample {
	for _, g := range l.Examples {
		if g.Label == label {
			return g.Examples
		}
	}
	return nil
}

func replyOf(t *testing.T, body string) agent.Reply {
	t.Helper()
	var r agent.Reply
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("not a reply: %v\n%s", err, body)
	}
	return r
}

// TestOneExampleIsDeletedByItsIDOverHTTPAndMQTT deletes stored examples
// one by one, with DELETE /api/v1/examples/<id> and with the forget
// command's "example" over MQTT, and freezes both replies (and the
// refusals) in testdata/forget_example.golden.json: the same
// implementation answers both transports.
func TestOneExampleIsDeletedByItsIDOverHTTPAndMQTT(t *testing.T) {
	m := startManagedAgent(t, nil)
	hdr := http.Header{"Authorization": {"Bearer " + scriptToken}}
	if r := postCommand(t, m.base, agent.CmdLearn, map[string]any{"label": "cat", "count": 4, "interval_ms": 0}, 1, hdr); !r.OK {
		t.Fatalf("learn: %+v", r)
	}
	before := examplesOf(labelsOf(t, m.base), "cat")
	if len(before) != 4 {
		t.Fatalf("cat has %d examples, want 4: %+v", len(before), before)
	}
	cmd := newCommander(t, m.broker, "testdev")
	var replies []any
	keep := func(r agent.Reply) {
		var v map[string]any
		json.Unmarshal(mustMarshal(t, r), &v)
		v["time"] = "<time>"
		if s, _ := v["id"].(string); strings.HasPrefix(s, "http-") {
			v["id"] = "<http id>"
		}
		// The capture starts on either frame: name the ids by position.
		ids := strings.NewReplacer(before[2].ID, "<example 3>", before[3].ID, "<example 4>", before[0].ID, "<example 1>", before[1].ID, "<example 2>")
		if e, ok := v["error"].(string); ok {
			v["error"] = ids.Replace(e)
		}
		if res, ok := v["result"].(map[string]any); ok {
			for k, x := range res {
				if s, ok := x.(string); ok {
					res[k] = ids.Replace(s)
				}
			}
		}
		replies = append(replies, v)
	}

	// The camera loops over two frames: the examples are a, b, a-2, b-2
	// (ids of identical examples are numbered). The last two go.
	status, _, body := do(t, noRedirect, "DELETE", m.base+"/api/v1/examples/"+before[2].ID, "", bearerHdr)
	if status != 200 {
		t.Fatalf("DELETE an example: HTTP %d\n%s", status, body)
	}
	keep(replyOf(t, body))
	keep(cmd.send(agent.CmdForget, map[string]any{"example": before[3].ID}))
	after := examplesOf(labelsOf(t, m.base), "cat")
	if len(after) != 2 || after[0].ID != before[0].ID || after[1].ID != before[1].ID {
		t.Errorf("after deleting the last two: %+v, want the first two of %+v", after, before)
	}
	if status, _, _ := do(t, noRedirect, "GET", m.base+"/api/v1/examples/"+before[2].ID+".jpg", "", bearerHdr); status != 404 {
		t.Errorf("the deleted example's thumbnail: HTTP %d, want 404", status)
	}
	// Refusals: a deleted id, a label and an example at once, a path.
	status, _, body = do(t, noRedirect, "DELETE", m.base+"/api/v1/examples/"+before[2].ID, "", bearerHdr)
	if status != 400 {
		t.Errorf("deleting it again: HTTP %d, want 400\n%s", status, body)
	}
	keep(replyOf(t, body))
	keep(cmd.send(agent.CmdForget, map[string]any{"example": before[0].ID, "label": "cat"}))
	keep(cmd.send(agent.CmdForget, map[string]any{"example": "../../etc/passwd"}))
	keep(cmd.send(agent.CmdForget, `{"example": "`+before[0].ID+`"}`)) // no id
	for _, p := range []string{"..%2F..%2Fetc%2Fpasswd", "cat", "0123456789ABCDEF"} {
		if status, _, body := do(t, noRedirect, "DELETE", m.base+"/api/v1/examples/"+p, "", bearerHdr); status != 400 && status != 404 {
			t.Errorf("DELETE /api/v1/examples/%s: HTTP %d, want 400\n%s", p, status, body)
		}
	}
	if n := len(examplesOf(labelsOf(t, m.base), "cat")); n != 2 {
		t.Errorf("the refused deletions changed the examples: %d left, want 2", n)
	}
	compareGolden(t, "forget_example.golden.json", replies)
}

// TestUploadedPhotosBecomeExamplesAndABadUploadStoresNothing uploads
// photos as the Teach tab does, then refused uploads (a GIF among good
// photos, a file that is no picture, an oversized photo, a path-like
// label, too many photos), after each of which the examples are as they
// were.
func TestUploadedPhotosBecomeExamplesAndABadUploadStoresNothing(t *testing.T) {
	m := startManagedAgent(t, func(c *agent.Config) { c.Learning.MaxCount = 3 })
	up := func(fields [][2]string, files [][3]string) (int, agent.Reply) {
		t.Helper()
		body, ct := multipartBody(t, fields, files)
		status, _, out := do(t, noRedirect, "POST", m.base+"/api/v1/examples", body, map[string]string{"Authorization": "Bearer " + scriptToken, "Content-Type": ct})
		return status, replyOf(t, out)
	}
	dark, light := pngBytes(t, 40, 30, 10), pngBytes(t, 640, 480, 200)
	status, r := up([][2]string{{"label", "red mug"}}, [][3]string{{"photo", "a.png", dark}, {"photo", "b.png", light}})
	if status != 200 || !r.OK {
		t.Fatalf("uploading two photos: HTTP %d %+v", status, r)
	}
	var res agent.UploadResult
	json.Unmarshal(r.Result, &res)
	if res.Added != 2 || res.Total != 2 || res.Label != "red mug" || res.Camera != "front" {
		t.Errorf("upload result %+v, want 2 added of red mug through camera front", res)
	}
	ex := examplesOf(labelsOf(t, m.base), "red mug")
	if len(ex) != 2 || ex[0].JPG == "" {
		t.Fatalf("red mug's examples %+v, want 2 with thumbnails", ex)
	}
	if status, h, _ := do(t, noRedirect, "GET", m.base+ex[0].JPG, "", bearerHdr); status != 200 || h.Get("Content-Type") != "image/jpeg" {
		t.Errorf("an uploaded photo's thumbnail: HTTP %d %s", status, h.Get("Content-Type"))
	}
	var g bytes.Buffer
	gif.Encode(&g, image.NewPaletted(image.Rect(0, 0, 4, 4), []color.Color{color.Black}), nil)
	huge := strings.Repeat("x", 16<<20+1)
	bomb := pngBytes(t, 1, 1, 0) // a PNG header that claims 100000 x 100000 pixels
	bomb = bomb[:16] + "\x00\x01\x86\xa0\x00\x01\x86\xa0" + bomb[24:]
	crc := crc32.ChecksumIEEE([]byte(bomb[12:29])) // IHDR's type and data
	bomb = bomb[:29] + string(binary.BigEndian.AppendUint32(nil, crc)) + bomb[33:]
	for _, c := range []struct {
		what   string
		fields [][2]string
		files  [][3]string
		status int
		says   string
	}{
		{"a GIF after a good photo", [][2]string{{"label", "red mug"}}, [][3]string{{"photo", "ok.png", dark}, {"photo", "x.gif", g.String()}}, 400, "JPEG or PNG"},
		{"a text file", [][2]string{{"label", "red mug"}}, [][3]string{{"photo", "notes.txt", "hello"}}, 400, "not a JPEG or PNG"},
		{"a decompression bomb", [][2]string{{"label", "red mug"}}, [][3]string{{"photo", "bomb.png", bomb}}, 400, "pixels"},
		{"an oversized photo", [][2]string{{"label", "red mug"}}, [][3]string{{"photo", "big.jpg", huge}}, 413, "limit"},
		{"a path-like label", [][2]string{{"label", "../../etc/passwd"}}, [][3]string{{"photo", "a.png", dark}}, 400, "label"},
		{"a label with a slash", [][2]string{{"label", "a/b"}}, [][3]string{{"photo", "a.png", dark}}, 400, "label"},
		{"no label", nil, [][3]string{{"photo", "a.png", dark}}, 400, "label"},
		{"too many photos", [][2]string{{"label", "red mug"}}, [][3]string{{"photo", "1.png", dark}, {"photo", "2.png", dark}, {"photo", "3.png", dark}, {"photo", "4.png", dark}}, 400, "max_count"},
		{"no photo", [][2]string{{"label", "red mug"}}, nil, 400, "photo"},
		{"another camera", [][2]string{{"label", "red mug"}, {"camera", "../back"}}, [][3]string{{"photo", "a.png", dark}}, 400, "no such camera"},
	} {
		status, r := up(c.fields, c.files)
		if status != c.status || r.OK || !strings.Contains(r.Error, c.says) || !strings.Contains(r.Error, "nothing was stored") {
			t.Errorf("%s: HTTP %d %+v; want %d and an error that says %q and that nothing was stored", c.what, status, r, c.status, c.says)
		}
	}
	l := labelsOf(t, m.base)
	if got := examplesOf(l, "red mug"); len(got) != 2 || got[0].ID != ex[0].ID || got[1].ID != ex[1].ID || len(l.Examples) != 1 {
		t.Errorf("after the refused uploads: %+v, want red mug's two examples only", l.Examples)
	}
	// Not a form at all.
	if status, _, body := do(t, noRedirect, "POST", m.base+"/api/v1/examples", "{}", map[string]string{"Authorization": "Bearer " + scriptToken, "Content-Type": "application/json"}); status != 415 {
		t.Errorf("a JSON body: HTTP %d, want 415\n%s", status, body)
	}
}

// fakeTFLite is a file that starts like a .tflite (its identifier at
// bytes 4 to 8) and differs by what.
func fakeTFLite(what string) string { return "\x1c\x00\x00\x00TFL3" + what }

// TestAModelUploadSwitchesAndRollsBackAndABadOneKeepsTheRunningModel
// uploads a model as the Model tab does (POST /api/v1/model): it runs, the
// previous file is kept and the rollback command brings it back. A file
// that is no model, one too big and one that fails to load are refused
// with a reason, and the running model stays.
func TestAModelUploadSwitchesAndRollsBackAndABadOneKeepsTheRunningModel(t *testing.T) {
	m := startManagedAgent(t, func(c *agent.Config) { c.Model.Updates.MaxBytes = 4096 })
	sub := subscribe(t, m.broker, "shortcut/testdev/reply/model", "shortcut/testdev/event")
	first := m.a.Model()
	up := func(name, content string) (int, agent.Reply) {
		t.Helper()
		body, ct := multipartBody(t, nil, [][3]string{{"model", name, content}})
		status, _, out := do(t, noRedirect, "POST", m.base+"/api/v1/model", body, map[string]string{"Authorization": "Bearer " + scriptToken, "Content-Type": ct})
		return status, replyOf(t, out)
	}
	file := fakeTFLite("a new model")
	status, r := up("new.tflite", file)
	if status != 200 || !r.OK || r.Command != agent.CmdModel {
		t.Fatalf("uploading a model: HTTP %d %+v", status, r)
	}
	var res agent.ModelResult
	json.Unmarshal(r.Result, &res)
	if res.Model.SHA256 != sha256Hex([]byte(file)) || m.a.Model().SHA256 != res.Model.SHA256 || res.Previous != first.Path {
		t.Errorf("after the upload: result %+v, running %s; want the file's sha256 running and %s kept as previous", res, m.a.Model().SHA256, first.Path)
	}
	sub.WaitFor("shortcut/testdev/reply/model", "the upload's reply on MQTT", containing(`"ok":true`))
	sub.WaitFor("shortcut/testdev/event", "a model_updated event", containing(`"kind":"model_updated"`))

	running := m.a.Model().SHA256
	for _, c := range []struct {
		what, name, content string
		status              int
		says                string
	}{
		{"a text file", "notes.tflite", "hello, I am not a model at all", 400, "not a TensorFlow Lite model"},
		{"an empty file", "empty.tflite", "", 400, "not a TensorFlow Lite model"},
		{"a file over model.updates.max_bytes", "big.tflite", fakeTFLite(strings.Repeat("x", 5000)), 413, "max_bytes"},
		{"a model that does not load", "broken.tflite", fakeTFLite("broken"), 422, "CONV_2D"},
	} {
		status, r := up(c.name, c.content)
		if status != c.status || r.OK || !strings.Contains(r.Error, c.says) || !strings.Contains(r.Error, "running model was kept") {
			t.Errorf("%s: HTTP %d %+v; want %d, an error that says %q and that the running model was kept", c.what, status, r, c.status, c.says)
		}
		if got := m.a.Model().SHA256; got != running {
			t.Errorf("%s replaced the running model: %s, want %s", c.what, got, running)
		}
	}
	files, _ := os.ReadDir(m.cfg.Learning.StateDir + "/models")
	var names []string
	for _, f := range files {
		names = append(names, f.Name())
	}
	if len(names) != 2 { // the uploaded model and installed.json
		t.Errorf("models/ holds %v after the refused uploads; want only the uploaded model and installed.json", names)
	}
	hdr := http.Header{"Authorization": {"Bearer " + scriptToken}}
	rb := postCommand(t, m.base, agent.CmdRollback, map[string]any{}, 1, hdr)
	if !rb.OK || m.a.Model().Path != first.Path {
		t.Errorf("rollback: %+v; running %s, want %s", rb, m.a.Model().Path, first.Path)
	}
}

// TestTheNewEndpointsRefuseWithoutCookieFromAnotherOriginAndWithoutCSRF
// checks the management endpoints against the refusals of the rest of the
// API: no credentials (401), a session without its CSRF token or with a
// wrong one (403), another origin (403).
func TestTheNewEndpointsRefuseWithoutCookieFromAnotherOriginAndWithoutCSRF(t *testing.T) {
	m := startManagedAgent(t, nil)
	c, csrf, status := login(t, m.base, "correct horse")
	if status != 303 || csrf == "" {
		t.Fatalf("login: HTTP %d", status)
	}
	photo, photoCT := multipartBody(t, [][2]string{{"label", "mug"}}, [][3]string{{"photo", "a.png", pngBytes(t, 4, 4, 1)}})
	model, modelCT := multipartBody(t, nil, [][3]string{{"model", "m.tflite", fakeTFLite("x")}})
	for _, e := range []struct {
		method, path, body, ct string
	}{
		{"DELETE", "/api/v1/examples/0123456789abcdef", "", ""},
		{"POST", "/api/v1/examples", photo, photoCT},
		{"POST", "/api/v1/model", model, modelCT},
		{"POST", "/api/v1/imports", model, modelCT},
	} {
		for _, tc := range []struct {
			what   string
			client *http.Client
			hdr    map[string]string
			want   int
		}{
			{"no cookie", noRedirect, map[string]string{}, 401},
			{"no CSRF token", c, map[string]string{}, 403},
			{"a wrong CSRF token", c, map[string]string{"X-CSRF-Token": "nope"}, 403},
			{"another origin", c, map[string]string{"X-CSRF-Token": csrf, "Origin": "http://evil.example"}, 403},
			{"a cross-site fetch", c, map[string]string{"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}, 403},
			{"a bearer token from another origin", noRedirect, map[string]string{"Authorization": "Bearer " + scriptToken, "Origin": "http://evil.example"}, 403},
		} {
			if e.ct != "" {
				tc.hdr["Content-Type"] = e.ct
			}
			status, _, body := do(t, tc.client, e.method, m.base+e.path, e.body, tc.hdr)
			if status != tc.want {
				t.Errorf("%s %s with %s: HTTP %d, want %d\n%s", e.method, e.path, tc.what, status, tc.want, body)
			}
		}
	}
	if status, _, _ := do(t, noRedirect, "GET", m.base+"/api/v1/exports/export-h-0123456789ab.tflite", "", nil); status != 401 {
		t.Errorf("an export without credentials: HTTP %d, want 401", status)
	}
	for _, p := range []string{"..%2Fcommands.json", "commands.json", "export-h-0123456789ab.tflite"} {
		if status, _, body := do(t, noRedirect, "GET", m.base+"/api/v1/exports/"+p, "", bearerHdr); status != 404 {
			t.Errorf("GET /api/v1/exports/%s: HTTP %d, want 404\n%s", p, status, body)
		}
	}
	if len(labelsOf(t, m.base).Examples) != 0 || m.loads.Load() != 1 {
		t.Errorf("a refused request changed something: examples %+v, %d model loads", labelsOf(t, m.base).Examples, m.loads.Load())
	}
	// The session with its token and this origin gets through.
	status, _, body := do(t, c, "POST", m.base+"/api/v1/examples", photo, map[string]string{"Content-Type": photoCT, "X-CSRF-Token": csrf, "Origin": m.base})
	if status != 200 {
		t.Errorf("an upload with the session's token: HTTP %d\n%s", status, body)
	}
}

// TestTheEventStreamCarriesTheHealthLive follows /api/v1/events: the
// Status tab's MQTT connection and camera states come as "health" events
// while someone watches, without the page asking again.
func TestTheEventStreamCarriesTheHealthLive(t *testing.T) {
	m := startManagedAgent(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), agenttest.WaitLimit)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", m.base+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+scriptToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var healths []agent.Health
	for len(healths) < 2 && sc.Scan() {
		if sc.Text() != "event: health" || !sc.Scan() {
			continue
		}
		var h agent.Health
		if err := json.Unmarshal([]byte(strings.TrimPrefix(sc.Text(), "data: ")), &h); err != nil {
			t.Fatalf("a health event that is not Health: %v\n%s", err, sc.Text())
		}
		healths = append(healths, h)
	}
	if len(healths) < 2 {
		t.Fatalf("%d health events within %v, want 2 (one every 2 s while watched): %v", len(healths), agenttest.WaitLimit, sc.Err())
	}
	h := healths[1]
	if !h.MQTT.Connected || len(h.Cameras) != 1 || h.Cameras[0].ID != "front" || h.Cameras[0].Frames <= healths[0].Cameras[0].Frames {
		t.Errorf("health events %+v then %+v; want MQTT connected and camera front's frames counting up", healths[0], h)
	}
}
