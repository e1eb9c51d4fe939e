#!/usr/bin/env bash
# `make run`: the agent end to end, on embedded defaults and nothing else.
#   1. the demo model: an int8 ResNet-8 trained by `shortcut-train fit` on
#      Fashion-MNIST, exported and quantized by our own tools (configs/demo;
#      `make demo-model` remakes it);
#   2. a real video of Fashion-MNIST test images (OpenCV writes it);
#   3. shortcut-agent reads the video as its camera, runs the model, and
#      publishes over its embedded MQTT broker; a subscriber prints every
#      message and scores the predictions against the video's true labels.
# Stops by itself when the video ends; Ctrl-C stops it cleanly at any time.
# Environment: OUT (default out/run), DEMO_MODEL, DEMO_IMAGES (default 40),
# AGENT (default bin/shortcut-agent).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out/run}
model=${DEMO_MODEL:-configs/demo/fashion-resnet8-int8.tflite}
images=${DEMO_IMAGES:-40}
agent=${AGENT:-bin/shortcut-agent}
mkdir -p "$out"
out=$(cd "$out" && pwd)
model=$(cd "$(dirname "$model")" && pwd)/$(basename "$model")

free_port() {
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

echo "== 1. the model: $model"
"$agent" --check-model --model "$model"

echo "== 2. a video of $images Fashion-MNIST test images -> $out/demo.avi"
go run ./internal/cmd/demovideo --count "$images" --frames 5 --fps 10 --out "$out/demo.avi"

# A random start, so that two demos started at once (two test runs, a user's
# and CI's) do not both find the same port free before either binds it.
mqtt_port=$(free_port $((20000 + RANDOM % 5000)))
http_port=$(free_port $((25000 + RANDOM % 5000)))
cat >"$out/agent.yaml" <<YAML
# Written by scripts/run.sh; every key is documented in configs/agent.yaml.
device:
  id: demo
model:
  path: $model
  watch: false
cameras:
  - id: video
    source: file:$out/demo.avi
    fps: 10
    queue: 2
decision:
  threshold: 0.6
  frames: 3
  release: 0.4
mqtt:
  predictions:
    enabled: true
    max_rate: 0
embedded_broker:
  address: 127.0.0.1:$mqtt_port
http:
  address: 127.0.0.1:$http_port
learning:
  enabled: true
  state_dir: $out/state
log:
  level: warn
YAML
echo "== 3. shortcut-agent: camera file:$out/demo.avi, embedded MQTT broker on 127.0.0.1:$mqtt_port, HTTP on 127.0.0.1:$http_port"
"$agent" -config "$out/agent.yaml" -check-config
go build -o "$out/demowatch" ./internal/cmd/demowatch
# demowatch starts the agent and ends when it exits, after taking the
# messages still on their way; it fails if the agent fails, or falls silent
# for seconds without exiting.
"$out/demowatch" --broker "tcp://127.0.0.1:$mqtt_port" --truth "$out/demo.avi.csv" \
  -- "$agent" -config "$out/agent.yaml" --exit-when-done &
watch_pid=$!
trap 'kill -TERM $watch_pid 2>/dev/null; wait $watch_pid; exit 130' INT TERM
sleep 1
curl -fsS "http://127.0.0.1:$http_port/healthz" 2>/dev/null | head -c 300 && echo || true
wait $watch_pid
