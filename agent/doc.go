// Package agent is the on-board daemon: it takes frames from cameras
// (FrameSource), classifies them with one shared model (Classifier, whose
// weights every camera shares), debounces the results into a stable state,
// and publishes predictions, states, availability, Home Assistant discovery
// and events over MQTT (PAYLOADS.md is the contract). It also serves
// /healthz, /metrics and /snapshot.jpg over HTTP, talks to systemd
// (READY, WATCHDOG), reloads the model on request without stopping, and
// runs an embedded MQTT broker when no broker is configured.
//
// Per camera, data flows one way through bounded channels:
//
//	FrameSource -> capture -> preprocess -> inference -> decision -> publisher -> MQTT
//
// One context owns every goroutine: cancelling Run's context stops capture,
// each stage ends when its input closes, and the publisher says "offline"
// last.
package agent
