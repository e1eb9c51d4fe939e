package agenttest

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// WaitLimit bounds every wait for something the agent should do; it is a
// deadlock guard, not a timing assertion.
const WaitLimit = 20 * time.Second

// FreePort returns a loopback TCP port nobody listens on (yet).
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("no free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Broker is a real mosquitto on a loopback port, owned by one test and
// stopped when it ends.
type Broker struct {
	t      testing.TB
	Port   int
	TLS    bool // the listener speaks TLS: URL is ssl://
	conf   string
	cmd    *exec.Cmd
	exited chan struct{} // closed when the mosquitto process has exited
	out    lockedBuffer  // mosquitto's log, for failure messages
}

// TLSListener makes StartMosquittoTLS's listener speak TLS. The files are
// PEM: CertFile and KeyFile are the broker's certificate and key, CAFile
// the CA that the broker checks client certificates against.
type TLSListener struct {
	CAFile, CertFile, KeyFile string
	// RequireClientCert makes the broker refuse a client that presents no
	// certificate signed by CAFile (mosquitto's require_certificate).
	RequireClientCert bool
}

// StartMosquitto starts mosquitto (Debian package mosquitto) on port, or
// on a free port when port is 0, and waits until it listens.
func StartMosquitto(t testing.TB, port int) *Broker {
	t.Helper()
	return startMosquitto(t, port, nil)
}

// StartMosquittoTLS is StartMosquitto with a TLS listener; its URL is
// ssl://127.0.0.1:port. Anonymous clients are allowed: a client
// certificate, when required, is the only credential.
func StartMosquittoTLS(t testing.TB, port int, l TLSListener) *Broker {
	t.Helper()
	return startMosquitto(t, port, &l)
}

func startMosquitto(t testing.TB, port int, l *TLSListener) *Broker {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, e := os.Stat("/usr/sbin/mosquitto"); e != nil {
			t.Fatalf("mosquitto is not installed (apt-get install mosquitto): %v", err)
		}
		bin = "/usr/sbin/mosquitto"
	}
	if port == 0 {
		port = FreePort(t)
	}
	b := &Broker{t: t, Port: port, TLS: l != nil, conf: filepath.Join(t.TempDir(), "mosquitto.conf"), exited: make(chan struct{})}
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n", port)
	if l != nil {
		files := brokerReadable(t, l.CAFile, l.CertFile, l.KeyFile)
		conf += fmt.Sprintf("cafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate %t\n", files[0], files[1], files[2], l.RequireClientCert)
	}
	if err := os.WriteFile(b.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	b.cmd = exec.Command(bin, "-c", b.conf)
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.out
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("starting mosquitto: %v", err)
	}
	go func() { b.cmd.Wait(); close(b.exited) }()
	t.Cleanup(b.Stop)
	deadline := time.Now().Add(WaitLimit)
	for {
		c, err := net.Dial("tcp", b.Addr())
		if err == nil {
			c.Close()
			return b
		}
		select {
		case <-b.exited:
			t.Fatalf("mosquitto exited before it listened on %s; its log:\n%s", b.Addr(), b.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto did not listen on %s: %v; its log:\n%s", b.Addr(), err, b.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// brokerReadable copies files into a directory that mosquitto can read
// after it drops root privileges (it loads certificates as the mosquitto
// user, and t.TempDir is private to its owner), and returns the copies.
// The keys are throwaway test keys.
func brokerReadable(t testing.TB, files ...string) []string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mosquitto-tls-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(files))
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("mosquitto TLS file: %v", err)
		}
		out[i] = filepath.Join(dir, fmt.Sprintf("%d-%s", i, filepath.Base(f)))
		if err := os.WriteFile(out[i], b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func (b *Broker) Addr() string { return fmt.Sprintf("127.0.0.1:%d", b.Port) }

// URL is the broker's URL: tcp://, or ssl:// for a TLS listener.
func (b *Broker) URL() string {
	if b.TLS {
		return "ssl://" + b.Addr()
	}
	return "tcp://" + b.Addr()
}

// Log is what mosquitto has logged so far.
func (b *Broker) Log() string { return b.out.String() }

// Freeze stops the broker process (SIGSTOP) without closing anything: its
// connections stay open and the kernel still accepts their bytes, but
// nothing is answered, as with a broker host that hangs or a network that
// drops packets silently. Stop still ends it.
func (b *Broker) Freeze() {
	b.t.Helper()
	if b.cmd == nil || b.cmd.Process == nil {
		b.t.Fatal("Freeze: the broker is not running")
	}
	if err := b.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		b.t.Fatalf("Freeze: SIGSTOP mosquitto: %v", err)
	}
}

// Stop kills the broker (retained messages go with it: no persistence).
func (b *Broker) Stop() {
	if b.cmd != nil && b.cmd.Process != nil {
		b.cmd.Process.Kill()
		<-b.exited
		b.cmd = nil
	}
}

// lockedBuffer is a bytes.Buffer that mosquitto's output goroutine and
// the test may use at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Msg is one message a Subscriber saw.
type Msg struct {
	Topic    string
	Payload  string
	Retained bool
}

// Subscriber records every message on its filters, in arrival order.
type Subscriber struct {
	t      testing.TB
	Client paho.Client
	mu     sync.Mutex
	msgs   []Msg
}

// Subscribe connects a recording client to brokerURL and subscribes to
// filters (QoS 1); it disconnects when the test ends.
func Subscribe(t testing.TB, brokerURL string, filters ...string) *Subscriber {
	t.Helper()
	return SubscribeTLS(t, brokerURL, nil, filters...)
}

// SubscribeTLS is Subscribe over TLS with tc (a nil tc is Subscribe);
// brokerURL is then ssl://host:port.
func SubscribeTLS(t testing.TB, brokerURL string, tc *tls.Config, filters ...string) *Subscriber {
	t.Helper()
	s := &Subscriber{t: t}
	o := paho.NewClientOptions().AddBroker(brokerURL).SetClientID(fmt.Sprintf("test-%d", rand.Uint64())).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetOrderMatters(true)
	if tc != nil {
		o.SetTLSConfig(tc)
	}
	s.Client = paho.NewClient(o)
	if tok := s.Client.Connect(); !tok.WaitTimeout(WaitLimit) || tok.Error() != nil {
		t.Fatalf("test subscriber cannot connect to %s: %v", brokerURL, tok.Error())
	}
	for _, f := range filters {
		tok := s.Client.Subscribe(f, 1, func(_ paho.Client, m paho.Message) {
			s.mu.Lock()
			s.msgs = append(s.msgs, Msg{Topic: m.Topic(), Payload: string(m.Payload()), Retained: m.Retained()})
			s.mu.Unlock()
		})
		if !tok.WaitTimeout(WaitLimit) || tok.Error() != nil {
			t.Fatalf("subscribe %q: %v", f, tok.Error())
		}
	}
	t.Cleanup(func() { s.Client.Disconnect(50) })
	return s
}

// All returns every message so far.
func (s *Subscriber) All() []Msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Msg(nil), s.msgs...)
}

// On returns the messages on topic so far.
func (s *Subscriber) On(topic string) []Msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Msg
	for _, m := range s.msgs {
		if m.Topic == topic {
			out = append(out, m)
		}
	}
	return out
}

// WaitFor polls until ok holds on the messages of topic, and returns them;
// it fails the test after WaitLimit.
func (s *Subscriber) WaitFor(topic, what string, ok func([]Msg) bool) []Msg {
	s.t.Helper()
	deadline := time.Now().Add(WaitLimit)
	for {
		got := s.On(topic)
		if ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("waited %v for %s on %q; got %d message(s): %v", WaitLimit, what, topic, len(got), tail(got, 5))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func tail(ms []Msg, n int) []Msg { return ms[max(0, len(ms)-n):] }

// Publish sends payload to topic (QoS 1, not retained) and waits for the
// broker's acknowledgement.
func (s *Subscriber) Publish(topic string, payload []byte) {
	s.t.Helper()
	tok := s.Client.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(WaitLimit) || tok.Error() != nil {
		s.t.Fatalf("publish to %s: %v", topic, tok.Error())
	}
}

// HasPayload holds when some message has payload p.
func HasPayload(p string) func([]Msg) bool {
	return func(ms []Msg) bool {
		for _, m := range ms {
			if m.Payload == p {
				return true
			}
		}
		return false
	}
}

// AtLeast holds when n messages arrived.
func AtLeast(n int) func([]Msg) bool { return func(ms []Msg) bool { return len(ms) >= n } }

// WaitUntil polls ok until it holds; it fails the test after WaitLimit.
func WaitUntil(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(WaitLimit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", WaitLimit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
