package agent

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"time"

	"github.com/shortcut-edge/shortcut/agent/web"
	"github.com/shortcut-edge/shortcut/internal/buildinfo"
)

// The HTTP API (/api/v1/...) of the page and of scripts. Commands are the
// MQTT commands: POST /api/v1/commands/<name> takes the same JSON body,
// goes through the same learner (its queue, busy rules and checks) and
// answers with the same Reply, which is also published on MQTT's
// reply/<name> and as a "reply" event, whichever transport sent it.

// replyStatus is the HTTP status of a command's reply.
func replyStatus(r Reply) int {
	switch r.Code {
	case "":
		return http.StatusOK
	case codeInvalid:
		return http.StatusBadRequest
	case codeUnknownCommand:
		return http.StatusNotFound
	case codeBusy, codeDuplicate:
		return http.StatusConflict
	case codeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// serveCommand runs one command for an HTTP client and answers with its
// reply. learn and train answer when they are done, so the write deadline
// is lifted while the handler waits (the client may hang up: the request's
// context ends, and the command goes on as an MQTT one would).
func (a *Agent) serveCommand(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	now := stamp(time.Now())
	refused := func(status int, code, msg string) {
		web.WriteJSON(w, status, Reply{Time: now, Device: a.cfg.Device.ID, Command: name, OK: false, Code: code, Error: msg})
	}
	if a.learn == nil {
		refused(http.StatusServiceUnavailable, codeUnavailable, "on-device learning is off (learning.enabled: false in the configuration); no command can run")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			refused(http.StatusUnsupportedMediaType, codeInvalid, fmt.Sprintf("Content-Type %q: send the command as application/json", ct))
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxCommandBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			refused(http.StatusRequestEntityTooLarge, codeInvalid, fmt.Sprintf("the body is more than %d bytes, the limit of a command; nothing was done", MaxCommandBytes))
			return
		}
		refused(http.StatusBadRequest, codeInvalid, "reading the body: "+err.Error())
		return
	}
	a.runCommand(w, r, name, body)
}

// runCommand submits one command to the learner and answers with its
// reply when it comes.
func (a *Agent) runCommand(w http.ResponseWriter, r *http.Request, name string, body []byte) {
	if rep, ok := a.awaitCommand(w, r, name, body); ok {
		web.WriteJSON(w, replyStatus(rep), rep)
	}
}

// awaitCommand submits one command to the learner and waits for its
// reply; ok is false when the client left first (the command goes on, as
// an MQTT one would). The write deadline is lifted while it waits (learn
// and train answer when they are done) and set again after.
func (a *Agent) awaitCommand(w http.ResponseWriter, r *http.Request, name string, body []byte) (Reply, bool) {
	if a.learn == nil {
		return Reply{Time: stamp(time.Now()), Device: a.cfg.Device.ID, Command: name, Code: codeUnavailable,
			Error: "on-device learning is off (learning.enabled: false in the configuration); no command can run"}, true
	}
	ch := make(chan Reply, 1)
	a.learn.submit(command{name: name, payload: body, from: "http", reply: ch})
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{})
	select {
	case rep := <-ch:
		rc.SetWriteDeadline(time.Now().Add(a.cfg.HTTP.WriteTimeout))
		return rep, true
	case <-r.Context().Done():
		return Reply{}, false
	}
}

func (a *Agent) serveStatus(w http.ResponseWriter, r *http.Request) {
	s := WebStatus{Device: a.cfg.Device.ID, Name: a.cfg.Device.Name, Version: buildinfo.Version, Health: a.Health(),
		Learning: a.learn != nil, TopK: a.cfg.Model.TopK, Events: a.hub.Recent(), Cameras: []WebCamera{}}
	if id, err := a.auth.Identify(r); err == nil {
		s.User = id.Name
	}
	mi := a.Model()
	s.Model = WebModel{Name: mi.Name, Version: mi.Version, SHA256: mi.SHA256, Path: mi.Path, Labels: mi.Labels,
		Input: [3]int{mi.Height, mi.Width, mi.Channels}, EmbeddingDim: mi.EmbeddingDim}
	if a.learn != nil {
		if in, err := readInstalled(a.learn.dir.Path()); err == nil {
			s.Model.Previous = in.Previous
		}
	}
	for _, c := range a.cams {
		st, _ := c.state.Load().(string)
		if st == "" {
			st = NoState
		}
		s.Cameras = append(s.Cameras, WebCamera{ID: c.cfg.ID, State: st,
			Stream: "/cameras/" + c.cfg.ID + "/stream.mjpg", Snapshot: "/cameras/" + c.cfg.ID + "/snapshot.jpg"})
	}
	web.WriteJSON(w, http.StatusOK, s)
}

func (a *Agent) serveSession(w http.ResponseWriter, r *http.Request) {
	s := WebSession{Auth: a.auth.Enabled()}
	if id, err := a.auth.Identify(r); err == nil {
		s.User = id.Name
		if id.Session != nil {
			s.CSRF = id.Session.CSRF
		}
	}
	web.WriteJSON(w, http.StatusOK, s)
}

func (a *Agent) serveLabels(w http.ResponseWriter, r *http.Request) {
	if a.learn == nil {
		web.WriteJSON(w, http.StatusServiceUnavailable, web.APIError{Error: "on-device learning is off (learning.enabled: false in the configuration)"})
		return
	}
	res, _ := a.learn.labels()
	out := WebLabels{LabelsResult: res, Examples: []WebLabelExamples{}}
	if store, cerr := a.learn.ready(); cerr == nil {
		for _, le := range store.ExampleIDs() {
			we := WebLabelExamples{Label: le.Label, Examples: make([]WebExample, len(le.IDs))}
			for i, id := range le.IDs {
				we.Examples[i].ID = id
				if le.Thumbnail[i] {
					we.Examples[i].JPG = "/api/v1/examples/" + id + ".jpg"
				}
			}
			out.Examples = append(out.Examples, we)
		}
	}
	web.WriteJSON(w, http.StatusOK, out)
}

// exampleFile is the only form GET /api/v1/examples/ accepts: an id
// (agent/head/ids.go) and ".jpg".
var exampleFile = regexp.MustCompile(`^([0-9a-f]{16}(?:-[0-9]{1,4})?)\.jpg$`)

func (a *Agent) serveExample(w http.ResponseWriter, r *http.Request) {
	m := exampleFile.FindStringSubmatch(r.PathValue("file"))
	if m == nil {
		web.WriteJSON(w, http.StatusNotFound, web.APIError{Error: fmt.Sprintf("%q is not an example's file name: want <id>.jpg with an id from /api/v1/labels", r.PathValue("file"))})
		return
	}
	if a.learn == nil {
		web.WriteJSON(w, http.StatusNotFound, web.APIError{Error: "on-device learning is off; there are no examples"})
		return
	}
	store, cerr := a.learn.ready()
	if cerr != nil {
		web.WriteJSON(w, http.StatusNotFound, web.APIError{Error: cerr.msg})
		return
	}
	b, _, ok := store.Thumbnail(m[1])
	if !ok {
		web.WriteJSON(w, http.StatusNotFound, web.APIError{Error: fmt.Sprintf("no stored example %s has a thumbnail (forgotten, replaced by a newer one, or learning.thumbnail_size is 0)", m[1])})
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Cache-Control", "private, max-age=300")
	w.Write(b)
}
