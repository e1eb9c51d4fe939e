#!/usr/bin/env bash
# `make bench`: prints the benchmark tables. Each section is measured in this
# run, beside its peer where there is one.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== runtime: int8 ResNet-50 224x224 (ours vs a real TFLite, same run)"
go run ./internal/cmd/benchtable -train bin/shortcut-train -iters "${BENCH_ITERS:-5}"
for pkg in ./camera/...; do
  if ls ${pkg%/...}/*_test.go >/dev/null 2>&1; then
    echo "== ${pkg}: go test -bench"
    go test -run '^$' -bench . -benchtime "${BENCHTIME:-20x}" "$pkg"
  fi
done
