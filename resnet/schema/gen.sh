#!/bin/sh
# Regenerates resnet/internal/tflfb from tflite.fbs. Needs flatc (Debian
# package flatbuffers-compiler; the committed code was made with flatc 2.0.8).
# The generated code is committed, so ordinary builds do not need flatc.
set -eu
cd "$(dirname "$0")"
out=../internal/tflfb
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flatc --go --gen-object-api --gen-onefile --go-namespace tflfb -o "$tmp" tflite.fbs
rm -f "$out"/*_generated.go
mkdir -p "$out"
cp "$tmp"/*.go "$out"/
gofmt -w "$out"
