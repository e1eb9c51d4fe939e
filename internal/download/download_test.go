package download

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// server serves one file the ways real servers fail, and records every request's path and
// Range header. Paths: /good (http.ServeContent: Range, 416), /cut (the first request drops the
// connection half way), /stall (half the file, then nothing), /chunked-more (the file and more,
// no Content-Length), /long (a Content-Length above the file's), /norange (200 to every
// Range), /changed (the first response announces the file, a resumed one another size),
// /500once (one 503 first).
type server struct {
	*httptest.Server
	file []byte
	mu   sync.Mutex
	reqs []string // "path range"
	hits map[string]int
}

func newServer(t *testing.T, file []byte) *server {
	t.Helper()
	s := &server{file: file, hits: map[string]int{}}
	stop := make(chan struct{})
	serve := func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(s.file))
	}
	half := func(w http.ResponseWriter) {
		w.Header().Set("Content-Length", fmt.Sprint(len(s.file)))
		w.Write(s.file[:len(s.file)/2])
		w.(http.Flusher).Flush()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/good/", serve)
	mux.HandleFunc("/cut/", func(w http.ResponseWriter, r *http.Request) {
		if s.hit("/cut") > 1 {
			serve(w, r)
			return
		}
		half(w)
		panic(http.ErrAbortHandler) // the connection drops mid-file
	})
	mux.HandleFunc("/stall/", func(w http.ResponseWriter, r *http.Request) {
		half(w)
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	mux.HandleFunc("/chunked-more/", func(w http.ResponseWriter, r *http.Request) {
		w.Write(s.file) // no Content-Length: chunked, so only the bytes tell
		w.(http.Flusher).Flush()
		w.Write([]byte("and then some more bytes than announced"))
	})
	mux.HandleFunc("/long/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(s.file)+10))
		w.Write(s.file)
		w.Write(make([]byte, 10))
	})
	mux.HandleFunc("/norange/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(s.file)))
		if s.hit("/norange") == 1 {
			w.Write(s.file[:len(s.file)/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		w.Write(s.file)
	})
	mux.HandleFunc("/changed/", func(w http.ResponseWriter, r *http.Request) {
		if s.hit("/changed") == 1 {
			half(w)
			panic(http.ErrAbortHandler)
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", len(s.file)/2, len(s.file)+99, len(s.file)+100))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(s.file[len(s.file)/2:])
	})
	mux.HandleFunc("/redirect/", func(w http.ResponseWriter, r *http.Request) {
		// As Hugging Face's resolve/ URLs do: the file is elsewhere (here, the cutting server).
		http.Redirect(w, r, "/cut/"+strings.TrimPrefix(r.URL.Path, "/redirect/"), http.StatusFound)
	})
	mux.HandleFunc("/500once/", func(w http.ResponseWriter, r *http.Request) {
		if s.hit("/500once") == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		serve(w, r)
	})
	wrapped := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.reqs = append(s.reqs, r.URL.Path+" "+r.Header.Get("Range"))
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
	s.Server = httptest.NewServer(wrapped)
	t.Cleanup(func() { close(stop); s.Close() })
	return s
}

// hit counts a request of a kind and returns its number.
func (s *server) hit(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hits[kind]++
	return s.hits[kind]
}

func (s *server) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

func testFile(n int) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func fetchInto(t *testing.T, o Options) ([]byte, Result, error) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "dst"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := Fetch(context.Background(), o, f)
	got, rerr := os.ReadFile(f.Name())
	if rerr != nil {
		t.Fatal(rerr)
	}
	return got, res, err
}

func quick(o Options) Options {
	if o.Stall == 0 {
		o.Stall = 5 * time.Second // only the stall tests wait for it; a loaded machine must not
	}
	if o.Attempts == 0 {
		o.Attempts = 2
	}
	return o
}

func TestFetchResumesWithARangeRequestAfterTheConnectionDrops(t *testing.T) {
	file := testFile(300_000)
	for _, size := range []int64{int64(len(file)), 0} {
		s := newServer(t, file)
		var last, total int64
		got, res, err := fetchInto(t, quick(Options{URL: s.URL + "/cut/w.pth", Size: size, SHA256: hexSHA(file),
			Progress: func(h, n int64) { last, total = h, n }}))
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if !bytes.Equal(got, file) || res.Size != int64(len(file)) || res.SHA256 != hexSHA(file) {
			t.Errorf("size %d: got %d bytes, result %+v; want the %d bytes of the file", size, len(got), res, len(file))
		}
		want := []string{"/cut/w.pth ", fmt.Sprintf("/cut/w.pth bytes=%d-", len(file)/2)}
		if reqs := s.requests(); !slices.Equal(reqs, want) {
			t.Errorf("size %d: requests %q; want %q (the second resumes)", size, reqs, want)
		}
		if last != int64(len(file)) || total != int64(len(file)) {
			t.Errorf("size %d: last progress %d of %d; want %d of %d", size, last, total, len(file), len(file))
		}
	}
}

func TestFetchFollowsARedirectAndResumesThroughIt(t *testing.T) {
	file := testFile(200_000)
	s := newServer(t, file)
	got, _, err := fetchInto(t, quick(Options{URL: s.URL + "/redirect/w", SHA256: hexSHA(file)}))
	if err != nil || !bytes.Equal(got, file) {
		t.Fatalf("got %d bytes, err %v; want the file", len(got), err)
	}
	r := fmt.Sprintf("bytes=%d-", len(file)/2)
	if want := []string{"/redirect/w ", "/cut/w ", "/redirect/w " + r, "/cut/w " + r}; !slices.Equal(s.requests(), want) {
		t.Errorf("requests %q; want %q (the Range kept through the redirect)", s.requests(), want)
	}
}

func TestFetchStartsAgainWhenTheServerIgnoresRange(t *testing.T) {
	file := testFile(100_000)
	s := newServer(t, file)
	got, _, err := fetchInto(t, quick(Options{URL: s.URL + "/norange/w", SHA256: hexSHA(file)}))
	if err != nil || !bytes.Equal(got, file) {
		t.Fatalf("got %d bytes, err %v; want the file", len(got), err)
	}
}

func TestFetchRetriesAServerErrorButNotAMissingFile(t *testing.T) {
	file := testFile(1000)
	s := newServer(t, file)
	if got, _, err := fetchInto(t, quick(Options{URL: s.URL + "/500once/w", SHA256: hexSHA(file)})); err != nil || !bytes.Equal(got, file) {
		t.Errorf("after one 503: %d bytes, %v; want the file on the second attempt", len(got), err)
	}
	_, _, err := fetchInto(t, quick(Options{URL: s.URL + "/missing", Attempts: 3}))
	if !errors.Is(err, ErrHTTP) || !strings.Contains(err.Error(), "404") || strings.Contains(err.Error(), "\n") {
		t.Errorf("a 404: %v; want one line naming 404", err)
	}
	if n := strings.Count(strings.Join(s.requests(), ","), "/missing"); n != 1 {
		t.Errorf("a 404 was asked %d times; want once (another attempt cannot fix it)", n)
	}
}

func TestFetchGivesUpOnAStallingServer(t *testing.T) {
	file := testFile(100_000)
	s := newServer(t, file)
	_, _, err := fetchInto(t, quick(Options{URL: s.URL + "/stall/w", Attempts: 2, Stall: 500 * time.Millisecond}))
	if !errors.Is(err, ErrStalled) || !errors.Is(err, ErrGaveUp) {
		t.Fatalf("err %v; want a stall and the attempts used up", err)
	}
	for _, want := range []string{"gave up after 2 attempts", "nothing received for 500ms", fmt.Sprintf("at %d of %d bytes", len(file)/2, len(file))} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err %q does not say %q", err, want)
		}
	}
}

func TestFetchRefusesMoreBytesThanAnnounced(t *testing.T) {
	file := testFile(50_000)
	s := newServer(t, file)
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"chunked, more than Size", Options{URL: s.URL + "/chunked-more/w", Size: int64(len(file))}, "sent more than the 50000 bytes announced"},
		{"chunked, more than MaxBytes", Options{URL: s.URL + "/chunked-more/w", MaxBytes: int64(len(file))}, "sent more than the 50000 bytes allowed"},
		{"Content-Length above Size", Options{URL: s.URL + "/long/w", Size: int64(len(file))}, "announces 50010 bytes (Content-Length), the size asked for is 50000"},
		{"Content-Length above MaxBytes", Options{URL: s.URL + "/long/w", MaxBytes: int64(len(file))}, "more than the 50000 allowed"},
		{"a resumed response of another size", Options{URL: s.URL + "/changed/w"}, "announces 50100 bytes (Content-Range), 50000 before"},
	} {
		_, _, err := fetchInto(t, quick(tc.o))
		if !errors.Is(err, ErrSize) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want %q", tc.name, err, tc.want)
		}
	}
	// Unknown size, chunked, no cap: the end of the body is the end of the file.
	got, _, err := fetchInto(t, quick(Options{URL: s.URL + "/chunked-more/w"}))
	if err != nil || len(got) != len(file)+len("and then some more bytes than announced") {
		t.Errorf("chunked without a size: %d bytes, %v", len(got), err)
	}
}

func TestFetchRefusesAWrongChecksumAndABadOne(t *testing.T) {
	file := testFile(10_000)
	s := newServer(t, file)
	_, _, err := fetchInto(t, quick(Options{URL: s.URL + "/good/w", SHA256: strings.Repeat("ab", 32)}))
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), hexSHA(file)) || !strings.Contains(err.Error(), strings.Repeat("ab", 32)) {
		t.Errorf("a wrong sha256: %v; want ErrChecksum naming both digests", err)
	}
	if _, _, err := fetchInto(t, quick(Options{URL: s.URL + "/good/w", SHA256: "abc"})); err == nil || !strings.Contains(err.Error(), "64 hex digits") {
		t.Errorf("a short sha256: %v", err)
	}
}

func TestFetchStopsWithItsContext(t *testing.T) {
	s := newServer(t, testFile(10_000))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	f, _ := os.Create(filepath.Join(t.TempDir(), "dst"))
	defer f.Close()
	_, err := Fetch(ctx, Options{URL: s.URL + "/stall/w", Stall: time.Minute}, f)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("err %v; want the deadline named", err)
	}
}

func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	es, _ := os.ReadDir(dir)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestCachedSecondRunMakesNoRequest(t *testing.T) {
	file := testFile(20_000)
	s := newServer(t, file)
	dir := t.TempDir()
	o := quick(Options{URL: s.URL + "/good/resnet18-f37072fd.pth", SHA256: hexSHA(file)})
	res, err := Cached(context.Background(), dir, o)
	if err != nil || res.FromCache || res.SHA256 != hexSHA(file) {
		t.Fatalf("first run: %+v, %v", res, err)
	}
	if got, _ := os.ReadFile(res.Path); !bytes.Equal(got, file) {
		t.Fatal("the cached file is not the file")
	}
	if want := []string{CacheName(o.URL)}; !slices.Equal(cacheFiles(t, dir), want) {
		t.Errorf("cache holds %v; want %v", cacheFiles(t, dir), want)
	}
	n := len(s.requests())
	for _, sha := range []string{hexSHA(file), ""} {
		o.SHA256 = sha
		again, err := Cached(context.Background(), dir, o)
		if err != nil || !again.FromCache || again.Path != res.Path || again.SHA256 != hexSHA(file) {
			t.Errorf("sha256 %q: second run %+v, %v; want the cached file", sha, again, err)
		}
	}
	if m := len(s.requests()); m != n {
		t.Errorf("the second runs made %d requests; want none", m-n)
	}
	// A cached file that is not the one asked for is fetched again (and the cache keeps it
	// only if that one matches).
	os.WriteFile(res.Path, []byte("tampered"), 0o644)
	o.SHA256 = hexSHA(file)
	if again, err := Cached(context.Background(), dir, o); err != nil || again.FromCache {
		t.Errorf("after the cached file changed: %+v, %v; want a fresh download", again, err)
	}
	if got, _ := os.ReadFile(res.Path); !bytes.Equal(got, file) {
		t.Error("the fresh download did not replace the changed cached file")
	}
}

func TestCachedLeavesNothingThatLooksCompleteAfterAFailure(t *testing.T) {
	file := testFile(20_000)
	s := newServer(t, file)
	for _, tc := range []struct {
		name, path, sha string
		kind            error
	}{
		{"a wrong sha256", "/good/w", strings.Repeat("0", 64), ErrChecksum},
		{"a 404", "/missing/w", "", ErrHTTP},
		{"more bytes than announced", "/long/w", "", ErrSize},
	} {
		dir := t.TempDir()
		o := quick(Options{URL: s.URL + tc.path, SHA256: tc.sha, MaxBytes: int64(len(file))})
		_, err := Cached(context.Background(), dir, o)
		if !errors.Is(err, tc.kind) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v; want one line of kind %v", tc.name, err, tc.kind)
		}
		if files := cacheFiles(t, dir); len(files) != 0 {
			t.Errorf("%s: the cache holds %v; want nothing", tc.name, files)
		}
	}
}

func TestCachedKeepsAnInterruptedPartAndTheNextRunResumesIt(t *testing.T) {
	file := testFile(100_000)
	s := newServer(t, file)
	dir := t.TempDir()
	url := s.URL + "/stall/w"
	_, err := Cached(context.Background(), dir, quick(Options{URL: url, SHA256: hexSHA(file), Attempts: 1, Stall: 500 * time.Millisecond}))
	name := CacheName(url)
	if !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), "the next run resumes them") {
		t.Fatalf("err %v; want a stall that keeps the bytes", err)
	}
	if files := cacheFiles(t, dir); !slices.Equal(files, []string{name + ".part"}) {
		t.Fatalf("the cache holds %v; want only the .part", files)
	}
	// The same URL, now served whole: the next run asks for the rest only.
	good := s.URL + "/good/w"
	if err := os.Rename(filepath.Join(dir, name+".part"), filepath.Join(dir, CacheName(good)+".part")); err != nil {
		t.Fatal(err)
	}
	res, err := Cached(context.Background(), dir, quick(Options{URL: good, SHA256: hexSHA(file)}))
	if err != nil || res.Resumed != int64(len(file)/2) {
		t.Fatalf("resumed run: %+v, %v; want %d bytes resumed", res, err, len(file)/2)
	}
	if reqs := s.requests(); reqs[len(reqs)-1] != fmt.Sprintf("/good/w bytes=%d-", len(file)/2) {
		t.Errorf("requests %q; want the last to resume from %d", reqs, len(file)/2)
	}
	if files := cacheFiles(t, dir); !slices.Equal(files, []string{CacheName(good)}) {
		t.Errorf("the cache holds %v; want only the finished file", files)
	}
}

func TestCachedStartsAgainWhenAKeptPartIsStale(t *testing.T) {
	file := testFile(30_000)
	s := newServer(t, file)
	dir := t.TempDir()
	url := s.URL + "/good/w"
	stale := slices.Clone(file[:10_000])
	stale[5] ^= 1
	os.WriteFile(filepath.Join(dir, CacheName(url)+".part"), stale, 0o644)
	res, err := Cached(context.Background(), dir, quick(Options{URL: url, SHA256: hexSHA(file)}))
	if err != nil || res.Resumed != 0 || res.SHA256 != hexSHA(file) {
		t.Fatalf("%+v, %v; want the whole file fetched again after the resumed one mismatched", res, err)
	}
	if want := []string{"/good/w bytes=10000-", "/good/w "}; !slices.Equal(s.requests(), want) {
		t.Errorf("requests %q; want %q", s.requests(), want)
	}
}

func TestCachedFinishesAPartThatIsAlreadyWhole(t *testing.T) {
	file := testFile(30_000)
	s := newServer(t, file)
	dir := t.TempDir()
	url := s.URL + "/good/w"
	os.WriteFile(filepath.Join(dir, CacheName(url)+".part"), file, 0o644) // a run stopped before its rename
	res, err := Cached(context.Background(), dir, quick(Options{URL: url, SHA256: hexSHA(file)}))
	if err != nil || res.SHA256 != hexSHA(file) {
		t.Fatalf("%+v, %v", res, err)
	}
	if want := []string{"/good/w bytes=30000-"}; !slices.Equal(s.requests(), want) {
		t.Errorf("requests %q; want %q (answered 416, the part is whole)", s.requests(), want)
	}
}

func TestCachedRefusesAPartAnotherProcessIsWriting(t *testing.T) {
	s := newServer(t, testFile(1000))
	dir := t.TempDir()
	url := s.URL + "/good/w"
	f, err := os.Create(filepath.Join(dir, CacheName(url)+".part"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := lockFile(f); err != nil {
		t.Skipf("no file locks here: %v", err)
	}
	if _, err := Cached(context.Background(), dir, quick(Options{URL: url})); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Errorf("err %v; want the other download named", err)
	}
}

func TestCacheDirFollowsXDGAndFallsBackToHome(t *testing.T) {
	t.Setenv("HOME", "/home/u")
	for xdg, want := range map[string]string{"/x/cache": "/x/cache/shortcut", "": "/home/u/.cache/shortcut", "relative": "/home/u/.cache/shortcut"} {
		t.Setenv("XDG_CACHE_HOME", xdg)
		if got, err := CacheDir(); err != nil || got != want {
			t.Errorf("XDG_CACHE_HOME=%q: %q, %v; want %q", xdg, got, err, want)
		}
	}
}

func TestCacheNameKeepsTheFileNameAndTellsURLsApart(t *testing.T) {
	a := CacheName("https://huggingface.co/timm/resnet18.tv_in1k/resolve/main/model.safetensors")
	b := CacheName("https://huggingface.co/timm/resnet50.tv_in1k/resolve/main/model.safetensors")
	if a == b || !strings.HasSuffix(a, "-model.safetensors") {
		t.Errorf("%q and %q: want two names ending in the file name", a, b)
	}
	for _, u := range []string{"http://h/", "http://h/../..", "http://h/a b?x=/../y", "http://h/.hidden"} {
		if n := CacheName(u); strings.ContainsAny(n, "/ ?") || strings.HasPrefix(n, ".") || n == "" {
			t.Errorf("CacheName(%q) = %q", u, n)
		}
	}
}

func TestContentRange(t *testing.T) {
	for h, want := range map[string][3]int64{
		"bytes 10-19/20": {10, 20, 1}, "bytes 10-19/*": {10, 0, 1}, "bytes */20": {0, 20, 1},
		"bytes x-19/20": {0, 0, 0}, "10-19/20": {0, 0, 0}, "bytes 10-19": {0, 0, 0}, "bytes 1-2/-3": {0, 0, 0},
	} {
		s, n, ok := contentRange(h)
		if ok != (want[2] == 1) || ok && (s != want[0] || n != want[1]) {
			t.Errorf("contentRange(%q) = %d, %d, %v; want %v", h, s, n, ok, want)
		}
	}
}
