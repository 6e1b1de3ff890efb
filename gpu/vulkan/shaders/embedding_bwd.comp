#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// dtable[ids[i], c] += dy[i, c], one invocation per column, rows in order
// (repeated ids accumulate without atomics).
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer DT { float dtable[]; };
layout(std430, binding = 1) readonly buffer DY { float dy[]; };
layout(std430, binding = 2) readonly buffer Ids { int ids[]; };
layout(push_constant) uniform P { uint N; uint C; } p;
void main() {
	uint c = gid();
	if (c >= p.C) return;
	for (uint i = 0u; i < p.N; i++) dtable[uint(ids[i]) * p.C + c] += dy[i * p.C + c];
}
