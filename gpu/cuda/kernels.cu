// llmlab's CUDA kernels, compiled at run time by NVRTC (no headers, no
// cuda_fp16.h: the one conversion is written out). Each kernel mirrors a
// method of the CPU backend (core/tensor/cpu*.go), which is the reference;
// names and argument order follow it: outputs first, then inputs, then
// dimensions. Backward kernels ADD into their gradient outputs.
//
// Launch shapes are chosen on the Go side (ops.go); each kernel states the
// one it expects. Row kernels take one block per row with blockDim.x a
// multiple of 32 (at most 1024); elementwise kernels use grid-stride loops.

typedef long long i64;

#define FULL_MASK 0xffffffffu
#define NEG_INF __int_as_float(0xff800000)

__device__ __forceinline__ float warpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
  return v;
}

__device__ __forceinline__ float warpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
  return v;
}

__device__ __forceinline__ double warpSumD(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
  return v;
}

// blockSum returns the sum of v over the block to every thread. sh holds
// 32 floats; the leading barrier lets calls follow each other.
__device__ float blockSum(float v, float* sh) {
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warpSum(v);
  __syncthreads();
  if (lane == 0) sh[w] = v;
  __syncthreads();
  v = lane < nw ? sh[lane] : 0.f;
  return warpSum(v);
}

__device__ float blockMax(float v, float* sh) {
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warpMax(v);
  __syncthreads();
  if (lane == 0) sh[w] = v;
  __syncthreads();
  v = lane < nw ? sh[lane] : NEG_INF;
  return warpMax(v);
}

#define GRID_STRIDE(i, n) \
  for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

// ---- storage-only weights: widened once into a float32 device copy ----

// halfToFloat widens IEEE binary16 bits exactly (subnormals, inf, NaN).
__device__ __forceinline__ float halfToFloat(unsigned short h) {
  unsigned s = (unsigned)(h & 0x8000) << 16, e = (h >> 10) & 31, m = h & 1023;
  if (e == 0) {
    float f = (float)m * 5.9604644775390625e-8f;  // m * 2^-24
    return s ? -f : f;
  }
  if (e == 31) return __uint_as_float(s | 0x7f800000u | (m << 13));
  return __uint_as_float(s | ((e + 112) << 23) | (m << 13));
}

extern "C" __global__ void widen_f16(float* dst, const unsigned short* src, i64 n) {
  GRID_STRIDE(i, n) dst[i] = halfToFloat(src[i]);
}

extern "C" __global__ void widen_bf16(float* dst, const unsigned short* src, i64 n) {
  GRID_STRIDE(i, n) dst[i] = __uint_as_float(((unsigned)src[i]) << 16);
}

// to_bf16: dst[i] = src[i] rounded to bfloat16 (nearest, ties to even;
// NaN stays NaN), for the tensor-core products of SetBF16.
extern "C" __global__ void to_bf16(unsigned short* dst, const float* src, i64 n) {
  GRID_STRIDE(i, n) {
    unsigned u = __float_as_uint(src[i]);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
      dst[i] = (unsigned short)((u >> 16) | 0x40);
    } else {
      dst[i] = (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
  }
}

// dequant_q8: dst[i] = int8(q[i]) * scale[i / cols] (one scale per row).
extern "C" __global__ void dequant_q8(float* dst, const signed char* q, const float* scale, i64 n, int cols) {
  GRID_STRIDE(i, n) dst[i] = (float)q[i] * scale[i / cols];
}

__constant__ float nf4Levels[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

// dequant_nf4: two codes per byte (even index in the low nibble), one
// absmax per block of 64 elements.
extern "C" __global__ void dequant_nf4(float* dst, const unsigned char* q, const float* absmax, i64 n) {
  GRID_STRIDE(i, n) {
    int code = (q[i >> 1] >> (4 * (int)(i & 1))) & 15;
    dst[i] = nf4Levels[code] * absmax[i >> 6];
  }
}

// ---- embedding ----

// embedding_fwd: dst (N, C) = table[ids[n], :]. ids are checked on the host.
extern "C" __global__ void embedding_fwd(float* dst, const int* ids, const float* table, int N, int C) {
  GRID_STRIDE(i, (i64)N * C) {
    i64 r = i / C, c = i % C;
    dst[i] = table[(i64)ids[r] * C + c];
  }
}

// embedding_bwd: dtable[ids[n], :] += dy[n, :] (repeated ids add up).
extern "C" __global__ void embedding_bwd(float* dtable, const int* ids, const float* dy, int N, int C) {
  GRID_STRIDE(i, (i64)N * C) {
    i64 r = i / C, c = i % C;
    atomicAdd(&dtable[(i64)ids[r] * C + c], dy[i]);
  }
}

// ---- norms: one block per row ----

extern "C" __global__ void layernorm_fwd(float* out, float* mean, float* rstd, const float* x, const float* w,
                                         const float* b, int N, int C, float eps) {
  __shared__ float sh[32];
  int r = blockIdx.x;
  const float* xr = x + (i64)r * C;
  float s = 0.f;
  for (int i = threadIdx.x; i < C; i += blockDim.x) s += xr[i];
  float m = blockSum(s, sh) / C;
  float vs = 0.f;
  for (int i = threadIdx.x; i < C; i += blockDim.x) {
    float d = xr[i] - m;
    vs += d * d;
  }
  float rs = 1.f / sqrtf(blockSum(vs, sh) / C + eps);
  if (threadIdx.x == 0) {
    mean[r] = m;
    rstd[r] = rs;
  }
  float* o = out + (i64)r * C;
  for (int i = threadIdx.x; i < C; i += blockDim.x) {
    float v = (xr[i] - m) * rs * w[i];
    if (b) v += b[i];
    o[i] = v;
  }
}

// layernorm_bwd_dx: dx += (w*dy - mean(w*dy) - n*mean(w*dy*n)) * rstd.
extern "C" __global__ void layernorm_bwd_dx(float* dx, const float* dy, const float* x, const float* w,
                                            const float* mean, const float* rstd, int N, int C) {
  __shared__ float sh[32];
  int r = blockIdx.x;
  const float *xr = x + (i64)r * C, *dyr = dy + (i64)r * C;
  float* dxr = dx + (i64)r * C;
  float m = mean[r], rs = rstd[r];
  float a = 0.f, bb = 0.f;
  for (int i = threadIdx.x; i < C; i += blockDim.x) {
    float n = (xr[i] - m) * rs;
    float d = w[i] * dyr[i];
    a += d;
    bb += d * n;
  }
  float dnm = blockSum(a, sh) / C;
  float dnx = blockSum(bb, sh) / C;
  for (int i = threadIdx.x; i < C; i += blockDim.x) {
    float n = (xr[i] - m) * rs;
    dxr[i] += (w[i] * dyr[i] - dnm - n * dnx) * rs;
  }
}

// Column reductions (dw, db, SumRows): grid (ceil(C/blockDim.x),
// ceil(N/rowsPer)); each thread sums rowsPer rows of one column and adds
// the partial sum into the output with one atomicAdd.

extern "C" __global__ void layernorm_bwd_dwdb(float* dw, float* db, const float* dy, const float* x,
                                              const float* mean, const float* rstd, int N, int C, int rowsPer) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  int r0 = blockIdx.y * rowsPer, r1 = min(N, r0 + rowsPer);
  float sw = 0.f, sb = 0.f;
  for (int r = r0; r < r1; r++) {
    float d = dy[(i64)r * C + c];
    sw += (x[(i64)r * C + c] - mean[r]) * rstd[r] * d;
    sb += d;
  }
  if (dw) atomicAdd(&dw[c], sw);
  if (db) atomicAdd(&db[c], sb);
}

extern "C" __global__ void rmsnorm_fwd(float* out, float* rstd, const float* x, const float* w, int N, int C,
                                       float eps) {
  __shared__ float sh[32];
  int r = blockIdx.x;
  const float* xr = x + (i64)r * C;
  float ss = 0.f;
  for (int i = threadIdx.x; i < C; i += blockDim.x) ss += xr[i] * xr[i];
  float rs = 1.f / sqrtf(blockSum(ss, sh) / C + eps);
  if (threadIdx.x == 0) rstd[r] = rs;
  float* o = out + (i64)r * C;
  for (int i = threadIdx.x; i < C; i += blockDim.x) o[i] = xr[i] * rs * w[i];
}

// rmsnorm_bwd_dx: dx += dy*w*rstd - x * (Σ dy*w*x) * rstd³ / C.
extern "C" __global__ void rmsnorm_bwd_dx(float* dx, const float* dy, const float* x, const float* w,
                                          const float* rstd, int N, int C) {
  __shared__ float sh[32];
  int r = blockIdx.x;
  const float *xr = x + (i64)r * C, *dyr = dy + (i64)r * C;
  float* dxr = dx + (i64)r * C;
  float rs = rstd[r];
  float dot = 0.f;
  for (int i = threadIdx.x; i < C; i += blockDim.x) dot += dyr[i] * w[i] * xr[i];
  float k = blockSum(dot, sh) * rs * rs * rs / C;
  for (int i = threadIdx.x; i < C; i += blockDim.x) dxr[i] += dyr[i] * w[i] * rs - xr[i] * k;
}

extern "C" __global__ void rmsnorm_bwd_dw(float* dw, const float* dy, const float* x, const float* rstd, int N,
                                          int C, int rowsPer) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  int r0 = blockIdx.y * rowsPer, r1 = min(N, r0 + rowsPer);
  float s = 0.f;
  for (int r = r0; r < r1; r++) s += x[(i64)r * C + c] * rstd[r] * dy[(i64)r * C + c];
  atomicAdd(&dw[c], s);
}

// sum_rows: dst (C) += column sums of x (N, C).
extern "C" __global__ void sum_rows(float* dst, const float* x, int N, int C, int rowsPer) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  int r0 = blockIdx.y * rowsPer, r1 = min(N, r0 + rowsPer);
  float s = 0.f;
  for (int r = r0; r < r1; r++) s += x[(i64)r * C + c];
  atomicAdd(&dst[c], s);
}

// ---- activations ----

#define GELU_K 0.7978845608028654f

extern "C" __global__ void gelu_fwd(float* out, const float* x, i64 n) {
  GRID_STRIDE(i, n) {
    float v = x[i];
    out[i] = 0.5f * v * (1.f + tanhf(GELU_K * (v + 0.044715f * v * v * v)));
  }
}

extern "C" __global__ void gelu_bwd(float* dx, const float* dy, const float* x, i64 n) {
  GRID_STRIDE(i, n) {
    float v = x[i];
    float u = GELU_K * (v + 0.044715f * v * v * v);
    float th = tanhf(u);
    float du = GELU_K * (1.f + 3.f * 0.044715f * v * v);
    float g = 0.5f * (1.f + th) + 0.5f * v * (1.f - th * th) * du;
    dx[i] += g * dy[i];
  }
}

extern "C" __global__ void swiglu_fwd(float* out, const float* gate, const float* up, i64 n) {
  GRID_STRIDE(i, n) {
    float g = gate[i];
    float s = 1.f / (1.f + expf(-g));
    out[i] = g * s * up[i];
  }
}

extern "C" __global__ void swiglu_bwd(float* dgate, float* dup, const float* dy, const float* gate,
                                      const float* up, i64 n) {
  GRID_STRIDE(i, n) {
    float g = gate[i], u = up[i], d = dy[i];
    float s = 1.f / (1.f + expf(-g));
    dup[i] += d * g * s;
    dgate[i] += d * u * s * (1.f + g * (1.f - s));
  }
}

// geglu: out = gelu_tanh(gate) * up (Gemma's MLP); the backward adds
// dy * up * gelu_tanh'(gate) into dgate and dy * gelu_tanh(gate) into dup.
extern "C" __global__ void geglu_fwd(float* out, const float* gate, const float* up, i64 n) {
  GRID_STRIDE(i, n) {
    float v = gate[i];
    float th = tanhf(GELU_K * (v + 0.044715f * v * v * v));
    out[i] = 0.5f * v * (1.f + th) * up[i];
  }
}

extern "C" __global__ void geglu_bwd(float* dgate, float* dup, const float* dy, const float* gate,
                                     const float* up, i64 n) {
  GRID_STRIDE(i, n) {
    float v = gate[i], d = dy[i];
    float th = tanhf(GELU_K * (v + 0.044715f * v * v * v));
    float du = GELU_K * (1.f + 3.f * 0.044715f * v * v);
    dup[i] += d * 0.5f * v * (1.f + th);
    dgate[i] += d * up[i] * (0.5f * (1.f + th) + 0.5f * v * (1.f - th * th) * du);
  }
}

// softcap: out = c * tanh(x / c); the backward reads the output y:
// dx += dy * (1 - (y/c)^2).
// relu: out = max(x, 0); the backward reads the output y.
extern "C" __global__ void relu_fwd(float* out, const float* x, i64 n) {
  GRID_STRIDE(i, n) out[i] = fmaxf(x[i], 0.f);
}
extern "C" __global__ void relu_bwd(float* dx, const float* dy, const float* y, i64 n) {
  GRID_STRIDE(i, n) if (y[i] > 0.f) dx[i] += dy[i];
}

extern "C" __global__ void softcap_fwd(float* out, const float* x, float c, i64 n) {
  GRID_STRIDE(i, n) { out[i] = c * tanhf(x[i] / c); }
}

extern "C" __global__ void softcap_bwd(float* dx, const float* dy, const float* y, float c, i64 n) {
  GRID_STRIDE(i, n) {
    float t = y[i] / c;
    dx[i] += dy[i] * (1.f - t * t);
  }
}

// rope: rotate-half RoPE on x (N, H, D), row n at position pos[n];
// cs, sn (maxPos, D/2). sign -1 applies the inverse rotation (backward);
// acc adds into dst instead of overwriting. dst may equal x: each thread
// reads its pair before writing it.
extern "C" __global__ void rope(float* dst, const float* x, const int* pos, const float* cs, const float* sn, int N,
                                int H, int D, float sign, int acc) {
  int half = D / 2;
  GRID_STRIDE(t, (i64)N * H * half) {
    int i = (int)(t % half);
    i64 nh = t / half;  // n*H + h
    int n = (int)(nh / H);
    i64 off = nh * D;
    i64 p = (i64)pos[n] * half + i;
    float c = cs[p], s = sign * sn[p];
    float a = x[off + i], b = x[off + i + half];
    float o1 = a * c - b * s, o2 = b * c + a * s;
    if (acc) {
      dst[off + i] += o1;
      dst[off + i + half] += o2;
    } else {
      dst[off + i] = o1;
      dst[off + i + half] = o2;
    }
  }
}

// ---- cross-entropy: one block per row ----

extern "C" __global__ void ce_fwd(float* loss, float* lse, const float* logits, const int* targets, int N, int V) {
  __shared__ float sh[32];
  int r = blockIdx.x;
  const float* row = logits + (i64)r * V;
  float mx = NEG_INF;
  for (int i = threadIdx.x; i < V; i += blockDim.x) mx = fmaxf(mx, row[i]);
  mx = blockMax(mx, sh);
  float s = 0.f;
  for (int i = threadIdx.x; i < V; i += blockDim.x) s += expf(row[i] - mx);
  s = blockSum(s, sh);
  if (threadIdx.x == 0) {
    float l = logf(s) + mx;
    lse[r] = l;
    int y = targets[r];
    loss[r] = y >= 0 ? l - row[y] : 0.f;
  }
}

// ce_bwd: dlogits[r] += dloss[r] * (softmax(logits[r]) - onehot(y)), rows
// with y < 0 untouched.
extern "C" __global__ void ce_bwd(float* dlogits, const float* dloss, const float* logits, const float* lse,
                                  const int* targets, int N, int V) {
  int r = blockIdx.x;
  int y = targets[r];
  if (y < 0) return;
  float g = dloss[r], l = lse[r];
  const float* row = logits + (i64)r * V;
  float* d = dlogits + (i64)r * V;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    float v = g * expf(row[i] - l);
    if (i == y) v -= g;
    d[i] += v;
  }
}

// ---- elementwise ----

extern "C" __global__ void add(float* dst, const float* a, const float* b, i64 n) {
  GRID_STRIDE(i, n) dst[i] = a[i] + b[i];
}

extern "C" __global__ void mul(float* dst, const float* a, const float* b, i64 n) {
  GRID_STRIDE(i, n) dst[i] = a[i] * b[i];
}

extern "C" __global__ void add_scaled(float* dst, const float* a, float s, i64 n) {
  GRID_STRIDE(i, n) dst[i] += s * a[i];
}

extern "C" __global__ void add_bias(float* dst, const float* x, const float* bias, i64 n, int C) {
  GRID_STRIDE(i, n) dst[i] = x[i] + bias[i % C];
}

// copy_cols: dst[r, dOff:dOff+w] = src[r, sOff:sOff+w] for r < N, with
// row lengths dC and sC (SplitCols and ConcatCols).
extern "C" __global__ void copy_cols(float* dst, int dC, int dOff, const float* src, int sC, int sOff, int N, int w) {
  GRID_STRIDE(i, (i64)N * w) {
    i64 r = i / w, c = i % w;
    dst[r * dC + dOff + c] = src[r * sC + sOff + c];
  }
}

// adamw: decoupled weight decay (decay = 1 - lr*wd), bias corrections
// folded into stepSize = lr/(1-b1^t) and bc2s = sqrt(1-b2^t), as the CPU.
extern "C" __global__ void adamw(float* p, const float* g, float* m, float* v, i64 n, float decay, float stepSize,
                                 float bc2s, float b1, float b2, float eps) {
  GRID_STRIDE(i, n) {
    float gi = g[i];
    float pi = p[i] * decay;
    float mi = b1 * m[i] + (1.f - b1) * gi;
    float vi = b2 * v[i] + (1.f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float den = sqrtf(vi) / bc2s + eps;
    p[i] = pi - stepSize * mi / den;
  }
}

// adamw_multi: adamw over many tensors at once. tab holds 6 words per
// tensor: p, g, m, v (addresses), n, and its weight decay (float bits in
// the low word), so it stays the same from step to step; the decay factor
// 1 - lr·wd is rounded from double, as the CPU does. Block (x, y) runs a
// grid-stride share of tensor y.
extern "C" __global__ void adamw_multi(const i64* tab, float lr, float stepSize, float bc2s, float b1, float b2,
                                       float eps) {
  const i64* e = tab + 6 * (i64)blockIdx.y;
  float* p = (float*)e[0];
  const float* g = (const float*)e[1];
  float* m = (float*)e[2];
  float* v = (float*)e[3];
  i64 n = e[4];
  float decay = (float)(1.0 - (double)lr * (double)__int_as_float((int)e[5]));
  GRID_STRIDE(i, n) {
    float gi = g[i];
    float pi = p[i] * decay;
    float mi = b1 * m[i] + (1.f - b1) * gi;
    float vi = b2 * v[i] + (1.f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float den = sqrtf(vi) / bc2s + eps;
    p[i] = pi - stepSize * mi / den;
  }
}

// sum_squares: partial[blockIdx.x] = Σ x² over the block's grid-stride
// share, in float64; the host adds the partials in order.
extern "C" __global__ void sum_squares(double* partial, const float* x, i64 n) {
  __shared__ double sh[32];
  double s = 0;
  GRID_STRIDE(i, n) {
    double v = x[i];
    s += v * v;
  }
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  s = warpSumD(s);
  if (lane == 0) sh[w] = s;
  __syncthreads();
  if (w == 0) {
    s = lane < nw ? sh[lane] : 0.0;
    s = warpSumD(s);
    if (lane == 0) partial[blockIdx.x] = s;
  }
}

// clip_norm: one warp adds the n partial sums of squares (every gradient's
// sum_squares output, side by side) in a fixed order: *norm = sqrt(Σ), and
// *scale = maxNorm/(norm+1e-6) when maxNorm > 0 and the norm exceeds it,
// else 1 (computed in float64 as the CPU's ClipGradNorm).
extern "C" __global__ void clip_norm(float* norm, float* scale, const double* partial, int n, float maxNorm) {
  double s = 0;
  for (int i = threadIdx.x; i < n; i += 32) s += partial[i];
  s = warpSumD(s);
  if (threadIdx.x == 0) {
    double nv = sqrt(s);
    *norm = (float)nv;
    *scale = maxNorm > 0 && nv > (double)maxNorm ? (float)((double)maxNorm / (nv + 1e-6)) : 1.f;
  }
}

// scale_by: x += (s-1)·x with s read from the device (ScaleGrads' form).
extern "C" __global__ void scale_by(float* x, const float* scale, i64 n) {
  float s = *scale;
  if (s == 1.f) return;
  GRID_STRIDE(i, n) x[i] += (s - 1.f) * x[i];
}

// argmax_rows: out[r] = the index of the first largest value of row r of
// x (N, V), or 0 when no value is above -inf (NaN never wins), as the
// CPU's greedy sampler. One block of whole warps per row.
extern "C" __global__ void argmax_rows(int* out, const float* x, int N, int V) {
  __shared__ float sv[32];
  __shared__ int si[32];
  const float* row = x + (i64)blockIdx.x * V;
  float best = NEG_INF;
  int bi = 0x7fffffff;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    float v = row[i];
    if (v > best) best = v, bi = i;
  }
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (int o = 16; o > 0; o >>= 1) {
    float ov = __shfl_xor_sync(FULL_MASK, best, o);
    int oi = __shfl_xor_sync(FULL_MASK, bi, o);
    if (ov > best || (ov == best && oi < bi)) best = ov, bi = oi;
  }
  if (lane == 0) sv[w] = best, si[w] = bi;
  __syncthreads();
  if (w == 0) {
    best = lane < nw ? sv[lane] : NEG_INF;
    bi = lane < nw ? si[lane] : 0x7fffffff;
    for (int o = 16; o > 0; o >>= 1) {
      float ov = __shfl_xor_sync(FULL_MASK, best, o);
      int oi = __shfl_xor_sync(FULL_MASK, bi, o);
      if (ov > best || (ov == best && oi < bi)) best = ov, bi = oi;
    }
    if (lane == 0) out[blockIdx.x] = bi == 0x7fffffff ? 0 : bi;
  }
}

// ---- attention ----
//
// Layouts (as the CPU): q, out, dq (B, T, H, D); k, v, dk, dv
// (B, stride, KVH, D); prefix pk, pv (KVH, P, D); lse, di (B, H, T);
// qseg (B*T), kseg (B*stride), both null when unused. Keys are indexed
// u in [0, P+S): u < P is prefix row u (seen by every query), else key
// j = u-P, seen by query i when j <= offset+i, j is within the sliding
// window (window > 0) and the segments agree. cap > 0 softcaps the scores.
//
// Every attention block has ATT_W warps. DL = ceil(D/32) rounded up to
// 1, 2, 4 or 8 (D <= 256): lane l owns dims l, l+32, ... of a row.

#define ATT_W 8    // warps (queries or keys) per block
#define ATT_K 32   // rows per shared tile: one per lane

// attnKey reads dim d of key (or value) row u, from the prefix or the keys.
__device__ __forceinline__ float attnRow(const float* kv, const float* pkv, int b, int kh, int u, int d, int P,
                                         int stride, int KVH, int D) {
  if (u < P) return pkv[((i64)kh * P + u) * D + d];
  return kv[(((i64)b * stride + (u - P)) * KVH + kh) * D + d];
}

// attnLoadTile has the block copy key rows u0 .. u0+ATT_K-1 (zeros past
// nU) into Ks (row stride ks) and the value rows into Vs (row stride vs).
__device__ __forceinline__ void attnLoadTile(float* Ks, float* Vs, int ks, int vs, const float* k, const float* v,
                                             const float* pk, const float* pv, int b, int kh, int u0, int nU, int P,
                                             int stride, int KVH, int D) {
  for (int e = threadIdx.x; e < ATT_K * D; e += blockDim.x) {
    int r = e / D, d = e % D, u = u0 + r;
    float kv = 0.f, vv = 0.f;
    if (u < nU) {
      kv = attnRow(k, pk, b, kh, u, d, P, stride, KVH, D);
      vv = attnRow(v, pv, b, kh, u, d, P, stride, KVH, D);
    }
    Ks[r * ks + d] = kv;
    Vs[r * vs + d] = vv;
  }
}

// visible reports whether query i (segment qs) sees key row u: prefix
// rows always; key j when causal, within the sliding window (window > 0:
// offset+i-j < window) and in the query's segment.
__device__ __forceinline__ bool attnVisible(int u, int i, int qs, const int* kseg, int b, int P, int S, int stride,
                                            int offset, int window) {
  if (u < P) return true;
  int j = u - P;
  if (j >= S || j > offset + i) return false;
  if (window > 0 && offset + i - j >= window) return false;
  return kseg == 0 || kseg[(i64)b * stride + j] == qs;
}

// attnCap applies the score softcap (cap > 0: cap·tanh(s/cap), tanh in
// double as the CPU) and returns its derivative in *dcap (1 without a cap).
__device__ __forceinline__ float attnCap(float s, float cap, float* dcap) {
  if (cap <= 0.f) {
    *dcap = 1.f;
    return s;
  }
  float th = (float)tanh((double)(s / cap));
  *dcap = 1.f - th * th;
  return cap * th;
}

// attnDot is a[0:D]·b[0:D] summed in order; when D is 32*DL (the usual
// head sizes 32, 64, 128, 256) the loop is unrolled at compile time.
template <int DL>
__device__ __forceinline__ float attnDot(const float* a, const float* b, int D) {
  float s = 0.f;
  if (D == 32 * DL) {
#pragma unroll
    for (int d = 0; d < 32 * DL; d++) s += a[d] * b[d];
  } else {
    for (int d = 0; d < D; d++) s += a[d] * b[d];
  }
  return s;
}

// attnDot2 is attnDot of (a, b) and of (c, e) in one pass.
template <int DL>
__device__ __forceinline__ void attnDot2(const float* a, const float* b, const float* c, const float* e, int D,
                                         float* ab, float* ce) {
  float s = 0.f, t = 0.f;
  if (D == 32 * DL) {
#pragma unroll
    for (int d = 0; d < 32 * DL; d++) {
      s += a[d] * b[d];
      t += c[d] * e[d];
    }
  } else {
    for (int d = 0; d < D; d++) {
      s += a[d] * b[d];
      t += c[d] * e[d];
    }
  }
  *ab = s;
  *ce = t;
}

// attn_fwd: grid (ceil(T/ATT_W), H, B), block ATT_W*32 threads, dynamic
// shared memory (ATT_K*(2D+1) + ATT_W*D) floats. Warp w owns query
// i = blockIdx.x*ATT_W + w; tiles of ATT_K key and value rows are staged in
// shared memory, lane l scores key row u0+l, and an online softmax keeps
// the running max m, sum l and output accumulator per query.
template <int DL>
__device__ void attnFwd(float* out, float* lse, const float* q, const float* k, const float* v, const float* pk,
                        const float* pv, const int* qseg, const int* kseg, int T, int S, int stride, int H, int KVH,
                        int D, int P, int offset, float scale, int window, float cap) {
  extern __shared__ float smem[];
  const int DP = D + 1;  // padded: lanes read different rows without bank conflicts
  float* Ks = smem;              // (ATT_K, D+1)
  float* Vs = Ks + ATT_K * DP;   // (ATT_K, D)
  float* Qs = Vs + ATT_K * D;    // (ATT_W, D)
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  int b = blockIdx.z, h = blockIdx.y, kh = h / (H / KVH);
  int i0 = blockIdx.x * ATT_W, i = i0 + w;
  bool active = i < T;
  for (int e = threadIdx.x; e < ATT_W * D; e += blockDim.x) {
    int r = e / D, ii = i0 + r;
    Qs[e] = ii < T ? q[(((i64)b * T + ii) * H + h) * D + e % D] : 0.f;
  }
  int lastI = min(T - 1, i0 + ATT_W - 1);
  int nU = P + max(0, min(S, offset + lastI + 1));
  int qs = (active && qseg) ? qseg[(i64)b * T + i] : 0;
  float m = NEG_INF, l = 0.f;
  float acc[DL];
#pragma unroll
  for (int t = 0; t < DL; t++) acc[t] = 0.f;
  for (int u0 = 0; u0 < nU; u0 += ATT_K) {
    __syncthreads();  // the previous tile is no longer read
    attnLoadTile(Ks, Vs, DP, D, k, v, pk, pv, b, kh, u0, nU, P, stride, KVH, D);
    __syncthreads();
    if (!active) continue;  // warp-uniform
    int u = u0 + lane;
    bool vis = u < nU && attnVisible(u, i, qs, kseg, b, P, S, stride, offset, window);
    float s = NEG_INF;
    if (vis) {
      const float *qr = Qs + w * D, *kr = Ks + lane * DP;
      float dcap;
      float dot = attnDot<DL>(qr, kr, D);
      s = attnCap(dot * scale, cap, &dcap);
    }
    float mn = fmaxf(m, warpMax(s));
    if (mn == NEG_INF) continue;  // warp-uniform: nothing visible yet
    float corr = expf(m - mn);    // 0 while m is -inf
    float p = vis ? expf(s - mn) : 0.f;
    l = l * corr + warpSum(p);
#pragma unroll
    for (int t = 0; t < DL; t++) acc[t] *= corr;
    for (int kk = 0; kk < ATT_K; kk++) {
      float pj = __shfl_sync(FULL_MASK, p, kk);
      const float* vr = Vs + kk * D;
#pragma unroll
      for (int t = 0; t < DL; t++) {
        int d = lane + 32 * t;
        if (d < D) acc[t] += pj * vr[d];
      }
    }
    m = mn;
  }
  if (!active) return;
  float* o = out + (((i64)b * T + i) * H + h) * D;
  float inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
  for (int t = 0; t < DL; t++) {
    int d = lane + 32 * t;
    if (d < D) o[d] = acc[t] * inv;
  }
  if (lane == 0) lse[((i64)b * H + h) * T + i] = l > 0.f ? m + logf(l) : NEG_INF;
}

// ---- dense attention (scores through cuBLAS) ----
//
// For training-sized passes the backend forms the scores of a whole
// (query, key) block with strided-batched products (attention.go) and
// these two kernels do the rest, one block per query row: sc is (B*H*T,
// S) with row r = (b*H + h)*T + i, holding scale·q·k for every key j.

// attnDenseVisible is attnVisible without a prefix.
__device__ __forceinline__ bool attnDenseVisible(int j, int i, int qs, const int* kseg, int b, int stride, int offset,
                                                 int window) {
  if (j > offset + i) return false;
  if (window > 0 && offset + i - j >= window) return false;
  return kseg == 0 || kseg[(i64)b * stride + j] == qs;
}

// attn_softmax: sc (scores in) becomes the probabilities (0 where masked),
// lse[r] their log-sum-exp (-inf with nothing visible). grid B*H*T.
extern "C" __global__ void attn_softmax(float* sc, float* lse, const int* qseg, const int* kseg, int T, int S,
                                        int stride, int H, int offset, int window, float cap) {
  __shared__ float sh[32];
  i64 r = blockIdx.x;
  int i = (int)(r % T), b = (int)(r / T / H);
  float* row = sc + r * S;
  int qs = qseg ? qseg[(i64)b * T + i] : 0;
  float mx = NEG_INF;
  for (int j = threadIdx.x; j < S; j += blockDim.x) {
    float s = NEG_INF, dcap;
    if (attnDenseVisible(j, i, qs, kseg, b, stride, offset, window)) s = attnCap(row[j], cap, &dcap);
    row[j] = s;
    mx = fmaxf(mx, s);
  }
  mx = blockMax(mx, sh);
  float sum = 0.f;
  if (mx != NEG_INF)
    for (int j = threadIdx.x; j < S; j += blockDim.x) sum += expf(row[j] - mx);
  sum = blockSum(sum, sh);
  float L = mx == NEG_INF ? NEG_INF : mx + logf(sum);
  for (int j = threadIdx.x; j < S; j += blockDim.x) row[j] = L == NEG_INF ? 0.f : expf(row[j] - L);
  if (threadIdx.x == 0) lse[r] = L;
}

// attn_ds: from the recomputed scores sc and dp = dout·v for every key,
// sc becomes the probabilities p and dp becomes ds = p·(dp - di)·cap'·scale,
// the gradient of scale·q·k's pre-scale product. grid B*H*T.
extern "C" __global__ void attn_ds(float* sc, float* dp, const float* lse, const float* di, const int* qseg,
                                   const int* kseg, int T, int S, int stride, int H, int offset, int window,
                                   float cap, float scale) {
  i64 r = blockIdx.x;
  int i = (int)(r % T), b = (int)(r / T / H);
  float* srow = sc + r * S;
  float* drow = dp + r * S;
  int qs = qseg ? qseg[(i64)b * T + i] : 0;
  float L = lse[r], Di = di[r];
  for (int j = threadIdx.x; j < S; j += blockDim.x) {
    float p = 0.f, ds = 0.f;
    if (L != NEG_INF && attnDenseVisible(j, i, qs, kseg, b, stride, offset, window)) {
      float dcap;
      p = expf(attnCap(srow[j], cap, &dcap) - L);
      ds = p * (drow[j] - Di) * dcap * scale;
    }
    srow[j] = p;
    drow[j] = ds;
  }
}

// attn_bwd_di: di[b,h,i] = dout[b,i,h,:]·out[b,i,h,:], one warp per row;
// grid ceil(B*T*H/ATT_W), block ATT_W*32.
extern "C" __global__ void attn_bwd_di(float* di, const float* dout, const float* out, int B, int T, int H, int D) {
  int lane = threadIdx.x & 31;
  i64 row = (i64)blockIdx.x * ATT_W + (threadIdx.x >> 5);  // (b*T + i)*H + h
  if (row >= (i64)B * T * H) return;
  const float *a = dout + row * D, *o = out + row * D;
  float s = 0.f;
  for (int d = lane; d < D; d += 32) s += a[d] * o[d];
  s = warpSum(s);
  int h = (int)(row % H);
  i64 bt = row / H;
  int i = (int)(bt % T), b = (int)(bt / T);
  if (lane == 0) di[((i64)b * H + h) * T + i] = s;
}

// attn_bwd_dq: the forward's shape, with p recomputed from lse:
// ds = p*(dout·v - di)*scale, dq += Σ ds*k. Shared memory
// (2*ATT_K*(D+1) + 2*ATT_W*D) floats.
template <int DL>
__device__ void attnBwdDQ(float* dq, const float* dout, const float* q, const float* k, const float* v,
                          const float* pk, const float* pv, const float* lse, const float* di, const int* qseg,
                          const int* kseg, int T, int S, int stride, int H, int KVH, int D, int P, int offset,
                          float scale, int window, float cap) {
  extern __shared__ float smem[];
  const int DP = D + 1;
  float* Ks = smem;              // (ATT_K, D+1)
  float* Vs = Ks + ATT_K * DP;   // (ATT_K, D+1)
  float* Qs = Vs + ATT_K * DP;   // (ATT_W, D)
  float* Os = Qs + ATT_W * D;    // (ATT_W, D): dout rows
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  int b = blockIdx.z, h = blockIdx.y, kh = h / (H / KVH);
  int i0 = blockIdx.x * ATT_W, i = i0 + w;
  for (int e = threadIdx.x; e < ATT_W * D; e += blockDim.x) {
    int r = e / D, ii = i0 + r;
    i64 off = (((i64)b * T + ii) * H + h) * D + e % D;
    Qs[e] = ii < T ? q[off] : 0.f;
    Os[e] = ii < T ? dout[off] : 0.f;
  }
  float L = NEG_INF, Di = 0.f;
  if (i < T) {
    L = lse[((i64)b * H + h) * T + i];
    Di = di[((i64)b * H + h) * T + i];
  }
  bool active = i < T && L != NEG_INF;
  int lastI = min(T - 1, i0 + ATT_W - 1);
  int nU = P + max(0, min(S, offset + lastI + 1));
  int qs = (i < T && qseg) ? qseg[(i64)b * T + i] : 0;
  float acc[DL];
#pragma unroll
  for (int t = 0; t < DL; t++) acc[t] = 0.f;
  for (int u0 = 0; u0 < nU; u0 += ATT_K) {
    __syncthreads();
    attnLoadTile(Ks, Vs, DP, DP, k, v, pk, pv, b, kh, u0, nU, P, stride, KVH, D);
    __syncthreads();
    if (!active) continue;
    int u = u0 + lane;
    float ds = 0.f;
    if (u < nU && attnVisible(u, i, qs, kseg, b, P, S, stride, offset, window)) {
      const float *qr = Qs + w * D, *or_ = Os + w * D, *kr = Ks + lane * DP, *vr = Vs + lane * DP;
      float s, dp, dcap;
      attnDot2<DL>(qr, kr, or_, vr, D, &s, &dp);
      float p = expf(attnCap(s * scale, cap, &dcap) - L);
      ds = p * (dp - Di) * dcap * scale;
    }
    for (int kk = 0; kk < ATT_K; kk++) {
      float dsj = __shfl_sync(FULL_MASK, ds, kk);
      const float* kr = Ks + kk * DP;
#pragma unroll
      for (int t = 0; t < DL; t++) {
        int d = lane + 32 * t;
        if (d < D) acc[t] += dsj * kr[d];
      }
    }
  }
  if (!active) return;
  float* o = dq + (((i64)b * T + i) * H + h) * D;
#pragma unroll
  for (int t = 0; t < DL; t++) {
    int d = lane + 32 * t;
    if (d < D) o[d] += acc[t];
  }
}

// attn_bwd_dkdv: grid (ceil((P+S)/ATT_W), KVH, B), block ATT_W*32. Warp w
// owns key row u = blockIdx.x*ATT_W + w and loops over the queries of every
// head of its group in tiles of ATT_K (lane l: query i0+l), so dk and dv
// rows are each written by one warp, without atomics. Prefix rows are
// shared by all B sequences: their gradients are added with atomicAdd.
// Shared memory (2*ATT_K*(D+1) + 2*ATT_W*D + 2*ATT_K) floats.
template <int DL>
__device__ void attnBwdDKDV(float* dk, float* dv, float* dpk, float* dpv, const float* dout, const float* q,
                            const float* k, const float* v, const float* pk, const float* pv, const float* lse,
                            const float* di, const int* qseg, const int* kseg, int T, int S, int stride, int H,
                            int KVH, int D, int P, int offset, float scale, int window, float cap) {
  extern __shared__ float smem[];
  const int DP = D + 1;
  float* Qs = smem;              // (ATT_K, D+1): query rows
  float* Os = Qs + ATT_K * DP;   // (ATT_K, D+1): dout rows
  float* Kw = Os + ATT_K * DP;   // (ATT_W, D): the warps' key rows
  float* Vw = Kw + ATT_W * D;    // (ATT_W, D)
  float* Ls = Vw + ATT_W * D;    // (ATT_K): lse of the tile's queries
  float* Ds = Ls + ATT_K;        // (ATT_K): di of the tile's queries
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  int b = blockIdx.z, kh = blockIdx.y, g = H / KVH;
  int u0 = blockIdx.x * ATT_W, u = u0 + w;
  int nU = P + S;
  for (int e = threadIdx.x; e < ATT_W * D; e += blockDim.x) {
    int r = e / D, uu = u0 + r, d = e % D;
    bool ok = uu < nU;
    Kw[e] = ok ? attnRow(k, pk, b, kh, uu, d, P, stride, KVH, D) : 0.f;
    Vw[e] = ok ? attnRow(v, pv, b, kh, uu, d, P, stride, KVH, D) : 0.f;
  }
  bool wantPrefix = dpk != 0 || dpv != 0, wantKeys = dk != 0 || dv != 0;
  bool active = u < nU && (u < P ? wantPrefix : wantKeys);
  // The first query that can see any of the block's keys.
  int iStart = u0 < P ? 0 : max(0, u0 - P - offset);
  float accK[DL], accV[DL];
#pragma unroll
  for (int t = 0; t < DL; t++) accK[t] = accV[t] = 0.f;
  for (int hh = 0; hh < g; hh++) {
    int h = kh * g + hh;
    for (int i0 = iStart; i0 < T; i0 += ATT_K) {
      __syncthreads();
      for (int e = threadIdx.x; e < ATT_K * D; e += blockDim.x) {
        int r = e / D, d = e % D, ii = i0 + r;
        i64 off = (((i64)b * T + ii) * H + h) * D + d;
        Qs[r * DP + d] = ii < T ? q[off] : 0.f;
        Os[r * DP + d] = ii < T ? dout[off] : 0.f;
      }
      for (int r = threadIdx.x; r < ATT_K; r += blockDim.x) {
        int ii = i0 + r;
        Ls[r] = ii < T ? lse[((i64)b * H + h) * T + ii] : NEG_INF;
        Ds[r] = ii < T ? di[((i64)b * H + h) * T + ii] : 0.f;
      }
      __syncthreads();
      if (!active) continue;
      int i = i0 + lane;
      float p = 0.f, ds = 0.f;
      float L = Ls[lane];
      if (i < T && L != NEG_INF) {
        int qs = qseg ? qseg[(i64)b * T + i] : 0;
        if (attnVisible(u, i, qs, kseg, b, P, S, stride, offset, window)) {
          const float *qr = Qs + lane * DP, *or_ = Os + lane * DP, *kr = Kw + w * D, *vr = Vw + w * D;
          float s, dp, dcap;
          attnDot2<DL>(qr, kr, or_, vr, D, &s, &dp);
          p = expf(attnCap(s * scale, cap, &dcap) - L);
          ds = p * (dp - Ds[lane]) * dcap * scale;
        }
      }
      for (int kk = 0; kk < ATT_K; kk++) {
        float pj = __shfl_sync(FULL_MASK, p, kk);
        float dsj = __shfl_sync(FULL_MASK, ds, kk);
        const float *qr = Qs + kk * DP, *or_ = Os + kk * DP;
#pragma unroll
        for (int t = 0; t < DL; t++) {
          int d = lane + 32 * t;
          if (d < D) {
            accV[t] += pj * or_[d];
            accK[t] += dsj * qr[d];
          }
        }
      }
    }
  }
  if (!active) return;
  if (u < P) {
#pragma unroll
    for (int t = 0; t < DL; t++) {
      int d = lane + 32 * t;
      if (d < D) {
        i64 off = ((i64)kh * P + u) * D + d;
        if (dpk) atomicAdd(&dpk[off], accK[t]);
        if (dpv) atomicAdd(&dpv[off], accV[t]);
      }
    }
    return;
  }
  i64 off = (((i64)b * stride + (u - P)) * KVH + kh) * D;
#pragma unroll
  for (int t = 0; t < DL; t++) {
    int d = lane + 32 * t;
    if (d < D) {
      if (dk) dk[off + d] += accK[t];
      if (dv) dv[off + d] += accV[t];
    }
  }
}

#define ATTN_KERNELS(DL)                                                                                          \
  extern "C" __global__ void attn_fwd_##DL(float* out, float* lse, const float* q, const float* k,              \
                                           const float* v, const float* pk, const float* pv, const int* qseg,    \
                                           const int* kseg, int T, int S, int stride, int H, int KVH, int D,     \
                                           int P, int offset, float scale, int window, float cap) {             \
    attnFwd<DL>(out, lse, q, k, v, pk, pv, qseg, kseg, T, S, stride, H, KVH, D, P, offset, scale, window, cap); \
  }                                                                                                             \
  extern "C" __global__ void attn_bwd_dq_##DL(float* dq, const float* dout, const float* q, const float* k,     \
                                              const float* v, const float* pk, const float* pv,                 \
                                              const float* lse, const float* di, const int* qseg,               \
                                              const int* kseg, int T, int S, int stride, int H, int KVH, int D,  \
                                              int P, int offset, float scale, int window, float cap) {          \
    attnBwdDQ<DL>(dq, dout, q, k, v, pk, pv, lse, di, qseg, kseg, T, S, stride, H, KVH, D, P, offset, scale,     \
                  window, cap);                                                                                 \
  }                                                                                                             \
  extern "C" __global__ void attn_bwd_dkdv_##DL(float* dk, float* dv, float* dpk, float* dpv,                  \
                                                const float* dout, const float* q, const float* k,              \
                                                const float* v, const float* pk, const float* pv,               \
                                                const float* lse, const float* di, const int* qseg,             \
                                                const int* kseg, int T, int S, int stride, int H, int KVH,      \
                                                int D, int P, int offset, float scale, int window, float cap) { \
    attnBwdDKDV<DL>(dk, dv, dpk, dpv, dout, q, k, v, pk, pv, lse, di, qseg, kseg, T, S, stride, H, KVH, D, P,   \
                    offset, scale, window, cap);                                                                \
  }

ATTN_KERNELS(1)
ATTN_KERNELS(2)
ATTN_KERNELS(4)
ATTN_KERNELS(8)
