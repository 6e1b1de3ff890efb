// Shared by the llmlab compute shaders that run 256 invocations per
// workgroup. Kernels launched over a flat range use gid() with a 2-D grid
// of workgroups (each dimension is limited to 65535). (gl_WorkGroupSize
// cannot be used here: it is only defined after the shader's layout line.)
uint gid() {
	return (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 256u + gl_LocalInvocationID.x;
}

// Workgroup sums for one-workgroup-per-row kernels of 256 invocations:
// red holds the partials; every invocation gets the total.
#ifdef ROW_REDUCE
shared float red[256];
float rowSum(float v) {
	uint t = gl_LocalInvocationID.x;
	barrier();
	red[t] = v;
	barrier();
	for (uint s = 128u; s > 0u; s >>= 1) {
		if (t < s) red[t] += red[t + s];
		barrier();
	}
	return red[0];
}
float rowMax(float v) {
	uint t = gl_LocalInvocationID.x;
	barrier();
	red[t] = v;
	barrier();
	for (uint s = 128u; s > 0u; s >>= 1) {
		if (t < s) red[t] = max(red[t], red[t + s]);
		barrier();
	}
	return red[0];
}
#endif
