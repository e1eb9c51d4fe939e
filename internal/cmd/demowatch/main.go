// Command demowatch subscribes to what the agent publishes and prints it, one
// line per message, for `make run`. With --truth (the CSV demovideo writes)
// it also scores each prediction against the true label of its frame. It
// exits when the agent's availability topic says offline, or at --timeout.
package main

import (
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
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
	broker := flag.String("broker", "tcp://127.0.0.1:1883", "MQTT broker URL")
	truthPath := flag.String("truth", "", "CSV of frame,image,label,class (from demovideo)")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	flag.Parse()
	truth, err := readTruth(*truthPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demowatch:", err)
		os.Exit(1)
	}
	msgs := make(chan mqtt.Message, 1024)
	opts := mqtt.NewClientOptions().AddBroker(*broker).SetClientID(fmt.Sprintf("demowatch-%d", os.Getpid())).
		SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond).
		SetOnConnectHandler(func(c mqtt.Client) {
			c.Subscribe("shortcut/#", 1, func(_ mqtt.Client, m mqtt.Message) { msgs <- m })
		})
	c := mqtt.NewClient(opts)
	c.Connect()
	defer c.Disconnect(100)
	deadline := time.After(*timeout)
	var n, right, scored int
	var infer float64
	for {
		select {
		case <-deadline:
			fmt.Fprintln(os.Stderr, "demowatch: timed out")
			os.Exit(1)
		case m := <-msgs:
			topic, payload := m.Topic(), string(m.Payload())
			switch {
			case strings.HasSuffix(topic, "/availability"):
				fmt.Printf("%-40s %s\n", topic, payload)
				if payload == "offline" && !m.Retained() {
					summary(n, right, scored, infer)
					return
				}
			case strings.HasSuffix(topic, "/prediction"), strings.HasSuffix(topic, "/state"):
				var p prediction
				if err := json.Unmarshal(m.Payload(), &p); err != nil {
					fmt.Printf("%-40s (not JSON: %v)\n", topic, err)
					continue
				}
				mark := ""
				if strings.HasSuffix(topic, "/prediction") {
					n++
					infer += p.Lat.Inference
					if p.Seq >= 1 && int(p.Seq) <= len(truth) {
						scored++
						if truth[p.Seq-1] == p.Label {
							right++
							mark = "  (right)"
						} else {
							mark = "  (truth: " + truth[p.Seq-1] + ")"
						}
					}
					fmt.Printf("%-40s seq=%-4d %-12s %.2f  inference %.1f ms%s\n", topic, p.Seq, p.Label, p.Score, p.Lat.Inference, mark)
				} else {
					fmt.Printf("%-40s seq=%-4d %-12s %.2f  (was %s)\n", topic, p.Seq, p.Label, p.Score, p.Prev)
				}
			default:
				fmt.Printf("%-40s %d bytes\n", topic, len(payload))
			}
		}
	}
}

func summary(n, right, scored int, infer float64) {
	if n == 0 {
		fmt.Println("no predictions received")
		return
	}
	fmt.Printf("\n%d predictions, mean inference %.2f ms", n, infer/float64(n))
	if scored > 0 {
		fmt.Printf("; %d of %d scored against the video's true labels are right (%.1f %%)", right, scored, 100*float64(right)/float64(scored))
	}
	fmt.Println()
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
