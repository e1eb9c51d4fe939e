// Package webauth guards the agent's page and API: users (bcrypt), bearer
// tokens, sessions with CSRF tokens, cross-origin refusal, login rate
// limits, and the loopback-only rule without any user or token.
package webauth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/shortcut-edge/shortcut/agent/config"
)

// Who may use the page and the API (http.auth). With users or tokens
// configured, every page but /login and every /api/ request needs a
// session cookie (from logging in) or a bearer token; /healthz and
// /metrics stay open for monitors unless protect_metrics. Whatever the
// configuration, a state-changing request from another origin is refused
// (Sec-Fetch-Site and Origin, net/http's CrossOriginProtection), and one
// made with a session cookie must carry the session's CSRF token: the
// X-CSRF-Token header (the page's fetch calls) or a "csrf" form field.
// Without any user or token the server listens on loopback only
// (validateAuth), and requests must name a loopback host, so that a web
// page elsewhere cannot reach it by DNS rebinding.

const (
	SessionCookie  = "shortcut_session"
	LoginCookie    = "shortcut_login" // the login form's CSRF token (double submit)
	CSRFHeader     = "X-CSRF-Token"
	maxSessions    = 256 // the oldest Session goes when a login would exceed it
	MaxLoginFields = 4 << 10
)

// Login attempts are rate-limited per client address and overall, before
// any password is hashed: a bcrypt check costs tens of milliseconds of a
// board's CPU.
const (
	loginBurstPerClient = 5
	loginEveryPerClient = 10 * time.Second
	loginBurstAll       = 30
	loginEveryAll       = time.Second
	maxLoginClients     = 1024
)

// Session is a logged-in user's session.
type Session struct {
	User    string
	CSRF    string // the token every state-changing request must carry
	Expires time.Time
}

type bearer struct {
	name string
	sum  []byte // SHA-256 of the token
}

// Auth checks credentials and keeps the sessions (in memory: a restart
// logs everyone out).
type Auth struct {
	cfg      config.AuthConfig
	insecure bool
	log      *slog.Logger
	users    map[string][]byte // name -> bcrypt hash
	tokens   []bearer
	cop      *http.CrossOriginProtection
	dummy    []byte // a bcrypt hash to check unknown names against, so timing does not tell names

	mu       sync.Mutex
	sessions map[string]*Session // by cookie value
	clients  map[string]*bucket  // login attempts by client address
	all      bucket
}

func New(cfg config.HTTPConfig, log *slog.Logger) *Auth {
	wa := &Auth{cfg: cfg.Auth, insecure: cfg.Insecure, log: log, users: map[string][]byte{}, cop: http.NewCrossOriginProtection(),
		sessions: map[string]*Session{}, clients: map[string]*bucket{}}
	for _, u := range cfg.Auth.Users {
		wa.users[u.Name] = []byte(u.PasswordHash)
	}
	for _, t := range cfg.Auth.Tokens {
		sum, _ := hex.DecodeString(t.SHA256) // checked by validateAuth
		wa.tokens = append(wa.tokens, bearer{name: t.Name, sum: sum})
	}
	if len(wa.users) > 0 {
		cost := bcrypt.DefaultCost
		for _, h := range wa.users {
			if c, err := bcrypt.Cost(h); err == nil {
				cost = c
				break
			}
		}
		wa.dummy, _ = bcrypt.GenerateFromPassword([]byte("not a password"), cost)
	}
	return wa
}

func (wa *Auth) Enabled() bool { return wa.cfg.Enabled() }

// RandomToken is 32 random bytes, base64url.
func RandomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Identity is who made a request: a user (by session) or a token.
type Identity struct {
	Name    string
	Session *Session // nil for a bearer token
}

// Identify returns the request's Identity, or why it has none. A request
// with an Authorization header is judged by it alone.
func (wa *Auth) Identify(r *http.Request) (Identity, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return Identity{}, fmt.Errorf("the Authorization header is not \"Bearer <token>\"")
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		match := -1
		for i, b := range wa.tokens { // every token is compared: constant time overall
			if subtle.ConstantTimeCompare(sum[:], b.sum) == 1 {
				match = i
			}
		}
		if match < 0 {
			return Identity{}, fmt.Errorf("the bearer token is not one of http.auth.tokens")
		}
		return Identity{Name: "token:" + wa.tokens[match].name}, nil
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return Identity{}, fmt.Errorf("not logged in: log in at /login, or send Authorization: Bearer <token>")
	}
	wa.mu.Lock()
	defer wa.mu.Unlock()
	s := wa.sessions[c.Value]
	if s == nil || time.Now().After(s.Expires) {
		delete(wa.sessions, c.Value)
		return Identity{}, fmt.Errorf("the session has ended (logged out, expired after http.auth.session_ttl, or the agent restarted): log in again")
	}
	return Identity{Name: s.User, Session: s}, nil
}

// CheckPassword says whether name and password match a configured user.
func (wa *Auth) CheckPassword(name, password string) bool {
	h, ok := wa.users[name]
	if !ok {
		bcrypt.CompareHashAndPassword(wa.dummy, []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword(h, []byte(password)) == nil
}

// NewSession starts a session for user and returns its cookie value.
func (wa *Auth) NewSession(user string) (string, *Session) {
	id := RandomToken()
	s := &Session{User: user, CSRF: RandomToken(), Expires: time.Now().Add(wa.cfg.SessionTTL)}
	wa.mu.Lock()
	defer wa.mu.Unlock()
	now := time.Now()
	for k, old := range wa.sessions {
		if now.After(old.Expires) {
			delete(wa.sessions, k)
		}
	}
	for len(wa.sessions) >= maxSessions {
		var oldest string
		for k, old := range wa.sessions {
			if oldest == "" || old.Expires.Before(wa.sessions[oldest].Expires) {
				oldest = k
			}
		}
		delete(wa.sessions, oldest)
	}
	wa.sessions[id] = s
	return id, s
}

func (wa *Auth) EndSession(r *http.Request) {
	if c, err := r.Cookie(SessionCookie); err == nil {
		wa.mu.Lock()
		delete(wa.sessions, c.Value)
		wa.mu.Unlock()
	}
}

// AllowLogin takes one login attempt from the client's and the overall
// budget; when either is spent it returns how long to wait.
func (wa *Auth) AllowLogin(r *http.Request, now time.Time) (time.Duration, bool) {
	client, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		client = r.RemoteAddr
	}
	wa.mu.Lock()
	defer wa.mu.Unlock()
	b := wa.clients[client]
	if b == nil {
		if len(wa.clients) >= maxLoginClients {
			for k, old := range wa.clients {
				if old.full(now, loginEveryPerClient) {
					delete(wa.clients, k)
				}
			}
		}
		if len(wa.clients) >= maxLoginClients {
			return loginEveryAll, false // too many clients at once: only the overall budget would be left
		}
		b = &bucket{}
		wa.clients[client] = b
	}
	if wait := b.wait(now, loginBurstPerClient, loginEveryPerClient); wait > 0 {
		return wait, false
	}
	if wait := wa.all.wait(now, loginBurstAll, loginEveryAll); wait > 0 {
		return wait, false
	}
	b.take(now, loginEveryPerClient)
	wa.all.take(now, loginEveryAll)
	return 0, true
}

// bucket is a token bucket of burst tokens, one more every `every`.
type bucket struct {
	used float64 // tokens taken, as of at
	at   time.Time
}

func (b *bucket) level(now time.Time, every time.Duration) float64 {
	if b.at.IsZero() {
		return 0
	}
	return max(0, b.used-float64(now.Sub(b.at))/float64(every))
}

func (b *bucket) full(now time.Time, every time.Duration) bool {
	return b.level(now, every) == 0
}

func (b *bucket) wait(now time.Time, burst int, every time.Duration) time.Duration {
	over := b.level(now, every) + 1 - float64(burst)
	if over <= 0 {
		return 0
	}
	return time.Duration(over * float64(every))
}

func (b *bucket) take(now time.Time, every time.Duration) {
	b.used, b.at = b.level(now, every)+1, now
}

// guard kinds: what a route needs.
type Kind int

const (
	Open    Kind = iota // anyone (login page, assets, /healthz)
	Metrics             // open unless http.auth.protect_metrics
	Page                // a page: refused without login (sent to /login)
	API                 // /api/: refused with 401 without login or token
)

// StateChanging says whether r may change something.
func StateChanging(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// Guard wraps h with the checks of its kind; see the comment at the top.
func (wa *Auth) Guard(kind Kind, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "same-origin")
		w.Header().Set("X-Frame-Options", "DENY")
		if StateChanging(r) {
			if err := wa.cop.Check(r); err != nil {
				refuse(w, kind, http.StatusForbidden, "cross-origin request refused: a state-changing request must come from this agent's own page ("+err.Error()+")")
				return
			}
		}
		if kind == Open || kind == Metrics && !wa.cfg.ProtectMetrics {
			h(w, r)
			return
		}
		if !wa.Enabled() {
			host, _, err := net.SplitHostPort(r.Host)
			if err != nil {
				host = r.Host
			}
			if !wa.insecure && !config.LoopbackHost(strings.Trim(host, "[]")) {
				refuse(w, kind, http.StatusForbidden, fmt.Sprintf("Host %q is not a loopback name: without http.auth users or tokens this agent answers only "+
					"requests to 127.0.0.1, [::1] or localhost (a page elsewhere could otherwise reach it by DNS rebinding)", r.Host))
				return
			}
			h(w, r)
			return
		}
		id, err := wa.Identify(r)
		if err != nil {
			if kind == Page {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="shortcut"`)
			refuse(w, kind, http.StatusUnauthorized, err.Error())
			return
		}
		if id.Session != nil && StateChanging(r) {
			tok := r.Header.Get(CSRFHeader)
			if tok == "" && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
				r.Body = http.MaxBytesReader(w, r.Body, MaxLoginFields)
				tok = r.PostFormValue("csrf")
			}
			if subtle.ConstantTimeCompare([]byte(tok), []byte(id.Session.CSRF)) != 1 {
				refuse(w, kind, http.StatusForbidden, "missing or wrong CSRF token: send the session's token (GET /api/v1/session) in the "+CSRFHeader+" header")
				return
			}
		}
		h(w, r)
	})
}

// refuse answers a refused request: JSON for the API, text otherwise.
func refuse(w http.ResponseWriter, kind Kind, status int, msg string) {
	if kind == API {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(struct {
			Error string `json:"error"`
		}{msg})
		return
	}
	http.Error(w, msg, status)
}
