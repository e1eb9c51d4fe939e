package agent

import (
	"crypto/subtle"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/shortcut-edge/shortcut/agent/webauth"
)

// The agent's web page: plain HTML, CSS and JavaScript embedded in the
// binary (agent/web/), nothing fetched from elsewhere. index.html is the
// whole app (Live, Teach, Status); it reads /api/v1/status and
// /api/v1/labels, follows /api/v1/events and sends commands to
// /api/v1/commands/<name>. login.html is a template for the CSRF token.

//go:embed web
var webFiles embed.FS

var loginPage = template.Must(template.ParseFS(webFiles, "web/login.html"))

// pageCSP keeps the pages to their own origin: no inline script, no
// third-party anything, no framing.
const pageCSP = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; " +
	"frame-ancestors 'none'; form-action 'self'; base-uri 'none'"

// webRoutes adds the page, the login and the API to mux.
func (a *Agent) webRoutes(mux *http.ServeMux, streams chan struct{}) {
	assets, _ := fs.Sub(webFiles, "web")
	mux.Handle("GET /assets/", a.auth.Guard(webauth.Open, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.StripPrefix("/assets/", http.FileServerFS(assets)).ServeHTTP(w, r)
	}))
	mux.Handle("GET /{$}", a.auth.Guard(webauth.Page, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", pageCSP)
		w.Header().Set("Cache-Control", "no-store")
		http.ServeFileFS(w, r, webFiles, "web/index.html")
	}))
	mux.Handle("GET /login", a.auth.Guard(webauth.Open, a.serveLoginPage))
	mux.Handle("POST /login", a.auth.Guard(webauth.Open, a.serveLogin))
	mux.Handle("POST /logout", a.auth.Guard(webauth.Page, func(w http.ResponseWriter, r *http.Request) {
		a.auth.EndSession(r)
		http.SetCookie(w, &http.Cookie{Name: webauth.SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	}))

	mux.Handle("GET /api/v1/session", a.auth.Guard(webauth.API, a.serveSession))
	mux.Handle("GET /api/v1/status", a.auth.Guard(webauth.API, a.serveStatus))
	mux.Handle("GET /api/v1/labels", a.auth.Guard(webauth.API, a.serveLabels))
	mux.Handle("GET /api/v1/examples/{file}", a.auth.Guard(webauth.API, a.serveExample))
	mux.Handle("DELETE /api/v1/examples/{file}", a.auth.Guard(webauth.API, a.serveDeleteExample))
	mux.Handle("POST /api/v1/examples", a.auth.Guard(webauth.API, a.serveUploadPhotos))
	mux.Handle("POST /api/v1/model", a.auth.Guard(webauth.API, a.serveModelUpload))
	mux.Handle("GET /api/v1/exports/{file}", a.auth.Guard(webauth.API, a.serveExport))
	mux.Handle("POST /api/v1/imports", a.auth.Guard(webauth.API, a.serveImportUpload))
	mux.Handle("POST /api/v1/commands/{name}", a.auth.Guard(webauth.API, a.serveCommand))
	mux.Handle("GET /api/v1/events", a.auth.Guard(webauth.API, func(w http.ResponseWriter, r *http.Request) {
		if !takeStream(w, streams, a.cfg.HTTP.MaxConnections) {
			return
		}
		defer func() { <-streams }()
		a.serveEvents(w, r)
	}))
	mux.Handle("/api/", a.auth.Guard(webauth.API, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, apiError{fmt.Sprintf("no API %s %s; see agent/PAYLOADS.md (HTTP API)", r.Method, r.URL.Path)})
	}))
}

// loginView fills login.html.
type loginView struct {
	CSRF    string
	Error   string
	NoLogin bool // no user is configured: nothing to log in to
}

func (a *Agent) renderLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	tok := webauth.RandomToken()
	http.SetCookie(w, &http.Cookie{Name: webauth.LoginCookie, Value: tok, Path: "/login", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: 3600})
	w.Header().Set("Content-Security-Policy", pageCSP)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	loginPage.Execute(w, loginView{CSRF: tok, Error: msg, NoLogin: len(a.cfg.HTTP.Auth.Users) == 0})
}

func (a *Agent) serveLoginPage(w http.ResponseWriter, r *http.Request) {
	a.renderLogin(w, r, http.StatusOK, "")
}

// serveLogin checks a login form: the rate limit first (before bcrypt
// spends CPU), then the form's CSRF token against its cookie, then the
// password. A success starts a session and goes to the page.
func (a *Agent) serveLogin(w http.ResponseWriter, r *http.Request) {
	wa, log := a.auth, a.log.With("component", "http")
	if len(a.cfg.HTTP.Auth.Users) == 0 {
		a.renderLogin(w, r, http.StatusNotFound, "No user is configured (http.auth.users), so there is nothing to log in to.")
		return
	}
	if wait, ok := wa.AllowLogin(r, time.Now()); !ok {
		secs := int(wait.Seconds()) + 1
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		log.Warn("login attempt refused: too many attempts", "client", r.RemoteAddr)
		a.renderLogin(w, r, http.StatusTooManyRequests, fmt.Sprintf("Too many login attempts; try again in %d s.", secs))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, webauth.MaxLoginFields)
	if err := r.ParseForm(); err != nil {
		a.renderLogin(w, r, http.StatusBadRequest, "The login form could not be read; reload the page and try again.")
		return
	}
	c, err := r.Cookie(webauth.LoginCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) != 1 {
		a.renderLogin(w, r, http.StatusForbidden, "The login form has expired or did not come from this page; log in again.")
		return
	}
	name := r.PostFormValue("name")
	if !wa.CheckPassword(name, r.PostFormValue("password")) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		log.Warn("login failed", "user", name, "client", host)
		a.renderLogin(w, r, http.StatusUnauthorized, "Wrong name or password.")
		return
	}
	id, _ := wa.NewSession(name)
	log.Info("logged in", "user", name, "client", r.RemoteAddr)
	http.SetCookie(w, &http.Cookie{Name: webauth.SessionCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: int(a.cfg.HTTP.Auth.SessionTTL.Seconds())})
	http.SetCookie(w, &http.Cookie{Name: webauth.LoginCookie, Value: "", Path: "/login", MaxAge: -1})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// takeStream takes one of the long-lived response slots (MJPEG streams,
// event streams), or answers 503 and returns false when all are taken.
func takeStream(w http.ResponseWriter, streams chan struct{}, maxConns int) bool {
	select {
	case streams <- struct{}{}:
		return true
	default:
		http.Error(w, fmt.Sprintf("%d streams are open, as many as http.max_connections (%d) allows; close one, or raise http.max_connections",
			cap(streams), maxConns), http.StatusServiceUnavailable)
		return false
	}
}
