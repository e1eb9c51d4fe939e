# Shortcut: see README.md. `make test` and `make run` set up what they need.
SHELL := /bin/bash
GO ?= go
export CGO_ENABLED := 1
# Packages whose tests need only the CPU and the witness; heavy ones are listed
# explicitly so CI time stays predictable.
# The version both binaries report (--version, Home Assistant's sw_version,
# shortcut_build_info): git describe, or BUILD_VERSION=... make build.
BUILD_VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/shortcut-edge/shortcut/internal/buildinfo.Version=$(BUILD_VERSION)

.PHONY: all setup setup-run fresh-check build test vet fuzz run bench demo-model bench-kernels armcount cross-arm64 test-arm64 package gpu-prep gpu-check gpu-check-dry gpu-quant gpu-quant-dry gpu-pretrained gpu-pretrained-dry clean

all: build

# Two parts of one script: `setup-run` is what `make run` needs (OpenCV, GStreamer,
# Fashion-MNIST); `setup` adds what the tests and board builds need.
setup:
	@scripts/setup.sh test

setup-run:
	@scripts/setup.sh run

build:
	@mkdir -p bin
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/shortcut-train ./cmd/train
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/shortcut-agent ./cmd/agent

vet:
	$(GO) vet ./...

test: setup vet build
	$(GO) test -count=1 -timeout 40m ./...
	# The kernels' runner shares work between threads: under the race detector
	# (which also checks the kernels' unsafe pointer arithmetic, checkptr).
	$(GO) test -count=1 -race -short ./resnet/internal/fast/
	# The AVX-VNNI kernel (no CPU or emulator here has it) as its EVEX twin on AVX-512 VNNI.
	scripts/test-avxvnni.sh
	# PyTorch (Debian's python3-torch, CPU) as the witness of pretrained: torchvision's resnet18/50 saved by
	# torch.save and as safetensors, our model-float.tflite against PyTorch's forward.
	GPU_PRETRAINED_OUT=out/pytorch-check scripts/gpu-pretrained.sh
	# Again with gocv's Mat profile: fails on any Mat left unreleased.
	$(GO) test -count=1 -tags matprofile ./camera/...
	# The Arm NN backend (cgo, build tag armnn) against our runtime.
	$(GO) test -count=1 -tags armnn ./resnet/armnn/
	# ONNX Runtime in-process (cgo, build tag onnxruntime) over the CPU library npm ships.
	$(GO) test -count=1 -tags onnxruntime ./resnet/onnxrt/ ./agent/classify/
	# arm64: kernels bit-exact with the reference, and an agent smoke test, under qemu-user.
	scripts/test-arm64.sh
	# The .deb packages: contents, unit verification, install/upgrade/remove/purge in an overlay.
	scripts/package.sh --check
	$(MAKE) --no-print-directory fuzz

# Each fuzz target runs a bounded number of executions (about 20 s here; 10 s
# for the fast decoders); crashers land in testdata/fuzz. Counts, not durations:
# Go 1.26's fuzz coordinator can fail a duration-bounded run with a bare
# "context deadline exceeded" when -fuzztime expires while a worker is mid-call
# (go.dev/issue/75804, fixed in Go 1.27; it failed CI once on FuzzReadPTHPickle,
# no crasher written). A count has no deadline to race.
fuzz:
	$(GO) test ./resnet -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime 100000x -fuzzminimizetime 2s
	$(GO) test ./resnet -run '^$$' -fuzz '^FuzzLoadMutated$$' -fuzztime 40000x -fuzzminimizetime 2s
	$(GO) test ./internal/npy -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime 500000x -fuzzminimizetime 2s
	$(GO) test ./train/pth -run '^$$' -fuzz '^FuzzReadPTH$$' -fuzztime 300000x -fuzzminimizetime 2s
	$(GO) test ./train/pth -run '^$$' -fuzz '^FuzzReadPTHPickle$$' -fuzztime 250000x -fuzzminimizetime 2s
	$(GO) test ./train/h5 -run '^$$' -fuzz '^FuzzReadH5$$' -fuzztime 250000x -fuzzminimizetime 2s

run: setup-run build
	@scripts/run.sh

# The README's two commands in a fresh minimal Debian 12 root (debootstrap):
# proves that setup installs everything. Not part of `make test` (about 30 min).
fresh-check:
	scripts/fresh-check.sh $(FRESH_ARGS)

bench: setup build
	@scripts/bench.sh

# Remakes configs/demo/fashion-resnet8-int8.tflite (the model make run uses)
# with our own train, export and quantize commands.
demo-model: build
	scripts/demo-model.sh

# Both binaries for linux/arm64 with cgo (Debian arm64 libraries unpacked in a sysroot).
cross-arm64: setup
	scripts/cross-arm64.sh bin/arm64

test-arm64: setup
	scripts/test-arm64.sh

# Debian packages for amd64 and arm64 (nfpm as a library, packaging/tool).
package: setup
	scripts/package.sh --check

# ResNet-50 224 per kernel path and thread count, with GMAC/s and % of peak;
# first one core's measured VPDPBUSD peak and what it makes ResNet-50's floor.
bench-kernels:
	$(GO) test -run '^$$' -bench VNNIPeak -benchtime 2000x ./resnet/internal/fast/
	$(GO) test -run '^$$' -bench ResNet50 -benchtime 20x ./resnet/interp/

# Instructions per ResNet-50 inference of the arm64 micro-kernels.
armcount:
	$(GO) run ./resnet/internal/fast/cmd/armcount

# Raspberry Pi 5 and 4 latency of int8 ResNet-50 224 by simulation (qemu trace priced by llvm-mca 19).
arm-estimate:
	scripts/arm-estimate.sh

# The GPU check (issue 4): build here, carry bin/shortcut-train and out/gpu-data
# to the lent GPU machine, run scripts/gpu-check.sh there.
gpu-prep:
	@mkdir -p bin out/gpu-data/fashion-mnist
	$(GO) build -ldflags='-s -w $(LDFLAGS)' -o bin/shortcut-train ./cmd/train
	cp /usr/share/datasets/fashion-mnist/*-ubyte.gz out/gpu-data/fashion-mnist/
	@du -sh bin/shortcut-train out/gpu-data

gpu-check:
	scripts/gpu-check.sh

# Here, on the CPU: the same commands with tiny settings.
gpu-check-dry: gpu-prep
	GPU_CHECK_DRY=1 scripts/gpu-check.sh

# Issue 5's full-size quantization table (ResNet-20, ResNet-50) on the lent GPU: same carry as
# gpu-check; afterwards, here: scripts/gpu-quant.sh --witness DIR-THAT-CAME-BACK.
gpu-quant:
	scripts/gpu-quant.sh

gpu-quant-dry: gpu-prep
	GPU_QUANT_DRY=1 ARCHS=resnet8,resnet50 scripts/gpu-quant.sh

# Issue 16's PyTorch witness (also in make test, on the CPU): torch.save .pth + safetensors of torchvision
# resnet18/resnet50, `pretrained` + `infer` against PyTorch's forward; on the lent GPU machine (carry:
# bin) it adds CUDA's forward. The dry run needs no PyTorch (our side only).
gpu-pretrained:
	scripts/gpu-pretrained.sh

gpu-pretrained-dry: gpu-prep
	GPU_PRETRAINED_DRY=1 scripts/gpu-pretrained.sh

clean:
	rm -rf bin out
