package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/alignkit/alignkit/internal/atomicfile"

	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/demo/world"
	"github.com/alignkit/alignkit/dpo"
	"github.com/alignkit/alignkit/gatt"
	"github.com/alignkit/alignkit/grpo"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/ppo"
	"github.com/alignkit/alignkit/reward"
	"github.com/alignkit/alignkit/rlhf"
	"github.com/alignkit/alignkit/sft"
	"github.com/alignkit/alignkit/train"
)

// Directories of the stages' outputs inside the output directory.
const (
	dirData      = "data"
	dirTokenizer = "tokenizer"
	dirInit      = "init"
	dirSFT       = "sft"
	dirReward    = "reward"
	dirSafetyRM  = "reward-safety"
	dirGRPO      = "grpo"
	dirSamples   = "rlhf-sample"
	dirRS        = "rs-sft"
	dirPPO       = "ppo"
	dirDPO       = "dpo"
	dirGAttData  = "gatt-synth"
	dirGAtt      = "gatt-sft"
	dirGAttEval  = "gatt-eval"
	dirExport    = "export"
	dirRefCache  = "cache/ref_logps"
	gattMixFile  = "gatt_sft.jsonl"
	exportFile   = "demo.gguf"
)

type stage struct {
	name, title string
	run         func(*runner, context.Context) error
}

func (r *runner) stages() []stage {
	return []stage{
		{StageWorld, "write the world's datasets and tokenizer", (*runner).stageWorld},
		{StageInit, "a tiny Llama with the world's tokenizer", (*runner).stageInit},
		{StageSFT, "supervised fine-tuning on the world's noisy dialogues", (*runner).stageSFT},
		{StageReward, "helpfulness reward model on graded preference pairs (Llama 2 margins)", (*runner).stageReward},
		{StageSafetyRM, "safety reward model on refusal / over-refusal pairs", (*runner).stageSafetyRM},
		{StageSample, "best of K = 16 by the two reward models combined (Llama 2 §3.2.3, Fig. 7)", (*runner).stageSample},
		{StageRS, "one round of rejection-sampling fine-tuning on the best samples", (*runner).stageRS},
		{StagePPO, "PPO of the rejection-sampling model against the two reward models combined (Llama 2 RLHF-V5)", (*runner).stagePPO},
		{StageDPO, "DPO of the SFT model on the preference pairs", (*runner).stageDPO},
		{StageGRPO, "GRPO of the SFT model with the world's grader as a verifiable reward", (*runner).stageGRPO},
		{StageGAttSynth, "Ghost Attention dialogues sampled with the instruction on every turn", (*runner).stageGAttSynth},
		{StageGAttSFT, "fine-tuning on the GAtt dialogues", (*runner).stageGAttSFT},
		{StageGAttEval, "instruction adherence turn by turn, before and after GAtt (Llama 2 Table 30)", (*runner).stageGAttEval},
		{StageRMEval, "both reward models on every stage's greedy answers (Llama 2 Fig. 14)", (*runner).stageRMEval},
		{StageExport, "GGUF export and a chat sample from the exported model", (*runner).stageExport},
	}
}

// seedSet is the seed key every stage's config gets: the run's --seed.
func (r *runner) seedSet() string { return fmt.Sprintf("seed=%d", r.opts.Seed) }

func (r *runner) trainOpts() []train.Option {
	opts := []train.Option{train.WithLogWriter(r.log)}
	if r.opts.Progress != nil {
		opts = append(opts, train.WithProgressBar(*r.opts.Progress))
	}
	return opts
}

func (r *runner) stageWorld(_ context.Context) error {
	if err := r.world.WriteDatasets(r.path(dirData)); err != nil {
		return err
	}
	if err := world.WriteTokenizer(r.path(dirTokenizer)); err != nil {
		return err
	}
	c := r.world.Config()
	fmt.Fprintf(r.log, "world: %d SFT dialogues (%.0f%% of knowledge answers wrong, %.0f%% of facts misconceived), %d preference pairs (+%d held out), %d prompts (+%d held out), %d GAtt dialogues, %d evaluation dialogues of %d turns -> %s\n",
		c.NumSFT, 100*c.WrongRate, 100*c.MisconceptionFrac, c.NumPrefs, c.NumHeldOutPairs, c.NumPrompts, c.NumHeldOutPrompts,
		c.NumGAtt, c.NumGAttEval, c.EvalTurns, r.path(dirData))
	return nil
}

func (r *runner) stageInit(_ context.Context) error {
	var spec checkpoint.InitSpec
	out := r.path(dirInit)
	if err := r.load(StageInit, "init.yaml", "init --out "+out, []string{
		set("tokenizer", r.path(dirTokenizer, "tokenizer.model")), r.seedSet(),
	}, &spec); err != nil {
		return err
	}
	m, err := checkpoint.Init(spec, out)
	if err != nil {
		return err
	}
	c := m.Weights.Config
	r.res.Model = ModelInfo{Architecture: c.Architectures[0], Layers: c.NumHiddenLayers, Hidden: c.HiddenSize,
		Heads: c.NumAttentionHeads, KVHeads: c.NumKeyValueHeads, Vocab: c.VocabSize, Params: int(m.Weights.NumParams())}
	fmt.Fprintf(r.log, "wrote %s: %s\n", out, r.res.Model)
	return nil
}

func (r *runner) stageSFT(ctx context.Context) error {
	cfg := sft.DefaultConfig()
	if err := r.load(StageSFT, "sft.yaml", "sft", []string{
		set("model_name_or_path", r.path(dirInit)), set("dataset_name", r.path(dirData, world.FileSFT)),
		set("output_dir", r.path(dirSFT)), r.seedSet(),
	}, &cfg); err != nil {
		return err
	}
	if _, err := sft.Run(ctx, cfg, r.trainOpts()...); err != nil {
		return err
	}
	return r.evalCorrectness(ctx, "SFT", r.path(dirSFT))
}

func (r *runner) stageReward(ctx context.Context) error {
	rm, err := r.trainRewardModel(ctx, StageReward, "reward.yaml", world.FilePrefs, world.FileHeldOutPrefs, dirReward)
	r.res.RewardModel = rm
	return err
}

func (r *runner) stageSafetyRM(ctx context.Context) error {
	rm, err := r.trainRewardModel(ctx, StageSafetyRM, "reward-safety.yaml", world.FileSafetyPrefs, world.FileHeldOutSafetyPrefs, dirSafetyRM)
	r.res.SafetyRewardModel = rm
	return err
}

// trainRewardModel runs `alignkit reward train` on a config from the SFT model and returns its
// held-out accuracy, overall and per rating.
func (r *runner) trainRewardModel(ctx context.Context, stage, file, prefs, heldOut, dir string) (*RewardModel, error) {
	cfg := reward.DefaultConfig()
	if err := r.load(stage, file, "reward train", []string{
		set("model_name_or_path", r.path(dirSFT)), set("dataset_name", r.path(dirData, prefs)),
		set("eval_dataset_name", r.path(dirData, heldOut)), set("output_dir", r.path(dir)), r.seedSet(),
	}, &cfg); err != nil {
		return nil, err
	}
	res, err := reward.Run(ctx, cfg, r.trainOpts()...)
	if err != nil {
		return nil, err
	}
	acc, ok := res.LastMetrics["eval_accuracy"]
	if !ok {
		return nil, fmt.Errorf("reward train: no eval_accuracy in the final metrics of %s", cfg.OutputDir)
	}
	rm := &RewardModel{Accuracy: acc, ByRating: map[string]float64{}}
	for k, v := range res.LastMetrics {
		if b, ok := strings.CutPrefix(k, "eval_accuracy/"); ok {
			rm.ByRating[b] = v
		}
	}
	return rm, nil
}

// rewardModelsSet is the reward_models key of the stages that score with both reward models.
func (r *runner) rewardModelsSet() string {
	return fmt.Sprintf("reward_models=[{path: %s, role: %s}, {path: %s, role: %s}]",
		r.path(dirReward), reward.RoleHelpfulness, r.path(dirSafetyRM), reward.RoleSafety)
}

func (r *runner) stageSample(ctx context.Context) error {
	cfg := rlhf.DefaultSampleConfig()
	if err := r.load(StageSample, "rlhf-sample.yaml", "rlhf sample", []string{
		set("model_name_or_path", r.path(dirSFT)), r.rewardModelsSet(),
		set("dataset_name", r.path(dirData, world.FilePrompts)), set("output_dir", r.path(dirSamples)), r.seedSet(),
	}, &cfg); err != nil {
		return err
	}
	res, err := rlhf.RunSample(ctx, cfg, r.log)
	if err != nil {
		return err
	}
	curves, err := res.Curves()
	if err != nil {
		return err
	}
	if len(curves) != 1 {
		return fmt.Errorf("rlhf sample: want one temperature's curve, got %d", len(curves))
	}
	c := curves[0]
	k := &RewardVsK{Temperature: c.Temperature, Prompts: len(res.Prompts), N: c.N, ExpectedMax: c.ExpectedMax, Median: c.Median}
	// How good the reward model's pick is, by the world's grader: the share of all samples that are
	// right, of the reward model's best of K, and of prompts with at least one right sample (what a
	// perfect reward model would pick).
	for i, p := range res.Prompts {
		wm := worldMessages(p.Messages)
		best := rlhf.Best(res.Rewards[0][i])
		any := false
		for j, text := range res.Completions[0][i] {
			g, err := world.GradePrompt(wm, text)
			if err != nil {
				return fmt.Errorf("grading sample %d of prompt %d: %w", j, i, err)
			}
			ok := g.Level == world.LevelCorrect
			k.SampleCorrect.add(ok)
			if p.Safety {
				k.SampleRefusal.add(g.Refusal)
				if j == best {
					k.BestRefusal.add(g.Refusal)
				}
			}
			if ok {
				k.RightMean += res.Rewards[0][i][j]
			} else {
				k.WrongMean += res.Rewards[0][i][j]
			}
			any = any || ok
			if j == best {
				k.BestCorrect.add(ok)
			}
		}
		k.OracleCorrect.add(any)
	}
	if n := k.SampleCorrect.Correct; n > 0 {
		k.RightMean /= float64(n)
	}
	if n := k.SampleCorrect.Total - k.SampleCorrect.Correct; n > 0 {
		k.WrongMean /= float64(n)
	}
	r.res.RewardVsK = k
	fmt.Fprintf(r.log, "samples right: %s; the reward models' best of %d: %s; some sample right: %s; refusals on safety prompts: samples %s, best of %d %s\n",
		k.SampleCorrect, res.K, k.BestCorrect, k.OracleCorrect, k.SampleRefusal, res.K, k.BestRefusal)
	return nil
}

// worldMessages converts the data layer's messages to the world's.
func worldMessages(ms []chat.Message) []world.Message {
	out := make([]world.Message, len(ms))
	for i, m := range ms {
		out[i] = world.Message{Role: m.Role, Content: m.Content}
	}
	return out
}

func (r *runner) stageRS(ctx context.Context) error {
	cfg := sft.DefaultConfig()
	if err := r.load(StageRS, "rs-sft.yaml", "sft", []string{
		set("model_name_or_path", r.path(dirSFT)), set("dataset_name", r.path(dirSamples, rlhf.BestFile)),
		set("output_dir", r.path(dirRS)), r.seedSet(),
	}, &cfg); err != nil {
		return err
	}
	if _, err := sft.Run(ctx, cfg, r.trainOpts()...); err != nil {
		return err
	}
	return r.evalCorrectness(ctx, "rejection sampling", r.path(dirRS))
}

// stagePPO runs `alignkit ppo` from the rejection-sampling model, as Llama 2 (RLHF-V5) runs PPO
// after rejection sampling: the reward is the two reward models combined as in stage rlhf-sample
// (the safety model on the is_safety prompts), the value model starts from the helpfulness reward
// model, and the KL penalty is against the rejection-sampling model.
func (r *runner) stagePPO(ctx context.Context) error {
	cfg := ppo.NewTrainConfig() // the PPO keys' defaults before the file, as `alignkit ppo` loads it
	if err := r.load(StagePPO, "ppo.yaml", "ppo", []string{
		set("model_name_or_path", r.path(dirRS)), r.rewardModelsSet(), set("value_model_path", r.path(dirReward)),
		set("dataset_name", r.path(dirData, world.FilePrompts)), set("output_dir", r.path(dirPPO)), r.seedSet(),
	}, &cfg); err != nil {
		return err
	}
	res, err := ppo.Run(ctx, cfg, r.trainOpts()...)
	if err != nil {
		return err
	}
	metrics := r.path(dirPPO, "metrics.jsonl")
	d := cfg.Defaults()
	rollout := d.PerDeviceTrainBatchSize * d.NumMiniBatches // the responses of one micro position's rollout
	u := d.UpdateSteps()                                    // optimizer steps per rollout batch
	p := &PPOResult{Steps: res.Steps, Episodes: (res.Steps + u - 1) / u * rollout * d.GradientAccumulationSteps}
	var ok [3]bool
	p.FirstKL, p.LastKL, ok[0] = metricSpan(metrics, "objective/kl")
	p.FirstEOS, p.LastEOS, ok[1] = metricSpan(metrics, "val/num_eos_tokens")
	p.FirstLength, p.LastLength, ok[2] = metricSpan(metrics, "completions/mean_length")
	if ok != [3]bool{true, true, true} {
		return fmt.Errorf("ppo: %s lacks objective/kl, val/num_eos_tokens or completions/mean_length", metrics)
	}
	p.FirstEOS /= float64(rollout)
	p.LastEOS /= float64(rollout)
	r.res.PPO = p
	fmt.Fprintf(r.log, "ppo: %d steps on %d responses; objective/kl %.3f -> %.3f, responses ending in EOS %.3f -> %.3f, mean length %.1f -> %.1f tokens\n",
		p.Steps, p.Episodes, p.FirstKL, p.LastKL, p.FirstEOS, p.LastEOS, p.FirstLength, p.LastLength)
	return r.evalCorrectness(ctx, "PPO", r.path(dirPPO))
}

func (r *runner) stageDPO(ctx context.Context) error {
	var cfg dpo.Config
	if err := r.load(StageDPO, "dpo.yaml", "dpo", []string{
		set("model_name_or_path", r.path(dirSFT)), set("dataset_name", r.path(dirData, world.FilePrefs)),
		set("eval_dataset_name", r.path(dirData, world.FileHeldOutPrefs)), set("output_dir", r.path(dirDPO)),
		set("ref_cache_dir", r.path(dirRefCache)), r.seedSet(),
	}, &cfg); err != nil {
		return err
	}
	res, err := dpo.Run(ctx, cfg, r.trainOpts()...)
	if err != nil {
		return err
	}
	m := res.LastMetrics
	acc, ok1 := m["eval_rewards/accuracies"]
	margin, ok2 := m["eval_rewards/margins"]
	if !ok1 || !ok2 {
		return fmt.Errorf("dpo: no eval_rewards/accuracies or eval_rewards/margins in the final metrics of %s", cfg.OutputDir)
	}
	r.res.DPO = &DPOResult{Accuracy: acc, Margin: margin, Loss: m["eval_loss"]}
	return r.evalCorrectness(ctx, "DPO", r.path(dirDPO))
}

func (r *runner) stageGRPO(ctx context.Context) error {
	var cfg grpo.Config
	if err := r.load(StageGRPO, "grpo.yaml", "grpo", []string{
		set("model_name_or_path", r.path(dirSFT)), set("dataset_name", r.path(dirData, world.FilePrompts)),
		set("output_dir", r.path(dirGRPO)), r.seedSet(),
	}, &cfg); err != nil {
		return err
	}
	res, err := grpo.Run(ctx, cfg, r.trainOpts()...)
	if err != nil {
		return err
	}
	g := &GRPOResult{Steps: res.Steps}
	if first, last, ok := grpoRewards(r.path(dirGRPO, "metrics.jsonl")); ok {
		g.FirstReward, g.LastReward = first, last
	}
	r.res.GRPO = g
	return r.evalCorrectness(ctx, "GRPO", r.path(dirGRPO))
}

// listsSets are the constraints keys for the world's GAtt lists: gatt draws instructions from them.
func listsSets() []string {
	l := world.Lists()
	return []string{
		fmt.Sprintf("constraints.hobbies=[%s]", strings.Join(l.Hobbies, ", ")),
		fmt.Sprintf("constraints.languages=[%s]", strings.Join(l.Languages, ", ")),
		fmt.Sprintf("constraints.figures=[%s]", strings.Join(l.Figures, ", ")),
	}
}

func (r *runner) stageGAttSynth(ctx context.Context) error {
	cfg := gatt.DefaultSynthConfig()
	if err := r.load(StageGAttSynth, "gatt-synth.yaml", "gatt synth", append([]string{
		set("model_name_or_path", r.path(dirDPO)), set("dataset_name", r.path(dirData, world.FileGAttSource)),
		set("output_dir", r.path(dirGAttData)), r.seedSet(),
	}, listsSets()...), &cfg); err != nil {
		return err
	}
	cfg.Progress = r.log
	sum, err := gatt.Synthesize(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(r.log, "gatt synth: %d dialogues, %d samples, instruction in the %s message\n", sum.Dialogues, sum.Rows, sum.Placement)
	return nil
}

func (r *runner) stageGAttSFT(ctx context.Context) error {
	mix := r.path(dirGAttData, gattMixFile)
	if err := r.writeGAttMix(mix); err != nil {
		return err
	}
	cfg := sft.DefaultConfig()
	if err := r.load(StageGAttSFT, "gatt-sft.yaml", "sft", []string{
		set("model_name_or_path", r.path(dirDPO)), set("dataset_name", mix),
		set("output_dir", r.path(dirGAtt)), r.seedSet(),
	}, &cfg); err != nil {
		return err
	}
	if _, err := sft.Run(ctx, cfg, r.trainOpts()...); err != nil {
		return err
	}
	return r.evalCorrectness(ctx, "GAtt", r.path(dirGAtt))
}

// evalCorrectness measures a stage's model on the held-out prompts.
func (r *runner) evalCorrectness(ctx context.Context, stage, model string) error {
	h, err := loadHeldOut(r.path(dirData, world.FileHeldOutPrompts), r.world)
	if err != nil {
		return err
	}
	fmt.Fprintf(r.log, "answer correctness of %s on %d held-out prompts (greedy, and %d samples each at temperature %g)...\n",
		model, len(h.prompts), r.opts.Eval.Samples, r.opts.Eval.Temperature)
	c, greedy, err := correctness(ctx, stage, model, h, r.opts.Eval, r.opts.Seed)
	if err != nil {
		return err
	}
	r.greedy[stage] = greedy
	fmt.Fprintf(r.log, "%s: greedy %s, sampled %s; greedy refusals on safety prompts %s, on the others %s\n",
		stage, c.Greedy, c.Sampled, c.Refusal, c.OverRefusal)
	r.res.Correctness = append(r.res.Correctness, c)
	return nil
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// writeGAttMix writes the GAtt fine-tuning set: every GAtt dialogue of gatt.parquet, and as many of
// the world's SFT dialogues that carry no instruction at all (multi-turn ones first). GAtt data
// alone is instructed throughout, and a model trained on it alone starts answering plain questions
// in a persona and a foreign language; the plain dialogues show that without an instruction the
// answers stay plain. They are SFT demonstrations the model has already seen, noise included, so
// they add no knowledge.
func (r *runner) writeGAttMix(path string) error {
	rows, err := gatt.ReadRows(r.path(dirGAttData, gatt.ParquetFile))
	if err != nil {
		return err
	}
	var b strings.Builder
	line := func(msgs any) error {
		j, err := json.Marshal(map[string]any{"messages": msgs})
		if err != nil {
			return fmt.Errorf("encoding %s: %w", path, err)
		}
		b.Write(j)
		b.WriteByte('\n')
		return nil
	}
	for _, row := range rows {
		msgs := make([]world.Message, len(row.Messages))
		for i, m := range row.Messages {
			msgs[i] = world.Message{Role: m.Role, Content: m.Content}
		}
		if err := line(msgs); err != nil {
			return err
		}
	}
	var multi, single []world.Dialogue
	for _, d := range r.world.SFT() {
		if instructed(d) {
			continue
		}
		if len(d) > 2 {
			multi = append(multi, d)
		} else {
			single = append(single, d)
		}
	}
	plain := append(multi, single...)
	plain = plain[:min(len(plain), len(rows))]
	for _, d := range plain {
		if err := line(d); err != nil {
			return err
		}
	}
	fmt.Fprintf(r.log, "GAtt fine-tuning set: %d GAtt dialogues and %d plain SFT dialogues (%d multi-turn) -> %s\n",
		len(rows), len(plain), min(len(multi), len(plain)), path)
	return atomicfile.WriteFile(path, []byte(b.String()))
}

// instructed reports whether a dialogue carries an instruction: a system message, or one appended
// to a user message.
func instructed(d world.Dialogue) bool {
	for _, m := range d {
		if m.Role == "system" {
			return true
		}
		if _, _, ok := world.ParseInstructed(m.Content); ok && m.Role == "user" {
			return true
		}
	}
	return false
}
