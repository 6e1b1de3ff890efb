// A stand-in libcublas for the CUDA emulator (emu.cpp): cublasSgemm_v2 as
// the BLAS reference defines it, column-major, with a plain triple loop.
// When beta is 0, C is not read (it may hold NaN), as in cuBLAS.

#include <cstdio>

#include <cstring>

static float bf16(unsigned short h) {
  unsigned u = (unsigned)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

extern "C" {
int cublasCreate_v2(void** h) {
  *h = (void*)0x4000;
  return 0;
}
int cublasDestroy_v2(void* h) { return 0; }
int cublasSetStream_v2(void* h, void* s) { return s == (void*)0x2000 ? 0 : 7; }
int cublasGetVersion_v2(void* h, int* v) {
  *v = 120400;
  return 0;
}
int cublasSetMathMode(void* h, int mode) { return mode == 0 || mode == 3 ? 0 : 7; }

int cublasSgemm_v2(void* h, int ta, int tb, int m, int n, int k, const float* alpha, const float* A, int lda,
                   const float* B, int ldb, const float* beta, float* C, int ldc) {
  if (h != (void*)0x4000 || (ta != 0 && ta != 1) || (tb != 0 && tb != 1)) return 7;
  if (m < 0 || n < 0 || k < 0 || ldc < m || lda < (ta ? k : m) || ldb < (tb ? n : k)) {
    fprintf(stderr, "cublas emulator: bad sizes m=%d n=%d k=%d lda=%d ldb=%d ldc=%d ta=%d tb=%d\n", m, n, k, lda,
            ldb, ldc, ta, tb);
    return 7;  // CUBLAS_STATUS_INVALID_VALUE
  }
  for (int j = 0; j < n; j++)
    for (int i = 0; i < m; i++) {
      double s = 0;
      for (int l = 0; l < k; l++) {
        float a = ta ? A[l + (long)i * lda] : A[i + (long)l * lda];  // op(A)(i, l)
        float b = tb ? B[j + (long)l * ldb] : B[l + (long)j * ldb];  // op(B)(l, j)
        s += (double)a * b;
      }
      float* c = &C[i + (long)j * ldc];
      *c = *beta == 0 ? (float)(*alpha * s) : (float)(*alpha * s + *beta * *c);
    }
  return 0;
}

// cublasSgemmStridedBatched: count products, each operand advanced by its
// stride (in elements) from one to the next.
int cublasSgemmStridedBatched(void* h, int ta, int tb, int m, int n, int k, const float* alpha, const float* A, int lda,
                              long long sa, const float* B, int ldb, long long sb, const float* beta, float* C,
                              int ldc, long long sc, int count) {
  if (count < 0) return 7;
  for (int i = 0; i < count; i++) {
    int st = cublasSgemm_v2(h, ta, tb, m, n, k, alpha, A + i * sa, lda, B + i * sb, ldb, beta, C + i * sc, ldc);
    if (st != 0) return st;
  }
  return 0;
}

// cublasGemmEx for bfloat16 (type 14) or float32 (type 0) inputs, a
// float32 output and float32 computation (CUBLAS_COMPUTE_32F, 68).
int cublasGemmEx(void* h, int ta, int tb, int m, int n, int k, const float* alpha, const void* A, int atype, int lda,
                 const void* B, int btype, int ldb, const float* beta, float* C, int ctype, int ldc, int compute,
                 int algo) {
  if (h != (void*)0x4000 || (ta != 0 && ta != 1) || (tb != 0 && tb != 1)) return 7;
  if ((atype != 0 && atype != 14) || (btype != 0 && btype != 14) || ctype != 0 || compute != 68) return 15;  // NOT_SUPPORTED
  if (m < 0 || n < 0 || k < 0 || ldc < m || lda < (ta ? k : m) || ldb < (tb ? n : k)) return 7;
  auto at = [&](const void* p, int type, long i) -> float {
    return type == 14 ? bf16(((const unsigned short*)p)[i]) : ((const float*)p)[i];
  };
  for (int j = 0; j < n; j++)
    for (int i = 0; i < m; i++) {
      double s = 0;
      for (int l = 0; l < k; l++) {
        float a = ta ? at(A, atype, l + (long)i * lda) : at(A, atype, i + (long)l * lda);
        float b = tb ? at(B, btype, j + (long)l * ldb) : at(B, btype, l + (long)j * ldb);
        s += (double)a * b;
      }
      float* c = &C[i + (long)j * ldc];
      *c = *beta == 0 ? (float)(*alpha * s) : (float)(*alpha * s + *beta * *c);
    }
  return 0;
}
}
