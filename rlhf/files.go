package rlhf

import (
	"errors"
	"fmt"
	"image/color"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/internal/atomicfile"
	"github.com/alignkit/alignkit/internal/plotfit"
	"github.com/alignkit/alignkit/reward"
)

// The files a sampling run writes into its directory.
const (
	SamplesFile  = "samples.parquet"
	BestFile     = "best.parquet"
	PairsFile    = "pairs.parquet"
	CurvesFile   = "reward_vs_k.json"
	CurvesPlot   = "reward_vs_k.png"
	CompleteFile = "sample_complete.json"
)

// parquet rows. Messages are {content, role} structs, the field order of Hugging Face's datasets.
type messageRow struct {
	Content string `parquet:"content"`
	Role    string `parquet:"role"`
}

type sampleTextRow struct {
	Prompt      string    `parquet:"prompt"`
	Temperature float64   `parquet:"temperature"`
	Completions []string  `parquet:"completions,list"`
	Rewards     []float64 `parquet:"rewards,list"`
	BestIndex   int64     `parquet:"best_index"`
	BestReward  float64   `parquet:"best_reward"`
}

type sampleChatRow struct {
	Messages    []messageRow `parquet:"messages,list"`
	Temperature float64      `parquet:"temperature"`
	Completions []string     `parquet:"completions,list"`
	Rewards     []float64    `parquet:"rewards,list"`
	BestIndex   int64        `parquet:"best_index"`
	BestReward  float64      `parquet:"best_reward"`
}

// With two reward models samples.parquet also holds each model's scores and which one each reward
// took (reward.Select).
type sampleTextRow2 struct {
	Prompt             string    `parquet:"prompt"`
	Temperature        float64   `parquet:"temperature"`
	Completions        []string  `parquet:"completions,list"`
	Rewards            []float64 `parquet:"rewards,list"`
	BestIndex          int64     `parquet:"best_index"`
	BestReward         float64   `parquet:"best_reward"`
	RewardsHelpfulness []float64 `parquet:"rewards_helpfulness,list"`
	RewardsSafety      []float64 `parquet:"rewards_safety,list"`
	UsedSafety         []bool    `parquet:"used_safety,list"`
}

type sampleChatRow2 struct {
	Messages           []messageRow `parquet:"messages,list"`
	Temperature        float64      `parquet:"temperature"`
	Completions        []string     `parquet:"completions,list"`
	Rewards            []float64    `parquet:"rewards,list"`
	BestIndex          int64        `parquet:"best_index"`
	BestReward         float64      `parquet:"best_reward"`
	RewardsHelpfulness []float64    `parquet:"rewards_helpfulness,list"`
	RewardsSafety      []float64    `parquet:"rewards_safety,list"`
	UsedSafety         []bool       `parquet:"used_safety,list"`
}

// modelRewards is sample set (t, i)'s helpfulness and safety scores and choices (two models).
func (s *Sampled) modelRewards(t, i int) (help, safe []float64, used []bool) {
	for m, spec := range s.RewardModels {
		if spec.Role == reward.RoleSafety {
			safe = s.ModelRewards[m][t][i]
		} else {
			help = s.ModelRewards[m][t][i]
		}
	}
	return help, safe, s.UsedSafety[t][i]
}

type bestTextRow struct {
	Prompt     string  `parquet:"prompt"`
	Completion string  `parquet:"completion"`
	Reward     float64 `parquet:"reward"`
}

type bestChatRow struct {
	Messages []messageRow `parquet:"messages,list"`
	Reward   float64      `parquet:"reward"`
}

type pairTextRow struct {
	Prompt        string  `parquet:"prompt"`
	Chosen        string  `parquet:"chosen"`
	Rejected      string  `parquet:"rejected"`
	ScoreChosen   float64 `parquet:"score_chosen"`
	ScoreRejected float64 `parquet:"score_rejected"`
}

type pairChatRow struct {
	Prompt        []messageRow `parquet:"prompt,list"`
	Chosen        []messageRow `parquet:"chosen,list"`
	Rejected      []messageRow `parquet:"rejected,list"`
	ScoreChosen   float64      `parquet:"score_chosen"`
	ScoreRejected float64      `parquet:"score_rejected"`
}

func toRows(ms []chat.Message) []messageRow {
	out := make([]messageRow, len(ms))
	for i, m := range ms {
		out[i] = messageRow{Content: m.Content, Role: m.Role}
	}
	return out
}

func assistant(text string) []messageRow { return []messageRow{{Content: text, Role: "assistant"}} }

// Curve is the reward-versus-N statistics of one temperature (Llama 2 Figure 7).
type Curve struct {
	Temperature float64   `json:"temperature"`
	N           []int     `json:"n"`
	ExpectedMax []float64 `json:"expected_max"`
	Median      []float64 `json:"median"`
}

// Curves computes one Curve per temperature with RewardVsK.
func (s *Sampled) Curves() ([]Curve, error) {
	out := make([]Curve, len(s.Temperatures))
	for t, temp := range s.Temperatures {
		mx, med, err := RewardVsK(s.Rewards[t])
		if err != nil {
			return nil, fmt.Errorf("temperature %g: %w", temp, err)
		}
		n := make([]int, len(mx))
		for i := range n {
			n[i] = i + 1
		}
		out[t] = Curve{Temperature: temp, N: n, ExpectedMax: mx, Median: med}
	}
	return out, nil
}

// Best is prompt i's highest-reward sample over every temperature (ties: the earlier temperature,
// then the lower index), with its reward.
func (s *Sampled) Best(i int) (text string, reward float64) {
	var all []float64
	var texts []string
	for t := range s.Temperatures {
		all = append(all, s.Rewards[t][i]...)
		texts = append(texts, s.Completions[t][i]...)
	}
	b := Best(all)
	return texts[b], all[b]
}

// worst is prompt i's lowest-reward sample (ties: the earlier one).
func (s *Sampled) worst(i int) (text string, reward float64) {
	first := true
	for t := range s.Temperatures {
		for j, r := range s.Rewards[t][i] {
			if first || r < reward {
				text, reward, first = s.Completions[t][i][j], r, false
			}
		}
	}
	return text, reward
}

// WriteSamples writes a sampling run's files into dir:
//
//   - samples.parquet: per prompt and temperature, the prompt (a prompt string, or the messages
//     list), temperature, completions list<string>, rewards list<double>, best_index, best_reward,
//     and with two reward models rewards_helpfulness, rewards_safety (each model's scores) and
//     used_safety list<bool> (whether rewards took the safety score, reward.Select);
//   - best.parquet: each prompt's best sample as an SFT row: messages (prompt turns + the answer)
//     for conversations, prompt + completion for text, with its reward;
//   - pairs.parquet (writePairs): best versus worst sample as a preference pair (prompt, chosen,
//     rejected, score_chosen, score_rejected), skipped for prompts whose two are equal;
//   - reward_vs_k.json and reward_vs_k.png: the expected maximum and median reward of N samples,
//     N = 1..K (a list with one object per temperature when sweep, else one object);
//   - sample_complete.json, last: the marker that the files above are complete.
//
// Every file is written atomically; the marker is removed first and written last, so a directory
// without it is never a finished sample set. It returns the paths written.
func WriteSamples(dir string, s *Sampled, writePairs, sweep bool) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("output_dir: %w", err)
	}
	marker := filepath.Join(dir, CompleteFile)
	if err := os.Remove(marker); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing %s: %w", marker, err)
	}
	conv := s.Prompts[0].Conversational()
	var files []string
	add := func(name string, err error) error {
		if err != nil {
			return err
		}
		files = append(files, filepath.Join(dir, name))
		return nil
	}

	// samples.parquet
	var err error
	two := len(s.RewardModels) == 2 && s.UsedSafety != nil
	switch {
	case two && conv:
		var rows []sampleChatRow2
		for t, temp := range s.Temperatures {
			for i, p := range s.Prompts {
				b := Best(s.Rewards[t][i])
				h, sf, u := s.modelRewards(t, i)
				rows = append(rows, sampleChatRow2{Messages: toRows(p.Messages), Temperature: temp, Completions: s.Completions[t][i],
					Rewards: s.Rewards[t][i], BestIndex: int64(b), BestReward: s.Rewards[t][i][b], RewardsHelpfulness: h, RewardsSafety: sf, UsedSafety: u})
			}
		}
		err = data.WriteParquet(filepath.Join(dir, SamplesFile), rows)
	case two:
		var rows []sampleTextRow2
		for t, temp := range s.Temperatures {
			for i, p := range s.Prompts {
				b := Best(s.Rewards[t][i])
				h, sf, u := s.modelRewards(t, i)
				rows = append(rows, sampleTextRow2{Prompt: p.Text, Temperature: temp, Completions: s.Completions[t][i],
					Rewards: s.Rewards[t][i], BestIndex: int64(b), BestReward: s.Rewards[t][i][b], RewardsHelpfulness: h, RewardsSafety: sf, UsedSafety: u})
			}
		}
		err = data.WriteParquet(filepath.Join(dir, SamplesFile), rows)
	case conv:
		var rows []sampleChatRow
		for t, temp := range s.Temperatures {
			for i, p := range s.Prompts {
				b := Best(s.Rewards[t][i])
				rows = append(rows, sampleChatRow{Messages: toRows(p.Messages), Temperature: temp, Completions: s.Completions[t][i],
					Rewards: s.Rewards[t][i], BestIndex: int64(b), BestReward: s.Rewards[t][i][b]})
			}
		}
		err = data.WriteParquet(filepath.Join(dir, SamplesFile), rows)
	default:
		var rows []sampleTextRow
		for t, temp := range s.Temperatures {
			for i, p := range s.Prompts {
				b := Best(s.Rewards[t][i])
				rows = append(rows, sampleTextRow{Prompt: p.Text, Temperature: temp, Completions: s.Completions[t][i],
					Rewards: s.Rewards[t][i], BestIndex: int64(b), BestReward: s.Rewards[t][i][b]})
			}
		}
		err = data.WriteParquet(filepath.Join(dir, SamplesFile), rows)
	}
	if err := add(SamplesFile, err); err != nil {
		return nil, err
	}

	// best.parquet
	if err := add(BestFile, writeBest(filepath.Join(dir, BestFile), s.Prompts, func(i int) (string, float64) { return s.Best(i) })); err != nil {
		return nil, err
	}

	// pairs.parquet
	pairsPath := filepath.Join(dir, PairsFile)
	if writePairs {
		if conv {
			var rows []pairChatRow
			for i, p := range s.Prompts {
				c, rc := s.Best(i)
				r, rr := s.worst(i)
				if c != r && rc > rr {
					rows = append(rows, pairChatRow{Prompt: toRows(p.Messages), Chosen: assistant(c), Rejected: assistant(r), ScoreChosen: rc, ScoreRejected: rr})
				}
			}
			err = data.WriteParquet(pairsPath, rows)
		} else {
			var rows []pairTextRow
			for i, p := range s.Prompts {
				c, rc := s.Best(i)
				r, rr := s.worst(i)
				if c != r && rc > rr {
					rows = append(rows, pairTextRow{Prompt: p.Text, Chosen: c, Rejected: r, ScoreChosen: rc, ScoreRejected: rr})
				}
			}
			err = data.WriteParquet(pairsPath, rows)
		}
		if err := add(PairsFile, err); err != nil {
			return nil, err
		}
	} else if err := os.Remove(pairsPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing stale %s: %w", pairsPath, err) // from an earlier run with write_pairs
	}

	// reward_vs_k.json and .png
	curves, err := s.Curves()
	if err != nil {
		return nil, err
	}
	var doc any = curves
	if !sweep {
		doc = curves[0]
	}
	if err := add(CurvesFile, atomicfile.WriteJSON(filepath.Join(dir, CurvesFile), doc)); err != nil {
		return nil, err
	}
	if err := add(CurvesPlot, plotCurves(filepath.Join(dir, CurvesPlot), curves)); err != nil {
		return nil, err
	}

	marker, err = filepath.Abs(marker)
	if err != nil {
		return nil, err
	}
	done := map[string]any{"prompts": len(s.Prompts), "k": s.K, "temperatures": s.Temperatures, "files": relNames(files)}
	if err := atomicfile.WriteJSON(marker, done); err != nil {
		return nil, err
	}
	return append(files, marker), nil
}

// SamplesComplete reports whether dir holds a finished sample set.
func SamplesComplete(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, CompleteFile))
	return err == nil
}

func relNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}

// writeBest writes SFT rows: each prompt with the answer best(i) gives.
func writeBest(path string, prompts []Prompt, best func(i int) (string, float64)) error {
	if prompts[0].Conversational() {
		rows := make([]bestChatRow, len(prompts))
		for i, p := range prompts {
			text, r := best(i)
			rows[i] = bestChatRow{Messages: append(toRows(p.Messages), assistant(text)...), Reward: r}
		}
		return data.WriteParquet(path, rows)
	}
	rows := make([]bestTextRow, len(prompts))
	for i, p := range prompts {
		text, r := best(i)
		rows[i] = bestTextRow{Prompt: p.Text, Completion: text, Reward: r}
	}
	return data.WriteParquet(path, rows)
}

var curveColors = []color.Color{
	color.RGBA{R: 31, G: 119, B: 180, A: 255}, color.RGBA{R: 214, G: 39, B: 40, A: 255},
	color.RGBA{R: 44, G: 160, B: 44, A: 255}, color.RGBA{R: 148, G: 103, B: 189, A: 255},
	color.RGBA{R: 255, G: 127, B: 14, A: 255}, color.RGBA{R: 140, G: 86, B: 75, A: 255},
}

// plotCurves draws Figure 7: per temperature, the expected maximum reward of N samples (solid) and
// the median (dashed), in one colour.
func plotCurves(path string, curves []Curve) error {
	f, err := curvesFigure(curves)
	if err != nil {
		return fmt.Errorf("plotting %s: %w", path, err)
	}
	png, err := f.PNG()
	if err != nil {
		return fmt.Errorf("drawing %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, png)
}

// curvesFigure lays Figure 7 out with plotfit: the axes padded so the best-of-16 point does not sit
// on the frame, the legend at a corner no curve crosses (the max curves rise, so usually the top
// left).
func curvesFigure(curves []Curve) (*plotfit.Figure, error) {
	p := plot.New()
	p.Title.Text = "reward vs number of samples"
	p.X.Label.Text = "N samples"
	p.Y.Label.Text = "reward"
	p.Add(plotter.NewGrid())
	f := plotfit.New(p, 7*vg.Inch, 4.5*vg.Inch)
	f.Radius = vg.Points(1.5)
	for i, c := range curves {
		col := curveColors[i%len(curveColors)]
		for _, s := range []struct {
			name   string
			ys     []float64
			dashed bool
		}{{"max", c.ExpectedMax, false}, {"median", c.Median, true}} {
			xys := make(plotter.XYs, len(s.ys))
			for n, y := range s.ys {
				xys[n] = plotter.XY{X: float64(n + 1), Y: y}
			}
			l, pts, err := plotter.NewLinePoints(xys)
			if err != nil {
				return nil, err
			}
			l.Color, pts.Color = col, col
			pts.Radius = f.Radius
			pts.Shape = draw.CircleGlyph{}
			if s.dashed {
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			}
			p.Add(l, pts)
			f.Add(fmt.Sprintf("T=%g %s", c.Temperature, s.name), xys, l)
		}
	}
	return f, f.Fit()
}
