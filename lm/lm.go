package lm

import (
	"fmt"
	"maps"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/hf"
	"github.com/alignkit/alignkit/model/tokenizer"
	"github.com/alignkit/alignkit/train"
)

// Model is a checkpoint being trained or scored.
type Model struct {
	Ckpt *checkpoint.Model
	// Rows is the batch height every graph is built for: shorter batches are padded with empty rows,
	// so a run's last partial batch reuses the same graphs. 0 builds a graph per distinct height.
	Rows int
	// Checkpoint builds every graph with gradient checkpointing (train.Args.GradientCheckpointing,
	// model.GraphSpec.Checkpoint); forward-only graphs then hold one layer's activations too.
	Checkpoint bool
	// Temperature divides the LM head's logits in every graph (model.GraphSpec.Temperature; 0 or 1:
	// none): PPO's log-probs are those of the distribution it samples from.
	Temperature float64

	graphs map[graphKey]*model.Graph
	params []train.Param
	index  map[string]int // param name → position in params
	seed   uint64         // LoRA dropout seed of the next runs (SetDropoutSeed)
}

type graphKey struct {
	rows, length     int
	head             model.Head
	grad, checkpoint bool
	adaptersOff      bool
	temperature      float64
}

// New wraps a loaded checkpoint. rows is the usual batch height (see Model.Rows).
//
// With ck.Adapter set (a PEFT run: lora.New, or checkpoint.OpenAdapter) the base is frozen and the
// Params are the adapter's tensors alone, named as PEFT's state dict without its base_model.model.
// prefix (model.layers.0.self_attn.q_proj.lora_A.weight, lm_head.weight for a modules_to_save
// copy); Save then writes the adapter directory, and a checkpoint holds the adapter and its
// optimizer state only.
func New(ck *checkpoint.Model, rows int) *Model {
	m := &Model{Ckpt: ck, Rows: rows, graphs: map[graphKey]*model.Graph{}, index: map[string]int{}}
	add := func(name string, t *model.Tensor) {
		m.index[name] = len(m.params)
		// RMSNorm gains (the only 1-D tensors) are not decayed, as HF's get_decay_parameter_names.
		m.params = append(m.params, train.Param{Name: name, Value: t.Data, NoDecay: len(t.Shape) == 1})
	}
	if ad := ck.Adapter; ad != nil {
		ts := map[string]*model.Tensor{}
		for name, l := range ad.Layers {
			a, b := model.LoRAKeys(name)
			ts[a], ts[b] = l.A, l.B
		}
		for name, t := range ad.Saved {
			ts[name] = t
		}
		for _, name := range slices.Sorted(maps.Keys(ts)) {
			add(name, ts[name])
		}
		return m
	}
	w := ck.Weights
	for _, name := range w.Names() {
		if t := w.Tensors[name]; t.Frozen == nil {
			add(name, t)
		}
	}
	return m
}

// SetDropoutSeed sets the LoRA dropout seed of the following training runs. A trainer calls it
// before each micro-batch with model.DropoutSeed(b.Seed, b.Step, b.Micro) (train.Batch's fields), so
// a resumed run draws the same masks.
func (m *Model) SetDropoutSeed(seed uint64) { m.seed = seed }

// Adapter is the LoRA adapter being trained or run, nil for a full model.
func (m *Model) Adapter() *model.Adapter { return m.Ckpt.Adapter }

// Weights are the model's live weights (updated in place by the optimizer).
func (m *Model) Weights() *model.Weights { return m.Ckpt.Weights }

// Tok is the model's tokenizer.
func (m *Model) Tok() *tokenizer.Tokenizer { return m.Ckpt.Tok }

// Params lists the trainable tensors in name order; Value aliases the weights.
func (m *Model) Params() []train.Param { return m.params }

// Save writes the model as an HF directory with its tokenizer files; with an adapter, the PEFT
// adapter directory (adapter_config.json, adapter_model.safetensors) and the tokenizer files, as
// TRL's trainers save a PEFT model to output_dir.
func (m *Model) Save(dir string) error {
	if m.Ckpt.Adapter != nil {
		return checkpoint.SaveAdapter(dir, m.Ckpt)
	}
	return checkpoint.Save(dir, m.Ckpt, hf.SaveOptions{})
}

// graph returns the graph for a batch shape, building it on first use.
func (m *Model) graph(rows, length int, head model.Head, grad, off bool) (*model.Graph, error) {
	temp := 0.0
	if head == model.LMHead {
		temp = m.Temperature
	}
	k := graphKey{rows, length, head, grad, m.Checkpoint, off, temp}
	if g, ok := m.graphs[k]; ok {
		return g, nil
	}
	g, err := model.NewGraph(m.Ckpt.Weights, model.GraphSpec{Batch: rows, SeqLen: length, Head: head, Grad: grad,
		Checkpoint: m.Checkpoint, Adapter: m.Ckpt.Adapter, AdaptersOff: off, Temperature: temp})
	if err != nil {
		return nil, err
	}
	m.graphs[k] = g
	return g, nil
}

// Objective is a trainer's loss over the real rows of a batch (padding rows are hidden from it). Its
// dLogProb has one value per row, or one per position (b.B·b.T, see model.Objective); with the
// value head its dReward has one value per position (b.B·b.T).
type Objective = model.Objective

// Run runs b through the model. With grads non-nil it also runs the backward pass and adds
// scale·dLoss/dParam into grads (one slice per Params entry). The returned Stats cover b's rows only.
func (m *Model) Run(b *data.Batch, head model.Head, obj Objective, grads [][]float32, scale float32) (float64, model.Stats, error) {
	return m.run(b, head, obj, grads, scale, false)
}

func (m *Model) run(b *data.Batch, head model.Head, obj Objective, grads [][]float32, scale float32, off bool) (float64, model.Stats, error) {
	rows := max(b.B, m.Rows)
	g, err := m.graph(rows, b.T, head, grads != nil, off)
	if err != nil {
		return 0, model.Stats{}, err
	}
	in := inputs(b, rows)
	in.Seed = m.seed
	wrapped := obj
	if obj != nil && rows != b.B {
		wrapped = func(s model.Stats) (float64, []float64, []float64, error) {
			loss, dlp, drw, err := obj(trim(s, b.B, b.T))
			if head == model.ValueHead {
				return loss, pad(dlp, rows), pad(drw, rows*b.T), err // one dValue per position
			}
			if len(dlp) == b.B*b.T && b.T > 1 {
				return loss, pad(dlp, rows*b.T), pad(drw, rows), err // per-token derivatives
			}
			return loss, pad(dlp, rows), pad(drw, rows), err
		}
	}
	loss, s, err := g.Run(in, wrapped)
	if err != nil {
		return 0, model.Stats{}, err
	}
	if grads != nil {
		if err := m.accumulate(g, grads, scale); err != nil {
			return 0, model.Stats{}, err
		}
	}
	return loss, trim(s, b.B, b.T), nil
}

// LogProbs is the one log-prob function: a forward pass that returns, per row of b, the summed
// log-probability of its weighted targets, their count, and the other LM statistics.
func (m *Model) LogProbs(b *data.Batch) (model.Stats, error) {
	_, s, err := m.Run(b, model.LMHead, nil, nil, 0)
	return s, err
}

// BaseLogProbs is LogProbs with the adapter disabled: the frozen base's log-probs, TRL's reference
// model for a PEFT policy (the same weights, no second copy). It needs an adapter.
func (m *Model) BaseLogProbs(b *data.Batch) (model.Stats, error) {
	if m.Ckpt.Adapter == nil {
		return model.Stats{}, fmt.Errorf("lm: BaseLogProbs: %s has no adapter to disable", m.Ckpt.Source)
	}
	_, s, err := m.run(b, model.LMHead, nil, nil, 0, true)
	return s, err
}

// Rewards runs the score head forward and returns one reward per row of b.
func (m *Model) Rewards(b *data.Batch) ([]float64, error) {
	_, s, err := m.Run(b, model.ScoreHead, nil, nil, 0)
	return s.Reward, err
}

// Values runs the value head (score.weight at every position, model.ValueHead) forward and returns
// one value per position of b's rows (b.B·b.T, row-major): PPO's value model.
func (m *Model) Values(b *data.Batch) ([]float64, error) {
	_, s, err := m.Run(b, model.ValueHead, nil, nil, 0)
	return s.Values, err
}

// accumulate adds scale·grad into the loop's buffers, split over the cores.
func (m *Model) accumulate(g *model.Graph, grads [][]float32, scale float32) error {
	ps := g.Params()
	if len(grads) != len(m.params) {
		return fmt.Errorf("lm: %d gradient buffers for %d parameters", len(grads), len(m.params))
	}
	var wg sync.WaitGroup
	work := make(chan int, len(ps))
	for i := range ps {
		work <- i
	}
	close(work)
	errs := make([]error, len(ps))
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				p := ps[i]
				j, ok := m.index[p.Name]
				if !ok || len(grads[j]) != len(p.Grad) {
					errs[i] = fmt.Errorf("lm: gradient buffer for %s does not match the graph", p.Name)
					continue
				}
				dst := grads[j]
				for k, v := range p.Grad {
					dst[k] += scale * v
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// inputs lays b out as graph inputs with rows rows; extra rows are padding that carries no loss,
// attends only to itself (segment 0) and is read by no head.
func inputs(b *data.Batch, rows int) model.Inputs {
	if rows == b.B {
		return model.Inputs{Tokens: b.Tokens, Targets: b.Targets, Weights: b.Weights,
			Positions: b.Positions, Segments: b.Segments, LastIndex: b.LastIndex}
	}
	n := rows * b.T
	in := model.Inputs{
		Tokens: make([]int32, n), Targets: make([]int32, n), Weights: make([]float32, n),
		Positions: make([]int32, n), Segments: make([]int32, n), LastIndex: make([]int32, rows),
	}
	copy(in.Tokens, b.Tokens)
	copy(in.Targets, b.Targets)
	copy(in.Weights, b.Weights)
	copy(in.Positions, b.Positions)
	copy(in.Segments, b.Segments)
	copy(in.LastIndex, b.LastIndex)
	for i := b.B * b.T; i < n; i++ {
		in.Targets[i] = -1
		in.Positions[i] = int32(i % b.T)
	}
	return in
}

func trim(s model.Stats, rows, length int) model.Stats {
	cut := func(x []float64) []float64 {
		if len(x) > rows {
			return x[:rows]
		}
		return x
	}
	s.LogProb, s.Tokens, s.Correct, s.MeanLogit, s.Reward = cut(s.LogProb), cut(s.Tokens), cut(s.Correct), cut(s.MeanLogit), cut(s.Reward)
	if len(s.TokenLogProb) > rows*length {
		s.TokenLogProb = s.TokenLogProb[:rows*length]
	}
	if len(s.Values) > rows*length {
		s.Values = s.Values[:rows*length]
	}
	return s
}

func pad(x []float64, rows int) []float64 {
	if x == nil || len(x) >= rows {
		return x
	}
	out := make([]float64, rows)
	copy(out, x)
	return out
}

// CompletionLogProbs runs pass (a model's LogProbs or BaseLogProbs) over b, a
// data.CompletionBatch, and cuts out each completion's per-token log-probs: row k's lens[k] values
// from position starts[k]. A NaN or infinite log-prob is an error naming the completion.
func CompletionLogProbs(pass func(*data.Batch) (model.Stats, error), b *data.Batch, starts, lens []int) ([][]float64, error) {
	st, err := pass(b)
	if err != nil {
		return nil, err
	}
	out := make([][]float64, len(lens))
	for k := range out {
		lo := k*b.T + starts[k]
		out[k] = append([]float64(nil), st.TokenLogProb[lo:lo+lens[k]]...)
		for _, v := range out[k] {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("completion %d: log-prob %v", k, v)
			}
		}
	}
	return out, nil
}
