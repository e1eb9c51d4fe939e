#!/usr/bin/env bash
# Cross-compiles shortcut-agent and shortcut-train for linux/arm64 with cgo
# (gocv over OpenCV 4.6), from an amd64 Debian 12 machine.
#
#   scripts/cross-arm64.sh [--armnn] [OUTDIR]   build (default OUTDIR: bin/arm64)
#   scripts/cross-arm64.sh sysroot               make the sysroot, print its path
#   scripts/cross-arm64.sh env                   print the cgo environment (eval-able)
#
# Why a sysroot and not `apt-get install libopencv-dev:arm64`: Debian 12's
# OpenCV -dev packages are not multiarch co-installable; installing the arm64
# ones removes the amd64 libopencv-dev that the native build needs (apt
# proposes removing 33 packages). So the arm64 OpenCV (and Arm NN) packages
# are downloaded with `apt-get download` and unpacked with `dpkg -x` into a
# folder of our own; the machine's package state is not touched.
#
# Needs (amd64): gcc-aarch64-linux-gnu g++-aarch64-linux-gnu pkg-config, and
# `dpkg --add-architecture arm64 && apt-get update` so that apt knows arm64
# packages. The sysroot (about 250 MB of .debs, 1 GB unpacked) is made once,
# under $SHORTCUT_ARM64_SYSROOT (default ~/.cache/shortcut/sysroot-arm64),
# and remade when the package list below changes.
#
# --armnn also builds the agent with the `armnn` tag (resnet/armnn over Debian's
# Arm NN 20.08) as OUTDIR/shortcut-agent-armnn.
set -euo pipefail
cd "$(dirname "$0")/.."

# The arm64 packages whose headers and libraries the build needs. Their
# runtime dependencies are added by apt-cache below.
OPENCV_MODULES=(calib3d contrib core dnn features2d flann highgui imgcodecs imgproc ml objdetect
	photo shape stitching superres video videoio videostab viz)
ARMNN_PACKAGES=(libarmnn-dev libarmnntfliteparser-dev libarmnn22 libarmnntfliteparser22
	libarmnn-cpuref-backend22 libarmnn-cpuacc-backend22 libarmnn-gpuacc-backend22)
TRIPLE=aarch64-linux-gnu

sysroot=${SHORTCUT_ARM64_SYSROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/shortcut/sysroot-arm64}

die() { echo "cross-arm64: $*" >&2; exit 1; }

need_tools() {
	for t in "$TRIPLE-gcc" "$TRIPLE-g++" pkg-config dpkg-deb apt-get apt-cache; do
		command -v "$t" >/dev/null || die "$t not found: apt-get install -y gcc-$TRIPLE g++-$TRIPLE pkg-config"
	done
	dpkg --print-foreign-architectures | grep -qx arm64 ||
		die "apt does not know arm64 packages: run 'dpkg --add-architecture arm64 && apt-get update'"
	apt-cache show libopencv-core406:arm64 >/dev/null 2>&1 ||
		die "no arm64 package lists: run 'apt-get update' (after dpkg --add-architecture arm64)"
}

# package_list prints every arm64 package to unpack: the -dev packages
# themselves (headers, .so links, opencv4.pc) without their -dev
# dependencies, plus the runtime closure of the libraries.
package_list() {
	local devs=(libopencv-dev) rts=()
	for m in "${OPENCV_MODULES[@]}"; do
		devs+=("libopencv-$m-dev")
		rts+=("libopencv-${m}406")
	done
	printf '%s:arm64\n' "${devs[@]}" libarmnn-dev libarmnntfliteparser-dev
	apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
		--no-replaces --no-enhances "${rts[@]/%/:arm64}" "${ARMNN_PACKAGES[@]/%/:arm64}" 2>/dev/null |
		grep -E '^[^ <].*:arm64$'
}

make_sysroot() {
	need_tools
	local list key
	list=$(package_list | sort -u)
	[ -n "$list" ] || die "apt-cache found no arm64 packages"
	# The key covers the names and the candidate versions.
	key=$(apt-cache policy $list 2>/dev/null | grep -E '^[^ ]|Candidate' | sha256sum | cut -c1-16)
	if [ -f "$sysroot/.stamp" ] && [ "$(cat "$sysroot/.stamp")" = "$key" ]; then
		return 0
	fi
	echo "cross-arm64: making the arm64 sysroot in $sysroot ($(wc -l <<<"$list") packages)" >&2
	local debs="$sysroot.debs"
	mkdir -p "$debs"
	rm -rf "$sysroot.tmp"
	mkdir -p "$sysroot.tmp"
	# apt-get download fetches into the current folder, skipping nothing: only
	# ask for the files not yet there.
	local want=() p name ver
	# One apt-cache call for every candidate version (one call per package
	# takes minutes).
	while read -r p ver; do
		name=${p%:arm64}
		ver=${ver//:/%3a}
		[ -f "$debs/${name}_${ver}_arm64.deb" ] || want+=("$p")
	done < <(apt-cache policy $list 2>/dev/null | awk '/^[^ ].*:$/{p=substr($0,1,length($0)-1)} /Candidate:/ && $2!="(none)"{print p, $2}')
	if ((${#want[@]})); then
		(cd "$debs" && apt-get download -q "${want[@]}") >&2 ||
			die "apt-get download failed (network, or stale lists: run apt-get update)"
	fi
	local d
	for d in "$debs"/*_arm64.deb; do
		dpkg-deb -x "$d" "$sysroot.tmp"
	done
	fix_links "$sysroot.tmp"
	rm -rf "$sysroot"
	mv "$sysroot.tmp" "$sysroot"
	echo "$key" >"$sysroot/.stamp"
}

# fix_links makes the unpacked tree usable from outside: absolute symlinks
# become relative (else the linker would follow them into the host's /usr),
# and the alternatives that dpkg would have set up (BLAS, LAPACK) are made.
fix_links() {
	local root=$1 l t
	while IFS= read -r -d '' l; do
		t=$(readlink "$l")
		ln -sfnr "$root$t" "$l"
	done < <(find "$root" -type l -lname '/*' -print0)
	local lib=$root/usr/lib/$TRIPLE alt cand
	for alt in libblas.so.3 liblapack.so.3; do
		[ -e "$lib/$alt" ] && continue
		for cand in "$lib"/blas/"$alt" "$lib"/lapack/"$alt" "$lib"/openblas-pthread/"$alt"; do
			if [ -e "$cand" ]; then
				ln -sfnr "$cand" "$lib/$alt"
				break
			fi
		done
	done
}

# libdirs lists the sysroot folders the arm64 loader searches: the
# multiarch ones, /usr/lib (libhdf4-0-alt puts its libraries there, for
# GDAL) and the alternatives' folders.
libdirs() {
	local lib=$sysroot/usr/lib/$TRIPLE
	echo "$lib" "$sysroot/lib/$TRIPLE" "$sysroot/usr/lib" "$lib/blas" "$lib/lapack"
}

# print_env writes the cgo environment for the arm64 build.
print_env() {
	local lib=$sysroot/usr/lib/$TRIPLE ld="" d
	for d in $(libdirs); do
		ld+=" -Wl,-rpath-link,$d"
	done
	cat <<EOF
export GOOS=linux GOARCH=arm64 CGO_ENABLED=1
export CC=$TRIPLE-gcc CXX=$TRIPLE-g++
export PKG_CONFIG_SYSROOT_DIR=$sysroot
export PKG_CONFIG_LIBDIR=$lib/pkgconfig:$sysroot/usr/share/pkgconfig
export CGO_CPPFLAGS="-I$sysroot/usr/include -I$sysroot/usr/include/$TRIPLE"
export CGO_LDFLAGS="-L$lib -L$sysroot/lib/$TRIPLE$ld"
export SHORTCUT_ARM64_SYSROOT=$sysroot
EOF
}

case ${1:-} in
sysroot)
	make_sysroot
	echo "$sysroot"
	exit 0
	;;
env)
	make_sysroot
	print_env
	exit 0
	;;
esac

armnn=0
if [ "${1:-}" = --armnn ]; then
	armnn=1
	shift
fi
out=${1:-bin/arm64}
make_sysroot
eval "$(print_env)"
mkdir -p "$out"
command -v go >/dev/null || die "go not found: put Go 1.26 on PATH"
# The version the binaries report (--version, sw_version, shortcut_build_info).
build_version=${BUILD_VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
ldflags="-X github.com/shortcut-edge/shortcut/internal/buildinfo.Version=$build_version"
echo "cross-arm64: building $out/shortcut-agent $out/shortcut-train $build_version (linux/arm64, cgo)" >&2
go build -trimpath -ldflags "$ldflags" -o "$out/shortcut-agent" ./cmd/agent
go build -trimpath -ldflags "$ldflags" -o "$out/shortcut-train" ./cmd/train
if ((armnn)); then
	go build -trimpath -ldflags "$ldflags" -tags armnn -o "$out/shortcut-agent-armnn" ./cmd/agent
fi
file "$out"/shortcut-* 2>/dev/null | sed 's/, BuildID[^,]*//' >&2 || true
