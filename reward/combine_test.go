package reward

import (
	"math"
	"slices"
	"testing"
)

// TestCombineHandTable checks Llama 2's combination on a hand-built table. σ⁻¹(0.15) = ln(0.15/0.85)
// = -1.7346, so a safety score of -2 (σ = 0.119) is "low" and -1 (σ = 0.269) is not.
//
//	gen  safety prompt  R_h   R_s   chosen         why
//	0    yes            2.0   1.0   R_s = 1.0      safety prompt
//	1    no             3.0  -2.0   R_s = -2.0     σ(R_s) = 0.119 < 0.15
//	2    no             0.5  -1.0   R_h = 0.5      neither
//	3    no            -0.5   4.0   R_h = -0.5     neither
//
// Chosen [1, -2, 0.5, -0.5]: mean -0.25, population variance (1.5625+3.0625+0.5625+0.0625)/4 =
// 1.3125, so WHITEN gives (x + 0.25) / 1.145644.
func TestCombineHandTable(t *testing.T) {
	got, used, err := Combine([]float64{2, 3, 0.5, -0.5}, []float64{1, -2, -1, 4}, []bool{true, false, false, false})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, false, false}; !slices.Equal(used, want) {
		t.Errorf("safety score used: %v, want %v", used, want)
	}
	std := math.Sqrt(1.3125)
	want := []float64{1.25 / std, -1.75 / std, 0.75 / std, -0.25 / std}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Errorf("combined[%d] = %.9f, want %.9f", i, got[i], want[i])
		}
	}
	if math.Abs(math.Log(SafetyThreshold/(1-SafetyThreshold))-(-1.7346010553881064)) > 1e-12 {
		t.Error("the threshold's logit is not the one the table assumes")
	}
}

// TestSelectHandTable: Select is the same table's choice without the whitening, the raw chosen
// scores [1, -2, 0.5, -0.5].
func TestSelectHandTable(t *testing.T) {
	got, used, err := Select([]float64{2, 3, 0.5, -0.5}, []float64{1, -2, -1, 4}, []bool{true, false, false, false})
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{1, -2, 0.5, -0.5}; !slices.Equal(got, want) {
		t.Errorf("chosen %v, want %v", got, want)
	}
	if want := []bool{true, true, false, false}; !slices.Equal(used, want) {
		t.Errorf("safety score used: %v, want %v", used, want)
	}
}

func TestWhitenConstantIsZero(t *testing.T) {
	x := []float64{0.7, 0.7, 0.7}
	Whiten(x)
	if !slices.Equal(x, []float64{0, 0, 0}) {
		t.Errorf("Whiten(constant) = %v, want zeros", x)
	}
}

func TestCombineAndSpecErrors(t *testing.T) {
	if _, _, err := Combine([]float64{1}, []float64{1, 2}, []bool{false}); err == nil ||
		err.Error() != "reward combination: 1 helpfulness scores, 2 safety scores, 1 safety flags: want one each per generation" {
		t.Errorf("length mismatch: %v", err)
	}
	if _, _, err := Combine([]float64{math.NaN()}, []float64{1}, []bool{false}); err == nil ||
		err.Error() != "reward combination: generation 0: helpfulness NaN, safety 1: scores must be finite" {
		t.Errorf("NaN: %v", err)
	}
	for _, tc := range []struct {
		specs []ModelSpec
		want  string
	}{
		{[]ModelSpec{{Path: "a", Role: "helpfulness"}}, "<nil>"},
		{[]ModelSpec{{Path: "a", Role: "helpfulness"}, {Path: "b", Role: "safety"}}, "<nil>"},
		{[]ModelSpec{{Role: "safety"}}, "reward_models[0].path: must be set"},
		{[]ModelSpec{{Path: "a", Role: "harmless"}}, `reward_models[0].role: unknown "harmless" (want helpfulness or safety)`},
		{[]ModelSpec{{Path: "a", Role: "safety"}, {Path: "b", Role: "safety"}}, "reward_models[1].role: safety is also reward_models[0]'s; give one model per role"},
	} {
		if got := errText(ValidateSpecs(tc.specs)); got != tc.want {
			t.Errorf("ValidateSpecs(%v) = %q, want %q", tc.specs, got, tc.want)
		}
	}
}

func TestSafetyFlags(t *testing.T) {
	rows := []map[string]any{{"is_safety": true}, {"is_safety": int64(0)}, {"is_safety": "TRUE"}, {"is_safety": 1.0}}
	got, err := SafetyFlags(rows, "is_safety", "prompts.parquet")
	if err != nil || !slices.Equal(got, []bool{true, false, true, true}) {
		t.Errorf("SafetyFlags = %v, %v", got, err)
	}
	for _, tc := range []struct {
		row  map[string]any
		want string
	}{
		{map[string]any{"prompt": "x"}, `prompts.parquet: row 0: no "is_safety" column (which prompts are safety prompts; set safety_column)`},
		{map[string]any{"is_safety": "maybe"}, "prompts.parquet: row 0: is_safety is maybe (string); want true or false"},
		{map[string]any{"is_safety": int64(2)}, "prompts.parquet: row 0: is_safety is 2 (int64); want true or false"},
	} {
		_, err := SafetyFlags([]map[string]any{tc.row}, "is_safety", "prompts.parquet")
		if errText(err) != tc.want {
			t.Errorf("%v: got %q, want %q", tc.row, errText(err), tc.want)
		}
	}
}
