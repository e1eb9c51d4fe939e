#!/usr/bin/env bash
# `make fresh-check`: proves the README's two commands on a fresh machine.
#
# Builds a minimal Debian 12 root (debootstrap --variant=minbase bookworm, from
# the apt mirror this machine uses), gives it only what the README tells a user
# to have (root, Go 1.26 on PATH, git, make, ca-certificates), clones this
# repository's committed HEAD into it and runs `make run` and then `make test`
# there exactly as written, printing each one's time and result. Whatever fails
# there is an install step that scripts/setup.sh lacks.
#
#   scripts/fresh-check.sh [--keep] [--only run|test] [DIR]
#
# DIR (default /var/tmp/shortcut-fresh; outside the checkout, or `go ./...`
# would walk into the root's Go tree) holds the root and the logs (DIR/run.log,
# DIR/test.log). --keep leaves the root for a look afterwards (chroot DIR/root);
# by default it is removed after the check. Needs root and about 8 GB of disk.
#
# What the root shares with this machine, and why: /proc, /sys and /dev
# (mounted, as on any machine); this machine's Go, read-only (the README asks
# the user for Go 1.26 on PATH); the extra CA certificates of
# /usr/local/share/ca-certificates, read-only (the package registries are
# reached through this machine's TLS setup; without them npm fails with
# SELF_SIGNED_CERT_IN_CHAIN); /etc/resolv.conf, the apt sources and the apt
# settings that reach the mirror (copied). Nothing else: no package, no Go
# module cache, no node_modules.
#
# Every mount is undone on every exit path (an error, Ctrl-C, a kill).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

keep=0
only=
dir=
while (($#)); do
	case $1 in
	--keep) keep=1 ;;
	--only) only=$2; shift ;;
	-h | --help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "fresh-check: unknown option $1" >&2; exit 2 ;;
	*) dir=$1 ;;
	esac
	shift
done
case $only in "" | run | test) ;; *) echo "fresh-check: --only run or --only test" >&2; exit 2 ;; esac
dir=${dir:-/var/tmp/shortcut-fresh}
case $(realpath -m "$dir")/ in
"$repo"/*) echo "fresh-check: DIR must be outside the checkout ($repo): go ./... would walk into the root" >&2; exit 2 ;;
esac
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
root=$dir/root

say() { printf 'fresh-check: %s\n' "$*"; }
die() { say "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, chroot and mounts need it)"
command -v go >/dev/null || die "Go is not on PATH"
goroot=$(go env GOROOT)
[ -x "$goroot/bin/go" ] || die "no go binary under GOROOT $goroot"
head=$(git rev-parse HEAD) || die "not a git checkout"
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
	say "note: uncommitted changes are not checked; the root gets HEAD (${head:0:7})"
fi

# The mirror this machine's apt uses for bookworm main.
mirror=
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
	mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
	mirror=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list)
fi
[ -n "$mirror" ] || die "cannot find this machine's Debian mirror in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"

# ---- mounts, and undoing them on every exit path ------------------------------

mounted=()
mnt() { # mnt TARGET MOUNT-ARGS...: mounts and records TARGET for cleanup
	local target=$1
	shift
	mkdir -p "$target"
	mount "$@" "$target"
	mounted+=("$target")
}
cleanup() {
	local rc=$? i
	trap - EXIT INT TERM
	# Processes still running in the root (a broker a test started, a build)
	# hold its mounts: end them first.
	if [ -d "$root" ]; then
		for p in /proc/[0-9]*; do
			if [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ]; then
				kill -KILL "${p#/proc/}" 2>/dev/null || true
			fi
		done
	fi
	for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
		umount -R "${mounted[i]}" 2>/dev/null || umount -R -l "${mounted[i]}" 2>/dev/null || true
	done
	mounted=()
	if grep -q " $root[/ ]" /proc/self/mountinfo 2>/dev/null; then
		say "warning: something is still mounted under $root; not removing it" >&2
	elif [ "$keep" = 0 ] && [ -d "$root" ]; then
		rm -rf --one-file-system "$root"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted" >&2; exit 130' INT TERM

# ---- the root --------------------------------------------------------------

if ! command -v debootstrap >/dev/null; then
	say "installing debootstrap on this machine"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null ||
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; } ||
		die "cannot install debootstrap"
fi
if grep -q " $root[/ ]" /proc/self/mountinfo; then
	die "$root has mounts from an earlier run: umount -R them first"
fi
rm -rf --one-file-system "$root"
t0=$(date +%s)
say "debootstrap --variant=minbase bookworm $root $mirror"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$dir/debootstrap.log" 2>&1 ||
	{ tail -n 20 "$dir/debootstrap.log" >&2; die "debootstrap failed (log: $dir/debootstrap.log)"; }
say "root made in $(($(date +%s) - t0)) s ($(du -sh --one-file-system "$root" | cut -f1))"

# apt inside the root: this machine's sources and the settings that reach them.
cp /etc/apt/sources.list.d/*.sources "$root/etc/apt/sources.list.d/" 2>/dev/null || true
[ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$root/etc/apt/"
for f in /etc/apt/apt.conf.d/*; do
	grep -qs 'Acquire::' "$f" && cp "$f" "$root/etc/apt/apt.conf.d/"
done
cp /etc/resolv.conf "$root/etc/resolv.conf"

# The root a mount point of its own, as / is on any machine: unshare -m
# (the package install test's private mount namespace) changes the
# propagation of /, which fails where / is a plain directory of a chroot.
mnt "$root" --bind "$root"
mnt "$root/proc" -t proc proc
mnt "$root/sys" --rbind /sys
mount --make-rslave "$root/sys"
mnt "$root/dev" --rbind /dev
mount --make-rslave "$root/dev"
mnt "$root/usr/local/go" --bind -o ro "$goroot"
if [ -d /usr/local/share/ca-certificates ]; then
	mnt "$root/usr/local/share/ca-certificates" --bind -o ro /usr/local/share/ca-certificates
fi

# What the README tells a user to have: git, make, ca-certificates.
in_root() {
	chroot "$root" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 \
		PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		/bin/bash -c "$1"
}
say "apt-get install git make ca-certificates (the README's prerequisites)"
in_root 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git make ca-certificates && update-ca-certificates' \
	>"$dir/prereq.log" 2>&1 || { tail -n 20 "$dir/prereq.log" >&2; die "installing the prerequisites failed"; }
in_root 'go version' | sed 's/^/fresh-check: /'

say "git clone $repo (${head:0:7}) into the root"
git clone -q --no-hardlinks "$repo" "$root/root/shortcut"
git -C "$root/root/shortcut" checkout -q "$head"

# ---- the README's two commands ---------------------------------------------

results=()
failed=0
run_cmd() { # run_cmd NAME
	local name=$1 start secs rc=0
	say "make $name (log: $dir/$name.log)"
	start=$(date +%s)
	# In the background and waited for, so that Ctrl-C or a kill of this script
	# runs the cleanup at once (it ends what runs in the root).
	in_root "cd /root/shortcut && make $name" >"$dir/$name.log" 2>&1 &
	wait $! || rc=$?
	secs=$(($(date +%s) - start))
	if [ "$rc" = 0 ]; then
		results+=("make $name: ok in ${secs} s")
	else
		results+=("make $name: FAILED (exit $rc) after ${secs} s")
		failed=1
		say "make $name failed; the end of its log:"
		tail -n 40 "$dir/$name.log" | sed 's/^/    /'
		{ grep -E '^(--- FAIL|FAIL)' "$dir/$name.log" || true; } | sed 's/^/    /' | head -40
	fi
	# The summary lines a reader wants: the demo's score, the test packages.
	case $name in
	run) { grep -E 'predictions, mean inference|^setup: ' "$dir/run.log" || true; } | sed 's/^/    /' ;;
	test) printf '    %s\n' "$(grep -cE '^ok ' "$dir/test.log") go test packages ok, $(grep -cE '^(--- FAIL|FAIL)' "$dir/test.log") FAIL lines" ;;
	esac
}
[ "$only" = test ] || run_cmd run
[ "$only" = run ] || run_cmd test

say "summary (Debian 12 minbase, $(nproc) cores, ${head:0:7}):"
printf '  %s\n' "${results[@]}"
say "total $(($(date +%s) - t0)) s"
[ "$failed" = 0 ] || exit 1
say "ok"
