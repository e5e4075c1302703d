package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSummarize: per-seed values, mean, sample standard deviation and range by hand, and each
// target's count of seeds that met it.
func TestSummarize(t *testing.T) {
	run := func(seed uint64, sft, grpo int, pass bool) *Results {
		r := &Results{Seed: seed, BLAS: "test",
			Correctness: []Correctness{
				{Stage: "SFT", Greedy: Split{All: Score{Correct: sft, Total: 10}}, Sampled: Split{All: Score{Correct: 1, Total: 10}}},
				{Stage: "GRPO", Greedy: Split{All: Score{Correct: grpo, Total: 10}}, Sampled: Split{All: Score{Correct: 1, Total: 10}},
					RM: &RMScores{Safety: float64(grpo) * 10, Helpfulness: 50, SafetyPrompts: 2, OtherPrompts: 8}},
			},
			Checks: []Check{{Name: "GRPO greedy correctness", Want: "above SFT", Got: "x", Pass: pass}},
		}
		return r
	}
	s := Summarize([]*Results{run(1, 5, 6, true), run(2, 6, 6, false), run(3, 7, 9, true)})
	stat := func(name string) Stat {
		for _, st := range s.Stats {
			if st.Name == name {
				return st
			}
		}
		t.Fatalf("no stat %q in %+v", name, s.Stats)
		return Stat{}
	}
	// SFT greedy 0.5, 0.6, 0.7: mean 0.6, sample std sqrt((0.01+0+0.01)/2) = 0.1.
	if st := stat("SFT: greedy correctness"); math.Abs(st.Mean-0.6) > 1e-12 || math.Abs(st.Std-0.1) > 1e-12 || st.Min != 0.5 || st.Max != 0.7 || st.Points {
		t.Errorf("SFT greedy %+v", st)
	}
	// GRPO safety RM 60, 60, 90: mean 70, std sqrt((100+100+400)/2) = sqrt(300).
	if st := stat("GRPO: safety RM on safety prompts (mean sigmoid %)"); st.Mean != 70 || math.Abs(st.Std-math.Sqrt(300)) > 1e-9 || !st.Points {
		t.Errorf("GRPO safety RM %+v", st)
	}
	for _, st := range s.Stats {
		if strings.HasPrefix(st.Name, "SFT: safety RM") || strings.HasPrefix(st.Name, "DPO") {
			t.Errorf("%s measured in no run, summarised: %+v", st.Name, st)
		}
	}
	if len(s.Checks) != 1 || s.Checks[0].Passed != 2 || s.Checks[0].Seeds != 3 || len(s.Checks[0].Got) != 3 {
		t.Errorf("checks %+v", s.Checks)
	}
	md := s.Markdown()
	for _, want := range []string{"Seeds 1, 2, 3", "| SFT: greedy correctness | **0.600** ± 0.100 | 0.500 to 0.700 | 0.500, 0.600, 0.700 |",
		"| GRPO: safety RM on safety prompts (mean sigmoid %) | **70.0** ± 17.3 | 60.0 to 90.0 | 60.0, 60.0, 90.0 |",
		"| GRPO greedy correctness | above SFT | 2 of 3 | x; x; x |"} {
		if !strings.Contains(md, want) {
			t.Errorf("SEEDS.md lacks %q:\n%s", want, md)
		}
	}
}

// TestRunSeedsMicro runs the micro pipeline on two seeds: each seed's run lands in seed-<seed>/
// with its own results, and SEEDS.md and seeds.json summarise both; --seeds 0 is refused before
// anything is written.
func TestRunSeedsMicro(t *testing.T) {
	out := filepath.Join(t.TempDir(), "seeds")
	opts := microOptions(t, out)
	var table bytes.Buffer
	opts.Table = &table
	if _, err := RunSeeds(context.Background(), opts, 0); err == nil || err.Error() != "--seeds 0: want >= 1" {
		t.Fatalf("--seeds 0: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("a refused run created its --out: %v", err)
	}
	s, err := RunSeeds(context.Background(), opts, 2)
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, opts.Log.(*bytes.Buffer).String())
	}
	if len(s.Seeds) != 2 || s.Seeds[0] != 7 || s.Seeds[1] != 8 {
		t.Errorf("seeds %v", s.Seeds)
	}
	for _, f := range []string{MarkerFile, SeedsFile, SeedsJSONFile, "seed-7/" + ResultsFile, "seed-8/" + ResultsFile} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	var back SeedsSummary
	b, err := os.ReadFile(filepath.Join(out, SeedsJSONFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, st := range back.Stats {
		if len(st.Values) != 2 {
			t.Errorf("%s: %d values", st.Name, len(st.Values))
		}
		found[st.Name] = true
	}
	for _, name := range []string{"GRPO: greedy correctness", "PPO: greedy correctness", "PPO: objective/kl, last logged step"} {
		if !found[name] {
			t.Errorf("no %q among %d stats", name, len(back.Stats))
		}
	}
	if len(back.Checks) != 11 {
		t.Errorf("checks %d: %+v", len(back.Checks), back.Checks)
	}
	if got := table.String(); !strings.Contains(got, "# alignkit demo over 2 seeds") || strings.Contains(got, "| Stage | Measurement |") {
		t.Errorf("printed table:\n%s", got)
	}
}
