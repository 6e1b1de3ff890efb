#!/bin/sh
# Builds the CPU stand-ins for libcuda.so.1 and libcublas.so.12 (emu.cpp,
# cublas.cpp) into the folder $1. Run the backend's tests against them with
#   LD_LIBRARY_PATH=$1 go test ./gpu/cuda/
# (TestEmulated does this by itself when g++ is installed.)
set -eu
out=$1
src=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
# Shared memory: the dynamic array becomes a pointer the emulator sets per
# launch; static __shared__ arrays become function statics (blocks run one
# at a time, their threads are coroutines of one OS thread).
sed -e 's/extern __shared__ float smem\[\];/float* smem = emuDynSmem();/' \
	-e 's/__shared__/static/g' \
	-e 's/^#pragma unroll$//' \
	"$src/../../kernels.cu" >"$out/kernels_emu.inc"
${CXX:-g++} -std=c++20 -O1 -g -fPIC -shared -Wno-unused-function -I"$out" -o "$out/libcuda.so.1" "$src/emu.cpp"
${CXX:-g++} -std=c++20 -O1 -fPIC -shared -o "$out/libcublas.so.12" "$src/cublas.cpp"
