package agent

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/shortcut-edge/shortcut/agent/capture"
	"github.com/shortcut-edge/shortcut/agent/web"
	"github.com/shortcut-edge/shortcut/agent/webauth"
)

// Examples from the page: one stored example is deleted by its id (the
// forget command with "example", so MQTT and HTTP share it), and photos
// uploaded from a phone or a computer become examples of a label. An
// upload is read whole, every photo decoded, checked and turned into an
// embedding before the first is stored: a bad photo refuses the whole
// request and nothing changes.

// Upload limits. A phone's photo is 2 to 8 MB; 48 MP is the largest
// sensor a phone ships, and decoding is refused above it before any pixel
// memory is taken (a small PNG can claim a huge size).
const (
	maxPhotoBytes      = 16 << 20
	maxPhotoUpload     = 64 << 20 // a whole request
	maxUploadFieldSize = 4 << 10
	// uploadReadTime replaces http.read_timeout for an upload's body: a
	// phone on a weak link sends tens of megabytes slowly.
	uploadReadTime = 5 * time.Minute
)

// CmdUpload names the reply of a photo upload (HTTP only: there is no
// MQTT command that carries pictures).
const CmdUpload = "upload"

// serveDeleteExample is DELETE /api/v1/examples/<id>: the forget command
// with {"example": id}, through the learner like any command.
func (a *Agent) serveDeleteExample(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimSuffix(r.PathValue("file"), ".jpg")
	body := mustJSON(map[string]string{"id": "http-" + webauth.RandomToken()[:16], "example": id})
	a.runCommand(w, r, CmdForget, body)
}

// serveUploadPhotos is POST /api/v1/examples (multipart/form-data): the
// fields "label" and, optionally, "camera", and one or more "photo" files.
func (a *Agent) serveUploadPhotos(w http.ResponseWriter, r *http.Request) {
	now := stamp(time.Now())
	id := "http-" + webauth.RandomToken()[:16]
	answer := func(status int, res any, code, msg string) {
		rep := Reply{Time: now, Device: a.cfg.Device.ID, Command: CmdUpload, ID: id, OK: code == "", Code: code, Error: msg}
		if res != nil {
			rep.Result = mustJSON(res)
		}
		if code != "" {
			a.log.Warn("photo upload refused", "code", code, "err", msg)
		}
		a.hub.Publish(web.TypeReply, rep)
		web.WriteJSON(w, status, rep)
	}
	if a.learn == nil {
		answer(http.StatusServiceUnavailable, nil, codeUnavailable, "on-device learning is off (learning.enabled: false in the configuration)")
		return
	}
	form, cerr := readPhotoForm(w, r, a.cfg.Learning.MaxCount)
	if cerr != nil {
		answer(cerr.status, nil, cerr.code, cerr.msg)
		return
	}
	// Decoding and embedding a dozen phone photos takes seconds on a
	// board: the write deadline waits for it.
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{})
	defer rc.SetWriteDeadline(time.Now().Add(a.cfg.HTTP.WriteTimeout))
	res, err := a.learn.addPhotos(form)
	if err != nil && err.code != "" {
		answer(replyStatus(Reply{Code: err.code}), nil, err.code, err.msg)
		return
	}
	answer(http.StatusOK, res, "", "")
}

// httpError is a refusal with its HTTP status.
type httpError struct {
	status int
	code   string
	msg    string
}

// photoForm is an upload, read and checked for size.
type photoForm struct {
	label, camera string
	names         []string
	photos        [][]byte
}

// readPhotoForm reads the multipart body part by part, within the limits,
// before anything is decoded.
func readPhotoForm(w http.ResponseWriter, r *http.Request, maxCount int) (photoForm, *httpError) {
	var f photoForm
	bad := func(format string, args ...any) (photoForm, *httpError) {
		return photoForm{}, &httpError{http.StatusBadRequest, codeInvalid, fmt.Sprintf(format, args...) + "; nothing was stored"}
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "multipart/form-data" {
		return photoForm{}, &httpError{http.StatusUnsupportedMediaType, codeInvalid,
			"send the photos as multipart/form-data: a \"label\" field and one or more \"photo\" files; nothing was stored"}
	}
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(uploadReadTime))
	r.Body = http.MaxBytesReader(w, r.Body, maxPhotoUpload)
	mr, err := r.MultipartReader()
	if err != nil {
		return bad("reading the form: %v", err)
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return photoForm{}, &httpError{http.StatusRequestEntityTooLarge, codeInvalid,
					fmt.Sprintf("the upload is more than %d bytes, the limit of one request; send fewer or smaller photos; nothing was stored", maxPhotoUpload)}
			}
			return bad("reading the form: %v", err)
		}
		name := p.FormName()
		limit := int64(maxUploadFieldSize)
		if name == "photo" {
			limit = maxPhotoBytes
		}
		b, err := io.ReadAll(io.LimitReader(p, limit+1))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return photoForm{}, &httpError{http.StatusRequestEntityTooLarge, codeInvalid,
					fmt.Sprintf("the upload is more than %d bytes, the limit of one request; send fewer or smaller photos; nothing was stored", maxPhotoUpload)}
			}
			return bad("reading %q: %v", name, err)
		}
		if int64(len(b)) > limit {
			if name == "photo" {
				return photoForm{}, &httpError{http.StatusRequestEntityTooLarge, codeInvalid,
					fmt.Sprintf("photo %q is more than %d bytes, the limit of one photo; nothing was stored", truncate(p.FileName(), 80), maxPhotoBytes)}
			}
			return bad("field %q is more than %d bytes", truncate(name, 40), maxUploadFieldSize)
		}
		switch name {
		case "label":
			f.label = string(b)
		case "camera":
			f.camera = string(b)
		case "photo":
			if len(f.photos) == maxCount {
				return bad("more than %d photos; the limit of one upload is learning.max_count", maxCount)
			}
			f.names = append(f.names, truncate(p.FileName(), 80))
			f.photos = append(f.photos, b)
		default:
			return bad("unknown field %q: send \"label\", \"camera\" and \"photo\" files", truncate(name, 40))
		}
	}
	if len(f.photos) == 0 {
		return bad("no \"photo\" file in the form")
	}
	return f, nil
}

// addPhotos makes examples of form's photos: every photo is decoded and
// embedded first; only then are they stored, all at once, and saved.
func (l *learner) addPhotos(form photoForm) (UploadResult, *cmdError) {
	if err := l.checkLabel(form.label); err != nil {
		return UploadResult{}, invalid("%v; nothing was stored", err)
	}
	store, cerr := l.ready()
	if cerr != nil {
		return UploadResult{}, cerr
	}
	camID := form.camera
	if camID == "" {
		camID = l.a.cams[0].cfg.ID
	}
	cam := l.a.cameraByID(camID)
	if cam == nil {
		return UploadResult{}, invalid("camera %q: no such camera (cameras: %s); nothing was stored", truncate(camID, 40), strings.Join(l.a.cameraIDs(), ", "))
	}
	ref := l.a.model.Load()
	info := ref.info
	sess := ref.c.NewSession()
	es, ok := sess.(EmbeddingSession)
	if !ok || info.EmbeddingDim == 0 {
		return UploadResult{}, &cmdError{codeUnavailable, fmt.Sprintf("model %q has no embedding for on-device learning", info.Name)}
	}
	embs := make([][]float32, len(form.photos))
	thumbs := make([][]byte, len(form.photos))
	for i, b := range form.photos {
		img, orientation, err := capture.DecodePhoto(b)
		if err == nil {
			err = capture.PhotoInput(sess.Input(), img, orientation, cam.cfg.Preprocess, info)
		}
		if err == nil {
			_, err = sess.Run()
		}
		if err != nil {
			return UploadResult{}, invalid("photo %d (%q): %v; nothing was stored", i+1, form.names[i], err)
		}
		embs[i] = append([]float32(nil), es.Embedding()...)
		if l.cfg.ThumbnailSize > 0 {
			if thumbs[i], err = thumbnail(sess.Input(), info, cam.cfg.Preprocess, l.cfg.ThumbnailSize); err != nil {
				l.log.Warn("no thumbnail for an uploaded photo", "label", form.label, "err", err)
			}
		}
	}
	l.mu.Lock()
	if cerr := l.busyLocked("upload photos"); cerr != nil {
		l.mu.Unlock()
		return UploadResult{}, cerr
	}
	for camID, lbl := range l.capturing {
		if lbl == form.label {
			l.mu.Unlock()
			return UploadResult{}, &cmdError{codeBusy, fmt.Sprintf("busy: %q is being learned on camera %s; upload after that learn reply", lbl, camID)}
		}
	}
	if l.a.model.Load() != ref {
		l.mu.Unlock()
		return UploadResult{}, &cmdError{codeBusy, "busy: the model was replaced while the photos were read; upload them again"}
	}
	res := UploadResult{Label: form.label, Camera: camID, Files: form.names}
	for i := range embs {
		dropped, err := store.Add(form.label, embs[i], thumbs[i])
		if err != nil { // only the first can fail: a new label over learning.max_labels
			l.mu.Unlock()
			return UploadResult{}, invalid("%v; nothing was stored", err)
		}
		res.Added++
		if dropped {
			res.Dropped++
		}
	}
	l.mu.Unlock()
	res.Total = l.countOf(store, form.label)
	l.log.Info("photos uploaded as examples", "label", form.label, "added", res.Added, "total", res.Total)
	if err := l.save(); err != nil {
		return res, notSaved("the examples are", err)
	}
	return res, nil
}
