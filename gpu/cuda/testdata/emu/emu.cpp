// A stand-in libcuda.so.1 for machines without an NVIDIA GPU: it runs
// kernels.cu on the CPU, so the whole backend (purego bindings, kernel
// parameter arrays, launch shapes, shared memory sizes, buffers and
// copies) can be tested against the CPU backend. build.sh compiles it.
//
// Device memory is host memory, each allocation ending at a page boundary
// followed by an inaccessible page (an overrun faults) and filled with NaN
// (a kernel that reads memory it did not write shows it). Every CUDA
// thread of a block is a coroutine on one OS thread;
// __syncthreads and the warp shuffles are rendezvous points, and a
// barrier that can never complete (divergent __syncthreads, a shuffle
// with an exited lane) aborts with a message. Blocks run one after another.

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <math.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

// ---- the CUDA C dialect, for kernels.cu ----

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
};
static dim3 threadIdx, blockIdx, blockDim, gridDim;

static void emuFail(const char* msg) {
  fprintf(stderr, "cuda emulator: %s (block %u,%u,%u thread %u)\n", msg, blockIdx.x, blockIdx.y, blockIdx.z,
          threadIdx.x);
  abort();
}

enum State { RUN, AT_BLOCK, AT_WARP, DONE };

// Coroutine switches. glibc's swapcontext makes a system call each time
// (it saves the signal mask), which a kernel full of shuffles feels, so on
// x86-64 a six-register switch does it; elsewhere ucontext.
#if defined(__x86_64__)
extern "C" void emuSwitch(void** save, void* to);
asm(R"(
.text
.globl emuSwitch
.type emuSwitch,@function
emuSwitch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
)");
struct Thread {
  void* sp;
  State state;
};
static void* schedSp;
#else
struct Thread {
  ucontext_t ctx;
  State state;
};
static ucontext_t schedCtx;
#endif
static std::vector<Thread> threads;
static std::vector<char*> stacks;
static const size_t kStack = 256 << 10;
static int cur;
static double warpBuf[1024];
static char* dynSmem;

static void yieldAs(State s) {
  threads[cur].state = s;
#if defined(__x86_64__)
  emuSwitch(&threads[cur].sp, schedSp);
#else
  swapcontext(&threads[cur].ctx, &schedCtx);
#endif
}
static void __syncthreads() { yieldAs(AT_BLOCK); }

static double shfl(double v, int src) {
  int lane = threadIdx.x & 31, base = threadIdx.x & ~31;
  warpBuf[threadIdx.x] = v;
  yieldAs(AT_WARP);
  double r = warpBuf[base + (src & 31)];
  yieldAs(AT_WARP);  // nobody overwrites warpBuf before every lane has read
  (void)lane;
  return r;
}
static float __shfl_xor_sync(unsigned, float v, int m) { return (float)shfl(v, (threadIdx.x & 31) ^ m); }
static double __shfl_xor_sync(unsigned, double v, int m) { return shfl(v, (threadIdx.x & 31) ^ m); }
static float __shfl_sync(unsigned, float v, int src) { return (float)shfl(v, src); }
static int __shfl_xor_sync(unsigned, int v, int m) { return (int)shfl(v, (threadIdx.x & 31) ^ m); }

static float __int_as_float(int i) {
  float f;
  memcpy(&f, &i, 4);
  return f;
}
static unsigned __float_as_uint(float f) {
  unsigned i;
  memcpy(&i, &f, 4);
  return i;
}
static float __uint_as_float(unsigned i) {
  float f;
  memcpy(&f, &i, 4);
  return f;
}
static float atomicAdd(float* p, float v) {  // one OS thread: no race
  float o = *p;
  *p = o + v;
  return o;
}
static int min(int a, int b) { return a < b ? a : b; }
static int max(int a, int b) { return a > b ? a : b; }
static float* emuDynSmem() { return (float*)dynSmem; }

#define __global__
#define __device__
#define __forceinline__ inline
#define __constant__

#include "kernels_emu.inc"

// ---- the scheduler ----

typedef void (*Invoker)(void**);
static Invoker curKernel;
static void** curParams;

static void trampoline() {
  curKernel(curParams);
  yieldAs(DONE);  // never resumed
#if defined(__x86_64__)
  emuFail("a finished thread was resumed");
#endif
}

static void runBlock(int n) {
  threads.resize(n);
  while ((int)stacks.size() < n) stacks.push_back((char*)malloc(kStack));
  for (int i = 0; i < n; i++) {
    Thread& t = threads[i];
#if defined(__x86_64__)
    // A frame emuSwitch can "return" into: six zeroed registers, then
    // trampoline's address, then a dummy return address, so trampoline
    // starts with the stack aligned as after a call.
    uintptr_t top = ((uintptr_t)stacks[i] + kStack) & ~(uintptr_t)15;
    void** sp = (void**)top;
    *--sp = nullptr;
    *--sp = (void*)trampoline;
    for (int r = 0; r < 6; r++) *--sp = nullptr;
    t.sp = sp;
#else
    getcontext(&t.ctx);
    t.ctx.uc_stack.ss_sp = stacks[i];
    t.ctx.uc_stack.ss_size = kStack;
    t.ctx.uc_link = &schedCtx;
    makecontext(&t.ctx, trampoline, 0);
#endif
    t.state = RUN;
  }
  // Odd blocks run their threads last to first between barriers, so a
  // read that relies on another warp's write without a barrier between
  // them sees stale data (NaN) in one of the two orders.
  bool reverse = (blockIdx.x + blockIdx.y + blockIdx.z) & 1;
  for (;;) {
    for (int k = 0; k < n; k++) {
      int i = reverse ? n - 1 - k : k;
      if (threads[i].state != RUN) continue;
      cur = i;
      threadIdx.x = i;
#if defined(__x86_64__)
      emuSwitch(&schedSp, threads[i].sp);
#else
      swapcontext(&schedCtx, &threads[i].ctx);
#endif
    }
    bool released = false, allDone = true, allBlock = true;
    for (int w = 0; w < n; w += 32) {
      int waiting = 0, done = 0, live = 0;
      for (int i = w; i < w + 32 && i < n; i++) {
        State s = threads[i].state;
        if (s == DONE) {
          done++;
          continue;
        }
        live++;
        allDone = false;
        if (s != AT_BLOCK) allBlock = false;
        if (s == AT_WARP) waiting++;
      }
      if (waiting > 0 && waiting == live) {
        if (done > 0) {
          threadIdx.x = w;
          emuFail("warp shuffle with exited lanes");
        }
        for (int i = w; i < w + 32 && i < n; i++) threads[i].state = RUN;
        released = true;
      }
    }
    if (allDone) return;
    if (released) continue;
    if (allBlock) {
      for (auto& t : threads)
        if (t.state == AT_BLOCK) t.state = RUN;
      continue;
    }
    emuFail("deadlock: threads wait at different barriers (divergent __syncthreads or shuffle)");
  }
}

// ---- kernels by name ----

template <typename... A, size_t... I>
static void callWith(void (*f)(A...), void** p, std::index_sequence<I...>) {
  f(*static_cast<A*>(p[I])...);
}
template <auto F>
static void invoke(void** p) {
  callWith(F, p, std::make_index_sequence<[]<typename... A>(void (*)(A...)) { return sizeof...(A); }(F)>{});
}

struct Kernel {
  Invoker inv;
  int maxShm;
};
static std::map<std::string, Kernel> kernelTable() {
  std::map<std::string, Kernel> m;
#define K(name) m[#name] = Kernel{invoke<name>, 48 << 10}
  K(widen_f16); K(widen_bf16); K(dequant_q8); K(dequant_nf4); K(to_bf16);
  K(embedding_fwd); K(embedding_bwd);
  K(layernorm_fwd); K(layernorm_bwd_dx); K(layernorm_bwd_dwdb);
  K(rmsnorm_fwd); K(rmsnorm_bwd_dx); K(rmsnorm_bwd_dw); K(sum_rows);
  K(gelu_fwd); K(gelu_bwd); K(swiglu_fwd); K(swiglu_bwd); K(rope);
  K(geglu_fwd); K(geglu_bwd); K(softcap_fwd); K(softcap_bwd); K(relu_fwd); K(relu_bwd);
  K(ce_fwd); K(ce_bwd);
  K(add); K(mul); K(add_scaled); K(add_bias); K(copy_cols); K(adamw); K(sum_squares);
  K(clip_norm); K(scale_by); K(argmax_rows); K(adamw_multi);
  K(attn_bwd_di); K(attn_softmax); K(attn_ds);
  K(attn_fwd_1); K(attn_fwd_2); K(attn_fwd_4); K(attn_fwd_8);
  K(attn_bwd_dq_1); K(attn_bwd_dq_2); K(attn_bwd_dq_4); K(attn_bwd_dq_8);
  K(attn_bwd_dkdv_1); K(attn_bwd_dkdv_2); K(attn_bwd_dkdv_4); K(attn_bwd_dkdv_8);
#undef K
  return m;
}
static std::map<std::string, Kernel> kernels;

// ---- guarded memory ----

static std::map<uintptr_t, std::pair<void*, size_t>> mappings;  // user pointer -> (mmap base, length)

static void* guardedAlloc(size_t n, int fill) {
  size_t page = sysconf(_SC_PAGESIZE);
  size_t body = (n + page - 1) / page * page;
  char* base = (char*)mmap(nullptr, body + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return nullptr;
  mprotect(base + body, page, PROT_NONE);
  char* p = base + body - n;
  memset(base, fill, body);
  mappings[(uintptr_t)p] = {base, body + page};
  return p;
}
static void guardedFree(void* p) {
  auto it = mappings.find((uintptr_t)p);
  if (it == mappings.end()) emuFail("free of an unknown pointer");
  munmap(it->second.first, it->second.second);
  mappings.erase(it);
}

// ---- the driver API ----

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
static int launches;

extern "C" {
CUresult cuInit(unsigned flags) {
  if (flags != 0) return 1;
  kernels = kernelTable();
  return 0;
}
CUresult cuDriverGetVersion(int* v) {
  *v = 12040;
  return 0;
}
CUresult cuDeviceGetCount(int* n) {
  *n = 1;
  return 0;
}
CUresult cuDeviceGet(int* d, int ordinal) {
  if (ordinal != 0) return 101;
  *d = 0;
  return 0;
}
CUresult cuDeviceGetAttribute(int* v, int attr, int dev) {
  switch (attr) {
    case 75: *v = 9; return 0;       // compute capability 9.0
    case 76: *v = 0; return 0;
    case 97: *v = 227 << 10; return 0;  // opt-in shared memory per block
    case 16: *v = 4; return 0;
  }
  *v = 0;
  return 0;
}
CUresult cuDeviceGetName(char* name, int len, int dev) {
  snprintf(name, len, "CPU emulator");
  return 0;
}
CUresult cuDeviceTotalMem_v2(size_t* b, int dev) {
  *b = (size_t)8 << 30;
  return 0;
}
CUresult cuDevicePrimaryCtxRetain(void** ctx, int dev) {
  *ctx = (void*)0x1000;
  return 0;
}
CUresult cuDevicePrimaryCtxRelease_v2(int dev) { return 0; }
CUresult cuCtxSetCurrent(void* ctx) { return ctx == (void*)0x1000 ? 0 : 201; }
CUresult cuMemGetInfo_v2(size_t* f, size_t* t) {
  *f = *t = (size_t)8 << 30;
  return 0;
}
CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t n) {
  void* q = guardedAlloc(n, 0xff);  // NaN
  if (!q) return 2;
  *p = (CUdeviceptr)q;
  return 0;
}
CUresult cuMemFree_v2(CUdeviceptr p) {
  guardedFree((void*)p);
  return 0;
}
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t n, void* s) {
  memcpy((void*)dst, src, n);
  return 0;
}
CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t n, void* s) {
  memcpy(dst, (void*)src, n);
  return 0;
}
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, void* s) {
  if (s != (void*)0x2000) return 400;
  memmove((void*)dst, (const void*)src, n);
  return 0;
}
CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned v, size_t n, void* s) {
  for (size_t i = 0; i < n; i++) ((unsigned*)dst)[i] = v;
  return 0;
}
CUresult cuStreamCreate(void** s, unsigned flags) {
  *s = (void*)0x2000;
  return 0;
}
CUresult cuStreamSynchronize(void* s) { return s == (void*)0x2000 ? 0 : 400; }
CUresult cuStreamDestroy_v2(void* s) { return 0; }
CUresult cuModuleLoadData(void** m, const void* image) {
  const char* ptx = (const char*)image;
  if (!strstr(ptx, ".entry attn_fwd_1(")) return 218;  // CUDA_ERROR_INVALID_PTX
  *m = (void*)0x3000;
  return 0;
}
CUresult cuModuleUnload(void* m) { return 0; }
CUresult cuModuleGetFunction(void** f, void* m, const char* name) {
  auto it = kernels.find(name);
  if (it == kernels.end()) return 500;  // CUDA_ERROR_NOT_FOUND
  *f = &it->second;
  return 0;
}
CUresult cuFuncSetAttribute(void* f, int attr, int v) {
  if (attr != 8 || v > (227 << 10)) return 1;
  ((Kernel*)f)->maxShm = v;
  return 0;
}
CUresult cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shmem, void* stream, void** params, void** extra) {
  Kernel* k = (Kernel*)f;
  if (stream != (void*)0x2000 || extra != nullptr) return 1;
  if (by != 1 || bz != 1 || bx == 0 || bx > 1024 || bx % 32 != 0) {
    fprintf(stderr, "cuda emulator: block (%u,%u,%u): the kernels expect a 1-D block of whole warps\n", bx, by, bz);
    return 1;  // CUDA_ERROR_INVALID_VALUE
  }
  if (gx == 0 || gy == 0 || gz == 0 || gy > 65535 || gz > 65535) return 1;
  if ((int)shmem > k->maxShm) {
    fprintf(stderr, "cuda emulator: %u bytes of dynamic shared memory over the kernel's limit %d\n", shmem, k->maxShm);
    return 1;
  }
  launches++;
  dynSmem = shmem ? (char*)guardedAlloc(shmem, 0xff) : nullptr;
  blockDim.x = bx;
  gridDim.x = gx, gridDim.y = gy, gridDim.z = gz;
  curKernel = k->inv;
  curParams = params;
  for (unsigned z = 0; z < gz; z++)
    for (unsigned y = 0; y < gy; y++)
      for (unsigned x = 0; x < gx; x++) {
        blockIdx.x = x, blockIdx.y = y, blockIdx.z = z;
        if (dynSmem) memset(dynSmem, 0xff, shmem);
        runBlock(bx);
      }
  if (dynSmem) guardedFree(dynSmem);
  return 0;
}
CUresult cuGetErrorName(CUresult r, const char** s) {
  *s = "CUDA_ERROR_EMULATED";
  return 0;
}
}
