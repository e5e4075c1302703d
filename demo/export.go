package demo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/demo/world"
	"github.com/alignkit/alignkit/gatt"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/gguf"
	"github.com/alignkit/alignkit/rlhf"
)

// gattLabels name the two models of the GAtt evaluation.
var gattLabels = [2]string{"before GAtt", "after GAtt"}

func (r *runner) stageGAttEval(ctx context.Context) error {
	cfg := gatt.DefaultEvalConfig()
	wc := r.world.Config()
	if err := r.load(StageGAttEval, "gatt-eval.yaml", "gatt eval", append([]string{
		fmt.Sprintf("models=[%s, %s]", r.path(dirDPO), r.path(dirGAtt)),
		fmt.Sprintf("labels=[%s, %s]", gattLabels[0], gattLabels[1]),
		set("dataset_name", r.path(dirData, world.FileGAttEval)), set("output_dir", r.path(dirGAttEval)),
		fmt.Sprintf("num_dialogues=%d", wc.NumGAttEval), fmt.Sprintf("turns=%d", wc.EvalTurns), r.seedSet(),
	}, listsSets()...), &cfg); err != nil {
		return err
	}
	cfg.Progress = r.log
	// The world's checker is a Go value, not a name the command line knows: it is handed to gatt as
	// an option and put first, so it decides every constraint (it checks all three kinds, more
	// strictly than keyword and language: a persona must prefix the answer).
	cfg.Checkers = append([]string{world.CheckerName}, cfg.Checkers...)
	fmt.Fprintf(r.log, "checkers: %s (%s from demo/world)\n", strings.Join(cfg.Checkers, ", "), world.CheckerName)
	res, err := gatt.Evaluate(ctx, cfg, gatt.WithCheckers(world.NewChecker()))
	if err != nil {
		return err
	}
	if len(res.Models) != 2 {
		return fmt.Errorf("gatt eval: %d models in the result, want 2", len(res.Models))
	}
	g := &GAttResult{Dialogues: res.NumDialogues}
	for t := range res.Turns {
		b, a := res.Models[0].Turns[t], res.Models[1].Turns[t]
		g.Turns = append(g.Turns, GAttTurn{Turn: t + 1, Before: b.Percent, After: a.Percent, Checked: a.Checked})
	}
	r.res.GAtt = g
	fmt.Fprint(r.log, res.Markdown())
	return nil
}

func (r *runner) stageExport(ctx context.Context) error {
	src := r.path(dirGAtt)
	out := r.path(dirExport, exportFile)
	fmt.Fprintf(r.log, "$ alignkit export --model %s --format gguf --dtype f32 --out %s\n", src, out)
	m, err := checkpoint.Open(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	// What `alignkit export --format gguf` does.
	if err := gguf.Write(out, m.Weights, checkpoint.GGUFTokenizer(m.Tok), gguf.WriteOptions{Dtype: "f32"}); err != nil {
		return err
	}
	st, err := os.Stat(out)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	e := &ExportResult{File: filepath.ToSlash(filepath.Join(dirExport, exportFile)), Bytes: st.Size()}
	r.res.Export = e

	// A chat with the exported model: the first GAtt evaluation dialogue's instruction and first
	// three questions, answered greedily turn by turn.
	ck, err := checkpoint.Open(out)
	if err != nil {
		return fmt.Errorf("reading the export back: %w", err)
	}
	gen, err := rlhf.NewLocal(ck, world.ChatTemplate)
	if err != nil {
		return err
	}
	ev := r.world.GAttEval()
	if len(ev) == 0 {
		return fmt.Errorf("export: the world has no GAtt evaluation dialogue to chat with")
	}
	d := ev[0]
	e.Instruction = d.Instruction.Text()
	msgs := []chat.Message{{Role: "system", Content: e.Instruction}}
	var prompts [][]int32
	for k := 0; k < 3 && k < len(d.Turns); k++ {
		msgs = append(msgs, chat.Message{Role: "user", Content: d.Turns[k].Question})
		p := rlhf.Prompt{Messages: slices.Clone(msgs)}
		ids, err := gen.Encode(p)
		if err != nil {
			return err
		}
		out, err := gen.Complete(ctx, []rlhf.Prompt{p}, 1, rlhf.Sampling{MaxNewTokens: 32})
		if err != nil {
			return err
		}
		reply := strings.TrimSpace(out[0][0].Text)
		g, err := world.GradeAnswer(d.Instruction.Constraints, d.Turns[k].Question, reply)
		if err != nil {
			return err
		}
		e.Turns = append(e.Turns, ChatTurn{User: d.Turns[k].Question, Engine: reply, Correct: g.Level == world.LevelCorrect})
		fmt.Fprintf(r.log, "user: %s\nassistant (alignkit engine, GGUF): %s\n", d.Turns[k].Question, reply)
		msgs = append(msgs, chat.Message{Role: "assistant", Content: reply})
		prompts = append(prompts, ids)
	}
	// llama.cpp on the same file and the same prompt tokens.
	texts, note := r.llamaCpp(ctx, out, gen, prompts)
	e.LlamaCppNote = note
	if texts != nil {
		e.LlamaCpp = true
		same := true
		for k, t := range texts {
			e.Turns[k].LlamaCpp = t
			same = same && t == e.Turns[k].Engine
			fmt.Fprintf(r.log, "assistant (llama.cpp, turn %d): %s\n", k+1, t)
		}
		if same {
			e.LlamaCppNote = fmt.Sprintf("same greedy replies on all %d turns", len(texts))
		} else {
			var diffs []string
			for k, t := range texts {
				if t != e.Turns[k].Engine {
					diffs = append(diffs, fmt.Sprintf("turn %d %q", k+1, t))
				}
			}
			e.LlamaCppNote = "replies differ: " + strings.Join(diffs, ", ")
		}
	}
	fmt.Fprintf(r.log, "llama.cpp: %s\n", e.LlamaCppNote)
	return nil
}

// llamaCpp continues each prompt greedily with llama.cpp (node-llama-cpp, through the conformance
// script) and decodes the replies as the engine does. It returns nil and the reason when llama.cpp
// is not installed.
func (r *runner) llamaCpp(ctx context.Context, model string, gen *rlhf.Local, prompts [][]int32) ([]string, string) {
	script := filepath.Join(r.opts.LlamaCppDir, "logprobs.mjs")
	if _, err := os.Stat(filepath.Join(r.opts.LlamaCppDir, "node_modules", "node-llama-cpp")); err != nil {
		return nil, fmt.Sprintf("not run: node-llama-cpp is not installed in %s (make conformance installs it)", r.opts.LlamaCppDir)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, "not run: node is not on PATH"
	}
	const maxNew = 32
	args := []string{script, "--model", model, "--greedy", strconv.Itoa(maxNew)}
	for _, p := range prompts {
		parts := make([]string, len(p))
		for i, id := range p {
			parts[i] = strconv.Itoa(int(id))
		}
		args = append(args, "--tokens", strings.Join(parts, ","))
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		return nil, fmt.Sprintf("failed: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	stop := gen.Tokenizer().EOSIDs()
	var texts []string
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	for sc.Scan() {
		var line struct {
			Greedy []int32 `json:"greedy"`
		}
		// The log-probs are not needed here; decoding them as raw JSON keeps nulls (-Inf) harmless.
		if err := json.Unmarshal(sc.Bytes(), &struct {
			Greedy   *[]int32        `json:"greedy"`
			Logprobs json.RawMessage `json:"logprobs"`
		}{Greedy: &line.Greedy}); err != nil {
			return nil, fmt.Sprintf("failed: reading its output: %v", err)
		}
		ids := line.Greedy
		for i, id := range ids {
			if slices.Contains(stop, id) {
				ids = ids[:i]
				break
			}
		}
		k := len(texts)
		if k >= len(prompts) {
			return nil, "failed: more replies than prompts"
		}
		texts = append(texts, strings.TrimSpace(gen.DecodeCompletion(rlhf.Prompt{Messages: []chat.Message{{Role: "user"}}}, prompts[k], ids)))
	}
	if len(texts) != len(prompts) {
		return nil, fmt.Sprintf("failed: %d replies for %d prompts", len(texts), len(prompts))
	}
	return texts, ""
}
