package infer

import (
	"fmt"
	"math"
	"testing"

	"github.com/alignkit/alignkit/model"
)

// naiveForward is an independent float64 transcription of transformers' modeling_llama / mistral /
// mixtral / qwen2 / qwen3 / qwen3_moe forward, written for clarity, not speed: K/V are repeated per
// query head (repeat_kv), the mask is built explicitly, the MoE block runs every expert on every token
// and zeroes the weights of the experts outside the top-k before (optionally) renormalising, and
// Llama 3's rope_scaling is _compute_llama3_parameters transcribed. Tensor names are spelled out here,
// not taken from model's table. It returns the logits (T, V).
func naiveForward(w *model.Weights, tokens []int32) [][]float64 {
	c := w.Config
	D, H, KV, hd := c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim
	T := len(tokens)
	get := func(name string) []float32 { return w.Tensors[name].Data }
	lin := func(x []float64, wt []float32, out int) []float64 { // x (in) · wᵀ, w (out, in)
		in := len(x)
		y := make([]float64, out)
		for o := range y {
			for i := 0; i < in; i++ {
				y[o] += float64(wt[o*in+i]) * x[i]
			}
		}
		return y
	}
	norm := func(x []float64, g []float32) []float64 {
		var ss float64
		for _, v := range x {
			ss += v * v
		}
		r := 1 / math.Sqrt(ss/float64(len(x))+c.RMSNormEps)
		y := make([]float64, len(x))
		for i := range x {
			y[i] = float64(g[i]) * x[i] * r
		}
		return y
	}
	silu := func(v float64) float64 { return v / (1 + math.Exp(-v)) }
	swiglu := func(x []float64, g, u, d []float32) []float64 {
		F := len(g) / D
		a, b := lin(x, g, F), lin(x, u, F)
		for i := range a {
			a[i] = silu(a[i]) * b[i]
		}
		return lin(a, d, D)
	}
	invFreq := make([]float64, hd/2)
	for i := range invFreq {
		invFreq[i] = 1 / math.Pow(c.RopeTheta, float64(2*i)/float64(hd))
		if rs := c.RopeScaling; rs != nil { // _compute_llama3_parameters
			old := float64(rs.OriginalMaxPositionEmbeddings)
			lowWavelen, highWavelen := old/rs.LowFreqFactor, old/rs.HighFreqFactor
			wavelen := 2 * math.Pi / invFreq[i]
			llama := invFreq[i]
			if wavelen > lowWavelen {
				llama = invFreq[i] / rs.Factor
			}
			smooth := (old/wavelen - rs.LowFreqFactor) / (rs.HighFreqFactor - rs.LowFreqFactor)
			smoothed := (1-smooth)*llama/rs.Factor + smooth*llama
			if !(wavelen < highWavelen) && !(wavelen > lowWavelen) {
				llama = smoothed
			}
			invFreq[i] = llama
		}
	}
	has := func(name string) bool { _, ok := w.Tensors[name]; return ok }
	addBias := func(y []float64, b []float32) {
		for i := range y {
			y[i] += float64(b[i])
		}
	}
	rope := func(v []float64, pos int) {
		half := hd / 2
		for h0 := 0; h0 < len(v); h0 += hd {
			rot := make([]float64, hd) // rotate_half: cat(-x2, x1)
			for i := 0; i < half; i++ {
				rot[i], rot[i+half] = -v[h0+i+half], v[h0+i]
			}
			for i := 0; i < hd; i++ {
				theta := float64(pos) * invFreq[i%half]
				v[h0+i] = v[h0+i]*math.Cos(theta) + rot[i]*math.Sin(theta)
			}
		}
	}
	x := make([][]float64, T)
	for t, id := range tokens {
		x[t] = make([]float64, D)
		for d := range x[t] {
			x[t][d] = float64(get(model.EmbedKey)[int(id)*D+d])
		}
	}
	for l := 0; l < c.NumHiddenLayers; l++ {
		lk := func(s string) []float32 { return get(model.LayerKey(l, s)) }
		q, k, v := make([][]float64, T), make([][]float64, T), make([][]float64, T)
		for t := range x {
			h := norm(x[t], lk("input_layernorm.weight"))
			q[t], k[t], v[t] = lin(h, lk("self_attn.q_proj.weight"), H*hd), lin(h, lk("self_attn.k_proj.weight"), KV*hd), lin(h, lk("self_attn.v_proj.weight"), KV*hd)
			if has(model.LayerKey(l, "self_attn.q_proj.bias")) {
				addBias(q[t], lk("self_attn.q_proj.bias"))
				addBias(k[t], lk("self_attn.k_proj.bias"))
				addBias(v[t], lk("self_attn.v_proj.bias"))
			}
			if has(model.LayerKey(l, "self_attn.q_norm.weight")) { // Qwen3: per head, before RoPE
				for h0 := 0; h0 < H*hd; h0 += hd {
					copy(q[t][h0:h0+hd], norm(q[t][h0:h0+hd], lk("self_attn.q_norm.weight")))
				}
				for h0 := 0; h0 < KV*hd; h0 += hd {
					copy(k[t][h0:h0+hd], norm(k[t][h0:h0+hd], lk("self_attn.k_norm.weight")))
				}
			}
			rope(q[t], t)
			rope(k[t], t)
		}
		for t := range x {
			att := make([]float64, H*hd)
			for h := 0; h < H; h++ {
				g := h / (H / KV)
				scores := make([]float64, T)
				m := math.Inf(-1)
				for s := 0; s < T; s++ {
					allowed := s <= t && (c.SlidingWindow == 0 || t-s < c.SlidingWindow)
					if !allowed {
						scores[s] = math.Inf(-1)
						continue
					}
					for i := 0; i < hd; i++ {
						scores[s] += q[t][h*hd+i] * k[s][g*hd+i]
					}
					scores[s] /= math.Sqrt(float64(hd))
					m = math.Max(m, scores[s])
				}
				var z float64
				for s := range scores {
					scores[s] = math.Exp(scores[s] - m)
					z += scores[s]
				}
				for s := range scores {
					for i := 0; i < hd; i++ {
						att[h*hd+i] += scores[s] / z * v[s][g*hd+i]
					}
				}
			}
			o := lin(att, lk("self_attn.o_proj.weight"), D)
			if has(model.LayerKey(l, "self_attn.o_proj.bias")) {
				addBias(o, lk("self_attn.o_proj.bias"))
			}
			for d := range o {
				x[t][d] += o[d]
			}
		}
		for t := range x {
			h := norm(x[t], lk("post_attention_layernorm.weight"))
			var out []float64
			router, expert := "block_sparse_moe.gate.weight", func(e int, w string) []float32 {
				return get(model.LayerKey(l, fmt.Sprintf("block_sparse_moe.experts.%d.%s.weight", e, map[string]string{"gate": "w1", "up": "w3", "down": "w2"}[w])))
			}
			renorm := true
			if c.ModelType == "qwen3_moe" {
				router, renorm = "mlp.gate.weight", c.NormTopKProb
				expert = func(e int, w string) []float32 {
					return get(model.LayerKey(l, fmt.Sprintf("mlp.experts.%d.%s_proj.weight", e, w)))
				}
			}
			if has(model.LayerKey(l, router)) {
				E := c.NumLocalExperts
				r := lin(h, lk(router), E)
				p := softmax64(r)
				weights := make([]float64, E) // zero outside the top-k
				for j := 0; j < c.NumExpertsPerTok; j++ {
					best := -1
					for e := range p {
						if weights[e] == 0 && (best < 0 || p[e] > p[best]) {
							best = e
						}
					}
					weights[best] = p[best]
				}
				sum := 1.0
				if renorm {
					sum = 0
					for _, wv := range weights {
						sum += wv
					}
				}
				out = make([]float64, D)
				for e := 0; e < E; e++ {
					y := swiglu(h, expert(e, "gate"), expert(e, "up"), expert(e, "down"))
					for d := range out {
						out[d] += weights[e] / sum * y[d]
					}
				}
			} else {
				out = swiglu(h, lk("mlp.gate_proj.weight"), lk("mlp.up_proj.weight"), lk("mlp.down_proj.weight"))
			}
			for d := range out {
				x[t][d] += out[d]
			}
		}
	}
	logits := make([][]float64, T)
	for t := range x {
		logits[t] = lin(norm(x[t], get(model.FinalNormKey)), w.OutputHead().Data, c.VocabSize)
	}
	return logits
}

func softmax64(v []float64) []float64 {
	m := math.Inf(-1)
	for _, x := range v {
		m = math.Max(m, x)
	}
	out := make([]float64, len(v))
	var z float64
	for i, x := range v {
		out[i] = math.Exp(x - m)
		z += out[i]
	}
	for i := range out {
		out[i] /= z
	}
	return out
}

// TestForwardMatchesNaiveReference checks each family (dense Llama with GQA, untied and tied heads,
// Mistral with a sliding window shorter than the sequence, Mixtral top-2 of 4) against naiveForward.
func TestForwardMatchesNaiveReference(t *testing.T) {
	tied := testConfig("LlamaForCausalLM")
	tied.TieWordEmbeddings = true
	oneKV := testConfig("MistralForCausalLM")
	oneKV.NumKeyValueHeads = 1
	top1 := testConfig("MixtralForCausalLM")
	top1.NumExpertsPerTok = 1
	long := testConfig("LlamaForCausalLM")
	long.MaxPositionEmbeddings = 256
	longWin := testConfig("MistralForCausalLM")
	longWin.MaxPositionEmbeddings, longWin.SlidingWindow = 256, 70
	// head_dim 16 takes the Sgemm attention path (smaller heads use plain loops); 250 tokens make more
	// keys than one Sgemm tile (192).
	wide := testConfig("MistralForCausalLM")
	wide.MaxPositionEmbeddings, wide.SlidingWindow, wide.HeadDim, wide.NumAttentionHeads = 256, 220, 16, 4
	cases := []struct {
		name string
		cfg  func() model.Config
		T    int
	}{
		{"llama", func() model.Config { return testConfig("LlamaForCausalLM") }, 19},
		{"llama tied", func() model.Config { return tied }, 19},
		{"mistral window 5", func() model.Config { return testConfig("MistralForCausalLM") }, 19},
		{"mistral window 5 MQA", func() model.Config { return oneKV }, 19},
		{"mixtral top-2", func() model.Config { return testConfig("MixtralForCausalLM") }, 19},
		{"mixtral top-1", func() model.Config { return top1 }, 19},
		// Longer than a query block (64) and big enough to fan out over goroutines.
		{"llama 150 tokens", func() model.Config { return long }, 150},
		{"mistral window 70, 150 tokens", func() model.Config { return longWin }, 150},
		{"mistral head_dim 16, window 220, 250 tokens", func() model.Config { return wide }, 250},
		{"llama3 rope scaling, biases, tied", func() model.Config { return familyConfig("llama3") }, 40},
		{"qwen2 q/k/v biases", func() model.Config { return familyConfig("qwen2") }, 40},
		{"qwen3 q/k norm, head_dim 8", func() model.Config { return familyConfig("qwen3") }, 40},
		{"qwen3 attention_bias", func() model.Config { return familyConfig("qwen3-bias") }, 40},
		{"qwen3moe top-3 of 6 unnormalised, mlp_only_layers", func() model.Config { return familyConfig("qwen3moe") }, 40},
		{"qwen3moe top-3 of 6 renormalised, decoder_sparse_step 2", func() model.Config { return familyConfig("qwen3moe-norm") }, 40},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, w := randomEngine(t, tc.cfg(), uint64(10+i))
			toks := randomTokens(tc.T, e.V, i)
			got, err := e.Forward(toks, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := naiveForward(w, toks)
			var worst, spread float64
			for p := range want {
				for v := range want[p] {
					worst = math.Max(worst, math.Abs(float64(got[p][v])-want[p][v]))
					spread = math.Max(spread, math.Abs(want[p][v]))
				}
			}
			if worst > 1e-5 {
				t.Errorf("max |Δ logit| = %.3g vs the float64 reference (> 1e-5)", worst)
			}
			if spread < 1 {
				t.Errorf("logits are nearly flat (max |logit| %.3g): the comparison would prove little", spread)
			}
			t.Logf("max |Δ logit| %.3g, max |logit| %.3g", worst, spread)
		})
	}
}
