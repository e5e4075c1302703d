package ppo

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/dist"
	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/rlhf"
	"github.com/alignkit/alignkit/serve/servetest"
	"github.com/alignkit/alignkit/train"
)

// servedConfig is storiesConfig with a LoRA policy whose rollouts come from srv.
func servedConfig(t *testing.T, srv *servetest.Server) TrainConfig {
	c := storiesConfig(t)
	c.Model.Lora.UsePEFT = true
	c.Rollouts = rlhf.BackendConfig{Backend: rlhf.BackendOpenAI, BaseURL: srv.URL}
	return c
}

// With backend openai each update's rollouts come from alignkit serve holding the policy as it is
// at the update's first step: two updates of num_ppo_epochs 2 load two adapters (steps 1 and 3),
// the second trained, and every metric is finite.
func TestPPOServedRolloutsFollowThePolicy(t *testing.T) {
	srv := servetest.Start(t, testutil.Stories(t), true)
	c := servedConfig(t, srv)
	c.MaxSteps, c.NumPPOEpochs = 4, 2
	res, log := run(t, c)
	loads := srv.Loads()
	var names []string
	for _, l := range loads {
		names = append(names, l.Name)
	}
	if want := []string{"alignkit-policy-step-1", "alignkit-policy-step-3"}; !slices.Equal(names, want) {
		t.Fatalf("loads %q, want %q\n%s", names, want, log)
	}
	if loads[0].Hash == loads[1].Hash {
		t.Error("the second update's adapter is the first's")
	}
	if got := srv.Unloads(); !slices.Equal(got, names) {
		t.Errorf("unloads %q, want %q (the last one when the run ends)", got, names)
	}
	if err := testutil.FiniteMetrics(testutil.ReadMetrics(t, res.OutputDir), trlMetrics...); err != nil {
		t.Error(err)
	}
}

// An update's served rollouts equal the local engine's for the same policy and seed (alignkit
// serve seeds its choices as rlhf.Local does, and the texts re-tokenize to the sampled ids), at
// PPO's temperature.
func TestPPOServedRolloutsEqualLocal(t *testing.T) {
	srv := servetest.Start(t, testutil.Stories(t), true)
	ctx := context.Background()
	served := servedConfig(t, srv)
	served.Temperature = 0.7
	local := served
	local.Rollouts = rlhf.BackendConfig{}
	b := train.Batch{Examples: []int{5, 1, 2, 9}, Step: 1, Seed: 7}
	var ros [2]*rollout
	for i, cfg := range []TrainConfig{local, served} {
		task, err := newTask(ctx, cfg, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if ros[i], err = task.sample(ctx, b, 1); err != nil {
			t.Fatal(err)
		}
	}
	l, s := ros[0], ros[1]
	if !slices.Equal(l.lens, s.lens) || !slices.Equal(l.batch.Tokens, s.batch.Tokens) || fmt.Sprint(l.adv) != fmt.Sprint(s.adv) {
		t.Errorf("served rollout differs from the local one:\nlens %v vs %v\ntokens %v\nvs     %v", l.lens, s.lens, l.batch.Tokens, s.batch.Tokens)
	}
	if fmt.Sprint(l.values) != fmt.Sprint(s.values) {
		t.Errorf("metrics %v vs %v", l.values, s.values)
	}
}

// Full fine-tune with backend openai: refused at validation. A server without runtime LoRA
// updating: one line naming the endpoint. Two ranks: refused.
func TestPPOServedRolloutsErrors(t *testing.T) {
	srv := servetest.Start(t, testutil.Stories(t), false)
	c := servedConfig(t, srv)
	full := c
	full.Model.Lora.UsePEFT = false
	const wantFull = "backend openai: the policy must train a LoRA adapter (use_peft: true or adapter_name_or_path): the server follows the policy by loading its adapter after each update, and the OpenAI API cannot replace a full fine-tune's weights"
	if err := full.Validate(); err == nil || err.Error() != wantFull {
		t.Errorf("full fine-tune: %v\nwant %s", err, wantFull)
	}
	_, err := Run(context.Background(), c, train.WithLogWriter(&bytes.Buffer{}))
	wantOff := "ppo: loading the policy's adapter: openai backend: POST " + srv.URL + "/load_lora_adapter: the server answered 404: runtime LoRA updating is off: start alignkit serve with --allow-runtime-lora to use /v1/load_lora_adapter and /v1/unload_lora_adapter: the server cannot load LoRA adapters at runtime: start vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora, or alignkit serve with --allow-runtime-lora"
	if err == nil || !strings.HasSuffix(err.Error(), wantOff) || strings.Contains(err.Error(), "\n") {
		t.Errorf("server without runtime LoRA: %v\nwant ...%s", err, wantOff)
	}
	_, err = Prepare(context.Background(), c, train.WithComm(dist.Local(2)[0]))
	const wantRanks = "backend openai: 2 ranks: rollouts from a server run on one rank only (each rank would load its own adapter into the one server); run without mpirun, or use backend local"
	if err == nil || err.Error() != wantRanks {
		t.Errorf("two ranks: %v\nwant %s", err, wantRanks)
	}
}
