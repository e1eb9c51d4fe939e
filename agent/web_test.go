package agent_test

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/shortcut-edge/shortcut/agent"
	"github.com/shortcut-edge/shortcut/agent/agenttest"
)

// postCommand sends one command to POST /api/v1/commands/<name> with the
// id "<name>-<n>" added to a map payload (a string goes as it is), and
// returns the reply the response carries. hdr adds headers (a bearer
// token, a CSRF token).
func postCommand(t *testing.T, base, name string, payload any, n int64, hdr http.Header) agent.Reply {
	t.Helper()
	status, r := postCommandStatus(t, http.DefaultClient, base, name, payload, n, hdr)
	if want := map[bool]int{true: 200}[r.OK]; r.OK && status != want {
		t.Errorf("POST %s: HTTP %d for an ok reply, want 200", name, status)
	}
	return r
}

func postCommandStatus(t *testing.T, c *http.Client, base, name string, payload any, n int64, hdr http.Header) (int, agent.Reply) {
	t.Helper()
	var raw []byte
	switch p := payload.(type) {
	case map[string]any:
		p["id"] = fmt.Sprintf("%s-%d", name, n)
		raw, _ = json.Marshal(p)
	case string:
		raw = []byte(p)
	}
	req, _ := http.NewRequest("POST", base+"/api/v1/commands/"+name, strings.NewReader(string(raw)))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r agent.Reply
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("POST %s: HTTP %d, body is not a reply: %v\n%s", name, resp.StatusCode, err, b)
	}
	return resp.StatusCode, r
}

// authConfig is testConfig with learning, one user (alice, password
// "correct horse") and one token ("script-token").
func authConfig(t *testing.T, brokerURL string) agent.Config {
	cfg := testConfig(brokerURL)
	cfg.Learning.Enabled = true
	cfg.Learning.StateDir = t.TempDir()
	cfg.Cameras[0].FPS = 100
	h, err := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.Auth.Users = []agent.UserConfig{{Name: "alice", PasswordHash: string(h)}}
	cfg.HTTP.Auth.Tokens = []agent.TokenConfig{{Name: "ci", SHA256: "a0f4b9c1d2b8d86c0ef7bc5e9aab0ff3a9a4b8f1c7e6d3b2a1908f7e6d5c4b3a"}}
	return cfg
}

const scriptToken = "script-token"

func tokenSHA() string {
	return fmt.Sprintf("%x", sha256.Sum256([]byte(scriptToken)))
}

func startAuthAgent(t *testing.T, mutate func(*agent.Config)) (base string) {
	t.Helper()
	broker := startMosquitto(t, 0)
	cfg := authConfig(t, broker.URL())
	cfg.HTTP.Auth.Tokens[0].SHA256 = tokenSHA()
	if mutate != nil {
		mutate(&cfg)
	}
	src := agenttest.Tensors(framesFor(0, 1)...)
	src.Loop = true
	model := fakeModel(contractTable)
	model.Model.EmbeddingDim = 4
	model.Embed = func(in []float32) []float32 { return []float32{in[0], 1, 0.5, 0.25} }
	a, _ := runAgent(t, cfg, agent.Options{
		OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return src, nil },
		LoadModel:  func(string) (agent.Classifier, error) { return model, nil }})
	return "http://" + a.HTTPAddr()
}

// do sends one request and returns its status and body.
func do(t *testing.T, c *http.Client, method, u, body string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func TestWithAuthEveryPageAndAPIIsRefusedWithoutCredentials(t *testing.T) {
	base := startAuthAgent(t, nil)
	bearer := map[string]string{"Authorization": "Bearer " + scriptToken}
	for _, c := range []struct {
		method, path string
		hdr          map[string]string
		want         int
	}{
		{"GET", "/api/v1/status", nil, 401},
		{"GET", "/api/v1/labels", nil, 401},
		{"GET", "/api/v1/events", nil, 401},
		{"GET", "/api/v1/examples/0123456789abcdef.jpg", nil, 401},
		{"POST", "/api/v1/commands/labels", nil, 401},
		{"GET", "/api/v1/nothing", nil, 401},
		{"GET", "/snapshot.jpg", nil, 401},
		{"GET", "/stream.mjpeg", nil, 401},
		{"GET", "/cameras/front/stream.mjpg", nil, 401},
		{"GET", "/", nil, 303}, // to /login
		{"GET", "/api/v1/status", map[string]string{"Authorization": "Bearer wrong"}, 401},
		{"GET", "/api/v1/status", map[string]string{"Authorization": "Basic YWxpY2U6eA=="}, 401},
		{"GET", "/api/v1/status", map[string]string{"Cookie": "shortcut_session=forged"}, 401},
		{"GET", "/api/v1/status", bearer, 200},
		{"GET", "/cameras/front/snapshot.jpg", bearer, 200},
		{"GET", "/cameras/nope/snapshot.jpg", bearer, 404},
		{"GET", "/login", nil, 200},
		{"GET", "/assets/app.js", nil, 200},
		{"GET", "/metrics", nil, 200},
	} {
		status, h, body := do(t, noRedirect, c.method, base+c.path, "", c.hdr)
		if status != c.want {
			t.Errorf("%s %s %v: HTTP %d, want %d\n%s", c.method, c.path, c.hdr, status, c.want, body)
		}
		if status == 401 && strings.HasPrefix(c.path, "/api/") && !strings.Contains(h.Get("Content-Type"), "json") {
			t.Errorf("%s %s: a 401 of the API should be JSON, got %q", c.method, c.path, h.Get("Content-Type"))
		}
		if status == 303 && h.Get("Location") != "/login" {
			t.Errorf("%s %s: redirected to %q, want /login", c.method, c.path, h.Get("Location"))
		}
	}
	// /healthz answers monitors without credentials (200 or 503, never 401).
	if status, _, _ := do(t, noRedirect, "GET", base+"/healthz", "", nil); status == 401 {
		t.Errorf("/healthz needs credentials; monitors must reach it")
	}
}

func TestProtectMetricsPutsMetricsBehindTheLogin(t *testing.T) {
	base := startAuthAgent(t, func(c *agent.Config) { c.HTTP.Auth.ProtectMetrics = true })
	if status, _, _ := do(t, noRedirect, "GET", base+"/metrics", "", nil); status != 401 {
		t.Errorf("/metrics without credentials: HTTP %d, want 401", status)
	}
	if status, _, _ := do(t, noRedirect, "GET", base+"/metrics", "", map[string]string{"Authorization": "Bearer " + scriptToken}); status != 200 {
		t.Errorf("/metrics with the token: HTTP %d, want 200", status)
	}
}

// login logs alice in with a cookie jar and returns the client and the
// session's CSRF token.
func login(t *testing.T, base, password string) (*http.Client, string, int) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: noRedirect.CheckRedirect}
	_, _, page := do(t, c, "GET", base+"/login", "", nil)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the login page has no csrf field:\n%s", page)
	}
	form := url.Values{"name": {"alice"}, "password": {password}, "csrf": {m[1]}}.Encode()
	status, _, _ := do(t, c, "POST", base+"/login", form, map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": base})
	if status != 303 {
		return c, "", status
	}
	_, _, body := do(t, c, "GET", base+"/api/v1/session", "", nil)
	var s agent.WebSession
	json.Unmarshal([]byte(body), &s)
	return c, s.CSRF, status
}

func TestASessionCookieNeedsItsCSRFTokenAndTheSameOrigin(t *testing.T) {
	base := startAuthAgent(t, nil)
	c, csrf, status := login(t, base, "correct horse")
	if status != 303 || csrf == "" {
		t.Fatalf("login: HTTP %d, csrf %q; want 303 and a token", status, csrf)
	}
	// The jar hides cookie attributes: log in again by hand to read them.
	_, h, page := do(t, noRedirect, "GET", base+"/login", "", nil)
	tok := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)[1]
	loginCk := strings.Split(h.Get("Set-Cookie"), ";")[0]
	form := url.Values{"name": {"alice"}, "password": {"correct horse"}, "csrf": {tok}}.Encode()
	_, h, _ = do(t, noRedirect, "POST", base+"/login", form, map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Cookie": loginCk})
	var set string
	for _, v := range h.Values("Set-Cookie") {
		if strings.HasPrefix(v, "shortcut_session=") {
			set = v
		}
	}
	for _, attr := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(set, attr) {
			t.Errorf("session cookie %q lacks %s", set, attr)
		}
	}
	if strings.Contains(set, "Secure") {
		t.Errorf("session cookie %q is Secure on plain HTTP: the browser would never send it back", set)
	}

	labels := `{"id": "x"}`
	json := "application/json"
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"no CSRF token", map[string]string{"Content-Type": json}, 403},
		{"a wrong CSRF token", map[string]string{"Content-Type": json, "X-CSRF-Token": "nope"}, 403},
		{"another origin", map[string]string{"Content-Type": json, "X-CSRF-Token": csrf, "Origin": "http://evil.example"}, 403},
		{"a cross-site fetch", map[string]string{"Content-Type": json, "X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}, 403},
		{"a form body", map[string]string{"Content-Type": "text/plain", "X-CSRF-Token": csrf}, 415},
		{"the token and this origin", map[string]string{"Content-Type": json, "X-CSRF-Token": csrf, "Origin": base, "Sec-Fetch-Site": "same-origin"}, 200},
	} {
		status, _, body := do(t, c, "POST", base+"/api/v1/commands/labels", labels, tc.hdr)
		if status != tc.want {
			t.Errorf("a command with %s: HTTP %d, want %d\n%s", tc.name, status, tc.want, body)
		}
	}
	// A bearer token needs no CSRF token (no browser sends it by itself),
	// but another origin is refused all the same.
	if status, _, body := do(t, noRedirect, "POST", base+"/api/v1/commands/labels", labels, map[string]string{"Authorization": "Bearer " + scriptToken}); status != 200 {
		t.Errorf("a command with the bearer token: HTTP %d\n%s", status, body)
	}
	if status, _, _ := do(t, noRedirect, "POST", base+"/api/v1/commands/labels", labels, map[string]string{"Authorization": "Bearer " + scriptToken, "Origin": "http://evil.example"}); status != 403 {
		t.Errorf("a bearer command from another origin: HTTP %d, want 403", status)
	}
	// Logging out ends the session.
	if status, _, _ := do(t, c, "POST", base+"/logout", url.Values{"csrf": {csrf}}.Encode(), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}); status != 303 {
		t.Errorf("logout: HTTP %d, want 303", status)
	}
	if status, _, _ := do(t, c, "GET", base+"/api/v1/status", "", nil); status != 401 {
		t.Errorf("after logout: HTTP %d, want 401", status)
	}
}

func TestLoginRefusesAForgedFormAndIsRateLimited(t *testing.T) {
	base := startAuthAgent(t, nil)
	// A form without the login page's token (another site's form).
	form := url.Values{"name": {"alice"}, "password": {"correct horse"}, "csrf": {"guess"}}.Encode()
	if status, _, _ := do(t, noRedirect, "POST", base+"/login", form, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}); status != 403 {
		t.Errorf("login with a forged form: HTTP %d, want 403", status)
	}
	if _, _, status := login(t, base, "wrong password"); status != 401 {
		t.Errorf("login with a wrong password: HTTP %d, want 401", status)
	}
	var last int
	for range 8 {
		_, _, last = login(t, base, "wrong password")
	}
	if last != 429 {
		t.Errorf("the 10th login attempt within a second: HTTP %d, want 429", last)
	}
	if _, _, status := login(t, base, "correct horse"); status != 429 {
		t.Errorf("a right password while rate-limited: HTTP %d, want 429 (the limit holds for every attempt)", status)
	}
}

func TestTheAPIRefusesOversizedAndPathLikeInput(t *testing.T) {
	base := startAuthAgent(t, nil)
	hdr := http.Header{"Authorization": {"Bearer " + scriptToken}}
	big := `{"label": "` + strings.Repeat("a", agent.MaxCommandBytes) + `"}`
	status, r := postCommandStatus(t, http.DefaultClient, base, "learn", big, 0, hdr)
	if status != 413 || r.OK || r.Code != "invalid" {
		t.Errorf("an oversized command: HTTP %d %+v, want 413 and code invalid", status, r)
	}
	for _, label := range []string{"../../etc/passwd", "a/b", "..", "x\x00y"} {
		status, r := postCommandStatus(t, http.DefaultClient, base, "learn", map[string]any{"label": label, "count": 1}, 1, hdr)
		if status != 400 || r.Code != "invalid" {
			t.Errorf("learn %q: HTTP %d %+v, want 400 invalid", label, status, r)
		}
	}
	for _, p := range []string{"/api/v1/examples/..%2F..%2Fetc%2Fpasswd.jpg", "/api/v1/examples/cat.jpg", "/api/v1/examples/0123456789abcdef.png"} {
		if status, _, body := do(t, noRedirect, "GET", base+p, "", map[string]string{"Authorization": "Bearer " + scriptToken}); status != 404 {
			t.Errorf("GET %s: HTTP %d, want 404\n%s", p, status, body)
		}
	}
}

func TestWithoutAuthOnlyLoopbackHostsAreAnswered(t *testing.T) {
	broker := startMosquitto(t, 0)
	cfg := testConfig(broker.URL())
	a, err := agent.New(cfg, agent.Options{Logger: quietLog(), OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) {
		s := agenttest.Tensors(framesFor(0)...)
		s.Loop = true
		return s, nil
	}, LoadModel: func(string) (agent.Classifier, error) { return fakeModel(contractTable), nil }})
	if err != nil {
		t.Fatal(err)
	}
	running(t, a)
	base := "http://" + a.HTTPAddr()
	if status, _, body := do(t, noRedirect, "GET", base+"/api/v1/status", "", nil); status != 200 {
		t.Errorf("status on loopback without auth: HTTP %d\n%s", status, body)
	}
	if status, _, _ := do(t, noRedirect, "GET", base+"/api/v1/status", "", map[string]string{"Host": "evil.example:8080"}); status != 403 {
		t.Errorf("a request naming another host (DNS rebinding): HTTP %d, want 403", status)
	}
	if status, _, _ := do(t, noRedirect, "POST", base+"/api/v1/commands/labels", "{}", map[string]string{"Origin": "http://evil.example"}); status != 403 {
		t.Errorf("a cross-origin command without auth: HTTP %d, want 403", status)
	}
	if status, _, _ := do(t, noRedirect, "POST", base+"/api/v1/commands/labels", "{}", nil); status != 503 {
		t.Errorf("a command with learning off: HTTP %d, want 503 (unavailable)", status)
	}
}

func TestANonLoopbackAddressNeedsAuthOrInsecure(t *testing.T) {
	for _, c := range []struct {
		addr     string
		insecure bool
		users    bool
		ok       bool
	}{
		{"127.0.0.1:8080", false, false, true},
		{"[::1]:8080", false, false, true},
		{"localhost:8080", false, false, true},
		{"0.0.0.0:8080", false, false, false},
		{":8080", false, false, false},
		{"192.168.1.20:8080", false, false, false},
		{"0.0.0.0:8080", true, false, true},
		{"0.0.0.0:8080", false, true, true},
	} {
		cfg := testConfig("tcp://127.0.0.1:1")
		cfg.HTTP.Address, cfg.HTTP.Insecure = c.addr, c.insecure
		if c.users {
			cfg.HTTP.Auth.Tokens = []agent.TokenConfig{{Name: "ci", SHA256: tokenSHA()}}
		}
		errs := cfg.Validate(nil)
		var named bool
		for _, e := range errs {
			named = named || e.Path == "http.address"
		}
		if named == c.ok {
			t.Errorf("http.address %q, insecure %v, auth %v: errors %v; want ok=%v", c.addr, c.insecure, c.users, errs, c.ok)
		}
	}
}

func TestAuthConfigErrorsNameTheirKeys(t *testing.T) {
	cfg := testConfig("tcp://127.0.0.1:1")
	cfg.HTTP.Auth.Users = []agent.UserConfig{{Name: "", PasswordHash: "plain"}, {Name: "bob", PasswordHash: "$2a$04$abc"}}
	cfg.HTTP.Auth.Tokens = []agent.TokenConfig{{Name: "bob", SHA256: "xyz"}}
	got := fmt.Sprint(cfg.Validate(nil))
	for _, want := range []string{"http.auth.users[0].name", "http.auth.users[0].password_hash", "http.auth.users[1].password_hash",
		"http.auth.tokens[0].name", "http.auth.tokens[0].sha256", "hash-password"} {
		if !strings.Contains(got, want) {
			t.Errorf("errors %s do not name %s", got, want)
		}
	}
}
