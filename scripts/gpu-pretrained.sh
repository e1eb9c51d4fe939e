#!/usr/bin/env bash
# Issue 16 section 5 on the lent GPU machine: torchvision's resnet18 / resnet50 (random init, every
# batch norm with non-trivial statistics), saved there by PyTorch itself as .pth (torch.save) and
# safetensors, through `shortcut-train pretrained` + `infer`, against PyTorch's own forward.
#
#   here:     make gpu-prep                  # bin/shortcut-train (no Go on the GPU machine)
#   there:    scripts/gpu-pretrained.sh      (carry: bin)
#   dry run:  GPU_PRETRAINED_DRY=1 scripts/gpu-pretrained.sh   (here, no PyTorch: pure-python
#             weights as safetensors and as an imitation of torch.save's .pth, our side only)
#
# Steps: (1) scripts/gpu/torch_pretrained.py prepare: weights DIR/ARCH.{pth,safetensors}, inputs
# DIR/xI.npy (NHWC float32 [1,224,224,3], normalised), PyTorch's logits / scores / pooled
# embedding on the CPU in float32 and, with CUDA, on the GPU with TF32 off. (2) for each arch and
# format: `pretrained --arch ARCH --weights FILE --classes 1000 --input 224 --out DIR` (format
# detected from the content: the .pth goes through our safe unpickler), then `infer` per image.
# (3) torch_pretrained.py compare: table + `pytorch-check: arch=... format=... device=...` lines,
# PASS/FAIL against the tolerances its docstring explains (CPU decides; CUDA is informational).
# Results go to $OUT (the device tool brings back 8 files at most) or out/gpu-pretrained:
# summary.txt (last), prepare.log, ours.log, manifest.json.
#
# Settings (environment): ARCHS (resnet18,resnet50), IMAGES (4; at least 2: the check wants the
# scores to differ between images), SEED (16), THREADS (infer's
# --threads; 4), BIN (bin/shortcut-train), PYTHON (python3; /usr/bin/python3 when only that one has
# torch, e.g. Debian's python3-torch), TOL_SCORES / TOL_LOGITS_REL / TOL_EMB_REL (1e-4 each),
# TORCH_BN_EPS (negative control: e.g. 1e-3 makes PyTorch's forward use another batch-norm eps
# than the files hold; every CPU line must then FAIL).
# Without a GPU the non-dry run works too wherever PyTorch is (CPU lines only): `make test` runs it
# with Debian 12's python3-torch 1.13.1 and python3-torchvision 0.14.1 (scripts/setup.sh installs
# them; no safetensors package there, so the pure-python writer makes that file).
set -euo pipefail
cd "$(dirname "$0")/.."

DRY=${GPU_PRETRAINED_DRY:-0}
BIN=${BIN:-bin/shortcut-train}
RES=${GPU_PRETRAINED_OUT:-${OUT:-out/gpu-pretrained}}
PYTHON=${PYTHON:-python3}
ARCHS=${ARCHS:-resnet18,resnet50}
IMAGES=${IMAGES:-4}
SEED=${SEED:-16}
THREADS=${THREADS:-4}
PY=scripts/gpu/torch_pretrained.py

die() { echo "gpu-pretrained: $*" | tee -a "${SUMMARY:-/dev/null}" >&2; exit 1; }
[ -x "$BIN" ] || die "$BIN missing: run 'make gpu-prep' here and carry bin/"
mkdir -p "$RES"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-pretrained.XXXXXX")
SUMMARY=$WORK/summary.txt
: >"$SUMMARY"
collect() {
	for f in prepare.log ours.log manifest.json summary.txt; do
		[ -f "$WORK/$f" ] && cp "$WORK/$f" "$RES/$f"
	done
	rm -rf "$WORK"
}
trap collect EXIT
say() { echo "$*" | tee -a "$SUMMARY"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# Syntax of the whole file, the PyTorch code paths included (no __pycache__ left in the tree).
"$PYTHON" -c 'import sys; compile(open(sys.argv[1]).read(), sys.argv[1], "exec")' "$PY" || die "$PY does not compile"
if [ "$DRY" = 1 ]; then
	PREP_EXTRA=(--dry)
	say "gpu-pretrained DRY RUN: no PyTorch; pure-python weights; our side only"
else
	PREP_EXTRA=()
	if ! "$PYTHON" -c 'import torch' 2>/dev/null && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
		PYTHON=/usr/bin/python3
	fi
	"$PYTHON" -c 'import torch' 2>/dev/null || die "$PYTHON has no PyTorch (import torch fails); GPU_PRETRAINED_DRY=1 runs without it"
	say "gpu-pretrained on $(nvidia-smi -L 2>/dev/null | head -1 || echo 'no nvidia-smi'); $("$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda" if torch.cuda.is_available() else "no cuda")')"
fi
say "binary $BIN ($("$BIN" version 2>/dev/null | head -1 || true)); archs $ARCHS; $IMAGES images; results $RES (summary.txt, prepare.log, ours.log, manifest.json)"
"$PYTHON" "$PY" selftest 2>&1 | tee -a "$SUMMARY" || die "torch_pretrained.py selftest failed"

# 1. Weights, inputs, PyTorch's outputs.
say ""
say "== prepare =="
t0=$(date +%s)
PYTHONUNBUFFERED=1 "$PYTHON" "$PY" prepare --work "$WORK" --archs "$ARCHS" --images "$IMAGES" --seed "$SEED" "${PREP_EXTRA[@]}" \
	>"$WORK/prepare.out" 2>"$WORK/prepare.log" || {
	tail -20 "$WORK/prepare.log" >&2
	die "torch_pretrained.py prepare failed; log in $RES/prepare.log"
}
tee -a "$SUMMARY" <"$WORK/prepare.log"
say "prepare took $(($(date +%s) - t0)) s"

# 2. Our side: pretrained (both formats, detected from the content) + infer per image.
say ""
say "== ours: pretrained + infer =="
fails=0
for arch in ${ARCHS//,/ }; do
	for fmt in pth safetensors; do
		w=$WORK/$arch.$fmt
		d=$WORK/ours-$arch-$fmt
		t0=$(date +%s.%N)
		echo "\$ $BIN pretrained --arch $arch --weights $w --classes 1000 --input 224 --out $d" >>"$WORK/ours.log"
		if ! "$BIN" pretrained --arch "$arch" --weights "$w" --classes 1000 --input 224 --out "$d" >>"$WORK/ours.log" 2>&1; then
			say "ours arch=$arch format=$fmt: pretrained FAILED: $(tail -1 "$WORK/ours.log")"
			fails=$((fails + 1))
			continue
		fi
		t1=$(date +%s.%N)
		ok=1
		for ((i = 0; i < IMAGES; i++)); do
			if ! "$BIN" infer --model "$d/model-float.tflite" --input "$WORK/x$i.npy" --output "$d/s$i.npy" --output "$d/e$i.npy" \
				--threads "$THREADS" >>"$WORK/ours.log" 2>&1; then
				say "ours arch=$arch format=$fmt: infer on x$i.npy FAILED: $(tail -1 "$WORK/ours.log")"
				ok=0
				fails=$((fails + 1))
				break
			fi
		done
		t2=$(date +%s.%N)
		[ $ok = 1 ] && say "ours arch=$arch format=$fmt: pretrained $(secs "$t0" "$t1") s, infer x$IMAGES $(secs "$t1" "$t2") s, model-float.tflite $(stat -c %s "$d/model-float.tflite") bytes"
	done
done

# 3. Comparison.
say ""
say "== compare =="
set +e
"$PYTHON" "$PY" compare --work "$WORK" --archs "$ARCHS" --images "$IMAGES" 2>&1 | tee -a "$SUMMARY"
crc=${PIPESTATUS[0]}
set -e
say ""
say "summary in $RES/summary.txt"
[ "$fails" = 0 ] || die "$fails of our commands failed (see $RES/ours.log)"
[ "$crc" = 0 ] || die "the comparison FAILED"
