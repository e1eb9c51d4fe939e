// Package agent is the on-board daemon: it takes frames from cameras
// (FrameSource; package agent/cvsource opens real cameras through OpenCV),
// classifies them with one shared model (Classifier, whose weights every
// camera shares), debounces the results into a stable state, and publishes
// predictions, states, availability, Home Assistant discovery and events
// over MQTT (PAYLOADS.md is the contract). It also serves /healthz,
// /metrics and /snapshot.jpg over HTTP, talks to systemd (READY,
// WATCHDOG), reloads the model on request without stopping, and runs an
// embedded MQTT broker when no broker is configured.
//
// Per camera, data flows one way through bounded channels:
//
//	FrameSource -> capture -> preprocess -> inference [-> head] -> decision -> publisher -> MQTT
//	                                                                        `-> GPIO outputs
//
// On-device learning (learn.go, commands.go; LEARNING.md) takes commands
// from MQTT and the GPIO button: learn stores the model's embeddings of
// live frames (offered by the inference stage), train fits a head
// (package agent/head) on its own goroutine and swaps it in atomically,
// after which the inference stage scores frames with the head. The state
// directory keeps examples and head across restarts.
//
// One context owns every goroutine: cancelling Run's context stops capture,
// each stage ends when its input closes, and the publisher says "offline"
// last.
package agent
