package train

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// softmaxTask is an honest Task for the loop's tests: multinomial logistic regression over "sequences"
// of T tokens, each token a D-dimensional input with one of C classes (labels from a fixed random
// teacher, so the loss can fall far). Params: W (C, D) with decay, b (C) without (like a bias).
//
// Gradients are analytic: for one token, dL/dlogits = softmax(logits) - onehot(y). Each example's
// gradient (mean over its T tokens) is computed in float64 and rounded to float32 once; a micro-batch
// adds the float32 sum of its examples' gradients times scale/len(examples). Because multiplying by a
// power of two is exact, 2 micro-batches of 1 example (scale 1/2 each) give exactly the same buffer as 1
// micro-batch of 2 (scale 1): fl(0.5*g1 + 0.5*g2) = 0.5*fl(g1 + g2).
type softmaxTask struct {
	D, C, T int
	W, B    []float32 // (C, D), (C)
	xs      [][]float64
	ys      [][]int
	evalXs  [][]float64
	evalYs  [][]int

	// Fault injection and observation.
	nanAt       int // Step returns a NaN loss at this step
	infGradAt   int // Step writes an Inf gradient at this step
	cancelAt    [2]int
	cancel      context.CancelFunc
	saveFailAt  int // the saveFailAt-th SaveModel call (1-based) fails after writing config.json
	saveCalls   int
	stepBatches []Batch
}

// newSoftmaxTask builds n training and nEval evaluation examples from a fixed data seed; initSeed sets the
// initial weights (tests resume into a task initialised differently to prove the checkpoint's weights
// are used).
func newSoftmaxTask(n, nEval int, initSeed uint64) *softmaxTask {
	t := &softmaxTask{D: 5, C: 3, T: 4}
	rng := rand.New(rand.NewPCG(7, 0))
	teacher := make([]float64, t.C*t.D)
	for i := range teacher {
		teacher[i] = rng.NormFloat64()
	}
	gen := func(k int) ([][]float64, [][]int) {
		var xs [][]float64
		var ys [][]int
		for range k {
			x := make([]float64, t.T*t.D)
			y := make([]int, t.T)
			for tok := range t.T {
				best := math.Inf(-1)
				for d := range t.D {
					x[tok*t.D+d] = rng.NormFloat64()
				}
				for c := range t.C {
					s := 0.0
					for d := range t.D {
						s += teacher[c*t.D+d] * x[tok*t.D+d]
					}
					if s > best {
						best, y[tok] = s, c
					}
				}
			}
			xs, ys = append(xs, x), append(ys, y)
		}
		return xs, ys
	}
	t.xs, t.ys = gen(n)
	t.evalXs, t.evalYs = gen(nEval)
	init := rand.New(rand.NewPCG(initSeed, 1))
	t.W = make([]float32, t.C*t.D)
	t.B = make([]float32, t.C)
	for i := range t.W {
		t.W[i] = float32(0.1 * init.NormFloat64())
	}
	for i := range t.B {
		t.B[i] = float32(0.1 * init.NormFloat64())
	}
	return t
}

func (t *softmaxTask) Params() []Param {
	return []Param{{Name: "w", Value: t.W}, {Name: "b", Value: t.B, NoDecay: true}}
}
func (t *softmaxTask) NumExamples() int     { return len(t.xs) }
func (t *softmaxTask) NumEvalExamples() int { return len(t.evalXs) }

// example returns one example's mean loss, correct-token count and float32 gradients (dW, db).
func (t *softmaxTask) example(x []float64, y []int, grad bool) (loss float64, correct int, gw, gb []float32) {
	dw := make([]float64, t.C*t.D)
	db := make([]float64, t.C)
	logits := make([]float64, t.C)
	for tok := range t.T {
		xt := x[tok*t.D : (tok+1)*t.D]
		mx, arg := math.Inf(-1), 0
		for c := range t.C {
			s := float64(t.B[c])
			for d := range t.D {
				s += float64(t.W[c*t.D+d]) * xt[d]
			}
			logits[c] = s
			if s > mx {
				mx, arg = s, c
			}
		}
		if arg == y[tok] {
			correct++
		}
		z := 0.0
		for c := range t.C {
			z += math.Exp(logits[c] - mx)
		}
		loss += -(logits[y[tok]] - mx - math.Log(z))
		for c := range t.C {
			p := math.Exp(logits[c]-mx) / z
			if c == y[tok] {
				p--
			}
			db[c] += p / float64(t.T)
			for d := range t.D {
				dw[c*t.D+d] += p * xt[d] / float64(t.T)
			}
		}
	}
	loss /= float64(t.T)
	if grad {
		gw, gb = make([]float32, len(dw)), make([]float32, len(db))
		for i := range dw {
			gw[i] = float32(dw[i])
		}
		for i := range db {
			gb[i] = float32(db[i])
		}
	}
	return loss, correct, gw, gb
}

func (t *softmaxTask) Step(ctx context.Context, b Batch, grads [][]float32, scale float32) (Metrics, error) {
	t.stepBatches = append(t.stepBatches, b)
	if t.cancel != nil && b.Step == t.cancelAt[0] && b.Micro == t.cancelAt[1] {
		t.cancel()
	}
	sw := make([]float32, t.C*t.D)
	sb := make([]float32, t.C)
	var loss float64
	correct := 0
	for _, e := range b.Examples {
		l, c, gw, gb := t.example(t.xs[e], t.ys[e], true)
		loss += l
		correct += c
		for i := range sw {
			sw[i] += gw[i]
		}
		for i := range sb {
			sb[i] += gb[i]
		}
	}
	f := scale / float32(len(b.Examples))
	for i := range sw {
		grads[0][i] += float32(sw[i] * f)
	}
	for i := range sb {
		grads[1][i] += float32(sb[i] * f)
	}
	if b.Step == t.infGradAt {
		grads[1][0] = float32(math.Inf(1))
	}
	tokens := len(b.Examples) * t.T
	m := Metrics{Loss: loss / float64(len(b.Examples)), Tokens: tokens,
		Values:  map[string]float64{MeanTokenAccuracy: float64(correct) / float64(tokens)},
		Weights: map[string]float64{MeanTokenAccuracy: float64(tokens)}}
	if b.Step == t.nanAt {
		m.Loss = math.NaN()
	}
	return m, nil
}

func (t *softmaxTask) Eval(_ context.Context, b Batch) (Metrics, error) {
	var loss float64
	correct := 0
	for _, e := range b.Examples {
		l, c, _, _ := t.example(t.evalXs[e], t.evalYs[e], false)
		loss += l
		correct += c
	}
	tokens := len(b.Examples) * t.T
	return Metrics{Loss: loss / float64(len(b.Examples)), Tokens: tokens,
		Values:  map[string]float64{MeanTokenAccuracy: float64(correct) / float64(tokens), "examples": float64(len(b.Examples))},
		Weights: map[string]float64{MeanTokenAccuracy: float64(tokens), "examples": 1}}, nil
}

// SaveModel writes config.json and model.bin (W then B, little-endian float32).
func (t *softmaxTask) SaveModel(dir string) error {
	t.saveCalls++
	cfg, _ := json.Marshal(map[string]int{"d": t.D, "c": t.C})
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644); err != nil {
		return err
	}
	if t.saveCalls == t.saveFailAt {
		return errors.New("disk full (simulated)")
	}
	var b []byte
	for _, x := range append(append([]float32{}, t.W...), t.B...) {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return os.WriteFile(filepath.Join(dir, "model.bin"), b, 0o644)
}
