package main

import (
	"bytes"
	"context"
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

	"github.com/shortcut-edge/shortcut/internal/download"
	"github.com/shortcut-edge/shortcut/resnet"
)

// weightsServer serves one weights file at every path ending in .safetensors or .pth; the
// first request of /cut/... drops the connection half way. It records each request's path and
// Range header.
type weightsServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []string
}

func newWeightsServer(t *testing.T, file []byte) *weightsServer {
	t.Helper()
	s := &weightsServer{}
	cut := sync.Once{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.reqs = append(s.reqs, r.URL.Path+" "+r.Header.Get("Range"))
		s.mu.Unlock()
		if !strings.HasSuffix(r.URL.Path, ".safetensors") && !strings.HasSuffix(r.URL.Path, ".pth") {
			http.NotFound(w, r)
			return
		}
		drop := false
		if strings.HasPrefix(r.URL.Path, "/cut/") {
			cut.Do(func() { drop = true })
		}
		if drop {
			w.Header().Set("Content-Length", fmt.Sprint(len(file)))
			w.Write(file[:len(file)/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		http.ServeContent(w, r, "w", time.Time{}, bytes.NewReader(file))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *weightsServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// downloadFixture is a small torchvision-named ResNet-18 in safetensors, the file's bytes and
// sha256, and a cache directory of the test's own (XDG_CACHE_HOME).
func downloadFixture(t *testing.T) (dir, local string, file []byte, sha string) {
	t.Helper()
	t.Setenv("XDG_CACHE_HOME", filepath.Join(t.TempDir(), "cache"))
	saved := weightsDownload
	weightsDownload.Stall, weightsDownload.Attempts = 2*time.Second, 3
	t.Cleanup(func() { weightsDownload = saved })
	dir = t.TempDir()
	local = filepath.Join(dir, "r18.safetensors")
	writePretrainedSafetensors(t, local, pretrainedWeights(t, 10, 11))
	file, err := os.ReadFile(local)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(file)
	return dir, local, file, hex.EncodeToString(s[:])
}

func weightsCache(t *testing.T) string {
	t.Helper()
	d, err := download.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(d, "weights")
}

func TestPretrainedDownloadsWeightsFromAURLResumesAndReusesTheCache(t *testing.T) {
	dir, local, file, sha := downloadFixture(t)
	srv := newWeightsServer(t, file)
	url := srv.URL + "/cut/r18.safetensors"
	pngs := filepath.Join(dir, "png")
	writePNGs(t, pngs, 32, 16, 12)
	o := pretrainedOptions{arch: "resnet18", weights: url, sha: sha, h: 32, w: 32, format: "auto",
		calibration: "images:" + pngs, seed: 1, out: filepath.Join(dir, "from-url")}
	var stderr bytes.Buffer
	o.stderr = &stderr
	sum, err := pretrained(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/cut/r18.safetensors ", fmt.Sprintf("/cut/r18.safetensors bytes=%d-", len(file)/2)}
	if got := srv.requests(); !slices.Equal(got, want) {
		t.Errorf("requests %q; want %q (the cut one resumed with Range)", got, want)
	}
	if got := listDir(t, o.out); !slices.Equal(got, []string{"labels.txt", "model-float.tflite", "model-int8.report.json", "model-int8.tflite"}) {
		t.Errorf("--out holds %v", got)
	}
	cached := filepath.Join(weightsCache(t), download.CacheName(url))
	if got := listDir(t, weightsCache(t)); !slices.Equal(got, []string{filepath.Base(cached)}) {
		t.Errorf("the cache holds %v; want only %s", got, filepath.Base(cached))
	}
	if !strings.Contains(stderr.String(), "100% (") || !strings.Contains(stderr.String(), "downloaded "+url) {
		t.Errorf("stderr %q: want progress lines up to 100%% and the download named", stderr.String())
	}
	if strings.Contains(stderr.String(), "warning") {
		t.Errorf("stderr %q: a warning although --sha256 was given", stderr.String())
	}
	if !strings.Contains(sum, url) || !strings.Contains(sum, sha) {
		t.Errorf("summary %q: want the URL and the sha256", sum)
	}
	var rep struct{ Weights, URL, SHA256 string }
	b, err := os.ReadFile(filepath.Join(o.out, "model-int8.report.json"))
	if err == nil {
		err = json.Unmarshal(b, &rep)
	}
	if err != nil || rep.URL != url || rep.Weights != cached || rep.SHA256 != sha {
		t.Errorf("report: weights %q, url %q, sha256 %q (%v); want %q, %q, %q", rep.Weights, rep.URL, rep.SHA256, err, cached, url, sha)
	}

	// The same weights from the local file give the same model, byte for byte.
	fromFile := filepath.Join(dir, "from-file")
	if _, err := pretrained(context.Background(), pretrainedOptions{arch: "resnet18", weights: local, h: 32, w: 32, format: "auto", out: fromFile}); err != nil {
		t.Fatal(err)
	}
	a, errA := os.ReadFile(filepath.Join(o.out, "model-float.tflite"))
	c, errC := os.ReadFile(filepath.Join(fromFile, "model-float.tflite"))
	if errA != nil || errC != nil || !bytes.Equal(a, c) {
		t.Errorf("model-float.tflite from the URL and from the file differ (%v, %v)", errA, errC)
	}

	// A second run with --sha256 reads the cache and asks the server nothing.
	n := len(srv.requests())
	stderr.Reset()
	again := pretrainedOptions{arch: "resnet18", weights: url, sha: strings.ToUpper(sha), h: 32, w: 32, format: "auto", out: filepath.Join(dir, "again"), stderr: &stderr}
	if _, err := pretrained(context.Background(), again); err != nil {
		t.Fatal(err)
	}
	if m := len(srv.requests()); m != n {
		t.Errorf("the second run made %d requests; want none", m-n)
	}
	if !strings.Contains(stderr.String(), "using "+cached) {
		t.Errorf("stderr %q: want the cached file named", stderr.String())
	}
	if _, err := resnet.LoadFile(filepath.Join(again.out, "model-float.tflite")); err != nil {
		t.Error(err)
	}
}

func TestPretrainedWithAWrongSHA256LeavesNothingInOutOrTheCache(t *testing.T) {
	dir, _, file, sha := downloadFixture(t)
	srv := newWeightsServer(t, file)
	out := filepath.Join(dir, "parent", "out")
	if err := os.Mkdir(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	wrong := strings.Repeat("0", 64)
	_, err := pretrained(context.Background(), pretrainedOptions{arch: "resnet18", weights: srv.URL + "/r18.safetensors", sha: wrong,
		h: 32, w: 32, format: "auto", out: out, stderr: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), sha) || !strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err %v; want one line naming both digests", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("--out: %v; want it never made", err)
	}
	if got := listDir(t, filepath.Dir(out)); len(got) != 0 {
		t.Errorf("--out's folder holds %v; want nothing", got)
	}
	if got := listDir(t, weightsCache(t)); len(got) != 0 {
		t.Errorf("the cache holds %v; want nothing (no file that looks complete, no .part)", got)
	}
}

func TestPretrainedWithoutSHA256PrintsItAndChecksATorchvisionName(t *testing.T) {
	dir, _, file, sha := downloadFixture(t)
	srv := newWeightsServer(t, file)
	var stderr bytes.Buffer
	run := func(name, out string) error {
		stderr.Reset()
		_, err := pretrained(context.Background(), pretrainedOptions{arch: "resnet18", weights: srv.URL + "/models/" + name,
			h: 32, w: 32, format: "auto", out: filepath.Join(dir, out), stderr: &stderr})
		return err
	}
	if err := run("resnet18-any.pth", "plain"); err != nil {
		t.Fatal(err)
	}
	if s := stderr.String(); !strings.Contains(s, "warning") || !strings.Contains(s, "--sha256 "+sha) {
		t.Errorf("stderr %q: want a warning that gives the sha256 to pass", s)
	}
	// A torchvision-style name carries the start of the digest: it is checked.
	if err := run("resnet18-"+sha[:8]+".pth?download=true", "named"); err != nil { // a query is not part of the name
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "8 digits the file name carries") {
		t.Errorf("stderr %q: want the name's digits said to match", stderr.String())
	}
	err := run("resnet18-deadbeef.pth", "misnamed")
	if err == nil || !strings.Contains(err.Error(), "starts with deadbeef") {
		t.Errorf("a file whose digest does not start as its name says: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "misnamed")); !os.IsNotExist(err) {
		t.Errorf("--out of the refused file: %v; want it never made", err)
	}
	if got := listDir(t, weightsCache(t)); len(got) != 2 || slices.Contains(got, download.CacheName(srv.URL+"/models/resnet18-deadbeef.pth")) {
		t.Errorf("the cache holds %v; want the two good files and not the refused one", got)
	}
}

func TestPretrainedURLErrorsAreOneLine(t *testing.T) {
	_, _, file, _ := downloadFixture(t)
	srv := newWeightsServer(t, file)
	parent := t.TempDir()
	out := filepath.Join(parent, "out")
	code, _, stderr := cli("pretrained", "--arch", "resnet18", "--input", "32", "--weights", srv.URL+"/missing.bin", "--out", out)
	if code == 0 || !strings.Contains(stderr, "404") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("a 404: exit %d, stderr %q; want one line naming 404", code, stderr)
	}
	if left := listDir(t, parent); len(left) != 0 {
		t.Errorf("left behind in --out's folder: %v", left)
	}
	if got := srv.requests(); len(got) != 1 {
		t.Errorf("requests %q; want one (a 404 is not retried)", got)
	}
}
