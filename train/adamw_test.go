package train

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestAdamWTwoSteps checks two AdamW updates against torch.optim.AdamW's algorithm, worked by hand:
//
// lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1; p and q start at 1.0, q is NoDecay;
// gradients 0.5 then -0.25.
//
// Step 1 (t=1): p <- 1.0*(1 - 0.1*0.1) = 0.99 (q stays 1.0: no decay)
//
//	m = 0.1*0.5 = 0.05;  v = 0.001*0.25 = 0.00025
//	bias corrections 1-0.9 = 0.1, 1-0.999 = 0.001;  step_size = 0.1/0.1 = 1
//	denom = sqrt(0.00025)/sqrt(0.001) + 1e-8 = 0.5 + 1e-8
//	p = 0.99 - 0.05/(0.5+1e-8) = 0.99 - 0.099999998 = 0.890000002
//	q = 1.0  - 0.099999998                          = 0.900000002
//
// Step 2 (t=2): p <- 0.890000002*0.99 = 0.88110000198
//
//	m = 0.9*0.05 + 0.1*(-0.25) = 0.02
//	v = 0.999*0.00025 + 0.001*0.0625 = 0.00031225
//	bias corrections 1-0.81 = 0.19, 1-0.998001 = 0.001999;  step_size = 0.1/0.19
//	denom = sqrt(0.00031225)/sqrt(0.001999) + 1e-8 = 0.39522538070 + 1e-8
//	update = (0.1/0.19)*0.02/denom = 0.02663370329
//	p = 0.88110000198 - 0.02663370329 = 0.85446629869
//	q = 0.900000002   - 0.02663370329 = 0.87336629871
//
// float32 carries ~7 significant digits, so the comparison allows 1.5e-7.
func TestAdamWTwoSteps(t *testing.T) {
	params := []Param{{Name: "p", Value: []float32{1}}, {Name: "q", Value: []float32{1}, NoDecay: true}}
	opt := NewAdamW(params, AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1})
	want := [][2]float64{{0.890000002, 0.900000002}, {0.85446629869, 0.87336629871}}
	for i, g := range []float32{0.5, -0.25} {
		if err := opt.Step(params, [][]float32{{g}, {g}}, 0.1); err != nil {
			t.Fatal(err)
		}
		for j, w := range want[i] {
			if got := float64(params[j].Value[0]); math.Abs(got-w) > 1.5e-7 {
				t.Errorf("step %d: %s = %.10f, want %.10f", i+1, params[j].Name, got, w)
			}
		}
	}
	m, v := opt.Moments()
	if math.Abs(float64(m[0][0])-0.02) > 1e-9 || math.Abs(float64(v[0][0])-0.00031225) > 4e-11 {
		t.Errorf("moments after 2 steps: m=%g v=%g, want 0.02 and 0.00031225", m[0][0], v[0][0])
	}
	if opt.StepCount() != 2 {
		t.Errorf("StepCount = %d, want 2", opt.StepCount())
	}
}

// TestAdamWParallelMatchesReference runs AdamW on tensors spanning several chunks with 1 and 3 workers
// (bit-identical) and compares with a float64 transcription of torch's formulas (float32 tolerance).
func TestAdamWParallelMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{3*chunkSize + 17, 5, chunkSize}
	mk := func() []Param {
		r := rand.New(rand.NewPCG(3, 4))
		var ps []Param
		for i, n := range sizes {
			v := make([]float32, n)
			for j := range v {
				v[j] = float32(r.NormFloat64())
			}
			ps = append(ps, Param{Name: string(rune('a' + i)), Value: v, NoDecay: i == 1})
		}
		return ps
	}
	var grads [][][]float32
	for range 3 {
		var g [][]float32
		for _, n := range sizes {
			x := make([]float32, n)
			for j := range x {
				x[j] = float32(rng.NormFloat64() * 0.1)
			}
			g = append(g, x)
		}
		grads = append(grads, g)
	}
	cfg := AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}
	run := func(workers int) []Param {
		ps := mk()
		c := cfg
		c.Workers = workers
		opt := NewAdamW(ps, c)
		for s, g := range grads {
			if err := opt.Step(ps, g, 1e-3*float64(s+1)); err != nil {
				t.Fatal(err)
			}
		}
		return ps
	}
	one, three := run(1), run(3)
	ref := mk()
	for i := range sizes {
		for j := range one[i].Value {
			if math.Float32bits(one[i].Value[j]) != math.Float32bits(three[i].Value[j]) {
				t.Fatalf("%s[%d]: 1 worker %v, 3 workers %v", one[i].Name, j, one[i].Value[j], three[i].Value[j])
			}
		}
		// float64 reference
		m := make([]float64, sizes[i])
		v := make([]float64, sizes[i])
		p := make([]float64, sizes[i])
		for j := range p {
			p[j] = float64(ref[i].Value[j])
		}
		for s, g := range grads {
			lr, tt := 1e-3*float64(s+1), float64(s+1)
			for j := range p {
				if !ref[i].NoDecay {
					p[j] *= 1 - lr*cfg.WeightDecay
				}
				gj := float64(g[i][j])
				m[j] = cfg.Beta1*m[j] + (1-cfg.Beta1)*gj
				v[j] = cfg.Beta2*v[j] + (1-cfg.Beta2)*gj*gj
				den := math.Sqrt(v[j])/math.Sqrt(1-math.Pow(cfg.Beta2, tt)) + cfg.Eps
				p[j] -= lr / (1 - math.Pow(cfg.Beta1, tt)) * m[j] / den
			}
		}
		for j := range p {
			if d := math.Abs(float64(one[i].Value[j]) - p[j]); d > 1e-6*(1+math.Abs(p[j])) {
				t.Fatalf("%s[%d] = %v, float64 reference %v", one[i].Name, j, one[i].Value[j], p[j])
			}
		}
	}
}

func TestAdamWShapeErrors(t *testing.T) {
	params := []Param{{Name: "w", Value: make([]float32, 3)}}
	opt := NewAdamW(params, AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8})
	err := opt.Step(params, [][]float32{make([]float32, 2)}, 0.1)
	if err == nil || err.Error() != "adamw step: w has 3 values and 2 grads, optimizer has 3" {
		t.Errorf("got %v", err)
	}
	err = opt.SetState(1, [][]float32{make([]float32, 4)}, [][]float32{make([]float32, 3)})
	if err == nil || err.Error() != "adamw state: w has 4/3 moment values, param has 3" {
		t.Errorf("got %v", err)
	}
}

// TestClipGradNorm follows torch.nn.utils.clip_grad_norm_: total = ||concat(grads)||_2, and when
// max_norm/(total+1e-6) < 1 every gradient is multiplied by it. Grads {3,4} and {12} have norm
// sqrt(9+16+144) = 13.
func TestClipGradNorm(t *testing.T) {
	tests := []struct {
		name    string
		maxNorm float64
		want    []float64
	}{
		{"clipped to 1", 1, []float64{3 / (13 + 1e-6), 4 / (13 + 1e-6), 12 / (13 + 1e-6)}},
		{"clipped to 6.5", 6.5, []float64{3 * 6.5 / (13 + 1e-6), 4 * 6.5 / (13 + 1e-6), 12 * 6.5 / (13 + 1e-6)}},
		{"norm below max", 100, []float64{3, 4, 12}},
		{"max equals norm: coefficient 13/(13+1e-6) < 1 still scales", 13, []float64{3 * 13 / (13 + 1e-6), 4 * 13 / (13 + 1e-6), 12 * 13 / (13 + 1e-6)}},
		{"disabled", 0, []float64{3, 4, 12}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := [][]float32{{3, 4}, {12}}
			norm := ClipGradNorm(g, tc.maxNorm, 2)
			if norm != 13 {
				t.Errorf("norm = %v, want 13 (before clipping)", norm)
			}
			got := []float32{g[0][0], g[0][1], g[1][0]}
			for i := range got {
				if math.Abs(float64(got[i])-tc.want[i]) > 1e-6*tc.want[i] {
					t.Errorf("grad %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
	inf := [][]float32{{float32(math.Inf(1)), 1}}
	if n := ClipGradNorm(inf, 1, 1); !math.IsInf(n, 1) || inf[0][1] != 1 {
		t.Errorf("Inf gradient: norm %v, other grad %v; want +Inf and untouched 1", n, inf[0][1])
	}
}
