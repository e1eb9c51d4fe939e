package agent

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// thermalRoot is where the kernel lists thermal zones; tests point it at a
// folder of fake zones.
var thermalRoot = "/sys/class/thermal"

// thermalCollector reads the SoC's thermal zones at scrape time:
// shortcut_soc_temperature_celsius{zone=<the zone's type>}. A zone that is
// missing or unreadable (some report EIO or EINVAL while their sensor is
// off) is skipped; a machine without zones simply has no series.
type thermalCollector struct {
	root string
	temp *prometheus.Desc
}

func newThermalCollector(root string) *thermalCollector {
	return &thermalCollector{root: root,
		temp: prometheus.NewDesc("shortcut_soc_temperature_celsius", "SoC temperature per thermal zone (the zone's type), read at scrape time.",
			[]string{"zone"}, nil)}
}

func (t *thermalCollector) Describe(ch chan<- *prometheus.Desc) { ch <- t.temp }

func (t *thermalCollector) Collect(ch chan<- prometheus.Metric) {
	zones, _ := filepath.Glob(filepath.Join(t.root, "thermal_zone*"))
	seen := map[string]bool{}
	for _, z := range zones {
		raw, err := os.ReadFile(filepath.Join(z, "temp"))
		if err != nil {
			continue
		}
		milli, err := strconv.ParseFloat(strings.TrimSpace(string(raw)), 64)
		if err != nil {
			continue
		}
		name := filepath.Base(z)
		if typ, err := os.ReadFile(filepath.Join(z, "type")); err == nil && strings.TrimSpace(string(typ)) != "" {
			name = strings.TrimSpace(string(typ))
		}
		if seen[name] {
			// Two zones of one type would be the same series: keep them
			// apart by the zone's folder name.
			name += "/" + filepath.Base(z)
		}
		seen[name] = true
		ch <- prometheus.MustNewConstMetric(t.temp, prometheus.GaugeValue, milli/1000, name)
	}
}
