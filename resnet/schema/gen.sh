#!/bin/sh
# Regenerates the Go code made from the schemas here, with flatc (Debian
# package flatbuffers-compiler; the committed code was made with flatc 2.0.8):
#   tflite.fbs   -> resnet/internal/tflfb   (the .tflite model format)
#   metadata.fbs -> resnet/internal/tflmeta (the TFLITE_METADATA entry)
# The generated code is committed, so ordinary builds do not need flatc.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gen() { # gen SCHEMA PACKAGE
	flatc --go --gen-object-api --gen-onefile --go-namespace "$2" -o "$tmp/$2" "$1"
	out=../internal/$2
	rm -f "$out"/*_generated.go
	mkdir -p "$out"
	cp "$tmp/$2"/*.go "$out"/
	gofmt -w "$out"
}
gen tflite.fbs tflfb
gen metadata.fbs tflmeta
