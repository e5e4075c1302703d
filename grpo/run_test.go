package grpo

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/hf"
	"github.com/alignkit/alignkit/reward"
	"github.com/alignkit/alignkit/rlhf"
	"github.com/alignkit/alignkit/train"
)

const sentenceEnd = `[.!?]"?\s*$`

// storiesConfig is a short GRPO run of stories260K on no_robots' prompt strings.
func storiesConfig(t *testing.T) Config {
	t.Helper()
	dir := sharedtest.Dir(t, "models/stories260K/model.safetensors", "data/no_robots_test_sft.parquet")
	off := false
	zero := 0.0
	return Config{
		Args: train.Args{OutputDir: filepath.Join(t.TempDir(), "out"), MaxSteps: 2, PerDeviceTrainBatchSize: 8,
			LearningRate: 1e-3, LRSchedulerType: "constant", LoggingSteps: 1, ReportPlots: &off, MaxGradNorm: &zero},
		ModelNameOrPath: filepath.Join(dir, "models", "stories260K"),
		RLPromptArgs: rlhf.RLPromptArgs{DatasetName: filepath.Join(dir, "data", "no_robots_test_sft.parquet"),
			Columns: map[string]string{"prompt": "prompt"}, MaxTrainSamples: 16},
		NumGenerations: 4, MaxCompletionLength: 8,
		// Some 8-token completions hold punctuation, some do not: a reward with variance.
		RewardFuncs: []FuncSpec{{Name: FuncRegex, Pattern: `[.,!?]`}},
	}
}

func run(t *testing.T, cfg Config) (train.Result, string) {
	t.Helper()
	var log bytes.Buffer
	res, err := Run(context.Background(), cfg, train.WithLogWriter(&log))
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	return res, log.String()
}

func openModel(t *testing.T, path string) *checkpoint.Model {
	t.Helper()
	ck, err := checkpoint.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return ck
}

// With a reward every completion earns, every advantage is 0, so the loss and its gradient are 0;
// with weight_decay 0 AdamW's update m/(√v+ε) is then 0 too, and the trained weights are the
// initial ones, bit for bit.
func TestConstantRewardLeavesWeights(t *testing.T) {
	cfg := storiesConfig(t)
	cfg.RewardFuncs = []FuncSpec{{Name: FuncRegex, Pattern: `.*`}}
	res, _ := run(t, cfg)
	if res.LastMetrics["reward_std"] != 0 || res.LastMetrics["frac_reward_zero_std"] != 1 || res.LastMetrics["reward"] != 1 {
		t.Fatalf("metrics %v: want every reward 1", res.LastMetrics)
	}
	before, after := openModel(t, cfg.ModelNameOrPath), openModel(t, res.OutputDir)
	for _, name := range before.Weights.Names() {
		a, b := before.Weights.Tensors[name].Data, after.Weights.Tensors[name].Data
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s[%d] moved: %g -> %g", name, i, a[i], b[i])
			}
		}
	}
}

// The same run with a reward that varies does move the weights (the test above can fail).
func TestVaryingRewardMovesWeights(t *testing.T) {
	cfg := storiesConfig(t)
	cfg.MaxSteps = 1
	res, _ := run(t, cfg)
	if res.LastMetrics["reward_std"] == 0 {
		t.Fatalf("no reward variance in %v", res.LastMetrics)
	}
	before, after := openModel(t, cfg.ModelNameOrPath), openModel(t, res.OutputDir)
	moved := 0
	for _, name := range before.Weights.Names() {
		a, b := before.Weights.Tensors[name].Data, after.Weights.Tensors[name].Data
		for i := range a {
			if a[i] != b[i] {
				moved++
			}
		}
	}
	if moved == 0 {
		t.Fatal("no weight moved")
	}
}

// β pulls the policy back to the reference. With a reward every completion earns, the advantages
// are 0 and the whole loss is β·KL (k3, averaged over the completion tokens as dapo does); its
// gradient points back to the reference: after one plain gradient step on a policy moved away from
// the reference, the KL of the same completions (num_iterations 2 reuses them) is smaller.
func TestBetaPullsPolicyToReference(t *testing.T) {
	cfg := storiesConfig(t)
	cfg.Beta, cfg.NumIterations = 2, 2
	cfg.RewardFuncs = []FuncSpec{{Name: FuncRegex, Pattern: `.*`}}
	task, err := newTask(context.Background(), cfg, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	// Move the policy (the reference is a copy of the initial weights, so it stays).
	for _, p := range task.Params() {
		for i := range p.Value {
			p.Value[i] += 0.02 * float32(math.Sin(float64(3*i+len(p.Name))))
		}
	}
	step := func(n int) (train.Metrics, [][]float32) {
		grads := make([][]float32, len(task.Params()))
		for i, p := range task.Params() {
			grads[i] = make([]float32, len(p.Value))
		}
		m, err := task.Step(context.Background(), train.Batch{Examples: []int{0, 1}, Step: n, Accum: 1, Seed: 42}, grads, 1)
		if err != nil {
			t.Fatal(err)
		}
		return m, grads
	}
	m0, grads := step(1)
	kl0 := m0.Values["kl"]
	if !(kl0 > 1e-3) {
		t.Fatalf("kl %g of a moved policy: want > 0", kl0)
	}
	near(t, "loss (β·kl)", m0.Loss, cfg.Beta*kl0, 1e-9*(1+m0.Loss))
	var norm float64
	for _, g := range grads {
		for _, v := range g {
			norm += float64(v) * float64(v)
		}
	}
	lr := float32(0.05 / math.Sqrt(norm)) // a step of length 0.05 along −gradient
	for i, p := range task.Params() {
		for j := range p.Value {
			p.Value[j] -= lr * grads[i][j]
		}
	}
	m1, _ := step(2)
	kl1 := m1.Values["kl"]
	t.Logf("kl %.5f before, %.5f after one gradient step", kl0, kl1)
	if !(kl1 < kl0) {
		t.Fatalf("kl %g -> %g: the KL term's gradient did not lead back to the reference", kl0, kl1)
	}
}

// meanReward samples g completions of the first n prompts with the model at path (fixed seed)
// and returns the mean of f's rewards.
func meanReward(t *testing.T, cfg Config, path string, f Func, n, g int) float64 {
	t.Helper()
	loc, err := rlhf.NewLocal(openModel(t, path), "")
	if err != nil {
		t.Fatal(err)
	}
	prompts, err := rlhf.LoadPrompts(cfg.DatasetName, cfg.Columns)
	if err != nil {
		t.Fatal(err)
	}
	var fit []rlhf.Prompt // the prompts training uses: those that leave room for the completion
	for _, p := range prompts {
		ids, err := loc.Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids)+cfg.MaxCompletionLength <= loc.MaxPositions() && len(fit) < n {
			fit = append(fit, p)
		}
	}
	comps, err := loc.Complete(context.Background(), fit, g, rlhf.Sampling{Temperature: 1, TopP: 1, MaxNewTokens: cfg.MaxCompletionLength, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	var cs []Completion
	for _, row := range comps {
		for _, c := range row {
			cs = append(cs, Completion{Text: c.Text, Tokens: len(c.IDs)})
		}
	}
	r, err := f.Rewards(context.Background(), cs)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, v := range r {
		sum += v
	}
	return sum / float64(len(r))
}

// A short GRPO run raises the reward it is trained on: the share of completions that end a
// sentence, measured on the same 16 prompts × 8 samples with the same seed before and after.
func TestGRPORaisesReward(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a minute")
	}
	cfg := storiesConfig(t)
	cfg.MaxSteps, cfg.PerDeviceTrainBatchSize, cfg.NumGenerations, cfg.MaxCompletionLength = 12, 32, 8, 16
	cfg.MaxTrainSamples = 0
	cfg.RewardFuncs = []FuncSpec{{Name: FuncRegex, Pattern: sentenceEnd}}
	res, _ := run(t, cfg)
	f, err := NewFunc(cfg.RewardFuncs[0], 0, cfg.MaxCompletionLength)
	if err != nil {
		t.Fatal(err)
	}
	before := meanReward(t, cfg, cfg.ModelNameOrPath, f, 16, 8)
	after := meanReward(t, cfg, res.OutputDir, f, 16, 8)
	t.Logf("share of completions ending a sentence: %.3f before, %.3f after %d steps", before, after, res.Steps)
	if !(after > before+0.1) {
		t.Fatalf("reward %.3f before, %.3f after: want a rise of more than 0.1", before, after)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"one generation", func(c *Config) { c.NumGenerations = 1 }, "num_generations 1: GRPO compares each completion with the others of its group, want >= 2"},
		{"batch not groups", func(c *Config) { c.PerDeviceTrainBatchSize = 6 }, "per_device_train_batch_size 6: counts completions and must be a multiple of num_generations 4"},
		{"no reward", func(c *Config) { c.RewardFuncs = nil }, "reward_funcs, reward_models: neither is set; GRPO needs at least one reward"},
		{"weights", func(c *Config) { c.RewardWeights = []float64{1, 2} }, "reward_weights: 2 weights for 1 rewards (reward_funcs, then one for reward_models)"},
		{"loss type", func(c *Config) { c.LossType = "ppo" }, `loss_type "ppo": want grpo, bnpo, dr_grpo or dapo`},
		{"temperature", func(c *Config) { z := 0.0; c.Temperature = &z }, "temperature 0: want > 0 (GRPO needs diverse samples within a group)"},
		{"iterations", func(c *Config) { c.NumIterations = -1 }, "num_iterations -1: want >= 1"},
		{"reward model role", func(c *Config) { c.RewardModels = []reward.ModelSpec{{Path: "x", Role: "honesty"}} }, `reward_models[0].role: unknown "honesty" (want helpfulness or safety)`},
		{"no dataset", func(c *Config) { c.DatasetName = "" }, "dataset_name: must be set (the prompts)"},
		{"backend", func(c *Config) { c.Rollouts.Backend = "vllm" }, `backend "vllm": want local or openai`},
		{"base_url with local", func(c *Config) { c.Rollouts.BaseURL = "http://x/v1" }, `base_url "http://x/v1": set, but backend is local (set backend: openai to sample the rollouts from that server)`},
		{"openai without base_url", func(c *Config) {
			t.Setenv("OPENAI_BASE_URL", "")
			c.Rollouts.Backend, c.Model.Lora.UsePEFT = rlhf.BackendOpenAI, true
		}, "base_url: must be set for backend openai (or OPENAI_BASE_URL), e.g. http://127.0.0.1:8000/v1"},
		{"concurrency", func(c *Config) { c.Rollouts.Concurrency = -2 }, "concurrency -2: want at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := storiesConfig(t)
			tc.edit(&cfg)
			_, err := Prepare(context.Background(), cfg)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}

// Two reward models need each prompt's safety flag: a dataset without the column fails before
// training, naming the file, the row and the column.
func TestSafetyColumnMissing(t *testing.T) {
	cfg := storiesConfig(t)
	rm, err := reward.FromCausalLM(testutil.Stories(t), 3)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "rm")
	if err := checkpoint.Save(dir, rm, hf.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg.RewardModels = []reward.ModelSpec{{Path: dir, Role: reward.RoleHelpfulness}, {Path: dir, Role: reward.RoleSafety}}
	_, err = Prepare(context.Background(), cfg)
	want := cfg.DatasetName + `: row 0: no "is_safety" column (which prompts are safety prompts; set safety_column)`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	// One reward model alone needs no flags, and its scores are a reward with variance.
	cfg.RewardModels = cfg.RewardModels[:1]
	cfg.RewardFuncs = nil
	cfg.MaxSteps = 1
	res, _ := run(t, cfg)
	if v, ok := res.LastMetrics["rewards/reward_model/mean"]; !ok || math.IsNaN(v) || res.LastMetrics["reward_std"] == 0 {
		t.Fatalf("metrics %v", res.LastMetrics)
	}
}

// A failing reward command stops training with its error, the dataset row named.
func TestCommandFailureStopsRun(t *testing.T) {
	cfg := storiesConfig(t)
	cfg.RewardFuncs = []FuncSpec{{Name: FuncCommand, Command: []string{"sh", "-c", "echo no scorer here >&2; exit 2"}}}
	_, err := Run(context.Background(), cfg, train.WithLogWriter(&bytes.Buffer{}))
	if err == nil || !strings.Contains(err.Error(), `reward_funcs[0] (command) "sh -c echo no scorer here >&2; exit 2": exit status 2: no scorer here`) {
		t.Fatalf("got %v", err)
	}
}

// num_iterations 2 takes two optimizer steps on each generation: steps 1 and 2 score the same
// completions (the same rewards), and on step 1 the sampling policy is the current one, so the
// ratios are 1 and the gradient is num_iterations 1's (up to the float32 rounding of the separate
// forward pass that computed the old log-probs). Step 2's ratios have moved.
func TestNumIterationsReusesGenerations(t *testing.T) {
	losses := map[int][]map[string]float64{}
	for _, mu := range []int{1, 2} {
		cfg := storiesConfig(t)
		cfg.NumIterations, cfg.MaxSteps, cfg.LossType = mu, 4, LossGRPO
		res, _ := run(t, cfg)
		losses[mu] = testutil.ReadMetrics(t, res.OutputDir)
	}
	one, two := losses[1], losses[2]
	if two[0]["reward"] != two[1]["reward"] || two[2]["reward"] != two[3]["reward"] {
		t.Fatalf("rewards %v %v %v %v: want steps 1-2 and 3-4 to share generations",
			two[0]["reward"], two[1]["reward"], two[2]["reward"], two[3]["reward"])
	}
	if one[0]["reward"] != two[0]["reward"] {
		t.Fatalf("step 1 rewards %v and %v: the same seed samples the same completions", one[0]["reward"], two[0]["reward"])
	}
	g1, g2 := one[0]["grad_norm"], two[0]["grad_norm"]
	t.Logf("step 1 grad_norm %.6g vs %.6g; step 2 loss %.3g, clip_ratio/region_mean %.3g", g1, g2, two[1]["loss"], two[1]["clip_ratio/region_mean"])
	if !(g1 > 0) || math.Abs(g1-g2) > 1e-4*g1 {
		t.Fatalf("step 1 grad_norm %v (num_iterations 1) and %v (2): want equal", g1, g2)
	}
	if two[1]["clip_ratio/region_mean"] == 0 && two[1]["loss"] == two[0]["loss"] {
		t.Fatalf("step 2 metrics %v: the policy did not move from the sampling policy", two[1])
	}
}

// Two reward models are combined as Llama 2 does (reward.Combine: the safety score on safety
// prompts, whitened over the batch): a run on prompts with an is_safety column trains, and the
// combined reward is whitened (mean 0 over each micro-batch's completions).
func TestTwoRewardModels(t *testing.T) {
	cfg := storiesConfig(t)
	var rms []reward.ModelSpec
	for i, role := range []string{reward.RoleHelpfulness, reward.RoleSafety} {
		rm, err := reward.FromCausalLM(testutil.Stories(t), uint64(5+i))
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), role)
		if err := checkpoint.Save(dir, rm, hf.SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		rms = append(rms, reward.ModelSpec{Path: dir, Role: role})
	}
	data := filepath.Join(t.TempDir(), "prompts.jsonl")
	var b strings.Builder
	for i, p := range []string{"Once upon a time", "The cat sat", "Tom wanted to", "Lily had a red ball"} {
		fmt.Fprintf(&b, "{\"prompt\": %q, \"is_safety\": %v}\n", p, i%2 == 1)
	}
	if err := os.WriteFile(data, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.DatasetName, cfg.RewardModels, cfg.RewardFuncs, cfg.MaxSteps = data, rms, nil, 2
	res, _ := run(t, cfg)
	for _, m := range testutil.ReadMetrics(t, res.OutputDir) {
		near(t, "combined reward mean", m["rewards/reward_model/mean"], 0, 1e-9)
		if !(m["reward_std"] > 0) {
			t.Fatalf("metrics %v: no reward variance", m)
		}
	}
}
