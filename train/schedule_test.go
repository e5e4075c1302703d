package train

import (
	"math"
	"testing"
)

// TestSchedule checks learning rates against transformers' lambdas (optimization.py), worked by hand
// for learning_rate 1e-3, 110 training steps and 10 warmup steps unless stated:
//
//	warmup (all):    lr * step/max(1, warmup)            step 5 -> 0.5e-3
//	linear:          lr * max(0, (T-step)/max(1, T-W))   step 60 -> 50/100 = 0.5e-3
//	cosine:          progress p = (step-W)/(T-W); lr * max(0, 0.5*(1+cos(pi*p)))
//	                 step 35: p=0.25 -> 0.5*(1+cos(pi/4)) = 0.85355339059
//	                 step 85: p=0.75 -> 0.5*(1-cos(pi/4)) = 0.14644660941
//	cosine_with_min_lr (min_lr_rate r): lr * (cosine factor*(1-r) + r)
//	                 r=0.1, step 35: 0.85355339059*0.9 + 0.1 = 0.86819805153
//	                 min_lr=1e-4 is r=0.1: step 85: 0.14644660941*0.9 + 0.1 = 0.23180194847
//	constant:        warmup, then lr
//	warmup_ratio 0.05 of 110 steps: ceil(5.5) = 6 warmup steps; step 3 -> 0.5
func TestSchedule(t *testing.T) {
	f := func(x float64) *float64 { return &x }
	base := Args{LearningRate: 1e-3, WarmupSteps: 10}
	with := func(mod func(*Args)) Args { a := base; mod(&a); return a }
	tests := []struct {
		name  string
		args  Args
		total int
		want  map[int]float64
	}{
		{"linear", with(func(a *Args) { a.LRSchedulerType = "linear" }), 110,
			map[int]float64{0: 0, 5: 0.5e-3, 10: 1e-3, 60: 0.5e-3, 109: 0.01e-3, 110: 0, 130: 0}},
		{"default is linear", base, 110, map[int]float64{60: 0.5e-3}},
		{"cosine", with(func(a *Args) { a.LRSchedulerType = "cosine" }), 110,
			map[int]float64{5: 0.5e-3, 10: 1e-3, 35: 0.85355339059e-3, 60: 0.5e-3, 85: 0.14644660941e-3, 110: 0}},
		{"cosine_with_min_lr rate", with(func(a *Args) {
			a.LRSchedulerType = "cosine_with_min_lr"
			a.LRSchedulerKwargs.MinLRRate = f(0.1)
		}), 110, map[int]float64{5: 0.5e-3, 10: 1e-3, 35: 0.86819805153e-3, 60: 0.55e-3, 110: 0.1e-3}},
		{"cosine_with_min_lr absolute", with(func(a *Args) {
			a.LRSchedulerType = "cosine_with_min_lr"
			a.LRSchedulerKwargs.MinLR = f(1e-4)
		}), 110, map[int]float64{85: 0.23180194847e-3, 110: 0.1e-3}},
		{"constant with warmup", with(func(a *Args) { a.LRSchedulerType = "constant" }), 110,
			map[int]float64{0: 0, 3: 0.3e-3, 10: 1e-3, 100: 1e-3}},
		{"constant_with_warmup", with(func(a *Args) { a.LRSchedulerType = "constant_with_warmup" }), 110,
			map[int]float64{7: 0.7e-3, 50: 1e-3}},
		{"constant without warmup", Args{LearningRate: 1e-3, LRSchedulerType: "constant"}, 110,
			map[int]float64{0: 1e-3, 110: 1e-3}},
		{"warmup_ratio", Args{LearningRate: 1e-3, WarmupRatio: 0.05}, 110,
			map[int]float64{3: 0.5e-3, 6: 1e-3, 58: 0.5e-3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Schedule(tc.args, tc.total)
			for step, want := range tc.want {
				if got := s(step); math.Abs(got-want) > 1e-12 {
					t.Errorf("step %d: lr %.12g, want %.12g", step, got, want)
				}
			}
		})
	}
	if w := WarmupSteps(Args{WarmupRatio: 0.05}, 110); w != 6 {
		t.Errorf("WarmupSteps(ratio 0.05, 110) = %d, want 6", w)
	}
	if got := Schedule(Args{LearningRate: 1, LRSchedulerType: "step"}, 10)(3); !math.IsNaN(got) {
		t.Errorf("unknown scheduler gave %v, want NaN", got)
	}
}
