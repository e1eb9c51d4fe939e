package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/shortcut-edge/shortcut/internal/buildinfo"
	"github.com/shortcut-edge/shortcut/internal/download"
)

// Model updates (the model and rollback commands, for one board or a fleet
// group): the new model is downloaded into <state_dir>/models under a
// temporary name, checked against the command's size and sha256, renamed,
// loaded beside the running model and run once, and swapped in through the
// same path as a reload (replaceModelLocked). The file that was running
// stays, for rollback. Which file runs is recorded in
// <state_dir>/models/installed.json, so that a restart keeps the update.
// Any failure leaves the running model and removes what it downloaded.

// Command names of model updates.
const (
	CmdModel    = "model"
	CmdRollback = "rollback"
)

// groupCommands are the commands a fleet group topic may carry.
var groupCommands = []string{CmdModel, CmdRollback}

type modelRequest struct {
	ID     string   `json:"id"`
	URL    string   `json:"url"`
	SHA256 string   `json:"sha256"`
	Size   int64    `json:"size"`
	Labels []string `json:"labels"`
}

// Event kinds of model updates.
const (
	EventModelUpdateProgress = "model_update_progress"
	EventModelUpdated        = "model_updated"
	EventModelUpdateFailed   = "model_update_failed"
	EventModelRolledBack     = "model_rolled_back"
)

// What became of the trained head when the model changed (ModelResult.Head).
const (
	headNone         = "none"         // no head trained on the device
	headKept         = "kept"         // the head fits the new embedding and stays in use
	headRestored     = "restored"     // a head set aside earlier fits again and is back in use
	headIncompatible = "incompatible" // set aside: kept on disk, used again with a model of its width
)

const (
	modelsDir     = "models"
	installedName = "installed.json"
	downloadGlob  = ".download-*.part"
)

// installed is <state_dir>/models/installed.json: the model file in use
// and the one before it (for rollback). Paths are absolute.
type installed struct {
	Version  int    `json:"version"`
	Current  string `json:"current"`
	Previous string `json:"previous,omitempty"`
}

func readInstalled(stateDir string) (installed, error) {
	path := filepath.Join(stateDir, modelsDir, installedName)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return installed{}, nil
	}
	if err != nil {
		return installed{}, err
	}
	var in installed
	if err := json.Unmarshal(data, &in); err != nil {
		return installed{}, fmt.Errorf("%s: %v", path, err)
	}
	if in.Version != 1 {
		return installed{}, fmt.Errorf("%s: version %d; this build reads version 1", path, in.Version)
	}
	return in, nil
}

func writeInstalled(stateDir string, in installed) error {
	in.Version = 1
	data, _ := json.MarshalIndent(in, "", " ")
	return writeAtomic(filepath.Join(stateDir, modelsDir, installedName), ".installed-*.tmp", data, 0o644)
}

// startModelPath is the model file to load at start: the one a model
// command installed, when there is one, else model.path.
func startModelPath(cfg Config, getenv func(string) string) (path string, err error) {
	if !cfg.Learning.Enabled {
		return cfg.Model.Path, nil
	}
	in, err := readInstalled(StateDir(cfg.Learning, getenv))
	if err != nil || in.Current == "" {
		return cfg.Model.Path, err
	}
	return in.Current, nil
}

// checkModelRequest checks a model command before anything is fetched.
func (l *learner) checkModelRequest(req *modelRequest) *cmdError {
	u, err := url.Parse(req.URL)
	switch {
	case req.URL == "":
		return invalid("url is empty; give the http:// or https:// address of the .tflite file")
	case err != nil:
		return invalid("url %q: %v", req.URL, err)
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return invalid("url %q: want an http:// or https:// address with a host", req.URL)
	}
	req.SHA256 = strings.ToLower(req.SHA256)
	if b, err := hex.DecodeString(req.SHA256); err != nil || len(b) != sha256.Size {
		return invalid("sha256 %q: want the file's SHA-256 as 64 hex digits (sha256sum prints it)", req.SHA256)
	}
	if max := l.a.cfg.Model.Updates.MaxBytes; req.Size < 1 || req.Size > max {
		return invalid("size %d: want the file's size in bytes, 1 to %d (model.updates.max_bytes)", req.Size, max)
	}
	for i, lb := range req.Labels {
		if lb == "" || !utf8Clean(lb) {
			return invalid("labels[%d] %q: want a non-empty name without control characters", i, lb)
		}
	}
	return nil
}

func utf8Clean(s string) bool { return checkID(s) == nil }

// startUpdate runs a model command on a goroutine of its own (the learner's
// wait group; ctx ends it); its reply goes out when it ends.
func (l *learner) startUpdate(ctx context.Context, c command, req modelRequest) *cmdError {
	if cur := l.a.Model(); cur.SHA256 == req.SHA256 {
		l.a.reply(c, ModelResult{Model: l.a.modelRef(cur), Path: cur.Path, Unchanged: true, Head: l.headStatus(cur.EmbeddingDim)}, nil)
		return nil
	}
	l.mu.Lock()
	cerr := l.busyLocked("model")
	if cerr == nil {
		l.updating = req.ID
	}
	l.mu.Unlock()
	if cerr != nil {
		return cerr
	}
	l.wg.Go(func() {
		res, cerr := l.update(ctx, req, c.group)
		l.mu.Lock()
		l.updating = ""
		l.mu.Unlock()
		if cerr != nil {
			running := l.a.modelRef(l.a.Model())
			l.a.event(Event{Kind: EventModelUpdateFailed, Message: cerr.msg, Model: &running,
				Update: &UpdateInfo{ID: req.ID, URL: req.URL, SHA256: req.SHA256, Size: req.Size, Group: c.group}})
			l.a.reply(c, nil, cerr)
			return
		}
		l.a.reply(c, res, nil)
	})
	return nil
}

// update downloads, checks, loads and swaps in the model req names.
func (l *learner) update(ctx context.Context, req modelRequest, group string) (ModelResult, *cmdError) {
	cfg := l.a.cfg.Model.Updates
	dir := filepath.Join(l.dir.Path(), modelsDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ModelResult{}, &cmdError{codeFailed, fmt.Sprintf("making %s: %v; nothing was replaced (fix the state directory's permissions or free space)", dir, err)}
	}
	removeDownloads(dir)
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	f, err := os.CreateTemp(dir, downloadGlob)
	if err != nil {
		return ModelResult{}, &cmdError{codeFailed, fmt.Sprintf("%v; nothing was replaced (free space in the state directory, or fix its permissions)", err)}
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	info := UpdateInfo{ID: req.ID, URL: req.URL, SHA256: req.SHA256, Size: req.Size, Group: group}
	nextReport := time.Time{}
	progress := func(n, _ int64) {
		if now := time.Now(); now.After(nextReport) || n == req.Size {
			nextReport = now.Add(time.Second)
			p := info
			p.Bytes = n
			l.a.event(Event{Kind: EventModelUpdateProgress, Message: fmt.Sprintf("downloaded %d of %d bytes", n, req.Size), Update: &p})
		}
	}
	l.log.Info("downloading a model", "url", req.URL, "size", req.Size, "sha256", req.SHA256, "group", group)
	// Fetch checks the size and sha256 and syncs the file before it returns.
	_, err = download.Fetch(ctx, download.Options{URL: req.URL, Size: req.Size, SHA256: req.SHA256,
		Stall: cfg.StallTimeout, Attempts: cfg.Attempts, Progress: progress,
		UserAgent: "shortcut-agent/" + buildinfo.Version + " (" + l.a.cfg.Device.ID + ")"}, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return ModelResult{}, &cmdError{codeFailed, fmt.Sprintf("model from %s: %v%s; the running model was kept and nothing was replaced", req.URL, err, updateSettings(err))}
	}
	path := filepath.Join(dir, req.SHA256[:16]+".tflite")
	if err := os.Chmod(tmp, 0o644); err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return ModelResult{}, &cmdError{codeFailed, fmt.Sprintf("%v; nothing was replaced (fix the state directory)", err)}
	}
	syncDir(dir)
	res, err := l.install(path, req.Labels, "model "+req.URL)
	if err != nil {
		if cur := l.a.Model(); cur.Path != path {
			os.Remove(path)
		}
		return ModelResult{}, &cmdError{codeFailed, fmt.Sprintf("model from %s: %v; the running model was kept and nothing was replaced", req.URL, err)}
	}
	info.Bytes = req.Size
	l.a.event(Event{Kind: EventModelUpdated, Message: "model updated from " + req.URL + "; head: " + res.Head, Path: path, Model: &res.Model, Update: &info})
	return res, nil
}

// install loads path beside the running model, checks it (labels, when
// given, must be the model's), records it as current (the running file as
// previous) and swaps it in. Files of models/ that are neither are removed.
func (l *learner) install(path string, labels []string, what string) (ModelResult, error) {
	a := l.a
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	prev := a.modelPath
	var head string
	c, err := a.replaceModelLocked(path, func(c Classifier) error {
		info := c.Info()
		if labels != nil && !slices.Equal(labels, info.Labels) {
			return fmt.Errorf("its labels are %q, the command expects %q; send the labels of this file, or leave them out", info.Labels, labels)
		}
		if err := writeInstalled(l.dir.Path(), installed{Current: path, Previous: prev}); err != nil {
			return fmt.Errorf("%v (free space in the state directory, or fix its permissions)", err)
		}
		head = l.headStatus(info.EmbeddingDim)
		return nil
	})
	if err != nil {
		return ModelResult{}, err
	}
	l.prune(path, prev)
	a.log.Info("model installed", "what", what, "path", path, "previous", prev, "head", head)
	return ModelResult{Model: a.modelRef(c.Info()), Path: path, Previous: prev, Head: head}, nil
}

// headStatus says what happens to the trained head with a model whose
// embedding is dim wide.
func (l *learner) headStatus(dim int) string {
	l.mu.Lock()
	parked, loaded := l.parked, l.loaded.Head
	l.mu.Unlock()
	ah := l.a.head.Load()
	switch {
	case ah != nil && ah.h.Dim() == dim:
		return headKept
	case ah != nil:
		return headIncompatible
	case parked != nil && parked.h.Dim() == dim:
		return headRestored
	case parked != nil:
		return headIncompatible
	}
	if loaded != nil && loaded.Dim() != dim {
		return headIncompatible // read at start, never fitted a model yet
	}
	return headNone
}

// prune removes the model files of models/ that are neither current nor
// previous, and downloads left by a crash.
func (l *learner) prune(current, previous string) {
	dir := filepath.Join(l.dir.Path(), modelsDir)
	files, _ := filepath.Glob(filepath.Join(dir, "*.tflite"))
	for _, f := range files {
		if f != current && f != previous {
			if err := os.Remove(f); err != nil {
				l.log.Warn("removing an old model file", "path", f, "err", err)
			}
		}
	}
	removeDownloads(dir)
}

func removeDownloads(dir string) {
	tmps, _ := filepath.Glob(filepath.Join(dir, downloadGlob))
	for _, t := range tmps {
		os.Remove(t)
	}
}

// rollback swaps the previous model file back in (it becomes current, and
// the file it replaces previous, so a second rollback undoes the first).
func (l *learner) rollback() (ModelResult, *cmdError) {
	in, err := readInstalled(l.dir.Path())
	if err != nil {
		return ModelResult{}, &cmdError{codeFailed, fmt.Sprintf("%v; move the file aside to start afresh with model.path", err)}
	}
	if in.Previous == "" {
		return ModelResult{}, invalid("there is no previous model to roll back to: no model command has replaced %q on this device", l.a.cfg.Model.Path)
	}
	l.mu.Lock()
	cerr := l.busyLocked("rollback")
	l.mu.Unlock()
	if cerr != nil {
		return ModelResult{}, cerr
	}
	res, err := l.install(in.Previous, nil, "rollback")
	if err != nil {
		return ModelResult{}, &cmdError{codeFailed, fmt.Sprintf("rollback to %q: %v; the running model was kept", in.Previous, err)}
	}
	res.RolledBack = true
	l.a.event(Event{Kind: EventModelRolledBack, Message: "rolled back to " + res.Path + "; head: " + res.Head, Path: res.Path, Model: &res.Model})
	return res, nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// trialRun runs c once on a mid-grey input and checks that it gives one
// finite score per label: a model that loads but cannot classify never
// replaces a working one.
func trialRun(c Classifier) error {
	s := c.NewSession()
	in := s.Input()
	for i := range in {
		in[i] = 0.5
	}
	scores, err := s.Run()
	if err != nil {
		return fmt.Errorf("trial run: %w", err)
	}
	if n := len(c.Info().Labels); len(scores) != n {
		return fmt.Errorf("trial run: %d scores for %d labels", len(scores), n)
	}
	for i, v := range scores {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("trial run: score %d is %v", i, v)
		}
	}
	return nil
}

// updateSettings names the model.updates settings behind a failed download, for the reply.
func updateSettings(err error) string {
	var names []string
	if errors.Is(err, context.DeadlineExceeded) {
		names = append(names, "model.updates.timeout")
	}
	if errors.Is(err, download.ErrGaveUp) {
		names = append(names, "model.updates.attempts")
	}
	if errors.Is(err, download.ErrStalled) {
		names = append(names, "model.updates.stall_timeout")
	}
	if len(names) == 0 {
		return ""
	}
	return " (settings: " + strings.Join(names, ", ") + ")"
}
