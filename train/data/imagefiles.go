package data

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ImageFiles lists the JPEG and PNG files of an unlabelled image source, sorted: a folder
// (walked recursively, hidden entries skipped) or a glob pattern such as "shots/*.jpg". Nothing
// is decoded; ReadImageInput reads one file at a time, so a large folder is never held in
// memory. No image at all is an error naming the folder or pattern.
func ImageFiles(spec string) ([]string, error) {
	var files []string
	if st, err := os.Stat(spec); err == nil && st.IsDir() {
		err := filepath.WalkDir(spec, func(p string, e os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p != spec && strings.HasPrefix(e.Name(), ".") {
				if e.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !e.IsDir() && imageExts[strings.ToLower(filepath.Ext(p))] {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("images %s: %w", spec, err)
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("images %s: the folder holds no .jpg, .jpeg or .png file", spec)
		}
	} else {
		if !strings.ContainsAny(spec, "*?[") {
			if err == nil {
				return nil, fmt.Errorf("images %s: not a folder; give a folder or a glob pattern (DIR/*.jpg)", spec)
			}
			return nil, fmt.Errorf("images %s: %w", spec, err)
		}
		matches, err := filepath.Glob(spec)
		if err != nil {
			return nil, fmt.Errorf("images %q: %w", spec, err)
		}
		for _, p := range matches {
			if st, err := os.Stat(p); err == nil && !st.IsDir() && imageExts[strings.ToLower(filepath.Ext(p))] {
				files = append(files, p)
			}
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("images %s: the pattern matches no .jpg, .jpeg or .png file", spec)
		}
	}
	sort.Strings(files)
	return files, nil
}

// ReadImageInput decodes one JPEG or PNG file, resizes the whole image to h x w (bilinear, no
// crop) and normalizes it as training does: HWC float32 values (p/255 - mean[c]) / std[c], with
// c = len(mean) channels (1: luma, 3: RGB). A file that does not decode is an error naming it.
func ReadImageInput(path string, h, w int, norm Normalization) ([]float32, error) {
	c := len(norm.Mean)
	if c != 1 && c != 3 || len(norm.Std) != c {
		return nil, fmt.Errorf("image %s: normalization for %d channels (mean %v, std %v); want 1 or 3", path, c, norm.Mean, norm.Std)
	}
	img, err := decodeFile(path)
	if err != nil {
		return nil, err
	}
	px, err := toBytes(img, h, w, c == 1, true)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", path, err)
	}
	out := make([]float32, len(px))
	for i, p := range px {
		k := i % c
		out[i] = (float32(p)/255 - norm.Mean[k]) / norm.Std[k]
	}
	return out, nil
}
