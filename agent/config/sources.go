package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// SourceChecker validates a source string without opening it, for the
// configuration check; CheckSource goes with the agent's OpenSource.
type SourceChecker func(source string) error

// CheckSource is the SourceChecker for the agent's own sources (agent.OpenSource): "synthetic",
// "images:<folder or glob>", optionally followed by "?loop=1" to start over
// after the last image.
func CheckSource(s string) error {
	switch {
	case s == "":
		return errors.New(`is empty; want "synthetic" or "images:/dir/*.png"`)
	case s == "synthetic":
		return nil
	case strings.HasPrefix(s, "images:"):
		_, _, err := ParseImages(s)
		return err
	}
	return fmt.Errorf(`%q: unknown source kind; want "synthetic" or "images:<folder or glob>[?loop=1]" (camera sources need a build with the camera package, as cmd/agent is)`, s)
}

// ParseImages splits "images:<path>[?loop=1]".
func ParseImages(s string) (path string, loop bool, err error) {
	path = strings.TrimPrefix(s, "images:")
	if i := strings.LastIndex(path, "?loop="); i >= 0 {
		switch path[i+len("?loop="):] {
		case "1", "true", "yes", "on":
			loop = true
		case "0", "false", "no", "off":
		default:
			return "", false, fmt.Errorf("%q: option loop=%q: want 1 or 0", s, path[i+len("?loop="):])
		}
		path = path[:i]
	}
	if path == "" {
		return "", false, fmt.Errorf("%q: no folder or glob after images:", s)
	}
	if _, err := filepath.Match(path, ""); err != nil {
		return "", false, fmt.Errorf("%q: bad pattern: %v", s, err)
	}
	return path, loop, nil
}
