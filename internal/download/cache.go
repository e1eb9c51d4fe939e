package download

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// CacheDir is $XDG_CACHE_HOME/shortcut, or $HOME/.cache/shortcut when XDG_CACHE_HOME is unset
// or relative (the XDG base directory specification ignores relative paths).
func CacheDir() (string, error) {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "shortcut"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "", fmt.Errorf("no cache directory: set XDG_CACHE_HOME or HOME (%v)", err)
	}
	return filepath.Join(home, ".cache", "shortcut"), nil
}

// CacheName is the file name Cached gives rawURL's file: a digest of the whole URL (timm's
// files on Hugging Face are all called model.safetensors) and the URL's own file name.
func CacheName(rawURL string) string {
	sum := sha256.Sum256([]byte(rawURL))
	base := "download"
	if u, err := url.Parse(rawURL); err == nil && path.Base(u.Path) != "/" && path.Base(u.Path) != "." {
		base = path.Base(u.Path)
	}
	clean := []byte(base)
	for i, c := range clean {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			clean[i] = '_'
		}
	}
	if len(clean) > 100 {
		clean = clean[len(clean)-100:]
	}
	return hex.EncodeToString(sum[:6]) + "-" + strings.TrimLeft(string(clean), ".")
}

// Cached returns the file at o.URL from the cache directory dir ("": CacheDir()), fetching it
// first when it is not there. A cached file is used without a request when o.SHA256 is empty
// or matches it (and o.Size, when given); otherwise it is fetched again. The download goes into
// NAME.part (locked, so that two processes do not write it at once), is synced, checked (size,
// sha256) and only then renamed to NAME: a file under its final name is always complete. After
// an interruption (the context, or the attempts used up) the .part stays and the next call
// resumes it; after any other failure it is removed.
func Cached(ctx context.Context, dir string, o Options) (Result, error) {
	if dir == "" {
		var err error
		if dir, err = CacheDir(); err != nil {
			return Result{}, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Result{}, fmt.Errorf("cache: %w", err)
	}
	final := filepath.Join(dir, CacheName(o.URL))
	if r, ok := cachedCopy(final, o); ok {
		return r, nil
	}
	part := final + ".part"
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return Result{}, fmt.Errorf("cache: %w", err)
	}
	defer f.Close()
	if err := lockFile(f); err != nil {
		return Result{}, fmt.Errorf("%s is being downloaded by another process into %s (%v); wait for it", o.URL, part, err)
	}
	// Another process may have finished it while this one waited for nothing but the lock.
	if r, ok := cachedCopy(final, o); ok {
		return r, nil
	}
	st, err := f.Stat()
	if err != nil {
		return Result{}, err
	}
	resumed := st.Size()
	res, err := Fetch(ctx, o, f)
	if errors.Is(err, ErrChecksum) && resumed > 0 && ctx.Err() == nil {
		// The earlier run's bytes may belong to another version of the file: once more, whole.
		if err = f.Truncate(0); err == nil {
			resumed = 0
			res, err = Fetch(ctx, o, f)
		}
	}
	if err != nil {
		if st, serr := f.Stat(); serr == nil && st.Size() > 0 && (errors.Is(err, ErrGaveUp) || ctx.Err() != nil) {
			return Result{}, fmt.Errorf("%w (the %d bytes received are kept in %s; the next run resumes them)", err, st.Size(), part)
		}
		os.Remove(part)
		return Result{}, err
	}
	if err := os.Rename(part, final); err != nil {
		os.Remove(part)
		return Result{}, fmt.Errorf("cache: %w", err)
	}
	syncDir(dir)
	res.Path, res.Resumed = final, resumed
	return res, nil
}

// cachedCopy is the file already in the cache, when it is the one o asks for.
func cachedCopy(final string, o Options) (Result, bool) {
	f, err := os.Open(final)
	if err != nil {
		return Result{}, false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || (o.Size > 0 && st.Size() != o.Size) {
		return Result{}, false
	}
	sum, err := fileSHA256(f)
	if err != nil || (o.SHA256 != "" && !strings.EqualFold(sum, o.SHA256)) {
		return Result{}, false
	}
	return Result{Path: final, Size: st.Size(), SHA256: sum, FromCache: true}, true
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
