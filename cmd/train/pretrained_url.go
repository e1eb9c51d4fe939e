package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/shortcut-edge/shortcut/internal/buildinfo"
	"github.com/shortcut-edge/shortcut/internal/download"
)

// Weights from a URL (pretrained --weights http(s)://...): fetched into the cache once, checked,
// and read from there.

// weightsMaxBytes caps a weights download of unknown size: ResNet-152's .pth is 230 MB.
const weightsMaxBytes = 4 << 30

// weightsDownload holds the retry settings of a weights download (tests shorten them).
var weightsDownload = download.Options{Stall: 30 * time.Second, Attempts: 5}

func isURL(s string) bool { return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") }

// torchvisionHash is the start of the SHA-256 that torchvision (and torch.hub's check_hash)
// writes into its file names: resnet50-0676ba61.pth.
var torchvisionHash = regexp.MustCompile(`-([0-9a-f]{8,64})\.pth$`)

// fetchWeights returns the cached file of the URL o.weights, downloading it when it is not in
// the cache (or not the one --sha256 names), and its SHA-256. Progress and warnings go to
// stderr: a bar on a terminal, else a line every 10 %.
func fetchWeights(ctx context.Context, o pretrainedOptions, stderr io.Writer) (string, string, error) {
	u, err := url.Parse(o.weights)
	if err != nil || u.Host == "" {
		return "", "", fmt.Errorf("--weights %q: not a URL with a host (http://HOST/PATH or https://...)", o.weights)
	}
	dir, err := download.CacheDir()
	if err != nil {
		return "", "", fmt.Errorf("--weights %s: %w", o.weights, err)
	}
	dir = filepath.Join(dir, "weights")
	dl := weightsDownload
	dl.URL, dl.SHA256, dl.MaxBytes = o.weights, strings.ToLower(o.sha), weightsMaxBytes
	dl.UserAgent = "shortcut-train/" + buildinfo.Version
	name := path.Base(u.Path)
	var bar *progressbar.ProgressBar
	defer func() {
		if bar != nil && !bar.IsFinished() {
			bar.Exit() // an error, or a total that was unknown: end the bar's line
			fmt.Fprintln(stderr)
		}
	}()
	if f, ok := stderr.(*os.File); ok && isTerminal(f) {
		dl.Progress = func(have, total int64) {
			if bar == nil {
				if total <= 0 {
					total = -1 // unknown: a spinner
				}
				bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(stderr),
					progressbar.OptionSetDescription("downloading "+name), progressbar.OptionShowBytes(true), progressbar.OptionShowCount(),
					progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionSetWidth(24), progressbar.OptionOnCompletion(func() { fmt.Fprintln(stderr) }))
			}
			bar.Set64(have)
		}
	} else {
		next := int64(-1)
		dl.Progress = func(have, total int64) {
			switch {
			case next < 0: // the first call: the response has come
				fmt.Fprintf(stderr, "downloading %s: %s into %s\n", o.weights, sizeText(total), dir)
				next = 0
			case total > 0 && have*10/total >= next:
				fmt.Fprintf(stderr, "downloading %s: %d%% (%s of %s)\n", name, have*100/total, sizeText(have), sizeText(total))
			case total <= 0 && have >= next*(16<<20):
				fmt.Fprintf(stderr, "downloading %s: %s\n", name, sizeText(have))
			default:
				return
			}
			if total > 0 {
				next = have*10/total + 1
			} else {
				next = have/(16<<20) + 1
			}
		}
	}
	res, err := download.Cached(ctx, dir, dl)
	if err != nil {
		return "", "", fmt.Errorf("--weights %s: %w", o.weights, err)
	}
	switch {
	case res.FromCache:
		fmt.Fprintf(stderr, "using %s, downloaded earlier from %s\n", res.Path, o.weights)
	case res.Resumed > 0:
		fmt.Fprintf(stderr, "downloaded %s into %s (resumed at %s, from an earlier run)\n", o.weights, res.Path, sizeText(res.Resumed))
	default:
		fmt.Fprintf(stderr, "downloaded %s into %s\n", o.weights, res.Path)
	}
	if o.sha == "" {
		m := torchvisionHash.FindStringSubmatch(name)
		if m != nil && !strings.HasPrefix(res.SHA256, m[1]) {
			os.Remove(res.Path) // not the file asked for: the next run fetches it again
			return "", "", fmt.Errorf("--weights %s: SHA-256 is %s, the file name says it starts with %s (as torchvision names its files); the download is not the file expected and was removed from the cache",
				o.weights, res.SHA256, m[1])
		}
		msg := "warning: --weights %s was not checked against a known SHA-256; it has sha256 %s: check it where the file is published and pass --sha256 %s from now on"
		if m != nil {
			msg += " (it starts with the " + fmt.Sprint(len(m[1])) + " digits the file name carries, as torchvision names its files)"
		}
		fmt.Fprintf(stderr, msg+"\n", o.weights, res.SHA256, res.SHA256)
	}
	return res.Path, res.SHA256, nil
}

func sizeText(n int64) string {
	switch {
	case n <= 0:
		return "size unknown"
	case n < 100_000:
		return fmt.Sprintf("%d bytes", n)
	default:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
}
