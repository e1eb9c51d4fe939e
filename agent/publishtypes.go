package agent

import "github.com/shortcut-edge/shortcut/agent/publish"

// Topics names the agent's MQTT topics (publish.Topics).
type Topics = publish.Topics

// The values of the availability topics.
const (
	Online  = publish.Online
	Offline = publish.Offline
)
