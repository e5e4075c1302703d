package ops

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestEmbedding(t *testing.T) {
	for _, tc := range []struct {
		v, d int
		ids  []int32
	}{
		{5, 3, []int32{0, 4, 4, 2, 0, 1, 4}},
		{1, 1, []int32{0}},
		{130, 9, []int32{129, 7, 7, 7, 64, 0, 3, 99, 12, 64, 128}},
	} {
		rng := rand.New(rand.NewPCG(3, uint64(tc.v)))
		ins := []input{floatIn(rng, tc.v, tc.d), intIn(tc.ids)}
		build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return Embedding(in[0], in[1]) }
		h := newHarness(t, rng, ins, build)
		h.check(rng, 200)
		want := make([]float64, 0, len(tc.ids)*tc.d)
		for _, id := range tc.ids {
			want = append(want, ins[0].vals[int(id)*tc.d:int(id+1)*tc.d]...)
		}
		near(t, "float32 embedding", runF32(t, ins, build), want, 1e-7) // float32 rounding of the values only
	}
}

func TestEmbeddingRejectsOutOfRangeID(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for _, tc := range []struct {
		id   int32
		want string
	}{
		{5, "ops.Embedding: id 5 at row 1 is outside 0..4"},
		{-1, "ops.Embedding: id -1 at row 1 is outside 0..4"},
	} {
		g := G.NewGraph()
		w := G.NewMatrix(g, G.Float32, G.WithShape(5, 2), G.WithName("w"), G.WithInit(G.Zeroes()))
		ids := G.NewVector(g, G.Int32, G.WithShape(2), G.WithName("ids"), G.WithValue(tensor.New(tensor.WithBacking([]int32{0, tc.id}))))
		_ = rng
		if _, err := Embedding(w, ids); err != nil {
			t.Fatal(err)
		}
		m := G.NewTapeMachine(g)
		err := m.RunAll()
		if err == nil || Cause(err).Error() != tc.want {
			t.Fatalf("id %d: error %v, want %q", tc.id, err, tc.want)
		}
	}
}

func TestRMSNorm(t *testing.T) {
	for _, tc := range []struct{ n, d int }{{1, 1}, {1, 8}, {7, 5}, {33, 64}, {301, 64}} { // the last splits over workers
		rng := rand.New(rand.NewPCG(4, uint64(tc.n*100+tc.d)))
		ins := []input{floatIn(rng, tc.n, tc.d), floatIn(rng, tc.d)}
		const eps = 1e-5
		build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return RMSNorm(in[0], in[1], eps) }
		h := newHarness(t, rng, ins, build)
		h.check(rng, 40)
		// Reference: y = x / sqrt(mean(x²)+eps) · w, row by row.
		want := make([]float64, tc.n*tc.d)
		for i := 0; i < tc.n; i++ {
			var ss float64
			for j := 0; j < tc.d; j++ {
				ss += ins[0].vals[i*tc.d+j] * ins[0].vals[i*tc.d+j]
			}
			r := 1 / math.Sqrt(ss/float64(tc.d)+eps)
			for j := 0; j < tc.d; j++ {
				want[i*tc.d+j] = ins[0].vals[i*tc.d+j] * r * ins[1].vals[j]
			}
		}
		got, _, err := h.run()
		if err != nil {
			t.Fatal(err)
		}
		near(t, "float64 rmsnorm", got, want, 1e-12)
		near(t, "float32 rmsnorm", runF32(t, ins, build), want, 1e-5)
	}
}

func TestSwiGLU(t *testing.T) {
	for _, tc := range []struct{ n, f int }{{1, 1}, {3, 7}, {40, 300}, {41, 500}} { // the last splits over workers
		rng := rand.New(rand.NewPCG(5, uint64(tc.n)))
		ins := []input{floatIn(rng, tc.n, tc.f), floatIn(rng, tc.n, tc.f)}
		for i := range ins[0].vals {
			ins[0].vals[i] *= 4 // reach both tails of the sigmoid
		}
		build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return SwiGLU(in[0], in[1]) }
		h := newHarness(t, rng, ins, build)
		h.check(rng, 60)
		want := make([]float64, tc.n*tc.f)
		for i := range want {
			g := ins[0].vals[i]
			want[i] = g / (1 + math.Exp(-g)) * ins[1].vals[i]
		}
		near(t, "float32 swiglu", runF32(t, ins, build), want, 1e-5)
	}
}

func TestRoPE(t *testing.T) {
	for _, tc := range []struct {
		hd, heads int
		pos       []int32
	}{
		{8, 2, []int32{0, 1, 2, 3, 0, 1, 7}},
		{2, 1, []int32{5}},
		{16, 3, []int32{0, 300, 17, 4095, 2}},
		{8, 2, seqPositions(300)}, // splits over workers
	} {
		rng := rand.New(rand.NewPCG(6, uint64(tc.hd)))
		n := len(tc.pos)
		ins := []input{floatIn(rng, n, tc.heads*tc.hd), intIn(tc.pos)}
		r, err := NewRoPE(10000, tc.hd)
		if err != nil {
			t.Fatal(err)
		}
		build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return r.Apply(in[0], in[1]) }
		h := newHarness(t, rng, ins, build)
		h.check(rng, 60)
		// Reference: HF's q·cos + rotate_half(q)·sin with rotate_half(q) = (−q2, q1) and
		// cos/sin of pos·10000^(−2i/hd) repeated over both halves.
		half := tc.hd / 2
		want := make([]float64, n*tc.heads*tc.hd)
		for i, p := range tc.pos {
			for hh := 0; hh < tc.heads; hh++ {
				q := ins[0].vals[(i*tc.heads+hh)*tc.hd : (i*tc.heads+hh+1)*tc.hd]
				o := want[(i*tc.heads+hh)*tc.hd : (i*tc.heads+hh+1)*tc.hd]
				for j := 0; j < tc.hd; j++ {
					ang := float64(p) / math.Pow(10000, float64(2*(j%half))/float64(tc.hd))
					var rot float64
					if j >= half {
						rot = q[j-half]
					} else {
						rot = -q[j+half]
					}
					o[j] = q[j]*math.Cos(ang) + rot*math.Sin(ang)
				}
			}
		}
		near(t, "float32 rope", runF32(t, ins, build), want, 1e-5)
		got, _, err := h.run()
		if err != nil {
			t.Fatal(err)
		}
		near(t, "float64 rope", got, want, 1e-12)
	}
	if _, err := NewRoPE(10000, 7); err == nil || !strings.Contains(err.Error(), "head_dim 7 must be positive and even") {
		t.Fatalf("odd head_dim: %v", err)
	}
}

func seqPositions(n int) []int32 {
	p := make([]int32, n)
	for i := range p {
		p[i] = int32(i % 97)
	}
	return p
}
