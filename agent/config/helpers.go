package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
)

// LoadTLS builds the broker connection's TLS configuration from the
// files c names. Its errors are FieldErrors: Validate reports them with
// the configuration's other problems.
func LoadTLS(c TLSConfig) (*tls.Config, error) {
	tc := &tls.Config{ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, FieldError{Path: "mqtt.tls.ca_file", Msg: err.Error()}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, FieldError{Path: "mqtt.tls.ca_file", Msg: fmt.Sprintf("%q holds no PEM certificate", c.CAFile)}
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, FieldError{Path: "mqtt.tls.cert_file", Msg: fmt.Sprintf("%q with key_file %q: %v", c.CertFile, c.KeyFile, err)}
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// EntitySlug makes s a Home Assistant object id: lower case, every run of
// other characters than a-z and 0-9 one "_", none at either end.
func EntitySlug(s string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if under && b.Len() > 0 {
				b.WriteByte('_')
			}
			under = false
			b.WriteRune(r)
			continue
		}
		under = true
	}
	return b.String()
}

// MinSnapshotBytes is the smallest mqtt.snapshots.max_bytes: a JPEG's
// headers and tables alone take about 600 bytes.
const MinSnapshotBytes = 1024
