package grpo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/dist"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/model/lora"
	"github.com/alignkit/alignkit/rlhf"
	"github.com/alignkit/alignkit/serve/servetest"
	"github.com/alignkit/alignkit/train"
)

// servedConfig is storiesConfig with a LoRA policy whose rollouts come from srv.
func servedConfig(t *testing.T, srv *servetest.Server) Config {
	cfg := storiesConfig(t)
	r := 4
	cfg.Model.Lora = lora.Config{UsePEFT: true, LoraR: &r, LoraTargetModules: lora.AllLinear}
	cfg.Rollouts = rlhf.BackendConfig{Backend: rlhf.BackendOpenAI, BaseURL: srv.URL}
	return cfg
}

// With backend openai each optimizer step's rollouts come from alignkit serve holding the policy
// as it is: a new adapter is loaded per step (the step-1 one is the initial adapter, the step-2
// one has trained), the previous one unloaded (the last when the run ends) and the snapshots
// removed, the run's metrics are finite, and run_config.json records no API key.
func TestServedRolloutsFollowThePolicy(t *testing.T) {
	srv := servetest.Start(t, testutil.Stories(t), true)
	cfg := servedConfig(t, srv)
	cfg.MaxSteps = 3
	cfg.Rollouts.APIKey = "sk-never-saved" // alignkit serve without a key ignores it
	res, log := run(t, cfg)
	if b, err := os.ReadFile(filepath.Join(res.OutputDir, "run_config.json")); err != nil || bytes.Contains(b, []byte("sk-never-saved")) || !bytes.Contains(b, []byte(`"backend": "openai"`)) {
		t.Errorf("run_config.json (%v): want backend openai recorded, the API key not:\n%s", err, b)
	}
	loads := srv.Loads()
	var names []string
	for _, l := range loads {
		names = append(names, l.Name)
	}
	if want := []string{"alignkit-policy-step-1", "alignkit-policy-step-2", "alignkit-policy-step-3"}; !slices.Equal(names, want) {
		t.Fatalf("loads %q, want %q\n%s", names, want, log)
	}
	if got := srv.Unloads(); !slices.Equal(got, names) {
		t.Errorf("unloads %q, want %q (the last one when the run ends)", got, names)
	}
	if loads[0].Hash == loads[1].Hash || loads[1].Hash == loads[2].Hash {
		t.Errorf("the loaded adapters did not change between updates: %v", loads)
	}
	if _, err := os.Stat(filepath.Join(cfg.OutputDir, rlhf.RolloutAdapterDir)); !os.IsNotExist(err) {
		t.Errorf("%s is left in output_dir (%v)", rlhf.RolloutAdapterDir, err)
	}
	if err := testutil.FiniteMetrics(testutil.ReadMetrics(t, res.OutputDir), "loss", "reward", "grad_norm", "completions/mean_length"); err != nil {
		t.Error(err)
	}
}

// The served rollouts of a step equal the local engine's for the same policy and seed: alignkit
// serve draws choice j of prompt i with seed Seed + i·K + j as rlhf.Local does, so the texts are
// the same at temperature 1, and tokenizing them again gives the ids the engine sampled.
func TestServedRolloutsEqualLocal(t *testing.T) {
	srv := servetest.Start(t, testutil.Stories(t), true)
	ctx := context.Background()
	served := servedConfig(t, srv)
	local := served
	local.Rollouts = rlhf.BackendConfig{}
	b := train.Batch{Examples: []int{3, 0}, Step: 1, Seed: 42}
	var ros [2]*rollout
	for i, cfg := range []Config{local, served} {
		task, err := newTask(ctx, cfg, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if ros[i], err = task.sample(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if len(srv.Loads()) != 1 {
		t.Fatalf("%d loads, want 1", len(srv.Loads()))
	}
	l, s := ros[0], ros[1]
	if !slices.Equal(l.lens, s.lens) || !slices.Equal(l.batch.Tokens, s.batch.Tokens) || !slices.Equal(l.adv, s.adv) {
		t.Errorf("served rollout differs from the local one:\nlens %v vs %v\ntokens %v\nvs     %v", l.lens, s.lens, l.batch.Tokens, s.batch.Tokens)
	}
	if fmt.Sprint(l.values) != fmt.Sprint(s.values) {
		t.Errorf("metrics %v vs %v", l.values, s.values)
	}
}

// A full fine-tune with backend openai is refused at validation; a server without runtime LoRA
// updating is named with the endpoint and how to turn it on; more than one rank is refused.
func TestServedRolloutsErrors(t *testing.T) {
	srv := servetest.Start(t, testutil.Stories(t), false)
	cfg := servedConfig(t, srv)
	full := cfg
	full.Model.Lora = lora.Config{}
	const wantFull = "backend openai: the policy must train a LoRA adapter (use_peft: true or adapter_name_or_path): the server follows the policy by loading its adapter after each update, and the OpenAI API cannot replace a full fine-tune's weights"
	if err := full.Validate(); err == nil || err.Error() != wantFull {
		t.Errorf("full fine-tune: %v\nwant %s", err, wantFull)
	}
	_, err := Run(context.Background(), cfg, train.WithLogWriter(&bytes.Buffer{}))
	wantOff := "grpo: loading the policy's adapter: openai backend: POST " + srv.URL + "/load_lora_adapter: the server answered 404: runtime LoRA updating is off: start alignkit serve with --allow-runtime-lora to use /v1/load_lora_adapter and /v1/unload_lora_adapter: the server cannot load LoRA adapters at runtime: start vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora, or alignkit serve with --allow-runtime-lora"
	if err == nil || !strings.HasSuffix(err.Error(), wantOff) || strings.Contains(err.Error(), "\n") {
		t.Errorf("server without runtime LoRA: %v\nwant ...%s", err, wantOff)
	}
	comms := dist.Local(2)
	_, err = Prepare(context.Background(), cfg, train.WithComm(comms[0]))
	const wantRanks = "backend openai: 2 ranks: rollouts from a server run on one rank only (each rank would load its own adapter into the one server); run without mpirun, or use backend local"
	if err == nil || err.Error() != wantRanks {
		t.Errorf("two ranks: %v\nwant %s", err, wantRanks)
	}
}
