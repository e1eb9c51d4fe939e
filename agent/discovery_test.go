package agent_test

import (
	"encoding/json"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/shortcut-edge/shortcut/agent"
	"github.com/shortcut-edge/shortcut/agent/agenttest"
)

// documentedKeys are the configuration keys Home Assistant documents for
// each MQTT platform (home-assistant.io/integrations/sensor.mqtt,
// binary_sensor.mqtt and image.mqtt, and the shared device, origin and availability
// maps), minus object_id, which 2025.10 deprecated and 2026.4 drops. Our
// own list, kept by hand: a key the agent sends must be in it.
var documentedKeys = map[string][]string{
	"sensor": {"availability", "availability_mode", "availability_template", "availability_topic", "default_entity_id",
		"device", "device_class", "enabled_by_default", "encoding", "entity_category", "entity_picture", "expire_after",
		"force_update", "icon", "json_attributes_template", "json_attributes_topic", "last_reset_value_template", "name",
		"options", "origin", "payload_available", "payload_not_available", "platform", "qos", "state_class", "state_topic",
		"suggested_display_precision", "unique_id", "unit_of_measurement", "value_template"},
	"binary_sensor": {"availability", "availability_mode", "availability_template", "availability_topic", "default_entity_id",
		"device", "device_class", "enabled_by_default", "encoding", "entity_category", "entity_picture", "expire_after",
		"force_update", "icon", "json_attributes_template", "json_attributes_topic", "name", "off_delay", "origin",
		"payload_available", "payload_not_available", "payload_off", "payload_on", "platform", "qos", "state_topic",
		"unique_id", "value_template"},
	"image": {"availability", "availability_mode", "availability_template", "availability_topic", "content_type",
		"default_entity_id", "device", "enabled_by_default", "encoding", "entity_category", "entity_picture", "icon",
		"image_encoding", "image_topic", "json_attributes_template", "json_attributes_topic", "name", "origin", "platform",
		"unique_id", "url_template", "url_topic"}, // no qos: image.mqtt documents none
	"device": {"configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model", "model_id", "name",
		"serial_number", "suggested_area", "sw_version", "via_device"},
	"origin":       {"name", "sw_version", "support_url"},
	"availability": {"payload_available", "payload_not_available", "topic", "value_template"},
}

// checkKeys reports every key of obj that documentedKeys[what] lacks.
func checkKeys(t *testing.T, topic, what string, obj map[string]any) {
	t.Helper()
	for k := range obj {
		if !slices.Contains(documentedKeys[what], k) {
			t.Errorf("%s: key %q is not a documented %s key of Home Assistant", topic, k, what)
		}
	}
}

// publishRetained leaves payload retained on topic, as an earlier run of
// the agent (or another device) would have.
func publishRetained(t *testing.T, brokerURL string, msgs map[string]string) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(brokerURL).SetClientID("discovery-test-seed"))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connecting to %s: %v", brokerURL, tok.Error())
	}
	defer c.Disconnect(100)
	for topic, p := range msgs {
		if tok := c.Publish(topic, 1, true, p); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publishing %s: %v", topic, tok.Error())
		}
	}
}

// discoveryConfigs are the latest non-empty discovery payloads per topic.
func discoveryConfigs(t *testing.T, ms []agenttest.Msg) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, m := range ms {
		if !strings.HasPrefix(m.Topic, "homeassistant/") || !strings.HasSuffix(m.Topic, "/config") {
			continue
		}
		if m.Payload == "" {
			delete(out, m.Topic)
			continue
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(m.Payload), &v); err != nil {
			t.Fatalf("%s: discovery is not a JSON object: %v\n%s", m.Topic, err, m.Payload)
		}
		out[m.Topic] = v
	}
	return out
}

var entityID = regexp.MustCompile(`^[a-z0-9_]+\.[a-z0-9_]+$`)

// TestDiscoveryAnnouncesDocumentedEntitiesAndRemovesStaleOnes runs the
// agent with two binary_sensor labels against a broker that still retains
// configs of a camera and a label the agent no longer has, and of another
// device. Every config must use only documented keys, name its entity by
// default_entity_id, and depend on the device's and the camera's
// availability; the stale configs of this device are deleted, the other
// device's stay.
func TestDiscoveryAnnouncesDocumentedEntitiesAndRemovesStaleOnes(t *testing.T) {
	broker := startMosquitto(t, 0)
	stale := []string{"homeassistant/sensor/testdev/back/config", "homeassistant/sensor/testdev/back_score/config",
		"homeassistant/binary_sensor/testdev/front_dog/config"}
	const other = "homeassistant/sensor/otherdev/front/config"
	seed := map[string]string{other: `{"name": "someone else's"}`}
	for _, s := range stale {
		seed[s] = `{"name": "from an earlier configuration"}`
	}
	publishRetained(t, broker.URL(), seed)

	sub := subscribe(t, broker.URL(), "shortcut/#", "homeassistant/#")
	cfg := testConfig(broker.URL())
	cfg.MQTT.Discovery.BinarySensors = []string{"cat", "Red mug"}
	src := agenttest.Tensors(framesFor(0, 0, 0)...)
	a, err := agent.New(cfg, agent.Options{Logger: quietLog(),
		OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return src, nil },
		LoadModel:  func(string) (agent.Classifier, error) { return fakeModel(contractTable), nil }})
	if err != nil {
		t.Fatal(err)
	}
	running(t, a)
	for _, s := range stale {
		sub.WaitFor(s, "the stale config deleted", hasPayload(""))
	}
	sub.WaitFor("shortcut/testdev/front/availability", "the camera online", hasPayload(agent.Online))
	sub.WaitFor("homeassistant/binary_sensor/testdev/front_red_mug/config", "the red mug binary_sensor", atLeast(1))

	// What Home Assistant finds when it subscribes now.
	late := subscribe(t, broker.URL(), "homeassistant/#")
	late.WaitFor(other, "the other device's config kept", atLeast(1))
	late.WaitFor("homeassistant/binary_sensor/testdev/front_red_mug/config", "retained discovery", atLeast(1))
	late.WaitFor("homeassistant/image/testdev/front_snapshot/config", "retained image discovery", atLeast(1))
	time.Sleep(200 * time.Millisecond) // the rest of the retained burst
	configs := discoveryConfigs(t, late.All())
	delete(configs, other)
	var topics []string
	for topic := range configs {
		topics = append(topics, topic)
	}
	sort.Strings(topics)
	want := []string{"homeassistant/binary_sensor/testdev/front_cat/config", "homeassistant/binary_sensor/testdev/front_red_mug/config",
		"homeassistant/image/testdev/front_snapshot/config", "homeassistant/sensor/testdev/front/config",
		"homeassistant/sensor/testdev/front_score/config"}
	if !slices.Equal(topics, want) {
		t.Fatalf("retained discovery configs of testdev = %q, want %q", topics, want)
	}
	for _, topic := range topics {
		c := configs[topic]
		platform := strings.Split(topic, "/")[1]
		checkKeys(t, topic, platform, c)
		dev, _ := c["device"].(map[string]any)
		checkKeys(t, topic, "device", dev)
		org, _ := c["origin"].(map[string]any)
		checkKeys(t, topic, "origin", org)
		if _, ok := c["object_id"]; ok {
			t.Errorf("%s: has object_id; Home Assistant 2026.4 drops it, default_entity_id replaces it", topic)
		}
		id, _ := c["default_entity_id"].(string)
		if !entityID.MatchString(id) || !strings.HasPrefix(id, platform+".") {
			t.Errorf("%s: default_entity_id %q, want %s.<lower-case slug>", topic, id, platform)
		}
		var avail []string
		list, _ := c["availability"].([]any)
		for _, e := range list {
			m, _ := e.(map[string]any)
			checkKeys(t, topic, "availability", m)
			s, _ := m["topic"].(string)
			avail = append(avail, s)
		}
		if !slices.Equal(avail, []string{"shortcut/testdev/availability", "shortcut/testdev/front/availability"}) || c["availability_mode"] != "all" {
			t.Errorf("%s: availability %q mode %v; want the device's and the camera's topics, mode all", topic, avail, c["availability_mode"])
		}
	}
	label := configs["homeassistant/sensor/testdev/front/config"]
	if label["device_class"] != "enum" || !slices.Equal(toStrings(label["options"]), []string{"cat", "dog", "empty", "none"}) {
		t.Errorf("label sensor: device_class %v, options %v; want enum with the model's labels and none", label["device_class"], label["options"])
	}
	score := configs["homeassistant/sensor/testdev/front_score/config"]
	if score["unit_of_measurement"] != "%" || score["state_class"] != "measurement" {
		t.Errorf("score sensor: unit %v, state_class %v; want %% and measurement", score["unit_of_measurement"], score["state_class"])
	}
	img := configs["homeassistant/image/testdev/front_snapshot/config"]
	if img["image_topic"] != "shortcut/testdev/front/snapshot" || img["content_type"] != "image/jpeg" {
		t.Errorf("snapshot image: image_topic %v, content_type %v; want the camera's snapshot topic and image/jpeg", img["image_topic"], img["content_type"])
	}
	mug := configs["homeassistant/binary_sensor/testdev/front_red_mug/config"]
	if vt := mug["value_template"]; vt != `{{ 'ON' if value_json.label == "Red mug" else 'OFF' }}` {
		t.Errorf("red mug binary_sensor value_template = %v", vt)
	}
}

func toStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

// TestLabelOptionsFollowTheHeadInUse trains a head that replaces the
// model's labels: the label sensor's options become the head's labels,
// and a reset brings the model's back, each republished at once.
func TestLabelOptionsFollowTheHeadInUse(t *testing.T) {
	broker := startMosquitto(t, 0)
	cfg := testConfig(broker.URL())
	cfg.Learning.Enabled = true
	cfg.Learning.StateDir = t.TempDir()
	cfg.Cameras[0].FPS = 100
	src := agenttest.Tensors(framesFor(0)...)
	src.Loop = true
	model := fakeModel(contractTable)
	model.Model.EmbeddingDim = 4
	model.Embed = func(in []float32) []float32 { return []float32{in[0], 1, 0.5, 0.25} }
	sub := subscribe(t, broker.URL(), "homeassistant/#")
	runAgent(t, cfg, agent.Options{
		OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return src, nil },
		LoadModel:  func(string) (agent.Classifier, error) { return model, nil }})
	const topic = "homeassistant/sensor/testdev/front/config"
	options := func(want ...string) func([]agenttest.Msg) bool {
		return func(ms []agenttest.Msg) bool {
			c := discoveryConfigs(t, ms)[topic]
			return c != nil && slices.Equal(toStrings(c["options"]), want)
		}
	}
	sub.WaitFor(topic, "the model's labels", options("cat", "dog", "empty", "none"))
	cmd := newCommander(t, broker.URL(), "testdev")
	for _, c := range []struct {
		name    string
		payload map[string]any
	}{
		{agent.CmdLearn, map[string]any{"label": "cat", "count": 2, "interval_ms": 0}},
		{agent.CmdLearn, map[string]any{"label": "bird", "count": 2, "interval_ms": 0}},
		{agent.CmdTrain, map[string]any{}},
	} {
		if r := cmd.send(c.name, c.payload); !r.OK {
			t.Fatalf("%s: %s %s", c.name, r.Code, r.Error)
		}
	}
	sub.WaitFor(topic, "the trained head's labels", options("cat", "bird", "none"))
	if r := cmd.send(agent.CmdReset, map[string]any{}); !r.OK {
		t.Fatalf("reset: %s %s", r.Code, r.Error)
	}
	sub.WaitFor(topic, "the model's labels again", options("cat", "dog", "empty", "none"))
}
