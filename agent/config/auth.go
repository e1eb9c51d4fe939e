package config

import (
	"encoding/hex"
	"net"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// AuthConfig is http.auth: who may use the web page and the API. With no
// user and no token the server must stay on loopback (or http.insecure).
type AuthConfig struct {
	// Users log in to the page with a name and a password, checked
	// against a bcrypt hash (shortcut-agent hash-password prints one).
	Users []UserConfig `yaml:"users"`
	// Tokens are for scripts: Authorization: Bearer <token>, checked
	// against the token's SHA-256.
	Tokens []TokenConfig `yaml:"tokens"`
	// ProtectMetrics puts /metrics behind authentication too.
	ProtectMetrics bool `yaml:"protect_metrics"`
	// SessionTTL is how long a login lasts.
	SessionTTL time.Duration `yaml:"session_ttl"`
}

// UserConfig is one user of the page.
type UserConfig struct {
	Name         string `yaml:"name"`
	PasswordHash string `yaml:"password_hash"`
}

// TokenConfig is one bearer token, known only by its SHA-256.
type TokenConfig struct {
	Name   string `yaml:"name"`
	SHA256 string `yaml:"sha256"`
}

// Enabled says whether anyone must authenticate.
func (c AuthConfig) Enabled() bool { return len(c.Users) > 0 || len(c.Tokens) > 0 }

// maxAuthNameBytes bounds user and token names (they appear in logs).
const maxAuthNameBytes = 64

func (c *Config) validateAuth(e *fieldErrors) {
	a := c.HTTP.Auth
	names := map[string]bool{}
	checkName := func(path, name string) {
		switch {
		case name == "":
			e.bad(path, "is empty; give a name (it appears in the log of each login or request)")
		case len(name) > maxAuthNameBytes || strings.IndexFunc(name, func(r rune) bool { return r < 0x21 || r == 0x7f }) >= 0:
			e.bad(path, "%q: want 1 to %d printable characters without spaces", name, maxAuthNameBytes)
		case names[name]:
			e.bad(path, "%q is used twice; user and token names must be unique", name)
		}
		names[name] = true
	}
	for i, u := range a.Users {
		p := "http.auth.users[" + strconv.Itoa(i) + "]"
		checkName(p+".name", u.Name)
		if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			e.bad(p+".password_hash", "is not a bcrypt hash (%v); make one with `shortcut-agent hash-password`", err)
		}
	}
	for i, t := range a.Tokens {
		p := "http.auth.tokens[" + strconv.Itoa(i) + "]"
		checkName(p+".name", t.Name)
		if b, err := hex.DecodeString(t.SHA256); err != nil || len(b) != 32 {
			e.bad(p+".sha256", "want the token's SHA-256 as 64 hex digits (printf %%s \"$TOKEN\" | sha256sum), got %q", t.SHA256)
		}
	}
	if a.SessionTTL < time.Minute || a.SessionTTL > 30*24*time.Hour {
		e.bad("http.auth.session_ttl", "is %v; want 1m to 720h", a.SessionTTL)
	}
	if c.HTTP.Address != "" && !a.Enabled() && !c.HTTP.Insecure {
		if host, _, err := net.SplitHostPort(c.HTTP.Address); err == nil && !LoopbackHost(host) {
			e.bad("http.address", "%q listens beyond this machine but http.auth has no user and no token: anyone on the network could "+
				"watch the cameras and teach the board. Add a user (shortcut-agent hash-password) or a token under http.auth, "+
				"or listen on 127.0.0.1, or set http.insecure: true on a trusted network", c.HTTP.Address)
		}
	}
}

// LoopbackHost says whether host (from host:port) can only be reached
// from this machine: "localhost" or a loopback IP. An empty host is every
// interface.
func LoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
