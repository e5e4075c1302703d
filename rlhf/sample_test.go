package rlhf_test

import (
	"context"
	"encoding/json"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/reward"
	"github.com/alignkit/alignkit/rlhf"
	"github.com/alignkit/alignkit/train"
)

var (
	rewardOnce sync.Once
	rewardDir  string
	rewardErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if rewardDir != "" {
		os.RemoveAll(filepath.Dir(rewardDir))
	}
	os.Exit(code)
}

// trainedReward is a reward model trained in the test: stories260K's trunk with a fresh score head
// (reward.FromCausalLM inside reward.Run), 6 steps of Bradley–Terry training on hh-rlhf pairs
// rendered with chatml. It is trained once per test binary.
func trainedReward(t *testing.T) string {
	t.Helper()
	shared := sharedDir(t)
	rewardOnce.Do(func() {
		tmp, err := os.MkdirTemp("", "rlhf-reward-")
		if err != nil {
			rewardErr = err
			return
		}
		cfg := reward.DefaultConfig()
		cfg.ModelNameOrPath = filepath.Join(shared, "models", "stories260K")
		cfg.Data.DatasetName = filepath.Join(shared, "data", "hh_rlhf_harmless_base_test.parquet")
		cfg.Data.ChatTemplate = "chatml"
		cfg.Data.MaxLength = 96
		cfg.Data.MaxTrainSamples = 24
		cfg.OutputDir = filepath.Join(tmp, "reward")
		cfg.MaxSteps = 6
		cfg.PerDeviceTrainBatchSize = 4
		cfg.LearningRate = 1e-3
		cfg.LoggingSteps = 3
		no := false
		cfg.ReportPlots = &no
		if _, rewardErr = reward.Run(context.Background(), cfg, train.WithLogWriter(io.Discard), train.WithProgressBar(false)); rewardErr == nil {
			rewardDir = cfg.OutputDir
		}
	})
	if rewardErr != nil {
		t.Fatal(rewardErr)
	}
	return rewardDir
}

// sampleConfig samples 3 no_robots prompts (their prompt strings) with stories260K.
func sampleConfig(t *testing.T) rlhf.SampleConfig {
	shared := sharedDir(t)
	cfg := rlhf.DefaultSampleConfig()
	cfg.ModelNameOrPath = filepath.Join(shared, "models", "stories260K")
	cfg.RewardModelNameOrPath = trainedReward(t)
	cfg.Data.DatasetName = filepath.Join(shared, "data", "no_robots_test_sft.parquet")
	cfg.Data.MaxTrainSamples = 3
	cfg.OutputDir = filepath.Join(t.TempDir(), "samples")
	cfg.NumSamplesPerPrompt = 4
	cfg.MaxNewTokens = 12
	cfg.TopK = 50
	cfg.Seed = 7
	return cfg
}

// A temperature sweep samples K per prompt at each temperature, scores every sample with the reward
// model, and writes samples/best/pairs Parquet files, the reward-vs-K curves and the marker; each
// file is checked against an independent recomputation.
func TestRunSampleSweep(t *testing.T) {
	cfg := sampleConfig(t)
	cfg.Temperatures = []float64{0.7, 1.3}
	cfg.WritePairs = true
	res, err := rlhf.RunSample(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	const P, K = 3, 4
	rows, err := data.ReadParquet(filepath.Join(cfg.OutputDir, rlhf.SamplesFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2*P {
		t.Fatalf("%d sample rows, want %d", len(rows), 2*P)
	}
	// The samples are the local engine's with seeds Seed + i·K + j (the same at each temperature);
	// the rewards are the reward model's for each (prompt, completion).
	gen, err := rlhf.NewLocal(testutil.Stories(t), "")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := reward.NewScorer(cfg.RewardModelNameOrPath)
	if err != nil {
		t.Fatal(err)
	}
	prompts, err := rlhf.LoadPrompts(cfg.Data.DatasetName, nil)
	if err != nil {
		t.Fatal(err)
	}
	prompts = prompts[:P]
	for ti, temp := range cfg.Temperatures {
		want, err := gen.Generate(context.Background(), prompts, K, rlhf.Sampling{Temperature: temp, TopP: 1, TopK: 50, MaxNewTokens: 12, Seed: 7})
		if err != nil {
			t.Fatal(err)
		}
		for i := range P {
			f := rows[ti*P+i].Fields
			comps, rews := anyStrings(f["completions"]), anyFloats(f["rewards"])
			if f["prompt"] != prompts[i].Text || f["temperature"] != temp || !reflect.DeepEqual(comps, want[i]) {
				t.Errorf("row %d: prompt %q T %v completions %q, want %q", ti*P+i, f["prompt"], f["temperature"], comps, want[i])
			}
			again, err := sc.ScoreText(context.Background(), []string{prompts[i].Text, prompts[i].Text, prompts[i].Text, prompts[i].Text}, comps)
			if err != nil {
				t.Fatal(err)
			}
			best := 0
			for j := range K {
				if math.Abs(again[j]-rews[j]) > 1e-9 {
					t.Errorf("row %d sample %d: reward %v, rescored %v", ti*P+i, j, rews[j], again[j])
				}
				if rews[j] > rews[best] {
					best = j
				}
			}
			if f["best_index"] != int64(best) || f["best_reward"] != rews[best] {
				t.Errorf("row %d: best %v (%v), want %d (%v)", ti*P+i, f["best_index"], f["best_reward"], best, rews[best])
			}
		}
	}

	// reward_vs_k.json: one curve per temperature, RewardVsK of that temperature's rewards.
	raw, err := os.ReadFile(filepath.Join(cfg.OutputDir, rlhf.CurvesFile))
	if err != nil {
		t.Fatal(err)
	}
	var curves []rlhf.Curve
	if err := json.Unmarshal(raw, &curves); err != nil {
		t.Fatal(err)
	}
	for ti, c := range curves {
		var rs [][]float64
		for i := range P {
			rs = append(rs, anyFloats(rows[ti*P+i].Fields["rewards"]))
		}
		mx, med, _ := rlhf.RewardVsK(rs)
		if c.Temperature != cfg.Temperatures[ti] || !reflect.DeepEqual(c.N, []int{1, 2, 3, 4}) || !reflect.DeepEqual(c.ExpectedMax, mx) || !reflect.DeepEqual(c.Median, med) {
			t.Errorf("curve %d: %+v, want max %v median %v", ti, c, mx, med)
		}
	}
	f, err := os.Open(filepath.Join(cfg.OutputDir, rlhf.CurvesPlot))
	if err != nil {
		t.Fatal(err)
	}
	if pc, err := png.DecodeConfig(f); err != nil || pc.Width < 300 {
		t.Errorf("reward_vs_k.png: %v %+v", err, pc)
	}
	f.Close()

	// best.parquet is an SFT file (prompt/completion) holding each prompt's best sample over both
	// temperatures; pairs.parquet pairs it with the worst.
	ds, err := data.Load(data.Source{Path: filepath.Join(cfg.OutputDir, rlhf.BestFile)})
	if err != nil {
		t.Fatal(err)
	}
	pairs, err := data.Load(data.Source{Path: filepath.Join(cfg.OutputDir, rlhf.PairsFile)})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Format != data.FormatPromptCompletion || ds.Len() != P || pairs.Format != data.FormatPreference {
		t.Fatalf("best.parquet %s with %d rows, pairs.parquet %s", ds.Format, ds.Len(), pairs.Format)
	}
	for i := range P {
		all := append(anyFloats(rows[i].Fields["rewards"]), anyFloats(rows[P+i].Fields["rewards"])...)
		texts := append(anyStrings(rows[i].Fields["completions"]), anyStrings(rows[P+i].Fields["completions"])...)
		b, w := rlhf.Best(all), 0
		for j := range all {
			if all[j] < all[w] {
				w = j
			}
		}
		if r := ds.Records[i]; r.Prompt != prompts[i].Text || r.Completion != texts[b] {
			t.Errorf("best row %d: %q, want %q", i, r.Completion, texts[b])
		}
		if p := pairs.Pairs[i]; p.Chosen != texts[b] || p.Rejected != texts[w] || p.ScoreChosen != all[b] || p.ScoreRejected != all[w] {
			t.Errorf("pair %d: %+v, want chosen %q rejected %q", i, p, texts[b], texts[w])
		}
	}
	if len(res.Files) != 6 || !rlhf.SamplesComplete(cfg.OutputDir) {
		t.Errorf("files %v", res.Files)
	}
}

// Conversational prompts (alpaca instructions as user turns) with chatml: best.parquet holds
// messages = prompt + the best answer, and the samples equal the openai backend's answers from an
// alignkit server with the same template.
func TestRunSampleConversational(t *testing.T) {
	cfg := sampleConfig(t)
	cfg.Data.DatasetName = filepath.Join(sharedDir(t), "data", "alpaca_en_demo.parquet")
	cfg.Data.ChatTemplate = "chatml"
	cfg.NumSamplesPerPrompt = 2
	res, err := rlhf.RunSample(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := data.Load(data.Source{Path: filepath.Join(cfg.OutputDir, rlhf.BestFile)})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range ds.Records {
		text, _ := res.Best(i)
		want := []chat.Message{{Role: "user", Content: res.Prompts[i].Messages[0].Content}, {Role: "assistant", Content: text}}
		if ds.Format != data.FormatConversation || !reflect.DeepEqual(r.Messages, want) {
			t.Errorf("best row %d: %+v, want %+v", i, r.Messages, want)
		}
	}
	var curve rlhf.Curve // one temperature: one object, not a list
	raw, _ := os.ReadFile(filepath.Join(cfg.OutputDir, rlhf.CurvesFile))
	if err := json.Unmarshal(raw, &curve); err != nil || curve.Temperature != 1 || len(curve.ExpectedMax) != 2 {
		t.Errorf("reward_vs_k.json %s: %v", raw, err)
	}
	if _, err := os.Stat(filepath.Join(cfg.OutputDir, rlhf.PairsFile)); !os.IsNotExist(err) {
		t.Errorf("pairs.parquet written without write_pairs: %v", err)
	}

	base, _, _ := newServe(t, "chatml", nil)
	cfg.Backend, cfg.BaseURL = rlhf.BackendOpenAI, base+"/v1"
	cfg.ModelNameOrPath = ""
	cfg.OutputDir = filepath.Join(t.TempDir(), "openai")
	viaServer, err := rlhf.RunSample(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(viaServer.Completions, res.Completions) || !reflect.DeepEqual(viaServer.Rewards, res.Rewards) {
		t.Errorf("openai backend %q, local %q", viaServer.Completions, res.Completions)
	}
}

// Bad input gets one clear error and nothing is written.
func TestRunSampleErrors(t *testing.T) {
	t.Setenv("OPENAI_BASE_URL", "") // base_url's fallback, which the openai case needs unset
	dir := t.TempDir()
	noColumn := filepath.Join(dir, "prompts.jsonl")
	if err := os.WriteFile(noColumn, []byte(`{"question": "why?", "id": 1}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	cases := []struct {
		name string
		edit func(*rlhf.SampleConfig)
		want string
	}{
		{"no usable column", func(c *rlhf.SampleConfig) { c.Data.DatasetName = noColumn },
			noColumn + ": no prompt column: want prompt, messages, instruction or chosen+rejected, the file has [id question] (map yours with columns:)"},
		{"K < 1", func(c *rlhf.SampleConfig) { c.NumSamplesPerPrompt = 0 },
			"num_samples_per_prompt 0: want K >= 1 completions per prompt"},
		{"unreachable endpoint", func(c *rlhf.SampleConfig) {
			none := 0
			c.Backend, c.BaseURL, c.MaxRetries = rlhf.BackendOpenAI, "http://"+addr+"/v1", &none
		}, "openai backend: GET http://" + addr + "/v1/models: cannot reach the server: connection refused (after 1 attempt)"},
		{"unknown prompt column mapping", func(c *rlhf.SampleConfig) { c.Data.Columns = map[string]string{"text": "question"} },
			c0(t) + `: columns: "text" is not a prompt column (want one of prompt, messages, instruction, input, output, completion, chosen, rejected)`},
		{"conversations without a template", func(c *rlhf.SampleConfig) {
			c.Data.DatasetName = filepath.Join(sharedDir(t), "data", "alpaca_en_demo.parquet")
		}, filepath.Join(sharedDir(t), "data", "alpaca_en_demo.parquet") + ": row 0: a conversational prompt needs a chat template: chat template: the tokenizer has no chat_template; set chat_template to one of chatml, llama-2, llama-3, mistral, zephyr or to a Jinja template"},
		{"bad backend", func(c *rlhf.SampleConfig) { c.Backend = "vllm" }, `backend "vllm": want local or openai`},
		{"negative temperature", func(c *rlhf.SampleConfig) { c.Temperatures = []float64{1, -0.5} }, "temperature -0.5: want >= 0"},
		{"no reward model", func(c *rlhf.SampleConfig) { c.RewardModelNameOrPath = "" },
			"reward_model_name_or_path: must be set (the reward model that scores the samples)"},
		{"no output_dir", func(c *rlhf.SampleConfig) { c.OutputDir = "" }, "output_dir: must be set"},
		{"local without policy", func(c *rlhf.SampleConfig) { c.ModelNameOrPath = "" },
			"model_name_or_path: must be set for the local backend (the policy to sample from)"},
		{"openai without url", func(c *rlhf.SampleConfig) { c.Backend = rlhf.BackendOpenAI },
			"base_url: must be set for the openai backend (or OPENAI_BASE_URL), e.g. http://127.0.0.1:8080/v1"},
		{"concurrency", func(c *rlhf.SampleConfig) { c.Concurrency = 0 }, "concurrency 0: want at least 1"},
		{"max_retries", func(c *rlhf.SampleConfig) { n := -1; c.MaxRetries = &n }, "max_retries -1: want >= 0"},
		{"request_timeout", func(c *rlhf.SampleConfig) { c.RequestTimeout = 0 }, "request_timeout 0s: want a positive duration such as 60s"},
		{"top_p", func(c *rlhf.SampleConfig) { c.TopP = 1.5 }, "top_p 1.5: want a value in [0, 1]"},
		{"top_k", func(c *rlhf.SampleConfig) { c.TopK = -1 }, "top_k -1: want >= 0 (0 disables it)"},
		{"max_new_tokens", func(c *rlhf.SampleConfig) { c.MaxNewTokens = 0 }, "max_new_tokens 0: want at least 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sampleConfig(t)
			tc.edit(&cfg)
			_, err := rlhf.RunSample(context.Background(), cfg, io.Discard)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v\nwant  %s", err, tc.want)
			}
			if _, err := os.Stat(cfg.OutputDir); !os.IsNotExist(err) {
				t.Errorf("output_dir was created: %v", err)
			}
		})
	}
}

// c0 is the default prompt file of sampleConfig.
func c0(t *testing.T) string {
	return filepath.Join(sharedDir(t), "data", "no_robots_test_sft.parquet")
}

func anyStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func anyFloats(v any) []float64 {
	var out []float64
	for _, x := range v.([]any) {
		out = append(out, x.(float64))
	}
	return out
}
