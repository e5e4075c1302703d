package ops

// Frozen is a (out, in) linear weight the graph reads but never trains.
type Frozen interface {
	Shape() (out, in int)
	MulT(y, x []float32, n int)     // y (n, out) = x (n, in) · Wᵀ   (overwrites y)
	MulAdd(dx, dy []float32, n int) // dx (n, in) += dy (n, out) · W
	Bytes() int64                   // memory held
}
