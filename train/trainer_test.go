package train

import (
	"math"
	"reflect"
	"testing"
)

func TestTrainerDefaults(t *testing.T) {
	// Unset: the trainer's rate, and every other key as Defaults gives it.
	got := Args{}.TrainerDefaults(1e-6)
	want := Args{LearningRate: 1e-6}.Defaults()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("TrainerDefaults(1e-6) = %+v, want %+v", got, want)
	}
	if got.LearningRate == DefaultLearningRate {
		t.Errorf("learning_rate = transformers' %g: the trainer's default was ignored", got.LearningRate)
	}
	// Set: the configured rate wins over the trainer's.
	if lr := (Args{LearningRate: 3e-4}).TrainerDefaults(1e-6).LearningRate; lr != 3e-4 {
		t.Errorf("set learning_rate 3e-4 became %g", lr)
	}
}

func TestValidateTrainer(t *testing.T) {
	ok := Args{OutputDir: "out"}.Defaults()
	bad := ok
	bad.PerDeviceTrainBatchSize = -1
	for _, tc := range []struct {
		name, model string
		args        Args
		want        string
	}{
		{"no model", "", ok, "model_name_or_path: must be set (an HF model directory or a .gguf file)"},
		{"model checked first", "", bad, "model_name_or_path: must be set (an HF model directory or a .gguf file)"},
		{"loop keys", "m", bad, "per_device_train_batch_size: must be >= 1, got -1"},
		{"valid", "m", ok, ""},
	} {
		err := tc.args.ValidateTrainer(tc.model)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%s: error %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestSigmoids(t *testing.T) {
	// Moderate x: the naive formulas are exact enough to compare with.
	for x := -30.0; x <= 30; x += 0.25 {
		s := 1 / (1 + math.Exp(-x))
		if got := Sigmoid(x); math.Abs(got-s) > 1e-15 {
			t.Errorf("Sigmoid(%g) = %g, want %g", x, got, s)
		}
		if got, want := LogSigmoid(x), math.Log(s); math.Abs(got-want) > 1e-12*math.Max(1, math.Abs(want)) {
			t.Errorf("LogSigmoid(%g) = %g, want %g", x, got, want)
		}
		// log σ(x) − log σ(−x) = log(eˣ) = x.
		if d := LogSigmoid(x) - LogSigmoid(-x); math.Abs(d-x) > 1e-12*math.Max(1, math.Abs(x)) {
			t.Errorf("LogSigmoid(%g) - LogSigmoid(%g) = %g, want %g", x, -x, d, x)
		}
	}
	// Far tails, where exp overflows: σ saturates at 0 and 1, log σ(x) → x below and 0 above.
	for _, tc := range []struct{ x, sig, logSig float64 }{
		{0, 0.5, -math.Ln2},
		{1000, 1, 0},
		{-1000, 0, -1000},
		{800, 1, 0},
		{-800, 0, -800},
	} {
		if got := Sigmoid(tc.x); got != tc.sig {
			t.Errorf("Sigmoid(%g) = %g, want %g", tc.x, got, tc.sig)
		}
		if got := LogSigmoid(tc.x); got != tc.logSig {
			t.Errorf("LogSigmoid(%g) = %g, want %g", tc.x, got, tc.logSig)
		}
	}
}
