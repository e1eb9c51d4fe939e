package agent_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shortcut-edge/shortcut/agent"
	"github.com/shortcut-edge/shortcut/agent/agenttest"
)

// testCA is a throwaway certificate authority made for one test: nothing
// is committed, nothing comes from openssl.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	File string // the CA certificate, PEM
	dir  string
}

var serial struct {
	sync.Mutex
	n int64
}

func nextSerial() *big.Int {
	serial.Lock()
	defer serial.Unlock()
	serial.n++
	return big.NewInt(serial.n)
}

// newKeyAndTemplate makes a P-256 key and a day-long certificate template for name.
func newKeyAndTemplate(t *testing.T, name string) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key, &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
	}
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, tmpl := newKeyAndTemplate(t, name)
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{cert: cert, key: key, dir: t.TempDir()}
	ca.File = writePEM(t, filepath.Join(ca.dir, name+"-ca.pem"), "CERTIFICATE", der)
	return ca
}

// issue signs a certificate for name: a server certificate for
// 127.0.0.1 and localhost, or a client certificate; it returns the PEM
// certificate and key files.
func (ca *testCA) issue(t *testing.T, name string, server bool) (certFile, keyFile string) {
	t.Helper()
	key, tmpl := newKeyAndTemplate(t, name)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, filepath.Join(ca.dir, name+".pem"), "CERTIFICATE", der),
		writePEM(t, filepath.Join(ca.dir, name+"-key.pem"), "PRIVATE KEY", pk)
}

func writePEM(t *testing.T, path, typ string, der []byte) string {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// clientTLS is a test client's TLS configuration: it trusts ca and shows
// the certificate in certFile/keyFile.
func clientTLS(t *testing.T, ca *testCA, certFile, keyFile string) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}
}

// tlsSetup is a mosquitto with a TLS listener whose certificates come
// from ca, and a client certificate from ca for the agent.
type tlsSetup struct {
	ca                      *testCA
	broker                  *agenttest.Broker
	monitor                 *agenttest.Subscriber // a well configured TLS client, subscribed to shortcut/#
	agentCert, agentKey     string
	monitorCert, monitorKey string
	serverCert, serverKey   string
}

func startTLSBroker(t *testing.T, requireClientCert bool) *tlsSetup {
	t.Helper()
	s := &tlsSetup{ca: newTestCA(t, "test")}
	s.serverCert, s.serverKey = s.ca.issue(t, "broker", true)
	s.agentCert, s.agentKey = s.ca.issue(t, "agent", false)
	s.monitorCert, s.monitorKey = s.ca.issue(t, "monitor", false)
	s.broker = agenttest.StartMosquittoTLS(t, 0, agenttest.TLSListener{CAFile: s.ca.File, CertFile: s.serverCert,
		KeyFile: s.serverKey, RequireClientCert: requireClientCert})
	if !strings.HasPrefix(s.broker.URL(), "ssl://127.0.0.1:") {
		t.Fatalf("TLS broker URL = %q, want ssl://127.0.0.1:port", s.broker.URL())
	}
	s.monitor = agenttest.SubscribeTLS(t, s.broker.URL(), clientTLS(t, s.ca, s.monitorCert, s.monitorKey), "shortcut/#")
	return s
}

// syncBuffer collects the agent's log; the agent writes it from several
// goroutines while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTLSAgentPublishesOverMutualTLS runs the agent, configured through
// mqtt.tls (the daemon's own code path to paho's options), against a
// mosquitto that only speaks TLS and requires a client certificate: the
// agent connects, announces itself and publishes its predictions, which a
// TLS subscriber receives.
func TestTLSAgentPublishesOverMutualTLS(t *testing.T) {
	s := startTLSBroker(t, true)
	start := make(chan struct{})
	src := agenttest.Tensors(framesFor(contractFrames...)...)
	src.Start = start
	cfg := testConfig(s.broker.URL())
	cfg.MQTT.TLS = agent.TLSConfig{Enabled: true, CAFile: s.ca.File, CertFile: s.agentCert, KeyFile: s.agentKey}
	a, err := agent.New(cfg, agent.Options{Logger: quietLog(),
		OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return src, nil },
		LoadModel:  func(string) (agent.Classifier, error) { return fakeModel(contractTable), nil }})
	if err != nil {
		t.Fatal(err)
	}
	stop := running(t, a)
	s.monitor.WaitFor("shortcut/testdev/availability", "online over TLS", hasPayload(agent.Online))
	if h := a.Health(); !h.MQTT.Connected || h.MQTT.Broker != s.broker.URL() {
		t.Errorf("health mqtt = %+v, want connected to %s (reasons %v)", h.MQTT, s.broker.URL(), h.Reasons)
	}
	close(start)
	preds := s.monitor.WaitFor("shortcut/testdev/front/prediction", "a prediction per frame over TLS", atLeast(len(contractFrames)))
	for _, m := range preds {
		if !strings.Contains(m.Payload, `"camera":"front"`) {
			t.Errorf("prediction payload %s does not name camera front", m.Payload)
		}
	}
	s.monitor.WaitFor("shortcut/testdev/front/state", "state changes over TLS", atLeast(3))
	stop()
	s.monitor.WaitFor("shortcut/testdev/availability", "offline after a clean stop", hasPayload(agent.Offline))
}

// TestTLSAgentReportsWhyItCannotConnect points the agent at TLS brokers
// it must not or cannot trust. The agent keeps running and retrying in
// the background, never publishes (a well configured subscriber sees no
// "online"), reports the TLS problem in /healthz's reasons and its log,
// and still stops cleanly.
func TestTLSAgentReportsWhyItCannotConnect(t *testing.T) {
	for _, tc := range []struct {
		name              string
		requireClientCert bool
		tls               func(s *tlsSetup, other *testCA) agent.TLSConfig
		want              string // in the reason
	}{
		{"a broker certificate from an unknown CA", false, func(s *tlsSetup, other *testCA) agent.TLSConfig {
			return agent.TLSConfig{Enabled: true, CAFile: other.File, CertFile: s.agentCert, KeyFile: s.agentKey}
		}, "certificate signed by unknown authority"},
		{"no client certificate for a broker that requires one", true, func(s *tlsSetup, _ *testCA) agent.TLSConfig {
			return agent.TLSConfig{Enabled: true, CAFile: s.ca.File}
		}, "tls: certificate required"}, // the broker's TLS 1.3 alert
		{"a server name the broker certificate is not for", false, func(s *tlsSetup, _ *testCA) agent.TLSConfig {
			return agent.TLSConfig{Enabled: true, CAFile: s.ca.File, ServerName: "broker.invalid"}
		}, "broker.invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startTLSBroker(t, tc.requireClientCert)
			other := newTestCA(t, "other")
			cfg := testConfig(s.broker.URL())
			cfg.MQTT.TLS = tc.tls(s, other)
			var logs syncBuffer
			src := agenttest.Tensors(framesFor(0, 0, 1)...)
			a, err := agent.New(cfg, agent.Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
				OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return src, nil },
				LoadModel:  func(string) (agent.Classifier, error) { return fakeModel(contractTable), nil }})
			if err != nil {
				t.Fatal(err)
			}
			stop := running(t, a)
			mqttReason := func() string {
				for _, r := range a.Health().Reasons {
					if strings.HasPrefix(r, "mqtt:") {
						return r
					}
				}
				return ""
			}
			deadline := time.Now().Add(waitLimit)
			for !strings.Contains(mqttReason(), tc.want) {
				if time.Now().After(deadline) {
					t.Fatalf("after %v, /healthz's mqtt reason is %q; want it to say why TLS failed (%q)\nagent log:\n%s\nbroker log:\n%s",
						waitLimit, mqttReason(), tc.want, lastLines(logs.String(), 20), lastLines(s.broker.Log(), 20))
				}
				time.Sleep(10 * time.Millisecond)
			}
			if h := a.Health(); h.MQTT.Connected || h.Status != "degraded" {
				t.Errorf("health = %s, mqtt %+v; want degraded and not connected", h.Status, h.MQTT)
			}
			if !strings.Contains(logs.String(), tc.want) {
				t.Errorf("the agent's log does not say why it cannot connect (%q):\n%s", tc.want, lastLines(logs.String(), 20))
			}
			stop() // Run must return although the client never connected
			if got := s.monitor.On("shortcut/testdev/availability"); len(got) > 0 {
				t.Errorf("the agent published availability %v through a broker it must not have connected to", got)
			}
			if got := s.monitor.On("shortcut/testdev/front/prediction"); len(got) > 0 {
				t.Errorf("the agent published %d prediction(s) through a broker it must not have connected to", len(got))
			}
		})
	}
}

// lastLines is the end of a long log, for failure messages.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestTLSConfigFilesAreCheckedWhenTheConfigIs: --check-config (and
// agent.New) catch TLS files that exist but hold no usable certificate,
// naming the key, instead of the daemon finding out at start.
func TestTLSConfigFilesAreCheckedWhenTheConfigIs(t *testing.T) {
	ca := newTestCA(t, "test")
	cert, key := ca.issue(t, "agent", false)
	_, otherKey := ca.issue(t, "other", false)
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("this is not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, tls string
		wantPath  string
		wantMsg   string
	}{
		{"a ca_file without PEM", fmt.Sprintf("{enabled: true, ca_file: %q}", notPEM), "mqtt.tls.ca_file", "no PEM certificate"},
		{"a key_file that is not cert_file's key", fmt.Sprintf("{enabled: true, ca_file: %q, cert_file: %q, key_file: %q}", ca.File, cert, otherKey),
			"mqtt.tls.cert_file", "private key does not match public key"},
		{"a cert_file without PEM", fmt.Sprintf("{enabled: true, cert_file: %q, key_file: %q}", notPEM, key), "mqtt.tls.cert_file", "PEM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			yaml := "device: {id: d}\ncameras: [{id: a, source: synthetic}]\nmqtt: {broker: \"ssl://127.0.0.1:8883\", tls: " + tc.tls + "}\n"
			_, err := agent.ParseConfig("t.yaml", []byte(yaml), agent.ConfigOptions{Getenv: noEnv})
			var ce *agent.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *agent.ConfigError", err)
			}
			for _, fe := range ce.Errors {
				if fe.Path == tc.wantPath && strings.Contains(fe.Msg, tc.wantMsg) {
					return
				}
			}
			t.Errorf("got %v; want an error on %s saying %q", err, tc.wantPath, tc.wantMsg)
		})
	}
	// Good files validate.
	yaml := fmt.Sprintf("device: {id: d}\ncameras: [{id: a, source: synthetic}]\nmqtt: {broker: \"ssl://127.0.0.1:8883\", tls: {enabled: true, ca_file: %q, cert_file: %q, key_file: %q}}\n",
		ca.File, cert, key)
	if _, err := agent.ParseConfig("t.yaml", []byte(yaml), agent.ConfigOptions{Getenv: noEnv}); err != nil {
		t.Errorf("a valid TLS configuration is refused: %v", err)
	}
}
