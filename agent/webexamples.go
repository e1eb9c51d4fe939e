package agent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // uploaded photos: JPEG
	_ "image/png"  // and PNG
	"io"
	"math"
	"mime"
	"net/http"
	"strings"
	"time"

	"golang.org/x/image/draw"

	"github.com/shortcut-edge/shortcut/agent/capture"
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
	maxPhotoPixels     = 50_000_000
	maxUploadFieldSize = 4 << 10
	// uploadReadTime replaces http.read_timeout for an upload's body: a
	// phone on a weak link sends tens of megabytes slowly.
	uploadReadTime = 5 * time.Minute
)

// UploadResult is the result of POST /api/v1/examples.
type UploadResult struct {
	Label   string   `json:"label"`
	Camera  string   `json:"camera"` // whose preprocessing (fit) the photos went through
	Added   int      `json:"added"`
	Dropped int      `json:"dropped"` // older examples dropped as the label filled up
	Total   int      `json:"total"`
	Files   []string `json:"files"`
}

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
		a.web.publish(webReply, rep)
		writeJSON(w, status, rep)
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

// decodePhoto decodes a JPEG or PNG photo, refusing anything else and
// anything that claims more than maxPhotoPixels before decoding it. The
// orientation is the JPEG's EXIF orientation (1 to 8; 1 when it has none):
// a phone stores a portrait photo as a landscape picture and this tag.
func decodePhoto(b []byte) (image.Image, int, error) {
	img, err := decodePicture(b)
	if err != nil {
		return nil, 0, err
	}
	return img, exifOrientation(b), nil
}

func decodePicture(b []byte) (image.Image, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("not a JPEG or PNG picture (%v)", err)
	}
	if format != "jpeg" && format != "png" {
		return nil, fmt.Errorf("a %s picture; send JPEG or PNG", format)
	}
	if cfg.Width < 1 || cfg.Height < 1 || int64(cfg.Width)*int64(cfg.Height) > maxPhotoPixels {
		return nil, fmt.Errorf("%dx%d pixels; want at most %d pixels", cfg.Width, cfg.Height, maxPhotoPixels)
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("the %s picture does not decode: %v", format, err)
	}
	return img, nil
}

// photoInput turns a photo into the model's input as the camera's
// preprocessing turns a frame: its fit (crop, letterbox, stretch) and the
// model's normalization, without its region of interest (which is in the
// camera's pixels, not the photo's). A photo much larger than the input is
// first scaled down with an averaging filter, as the cameras' OpenCV
// preprocessing does (INTER_AREA), so that the bilinear step samples no
// isolated pixels of a 12-megapixel photo.
func photoInput(dst []float32, img image.Image, orientation int, pc PreprocessConfig, info ModelInfo) error {
	pc.ROI = nil
	cw, ch := info.Width, info.Height
	if info.ContentHeight > 0 && info.ContentWidth > 0 && info.ContentHeight <= ch && info.ContentWidth <= cw {
		cw, ch = info.ContentWidth, info.ContentHeight
	}
	b := img.Bounds()
	if orientation >= 5 { // shown turned by a quarter: fit the stored picture to the input turned
		cw, ch = ch, cw
	}
	sx, sy := float64(cw)/float64(b.Dx()), float64(ch)/float64(b.Dy())
	switch pc.Fit {
	case FitStretch:
	case FitLetterbox:
		sx = min(sx, sy)
		sy = sx
	default:
		sx = max(sx, sy)
		sy = sx
	}
	if sx < 1 || sy < 1 {
		tw := max(1, int(math.Round(float64(b.Dx())*min(sx, 1))))
		th := max(1, int(math.Round(float64(b.Dy())*min(sy, 1))))
		small := image.NewRGBA(image.Rect(0, 0, tw, th))
		draw.CatmullRom.Scale(small, small.Bounds(), img, b, draw.Src, nil)
		img = small
	}
	return applyPreprocess(pc, dst, orient(img, orientation), info)
}

// exifOrientation reads the orientation tag (0x0112) of a JPEG's EXIF
// block; 1 (as stored) when there is none or it cannot be read.
func exifOrientation(b []byte) int {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return 1
	}
	for i := 2; i+4 <= len(b) && b[i] == 0xFF; {
		marker, n := b[i+1], int(b[i+2])<<8|int(b[i+3])
		if marker == 0xDA || n < 2 || i+2+n > len(b) { // the picture's data starts: no more headers
			return 1
		}
		seg := b[i+4 : i+2+n]
		if marker == 0xE1 && len(seg) >= 14 && string(seg[:6]) == "Exif\x00\x00" {
			return tiffOrientation(seg[6:])
		}
		i += 2 + n
	}
	return 1
}

func tiffOrientation(t []byte) int {
	var u16 func([]byte) uint16
	var u32 func([]byte) uint32
	switch string(t[:2]) {
	case "II":
		u16, u32 = binary.LittleEndian.Uint16, binary.LittleEndian.Uint32
	case "MM":
		u16, u32 = binary.BigEndian.Uint16, binary.BigEndian.Uint32
	default:
		return 1
	}
	ifd := int64(u32(t[4:8]))
	if ifd < 8 || ifd+2 > int64(len(t)) {
		return 1
	}
	count := int64(u16(t[ifd:]))
	for k := int64(0); k < count; k++ {
		e := ifd + 2 + 12*k
		if e+12 > int64(len(t)) {
			return 1
		}
		if u16(t[e:]) == 0x0112 && u16(t[e+2:]) == 3 { // orientation, a SHORT
			if o := int(u16(t[e+8:])); o >= 1 && o <= 8 {
				return o
			}
			return 1
		}
	}
	return 1
}

// orient turns a picture stored with an EXIF orientation the way it is
// meant to be seen (2 to 8; 1 is as stored).
func orient(img image.Image, o int) image.Image {
	if o <= 1 || o > 8 {
		return img
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	out := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for y := range dh {
		for x := range dw {
			var sx, sy int
			switch o {
			case 2: // mirrored
				sx, sy = w-1-x, y
			case 3: // upside down
				sx, sy = w-1-x, h-1-y
			case 4: // mirrored upside down
				sx, sy = x, h-1-y
			case 5: // mirrored, turned a quarter left
				sx, sy = y, x
			case 6: // turned a quarter right to be seen
				sx, sy = y, h-1-x
			case 7:
				sx, sy = w-1-y, h-1-x
			case 8: // turned a quarter left to be seen
				sx, sy = w-1-y, x
			}
			out.Set(x, y, img.At(b.Min.X+sx, b.Min.Y+sy))
		}
	}
	return out
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
		img, orientation, err := decodePhoto(b)
		if err == nil {
			err = photoInput(sess.Input(), img, orientation, cam.cfg.Preprocess, info)
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

// applyPreprocess is the pure-Go preprocessing of an image frame
// (capture.Apply, as the pipeline runs it).
func applyPreprocess(pc PreprocessConfig, dst []float32, img image.Image, info ModelInfo) error {
	return capture.Apply(pc, dst, img, info)
}
