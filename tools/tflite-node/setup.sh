#!/bin/sh
# Installs the real TFLite builds (LiteRT.js, tfjs-tflite) that Shortcut's
# tests use as a witness. Idempotent: runs `npm ci` only when node_modules is
# missing or package-lock.json changed since the last install.
set -eu
cd "$(dirname "$0")"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "tflite-node setup: node and npm (Node.js 20 or newer) are needed; install them (Debian: apt-get install nodejs npm, or NodeSource 20.x)" >&2
	exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
	echo "tflite-node setup: node $(node --version) is too old; Node.js 20 or newer is needed" >&2
	exit 1
fi

stamp=node_modules/.shortcut-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	exit 0
fi
echo "tflite-node setup: npm ci (package-lock.json changed or node_modules missing)"
npm ci --no-audit --no-fund
echo "$want" > "$stamp"
