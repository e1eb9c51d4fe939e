package agent

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/shortcut-edge/shortcut/agent/config"
	"github.com/shortcut-edge/shortcut/agent/publish"
	"github.com/shortcut-edge/shortcut/internal/buildinfo"
)

// Home Assistant MQTT discovery (PAYLOADS.md, "Home Assistant discovery").
// Every camera gets, grouped under the agent's device:
//   - a label sensor (device_class enum, options: the labels the agent
//     predicts and "none"), on <ha>/sensor/<device>/<camera>/config;
//   - a score sensor (%, state_class measurement), on
//     <ha>/sensor/<device>/<camera>_score/config;
//   - a binary_sensor per label that mqtt.discovery.binary_sensors names,
//     "on" while that label is the camera's debounced state, on
//     <ha>/binary_sensor/<device>/<camera>_<label slug>/config;
//   - with mqtt.snapshots on, an image showing the picture of the latest
//     event (the retained snapshot topic), on
//     <ha>/image/<device>/<camera>_snapshot/config.
//
// Each entity is available while both the device's availability topic
// and the camera's say "online" (availability_mode all).
//
// Entities are named by default_entity_id (<domain>.<slug>), not by
// object_id: Home Assistant 2025.10 deprecated object_id (a repair per
// entity) and 2026.4 ignores it; every Home Assistant that reads
// default_entity_id is one that still supports this discovery, so the
// agent sends no object_id.
//
// Removed entities: the broker's retained discovery configs are the record
// of what the agent announced. At every connect the publisher subscribes
// to <ha>/+/<device>/+/config; each retained, non-empty config the broker
// replays whose topic the agent no longer announces (a camera or a
// binary_sensor label taken out of the configuration) is deleted with an
// empty retained config, which is how Home Assistant removes an entity.
// Nothing is kept on disk, so the record survives a wiped state directory
// and stays right when the broker's own retained store is wiped.

// discovery is Home Assistant's MQTT discovery config for one entity.
// Optional keys are omitted when empty; discovery_test.go checks every key
// against those Home Assistant documents for the platform.
type discovery struct {
	Name             string                  `json:"name"`
	UniqueID         string                  `json:"unique_id"`
	DefaultEntityID  string                  `json:"default_entity_id"`
	StateTopic       string                  `json:"state_topic"`
	ValueTemplate    string                  `json:"value_template"`
	JSONAttrTopic    string                  `json:"json_attributes_topic,omitempty"`
	JSONAttrTemplate string                  `json:"json_attributes_template,omitempty"`
	DeviceClass      string                  `json:"device_class,omitempty"`
	Options          []string                `json:"options,omitempty"`
	StateClass       string                  `json:"state_class,omitempty"`
	Unit             string                  `json:"unit_of_measurement,omitempty"`
	PayloadOn        string                  `json:"payload_on,omitempty"`
	PayloadOff       string                  `json:"payload_off,omitempty"`
	Availability     []discoveryAvailability `json:"availability"`
	AvailabilityMode string                  `json:"availability_mode"`
	Icon             string                  `json:"icon,omitempty"`
	QoS              int                     `json:"qos"`
	Device           discoveryDevice         `json:"device"`
	Origin           discoveryOrigin         `json:"origin"`
}

// imageDiscovery is the discovery config of an MQTT image entity: it has
// no state topic, value template or qos (image.mqtt documents none).
type imageDiscovery struct {
	Name             string                  `json:"name"`
	UniqueID         string                  `json:"unique_id"`
	DefaultEntityID  string                  `json:"default_entity_id"`
	ImageTopic       string                  `json:"image_topic"`
	ContentType      string                  `json:"content_type"`
	Availability     []discoveryAvailability `json:"availability"`
	AvailabilityMode string                  `json:"availability_mode"`
	Icon             string                  `json:"icon,omitempty"`
	Device           discoveryDevice         `json:"device"`
	Origin           discoveryOrigin         `json:"origin"`
}

type discoveryAvailability struct {
	Topic               string `json:"topic"`
	PayloadAvailable    string `json:"payload_available"`
	PayloadNotAvailable string `json:"payload_not_available"`
}

type discoveryDevice struct {
	Identifiers  []string `json:"identifiers"`
	Name         string   `json:"name"`
	Manufacturer string   `json:"manufacturer"`
	Model        string   `json:"model"`
	SWVersion    string   `json:"sw_version"`
}

type discoveryOrigin struct {
	Name string `json:"name"`
	SW   string `json:"sw_version"`
	URL  string `json:"support_url"`
}

// predictedLabels are the label sensor's options: the labels of the head
// in use (else the model's) and "none", the state when no label is stable.
func (a *Agent) predictedLabels() []string {
	labels := a.Model().Labels
	if ah := a.head.Load(); ah != nil {
		labels = ah.labels
	}
	out := make([]string, 0, len(labels)+1)
	for _, l := range append(slices.Clone(labels), NoState) {
		if !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

// discoveryMessages are the retained discovery configs of every entity of
// every camera, for the model and head in use.
func (a *Agent) discoveryMessages() []publish.Message {
	info := a.Model()
	dev, options := a.cfg.Device.ID, a.predictedLabels()
	device := discoveryDevice{Identifiers: []string{"shortcut_" + dev}, Name: a.cfg.Device.Name,
		Manufacturer: "Shortcut", Model: info.Name, SWVersion: buildinfo.Version}
	origin := discoveryOrigin{Name: "shortcut-agent", SW: buildinfo.Version, URL: "https://github.com/shortcut-edge/shortcut"}
	var out []publish.Message
	for _, c := range a.cams {
		cam := c.cfg.ID
		state := a.topics.State(cam)
		avail := []discoveryAvailability{
			{Topic: a.topics.Availability(), PayloadAvailable: Online, PayloadNotAvailable: Offline},
			{Topic: a.topics.CameraAvailability(cam), PayloadAvailable: Online, PayloadNotAvailable: Offline},
		}
		entity := func(domain, suffix, name string) discovery {
			id := "shortcut_" + dev + "_" + cam + suffix
			return discovery{Name: name, UniqueID: id, DefaultEntityID: domain + "." + config.EntitySlug(id),
				StateTopic: state, Availability: avail, AvailabilityMode: "all", QoS: a.cfg.MQTT.QoS, Device: device, Origin: origin}
		}
		label := entity("sensor", "", cam)
		label.ValueTemplate = "{{ value_json.label }}"
		label.JSONAttrTopic = state
		label.JSONAttrTemplate = "{{ {'score': value_json.score, 'seq': value_json.seq, 'top_k': value_json.top_k, 'model': value_json.model.name} | tojson }}"
		label.DeviceClass, label.Options, label.Icon = "enum", options, "mdi:cctv"
		out = append(out, a.discoveryMessage("sensor", cam, label))

		score := entity("sensor", "_score", cam+" score")
		score.ValueTemplate = "{{ (value_json.score * 100) | round(1) }}"
		score.Unit, score.StateClass, score.Icon = "%", "measurement", "mdi:percent"
		out = append(out, a.discoveryMessage("sensor", cam+"_score", score))

		for _, l := range a.cfg.MQTT.Discovery.BinarySensors {
			slug := config.EntitySlug(l)
			b := entity("binary_sensor", "_"+slug, cam+" "+l)
			q, _ := json.Marshal(l) // a Jinja string literal, whatever the label holds
			b.ValueTemplate = "{{ 'ON' if value_json.label == " + string(q) + " else 'OFF' }}"
			b.PayloadOn, b.PayloadOff = "ON", "OFF"
			out = append(out, a.discoveryMessage("binary_sensor", cam+"_"+slug, b))
		}
		if a.cfg.MQTT.Snapshots.Enabled {
			id := "shortcut_" + dev + "_" + cam + "_snapshot"
			img := imageDiscovery{Name: cam + " snapshot", UniqueID: id, DefaultEntityID: "image." + config.EntitySlug(id),
				ImageTopic: a.topics.Snapshot(cam), ContentType: "image/jpeg", Availability: avail, AvailabilityMode: "all",
				Icon: "mdi:image", Device: device, Origin: origin}
			out = append(out, publish.Message{Kind: "discovery", Topic: a.topics.Discovery("image", cam+"_snapshot"), Payload: mustJSON(img), Retained: true})
		}
	}
	return out
}

func (a *Agent) discoveryMessage(domain, objectID string, d discovery) publish.Message {
	return publish.Message{Kind: "discovery", Topic: a.topics.Discovery(domain, objectID), Payload: mustJSON(d), Retained: true}
}

// rediscover republishes discovery after a change Home Assistant must see:
// the model's name, or the labels a new head predicts.
func (a *Agent) rediscover() {
	if a.pub == nil || !a.cfg.MQTT.Discovery.Enabled {
		return
	}
	for _, m := range a.discoveryMessages() {
		a.pub.EnqueueWait(m, 2*time.Second)
	}
}

// cameraAvailability is what <prefix>/<device>/<camera>/availability
// says: offline while the camera's source is reconnecting, or once it has
// ended or closed; online otherwise (sources that keep no account of their
// state are online while the agent is).
func (a *Agent) cameraAvailability(cam string) string {
	for _, c := range a.cams {
		if c.cfg.ID != cam {
			continue
		}
		if ss, ok := c.src.(StatsSource); ok {
			switch ss.SourceStats().State {
			case SourceReconnecting, "ended", "closed":
				return Offline
			}
		}
		return Online
	}
	return Offline
}
