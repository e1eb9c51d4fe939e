package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/shortcut-edge/shortcut/agent/head"
	"github.com/shortcut-edge/shortcut/agent/publish"
	"github.com/shortcut-edge/shortcut/agent/web"
)

// Commands arrive on <prefix>/<device>/cmd/<name> and are answered on
// <prefix>/<device>/reply/<name> (PAYLOADS.md). Every payload is checked
// before anything changes: size, JSON syntax, unknown fields, value ranges,
// labels.

// MaxCommandBytes bounds a command payload.
const MaxCommandBytes = 64 << 10

// Command names.
const (
	CmdLearn  = "learn"
	CmdForget = "forget"
	CmdLabels = "labels"
	CmdTrain  = "train"
	CmdReset  = "reset"
	CmdExport = "export"
	CmdImport = "import"
)

var commandNames = []string{CmdLearn, CmdForget, CmdLabels, CmdTrain, CmdReset, CmdExport, CmdImport, CmdModel, CmdRollback}

// Reply error codes.
const (
	codeInvalid        = "invalid"         // the payload is wrong; fix it and send again
	codeUnknownCommand = "unknown_command" // no such command
	codeBusy           = "busy"            // conflicts with something running; try later
	codeUnavailable    = "unavailable"     // learning cannot run (model, state directory)
	codeFailed         = "failed"          // it was tried and failed
	codeDuplicate      = "duplicate"       // this command's id was received before; nothing done
)

type cmdError struct {
	code string // "" for a warning: the change is live, but not on disk
	msg  string
}

// notSaved is the answer when a change is in use but its save failed: the
// command did what it was asked, with a warning. what is the subject with
// its verb ("the examples are", "the head is").
func notSaved(what string, err error) *cmdError {
	return &cmdError{"", what + " in use but not saved: " + err.Error() +
		"; a restart would lose it unless a later change saves (free space in the state directory, or fix its permissions)"}
}

// command is one request, from MQTT, HTTP or the GPIO button.
type command struct {
	name    string
	payload []byte
	from    string // "mqtt", "http" or "button"
	// group is the fleet group whose topic carried the command ("" when
	// it was sent to this device alone).
	group string
	// reply, when not nil, also gets the answer (capacity 1): the HTTP
	// handler waiting to write it.
	reply chan<- Reply
}

// Requests. Optional numbers are pointers so that an omitted field takes
// its default while an explicit 0 is checked.
type learnRequest struct {
	ID         string `json:"id"`
	Label      string `json:"label"`
	Count      *int   `json:"count"`
	IntervalMS *int   `json:"interval_ms"`
	Camera     string `json:"camera"`
}

// forgetRequest names a label (every example of it) or one example (an id
// from GET /api/v1/labels or the labels of the page), never both.
type forgetRequest struct {
	ID      string `json:"id"`
	Label   string `json:"label"`
	Example string `json:"example"`
}

type plainRequest struct {
	ID string `json:"id"`
}

type importRequest struct {
	ID   string `json:"id"`
	Path string `json:"path"`
}

// Defaults for learn.
const (
	defaultLearnCount    = 10
	defaultLearnInterval = 250 // ms
	maxLearnInterval     = 60000
	maxIDBytes           = 128
)

// decodeRequest parses a payload strictly into v: one JSON object, no
// unknown fields. An empty payload is {}.
func decodeRequest(payload []byte, v any) error {
	if len(bytes.TrimSpace(payload)) == 0 {
		payload = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return fmt.Errorf("payload is not valid JSON (at byte %d): %v; send an object such as {\"id\": \"1\"}", se.Offset, err)
		case errors.As(err, &te):
			return fmt.Errorf("field %q: want a %v, got JSON %s", te.Field, te.Type, te.Value)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return fmt.Errorf("payload is not valid JSON: it ends too early")
		}
		return fmt.Errorf("payload: %v", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return fmt.Errorf("payload holds more than one JSON value; send one object")
	}
	return nil
}

// peekID reads "id" from a payload that may be invalid otherwise, so that
// even a refused command is answered with its id.
func peekID(payload []byte) string {
	if len(payload) > MaxCommandBytes {
		return ""
	}
	var v struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(payload, &v) != nil || checkID(v.ID) != nil {
		return ""
	}
	return v.ID
}

func checkID(id string) error {
	if len(id) > maxIDBytes {
		return fmt.Errorf("id is %d bytes; the limit is %d", len(id), maxIDBytes)
	}
	if !utf8.ValidString(id) || strings.IndexFunc(id, unicode.IsControl) >= 0 {
		return fmt.Errorf("id %q holds control characters or invalid UTF-8", id)
	}
	return nil
}

func invalid(format string, args ...any) *cmdError {
	return &cmdError{codeInvalid, fmt.Sprintf(format, args...)}
}

// handle checks and runs one command on the learner's goroutine; learn and
// train continue on goroutines of their own and reply when they end.
func (l *learner) handle(ctx context.Context, c command) {
	if len(c.payload) > MaxCommandBytes {
		l.a.reply(c, nil, invalid("payload is %d bytes; the limit is %d", len(c.payload), MaxCommandBytes))
		return
	}
	var (
		result any
		cerr   *cmdError
	)
	parse := func(v any, id *string) bool {
		if err := decodeRequest(c.payload, v); err != nil {
			cerr = invalid("%s: %v", c.name, err)
			return false
		}
		if err := checkID(*id); err != nil {
			cerr = invalid("%v", err)
			return false
		}
		return true
	}
	label := func(lb string) bool {
		if err := l.checkLabel(lb); err != nil {
			cerr = invalid("%v", err)
			return false
		}
		return true
	}
	// once lets a command that discards state run at most once per id.
	once := func(id string) bool {
		cerr = l.once(c.name, id)
		return cerr == nil
	}
	if c.group != "" && !slices.Contains(groupCommands, c.name) {
		l.a.reply(c, nil, invalid("%s cannot be sent to a group (group %q); the group commands are %s: send %s to the device's own topic",
			c.name, c.group, strings.Join(groupCommands, ", "), c.name))
		return
	}
	switch c.name {
	case CmdModel:
		var req modelRequest
		if !parse(&req, &req.ID) {
			break
		}
		if cerr = l.checkModelRequest(&req); cerr != nil || !once(req.ID) {
			break
		}
		if cerr = l.startUpdate(ctx, c, req); cerr == nil {
			return // replies when done
		}
	case CmdRollback:
		var req plainRequest
		if parse(&req, &req.ID) && once(req.ID) {
			result, cerr = l.rollback()
		}
	case CmdLearn:
		var req learnRequest
		if !parse(&req, &req.ID) || !label(req.Label) {
			break
		}
		if cerr = l.checkLearn(&req); cerr != nil {
			break
		}
		if cerr = l.startLearn(ctx, c, req); cerr == nil {
			return // replies when done
		}
	case CmdTrain:
		var req plainRequest
		if !parse(&req, &req.ID) {
			break
		}
		if cerr = l.startTrain(ctx, c); cerr == nil {
			return
		}
	case CmdForget:
		var req forgetRequest
		switch {
		case !parse(&req, &req.ID):
		case req.Example != "" && req.Label != "":
			cerr = invalid("forget: give a label (all its examples) or an example (one), not both")
		case req.Example != "":
			if err := checkExampleID(req.Example); err != nil {
				cerr = invalid("forget: %v", err)
			} else if once(req.ID) {
				result, cerr = l.forgetExample(req.Example)
			}
		case label(req.Label) && once(req.ID):
			result, cerr = l.forget(req.Label)
		}
	case CmdLabels:
		var req plainRequest
		if parse(&req, &req.ID) {
			result, cerr = l.labels()
		}
	case CmdReset:
		var req plainRequest
		if parse(&req, &req.ID) && once(req.ID) {
			result, cerr = l.reset()
		}
	case CmdExport:
		var req plainRequest
		if parse(&req, &req.ID) {
			result, cerr = l.export()
		}
	case CmdImport:
		var req importRequest
		if parse(&req, &req.ID) && once(req.ID) {
			result, cerr = l.importHead(req.Path)
		}
	default:
		cerr = &cmdError{codeUnknownCommand, fmt.Sprintf("unknown command %q; the commands are %s", c.name, strings.Join(commandNames, ", "))}
	}
	var warn string
	switch {
	case cerr != nil && cerr.code == "":
		warn, cerr = cerr.msg, nil
	case cerr != nil:
		result = nil // a refused command has no result
	}
	l.a.replyWarn(c, result, cerr, warn)
}

// checkLabel takes a label from a command: a new name must pass
// head.ValidateLabel; a label the agent already knows (one of the model's,
// the head's or the stored examples') is taken as it is, so that the
// model's own classes ("T-shirt/top") can be taught and forgotten.
func (l *learner) checkLabel(label string) error {
	err := head.ValidateLabel(label)
	if err == nil || head.CheckLabel(label) != nil {
		return err
	}
	if slices.Contains(l.a.Model().Labels, label) {
		return nil
	}
	if ah := l.a.head.Load(); ah != nil && slices.Contains(ah.labels, label) {
		return nil
	}
	l.mu.Lock()
	store := l.store
	l.mu.Unlock()
	if store != nil && slices.ContainsFunc(store.Counts(), func(lc head.LabelCount) bool { return lc.Label == label }) {
		return nil
	}
	return err
}

// once admits a command that discards state (forget, reset, import) the
// first time its id comes, and refuses it afterwards. MQTT may deliver a
// message more than once: a broker replays a retained command at every
// (re)subscription, a bridge between brokers forwards such replays as
// live messages (without the retain flag the agent could ignore), and
// QoS 1 is at-least-once. So these commands need an id, and the ids seen
// are kept in the state directory (commandIDs) across restarts.
func (l *learner) once(name, id string) *cmdError {
	if id == "" {
		return invalid("%s needs an \"id\", new for every request (a timestamp, a counter or a UUID): "+
			"the agent runs each %s id once, so that a message delivered again (a retained message, a broker bridge) cannot %s twice",
			name, name, name)
	}
	first, err := l.ids.admit(name, id, time.Now())
	switch {
	case err != nil:
		return &cmdError{codeFailed, fmt.Sprintf("%v; nothing was done (free space in the state directory, or fix its permissions, and send the command again)", err)}
	case !first.IsZero():
		l.log.Warn("a command id came again; not run twice", "command", name, "id", id, "first", first)
		return &cmdError{codeDuplicate, fmt.Sprintf("%s id %q was received before; a command that discards state runs once per id, "+
			"because MQTT may deliver a message again (a retained message, a broker bridge). Nothing was done; send a new id to %s again",
			name, id, name)}
	}
	return nil
}

// checkLearn fills learn's defaults and checks its ranges.
func (l *learner) checkLearn(req *learnRequest) *cmdError {
	if req.Count == nil {
		n := min(defaultLearnCount, l.cfg.MaxCount)
		req.Count = &n
	}
	if req.IntervalMS == nil {
		n := defaultLearnInterval
		req.IntervalMS = &n
	}
	if *req.Count < 1 || *req.Count > l.cfg.MaxCount {
		return invalid("count %d: want 1 to %d (learning.max_count)", *req.Count, l.cfg.MaxCount)
	}
	if *req.IntervalMS < 0 || *req.IntervalMS > maxLearnInterval {
		return invalid("interval_ms %d: want 0 (every frame) to %d", *req.IntervalMS, maxLearnInterval)
	}
	if req.Camera == "" {
		req.Camera = l.a.cams[0].cfg.ID
	}
	return nil
}

// export writes the model with the active head merged in, as .tflite, into
// the state directory.
func (l *learner) export() (ExportResult, *cmdError) {
	store, cerr := l.ready()
	if cerr != nil {
		return ExportResult{}, cerr
	}
	ah := l.a.head.Load()
	if ah == nil {
		return ExportResult{}, &cmdError{codeInvalid, "no trained head is in use; train first (the model file itself is the export of its own head)"}
	}
	hm, ok := l.a.model.Load().c.(HeadModel)
	if !ok {
		return ExportResult{}, &cmdError{codeUnavailable, "this model cannot be exported (it is not a .tflite model)"}
	}
	var calib [][]float32
	for _, le := range store.Snapshot().Labels {
		calib = append(calib, le.Embeddings...)
	}
	data, err := hm.ExportHead(ah.h, calib)
	if err != nil {
		return ExportResult{}, &cmdError{codeFailed, err.Error()}
	}
	path := filepath.Join(l.dir.Path(), "export-"+ah.version+".tflite")
	if err := writeAtomic(path, ".export-*.tmp", data, 0o644); err != nil {
		return ExportResult{}, &cmdError{codeFailed, "export: " + err.Error()}
	}
	sha, n, err := fileSHA256(path)
	if err != nil {
		return ExportResult{}, &cmdError{codeFailed, err.Error()}
	}
	l.log.Info("exported the model with the trained head", "path", path, "sha256", sha)
	return ExportResult{Path: path, SHA256: sha, Bytes: n, HeadVersion: ah.version, Labels: ah.labels}, nil
}

// writeAtomic replaces path with data through a temporary file (named by
// pattern, in the same directory): write, fsync, rename, fsync the
// directory. Readers see the old file or the new one, never a part.
func writeAtomic(path, pattern string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return fmt.Errorf("writing %q: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, perm)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %q: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// maxImportBytes bounds a model file named by import.
const maxImportBytes = 1 << 30

// importHead makes the classifier of a .tflite file under the state
// directory (an earlier export) the active head, after checking that the
// file's backbone is the running model's: both must give the same
// embedding for the same input.
func (l *learner) importHead(p string) (ImportResult, *cmdError) {
	if _, cerr := l.ready(); cerr != nil {
		return ImportResult{}, cerr
	}
	l.mu.Lock()
	cerr := l.busyLocked("import")
	l.mu.Unlock()
	if cerr != nil {
		return ImportResult{}, cerr
	}
	path, cerr := l.underStateDir(p)
	if cerr != nil {
		return ImportResult{}, cerr
	}
	c, err := l.a.opt.LoadModel(path)
	if err != nil {
		return ImportResult{}, invalid("%v", err)
	}
	hm, ok := c.(HeadModel)
	if !ok {
		return ImportResult{}, &cmdError{codeUnavailable, fmt.Sprintf("%q: its classifier cannot be read", path)}
	}
	cur := l.a.model.Load()
	if err := sameBackbone(cur.c, c); err != nil {
		return ImportResult{}, invalid("%q: %v; import only exports made from the running model", path, err)
	}
	h, err := hm.BaseHead()
	if err != nil {
		return ImportResult{}, invalid("%v", err)
	}
	l.mu.Lock()
	if cerr := l.busyLocked("import"); cerr != nil {
		l.mu.Unlock()
		return ImportResult{}, cerr
	}
	ah := newActiveHead(h)
	l.a.setHead(ah)
	l.mu.Unlock()
	l.log.Info("head imported", "path", path, "head", ah.version, "labels", ah.labels)
	l.a.event(Event{Kind: EventHeadImported, Message: "head " + ah.version + " imported from " + path, Path: path, Head: headInfo(ah)})
	res := ImportResult{Path: path, Head: headInfo(ah)}
	if err := l.save(); err != nil {
		return res, notSaved("the imported head is", err)
	}
	return res, nil
}

// underStateDir resolves p (relative to the state directory, or absolute)
// and refuses anything outside the directory, symbolic links included.
func (l *learner) underStateDir(p string) (string, *cmdError) {
	if p == "" {
		return "", invalid("path is empty; give a .tflite file in %s, such as the path an export replied", l.dir.Path())
	}
	if len(p) > 4096 || strings.ContainsRune(p, 0) {
		return "", invalid("path is not a usable file name")
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(l.dir.Path(), p)
	}
	root, err := filepath.EvalSymlinks(l.dir.Path())
	if err != nil {
		return "", &cmdError{codeFailed, err.Error()}
	}
	real, err := filepath.EvalSymlinks(filepath.Clean(p))
	if err != nil {
		return "", invalid("path %q: %v", p, errors.Unwrap(err))
	}
	rel, err := filepath.Rel(root, real)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", invalid("path %q is outside the state directory %s; import reads only files there", p, l.dir.Path())
	}
	if !strings.HasSuffix(real, ".tflite") {
		return "", invalid("path %q is not a .tflite file", p)
	}
	st, err := os.Stat(real)
	if err != nil || !st.Mode().IsRegular() || st.Size() > maxImportBytes {
		return "", invalid("path %q is not a regular file of at most %d bytes", p, maxImportBytes)
	}
	return real, nil
}

// sameBackbone runs both models on one fixed pseudo-random input and
// compares their embeddings: an export made from the running model gives
// exactly the same (only its classifier differs).
func sameBackbone(a, b Classifier) error {
	ia, ib := a.Info(), b.Info()
	if ia.Height != ib.Height || ia.Width != ib.Width || ia.Channels != ib.Channels || ia.EmbeddingDim != ib.EmbeddingDim {
		return fmt.Errorf("input %dx%dx%d / embedding %d differ from the running model's %dx%dx%d / %d",
			ib.Height, ib.Width, ib.Channels, ib.EmbeddingDim, ia.Height, ia.Width, ia.Channels, ia.EmbeddingDim)
	}
	var embs [2][]float32
	for i, c := range []Classifier{a, b} {
		s := c.NewSession()
		es, ok := s.(EmbeddingSession)
		if !ok {
			return fmt.Errorf("no embedding output")
		}
		r := rand.New(rand.NewPCG(7, 11)) // the same input for both
		for k := range s.Input() {
			s.Input()[k] = float32(r.Float64()*2 - 1)
		}
		if _, err := s.Run(); err != nil {
			return err
		}
		embs[i] = append([]float32(nil), es.Embedding()...)
	}
	var scale float64
	for _, v := range embs[0] {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	for k := range embs[0] {
		if math.Abs(float64(embs[0][k]-embs[1][k])) > 1e-5*(1+scale) {
			return fmt.Errorf("its backbone gives another embedding than the running model (value %d: %g vs %g)", k, embs[1][k], embs[0][k])
		}
	}
	return nil
}

// reply publishes a command's answer on reply/<name>.
func (a *Agent) reply(c command, result any, cerr *cmdError) { a.replyWarn(c, result, cerr, "") }

func (a *Agent) replyWarn(c command, result any, cerr *cmdError, warn string) {
	r := Reply{Time: stamp(time.Now()), Device: a.cfg.Device.ID, Command: c.name, ID: peekID(c.payload), OK: cerr == nil, Warning: warn}
	res := "ok"
	if cerr != nil {
		r.Code, r.Error, res = cerr.code, cerr.msg, cerr.code
		a.log.Warn("command refused or failed", "command", c.name, "from", c.from, "code", cerr.code, "err", cerr.msg)
	}
	if result != nil {
		r.Result = mustJSON(result)
	}
	if c.reply != nil {
		select {
		case c.reply <- r:
		default:
		}
	}
	a.hub.Publish(web.TypeReply, r)
	name := c.name
	if !contains(commandNames, name) {
		name = "unknown" // keep the metric's label set bounded
	}
	a.met.commands.WithLabelValues(name, res).Inc()
	if a.pub == nil || !topicLevelOK(c.name) {
		return
	}
	a.pub.EnqueueWait(publish.Message{Kind: "reply", Topic: a.topics.Reply(c.name), Payload: mustJSON(r)}, 2*time.Second)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// topicLevelOK says whether s can be one level of a topic we publish.
func topicLevelOK(s string) bool {
	return s != "" && len(s) <= 64 && utf8.ValidString(s) && !strings.ContainsAny(s, "/#+\x00")
}

// commandIDs remembers, in <state_dir>/commands.json, the (command, id)
// pairs of the commands that discard state, for commandIDWindow (at most
// maxCommandIDs of them, the oldest forgotten first), so that a repeated
// delivery is refused even after a restart. An id is taken when the command
// is admitted, before it runs: a command refused afterwards (busy, a bad
// label) has used its id too, and a crash cannot let a repeat through.
// Only the learner's goroutine uses it.
type commandIDs struct {
	path  string
	limit int           // maxCommandIDs
	seen  []seenCommand // oldest first
}

type seenCommand struct {
	Command string    `json:"command"`
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
}

type commandIDsFile struct {
	Version  int           `json:"version"`
	Commands []seenCommand `json:"commands"`
}

const (
	commandIDsName   = "commands.json"
	commandIDWindow  = 30 * 24 * time.Hour
	maxCommandIDs    = 1000
	maxCommandIDFile = 1 << 20
)

// loadCommandIDs reads dir's commands.json. A missing file is an empty
// list; a damaged one is an error (the caller logs it and starts empty:
// the file is rewritten by the next command that discards state).
func loadCommandIDs(dir string) (*commandIDs, error) {
	c := &commandIDs{path: filepath.Join(dir, commandIDsName), limit: maxCommandIDs}
	if tmps, err := filepath.Glob(filepath.Join(dir, ".commands-*.tmp")); err == nil {
		for _, t := range tmps { // left by a crash mid-write
			os.Remove(t)
		}
	}
	f, err := os.Open(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("command ids %s: %w", c.path, err)
	}
	defer f.Close()
	var file commandIDsFile
	dec := json.NewDecoder(io.LimitReader(f, maxCommandIDFile))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		return c, fmt.Errorf("command ids %s: %v", c.path, err)
	}
	if file.Version != 1 {
		return c, fmt.Errorf("command ids %s: version %d; this build reads version 1", c.path, file.Version)
	}
	c.seen = file.Commands
	slices.SortStableFunc(c.seen, func(a, b seenCommand) int { return a.Time.Compare(b.Time) })
	return c, nil
}

// admit records (command, id) at now and saves the list. It returns the
// time the pair was first received when it was seen before (nothing is
// recorded then), else the zero time. When saving fails, nothing is
// recorded and the command must not run.
func (c *commandIDs) admit(command, id string, now time.Time) (first time.Time, err error) {
	cut := 0
	for cut < len(c.seen) && (now.Sub(c.seen[cut].Time) > commandIDWindow || len(c.seen)-cut >= c.limit) {
		cut++
	}
	kept := c.seen[cut:]
	for _, s := range kept {
		if s.Command == command && s.ID == id {
			return s.Time, nil
		}
	}
	next := append(slices.Clone(kept), seenCommand{Command: command, ID: id, Time: now.UTC()})
	data, err := json.MarshalIndent(commandIDsFile{Version: 1, Commands: next}, "", " ")
	if err == nil {
		err = writeAtomic(c.path, ".commands-*.tmp", data, 0o600)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("recording %s id %q: %w", command, id, err)
	}
	c.seen = next
	return time.Time{}, nil
}
