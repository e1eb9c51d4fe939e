package agent

import "github.com/shortcut-edge/shortcut/agent/config"

// The configuration (package agent/config: the YAML, its defaults and its
// checks, section by section) under the names the agent and its callers use.
type (
	Config           = config.Config
	ConfigOptions    = config.Options
	ConfigError      = config.Error
	FieldError       = config.FieldError
	SourceChecker    = config.SourceChecker
	DeviceConfig     = config.DeviceConfig
	ModelConfig      = config.ModelConfig
	UpdatesConfig    = config.UpdatesConfig
	CameraConfig     = config.CameraConfig
	PreprocessConfig = config.PreprocessConfig
	LearningConfig   = config.LearningConfig
	GPIOConfig       = config.GPIOConfig
	ButtonConfig     = config.ButtonConfig
	LEDConfig        = config.LEDConfig
	OutputConfig     = config.OutputConfig
	DecisionConfig   = config.DecisionConfig
	MQTTConfig       = config.MQTTConfig
	TLSConfig        = config.TLSConfig
	PredictionsConf  = config.PredictionsConf
	DiscoveryConfig  = config.DiscoveryConfig
	EventsConfig     = config.EventsConfig
	SnapshotsConfig  = config.SnapshotsConfig
	BrokerConfig     = config.BrokerConfig
	HTTPConfig       = config.HTTPConfig
	AuthConfig       = config.AuthConfig
	UserConfig       = config.UserConfig
	TokenConfig      = config.TokenConfig
	LogConfig        = config.LogConfig
)

const (
	FitCrop         = config.FitCrop
	FitLetterbox    = config.FitLetterbox
	FitStretch      = config.FitStretch
	EnvMQTTPassword = config.EnvMQTTPassword
	EnvMQTTUsername = config.EnvMQTTUsername
)

// Defaults returns the values used for keys a configuration file leaves out.
func Defaults() Config { return config.Defaults() }

// LoadConfig reads and checks a configuration file (config.Load).
func LoadConfig(path string, opt ConfigOptions) (Config, error) { return config.Load(path, opt) }

// ParseConfig reads and checks a configuration held in memory (config.Parse).
func ParseConfig(name string, data []byte, opt ConfigOptions) (Config, error) {
	return config.Parse(name, data, opt)
}

// CheckSource is the SourceChecker for OpenSource (config.CheckSource).
func CheckSource(s string) error { return config.CheckSource(s) }

func loopbackHost(host string) bool { return config.LoopbackHost(host) }
