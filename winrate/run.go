package winrate

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/dist"
	"github.com/alignkit/alignkit/internal/atomicfile"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/rlhf"
)

// Evaluate runs a win-rate evaluation as cfg says: it loads the prompts, reads or generates both
// models' answers, judges every pair with the answer order drawn by Swaps(n, seed), and writes the
// judgements, the summary and the plot into output_dir. With no valid judgement it still writes the
// judgements, then errors.
//
// Under mpirun (dist.World of several ranks) the answers and the judgements are dealt over the
// ranks in chunks, with the seeds one process would use, and rank 0 alone logs and writes: the same
// files as one process.
func Evaluate(ctx context.Context, cfg Config) (*Summary, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	comm, err := dist.World()
	if err != nil {
		return nil, err
	}
	log := cfg.Progress
	if log == nil || comm.Rank() != 0 {
		log = io.Discard
	}
	prompts, err := loadPrompts(cfg)
	if err != nil {
		return nil, err
	}
	if len(cfg.RewardModels) == 2 {
		if err := SetSafety(prompts, cfg.SafetyColumn); err != nil {
			return nil, err
		}
	}
	// The models are opened, answer files read and the judge built before any model generates: a
	// bad file or judge fails in seconds, not after the generation.
	gens := map[string]*rlhf.Local{} // model B may be model A (with other seeds): load it once
	for _, m := range []struct{ which, path string }{{"a", cfg.ModelA}, {"b", cfg.ModelB}} {
		if m.path == "" || gens[m.path] != nil {
			continue
		}
		ck, err := checkpoint.OpenInference(ctx, m.path, "")
		if err != nil {
			return nil, fmt.Errorf("model_%s_name_or_path: %w", m.which, err)
		}
		if gens[m.path], err = rlhf.NewLocal(ck, cfg.Data.ChatTemplate); err != nil {
			return nil, fmt.Errorf("model_%s_name_or_path: %w", m.which, err)
		}
	}
	all := len(prompts)
	if prompts, err = fitting(prompts, gens, cfg.MaxNewTokens, log); err != nil {
		return nil, err
	}
	var a, b []string
	if cfg.AnswersA != "" {
		if a, err = ReadAnswers(cfg.AnswersA, prompts); err != nil {
			return nil, fmt.Errorf("answers_a: %w", err)
		}
	}
	if cfg.AnswersB != "" {
		if b, err = ReadAnswers(cfg.AnswersB, prompts); err != nil {
			return nil, fmt.Errorf("answers_b: %w", err)
		}
	}
	judge, judgeName, err := newJudge(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	// Model A's answer to the i-th kept prompt is drawn with seed + i, model B's with seed + n + i
	// (n prompts loaded): disjoint seeds, so a model against itself answers twice independently.
	n := uint64(all)
	if a == nil {
		if a, err = generateWith(ctx, comm, cfg, "A", cfg.ModelA, gens[cfg.ModelA], prompts, 0, log); err != nil {
			return nil, err
		}
	}
	if b == nil {
		if b, err = generateWith(ctx, comm, cfg, "B", cfg.ModelB, gens[cfg.ModelB], prompts, n, log); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(log, "eval winrate: judging %d pairs with the %s\n", len(prompts), judgeName)
	js, err := Compare(ctx, rankedJudge{judge: judge, comm: comm}, prompts, a, b, Swaps(len(prompts), uint64(cfg.Seed)))
	if err != nil {
		return nil, err
	}
	err = dist.LeaderDo(comm, func() error {
		if err := os.MkdirAll(cfg.OutputDir, 0o755); err != nil {
			return fmt.Errorf("output_dir: %w", err)
		}
		return writeJudgements(filepath.Join(cfg.OutputDir, JudgementsFile), js)
	})
	if err != nil {
		return nil, err
	}
	s, err := Summarize(js)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(cfg.OutputDir, JudgementsFile), err)
	}
	s.ModelA, s.ModelB = cfg.labels()
	s.Judge, s.Seed, s.Skipped = judgeName, uint64(cfg.Seed), all-len(prompts)
	err = dist.LeaderDo(comm, func() error {
		if err := atomicfile.WriteJSON(filepath.Join(cfg.OutputDir, SummaryFile), s); err != nil {
			return err
		}
		return writePlot(filepath.Join(cfg.OutputDir, PlotFile), s)
	})
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// loadPrompts reads the prompts as rlhf sample does; with eval_dataset_name or eval_split the
// held-out prompts are the ones compared.
func loadPrompts(cfg Config) ([]rlhf.Prompt, error) {
	train, eval, err := rlhf.SampleConfig{Data: cfg.Data, Seed: cfg.Seed}.LoadPromptSets()
	if err != nil {
		return nil, fmt.Errorf("dataset_name: %w", err)
	}
	if eval != nil {
		return eval, nil
	}
	return train, nil
}

// newJudge builds the configured judge and names it for the summary.
func newJudge(ctx context.Context, cfg Config, log io.Writer) (Judge, string, error) {
	if cfg.JudgeBaseURL != "" {
		o, err := cfg.judgeBackend().NewOpenAI(ctx, log)
		if err != nil {
			return nil, "", fmt.Errorf("judge_base_url: %w", err)
		}
		return LLMJudge{Gen: o, MaxNewTokens: cfg.JudgeMaxNewTokens, Seed: uint64(cfg.Seed)}, "llm judge " + o.Model(), nil
	}
	if cfg.RewardModelNameOrPath != "" {
		sc, err := rlhf.LoadScorer(cfg.RewardModelNameOrPath, cfg.Data.ChatTemplate)
		if err != nil {
			return nil, "", fmt.Errorf("reward_model_name_or_path: %w", err)
		}
		return RewardJudge{Scorer: sc, TieMargin: cfg.RewardTieMargin}, "reward model " + cfg.RewardModelNameOrPath, nil
	}
	rm, err := rlhf.LoadRewardModels(cfg.RewardModels, cfg.Data.ChatTemplate)
	if err != nil {
		return nil, "", err
	}
	var names []string
	for _, spec := range cfg.RewardModels {
		names = append(names, spec.Role+" "+spec.Path)
	}
	name := "reward model " + strings.Join(names, " + ")
	if rm.Combined() {
		name += " (Llama 2 combination)"
	}
	return RewardJudge{Scorer: rm, TieMargin: cfg.RewardTieMargin}, name, nil
}

// generateWith generates one model's answers with alignkit's engine, the i-th prompt given sampled
// with seed + offset + i.
func generateWith(ctx context.Context, comm dist.Comm, cfg Config, which, path string, gen *rlhf.Local, prompts []rlhf.Prompt, offset uint64, log io.Writer) ([]string, error) {
	fmt.Fprintf(log, "eval winrate: model %s (%s) answering %d prompts\n", which, path, len(prompts))
	out, err := generateOn(ctx, comm, gen, prompts, cfg.sampling(offset))
	if err != nil {
		return nil, fmt.Errorf("model_%s_name_or_path: %w", strings.ToLower(which), err)
	}
	return out, nil
}

// fitting drops the prompts that leave fewer than maxNew tokens of any model's context, as rlhf
// sample does, and says how many it dropped.
func fitting(prompts []rlhf.Prompt, gens map[string]*rlhf.Local, maxNew int, log io.Writer) ([]rlhf.Prompt, error) {
	if len(gens) == 0 {
		return prompts, nil
	}
	out := make([]rlhf.Prompt, 0, len(prompts))
next:
	for _, p := range prompts {
		for _, path := range slices.Sorted(maps.Keys(gens)) {
			l := gens[path]
			ids, err := l.Encode(p)
			if err != nil {
				return nil, fmt.Errorf("dataset_name: %w", err)
			}
			if len(ids) > l.MaxPositions()-maxNew {
				continue next
			}
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("dataset_name %s: every prompt leaves less than max_new_tokens %d of the context", prompts[0].Source, maxNew)
	}
	if k := len(prompts) - len(out); k > 0 {
		fmt.Fprintf(log, "eval winrate: skipped %d of %d prompts that leave less than max_new_tokens %d of the context\n", k, len(prompts), maxNew)
	}
	return out, nil
}

// Generate samples one answer per prompt; answer i is drawn with seed s.Seed + i.
func Generate(ctx context.Context, gen rlhf.Generator, prompts []rlhf.Prompt, s rlhf.Sampling) ([]string, error) {
	out, err := gen.Generate(ctx, prompts, 1, s)
	if err != nil {
		return nil, err
	}
	flat := make([]string, len(out))
	for i, o := range out {
		if len(o) != 1 {
			return nil, fmt.Errorf("prompt %d: %d answers, want 1", i, len(o))
		}
		flat[i] = o[0]
	}
	return flat, nil
}

// ReadAnswers reads precomputed answers: row r of path holds, in its completion column (a string),
// the answer to the prompt of row r of the prompt file. When path also has a prompt column of
// strings, it must equal each text prompt, which catches a file written for other prompts.
func ReadAnswers(path string, prompts []rlhf.Prompt) ([]string, error) {
	rows, err := data.ReadRows(path)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(prompts))
	for i, p := range prompts {
		if i > 0 && p.Source != prompts[0].Source {
			return nil, fmt.Errorf("%s: the prompts come from %s and %s: an answers file answers the rows of one prompt file", path, prompts[0].Source, p.Source)
		}
		if p.Row >= len(rows) {
			return nil, fmt.Errorf("%s: %d rows, but the prompt of row %d of %s needs row %d", path, len(rows), p.Row, p.Source, p.Row)
		}
		f := rows[p.Row].Fields
		v, ok := f["completion"]
		if !ok {
			return nil, fmt.Errorf("%s: row %d: no completion column (the answer)", path, p.Row)
		}
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%s: row %d: completion: want a string, got %T", path, p.Row, v)
		}
		if q, ok := f["prompt"].(string); ok && p.Messages == nil && p.IDs == nil && q != p.Text {
			return nil, fmt.Errorf("%s: row %d: prompt %q differs from row %d of %s: the answers are to other prompts", path, p.Row, oneLine(q, 40), p.Row, p.Source)
		}
		out[i] = s
	}
	return out, nil
}

// oneLine shortens s to n runes on one line, for error messages.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// SetSafety sets each prompt's Safety flag from column of its row in its source file
// (reward.SafetyFlags' values), reading each file once: what two reward_models combine by.
func SetSafety(prompts []rlhf.Prompt, column string) error {
	bySource := map[string][]int{}
	var sources []string
	for i, p := range prompts {
		if bySource[p.Source] == nil {
			sources = append(sources, p.Source)
		}
		bySource[p.Source] = append(bySource[p.Source], i)
	}
	for _, src := range sources {
		idx := bySource[src]
		group := make([]rlhf.Prompt, len(idx))
		for k, i := range idx {
			group[k] = prompts[i]
		}
		if err := rlhf.LoadSafety(group, src, "", column); err != nil {
			return err
		}
		for k, i := range idx {
			prompts[i].Safety = group[k].Safety
		}
	}
	return nil
}
