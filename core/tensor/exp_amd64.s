//go:build amd64 && !purego

#include "textflag.h"

// Constants of the vector exp: log2(e), the clamp, and the Taylor
// coefficients of 2^f on [-0.5, 0.5] (see expf in fastexp.go).
DATA expconst<>+0(SB)/4, $0x3fb8aa3b
DATA expconst<>+4(SB)/4, $0xc2fc0000
DATA expconst<>+8(SB)/4, $0x377fe5fe
DATA expconst<>+12(SB)/4, $0x39218489
DATA expconst<>+16(SB)/4, $0x3aaec3ff
DATA expconst<>+20(SB)/4, $0x3c1d955b
DATA expconst<>+24(SB)/4, $0x3d635847
DATA expconst<>+28(SB)/4, $0x3e75fdf0
DATA expconst<>+32(SB)/4, $0x3f317218
DATA expconst<>+36(SB)/4, $0x3f800000
GLOBL expconst<>(SB), RODATA|NOPTR, $40

// EXP8 computes Y3 = exp(Y1) for 8 lanes, using Y2 as scratch and the
// constants in Y13 (log2e), Y14 (clamp) and Y4..Y11 (c7..c0).
#define EXP8 \
	VMULPS Y13, Y1, Y1 \
	VMAXPS Y14, Y1, Y1 \
	VROUNDPS $0, Y1, Y2 \
	VSUBPS Y2, Y1, Y1 \
	VMOVAPS Y4, Y3 \
	VFMADD213PS Y5, Y1, Y3 \
	VFMADD213PS Y6, Y1, Y3 \
	VFMADD213PS Y7, Y1, Y3 \
	VFMADD213PS Y8, Y1, Y3 \
	VFMADD213PS Y9, Y1, Y3 \
	VFMADD213PS Y10, Y1, Y3 \
	VFMADD213PS Y11, Y1, Y3 \
	VCVTPS2DQ Y2, Y2 \
	VPSLLD $23, Y2, Y2 \
	VPADDD Y2, Y3, Y3

#define LOADCONST \
	VBROADCASTSS expconst<>+0(SB), Y13 \
	VBROADCASTSS expconst<>+4(SB), Y14 \
	VBROADCASTSS expconst<>+8(SB), Y4 \
	VBROADCASTSS expconst<>+12(SB), Y5 \
	VBROADCASTSS expconst<>+16(SB), Y6 \
	VBROADCASTSS expconst<>+20(SB), Y7 \
	VBROADCASTSS expconst<>+24(SB), Y8 \
	VBROADCASTSS expconst<>+28(SB), Y9 \
	VBROADCASTSS expconst<>+32(SB), Y10 \
	VBROADCASTSS expconst<>+36(SB), Y11

// func expSumAVX2(x *float32, n int, m float32) float32
// Σ exp(x[i] - m) over the first n&^7 elements.
TEXT ·expSumAVX2(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS m+16(FP), Y15
	LOADCONST
	VXORPS Y0, Y0, Y0
esloop:
	CMPQ CX, $8
	JLT esdone
	VMOVUPS (SI), Y1
	VSUBPS Y15, Y1, Y1
	EXP8
	VADDPS Y3, Y0, Y0
	ADDQ $32, SI
	SUBQ $8, CX
	JMP esloop
esdone:
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// func expStoreAVX2(out, x *float32, n int, m float32) float32
// out[i] = exp(x[i] - m) and their sum, over the first n&^7 elements.
TEXT ·expStoreAVX2(SB), NOSPLIT, $0-36
	MOVQ out+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS m+24(FP), Y15
	LOADCONST
	VXORPS Y0, Y0, Y0
etloop:
	CMPQ CX, $8
	JLT etdone
	VMOVUPS (SI), Y1
	VSUBPS Y15, Y1, Y1
	EXP8
	VMOVUPS Y3, (DI)
	VADDPS Y3, Y0, Y0
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP etloop
etdone:
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS X0, ret+32(FP)
	VZEROUPPER
	RET

// func softmaxGradAVX2(d, x *float32, n int, lse, w float32)
// d[i] += w * exp(x[i] - lse) over the first n&^7 elements.
TEXT ·softmaxGradAVX2(SB), NOSPLIT, $0-32
	MOVQ d+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS lse+24(FP), Y15
	VBROADCASTSS w+28(FP), Y12
	LOADCONST
sgloop:
	CMPQ CX, $8
	JLT sgdone
	VMOVUPS (SI), Y1
	VSUBPS Y15, Y1, Y1
	EXP8
	VMOVUPS (DI), Y0
	VFMADD231PS Y12, Y3, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP sgloop
sgdone:
	VZEROUPPER
	RET

// func swigluAVX2(dst, gate, up *float32, n int)
// dst[i] = g·σ(g)·up[i], g = gate[i], over the first n&^7 elements. The
// exponential only sees -|g| (no overflow): e = exp(-|g|), σ(g) = 1/(1+e)
// for g >= 0 and e/(1+e) below.
TEXT ·swigluAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ gate+8(FP), SI
	MOVQ up+16(FP), DX
	MOVQ n+24(FP), CX
	LOADCONST
	MOVL $0x80000000, AX
	VMOVD AX, X12
	VPBROADCASTD X12, Y12       // sign bit
swloop:
	CMPQ CX, $8
	JLT swdone
	VMOVUPS (SI), Y0            // g
	VORPS Y12, Y0, Y1           // -|g|
	EXP8                        // Y3 = e
	VADDPS Y11, Y3, Y2          // 1+e (Y11 holds 1)
	VDIVPS Y2, Y11, Y1          // 1/(1+e)
	VMULPS Y3, Y1, Y2           // e/(1+e)
	VBLENDVPS Y0, Y2, Y1, Y3    // σ(g): e/(1+e) where g's sign is set
	VMULPS Y0, Y3, Y3
	VMULPS (DX), Y3, Y3
	VMOVUPS Y3, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	SUBQ $8, CX
	JMP swloop
swdone:
	VZEROUPPER
	RET
