//go:build amd64 && !purego && !noasm

#include "textflag.h"

// Integer dot products of quantized weight rows with int8 activations
// (AVX2, and AVX-512 VNNI where noted). The recipe is llama.cpp's: a
// signed·signed byte product is formed as |w|·(a·sign(w)) so that
// VPMADDUBSW (unsigned × signed bytes -> int16 pairs) applies, then
// VPMADDWD against ones (or a sub-block scale) widens to int32.

// func dotQ8_0AVX2(w *byte, q *int8, d *float32, nb int) float32
TEXT ·dotQ8_0AVX2(SB), NOSPLIT, $0-36
	MOVQ w+0(FP), SI
	MOVQ q+8(FP), DI
	MOVQ d+16(FP), DX
	MOVQ nb+24(FP), CX
	VXORPS Y0, Y0, Y0
	VPCMPEQW Y7, Y7, Y7
	VPSRLW $15, Y7, Y7          // int16 ones
	TESTQ CX, CX
	JE q8done
q8loop:
	VMOVDQU 2(SI), Y1           // 32 weights
	VMOVDQU (DI), Y2            // 32 activations
	VPSIGNB Y1, Y1, Y3          // |w|
	VPSIGNB Y1, Y2, Y4          // a·sign(w)
	VPMADDUBSW Y4, Y3, Y5
	VPMADDWD Y7, Y5, Y5         // 8 int32 partial sums
	VCVTDQ2PS Y5, Y5
	MOVWLZX (SI), AX
	VMOVD AX, X6
	VCVTPH2PS X6, X6
	VMULSS (DX), X6, X6         // d_w·d_a
	VBROADCASTSS X6, Y6
	VFMADD231PS Y6, Y5, Y0
	ADDQ $34, SI
	ADDQ $32, DI
	ADDQ $4, DX
	DECQ CX
	JNE q8loop
q8done:
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VZEROUPPER
	MOVSS X0, ret+32(FP)
	RET

// func dotQ8_0VNNI(w *byte, q *int8, d *float32, nb int) float32
TEXT ·dotQ8_0VNNI(SB), NOSPLIT, $0-36
	MOVQ w+0(FP), SI
	MOVQ q+8(FP), DI
	MOVQ d+16(FP), DX
	MOVQ nb+24(FP), CX
	VXORPS Y0, Y0, Y0
	TESTQ CX, CX
	JE q8vdone
q8vloop:
	VMOVDQU 2(SI), Y1
	VMOVDQU (DI), Y2
	VPSIGNB Y1, Y1, Y3
	VPSIGNB Y1, Y2, Y4
	VPXOR Y5, Y5, Y5
	VPDPBUSD Y4, Y3, Y5         // int32 sums of |w|·a' in one step
	VCVTDQ2PS Y5, Y5
	MOVWLZX (SI), AX
	VMOVD AX, X6
	VCVTPH2PS X6, X6
	VMULSS (DX), X6, X6
	VBROADCASTSS X6, Y6
	VFMADD231PS Y6, Y5, Y0
	ADDQ $34, SI
	ADDQ $32, DI
	ADDQ $4, DX
	DECQ CX
	JNE q8vloop
q8vdone:
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VZEROUPPER
	MOVSS X0, ret+32(FP)
	RET

// func dotQ4KBlockAVX2(qs *byte, q *int8, sc *byte, bs *int32) (isum, msum int32)
// For one Q4_K super-block: isum = Σ_j scale_j·Σ_{32 elements of
// sub-block j} code·a (codes 0..15, unsigned: no sign trick needed) and
// msum = Σ_j min_j·Σ_{sub-block j} a, from the 12 packed scale bytes sc
// and the activation's sums per 16 (bs).
TEXT ·dotQ4KBlockAVX2(SB), NOSPLIT, $16-40
	MOVQ qs+0(FP), SI
	MOVQ q+8(FP), DI
	MOVQ sc+16(FP), R10
	MOVQ bs+24(FP), R9
	// the 6-bit scales and minimums, four at a time (llama.cpp's masks)
	MOVL 0(R10), AX             // u0
	MOVL 4(R10), BX             // u1
	MOVL 8(R10), R11            // u2
	MOVL AX, R12
	ANDL $0x3f3f3f3f, R12       // scales 0-3
	MOVL R11, R13
	ANDL $0x0f0f0f0f, R13
	MOVL AX, R14
	SHRL $6, R14
	ANDL $0x03030303, R14
	SHLL $4, R14
	ORL R14, R13                // scales 4-7
	MOVL BX, R14
	ANDL $0x3f3f3f3f, R14       // mins 0-3
	MOVL R11, R15
	SHRL $4, R15
	ANDL $0x0f0f0f0f, R15
	MOVL BX, AX
	SHRL $6, AX
	ANDL $0x03030303, AX
	SHLL $4, AX
	ORL AX, R15                 // mins 4-7
	SHLQ $32, R13
	ORQ R13, R12
	MOVQ R12, X1
	VPMOVZXBW X1, X1            // 8 scales as int16
	VMOVDQU X1, 0(SP)
	SHLQ $32, R15
	ORQ R15, R14
	MOVQ R14, X2
	VPMOVZXBD X2, Y2            // 8 mins as int32
	VMOVDQU (R9), Y3            // bsums 0-7
	VMOVDQU 32(R9), Y4          // bsums 8-15
	VPHADDD Y4, Y3, Y3          // pair sums, lanes out of order
	VPERMQ $0xD8, Y3, Y3        // sums over sub-blocks 0..7
	VPMULLD Y3, Y2, Y2
	VEXTRACTI128 $1, Y2, X3
	VPADDD X3, X2, X2
	VPHADDD X2, X2, X2
	VPHADDD X2, X2, X2
	VMOVD X2, AX
	MOVL AX, msum+36(FP)     // Σ min·Σa
	MOVQ SP, DX
	VPXOR Y0, Y0, Y0
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X8
	VPBROADCASTD X8, Y8
	MOVQ $4, CX
q4kloop:
	VMOVDQU (SI), Y1            // 32 bytes: sub-block 2j low nibbles, 2j+1 high
	VPSRLW $4, Y1, Y2
	VPAND Y8, Y1, Y1
	VPAND Y8, Y2, Y2
	VMOVDQU (DI), Y3
	VMOVDQU 32(DI), Y4
	VPMADDUBSW Y3, Y1, Y1
	VPMADDUBSW Y4, Y2, Y2
	VPBROADCASTW (DX), Y5
	VPBROADCASTW 2(DX), Y6
	VPMADDWD Y5, Y1, Y1
	VPMADDWD Y6, Y2, Y2
	VPADDD Y1, Y0, Y0
	VPADDD Y2, Y0, Y0
	ADDQ $32, SI
	ADDQ $64, DI
	ADDQ $4, DX
	DECQ CX
	JNE q4kloop
	VEXTRACTI128 $1, Y0, X1
	VPADDD X1, X0, X0
	VPHADDD X0, X0, X0
	VPHADDD X0, X0, X0
	VZEROUPPER
	VMOVD X0, AX
	MOVL AX, isum+32(FP)
	RET

// func dotQ6KBlockAVX2(ql, qh *byte, q *int8, sc *int8, bs *int32) int32
// Σ_g sc[g]·Σ_{16 elements of group g} (code-32)·a for one Q6_K
// super-block: the codes go in unsigned (0..63) and 32·Σ_g sc[g]·bs[g]
// (bs: the activation's sums per group) comes off at the end. The
// int8 scales are widened to int16 on the stack for the broadcasts.
TEXT ·dotQ6KBlockAVX2(SB), NOSPLIT, $32-44
	MOVQ ql+0(FP), SI
	MOVQ qh+8(FP), BX
	MOVQ q+16(FP), DI
	MOVQ sc+24(FP), DX
	MOVQ bs+32(FP), R9
	VPMOVSXBD (DX), Y1          // 32·Σ sc·bs, the offset of the unsigned codes
	VPMOVSXBD 8(DX), Y2
	VPMULLD (R9), Y1, Y1
	VPMULLD 32(R9), Y2, Y2
	VPADDD Y2, Y1, Y1
	VPSLLD $5, Y1, Y15
	VPMOVSXBW (DX), Y1          // the scales as int16
	VMOVDQU Y1, 0(SP)
	MOVQ SP, DX
	VPXOR Y0, Y0, Y0
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X8
	VPBROADCASTD X8, Y8         // 0x0f
	MOVL $0x03030303, AX
	VMOVD AX, X9
	VPBROADCASTD X9, Y9         // 0x03
	MOVQ $2, CX
q6kloop:
	VMOVDQU (SI), Y1            // ql[0:32]
	VMOVDQU 32(SI), Y2          // ql[32:64]
	VMOVDQU (BX), Y3            // qh[0:32]
	// q1 = ql&15 | (qh&3)<<4       elements 0..31
	VPAND Y8, Y1, Y10
	VPAND Y9, Y3, Y11
	VPSLLW $4, Y11, Y11
	VPOR Y11, Y10, Y10
	// q2 = ql32&15 | (qh>>2&3)<<4  elements 32..63
	VPAND Y8, Y2, Y12
	VPSRLW $2, Y3, Y11
	VPAND Y9, Y11, Y11
	VPSLLW $4, Y11, Y11
	VPOR Y11, Y12, Y12
	// q3 = ql>>4 | (qh>>4&3)<<4    elements 64..95
	VPSRLW $4, Y1, Y13
	VPAND Y8, Y13, Y13
	VPSRLW $4, Y3, Y11
	VPAND Y9, Y11, Y11
	VPSLLW $4, Y11, Y11
	VPOR Y11, Y13, Y13
	// q4 = ql32>>4 | (qh>>6&3)<<4  elements 96..127
	VPSRLW $4, Y2, Y14
	VPAND Y8, Y14, Y14
	VPSRLW $6, Y3, Y11
	VPAND Y9, Y11, Y11
	VPSLLW $4, Y11, Y11
	VPOR Y11, Y14, Y14
	// products with the activations, then the group scales: the low
	// 16 bytes of each vector are one group, the high 16 the next.
	VMOVDQU (DI), Y4
	VPMADDUBSW Y4, Y10, Y10
	VPBROADCASTW (DX), X5
	VPBROADCASTW 2(DX), X6
	VINSERTI128 $1, X6, Y5, Y5
	VPMADDWD Y5, Y10, Y10
	VPADDD Y10, Y0, Y0
	VMOVDQU 32(DI), Y4
	VPMADDUBSW Y4, Y12, Y12
	VPBROADCASTW 4(DX), X5
	VPBROADCASTW 6(DX), X6
	VINSERTI128 $1, X6, Y5, Y5
	VPMADDWD Y5, Y12, Y12
	VPADDD Y12, Y0, Y0
	VMOVDQU 64(DI), Y4
	VPMADDUBSW Y4, Y13, Y13
	VPBROADCASTW 8(DX), X5
	VPBROADCASTW 10(DX), X6
	VINSERTI128 $1, X6, Y5, Y5
	VPMADDWD Y5, Y13, Y13
	VPADDD Y13, Y0, Y0
	VMOVDQU 96(DI), Y4
	VPMADDUBSW Y4, Y14, Y14
	VPBROADCASTW 12(DX), X5
	VPBROADCASTW 14(DX), X6
	VINSERTI128 $1, X6, Y5, Y5
	VPMADDWD Y5, Y14, Y14
	VPADDD Y14, Y0, Y0
	ADDQ $64, SI
	ADDQ $32, BX
	ADDQ $128, DI
	ADDQ $16, DX
	DECQ CX
	JNE q6kloop
	VPSUBD Y15, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDD X1, X0, X0
	VPHADDD X0, X0, X0
	VPHADDD X0, X0, X0
	VZEROUPPER
	VMOVD X0, AX
	MOVL AX, ret+40(FP)
	RET

// func dotQ5KBlockAVX2(qs, qh *byte, q *int8, sc *byte, bs *int32) (isum, msum int32)
// As dotQ4KBlockAVX2 with the fifth bits of Q5_K: bit 2j of qh[l] for
// element l of sub-block 2j, bit 2j+1 for sub-block 2j+1.
TEXT ·dotQ5KBlockAVX2(SB), NOSPLIT, $16-48
	MOVQ qs+0(FP), SI
	MOVQ q+16(FP), DI
	MOVQ sc+24(FP), R10
	MOVQ bs+32(FP), R9
	// the 6-bit scales and minimums, four at a time (llama.cpp's masks)
	MOVL 0(R10), AX             // u0
	MOVL 4(R10), BX             // u1
	MOVL 8(R10), R11            // u2
	MOVL AX, R12
	ANDL $0x3f3f3f3f, R12       // scales 0-3
	MOVL R11, R13
	ANDL $0x0f0f0f0f, R13
	MOVL AX, R14
	SHRL $6, R14
	ANDL $0x03030303, R14
	SHLL $4, R14
	ORL R14, R13                // scales 4-7
	MOVL BX, R14
	ANDL $0x3f3f3f3f, R14       // mins 0-3
	MOVL R11, R15
	SHRL $4, R15
	ANDL $0x0f0f0f0f, R15
	MOVL BX, AX
	SHRL $6, AX
	ANDL $0x03030303, AX
	SHLL $4, AX
	ORL AX, R15                 // mins 4-7
	SHLQ $32, R13
	ORQ R13, R12
	MOVQ R12, X1
	VPMOVZXBW X1, X1            // 8 scales as int16
	VMOVDQU X1, 0(SP)
	SHLQ $32, R15
	ORQ R15, R14
	MOVQ R14, X2
	VPMOVZXBD X2, Y2            // 8 mins as int32
	VMOVDQU (R9), Y3            // bsums 0-7
	VMOVDQU 32(R9), Y4          // bsums 8-15
	VPHADDD Y4, Y3, Y3          // pair sums, lanes out of order
	VPERMQ $0xD8, Y3, Y3        // sums over sub-blocks 0..7
	VPMULLD Y3, Y2, Y2
	VEXTRACTI128 $1, Y2, X3
	VPADDD X3, X2, X2
	VPHADDD X2, X2, X2
	VPHADDD X2, X2, X2
	VMOVD X2, AX
	MOVL AX, msum+44(FP)     // Σ min·Σa
	MOVQ SP, DX
	MOVQ qh+8(FP), BX
	VPXOR Y0, Y0, Y0
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X8
	VPBROADCASTD X8, Y8         // 0x0f
	MOVL $0x01010101, AX
	VMOVD AX, X9
	VPBROADCASTD X9, Y9         // 0x01
	VMOVDQU (BX), Y10           // qh, all 32 bytes
	XORQ R8, R8                 // bit of the low sub-block
	MOVQ $4, CX
q5kloop:
	VMOVDQU (SI), Y1
	VPSRLW $4, Y1, Y2
	VPAND Y8, Y1, Y1
	VPAND Y8, Y2, Y2
	MOVQ R8, X12
	VPSRLW X12, Y10, Y11
	VPAND Y9, Y11, Y11
	VPSLLW $4, Y11, Y11
	VPOR Y11, Y1, Y1            // + 16 where the bit is set
	INCQ R8
	MOVQ R8, X12
	VPSRLW X12, Y10, Y11
	VPAND Y9, Y11, Y11
	VPSLLW $4, Y11, Y11
	VPOR Y11, Y2, Y2
	INCQ R8
	VMOVDQU (DI), Y3
	VMOVDQU 32(DI), Y4
	VPMADDUBSW Y3, Y1, Y1
	VPMADDUBSW Y4, Y2, Y2
	VPBROADCASTW (DX), Y5
	VPBROADCASTW 2(DX), Y6
	VPMADDWD Y5, Y1, Y1
	VPMADDWD Y6, Y2, Y2
	VPADDD Y1, Y0, Y0
	VPADDD Y2, Y0, Y0
	ADDQ $32, SI
	ADDQ $64, DI
	ADDQ $4, DX
	DECQ CX
	JNE q5kloop
	VEXTRACTI128 $1, Y0, X1
	VPADDD X1, X0, X0
	VPHADDD X0, X0, X0
	VPHADDD X0, X0, X0
	VZEROUPPER
	VMOVD X0, AX
	MOVL AX, isum+40(FP)
	RET

// Q5_0's fifth bits, one per element: qh broadcast, each byte k of the
// result picks byte k/8 of qh (q5shuf), and equals 0xff when bit k%8 of
// it is set (OR with all bits but that one, compare with all ones).
DATA q5shuf<>+0(SB)/8, $0x0000000000000000
DATA q5shuf<>+8(SB)/8, $0x0101010101010101
DATA q5shuf<>+16(SB)/8, $0x0202020202020202
DATA q5shuf<>+24(SB)/8, $0x0303030303030303
GLOBL q5shuf<>(SB), RODATA|NOPTR, $32
DATA q5bits<>+0(SB)/8, $0x7fbfdfeff7fbfdfe
DATA q5bits<>+8(SB)/8, $0x7fbfdfeff7fbfdfe
DATA q5bits<>+16(SB)/8, $0x7fbfdfeff7fbfdfe
DATA q5bits<>+24(SB)/8, $0x7fbfdfeff7fbfdfe
GLOBL q5bits<>(SB), RODATA|NOPTR, $32

// func dotQ5_0AVX2(w *byte, q *int8, d *float32, nb int) float32
TEXT ·dotQ5_0AVX2(SB), NOSPLIT, $0-36
	MOVQ w+0(FP), SI
	MOVQ q+8(FP), DI
	MOVQ d+16(FP), DX
	MOVQ nb+24(FP), CX
	VXORPS Y0, Y0, Y0
	VPCMPEQW Y7, Y7, Y7
	VPSRLW $15, Y7, Y7          // int16 ones
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X8
	VPBROADCASTD X8, Y8         // 0x0f
	MOVL $0xf0f0f0f0, AX
	VMOVD AX, X9
	VPBROADCASTD X9, Y9         // 0xf0
	VMOVDQU q5shuf<>(SB), Y12
	VMOVDQU q5bits<>(SB), Y13
	VPCMPEQB Y14, Y14, Y14      // all ones
	TESTQ CX, CX
	JE q50done
q50loop:
	VMOVDQU 6(SI), X1           // 16 bytes of nibbles
	VPSRLW $4, X1, X2
	VINSERTI128 $1, X2, Y1, Y1
	VPAND Y8, Y1, Y1
	VPBROADCASTD 2(SI), Y10     // qh
	VPSHUFB Y12, Y10, Y10
	VPOR Y13, Y10, Y10
	VPCMPEQB Y14, Y10, Y10      // 0xff where the fifth bit is set
	VPANDN Y9, Y10, Y10         // 0xf0 where it is not: q - 16 as int8
	VPOR Y10, Y1, Y1
	VMOVDQU (DI), Y2
	VPSIGNB Y1, Y1, Y3
	VPSIGNB Y1, Y2, Y4
	VPMADDUBSW Y4, Y3, Y5
	VPMADDWD Y7, Y5, Y5
	VCVTDQ2PS Y5, Y5
	MOVWLZX (SI), AX
	VMOVD AX, X6
	VCVTPH2PS X6, X6
	VMULSS (DX), X6, X6
	VBROADCASTSS X6, Y6
	VFMADD231PS Y6, Y5, Y0
	ADDQ $22, SI
	ADDQ $32, DI
	ADDQ $4, DX
	DECQ CX
	JNE q50loop
q50done:
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VZEROUPPER
	MOVSS X0, ret+32(FP)
	RET

// func dotQ4KRowAVX2(w *byte, q *int8, d *float32, bs *int32, nb int) float32
// A whole Q4_K row of nb blocks: dotQ4KBlockAVX2's integer work per
// block, left as 8 lanes (Σ scale·q·a and min·Σa), converted to float and
// added into 8 float lanes with D[i]·d and D[i]·dmin (F16C widens d and
// dmin); the lanes are summed once, at the end of the row. (Summing each
// block to a scalar, as the Go code does, cost a fifth of the time.)
TEXT ·dotQ4KRowAVX2(SB), NOSPLIT, $48-44
	MOVQ w+0(FP), R8
	MOVQ q+8(FP), DI
	MOVQ d+16(FP), AX
	MOVQ AX, 16(SP)
	MOVQ bs+24(FP), R9
	MOVQ nb+32(FP), AX
	MOVQ AX, 24(SP)
	VXORPS Y7, Y7, Y7
q4krow:
	LEAQ 4(R8), R10             // scales
	LEAQ 16(R8), SI             // codes
	// the 6-bit scales and minimums, four at a time (llama.cpp's masks)
	MOVL 0(R10), AX             // u0
	MOVL 4(R10), BX             // u1
	MOVL 8(R10), R11            // u2
	MOVL AX, R12
	ANDL $0x3f3f3f3f, R12       // scales 0-3
	MOVL R11, R13
	ANDL $0x0f0f0f0f, R13
	MOVL AX, R14
	SHRL $6, R14
	ANDL $0x03030303, R14
	SHLL $4, R14
	ORL R14, R13                // scales 4-7
	MOVL BX, R14
	ANDL $0x3f3f3f3f, R14       // mins 0-3
	MOVL R11, R15
	SHRL $4, R15
	ANDL $0x0f0f0f0f, R15
	MOVL BX, AX
	SHRL $6, AX
	ANDL $0x03030303, AX
	SHLL $4, AX
	ORL AX, R15                 // mins 4-7
	SHLQ $32, R13
	ORQ R13, R12
	MOVQ R12, X1
	VPMOVZXBW X1, X1            // 8 scales as int16
	VMOVDQU X1, 0(SP)
	SHLQ $32, R15
	ORQ R15, R14
	MOVQ R14, X2
	VPMOVZXBD X2, Y2            // 8 mins as int32
	VMOVDQU (R9), Y3            // bsums 0-7
	VMOVDQU 32(R9), Y4          // bsums 8-15
	VPHADDD Y4, Y3, Y3          // pair sums, lanes out of order
	VPERMQ $0xD8, Y3, Y3        // sums over sub-blocks 0..7
	VPMULLD Y3, Y2, Y9          // min·Σa per sub-block
	MOVQ SP, DX
	VPXOR Y0, Y0, Y0
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X8
	VPBROADCASTD X8, Y8
	MOVQ $4, CX
q4krowloop:
	VMOVDQU (SI), Y1            // 32 bytes: sub-block 2j low nibbles, 2j+1 high
	VPSRLW $4, Y1, Y2
	VPAND Y8, Y1, Y1
	VPAND Y8, Y2, Y2
	VMOVDQU (DI), Y3
	VMOVDQU 32(DI), Y4
	VPMADDUBSW Y3, Y1, Y1
	VPMADDUBSW Y4, Y2, Y2
	VPBROADCASTW (DX), Y5
	VPBROADCASTW 2(DX), Y6
	VPMADDWD Y5, Y1, Y1
	VPMADDWD Y6, Y2, Y2
	VPADDD Y1, Y0, Y0
	VPADDD Y2, Y0, Y0
	ADDQ $32, SI
	ADDQ $64, DI
	ADDQ $4, DX
	DECQ CX
	JNE q4krowloop
	MOVL (R8), BX
	VMOVD BX, X1
	VCVTPH2PS X1, X1            // d, dmin
	MOVQ 16(SP), DX
	VBROADCASTSS (DX), X5
	VMULPS X5, X1, X1           // D[i]·d, D[i]·dmin
	VBROADCASTSS X1, Y10
	VMOVSHDUP X1, X1
	VBROADCASTSS X1, Y11
	VCVTDQ2PS Y0, Y0
	VFMADD231PS Y10, Y0, Y7
	VCVTDQ2PS Y9, Y9
	VFNMADD231PS Y11, Y9, Y7
	ADDQ $4, DX
	MOVQ DX, 16(SP)
	ADDQ $144, R8
	ADDQ $64, R9
	DECQ 24(SP)
	JNE q4krow
	VEXTRACTF128 $1, Y7, X1
	VADDPS X1, X7, X7
	VHADDPS X7, X7, X7
	VHADDPS X7, X7, X7
	VZEROUPPER
	VMOVSS X7, ret+40(FP)
	RET

// func dotQ6KRowAVX2(w *byte, q *int8, d *float32, bs *int32, nb int) float32
// A whole Q6_K row of nb blocks: dotQ6KBlockAVX2's integer work per
// block, left as 8 lanes, converted to float and added into 8 float lanes
// with D[i]·d (F16C widens d); the lanes are summed once per row.
TEXT ·dotQ6KRowAVX2(SB), NOSPLIT, $64-44
	MOVQ w+0(FP), R8
	MOVQ q+8(FP), DI
	MOVQ d+16(FP), AX
	MOVQ AX, 32(SP)
	MOVQ bs+24(FP), R9
	MOVQ nb+32(FP), AX
	MOVQ AX, 40(SP)
	VXORPS Y7, Y7, Y7
q6krow:
	MOVQ R8, SI                 // ql
	LEAQ 128(R8), BX            // qh
	LEAQ 192(R8), DX            // scales
	VPMOVSXBD (DX), Y1          // 32·Σ sc·bs, the offset of the unsigned codes
	VPMOVSXBD 8(DX), Y2
	VPMULLD (R9), Y1, Y1
	VPMULLD 32(R9), Y2, Y2
	VPADDD Y2, Y1, Y1
	VPSLLD $5, Y1, Y15
	VPMOVSXBW (DX), Y1          // the scales as int16
	VMOVDQU Y1, 0(SP)
	MOVQ SP, DX
	VPXOR Y0, Y0, Y0
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X8
	VPBROADCASTD X8, Y8         // 0x0f
	MOVL $0x03030303, AX
	VMOVD AX, X9
	VPBROADCASTD X9, Y9         // 0x03
	MOVQ $2, CX
q6krowloop:
	VMOVDQU (SI), Y1            // ql[0:32]
	VMOVDQU 32(SI), Y2          // ql[32:64]
	VMOVDQU (BX), Y3            // qh[0:32]
	// q1 = ql&15 | (qh&3)<<4       elements 0..31
	VPAND Y8, Y1, Y10
	VPAND Y9, Y3, Y11
	VPSLLW $4, Y11, Y11
	VPOR Y11, Y10, Y10
	// q2 = ql32&15 | (qh>>2&3)<<4  elements 32..63
	VPAND Y8, Y2, Y12
	VPSRLW $2, Y3, Y11
	VPAND Y9, Y11, Y11
	VPSLLW $4, Y11, Y11
	VPOR Y11, Y12, Y12
	// q3 = ql>>4 | (qh>>4&3)<<4    elements 64..95
	VPSRLW $4, Y1, Y13
	VPAND Y8, Y13, Y13
	VPSRLW $4, Y3, Y11
	VPAND Y9, Y11, Y11
	VPSLLW $4, Y11, Y11
	VPOR Y11, Y13, Y13
	// q4 = ql32>>4 | (qh>>6&3)<<4  elements 96..127
	VPSRLW $4, Y2, Y14
	VPAND Y8, Y14, Y14
	VPSRLW $6, Y3, Y11
	VPAND Y9, Y11, Y11
	VPSLLW $4, Y11, Y11
	VPOR Y11, Y14, Y14
	// products with the activations, then the group scales: the low
	// 16 bytes of each vector are one group, the high 16 the next.
	VMOVDQU (DI), Y4
	VPMADDUBSW Y4, Y10, Y10
	VPBROADCASTW (DX), X5
	VPBROADCASTW 2(DX), X6
	VINSERTI128 $1, X6, Y5, Y5
	VPMADDWD Y5, Y10, Y10
	VPADDD Y10, Y0, Y0
	VMOVDQU 32(DI), Y4
	VPMADDUBSW Y4, Y12, Y12
	VPBROADCASTW 4(DX), X5
	VPBROADCASTW 6(DX), X6
	VINSERTI128 $1, X6, Y5, Y5
	VPMADDWD Y5, Y12, Y12
	VPADDD Y12, Y0, Y0
	VMOVDQU 64(DI), Y4
	VPMADDUBSW Y4, Y13, Y13
	VPBROADCASTW 8(DX), X5
	VPBROADCASTW 10(DX), X6
	VINSERTI128 $1, X6, Y5, Y5
	VPMADDWD Y5, Y13, Y13
	VPADDD Y13, Y0, Y0
	VMOVDQU 96(DI), Y4
	VPMADDUBSW Y4, Y14, Y14
	VPBROADCASTW 12(DX), X5
	VPBROADCASTW 14(DX), X6
	VINSERTI128 $1, X6, Y5, Y5
	VPMADDWD Y5, Y14, Y14
	VPADDD Y14, Y0, Y0
	ADDQ $64, SI
	ADDQ $32, BX
	ADDQ $128, DI
	ADDQ $16, DX
	DECQ CX
	JNE q6krowloop
	VPSUBD Y15, Y0, Y0
	MOVWLZX 208(R8), BX
	VMOVD BX, X1
	VCVTPH2PS X1, X1            // d
	MOVQ 32(SP), DX
	VMULSS (DX), X1, X1         // D[i]·d
	VBROADCASTSS X1, Y2
	VCVTDQ2PS Y0, Y0
	VFMADD231PS Y2, Y0, Y7
	ADDQ $4, DX
	MOVQ DX, 32(SP)
	ADDQ $210, R8
	ADDQ $64, R9
	DECQ 40(SP)
	JNE q6krow
	VEXTRACTF128 $1, Y7, X1
	VADDPS X1, X7, X7
	VHADDPS X7, X7, X7
	VHADDPS X7, X7, X7
	VZEROUPPER
	VMOVSS X7, ret+40(FP)
	RET

// func dotQ4KRowsAVX2(w *byte, stride, rows int, q *int8, d *float32, bs *int32, nb int, out *float32)
// out[r] = dotQ4KRowAVX2(w + r·stride, q, d, bs, nb) for r < rows: the same
// arithmetic, without a call per row.
TEXT ·dotQ4KRowsAVX2(SB), NOSPLIT, $72-64
	MOVQ rows+16(FP), AX
	TESTQ AX, AX
	JEQ q4krows_done
	MOVQ AX, 56(SP)
	MOVQ w+0(FP), AX
	MOVQ AX, 48(SP)
	MOVQ out+56(FP), AX
	MOVQ AX, 64(SP)
q4krows_row:
	MOVQ 48(SP), R8
	MOVQ q+24(FP), DI
	MOVQ d+32(FP), AX
	MOVQ AX, 16(SP)
	MOVQ bs+40(FP), R9
	MOVQ nb+48(FP), AX
	MOVQ AX, 24(SP)
	VXORPS Y7, Y7, Y7
q4krows_blk:
	LEAQ 4(R8), R10             // scales
	LEAQ 16(R8), SI             // codes
	// the 6-bit scales and minimums, four at a time (llama.cpp's masks)
	MOVL 0(R10), AX             // u0
	MOVL 4(R10), BX             // u1
	MOVL 8(R10), R11            // u2
	MOVL AX, R12
	ANDL $0x3f3f3f3f, R12       // scales 0-3
	MOVL R11, R13
	ANDL $0x0f0f0f0f, R13
	MOVL AX, R14
	SHRL $6, R14
	ANDL $0x03030303, R14
	SHLL $4, R14
	ORL R14, R13                // scales 4-7
	MOVL BX, R14
	ANDL $0x3f3f3f3f, R14       // mins 0-3
	MOVL R11, R15
	SHRL $4, R15
	ANDL $0x0f0f0f0f, R15
	MOVL BX, AX
	SHRL $6, AX
	ANDL $0x03030303, AX
	SHLL $4, AX
	ORL AX, R15                 // mins 4-7
	SHLQ $32, R13
	ORQ R13, R12
	MOVQ R12, X1
	VPMOVZXBW X1, X1            // 8 scales as int16
	VMOVDQU X1, 0(SP)
	SHLQ $32, R15
	ORQ R15, R14
	MOVQ R14, X2
	VPMOVZXBD X2, Y2            // 8 mins as int32
	VMOVDQU (R9), Y3            // bsums 0-7
	VMOVDQU 32(R9), Y4          // bsums 8-15
	VPHADDD Y4, Y3, Y3          // pair sums, lanes out of order
	VPERMQ $0xD8, Y3, Y3        // sums over sub-blocks 0..7
	VPMULLD Y3, Y2, Y9          // min·Σa per sub-block
	MOVQ SP, DX
	VPXOR Y0, Y0, Y0
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X8
	VPBROADCASTD X8, Y8
	MOVQ $4, CX
q4krows_blkloop:
	VMOVDQU (SI), Y1            // 32 bytes: sub-block 2j low nibbles, 2j+1 high
	VPSRLW $4, Y1, Y2
	VPAND Y8, Y1, Y1
	VPAND Y8, Y2, Y2
	VMOVDQU (DI), Y3
	VMOVDQU 32(DI), Y4
	VPMADDUBSW Y3, Y1, Y1
	VPMADDUBSW Y4, Y2, Y2
	VPBROADCASTW (DX), Y5
	VPBROADCASTW 2(DX), Y6
	VPMADDWD Y5, Y1, Y1
	VPMADDWD Y6, Y2, Y2
	VPADDD Y1, Y0, Y0
	VPADDD Y2, Y0, Y0
	ADDQ $32, SI
	ADDQ $64, DI
	ADDQ $4, DX
	DECQ CX
	JNE q4krows_blkloop
	MOVL (R8), BX
	VMOVD BX, X1
	VCVTPH2PS X1, X1            // d, dmin
	MOVQ 16(SP), DX
	VBROADCASTSS (DX), X5
	VMULPS X5, X1, X1           // D[i]·d, D[i]·dmin
	VBROADCASTSS X1, Y10
	VMOVSHDUP X1, X1
	VBROADCASTSS X1, Y11
	VCVTDQ2PS Y0, Y0
	VFMADD231PS Y10, Y0, Y7
	VCVTDQ2PS Y9, Y9
	VFNMADD231PS Y11, Y9, Y7
	ADDQ $4, DX
	MOVQ DX, 16(SP)
	ADDQ $144, R8
	ADDQ $64, R9
	DECQ 24(SP)
	JNE q4krows_blk
	VEXTRACTF128 $1, Y7, X1
	VADDPS X1, X7, X7
	VHADDPS X7, X7, X7
	VHADDPS X7, X7, X7
	MOVQ 64(SP), AX
	VMOVSS X7, (AX)
	ADDQ $4, AX
	MOVQ AX, 64(SP)
	MOVQ 48(SP), R8
	ADDQ stride+8(FP), R8
	MOVQ R8, 48(SP)
	DECQ 56(SP)
	JNE q4krows_row
	VZEROUPPER
q4krows_done:
	RET

// func dotQ4KRowsVNNI(w *byte, stride, rows int, q *int8, d *float32, bs *int32, nb int, out *float32)
// dotQ4KRowsAVX2 with AVX-512 VNNI: each sub-block's scale multiply-add
// (VPDPWSSD) in one instruction, into two accumulators, the four steps
// of a super-block unrolled. The integer sums are exact either way, so
// the result has the same bits as dotQ4KRowsAVX2.
TEXT ·dotQ4KRowsVNNI(SB), NOSPLIT, $72-64
	MOVQ rows+16(FP), AX
	TESTQ AX, AX
	JEQ q4kvrows_done
	MOVQ AX, 56(SP)
	MOVQ w+0(FP), AX
	MOVQ AX, 48(SP)
	MOVQ out+56(FP), AX
	MOVQ AX, 64(SP)
q4kvrows_row:
	MOVQ 48(SP), R8
	MOVQ q+24(FP), DI
	MOVQ d+32(FP), AX
	MOVQ AX, 16(SP)
	MOVQ bs+40(FP), R9
	MOVQ nb+48(FP), AX
	MOVQ AX, 24(SP)
	VXORPS Y7, Y7, Y7
q4kvrows_blk:
	LEAQ 4(R8), R10             // scales
	LEAQ 16(R8), SI             // codes
	// the 6-bit scales and minimums, four at a time (llama.cpp's masks)
	MOVL 0(R10), AX             // u0
	MOVL 4(R10), BX             // u1
	MOVL 8(R10), R11            // u2
	MOVL AX, R12
	ANDL $0x3f3f3f3f, R12       // scales 0-3
	MOVL R11, R13
	ANDL $0x0f0f0f0f, R13
	MOVL AX, R14
	SHRL $6, R14
	ANDL $0x03030303, R14
	SHLL $4, R14
	ORL R14, R13                // scales 4-7
	MOVL BX, R14
	ANDL $0x3f3f3f3f, R14       // mins 0-3
	MOVL R11, R15
	SHRL $4, R15
	ANDL $0x0f0f0f0f, R15
	MOVL BX, AX
	SHRL $6, AX
	ANDL $0x03030303, AX
	SHLL $4, AX
	ORL AX, R15                 // mins 4-7
	SHLQ $32, R13
	ORQ R13, R12
	MOVQ R12, X1
	VPMOVZXBW X1, X1            // 8 scales as int16
	VMOVDQU X1, 0(SP)
	SHLQ $32, R15
	ORQ R15, R14
	MOVQ R14, X2
	VPMOVZXBD X2, Y2            // 8 mins as int32
	VMOVDQU (R9), Y3            // bsums 0-7
	VMOVDQU 32(R9), Y4          // bsums 8-15
	VPHADDD Y4, Y3, Y3          // pair sums, lanes out of order
	VPERMQ $0xD8, Y3, Y3        // sums over sub-blocks 0..7
	VPMULLD Y3, Y2, Y9          // min·Σa per sub-block
	VPXOR Y0, Y0, Y0
	VPXOR Y12, Y12, Y12
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X8
	VPBROADCASTD X8, Y8
	VMOVDQU 0(SI), Y1            // sub-blocks 0 (low nibbles) and 1 (high)
	VPSRLW $4, Y1, Y2
	VPAND Y8, Y1, Y1
	VPAND Y8, Y2, Y2
	VPMADDUBSW 0(DI), Y1, Y1
	VPMADDUBSW 32(DI), Y2, Y2
	VPBROADCASTW 0(SP), Y5
	VPBROADCASTW 2(SP), Y6
	VPDPWSSD Y5, Y1, Y0
	VPDPWSSD Y6, Y2, Y12
	VMOVDQU 32(SI), Y1            // sub-blocks 2 (low nibbles) and 3 (high)
	VPSRLW $4, Y1, Y2
	VPAND Y8, Y1, Y1
	VPAND Y8, Y2, Y2
	VPMADDUBSW 64(DI), Y1, Y1
	VPMADDUBSW 96(DI), Y2, Y2
	VPBROADCASTW 4(SP), Y5
	VPBROADCASTW 6(SP), Y6
	VPDPWSSD Y5, Y1, Y0
	VPDPWSSD Y6, Y2, Y12
	VMOVDQU 64(SI), Y1            // sub-blocks 4 (low nibbles) and 5 (high)
	VPSRLW $4, Y1, Y2
	VPAND Y8, Y1, Y1
	VPAND Y8, Y2, Y2
	VPMADDUBSW 128(DI), Y1, Y1
	VPMADDUBSW 160(DI), Y2, Y2
	VPBROADCASTW 8(SP), Y5
	VPBROADCASTW 10(SP), Y6
	VPDPWSSD Y5, Y1, Y0
	VPDPWSSD Y6, Y2, Y12
	VMOVDQU 96(SI), Y1            // sub-blocks 6 (low nibbles) and 7 (high)
	VPSRLW $4, Y1, Y2
	VPAND Y8, Y1, Y1
	VPAND Y8, Y2, Y2
	VPMADDUBSW 192(DI), Y1, Y1
	VPMADDUBSW 224(DI), Y2, Y2
	VPBROADCASTW 12(SP), Y5
	VPBROADCASTW 14(SP), Y6
	VPDPWSSD Y5, Y1, Y0
	VPDPWSSD Y6, Y2, Y12
	VPADDD Y12, Y0, Y0
	ADDQ $128, SI
	ADDQ $256, DI
	MOVL (R8), BX
	VMOVD BX, X1
	VCVTPH2PS X1, X1            // d, dmin
	MOVQ 16(SP), DX
	VBROADCASTSS (DX), X5
	VMULPS X5, X1, X1           // D[i]·d, D[i]·dmin
	VBROADCASTSS X1, Y10
	VMOVSHDUP X1, X1
	VBROADCASTSS X1, Y11
	VCVTDQ2PS Y0, Y0
	VFMADD231PS Y10, Y0, Y7
	VCVTDQ2PS Y9, Y9
	VFNMADD231PS Y11, Y9, Y7
	ADDQ $4, DX
	MOVQ DX, 16(SP)
	ADDQ $144, R8
	ADDQ $64, R9
	DECQ 24(SP)
	JNE q4kvrows_blk
	VEXTRACTF128 $1, Y7, X1
	VADDPS X1, X7, X7
	VHADDPS X7, X7, X7
	VHADDPS X7, X7, X7
	MOVQ 64(SP), AX
	VMOVSS X7, (AX)
	ADDQ $4, AX
	MOVQ AX, 64(SP)
	MOVQ 48(SP), R8
	ADDQ stride+8(FP), R8
	MOVQ R8, 48(SP)
	DECQ 56(SP)
	JNE q4kvrows_row
	VZEROUPPER
q4kvrows_done:
	RET

// func dotQ6KRowsAVX2(w *byte, stride, rows int, q *int8, d *float32, bs *int32, nb int, out *float32)
// out[r] = dotQ6KRowAVX2(w + r·stride, q, d, bs, nb) for r < rows: the same
// arithmetic, without a call per row.
TEXT ·dotQ6KRowsAVX2(SB), NOSPLIT, $88-64
	MOVQ rows+16(FP), AX
	TESTQ AX, AX
	JEQ q6krows_done
	MOVQ AX, 72(SP)
	MOVQ w+0(FP), AX
	MOVQ AX, 64(SP)
	MOVQ out+56(FP), AX
	MOVQ AX, 80(SP)
q6krows_row:
	MOVQ 64(SP), R8
	MOVQ q+24(FP), DI
	MOVQ d+32(FP), AX
	MOVQ AX, 32(SP)
	MOVQ bs+40(FP), R9
	MOVQ nb+48(FP), AX
	MOVQ AX, 40(SP)
	VXORPS Y7, Y7, Y7
q6krows_blk:
	MOVQ R8, SI                 // ql
	LEAQ 128(R8), BX            // qh
	LEAQ 192(R8), DX            // scales
	VPMOVSXBD (DX), Y1          // 32·Σ sc·bs, the offset of the unsigned codes
	VPMOVSXBD 8(DX), Y2
	VPMULLD (R9), Y1, Y1
	VPMULLD 32(R9), Y2, Y2
	VPADDD Y2, Y1, Y1
	VPSLLD $5, Y1, Y15
	VPMOVSXBW (DX), Y1          // the scales as int16
	VMOVDQU Y1, 0(SP)
	MOVQ SP, DX
	VPXOR Y0, Y0, Y0
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X8
	VPBROADCASTD X8, Y8         // 0x0f
	MOVL $0x03030303, AX
	VMOVD AX, X9
	VPBROADCASTD X9, Y9         // 0x03
	MOVQ $2, CX
q6krows_blkloop:
	VMOVDQU (SI), Y1            // ql[0:32]
	VMOVDQU 32(SI), Y2          // ql[32:64]
	VMOVDQU (BX), Y3            // qh[0:32]
	// q1 = ql&15 | (qh&3)<<4       elements 0..31
	VPAND Y8, Y1, Y10
	VPAND Y9, Y3, Y11
	VPSLLW $4, Y11, Y11
	VPOR Y11, Y10, Y10
	// q2 = ql32&15 | (qh>>2&3)<<4  elements 32..63
	VPAND Y8, Y2, Y12
	VPSRLW $2, Y3, Y11
	VPAND Y9, Y11, Y11
	VPSLLW $4, Y11, Y11
	VPOR Y11, Y12, Y12
	// q3 = ql>>4 | (qh>>4&3)<<4    elements 64..95
	VPSRLW $4, Y1, Y13
	VPAND Y8, Y13, Y13
	VPSRLW $4, Y3, Y11
	VPAND Y9, Y11, Y11
	VPSLLW $4, Y11, Y11
	VPOR Y11, Y13, Y13
	// q4 = ql32>>4 | (qh>>6&3)<<4  elements 96..127
	VPSRLW $4, Y2, Y14
	VPAND Y8, Y14, Y14
	VPSRLW $6, Y3, Y11
	VPAND Y9, Y11, Y11
	VPSLLW $4, Y11, Y11
	VPOR Y11, Y14, Y14
	// products with the activations, then the group scales: the low
	// 16 bytes of each vector are one group, the high 16 the next.
	VMOVDQU (DI), Y4
	VPMADDUBSW Y4, Y10, Y10
	VPBROADCASTW (DX), X5
	VPBROADCASTW 2(DX), X6
	VINSERTI128 $1, X6, Y5, Y5
	VPMADDWD Y5, Y10, Y10
	VPADDD Y10, Y0, Y0
	VMOVDQU 32(DI), Y4
	VPMADDUBSW Y4, Y12, Y12
	VPBROADCASTW 4(DX), X5
	VPBROADCASTW 6(DX), X6
	VINSERTI128 $1, X6, Y5, Y5
	VPMADDWD Y5, Y12, Y12
	VPADDD Y12, Y0, Y0
	VMOVDQU 64(DI), Y4
	VPMADDUBSW Y4, Y13, Y13
	VPBROADCASTW 8(DX), X5
	VPBROADCASTW 10(DX), X6
	VINSERTI128 $1, X6, Y5, Y5
	VPMADDWD Y5, Y13, Y13
	VPADDD Y13, Y0, Y0
	VMOVDQU 96(DI), Y4
	VPMADDUBSW Y4, Y14, Y14
	VPBROADCASTW 12(DX), X5
	VPBROADCASTW 14(DX), X6
	VINSERTI128 $1, X6, Y5, Y5
	VPMADDWD Y5, Y14, Y14
	VPADDD Y14, Y0, Y0
	ADDQ $64, SI
	ADDQ $32, BX
	ADDQ $128, DI
	ADDQ $16, DX
	DECQ CX
	JNE q6krows_blkloop
	VPSUBD Y15, Y0, Y0
	MOVWLZX 208(R8), BX
	VMOVD BX, X1
	VCVTPH2PS X1, X1            // d
	MOVQ 32(SP), DX
	VMULSS (DX), X1, X1         // D[i]·d
	VBROADCASTSS X1, Y2
	VCVTDQ2PS Y0, Y0
	VFMADD231PS Y2, Y0, Y7
	ADDQ $4, DX
	MOVQ DX, 32(SP)
	ADDQ $210, R8
	ADDQ $64, R9
	DECQ 40(SP)
	JNE q6krows_blk
	VEXTRACTF128 $1, Y7, X1
	VADDPS X1, X7, X7
	VHADDPS X7, X7, X7
	VHADDPS X7, X7, X7
	MOVQ 80(SP), AX
	VMOVSS X7, (AX)
	ADDQ $4, AX
	MOVQ AX, 80(SP)
	MOVQ 64(SP), R8
	ADDQ stride+8(FP), R8
	MOVQ R8, 64(SP)
	DECQ 72(SP)
	JNE q6krows_row
	VZEROUPPER
q6krows_done:
	RET

// func dotQ4_0RowsAVX2(w *byte, stride, rows int, q *int8, d *float32, nb int, out *float32)
// out[r] = the product of the Q4_0 row at w + r·stride (nb blocks) with
// the Q8_0 activation (q, d), for r < rows. Two blocks per iteration
// into two accumulators (even and odd blocks), so consecutive blocks'
// multiply-adds do not wait on each other; the activation is read from
// L1 for every row.
TEXT ·dotQ4_0RowsAVX2(SB), NOSPLIT, $0-56
	MOVQ w+0(FP), R8
	MOVQ stride+8(FP), R10
	MOVQ rows+16(FP), R11
	MOVQ out+48(FP), R12
	TESTQ R11, R11
	JEQ q40rows_done
	VPCMPEQW Y7, Y7, Y7
	VPSRLW $15, Y7, Y7          // int16 ones
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X8
	VPBROADCASTD X8, Y8         // 0x0f bytes
	MOVL $0x08080808, AX
	VMOVD AX, X9
	VPBROADCASTD X9, Y9         // 8s
q40rows_row:
	MOVQ R8, SI
	MOVQ q+24(FP), DI
	MOVQ d+32(FP), DX
	MOVQ nb+40(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y10, Y10, Y10
	CMPQ CX, $2
	JLT q40rows_tail
q40rows_pair:
	VMOVDQU 2(SI), X1           // block 2i: 16 bytes, elements j (low nibble), j+16 (high)
	VMOVDQU 20(SI), X11         // block 2i+1
	VPSRLW $4, X1, X2
	VPSRLW $4, X11, X12
	VINSERTI128 $1, X2, Y1, Y1
	VINSERTI128 $1, X12, Y11, Y11
	VPAND Y8, Y1, Y1
	VPAND Y8, Y11, Y11
	VPSUBB Y9, Y1, Y1           // q - 8 in [-8, 7]
	VPSUBB Y9, Y11, Y11
	VMOVDQU (DI), Y2
	VMOVDQU 32(DI), Y12
	VPSIGNB Y1, Y1, Y3
	VPSIGNB Y11, Y11, Y13
	VPSIGNB Y1, Y2, Y4
	VPSIGNB Y11, Y12, Y14
	VPMADDUBSW Y4, Y3, Y5
	VPMADDUBSW Y14, Y13, Y15
	VPMADDWD Y7, Y5, Y5
	VPMADDWD Y7, Y15, Y15
	VCVTDQ2PS Y5, Y5
	VCVTDQ2PS Y15, Y15
	MOVWLZX (SI), AX
	MOVWLZX 18(SI), BX
	VMOVD AX, X6
	VMOVD BX, X3
	VCVTPH2PS X6, X6
	VCVTPH2PS X3, X3
	VMULSS (DX), X6, X6
	VMULSS 4(DX), X3, X3
	VBROADCASTSS X6, Y6
	VBROADCASTSS X3, Y3
	VFMADD231PS Y6, Y5, Y0
	VFMADD231PS Y3, Y15, Y10
	ADDQ $36, SI
	ADDQ $64, DI
	ADDQ $8, DX
	SUBQ $2, CX
	CMPQ CX, $2
	JGE q40rows_pair
q40rows_tail:
	TESTQ CX, CX
	JEQ q40rows_sum
	VMOVDQU 2(SI), X1
	VPSRLW $4, X1, X2
	VINSERTI128 $1, X2, Y1, Y1
	VPAND Y8, Y1, Y1
	VPSUBB Y9, Y1, Y1
	VMOVDQU (DI), Y2
	VPSIGNB Y1, Y1, Y3
	VPSIGNB Y1, Y2, Y4
	VPMADDUBSW Y4, Y3, Y5
	VPMADDWD Y7, Y5, Y5
	VCVTDQ2PS Y5, Y5
	MOVWLZX (SI), AX
	VMOVD AX, X6
	VCVTPH2PS X6, X6
	VMULSS (DX), X6, X6
	VBROADCASTSS X6, Y6
	VFMADD231PS Y6, Y5, Y0
q40rows_sum:
	VADDPS Y10, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS X0, (R12)
	ADDQ $4, R12
	ADDQ R10, R8
	DECQ R11
	JNE q40rows_row
	VZEROUPPER
q40rows_done:
	RET
