package agent

import (
	"fmt"
	"net/http"

	"github.com/shortcut-edge/shortcut/agent/web"
	"github.com/shortcut-edge/shortcut/agent/webauth"
)

// webRoutes adds the page (package web) and the API to mux.
func (a *Agent) webRoutes(mux *http.ServeMux, streams chan struct{}) {
	web.PageRoutes(mux, a.auth, a.cfg.HTTP, a.log.With("component", "http"))
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
		if !web.TakeStream(w, streams, a.cfg.HTTP.MaxConnections) {
			return
		}
		defer func() { <-streams }()
		a.hub.ServeEvents(w, r, func() any { return a.Health() }, a.cfg.HTTP.WriteTimeout)
	}))
	mux.Handle("/api/", a.auth.Guard(webauth.API, func(w http.ResponseWriter, r *http.Request) {
		web.WriteJSON(w, http.StatusNotFound, web.APIError{Error: fmt.Sprintf("no API %s %s; see agent/PAYLOADS.md (HTTP API)", r.Method, r.URL.Path)})
	}))
}
