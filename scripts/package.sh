#!/usr/bin/env bash
# Builds the shortcut-agent and shortcut-train Debian packages (nfpm as a
# library, see packaging/tool) and, with --check, checks their contents and
# installs, upgrades, removes and purges them in a throw-away overlay of this
# machine's root.
#
#   scripts/package.sh [--check] [--armnn] [amd64] [arm64]   (default: both)
#
# Output: out/packages/shortcut-{agent,train}_<version>_<arch>.deb. VERSION overrides
# the version (default: from `git describe`, else 0.0.0~dev).
# --armnn builds the arm64 agent with the `armnn` tag (Arm NN backend) and
# adds libarmnn22/libarmnntfliteparser22 to Depends.
#
# The package: /usr/bin/shortcut-agent; /lib/systemd/system/shortcut-agent.service
# (configs/shortcut-agent.service with the binary in /usr/bin and the system
# user `shortcut` instead of DynamicUser); /etc/shortcut/agent.yaml as a
# conffile; the state folder /var/lib/shortcut, made by postinst and kept on
# remove and upgrade (purge deletes it). Depends are the packages that own
# the agent's shared libraries on this machine (the same names on arm64).
# shortcut-train's package (packaging/nfpm-train.yaml): /usr/bin/shortcut-train
# and its documents in /usr/share/doc/shortcut-train (the README, the road
# from weights to a board, IMPORT.md, EXPORT.md).
set -euo pipefail
cd "$(dirname "$0")/.."

check=0 armnn=0 arches=()
for a in "$@"; do
	case $a in
	--check) check=1 ;;
	--armnn) armnn=1 ;;
	amd64 | arm64) arches+=("$a") ;;
	*) echo "usage: $0 [--check] [--armnn] [amd64] [arm64]" >&2; exit 2 ;;
	esac
done
((${#arches[@]})) || arches=(amd64 arm64)

die() { echo "package: $*" >&2; exit 1; }

if [ -z "${VERSION:-}" ]; then
	# A tag's describe (v1.2.0-3-gabc -> 1.2.0+3+gabc); with no tag, a bare
	# commit hash would pass for a version when it starts with a digit.
	VERSION=$(git describe --tags 2>/dev/null | sed 's/^v//; s/-/+/g' || true)
	[[ $VERSION =~ ^[0-9] ]] || VERSION=0.0.0~dev+$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
fi
export VERSION
# The version the binaries report (--version, sw_version, shortcut_build_info);
# exported so that the arm64 cross build stamps the same one.
BUILD_VERSION=${BUILD_VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
export BUILD_VERSION
ldflags="-X github.com/shortcut-edge/shortcut/internal/buildinfo.Version=$BUILD_VERSION"
out=out/packages
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# The packaged unit: the repository's unit with two changes, each checked.
unit=$work/shortcut-agent.service
src=configs/shortcut-agent.service
grep -q '/usr/local/bin/shortcut-agent' "$src" || die "$src no longer runs /usr/local/bin/shortcut-agent: update scripts/package.sh"
grep -qx 'DynamicUser=yes' "$src" || die "$src no longer says DynamicUser=yes: update scripts/package.sh"
sed -e 's|/usr/local/bin/shortcut-agent|/usr/bin/shortcut-agent|g' \
	-e 's|^DynamicUser=yes$|# The package makes the system user shortcut (groups video, gpio).\nUser=shortcut\nGroup=shortcut|' \
	-e '/^SupplementaryGroups=/d' \
	-e 's|^#   install .*$|#   (installed by the shortcut-agent package)|' \
	"$src" >"$unit"

(cd packaging/tool && go build -o "$work/pkgtool" .) || die "building packaging/tool failed"

# deps_of prints the Debian packages owning the shared libraries a binary
# needs, looked up on this (amd64) machine.
deps_of() {
	local readelf=$1 bin=$2 lib path pkg deps=()
	for lib in $("$readelf" -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
		path=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ {print $NF; exit}')
		[ -n "$path" ] || die "no amd64 $lib on this machine to find its package (install the amd64 -dev packages: make setup)"
		pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1) ||
			true
		[ -n "$pkg" ] || pkg=$(dpkg -S "$path" 2>/dev/null | head -1 | cut -d: -f1)
		[ -n "$pkg" ] || die "no package owns $path"
		deps+=("$pkg")
	done
	printf '%s\n' "${deps[@]}" | sort -u | paste -sd, | sed 's/,/, /g'
}

for arch in "${arches[@]}"; do
	bindir=$work/$arch
	mkdir -p "$bindir"
	# GStreamer's plugins: OpenCV's GStreamer backend brings the libraries
	# but no elements (videoconvert, appsink: base; v4l2src, jpegdec,
	# rtspsrc: good).
	recommends="gstreamer1.0-plugins-base, gstreamer1.0-plugins-good, mosquitto-clients"
	readelf=aarch64-linux-gnu-readelf
	if [ "$arch" = amd64 ]; then
		readelf=readelf
		CGO_ENABLED=1 go build -trimpath -ldflags "$ldflags" -o "$bindir/shortcut-agent" ./cmd/agent
		CGO_ENABLED=1 go build -trimpath -ldflags "$ldflags" -o "$bindir/shortcut-train" ./cmd/train
		deps=$(deps_of readelf "$bindir/shortcut-agent")
	else
		flag=()
		((armnn)) && flag=(--armnn)
		scripts/cross-arm64.sh "${flag[@]}" "$bindir" >/dev/null
		if ((armnn)); then
			mv "$bindir/shortcut-agent-armnn" "$bindir/shortcut-agent"
			recommends="libarmnn-cpuacc-backend22, libarmnn-cpuref-backend22, $recommends"
		fi
		deps=$(deps_of aarch64-linux-gnu-readelf "$bindir/shortcut-agent")
	fi
	target=$out/shortcut-agent_${VERSION}_$arch.deb
	ARCH=$arch BINARY=$bindir/shortcut-agent UNIT=$unit DEPENDS=$deps RECOMMENDS=$recommends \
		"$work/pkgtool" -config packaging/nfpm.yaml -target "$target"
	echo "package: $target"
	dpkg-deb -I "$target" | sed -n 's/^ \(Package\|Version\|Architecture\|Depends\|Recommends\|Installed-Size\):/  \1:/p'
	# shortcut-train: the binary the same build made (cross-arm64.sh builds both).
	[ -x "$bindir/shortcut-train" ] || die "no $bindir/shortcut-train after the $arch build"
	target=$out/shortcut-train_${VERSION}_$arch.deb
	ARCH=$arch BINARY=$bindir/shortcut-train DEPENDS=$(deps_of "$readelf" "$bindir/shortcut-train") \
		"$work/pkgtool" -config packaging/nfpm-train.yaml -target "$target"
	echo "package: $target"
	dpkg-deb -I "$target" | sed -n 's/^ \(Package\|Version\|Architecture\|Depends\|Installed-Size\):/  \1:/p'
done

((check)) || exit 0

# ---- checks -----------------------------------------------------------------

echo "== dpkg-deb contents and control"
for arch in "${arches[@]}"; do
	deb=$out/shortcut-agent_${VERSION}_$arch.deb
	listing=$(dpkg-deb -c "$deb")
	for f in ./usr/bin/shortcut-agent ./lib/systemd/system/shortcut-agent.service ./etc/shortcut/agent.yaml \
		./usr/lib/sysusers.d/shortcut-agent.conf ./usr/share/doc/shortcut-agent/copyright \
		./usr/share/doc/shortcut-agent/LEARNING.md ./usr/share/doc/shortcut-agent/PAYLOADS.md \
		./usr/share/doc/shortcut-agent/cameras.md ./usr/share/doc/shortcut-agent/README.md; do
		grep -q " $f\$" <<<"$listing" || die "$deb lacks $f"
	done
	for p in gstreamer1.0-plugins-base gstreamer1.0-plugins-good; do
		dpkg-deb -f "$deb" Recommends | grep -qw "$p" || die "$deb does not recommend $p (cameras through GStreamer need it)"
	done
	# The installed configuration names the documents where the package puts them.
	dpkg-deb --fsys-tarfile "$deb" | tar -xO ./etc/shortcut/agent.yaml >"$work/agent.yaml"
	for d in LEARNING.md PAYLOADS.md cameras.md; do
		grep -q "/usr/share/doc/shortcut-agent/$d" "$work/agent.yaml" || die "$deb: /etc/shortcut/agent.yaml does not point to /usr/share/doc/shortcut-agent/$d"
	done
	grep -q ' ./var/lib/shortcut' <<<"$listing" && die "$deb ships /var/lib/shortcut: it must come from postinst so that remove keeps it"
	dpkg-deb -I "$deb" conffiles | grep -qx /etc/shortcut/agent.yaml || die "$deb: /etc/shortcut/agent.yaml is not a conffile"
	[ "$(dpkg-deb -f "$deb" Architecture)" = "$arch" ] || die "$deb: wrong Architecture"
	echo "  $deb: ok ($(wc -l <<<"$listing") entries)"
	deb=$out/shortcut-train_${VERSION}_$arch.deb
	listing=$(dpkg-deb -c "$deb")
	for f in ./usr/bin/shortcut-train ./usr/share/doc/shortcut-train/copyright ./usr/share/doc/shortcut-train/README.md \
		./usr/share/doc/shortcut-train/road.md ./usr/share/doc/shortcut-train/IMPORT.md ./usr/share/doc/shortcut-train/EXPORT.md; do
		grep -q " $f\$" <<<"$listing" || die "$deb lacks $f"
	done
	[ "$(dpkg-deb -f "$deb" Architecture)" = "$arch" ] || die "$deb: wrong Architecture"
	[ "$(dpkg-deb -f "$deb" Package)" = shortcut-train ] || die "$deb: wrong Package"
	# The binary inside is the architecture's own (the cross build, not this machine's).
	dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/shortcut-train >"$work/train-$arch"
	machine=$(readelf -h "$work/train-$arch" | sed -n 's/^ *Machine: *//p')
	case $arch in
	amd64) [[ $machine == *X86-64* ]] || die "$deb: /usr/bin/shortcut-train is for $machine" ;;
	arm64) [[ $machine == *AArch64* ]] || die "$deb: /usr/bin/shortcut-train is for $machine" ;;
	esac
	echo "  $deb: ok ($(wc -l <<<"$listing") entries, $machine)"
done
if command -v lintian >/dev/null; then
	for arch in "${arches[@]}"; do
		lintian --no-tag-display-limit "$out/shortcut-agent_${VERSION}_$arch.deb" || true
	done
fi

echo "== systemd-analyze verify"
command -v systemd-analyze >/dev/null || die "systemd-analyze not found: apt-get install -y systemd"
# verify checks that ExecStart's binary exists: use a copy of the unit that
# points at the binary just built.
vunit=$work/verify/shortcut-agent.service
mkdir -p "$work/verify"
sed "s|/usr/bin/shortcut-agent|$work/amd64/shortcut-agent|g" "$unit" >"$vunit"
[ -x "$work/amd64/shortcut-agent" ] || CGO_ENABLED=1 go build -ldflags "$ldflags" -o "$work/amd64/shortcut-agent" ./cmd/agent
systemd-analyze verify "$vunit"
echo "  ok"

# The install test runs the amd64 package only (it runs the binary).
deb=$out/shortcut-agent_${VERSION}_amd64.deb
if [ ! -f "$deb" ]; then
	echo "== install test skipped: build amd64 too (it runs the agent)"
	exit 0
fi
echo "== install, upgrade, remove, purge in an overlay of / ($deb)"
model=$work/model.tflite
go run ./cmd/train random-model --depth 20 --input 32,32,3 --classes 10 --int8 --out "$model" >/dev/null
ov=$work/ov
mkdir -p "$ov/upper" "$ov/work" "$ov/root"
cp "$deb" "$ov/upper.deb"
cp "$out/shortcut-train_${VERSION}_amd64.deb" "$ov/train.deb"
cp "$model" "$ov/model.tflite"
cat >"$ov/inside.sh" <<'EOS'
set -eu
fail() { echo "package check: $*" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
dpkg -i /pkg/upper.deb >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -i failed"; }
getent passwd shortcut >/dev/null || fail "no user shortcut after install"
id -nG shortcut | grep -qw video || fail "shortcut is not in group video"
[ "$(stat -c %U:%a /var/lib/shortcut)" = shortcut:750 ] || fail "/var/lib/shortcut is $(stat -c %U:%a /var/lib/shortcut)"
# --check-config loads model.path as the agent does: the model goes in first.
install -o shortcut -g shortcut -m 0640 /pkg/model.tflite /var/lib/shortcut/model.tflite
runuser -u shortcut -- /usr/bin/shortcut-agent --check-config -config /etc/shortcut/agent.yaml || fail "--check-config as shortcut"
runuser -u shortcut -- /usr/bin/shortcut-agent --check-model || fail "--check-model as shortcut"
echo "# local edit" >>/etc/shortcut/agent.yaml
echo "  installed: user, groups, state folder, config and model check as user shortcut: ok"
dpkg -i /pkg/upper.deb >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "upgrade (reinstall) failed"; }
[ -f /var/lib/shortcut/model.tflite ] || fail "upgrade lost /var/lib/shortcut/model.tflite"
grep -q '# local edit' /etc/shortcut/agent.yaml || fail "upgrade replaced the edited conffile"
echo "  upgrade keeps the model and the edited configuration: ok"
dpkg -r shortcut-agent >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -r failed"; }
[ ! -e /usr/bin/shortcut-agent ] || fail "remove left the binary"
[ -f /var/lib/shortcut/model.tflite ] || fail "remove lost /var/lib/shortcut/model.tflite"
[ -f /etc/shortcut/agent.yaml ] || fail "remove deleted the conffile"
echo "  remove keeps the model and the configuration: ok"
dpkg -P shortcut-agent >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -P failed"; }
[ ! -e /var/lib/shortcut ] || fail "purge left /var/lib/shortcut"
[ ! -e /etc/shortcut/agent.yaml ] || fail "purge left the conffile"
echo "  purge deletes state and configuration: ok"
dpkg -i /pkg/train.deb >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -i shortcut-train failed"; }
/usr/bin/shortcut-train --version | grep -q . || fail "shortcut-train --version printed nothing"
/usr/bin/shortcut-train random-model --depth 8 --input 28,28,1 --classes 10 --int8 --out /tmp/r8.tflite >/dev/null || fail "shortcut-train random-model"
[ -s /tmp/r8.tflite ] || fail "shortcut-train random-model wrote nothing"
dpkg -r shortcut-train >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -r shortcut-train failed"; }
[ ! -e /usr/bin/shortcut-train ] || fail "remove left /usr/bin/shortcut-train"
echo "  shortcut-train: install, --version, random-model, remove: ok"
EOS
# A private mount namespace: the overlay's writes land in $ov/upper and vanish
# with it; the machine's root is never written.
unshare -m sh -c '
	set -e
	mount -t overlay overlay -o lowerdir=/,upperdir="$1/upper",workdir="$1/work" "$1/root"
	mount --rbind /dev "$1/root/dev"
	mount -t proc proc "$1/root/proc"
	mkdir -p "$1/root/pkg"
	mount --bind "$1" "$1/root/pkg"
	chroot "$1/root" sh /pkg/inside.sh
' sh "$ov"
echo "package: checks passed"
