package camera

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Kind says which backend reads a source.
type Kind int

const (
	KindDevice    Kind = iota + 1 // V4L2 camera: an index ("0") or a node ("/dev/video0")
	KindFile                      // video file read by OpenCV (FFmpeg)
	KindImages                    // folder or glob of still images, in name order
	KindRTSP                      // rtsp:// or rtsps:// stream read by OpenCV (FFmpeg)
	KindHTTP                      // http(s):// MJPEG stream (multipart/x-mixed-replace), read in Go
	KindGStreamer                 // raw GStreamer pipeline ending in appsink
)

func (k Kind) String() string {
	switch k {
	case KindDevice:
		return "device"
	case KindFile:
		return "file"
	case KindImages:
		return "images"
	case KindRTSP:
		return "rtsp"
	case KindHTTP:
		return "http-mjpeg"
	case KindGStreamer:
		return "gstreamer"
	}
	return "unknown"
}

// Spec is a parsed source string. See the package documentation for the syntax.
type Spec struct {
	Raw  string // the string it was parsed from
	Kind Kind

	Device int    // device index, or -1 when Path names the device node
	Path   string // device node, video file, image folder or glob
	URL    string // rtsp, http(s)
	// Pipeline is the GStreamer pipeline, handed to OpenCV unchanged.
	Pipeline string

	Loop bool // file, images: start again at the end instead of ending

	// Device options, applied after opening; zero leaves the driver's choice.
	Width, Height int
	FPS           float64
	FourCC        string
}

// Live reports whether the source runs in real time (a camera or a stream),
// as opposed to a file or folder that is read as fast as it is asked for.
func (s Spec) Live() bool {
	return s.Kind != KindFile && s.Kind != KindImages
}

const supportedSources = `0, /dev/video0[?width=&height=&fps=&fourcc=], file:PATH[?loop=1], PATH.avi|.mp4|..., ` +
	`images:DIR or images:GLOB[?loop=1], rtsp://..., http(s)://... (MJPEG), gst:PIPELINE ! appsink`

// ParseSource parses a source string. It checks syntax only; whether the file,
// folder or device exists is checked when the source is opened.
func ParseSource(s string) (Spec, error) {
	raw := s
	s = strings.TrimSpace(s)
	spec := Spec{Raw: raw, Device: -1}
	fail := func(format string, args ...any) (Spec, error) {
		return Spec{}, fmt.Errorf("camera source %q: %s (supported: %s)", raw, fmt.Sprintf(format, args...), supportedSources)
	}
	if s == "" {
		return fail("empty source")
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 {
			return fail("negative device index %d", n)
		}
		spec.Kind, spec.Device = KindDevice, n
		return spec, nil
	}
	lower := strings.ToLower(s)
	switch {
	case strings.HasPrefix(lower, "gst:"):
		p := strings.TrimSpace(s[len("gst:"):])
		if p == "" {
			return fail("empty GStreamer pipeline")
		}
		if !strings.Contains(p, "appsink") {
			return fail("GStreamer pipeline must end in appsink, e.g. gst:videotestsrc ! videoconvert ! appsink")
		}
		spec.Kind, spec.Pipeline = KindGStreamer, p
		return spec, nil
	case strings.HasPrefix(lower, "rtsp://"), strings.HasPrefix(lower, "rtsps://"):
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return fail("malformed RTSP URL")
		}
		spec.Kind, spec.URL = KindRTSP, s
		return spec, nil
	case strings.HasPrefix(lower, "http://"), strings.HasPrefix(lower, "https://"):
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return fail("malformed HTTP URL")
		}
		spec.Kind, spec.URL = KindHTTP, s
		return spec, nil
	case strings.HasPrefix(lower, "file:"):
		return parsePathSource(spec, KindFile, s[len("file:"):], fail)
	case strings.HasPrefix(lower, "images:"):
		return parsePathSource(spec, KindImages, s[len("images:"):], fail)
	case strings.HasPrefix(lower, "v4l2:"):
		return parsePathSource(spec, KindDevice, s[len("v4l2:"):], fail)
	case strings.HasPrefix(s, "/dev/"):
		return parsePathSource(spec, KindDevice, s, fail)
	}
	if i := strings.Index(s, "://"); i > 0 {
		return fail("unsupported URL scheme %q", s[:i])
	}
	if i := strings.Index(s, ":"); i > 1 && isScheme(s[:i]) {
		return fail("unknown prefix %q", s[:i+1])
	}
	// A plain path: a folder, a glob or an image is a still-image source,
	// anything else a video file.
	path, _, _ := splitQuery(s)
	kind := KindFile
	if strings.ContainsAny(path, "*?[") || isImageFile(path) {
		kind = KindImages
	} else if st, err := os.Stat(path); err == nil && st.IsDir() {
		kind = KindImages
	}
	return parsePathSource(spec, kind, s, fail)
}

func isScheme(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// splitQuery splits "path?k=v&k2=v2". A '?' not followed by key=value pairs
// belongs to the path (a glob may use '?').
func splitQuery(s string) (path string, q url.Values, err error) {
	i := strings.LastIndex(s, "?")
	if i < 0 || !strings.Contains(s[i+1:], "=") && s[i+1:] != "loop" {
		return s, nil, nil
	}
	q, err = url.ParseQuery(s[i+1:])
	return s[:i], q, err
}

func parsePathSource(spec Spec, kind Kind, s string, fail func(string, ...any) (Spec, error)) (Spec, error) {
	path, q, err := splitQuery(strings.TrimSpace(s))
	if err != nil {
		return fail("malformed options: %v", err)
	}
	if path == "" {
		return fail("empty path")
	}
	spec.Kind, spec.Path = kind, path
	known := map[Kind][]string{
		KindFile:   {"loop"},
		KindImages: {"loop"},
		KindDevice: {"width", "height", "fps", "fourcc"},
	}[kind]
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := q.Get(k)
		ok := false
		for _, kk := range known {
			ok = ok || k == kk
		}
		if !ok {
			return fail("unknown option %q for a %s source (known: %s)", k, kind, strings.Join(known, ", "))
		}
		switch k {
		case "loop":
			switch strings.ToLower(v) {
			case "", "1", "true", "yes", "on":
				spec.Loop = true
			case "0", "false", "no", "off":
				spec.Loop = false
			default:
				return fail("option loop=%q: want 1 or 0", v)
			}
		case "width", "height":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return fail("option %s=%q: want a positive integer", k, v)
			}
			if k == "width" {
				spec.Width = n
			} else {
				spec.Height = n
			}
		case "fps":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f <= 0 {
				return fail("option fps=%q: want a positive number", v)
			}
			spec.FPS = f
		case "fourcc":
			if len(v) != 4 {
				return fail("option fourcc=%q: want four characters, e.g. MJPG or YUYV", v)
			}
			spec.FourCC = v
		}
	}
	if kind == KindDevice {
		if n, err := strconv.Atoi(path); err == nil && n >= 0 {
			spec.Device, spec.Path = n, ""
		}
	}
	return spec, nil
}

var imageExts = map[string]bool{
	".png": true, ".jpg": true, ".jpeg": true, ".bmp": true, ".pgm": true, ".ppm": true,
	".pnm": true, ".tif": true, ".tiff": true, ".webp": true,
}

func isImageFile(p string) bool { return imageExts[strings.ToLower(filepath.Ext(p))] }

// listImages returns the images a folder or glob names, sorted by name.
func listImages(path string) ([]string, error) {
	var files []string
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("image folder %q: %w", path, err)
		}
		for _, e := range entries {
			if !e.IsDir() && isImageFile(e.Name()) {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
	} else {
		m, err := filepath.Glob(path)
		if err != nil {
			return nil, fmt.Errorf("image glob %q: %w", path, err)
		}
		for _, f := range m {
			if st, err := os.Stat(f); err == nil && !st.IsDir() {
				files = append(files, f)
			}
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("images %q: no image files found (want a folder with .png/.jpg/... files or a glob such as /data/*.png)", path)
	}
	sort.Strings(files)
	return files, nil
}
