//go:build !amd64

package vecmath

// HasExp is false off amd64: there is no vector body.
const HasExp = false

// Exp does nothing off amd64 (done is 0): the caller's scalar loop does all of it.
func Exp(dst, src []float32, m float32) (sum float64, done int) { return 0, 0 }

// SwiGLU does nothing off amd64 (done is 0): the caller's scalar loop does all of it.
func SwiGLU(y, g, u, sig []float32) (done int) { return 0 }
