#!/bin/sh
# Compiles armnn-run against Debian's Arm NN 20.08.
#
#   tools/armnn-run/build.sh OUTPUT_PATH
#
# Needs: g++ and the Debian packages libarmnn-dev libarmnntfliteparser-dev
# libarmnn-cpuref-backend22 (arm64 boards may add libarmnn-cpuacc-backend22).
# CXX and CXXFLAGS override the compiler and its flags.
set -eu
if [ $# -ne 1 ]; then
	echo "usage: $0 OUTPUT_PATH" >&2
	exit 2
fi
out=$1
here=$(cd "$(dirname "$0")" && pwd)
cxx=${CXX:-g++}
if ! command -v "$cxx" >/dev/null 2>&1; then
	echo "build.sh: $cxx not found: apt-get install -y g++" >&2
	exit 1
fi
for h in /usr/include/armnn/ArmNN.hpp /usr/include/armnnTfLiteParser/ITfLiteParser.hpp; do
	if [ ! -f "$h" ]; then
		echo "build.sh: $h is missing: apt-get install -y libarmnn-dev libarmnntfliteparser-dev libarmnn-cpuref-backend22" >&2
		exit 1
	fi
done
# -O1: the runner only moves tensors in and out; Arm NN does the work.
exec "$cxx" -std=c++14 ${CXXFLAGS:--O1 -Wall} -o "$out" "$here/armnn_run.cpp" -larmnnTfLiteParser -larmnn
