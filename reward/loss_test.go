package reward

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

func near(a, b, eps float64) bool { return math.Abs(a-b) <= eps*math.Max(1, math.Abs(b)) }

// One pair, r_c = 2, r_r = 0.5, so d = r_c − r_r = 1.5.
//
//	plain:     loss = −log σ(1.5) = log(1 + e^−1.5) = 0.2014132779827524
//	           dL/dr_c = −σ(−1.5) = −0.18242552380635635, dL/dr_r = +0.18242552380635635
//	margin 1:  z = 1.5 − 1 = 0.5, loss = log(1 + e^−0.5) = 0.4740769841801067
//	           dL/dr_c = −σ(−0.5) = −0.3775406687981454, dL/dr_r = +0.3775406687981454
//	+ centering λ = 0.01: s = r_c + r_r = 2.5, λs² = 0.0625, so loss = 0.4740769841801067 + 0.0625;
//	           both gradients gain 2λs = 0.05: dL/dr_c = −0.3275406687981454, dL/dr_r = 0.4275406687981454
func TestLossHandPair(t *testing.T) {
	cases := []struct {
		name       string
		margin     []float64
		center     float64
		loss, d, r float64
	}{
		{"bradley-terry", nil, 0, 0.2014132779827524, -0.18242552380635635, 0.18242552380635635},
		{"margin", []float64{1}, 0, 0.4740769841801067, -0.3775406687981454, 0.3775406687981454},
		{"margin+centering", []float64{1}, 0.01, 0.4740769841801067 + 0.0625, -0.3775406687981454 + 0.05, 0.3775406687981454 + 0.05},
	}
	for _, tc := range cases {
		out, err := Loss([]float64{2}, []float64{0.5}, tc.margin, tc.center)
		if err != nil {
			t.Fatal(err)
		}
		if !near(out.Loss, tc.loss, 1e-14) || !near(out.DChosen[0], tc.d, 1e-14) || !near(out.DRejected[0], tc.r, 1e-14) {
			t.Errorf("%s: loss %.17g grads %.17g %.17g, want %.17g %.17g %.17g", tc.name, out.Loss, out.DChosen[0], out.DRejected[0], tc.loss, tc.d, tc.r)
		}
	}
}

// Equal rewards give log 2 (σ(0) = 1/2), and the gradient ∓1/2 per pair divided by N.
func TestLossTies(t *testing.T) {
	out, err := Loss([]float64{1, -3}, []float64{1, -3}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !near(out.Loss, math.Ln2, 1e-15) || !near(out.DChosen[0], -0.25, 1e-15) || !near(out.DRejected[1], 0.25, 1e-15) {
		t.Errorf("loss %v grads %v %v", out.Loss, out.DChosen, out.DRejected)
	}
	if out.Metrics["accuracy"] != 0 {
		t.Errorf("ties count as wrong: accuracy %v", out.Metrics["accuracy"])
	}
}

// Metrics on r_c = {2, 0, 1}, r_r = {1, 0.5, −2}: correct pairs 0 and 2 → accuracy 2/3; margins
// 1, −0.5, 3 → mean 3.5/3; rewards {2, 0, 1, 1, 0.5, −2}: min −2, max 2, mean 2.5/6;
// centering: sums 3, 0.5, −1 → squares 9, 0.25, 1 → mean 10.25/3.
func TestLossMetrics(t *testing.T) {
	out, err := Loss([]float64{2, 0, 1}, []float64{1, 0.5, -2}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"accuracy": 2.0 / 3, "margin": 3.5 / 3, "reward/min": -2, "reward/max": 2, "reward/mean": 2.5 / 6, "centering": 10.25 / 3}
	for k, v := range want {
		if !near(out.Metrics[k], v, 1e-14) {
			t.Errorf("%s = %v, want %v", k, out.Metrics[k], v)
		}
	}
}

func TestLossGradientFiniteDifference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 7
	rc, rr, m := make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range rc {
		rc[i], rr[i], m[i] = rng.NormFloat64()*2, rng.NormFloat64()*2, float64(rng.IntN(4))/3
	}
	for _, tc := range []struct {
		margin []float64
		center float64
	}{{nil, 0}, {m, 0}, {m, 0.01}, {nil, 0.5}} {
		out, err := Loss(rc, rr, tc.margin, tc.center)
		if err != nil {
			t.Fatal(err)
		}
		const h = 1e-6
		for i := 0; i < n; i++ {
			for side, grad := range map[string][]float64{"chosen": out.DChosen, "rejected": out.DRejected} {
				eval := func(delta float64) float64 {
					c, r := append([]float64(nil), rc...), append([]float64(nil), rr...)
					if side == "chosen" {
						c[i] += delta
					} else {
						r[i] += delta
					}
					o, err := Loss(c, r, tc.margin, tc.center)
					if err != nil {
						t.Fatal(err)
					}
					return o.Loss
				}
				num := (eval(h) - eval(-h)) / (2 * h)
				if math.Abs(num-grad[i]) > 1e-8 {
					t.Errorf("margin=%v center=%v d/d%s[%d]: analytic %v, finite difference %v", tc.margin != nil, tc.center, side, i, grad[i], num)
				}
			}
		}
	}
}

func TestLossErrors(t *testing.T) {
	cases := []struct {
		c, r, m []float64
		center  float64
		want    string
	}{
		{nil, nil, nil, 0, "chosen rewards are empty: want at least one pair"},
		{[]float64{1}, []float64{1, 2}, nil, 0, "rejected rewards have 2 entries: want 1, as chosen"},
		{[]float64{1}, []float64{1}, []float64{}, 0, "margins have 0 entries: want 1, as chosen"},
		{[]float64{1}, []float64{math.NaN()}, nil, 0, "rejected[0] = NaN: want a finite number"},
		{[]float64{1}, []float64{0}, []float64{math.Inf(1)}, 0, "margin[0] = +Inf: want a finite number"},
		{[]float64{1}, []float64{0}, nil, -0.1, "center_rewards_coefficient -0.1: want a finite value >= 0"},
	}
	for _, tc := range cases {
		_, err := Loss(tc.c, tc.r, tc.m, tc.center)
		if err == nil || err.Error() != tc.want {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}

// Llama 2 Table 27.
func TestMarginPreset(t *testing.T) {
	want := map[string][4]float64{"small": {1, 2.0 / 3, 1.0 / 3, 0}, "large": {3, 2, 1, 0}}
	for name, w := range want {
		p, err := MarginPreset(name)
		if err != nil {
			t.Fatal(err)
		}
		got := [4]float64{p["significantly better"], p["better"], p["slightly better"], p["negligibly better / unsure"]}
		if got != w || p["unsure"] != 0 || p["negligibly better"] != 0 {
			t.Errorf("%s: %v", name, p)
		}
	}
	if _, err := MarginPreset("huge"); err == nil || err.Error() != `margin preset "huge": want one of small, large` {
		t.Errorf("error %v", err)
	}
}

func TestMarginTable(t *testing.T) {
	tab, err := NewMarginTable("small", map[string]float64{"7": 2, "6.0": 1.5, "Much Better": 1.25, "better": 0.5})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		rating any
		want   float64
	}{
		{"Significantly  Better", 1},
		{"  Negligibly Better / Unsure ", 0},
		{"better", 0.5}, // custom overrides the preset's 2/3
		{"much better", 1.25},
		{7, 2},
		{int64(7), 2},
		{7.0, 2},
		{float32(6), 1.5},
		{"6", 1.5},
		{json.Number("7.00"), 2},
	}
	for _, tc := range cases {
		got, err := tab.Margin(tc.rating)
		if err != nil || got != tc.want {
			t.Errorf("Margin(%v) = %v, %v; want %v", tc.rating, got, err, tc.want)
		}
	}
	ms, err := tab.Margins([]any{"better", 7})
	if err != nil || ms[0] != 0.5 || ms[1] != 2 {
		t.Errorf("Margins = %v, %v", ms, err)
	}
	if _, err := tab.Margins([]any{"better", "meh"}); err == nil || err.Error() != `row 1: rating "meh" has no margin: want one of 6, 7, better, much better, negligibly better, negligibly better / unsure, significantly better, slightly better, unsure` {
		t.Errorf("error %v", err)
	}
	if _, err := tab.Margin([]int{1}); err == nil || err.Error() != "rating [1] of type []int: want a string or a number" {
		t.Errorf("error %v", err)
	}
	if _, err := tab.Margin(math.NaN()); err == nil || err.Error() != "rating NaN: want a finite number" {
		t.Errorf("error %v", err)
	}

	for _, tc := range []struct {
		preset string
		custom map[string]float64
		want   string
	}{
		{"", nil, "margin table is empty: set a preset (small, large) or a rating map"},
		{"", map[string]float64{"3": 1, "3.0": 2}, `margin map keys "3" and "3.0" are the same rating "3"`},
		{"", map[string]float64{" ": 1}, `margin map key " ": want a non-empty rating`},
		{"", map[string]float64{"a": math.NaN()}, `margin map key "a": margin NaN is not finite`},
		{"tiny", nil, `margin preset "tiny": want one of small, large`},
	} {
		if _, err := NewMarginTable(tc.preset, tc.custom); err == nil || err.Error() != tc.want {
			t.Errorf("NewMarginTable(%q, %v): error %v, want %q", tc.preset, tc.custom, err, tc.want)
		}
	}
}

// Five pairs in two buckets: "better" has pairs 0, 2, 4 with r_c > r_r in 0 and 4 (2/3); "slightly
// better" has pairs 1 and 3, correct only in 3 (pair 1 is a tie, which counts as wrong): 1/2.
// Overall 3/5.
func TestBucketAccuracy(t *testing.T) {
	rc := []float64{1, 0.2, -1, 3, 0}
	rr := []float64{0, 0.2, 1, 2, -0.5}
	b := []string{"better", "slightly better", "better", "slightly better", "better"}
	got, all, err := BucketAccuracy(rc, rr, b)
	if err != nil {
		t.Fatal(err)
	}
	want := []BucketStat{{"better", 3, 2, 2.0 / 3}, {"slightly better", 2, 1, 0.5}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("bucket %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if all != (BucketStat{"", 5, 3, 0.6}) {
		t.Errorf("overall = %+v", all)
	}
	if _, _, err := BucketAccuracy(rc, rr, b[:2]); err == nil || err.Error() != "buckets have 2 entries: want 5, as chosen" {
		t.Errorf("error %v", err)
	}
}
