package ops

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
)

// naiveAttention is the textbook definition: for each batch row, head and query, softmax over the
// visible keys of q·k/sqrt(hd), then the weighted sum of v. Visibility: j ≤ i, i−j < window (if set),
// same non-zero segment, or j = i.
func naiveAttention(s AttentionSpec, q, k, v []float64, seg []int32) []float64 {
	H, KV, hd, T := s.Heads, s.KVHeads, s.HeadDim, s.SeqLen
	out := make([]float64, s.Batch*T*H*hd)
	for b := 0; b < s.Batch; b++ {
		for h := 0; h < H; h++ {
			g := h / (H / KV)
			for i := 0; i < T; i++ {
				qi := q[((b*T+i)*H+h)*hd:][:hd]
				var js []int
				var sc []float64
				m := math.Inf(-1)
				for j := 0; j <= i; j++ {
					si, sj := seg[b*T+i], seg[b*T+j]
					if j != i && (si == 0 || si != sj || (s.Window > 0 && i-j >= s.Window)) {
						continue
					}
					kj := k[((b*T+j)*KV+g)*hd:][:hd]
					var d float64
					for x := range qi {
						d += qi[x] * kj[x]
					}
					d /= math.Sqrt(float64(hd))
					js = append(js, j)
					sc = append(sc, d)
					m = math.Max(m, d)
				}
				var z float64
				for x := range sc {
					sc[x] = math.Exp(sc[x] - m)
					z += sc[x]
				}
				o := out[((b*T+i)*H+h)*hd:][:hd]
				for x, j := range js {
					vj := v[((b*T+j)*KV+g)*hd:][:hd]
					for y := range o {
						o[y] += sc[x] / z * vj[y]
					}
				}
			}
		}
	}
	return out
}

func TestAttention(t *testing.T) {
	ones := func(n int) []int32 {
		s := make([]int32, n)
		for i := range s {
			s[i] = 1
		}
		return s
	}
	packed := func(b, t int) []int32 {
		// Row 0: three examples and padding; row 1: an id that comes back after another one, a
		// padding token in the middle, and padding at the end.
		s := make([]int32, b*t)
		for i := 0; i < t; i++ {
			switch {
			case i < t/3:
				s[i] = 1
			case i < 2*t/3:
				s[i] = 2
			case i < t-3:
				s[i] = 3
			}
		}
		for i := 0; i < t && b > 1; i++ {
			switch {
			case i < t/4:
				s[t+i] = 7
			case i == t/4:
				s[t+i] = 0
			case i < t/2:
				s[t+i] = 5
			case i < t-2:
				s[t+i] = 7
			}
		}
		return s
	}
	for _, tc := range []struct {
		name string
		spec AttentionSpec
		seg  []int32
	}{
		{"mha single row", AttentionSpec{Batch: 1, SeqLen: 6, Heads: 2, KVHeads: 2, HeadDim: 8}, ones(6)},
		{"T=1", AttentionSpec{Batch: 1, SeqLen: 1, Heads: 2, KVHeads: 1, HeadDim: 8}, ones(1)},
		{"gqa batch", AttentionSpec{Batch: 2, SeqLen: 5, Heads: 4, KVHeads: 2, HeadDim: 8}, ones(10)},
		{"packed across blocks", AttentionSpec{Batch: 2, SeqLen: 70, Heads: 2, KVHeads: 1, HeadDim: 8}, packed(2, 70)},
		{"window packed", AttentionSpec{Batch: 2, SeqLen: 67, Heads: 3, KVHeads: 1, HeadDim: 4, Window: 5}, packed(2, 67)},
		{"window longer than block", AttentionSpec{Batch: 1, SeqLen: 150, Heads: 2, KVHeads: 2, HeadDim: 2, Window: 70}, ones(150)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.spec
			rng := rand.New(rand.NewPCG(7, uint64(s.SeqLen)))
			n := s.Batch * s.SeqLen
			ins := []input{floatIn(rng, n, s.Heads*s.HeadDim), floatIn(rng, n, s.KVHeads*s.HeadDim), floatIn(rng, n, s.KVHeads*s.HeadDim), intIn(tc.seg)}
			for i := range ins[0].vals {
				ins[0].vals[i] *= 2 // sharper softmax
			}
			want := naiveAttention(s, ins[0].vals, ins[1].vals, ins[2].vals, tc.seg)
			// The backward pass reads the probabilities the forward pass kept, or, over the limit
			// (long sequences), recomputes them from the log-sum-exp.
			for _, limit := range []int{attnKeepLimit, 0} {
				build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
					out, err := Attention(s, in[0], in[1], in[2], in[3])
					if err == nil {
						out.Op().(*attentionOp).keepLimit = limit
					}
					return out, err
				}
				h := newHarness(t, rng, ins, build)
				h.check(rng, 25)
				got, _, err := h.run()
				if err != nil {
					t.Fatal(err)
				}
				if kept := h.out.Op().(*attentionOp).kept; kept != (limit > 0) {
					t.Fatalf("limit %d: kept = %v", limit, kept)
				}
				near(t, "float64 attention", got, want, 1e-12)
				near(t, "float32 attention", runF32(t, ins, build), want, 1e-5)
			}
		})
	}
}

// A key outside the window, in another segment or in the future has exactly no influence: its
// gradient is zero and changing it leaves the output unchanged.
func TestAttentionMaskedKeysHaveNoInfluence(t *testing.T) {
	s := AttentionSpec{Batch: 1, SeqLen: 9, Heads: 2, KVHeads: 1, HeadDim: 4, Window: 3}
	seg := []int32{1, 1, 1, 1, 1, 1, 2, 2, 0}
	rng := rand.New(rand.NewPCG(8, 8))
	ins := []input{floatIn(rng, 9, 8), floatIn(rng, 9, 4), floatIn(rng, 9, 4), intIn(seg)}
	build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return Attention(s, in[0], in[1], in[2], in[3]) }
	// Query 5 (segment 1) sees keys 3, 4, 5 only (window 3): keys 0-2 are outside the window and
	// 6-8 are in the future, another segment, or padding.
	base := naiveAttention(s, ins[0].vals, ins[1].vals, ins[2].vals, seg)
	for _, key := range []int{0, 1, 2, 6, 7, 8} {
		k2 := append([]float64(nil), ins[1].vals...)
		v2 := append([]float64(nil), ins[2].vals...)
		for x := 0; x < 4; x++ {
			k2[key*4+x] += 10
			v2[key*4+x] -= 10
		}
		ins2 := []input{ins[0], {shape: ins[1].shape, vals: k2}, {shape: ins[2].shape, vals: v2}, ins[3]}
		h := newHarness(t, rng, ins2, build)
		got, _, err := h.run()
		if err != nil {
			t.Fatal(err)
		}
		for x := 0; x < 8; x++ {
			if got[5*8+x] != base[5*8+x] && math.Abs(got[5*8+x]-base[5*8+x]) > 1e-14 {
				t.Fatalf("key %d changed query 5's output: %g vs %g", key, got[5*8+x], base[5*8+x])
			}
		}
	}
	// The padding query (index 8) attends to itself only: its output is its own v.
	h := newHarness(t, rng, ins, build)
	got, _, err := h.run()
	if err != nil {
		t.Fatal(err)
	}
	for hh := 0; hh < 2; hh++ {
		for x := 0; x < 4; x++ {
			if math.Abs(got[8*8+hh*4+x]-ins[2].vals[8*4+x]) > 1e-15 {
				t.Fatalf("padding output %v, want its own v %v", got[64:72], ins[2].vals[32:36])
			}
		}
	}
}

func TestAttentionRejectsBadSpec(t *testing.T) {
	g := G.NewGraph()
	x := G.NewMatrix(g, G.Float32, G.WithShape(4, 8), G.WithName("x"), G.WithInit(G.Zeroes()))
	seg := G.NewVector(g, G.Int32, G.WithShape(4), G.WithName("s"), G.WithInit(G.Zeroes()))
	for _, tc := range []struct {
		spec AttentionSpec
		want string
	}{
		{AttentionSpec{Batch: 1, SeqLen: 4, Heads: 3, KVHeads: 2, HeadDim: 8}, "heads 3 is not a multiple of kv_heads 2"},
		{AttentionSpec{Batch: 1, SeqLen: 4, Heads: 1, KVHeads: 1, HeadDim: 8, Window: -1}, "window -1 is negative"},
		{AttentionSpec{Batch: 2, SeqLen: 4, Heads: 1, KVHeads: 1, HeadDim: 8}, "do not match batch 2 × seq_len 4"},
	} {
		_, err := Attention(tc.spec, x, x, x, seg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%+v: error %v, want %q", tc.spec, err, tc.want)
		}
	}
}
