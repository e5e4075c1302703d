package winrate

import (
	"fmt"
	"image/color"
	"io"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/internal/atomicfile"
)

// messageRow is a {content, role} struct, the field order of Hugging Face's datasets.
type messageRow struct {
	Content string `parquet:"content"`
	Role    string `parquet:"role"`
}

// judgementTextRow and judgementChatRow are the judgements file's rows for text and conversational
// prompts. scores is [score_a, score_b] for a reward judge and empty for an LLM judge; judge_reply
// is the LLM judge's reply as received.
type judgementTextRow struct {
	Row        int64     `parquet:"row"`
	Prompt     string    `parquet:"prompt"`
	AnswerA    string    `parquet:"answer_a"`
	AnswerB    string    `parquet:"answer_b"`
	Swapped    bool      `parquet:"swapped"`
	Verdict    string    `parquet:"verdict"`
	Scores     []float64 `parquet:"scores,list"`
	JudgeReply string    `parquet:"judge_reply"`
}

type judgementChatRow struct {
	Row        int64        `parquet:"row"`
	Prompt     []messageRow `parquet:"prompt,list"`
	AnswerA    string       `parquet:"answer_a"`
	AnswerB    string       `parquet:"answer_b"`
	Swapped    bool         `parquet:"swapped"`
	Verdict    string       `parquet:"verdict"`
	Scores     []float64    `parquet:"scores,list"`
	JudgeReply string       `parquet:"judge_reply"`
}

func scores(j Judgement) []float64 {
	if !j.HasScores {
		return []float64{}
	}
	return []float64{j.ScoreA, j.ScoreB}
}

// writeJudgements writes the judgements, in the models' order, as Parquet (atomically).
func writeJudgements(path string, js []Judgement) error {
	if len(js) > 0 && js[0].Prompt.Messages != nil {
		rows := make([]judgementChatRow, len(js))
		for i, j := range js {
			msgs := make([]messageRow, len(j.Prompt.Messages))
			for k, m := range j.Prompt.Messages {
				msgs[k] = messageRow{Content: m.Content, Role: m.Role}
			}
			rows[i] = judgementChatRow{Row: int64(j.Prompt.Row), Prompt: msgs, AnswerA: j.AnswerA, AnswerB: j.AnswerB,
				Swapped: j.Swapped, Verdict: j.Verdict, Scores: scores(j), JudgeReply: j.Reply}
		}
		return data.WriteParquet(path, rows)
	}
	rows := make([]judgementTextRow, len(js))
	for i, j := range js {
		rows[i] = judgementTextRow{Row: int64(j.Prompt.Row), Prompt: j.Prompt.Text, AnswerA: j.AnswerA, AnswerB: j.AnswerB,
			Swapped: j.Swapped, Verdict: j.Verdict, Scores: scores(j), JudgeReply: j.Reply}
	}
	return data.WriteParquet(path, rows)
}

// errorBar is one point with an asymmetric vertical error, for plotter.YErrorBars.
type errorBar struct{ x, y, lo, hi float64 }

func (e errorBar) Len() int                      { return 1 }
func (e errorBar) XY(int) (float64, float64)     { return e.x, e.y }
func (e errorBar) YError(int) (float64, float64) { return e.y - e.lo, e.hi - e.y }

// writePlot draws the win, tie and loss rates of model A as bars, in percent, with the 95% Wilson
// interval of the win rate, and the score with its interval in the title.
func writePlot(path string, s Summary) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s vs %s: score %.1f%% [%.1f, %.1f] (n = %d, %s)", s.ModelA, s.ModelB,
		100*s.Score, 100*s.ScoreCI95[0], 100*s.ScoreCI95[1], s.Valid, s.Judge)
	p.Y.Label.Text = "% of valid judgements"
	p.Y.Min, p.Y.Max = 0, 100
	p.Add(plotter.NewGrid())
	colors := []color.Color{
		color.RGBA{R: 44, G: 160, B: 44, A: 255}, color.RGBA{R: 127, G: 127, B: 127, A: 255}, color.RGBA{R: 214, G: 39, B: 40, A: 255},
	}
	for i, v := range []float64{s.WinRate, s.TieRate, s.LossRate} {
		vals := make(plotter.Values, 3)
		vals[i] = 100 * v
		b, err := plotter.NewBarChart(vals, vg.Points(40))
		if err != nil {
			return fmt.Errorf("plotting %s: %w", path, err)
		}
		b.Color, b.LineStyle.Width = colors[i], 0
		p.Add(b)
	}
	e := errorBar{x: 0, y: 100 * s.WinRate, lo: 100 * s.WinRateCI95[0], hi: 100 * s.WinRateCI95[1]}
	eb, err := plotter.NewYErrorBars(e)
	if err != nil {
		return fmt.Errorf("plotting %s: %w", path, err)
	}
	p.Add(eb)
	p.NominalX(fmt.Sprintf("A wins %d", s.Wins), fmt.Sprintf("tie %d", s.Ties), fmt.Sprintf("B wins %d", s.Losses))
	png, err := p.WriterTo(7*vg.Inch, 4*vg.Inch, "png")
	if err != nil {
		return fmt.Errorf("drawing %s: %w", path, err)
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		_, err := png.WriteTo(w)
		return err
	})
}
