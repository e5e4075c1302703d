#include "textflag.h"

// Constants of expSumAVX2, as float32 bit patterns (Cephes expf; see expScalar32 in package ops).
DATA expc<>+0(SB)/4, $0xc2aeac4f  // lo    = -87.33654
DATA expc<>+4(SB)/4, $0x42b0999a  // bail  = 88.3: above it 2^n overflows the float32 exponent
DATA expc<>+8(SB)/4, $0x3fb8aa3b  // log2e = 1.44269504
DATA expc<>+12(SB)/4, $0x3f318000 // c1    = 0.693359375
DATA expc<>+16(SB)/4, $0xb95e8083 // c2    = -2.12194440e-4
DATA expc<>+20(SB)/4, $0x39506967 // p0    = 1.9875691500e-4
DATA expc<>+24(SB)/4, $0x3ab743ce // p1    = 1.3981999507e-3
DATA expc<>+28(SB)/4, $0x3c088908 // p2    = 8.3334519073e-3
DATA expc<>+32(SB)/4, $0x3d2aa9c1 // p3    = 4.1665795894e-2
DATA expc<>+36(SB)/4, $0x3e2aaaaa // p4    = 1.6666665459e-1
DATA expc<>+40(SB)/4, $0x3f000000 // p5    = 5.0000001201e-1
DATA expc<>+44(SB)/4, $0x3f800000 // 1.0
DATA expc<>+48(SB)/4, $0x0000007f // exponent bias 127 (int32)
GLOBL expc<>(SB), RODATA|NOPTR, $52

// EXPPS sets Y1 = exp(Y0) for x = Y0 no larger than 88.3 (the caller checks), lanes below lo giving
// exactly 0 and NaN staying NaN, with Y10..Y14 holding c2, c1, log2e, bail and lo. It uses Y2..Y6 and
// leaves Y0 reduced. Cephes' range reduction x = fn·ln2 + r (ln2 split in c1 + c2 for accuracy) and
// degree-5 polynomial for exp(r), then y·2^fn built in the exponent bits.
#define EXPPS \
	VCMPPS $0x11, Y14, Y0, Y4; \
	VMAXPS Y0, Y14, Y0; \
	VMULPS Y12, Y0, Y2; \
	VROUNDPS $0, Y2, Y2; \
	VCVTPS2DQ Y2, Y3; \
	VFNMADD231PS Y11, Y2, Y0; \
	VFNMADD231PS Y10, Y2, Y0; \
	VMULPS Y0, Y0, Y6; \
	VBROADCASTSS expc<>+20(SB), Y5; \
	VBROADCASTSS expc<>+24(SB), Y1; \
	VFMADD213PS Y1, Y0, Y5; \
	VBROADCASTSS expc<>+28(SB), Y1; \
	VFMADD213PS Y1, Y0, Y5; \
	VBROADCASTSS expc<>+32(SB), Y1; \
	VFMADD213PS Y1, Y0, Y5; \
	VBROADCASTSS expc<>+36(SB), Y1; \
	VFMADD213PS Y1, Y0, Y5; \
	VBROADCASTSS expc<>+40(SB), Y1; \
	VFMADD213PS Y1, Y0, Y5; \
	VFMADD213PS Y0, Y6, Y5; \
	VBROADCASTSS expc<>+44(SB), Y1; \
	VADDPS Y1, Y5, Y5; \
	VPBROADCASTD expc<>+48(SB), Y1; \
	VPADDD Y1, Y3, Y3; \
	VPSLLD $23, Y3, Y3; \
	VMULPS Y3, Y5, Y1; \
	VANDNPS Y1, Y4, Y1

// func expSumAVX2(dst, src *float32, n int, m float32) (sum float64, done int)
//
// Registers: Y0 x, Y1 scratch/result, Y2 fn, Y3 n as int32, Y4 the x<lo mask, Y5 y, Y6 z;
// Y7..Y15 broadcast constants; Y8/Y9 the float64 sums (kept as X8.. halves in the tail).
TEXT ·expSumAVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	XORQ AX, AX                         // AX: elements done
	VBROADCASTSS m+24(FP), Y15          // Y15: m
	VBROADCASTSS expc<>+0(SB), Y14      // lo
	VBROADCASTSS expc<>+4(SB), Y13      // bail
	VBROADCASTSS expc<>+8(SB), Y12      // log2e
	VBROADCASTSS expc<>+12(SB), Y11     // c1
	VBROADCASTSS expc<>+16(SB), Y10     // c2
	VXORPD Y8, Y8, Y8
	VXORPD Y9, Y9, Y9

loop:
	CMPQ AX, CX
	JGE  done
	VMOVUPS (SI)(AX*4), Y0
	VSUBPS  Y15, Y0, Y0                 // x = src - m
	VCMPPS  $0x1e, Y13, Y0, Y1          // x > bail (ordered, quiet)
	VMOVMSKPS Y1, DX
	TESTL   DX, DX
	JNZ     done                        // the scalar code takes it from here
	EXPPS

	TESTQ   DI, DI
	JZ      nostore
	VMOVUPS Y1, (DI)(AX*4)

nostore:
	VCVTPS2PD X1, Y2                    // lanes 0..3 as float64
	VEXTRACTF128 $1, Y1, X1
	VCVTPS2PD X1, Y3                    // lanes 4..7
	VADDPD  Y2, Y8, Y8
	VADDPD  Y3, Y9, Y9
	ADDQ    $8, AX
	JMP     loop

done:
	VADDPD  Y9, Y8, Y8
	VEXTRACTF128 $1, Y8, X9
	VADDPD  X9, X8, X8
	VHADDPD X8, X8, X8
	VZEROUPPER
	MOVSD   X8, sum+32(FP)
	MOVQ    AX, done+40(FP)
	RET

// func swigluAVX2(y, gate, u, sig *float32, n int)
//
// y = g·σ(g)·u and, when sig is not nil, sig = σ(g), with σ(g) = 1/(1+exp(-g)) and -g clamped to
// 88.3 so that exp stays finite (σ is then below 1e-38 where the scalar code gives 0). Registers as in
// EXPPS, plus Y7 g, Y8 one, Y9 zero.
TEXT ·swigluAVX2(SB), NOSPLIT, $0-40
	MOVQ y+0(FP), DI
	MOVQ gate+8(FP), SI
	MOVQ u+16(FP), DX
	MOVQ sig+24(FP), R8
	MOVQ n+32(FP), CX
	XORQ AX, AX
	VBROADCASTSS expc<>+0(SB), Y14
	VBROADCASTSS expc<>+4(SB), Y13
	VBROADCASTSS expc<>+8(SB), Y12
	VBROADCASTSS expc<>+12(SB), Y11
	VBROADCASTSS expc<>+16(SB), Y10
	VBROADCASTSS expc<>+44(SB), Y8      // 1
	VXORPS  Y9, Y9, Y9                  // 0

sloop:
	CMPQ AX, CX
	JGE  sdone
	VMOVUPS (SI)(AX*4), Y7
	VSUBPS  Y7, Y9, Y0                  // x = -g
	VMINPS  Y0, Y13, Y0                 // x = min(x, 88.3); a NaN x stays NaN
	EXPPS
	VADDPS  Y8, Y1, Y1                  // 1 + exp(-g)
	VDIVPS  Y1, Y8, Y1                  // s = 1 / (1 + exp(-g))
	TESTQ   R8, R8
	JZ      snosig
	VMOVUPS Y1, (R8)(AX*4)

snosig:
	VMULPS  Y7, Y1, Y1                  // g·s
	VMOVUPS (DX)(AX*4), Y2
	VMULPS  Y2, Y1, Y1                  // g·s·u
	VMOVUPS Y1, (DI)(AX*4)
	ADDQ    $8, AX
	JMP     sloop

sdone:
	VZEROUPPER
	RET
