// Package web is the agent's page: the HTML, CSS and JavaScript in this
// folder (embedded), the login and logout pages, the live event hub behind
// GET /api/v1/events, and the helpers the API's handlers share.
package web

import (
	"crypto/subtle"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/shortcut-edge/shortcut/agent/config"
	"github.com/shortcut-edge/shortcut/agent/webauth"
)

// The agent's web page: plain HTML, CSS and JavaScript embedded in the
// binary (this folder), nothing fetched from elsewhere. index.html is the
// whole app (Live, Teach, Status); it reads /api/v1/status and
// /api/v1/labels, follows /api/v1/events and sends commands to
// /api/v1/commands/<name>. login.html is a template for the CSRF token.

//go:embed *.html *.css *.js
var files embed.FS

var loginPage = template.Must(template.ParseFS(files, "login.html"))

// pageCSP keeps the pages to their own origin: no inline script, no
// third-party anything, no framing.
const pageCSP = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; " +
	"frame-ancestors 'none'; form-action 'self'; base-uri 'none'"

// page serves the login and logout pages.
type page struct {
	auth *webauth.Auth
	cfg  config.HTTPConfig
	log  *slog.Logger
}

// PageRoutes adds the page, its assets, login and logout to mux, each
// behind auth's guard.
func PageRoutes(mux *http.ServeMux, auth *webauth.Auth, cfg config.HTTPConfig, log *slog.Logger) {
	p := &page{auth: auth, cfg: cfg, log: log}
	assets, _ := fs.Sub(files, ".")
	mux.Handle("GET /assets/", auth.Guard(webauth.Open, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.StripPrefix("/assets/", http.FileServerFS(assets)).ServeHTTP(w, r)
	}))
	mux.Handle("GET /{$}", auth.Guard(webauth.Page, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", pageCSP)
		w.Header().Set("Cache-Control", "no-store")
		http.ServeFileFS(w, r, files, "index.html")
	}))
	mux.Handle("GET /login", auth.Guard(webauth.Open, p.serveLoginPage))
	mux.Handle("POST /login", auth.Guard(webauth.Open, p.serveLogin))
	mux.Handle("POST /logout", auth.Guard(webauth.Page, func(w http.ResponseWriter, r *http.Request) {
		auth.EndSession(r)
		http.SetCookie(w, &http.Cookie{Name: webauth.SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	}))

}

// loginView fills login.html.
type loginView struct {
	CSRF    string
	Error   string
	NoLogin bool // no user is configured: nothing to log in to
}

func (p *page) renderLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	tok := webauth.RandomToken()
	http.SetCookie(w, &http.Cookie{Name: webauth.LoginCookie, Value: tok, Path: "/login", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: 3600})
	w.Header().Set("Content-Security-Policy", pageCSP)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	loginPage.Execute(w, loginView{CSRF: tok, Error: msg, NoLogin: len(p.cfg.Auth.Users) == 0})
}

func (p *page) serveLoginPage(w http.ResponseWriter, r *http.Request) {
	p.renderLogin(w, r, http.StatusOK, "")
}

// serveLogin checks a login form: the rate limit first (before bcrypt
// spends CPU), then the form's CSRF token against its cookie, then the
// password. A success starts a session and goes to the page.
func (p *page) serveLogin(w http.ResponseWriter, r *http.Request) {
	wa, log := p.auth, p.log
	if len(p.cfg.Auth.Users) == 0 {
		p.renderLogin(w, r, http.StatusNotFound, "No user is configured (http.auth.users), so there is nothing to log in to.")
		return
	}
	if wait, ok := wa.AllowLogin(r, time.Now()); !ok {
		secs := int(wait.Seconds()) + 1
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		log.Warn("login attempt refused: too many attempts", "client", r.RemoteAddr)
		p.renderLogin(w, r, http.StatusTooManyRequests, fmt.Sprintf("Too many login attempts; try again in %d s.", secs))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, webauth.MaxLoginFields)
	if err := r.ParseForm(); err != nil {
		p.renderLogin(w, r, http.StatusBadRequest, "The login form could not be read; reload the page and try again.")
		return
	}
	c, err := r.Cookie(webauth.LoginCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) != 1 {
		p.renderLogin(w, r, http.StatusForbidden, "The login form has expired or did not come from this page; log in again.")
		return
	}
	name := r.PostFormValue("name")
	if !wa.CheckPassword(name, r.PostFormValue("password")) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		log.Warn("login failed", "user", name, "client", host)
		p.renderLogin(w, r, http.StatusUnauthorized, "Wrong name or password.")
		return
	}
	id, _ := wa.NewSession(name)
	log.Info("logged in", "user", name, "client", r.RemoteAddr)
	http.SetCookie(w, &http.Cookie{Name: webauth.SessionCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: int(p.cfg.Auth.SessionTTL.Seconds())})
	http.SetCookie(w, &http.Cookie{Name: webauth.LoginCookie, Value: "", Path: "/login", MaxAge: -1})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// TakeStream takes one of the long-lived response slots (MJPEG streams,
// event streams), or answers 503 and returns false when all are taken.
func TakeStream(w http.ResponseWriter, streams chan struct{}, maxConns int) bool {
	select {
	case streams <- struct{}{}:
		return true
	default:
		http.Error(w, fmt.Sprintf("%d streams are open, as many as http.max_connections (%d) allows; close one, or raise http.max_connections",
			cap(streams), maxConns), http.StatusServiceUnavailable)
		return false
	}
}

// APIError is the body of an API refusal that is not a command's reply.
type APIError struct {
	Error string `json:"error"`
}

// WriteJSON answers with v as JSON, never cached.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
