package bench

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/model/checkpoint"
)

// TestTrainTiny runs the real training path on the tiny preset: the fixed batch's loss must fall
// from about ln(512) (random init on random tokens) as AdamW updates the weights, and the result must
// carry the step times and the counts it was given.
func TestTrainTiny(t *testing.T) {
	p := preset(t, "tiny")
	res, err := Train(context.Background(), TrainOptions{Preset: p, Steps: 6, Warmup: 2, Seed: 3, PeakGFLOPS: 100})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(res.LossFirst-math.Log(512)) > 0.1 {
		t.Errorf("first loss %.4f, want about ln 512 = %.4f", res.LossFirst, math.Log(512))
	}
	// lr 1e-4 for 8 steps on one batch of 256 targets: a small but certain fall.
	if !(res.LossLast < res.LossFirst-0.01) {
		t.Errorf("loss %.4f -> %.4f did not fall", res.LossFirst, res.LossLast)
	}
	if len(res.StepSeconds) != 8 || res.Steps != 6 || res.Warmup != 2 {
		t.Errorf("%d step times for steps %d + warmup %d", len(res.StepSeconds), res.Steps, res.Warmup)
	}
	want := float64(p.Batch*p.SeqLen) / Median(res.StepSeconds[2:])
	if math.Abs(res.TokensPerSecond-want) > 1e-9*want {
		t.Errorf("tokens/s %.3f, want %.3f from the median timed step", res.TokensPerSecond, want)
	}
	if g := res.FLOPPerToken * res.TokensPerSecond / 1e9; math.Abs(res.AchievedGFLOPS-g) > 1e-9*g || math.Abs(res.PeakShare-g/100) > 1e-9 {
		t.Errorf("GFLOP/s %.4f share %.4f, want %.4f and %.4f", res.AchievedGFLOPS, res.PeakShare, g, g/100)
	}
	if res.PeakRSSMB < 1 || res.Kind != "train" || res.Engine != "alignkit" {
		t.Errorf("result %+v", res)
	}
}

// TestTrainGradientCheckpointing: the checkpointed run takes bitwise the same optimizer steps (its
// graph computes the same gradients) and says it was checkpointed.
func TestTrainGradientCheckpointing(t *testing.T) {
	run := func(ckpt bool) TrainResult {
		res, err := Train(context.Background(), TrainOptions{Preset: preset(t, "tiny"), Steps: 3, Seed: 3, PeakGFLOPS: 100, GradientCheckpointing: ckpt})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	plain, ckpt := run(false), run(true)
	if ckpt.LossFirst != plain.LossFirst || ckpt.LossLast != plain.LossLast || plain.LossLast == plain.LossFirst {
		t.Errorf("losses %v -> %v checkpointed, %v -> %v plain", ckpt.LossFirst, ckpt.LossLast, plain.LossFirst, plain.LossLast)
	}
	if !ckpt.GradientCheckpointing || plain.GradientCheckpointing {
		t.Errorf("GradientCheckpointing %v checkpointed, %v plain", ckpt.GradientCheckpointing, plain.GradientCheckpointing)
	}
}

func TestTrainBadOptions(t *testing.T) {
	_, err := Train(context.Background(), TrainOptions{Preset: preset(t, "tiny"), Steps: 0})
	want := "bench train: steps 0 must be >= 1 and warmup 0 >= 0"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	p := preset(t, "tiny")
	p.SeqLen = 1
	_, err = Train(context.Background(), TrainOptions{Preset: p, Steps: 1})
	want = "bench train: preset tiny has batch 4 and seq_len 1"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	p = preset(t, "tiny")
	p.Config.HiddenSize = 0
	_, err = Train(context.Background(), TrainOptions{Preset: p, Steps: 1})
	if err == nil || !strings.HasPrefix(err.Error(), "bench train: preset tiny: ") {
		t.Fatalf("err = %v, want the preset's invalid config", err)
	}
}

// TestTrainMemoryFlat is the memory-flat requirement: 200 optimizer steps of the real training path
// on a small shape, and the resident set after step 200 within 5% of the one after step 20. The
// garbage collector runs and returns free pages to the OS before each reading, so what is compared is
// memory the process still holds (a leak), not where the collector's cycle happened to be.
func TestTrainMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: 200 training steps")
	}
	p := preset(t, "tiny")
	p.Batch, p.SeqLen = 4, 128
	var at20, at200 int64
	_, err := Train(context.Background(), TrainOptions{Preset: p, Steps: 200, Warmup: 0, Seed: 1, PeakGFLOPS: 1,
		AfterStep: func(step int, _ Memory) error {
			if step != 20 && step != 200 {
				return nil
			}
			runtime.GC()
			debug.FreeOSMemory()
			m, err := ReadMemory()
			if err != nil {
				return err
			}
			if step == 20 {
				at20 = m.RSS
			} else {
				at200 = m.RSS
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("VmRSS after step 20: %.1f MB, after step 200: %.1f MB", float64(at20)/(1<<20), float64(at200)/(1<<20))
	if at20 == 0 || math.Abs(float64(at200-at20)) > 0.05*float64(at20) {
		t.Fatalf("VmRSS %d after step 200 is not within 5%% of %d after step 20", at200, at20)
	}
}

// TestTrainAfterStepError checks that a hook's error stops the run and comes back.
func TestTrainAfterStepError(t *testing.T) {
	_, err := Train(context.Background(), TrainOptions{Preset: preset(t, "tiny"), Steps: 3, PeakGFLOPS: 1,
		AfterStep: func(step int, _ Memory) error {
			if step == 2 {
				return fmt.Errorf("stop at %d", step)
			}
			return nil
		}})
	if err == nil || err.Error() != "stop at 2" {
		t.Fatalf("err = %v, want stop at 2", err)
	}
}

// TestTrainProfile checks that --cpuprofile's writer gets a pprof profile (gzipped protobuf) that
// covers the timed steps, and that the profiler is stopped again when Train returns.
func TestTrainProfile(t *testing.T) {
	var buf bytes.Buffer
	if _, err := Train(context.Background(), TrainOptions{Preset: preset(t, "tiny"), Steps: 2, Warmup: 1, PeakGFLOPS: 100, Profile: &buf}); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatalf("profile is not gzipped pprof: %v", err)
	}
	body, err := io.ReadAll(zr)
	if err != nil || len(body) == 0 {
		t.Fatalf("profile body: %d bytes, %v", len(body), err)
	}
	// A second profile can start only if Train stopped the first.
	if err := pprof.StartCPUProfile(io.Discard); err != nil {
		t.Fatalf("profiler still running after Train: %v", err)
	}
	pprof.StopCPUProfile()
}

// TestTrainProfileStoppedOnError: a run that fails during the profiled steps still stops the profiler,
// and a profiler already running (the test's own here) is an error before any step.
func TestTrainProfileStoppedOnError(t *testing.T) {
	_, err := Train(context.Background(), TrainOptions{Preset: preset(t, "tiny"), Steps: 3, Warmup: 1, PeakGFLOPS: 1, Profile: io.Discard,
		AfterStep: func(step int, _ Memory) error {
			if step == 3 {
				return fmt.Errorf("stop at %d", step)
			}
			return nil
		}})
	if err == nil || err.Error() != "stop at 3" {
		t.Fatalf("err = %v, want stop at 3", err)
	}
	if err := pprof.StartCPUProfile(io.Discard); err != nil {
		t.Fatalf("profiler still running after a failed Train: %v", err)
	}
	defer pprof.StopCPUProfile()
	var steps int
	_, err = Train(context.Background(), TrainOptions{Preset: preset(t, "tiny"), Steps: 1, PeakGFLOPS: 1, Profile: io.Discard,
		AfterStep: func(int, Memory) error { steps++; return nil }})
	if err == nil || !strings.HasPrefix(err.Error(), "bench train: cpu profile: ") || steps != 0 {
		t.Fatalf("err = %v after %d steps, want a cpu profile error before any step", err, steps)
	}
}

// TestTrainQwen3: the qwen3-0.6b preset's code path at a tiny size (the preset's own model is 2.4 GB):
// a Qwen3 config with q/k RMSNorm and head_dim 32 ≠ d/heads 16 trains full and with a LoRA adapter,
// whose trainable count is LoRAMatmulParams (r·(in+out) over q, k, v, o, gate, up, down: with q and
// o 4·32 = 128 wide and k, v 2·32 = 64, per layer 4·((64+128) + 2·(64+64) + (128+64) + 3·(64+172)) =
// 4·1,348 = 5,392, ×2 layers = 10,784),
// and its loss falls; WriteModel writes it as a directory that reads back as Qwen3ForCausalLM.
func TestTrainQwen3(t *testing.T) {
	p := Preset{Name: "qwen3-tiny", Config: qwen3(512, 64, 2, 4, 2, 32, 172, true), Batch: 2, SeqLen: 32}
	p.Config.BOSTokenID, p.Config.EOSTokenIDs = 1, []int{2}
	for _, r := range []int{0, 4} {
		res, err := Train(context.Background(), TrainOptions{Preset: p, Steps: 4, Warmup: 0, Seed: 5, PeakGFLOPS: 100, LoRAR: r})
		if err != nil {
			t.Fatal(err)
		}
		if !(res.LossLast < res.LossFirst) {
			t.Errorf("lora_r %d: loss %.4f -> %.4f did not fall", r, res.LossFirst, res.LossLast)
		}
		if want := ParamCount(p.Config); r == 0 && res.TrainableParams != want {
			t.Errorf("full: %d trainable, want every parameter, %d", res.TrainableParams, want)
		}
		if r == 4 && (res.TrainableParams != 10_784 || LoRAMatmulParams(p.Config, 4) != 10_784) {
			t.Errorf("LoRA r4: %d trainable, LoRAMatmulParams %d, want 10784", res.TrainableParams, LoRAMatmulParams(p.Config, 4))
		}
	}
	dir := t.TempDir()
	if _, err := WriteModel(p, 1, nil, dir); err != nil {
		t.Fatal(err)
	}
	m, err := checkpoint.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c := m.Weights.Config; c.Family() != "qwen3" || !c.QKNorm() || c.HeadDim != 32 || c.RMSNormEps != 1e-6 || c.RopeTheta != 1e6 {
		t.Errorf("read back %+v", c)
	}
}
