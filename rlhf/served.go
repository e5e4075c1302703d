package rlhf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/train"
)

// Runtime LoRA routes of vLLM's OpenAI server, on when it runs with
// VLLM_ALLOW_RUNTIME_LORA_UPDATING=True (vllm/entrypoints/openai/api_server.py registers
// @router.post("/v1/load_lora_adapter") and @router.post("/v1/unload_lora_adapter"); their bodies
// are LoadLoRAAdapterRequest{lora_name: str, lora_path: str} and
// UnloadLoRAAdapterRequest{lora_name: str, lora_int_id: int | None} of
// vllm/entrypoints/openai/protocol.py, answered by OpenAIServingModels.load_lora_adapter and
// unload_lora_adapter of serving_models.py with 200 and a plain-text line). `alignkit serve
// --allow-runtime-lora` answers the same routes.
const (
	loadLoRAPath   = "load_lora_adapter"
	unloadLoRAPath = "unload_lora_adapter"
)

// LoadLoRA asks the server to load the PEFT adapter directory dir (a path on the server's file
// system) under name; requests with model = name then sample with it. A server without the route
// (404) gets one line naming it and saying how to turn it on.
func (o *OpenAI) LoadLoRA(ctx context.Context, name, dir string) error {
	return o.loraCall(ctx, loadLoRAPath, map[string]any{"lora_name": name, "lora_path": dir})
}

// UnloadLoRA asks the server to drop the adapter loaded under name.
func (o *OpenAI) UnloadLoRA(ctx context.Context, name string) error {
	return o.loraCall(ctx, unloadLoRAPath, map[string]any{"lora_name": name})
}

func (o *OpenAI) loraCall(ctx context.Context, path string, body map[string]any) error {
	err := o.retry(ctx, "POST", "/"+path, func(ctx context.Context) error {
		var res *http.Response
		if err := o.client.Post(ctx, path, body, &res); err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
		return res.Body.Close()
	})
	var se *statusError
	if errors.As(err, &se) && (se.status == http.StatusNotFound || se.status == http.StatusMethodNotAllowed) {
		return fmt.Errorf("%v: the server cannot load LoRA adapters at runtime: start vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora, or alignkit serve with --allow-runtime-lora", err)
	}
	return err
}

// ServedPolicy samples an on-policy trainer's rollouts from an OpenAI-compatible server that
// follows the policy: before a rollout whose policy has changed since the last load, Sync saves
// the current LoRA adapter (PEFT layout, the writer of the trainer's checkpoints) atomically into
// Dir/step-N, loads it with POST /v1/load_lora_adapter under a fresh name alignkit-policy-step-N,
// unloads the previous name and removes the previous directory. Completions are requested with
// model = that name. Close unloads the last one.
//
// The server must serve the same base as the trainer's model_name_or_path (same weights, same
// tokenizer), and read Dir at the same path (one machine, or a shared file system): only the
// adapter travels. A full fine-tune cannot be followed this way, since the OpenAI API has no
// route to replace a model's weights.
//
// The server returns text, not token ids: each completion is tokenized again with the policy's
// tokenizer (Local.CompletionIDs: in context after the prompt, message text never turned into
// special tokens), and the EOS id is appended when finish_reason is "stop". TRL's vLLM server
// mode gets the sampled token ids instead. Here the ids trained on are the canonical tokenization
// of the sampled text, which can differ from the ids the server sampled (a word the model spelled
// in two pieces is re-read as one), so the rollout's log-probs are the policy's for those ids, not
// exactly for the server's draw; with several EOS ids the first stands in for whichever ended the
// completion. A completion whose tokens (with its EOS) exceed max_new_tokens is cut there and
// counted as "length".
//
// A ServedPolicy is driven by one goroutine (the training loop's): Sync and Complete are not safe
// for concurrent use.
type ServedPolicy struct {
	api   *OpenAI
	local *Local
	dir   string
	save  func(dir string) error
	log   io.Writer

	step   int    // the step whose policy is loaded (0: none yet)
	name   string // its name on the server
	loaded string // its directory
	nLoads int
}

// ServedPolicyConfig configures NewServedPolicy.
type ServedPolicyConfig struct {
	// Backend holds the server's keys (base_url, api_key, timeouts, ...); backend must be openai.
	Backend BackendConfig
	// Dir is where adapter snapshots are written, e.g. output_dir/rollout_adapter.
	Dir string
	// Save writes the policy's current adapter as a PEFT directory (lm.Model.Save).
	Save func(dir string) error
	// Local encodes prompts and tokenizes completions with the policy's tokenizer and template.
	Local *Local
	// Log receives one line per load (nil: none).
	Log io.Writer
}

// NewServedPolicy checks that the server answers (GET /models) and returns a ServedPolicy that
// has loaded nothing yet.
func NewServedPolicy(ctx context.Context, cfg ServedPolicyConfig) (*ServedPolicy, error) {
	if cfg.Save == nil || cfg.Local == nil || cfg.Dir == "" {
		return nil, errors.New("rlhf: NewServedPolicy: Save, Local and Dir must be set")
	}
	log := cfg.Log
	if log == nil {
		log = io.Discard
	}
	// The server resolves lora_path itself: a relative output_dir would name a directory under
	// the server's working directory.
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("rollout adapter directory %s: %w", cfg.Dir, err)
	}
	api, err := cfg.Backend.NewOpenAI(ctx, log)
	if err != nil {
		return nil, err
	}
	return &ServedPolicy{api: api, local: cfg.Local, dir: dir, save: cfg.Save, log: log}, nil
}

// Loads is how many adapters have been loaded so far.
func (p *ServedPolicy) Loads() int { return p.nLoads }

// Model is the name the current policy is loaded under ("" before the first Sync).
func (p *ServedPolicy) Model() string { return p.name }

// Sync makes the server hold the policy as it is before optimizer step `step` (1-based): a no-op
// when that step's policy is loaded already (the trainer's micro-batches of one step, or the
// reused rollouts of num_iterations, share it).
func (p *ServedPolicy) Sync(ctx context.Context, step int) error {
	if step == p.step && p.name != "" {
		return nil
	}
	name := "alignkit-policy-step-" + strconv.Itoa(step)
	dir := filepath.Join(p.dir, fmt.Sprintf("step-%d", step))
	if err := p.writeAdapter(dir); err != nil {
		return err
	}
	err := p.api.LoadLoRA(ctx, name, dir)
	if isAlreadyLoaded(err) {
		// A run resumed at a step its predecessor had loaded: that adapter is stale, replace it.
		fmt.Fprintf(p.log, "rollouts: the server holds %s from an earlier run: replacing it\n", name)
		if err = p.api.UnloadLoRA(ctx, name); err == nil {
			err = p.api.LoadLoRA(ctx, name, dir)
		}
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return fmt.Errorf("loading the policy's adapter: %w", err)
	}
	prevName, prevDir := p.name, p.loaded
	p.step, p.name, p.loaded = step, name, dir
	p.nLoads++
	fmt.Fprintf(p.log, "rollouts: step %d: the server holds the policy as %s (%s)\n", step, name, dir)
	if prevName != "" && prevName != name {
		if err := p.api.UnloadLoRA(ctx, prevName); err != nil {
			return fmt.Errorf("unloading the previous policy: %w", err)
		}
	}
	if prevDir != "" && prevDir != dir {
		if err := os.RemoveAll(prevDir); err != nil {
			return fmt.Errorf("removing the previous policy's adapter: %w", err)
		}
	}
	return nil
}

// isAlreadyLoaded recognises a server's 400 for a name in use: vLLM's "The lora adapter 'NAME' has
// already been loaded." (serving_models.py), alignkit serve's "a model of that name is already
// loaded".
func isAlreadyLoaded(err error) bool {
	var se *statusError
	return errors.As(err, &se) && se.status == http.StatusBadRequest && strings.Contains(se.message, "already") && strings.Contains(se.message, "loaded")
}

// writeAdapter saves the adapter into a temporary sibling of dir and renames it into place, so
// that the server never reads a half-written adapter.
func (p *ServedPolicy) writeAdapter(dir string) error {
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return fmt.Errorf("rollout adapter: %w", err)
	}
	tmp, err := os.MkdirTemp(p.dir, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("rollout adapter: %w", err)
	}
	if err := p.save(tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("rollout adapter %s: %w", dir, err)
	}
	if err := os.RemoveAll(dir); err != nil { // left by an earlier, interrupted run
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("rollout adapter: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("rollout adapter: %w", err)
	}
	return nil
}

// Close unloads the last adapter and removes its directory, and Dir when that leaves it empty. Its
// error says it is about the rollouts' server.
func (p *ServedPolicy) Close(ctx context.Context) error {
	if p.name == "" {
		return nil
	}
	err := p.api.UnloadLoRA(ctx, p.name)
	if rerr := os.RemoveAll(p.loaded); err == nil {
		err = rerr
	}
	_ = os.Remove(p.dir) // only if empty
	p.name, p.loaded, p.step = "", "", 0
	if err != nil {
		return fmt.Errorf("rollouts: %w", err)
	}
	return nil
}

// Complete samples k completions of every prompt from the loaded policy (Sync first), with the
// sampling parameters sent as rlhf sample sends them (temperature, top_p, top_k, max_tokens, and
// seed Seed + i·K per prompt), and tokenizes them as the type's comment says.
func (p *ServedPolicy) Complete(ctx context.Context, prompts []Prompt, k int, s Sampling) ([][]Completion, error) {
	if p.name == "" {
		return nil, errors.New("rlhf: ServedPolicy.Complete before Sync: the server holds no policy")
	}
	got, err := p.api.CompleteAs(ctx, p.name, prompts, k, s)
	if err != nil {
		return nil, err
	}
	eos := p.local.Tokenizer().EOS()
	out := make([][]Completion, len(prompts))
	for i, row := range got {
		ids, err := p.local.Encode(prompts[i])
		if err != nil {
			return nil, err
		}
		out[i] = make([]Completion, len(row))
		for j, c := range row {
			gen := p.local.CompletionIDs(prompts[i], ids, c.Text)
			finish := c.FinishReason
			if finish == "stop" && len(gen) < s.MaxNewTokens {
				gen = append(gen, eos)
			} else {
				gen, finish = gen[:min(len(gen), s.MaxNewTokens)], "length"
			}
			if len(gen) == 0 {
				return nil, fmt.Errorf("openai backend: %s, completion %d: the text %q holds no token to train on", prompts[i].where(), j, c.Text)
			}
			out[i][j] = Completion{Text: c.Text, IDs: gen, FinishReason: finish}
		}
	}
	return out, nil
}

// RolloutAdapterDir is the subdirectory of output_dir where an on-policy trainer with backend
// openai writes the adapter the server loads (step-N, the current one only). The trainers' Run
// closes the ServedPolicy when training ends, which removes it; a crashed run leaves it (and the
// adapter loaded), and the next run at that step replaces both.
const RolloutAdapterDir = "rollout_adapter"

// NewRolloutServer is an on-policy trainer's ServedPolicy for backend openai: the policy ck must
// train a LoRA adapter, whose snapshots go to outputDir/RolloutAdapterDir; save writes it (the
// trainer's SaveModel writer).
func NewRolloutServer(ctx context.Context, b BackendConfig, ck *checkpoint.Model, outputDir string, save func(dir string) error,
	local *Local, log io.Writer) (*ServedPolicy, error) {
	if ck.Adapter == nil {
		return nil, fmt.Errorf("backend openai: %s trains every weight: the server can follow only a LoRA adapter (use_peft: true or adapter_name_or_path)", ck.Source)
	}
	return NewServedPolicy(ctx, ServedPolicyConfig{Backend: b, Dir: filepath.Join(outputDir, RolloutAdapterDir), Save: save, Local: local, Log: log})
}

// CheckServedRanks refuses backend openai when the loop runs over more than one rank: each rank
// samples its own micro-batches and would load its own copy of the adapter into the one server,
// racing the others' loads and unloads. One process drives the server (which batches the
// requests of every micro-batch itself).
func CheckServedRanks(b BackendConfig, opts ...train.Option) error {
	if b.Backend != BackendOpenAI {
		return nil
	}
	c, err := train.CommOf(opts...)
	if err != nil {
		return err
	}
	if c.Size() > 1 {
		return fmt.Errorf("backend openai: %d ranks: rollouts from a server run on one rank only (each rank would load its own adapter into the one server); run without mpirun, or use backend local", c.Size())
	}
	return nil
}
