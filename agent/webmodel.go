package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/shortcut-edge/shortcut/agent/web"
	"github.com/shortcut-edge/shortcut/agent/webauth"
)

// Models from the page. An uploaded .tflite replaces the running model
// through the same steps as a model command (learner.install: load beside
// the running model, run once, record in installed.json, swap atomically;
// the file that ran stays for the rollback command), only the bytes come
// in the request instead of from a URL. The taught model (the export
// command's file) is downloaded from GET /api/v1/exports/<file>, and an
// export is imported by uploading it (the import command, on the file the
// upload wrote into the state directory).

// uploadGlob names the temporary file of an upload in <state_dir>/models
// (not downloadGlob: a model command starting meanwhile removes those).
const uploadGlob = ".upload-*.part"

// tfliteMagic is a TFLite flatbuffer's file identifier, at bytes 4 to 8.
var tfliteMagic = []byte("TFL3")

// exportFile is the only name GET /api/v1/exports/ serves: the export
// command's file for a head version.
var exportFile = regexp.MustCompile(`^export-h-[0-9a-f]{12}\.tflite$`)

// receiveModel streams the multipart field "model" of r into a new file
// in dir (named by pattern), at most limit bytes, and returns its path,
// SHA-256, size and the name the client gave it. Nothing is left behind
// on failure.
func receiveModel(w http.ResponseWriter, r *http.Request, dir, pattern string, limit int64) (path, sum string, size int64, name string, herr *httpError) {
	bad := func(status int, format string, args ...any) (string, string, int64, string, *httpError) {
		return "", "", 0, "", &httpError{status, codeInvalid, fmt.Sprintf(format, args...) + "; the running model was kept"}
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "multipart/form-data" {
		return bad(http.StatusUnsupportedMediaType, "send the model as multipart/form-data with the file in a \"model\" field")
	}
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(uploadReadTime))
	r.Body = http.MaxBytesReader(w, r.Body, limit+64<<10) // the file and its form's headers
	mr, err := r.MultipartReader()
	if err != nil {
		return bad(http.StatusBadRequest, "reading the form: %v", err)
	}
	var p *multipart.Part
	for {
		if p, err = mr.NextPart(); err != nil {
			return bad(http.StatusBadRequest, "no \"model\" file in the form (%v)", err)
		}
		if p.FormName() == "model" {
			break
		}
	}
	name = truncate(p.FileName(), 80)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", 0, "", &httpError{http.StatusInternalServerError, codeFailed, fmt.Sprintf("making %s: %v; the running model was kept", dir, err)}
	}
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", "", 0, "", &httpError{http.StatusInternalServerError, codeFailed, fmt.Sprintf("%v; the running model was kept (free space in the state directory)", err)}
	}
	h := sha256.New()
	size, err = io.Copy(io.MultiWriter(f, h), io.LimitReader(p, limit+1))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	fail := func(e *httpError) (string, string, int64, string, *httpError) {
		os.Remove(f.Name())
		return "", "", 0, "", e
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe) || err == nil && size > limit:
		return fail(&httpError{http.StatusRequestEntityTooLarge, codeInvalid,
			fmt.Sprintf("%q is more than %d bytes (model.updates.max_bytes); the running model was kept", name, limit)})
	case err != nil:
		return fail(&httpError{http.StatusBadRequest, codeFailed, fmt.Sprintf("receiving %q: %v; the running model was kept", name, err)})
	}
	head := make([]byte, 8)
	if rf, err := os.Open(f.Name()); err == nil {
		io.ReadFull(rf, head)
		rf.Close()
	}
	if !bytes.Equal(head[4:8], tfliteMagic) {
		return fail(&httpError{http.StatusBadRequest, codeInvalid,
			fmt.Sprintf("%q (%d bytes) is not a TensorFlow Lite model: its bytes 4 to 8 are %q, a .tflite file has \"TFL3\"; the running model was kept", name, size, head[4:8])})
	}
	return f.Name(), hex.EncodeToString(h.Sum(nil)), size, name, nil
}

// serveModelUpload is POST /api/v1/model: a new .tflite in the "model"
// field, installed as the model command installs a download. It answers
// with the model command's reply (also on MQTT's reply/model), and the
// same events (model_updated, model_update_failed).
func (a *Agent) serveModelUpload(w http.ResponseWriter, r *http.Request) {
	id := "http-" + webauth.RandomToken()[:16]
	c := command{name: CmdModel, payload: mustJSON(plainRequest{ID: id}), from: "http"}
	answer := func(res any, cerr *cmdError) {
		ch := make(chan Reply, 1)
		c.reply = ch
		a.reply(c, res, cerr)
		rep := <-ch
		status := replyStatus(rep)
		if rep.Code == codeFailed {
			status = http.StatusUnprocessableEntity // the file was read; it is the model that failed
		}
		web.WriteJSON(w, status, rep)
	}
	l := a.learn
	if l == nil {
		answer(nil, &cmdError{codeUnavailable, "model uploads need learning.enabled (the state directory keeps the files for rollback)"})
		return
	}
	dir := filepath.Join(l.dir.Path(), modelsDir)
	tmp, sum, size, name, herr := receiveModel(w, r, dir, uploadGlob, a.cfg.Model.Updates.MaxBytes)
	if herr != nil {
		c.reply = nil
		rep := Reply{Time: stamp(time.Now()), Device: a.cfg.Device.ID, Command: CmdModel, ID: id, Code: herr.code, Error: herr.msg}
		a.log.Warn("model upload refused", "err", herr.msg)
		a.hub.Publish(web.TypeReply, rep)
		web.WriteJSON(w, herr.status, rep)
		return
	}
	defer os.Remove(tmp) // a no-op once renamed
	info := UpdateInfo{ID: id, URL: "upload:" + name, SHA256: sum, Size: size, Bytes: size}
	if cur := a.Model(); cur.SHA256 == sum {
		answer(ModelResult{Model: a.modelRef(cur), Path: cur.Path, Unchanged: true, Head: l.headStatus(cur.EmbeddingDim)}, nil)
		return
	}
	l.mu.Lock()
	cerr := l.busyLocked("upload a model")
	if cerr == nil {
		l.updating = id
	}
	l.mu.Unlock()
	if cerr != nil {
		answer(nil, cerr)
		return
	}
	defer func() {
		l.mu.Lock()
		l.updating = ""
		l.mu.Unlock()
	}()
	path := filepath.Join(dir, sum[:16]+".tflite")
	err := os.Rename(tmp, path)
	if err != nil {
		answer(nil, &cmdError{codeFailed, fmt.Sprintf("%v; the running model was kept (fix the state directory)", err)})
		return
	}
	syncDir(dir)
	a.log.Info("installing an uploaded model", "file", name, "size", size, "sha256", sum)
	res, err := l.install(path, nil, "upload "+name)
	if err != nil {
		if cur := a.Model(); cur.Path != path {
			if in, _ := readInstalled(l.dir.Path()); in.Previous != path {
				os.Remove(path)
			}
		}
		running := a.modelRef(a.Model())
		msg := fmt.Sprintf("uploaded model %q: %v; the running model was kept and nothing was replaced", name, err)
		a.event(Event{Kind: EventModelUpdateFailed, Message: msg, Model: &running, Update: &info})
		answer(nil, &cmdError{codeFailed, msg})
		return
	}
	a.event(Event{Kind: EventModelUpdated, Message: "model uploaded (" + name + "); head: " + res.Head, Path: path, Model: &res.Model, Update: &info})
	answer(res, nil)
}

// serveExport is GET /api/v1/exports/<file>: a file the export command
// wrote (its reply's path names it), as a download.
func (a *Agent) serveExport(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if !exportFile.MatchString(name) {
		web.WriteJSON(w, http.StatusNotFound, web.APIError{Error: fmt.Sprintf("%q is not an export's file name: run the export command, then fetch the file its reply names", truncate(name, 80))})
		return
	}
	if a.learn == nil {
		web.WriteJSON(w, http.StatusNotFound, web.APIError{Error: "on-device learning is off; there are no exports"})
		return
	}
	f, err := os.Open(filepath.Join(a.learn.dir.Path(), name))
	if err != nil {
		web.WriteJSON(w, http.StatusNotFound, web.APIError{Error: fmt.Sprintf("no export %s: run the export command first", name)})
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		web.WriteJSON(w, http.StatusNotFound, web.APIError{Error: fmt.Sprintf("no export %s", name)})
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Cache-Control", "no-store")
	http.ServeContent(w, r, name, st.ModTime(), f)
}

// serveImportUpload is POST /api/v1/imports: an exported .tflite in the
// "model" field is written into the state directory and imported with the
// import command (whose reply it answers); the file is removed after.
func (a *Agent) serveImportUpload(w http.ResponseWriter, r *http.Request) {
	if a.learn == nil {
		a.runCommand(w, r, CmdImport, nil) // answers unavailable
		return
	}
	dir := a.learn.dir.Path()
	tmp, sum, _, _, herr := receiveModel(w, r, dir, ".import-*.part", min(a.cfg.Model.Updates.MaxBytes, maxImportBytes))
	if herr != nil {
		web.WriteJSON(w, herr.status, Reply{Time: stamp(time.Now()), Device: a.cfg.Device.ID, Command: CmdImport, Code: herr.code,
			Error: herr.msg})
		return
	}
	path := filepath.Join(dir, "import-"+sum[:16]+".tflite")
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		web.WriteJSON(w, http.StatusInternalServerError, Reply{Time: stamp(time.Now()), Device: a.cfg.Device.ID, Command: CmdImport, Code: codeFailed, Error: err.Error()})
		return
	}
	rep, ok := a.awaitCommand(w, r, CmdImport, mustJSON(importRequest{ID: "http-" + webauth.RandomToken()[:16], Path: filepath.Base(path)}))
	os.Remove(path) // the head is in the learning state now, or refused
	if ok {
		web.WriteJSON(w, replyStatus(rep), rep)
	}
}
