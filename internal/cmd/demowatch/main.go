// Command demowatch runs the agent for `make run` and shows what it
// publishes: it subscribes to shortcut/# on --broker, starts the agent
// command given after its flags, and prints every message, one line each.
// With --truth (the CSV demovideo writes) it also scores each prediction
// against the true label of its frame.
//
//	demowatch --broker tcp://127.0.0.1:18830 --truth demo.avi.csv -- bin/shortcut-agent -config agent.yaml --exit-when-done
//
// The demo ends on the agent's exit, which cannot be missed: demowatch is
// its parent. It then takes what is still on its way (until the agent's
// "offline", or the end of the connection to the agent's embedded broker,
// or --drain), prints a summary and exits with the agent's status. An
// earlier version waited for "offline" alone, for up to five minutes, and
// failed now and then when that message was lost at shutdown (issue 21).
//
// Deadlines, in seconds rather than minutes: nothing from the agent within
// --start-timeout of its start, or nothing more for --stop-timeout while it
// still runs (after the video's last frame the agent stops by itself),
// means it is stuck; demowatch then stops it and fails. SIGINT and SIGTERM
// are passed on to the agent, which stops cleanly; the demo then ends as
// above.
package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

type prediction struct {
	Camera string  `json:"camera"`
	Seq    uint64  `json:"seq"`
	Label  string  `json:"label"`
	Score  float64 `json:"score"`
	Prev   string  `json:"previous"`
	Lat    struct {
		Inference float64 `json:"inference"`
		Total     float64 `json:"total"`
	} `json:"latency_ms"`
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("demowatch", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: demowatch [flags] -- AGENT [ARGS...]")
		fs.PrintDefaults()
	}
	broker := fs.String("broker", "tcp://127.0.0.1:1883", "MQTT broker URL the agent publishes to")
	truthPath := fs.String("truth", "", "CSV of frame,image,label,class (from demovideo)")
	startTimeout := fs.Duration("start-timeout", time.Minute, "fail when nothing arrives from the agent this long after it started")
	stopTimeout := fs.Duration("stop-timeout", 15*time.Second, "fail when the agent is silent this long and still running (after the video ends it stops by itself)")
	drain := fs.Duration("drain", 3*time.Second, "after the agent exits, wait at most this long for messages still on their way")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "demowatch: give the agent's command after the flags: demowatch [flags] -- bin/shortcut-agent -config agent.yaml --exit-when-done")
		return 2
	}
	truth, err := readTruth(*truthPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demowatch:", err)
		return 1
	}

	// The subscriber connects first and keeps retrying, so that it is
	// subscribed moments after the agent's embedded broker listens.
	msgs := make(chan mqtt.Message, 4096)
	var up, wasUp atomic.Bool
	down := make(chan struct{}, 1)
	opts := mqtt.NewClientOptions().AddBroker(*broker).SetClientID(fmt.Sprintf("demowatch-%d", os.Getpid())).
		SetConnectRetry(true).SetConnectRetryInterval(50 * time.Millisecond).SetMaxReconnectInterval(time.Second).
		SetOnConnectHandler(func(c mqtt.Client) {
			up.Store(true)
			wasUp.Store(true)
			c.Subscribe("shortcut/#", 1, func(_ mqtt.Client, m mqtt.Message) { msgs <- m })
		}).
		// Paho reports a lost connection after it has handed every message
		// it received to the handler above: then msgs holds them all.
		SetConnectionLostHandler(func(mqtt.Client, error) {
			up.Store(false)
			select {
			case down <- struct{}{}:
			default:
			}
		})
	c := mqtt.NewClient(opts)
	c.Connect()
	defer c.Disconnect(100)

	agent := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	agent.Stdout, agent.Stderr = os.Stdout, os.Stderr
	if err := agent.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "demowatch: starting the agent: %v\n", err)
		return 1
	}
	exited := make(chan error, 1)
	go func() { exited <- agent.Wait() }()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	var s score
	s.truth = truth
	started := time.Now()
	quiet := time.NewTimer(*startTimeout)
	defer quiet.Stop()
	for {
		select {
		case m := <-msgs:
			s.show(m)
			quiet.Reset(*stopTimeout)
		case <-down: // the broker went away; paho reconnects by itself
		case sig := <-sigs:
			fmt.Fprintf(os.Stderr, "demowatch: %v: stopping the agent\n", sig)
			agent.Process.Signal(syscall.SIGTERM)
		case <-quiet.C:
			if s.messages == 0 {
				fmt.Fprintf(os.Stderr, "demowatch: nothing from the agent on %s %v after it started (connected to the broker: %t); see the agent's log above\n",
					*broker, *startTimeout, up.Load())
			} else {
				fmt.Fprintf(os.Stderr, "demowatch: the agent has been silent for %v and has not exited: it is stuck (after the video's last frame it stops by itself)\n", *stopTimeout)
			}
			stopAgent(agent, exited)
			return 1
		case err := <-exited:
			// Take what is still on its way: up to the agent's "offline",
			// its last word, or the end of the connection to its broker.
			limit := time.NewTimer(*drain)
			for waiting := true; waiting && !s.offline && up.Load(); {
				select {
				case m := <-msgs:
					s.show(m)
				case <-down:
				case <-limit.C:
					waiting = false
				}
			}
			limit.Stop()
			for drained := false; !drained; {
				select {
				case m := <-msgs:
					s.show(m)
				default:
					drained = true
				}
			}
			s.summary()
			return s.verdict(err, time.Since(started), wasUp.Load())
		}
	}
}

// stopAgent stops a stuck agent: SIGTERM, then SIGKILL if it is still
// there 5 seconds later.
func stopAgent(agent *exec.Cmd, exited <-chan error) {
	agent.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		agent.Process.Kill()
		<-exited
	}
}

// score prints the agent's messages and keeps the counts for the summary.
type score struct {
	truth                      []string
	messages, n, right, scored int
	infer                      float64
	offline                    bool // the agent's clean-stop "offline" arrived
}

func (s *score) show(m mqtt.Message) {
	s.messages++
	topic, payload := m.Topic(), string(m.Payload())
	switch {
	case strings.HasSuffix(topic, "/availability"):
		fmt.Printf("%-40s %s\n", topic, payload)
		// A retained "offline" is a previous run's, kept by the broker.
		if payload == "offline" && !m.Retained() {
			s.offline = true
		}
	case strings.HasSuffix(topic, "/prediction"), strings.HasSuffix(topic, "/state"):
		var p prediction
		if err := json.Unmarshal(m.Payload(), &p); err != nil {
			fmt.Printf("%-40s (not JSON: %v)\n", topic, err)
			return
		}
		if !strings.HasSuffix(topic, "/prediction") {
			fmt.Printf("%-40s seq=%-4d %-12s %.2f  (was %s)\n", topic, p.Seq, p.Label, p.Score, p.Prev)
			return
		}
		s.n++
		s.infer += p.Lat.Inference
		mark := ""
		if p.Seq >= 1 && int(p.Seq) <= len(s.truth) {
			s.scored++
			if s.truth[p.Seq-1] == p.Label {
				s.right++
				mark = "  (right)"
			} else {
				mark = "  (truth: " + s.truth[p.Seq-1] + ")"
			}
		}
		fmt.Printf("%-40s seq=%-4d %-12s %.2f  inference %.1f ms%s\n", topic, p.Seq, p.Label, p.Score, p.Lat.Inference, mark)
	default:
		fmt.Printf("%-40s %d bytes\n", topic, len(payload))
	}
}

func (s *score) summary() {
	if s.n == 0 {
		return
	}
	fmt.Printf("\n%d predictions, mean inference %.2f ms", s.n, s.infer/float64(s.n))
	if s.scored > 0 {
		fmt.Printf("; %d of %d scored against the video's true labels are right (%.1f %%)", s.right, s.scored, 100*float64(s.right)/float64(s.scored))
	}
	fmt.Println()
	if !s.offline {
		fmt.Println("(the agent's \"offline\" did not arrive before it exited)")
	}
}

// verdict is demowatch's exit status once the agent has exited with err
// after ran: the agent's own status when it failed, 1 when not one
// prediction arrived (subscribed: whether demowatch was ever connected).
func (s *score) verdict(err error, ran time.Duration, subscribed bool) int {
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		fmt.Fprintf(os.Stderr, "demowatch: the agent failed (%v); its log is above\n", err)
		if code := ee.ExitCode(); code > 0 {
			return code
		}
		return 1
	case err != nil:
		fmt.Fprintf(os.Stderr, "demowatch: waiting for the agent: %v\n", err)
		return 1
	case s.n == 0:
		fmt.Fprintf(os.Stderr, "demowatch: the agent ran %v and exited, but no prediction arrived (%d other message(s); demowatch connected to the broker: %t); see the agent's log above\n",
			ran.Round(time.Millisecond), s.messages, subscribed)
		return 1
	}
	return 0
}

func readTruth(path string) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []string
	for i, r := range rows {
		if i == 0 {
			continue
		}
		if len(r) < 4 {
			return nil, fmt.Errorf("%s line %d: want frame,image,label,class", path, i+1)
		}
		if k, err := strconv.Atoi(r[0]); err != nil || k != len(out) {
			return nil, fmt.Errorf("%s line %d: frames must be numbered 0, 1, 2, ...", path, i+1)
		}
		out = append(out, r[3])
	}
	return out, nil
}
