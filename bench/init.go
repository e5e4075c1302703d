package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/quant"
)

// baseDtypes are the values of --base-dtype and the trainers' keys each one stands for.
var baseDtypes = []struct {
	name string
	q    quant.Config
}{
	{"float32", quant.Config{}},
	{"bfloat16", quant.Config{TorchDtype: "bfloat16"}},
	{"float16", quant.Config{TorchDtype: "float16"}},
	{"int8", quant.Config{LoadIn8bit: true}},
	{"nf4", quant.Config{LoadIn4bit: true}},
}

// BaseDtypeNames lists the values --base-dtype accepts.
func BaseDtypeNames() []string {
	out := make([]string, len(baseDtypes))
	for i, d := range baseDtypes {
		out[i] = d.name
	}
	return out
}

// BaseQuant is the trainers' storage config that a --base-dtype value stands for: float32 is the
// default (torch_dtype: float32), bfloat16 and float16 are torch_dtype (every frozen linear weight,
// the output head included), int8 is load_in_8bit (Q8_0) and nf4 load_in_4bit (QLoRA's NF4), both
// of which leave lm_head at torch_dtype's float32, as transformers keeps it out of bitsandbytes.
// "" is float32.
func BaseQuant(name string) (quant.Config, error) {
	if name == "" {
		return quant.Config{}, nil
	}
	for _, d := range baseDtypes {
		if d.name == name {
			return d.q, nil
		}
	}
	return quant.Config{}, fmt.Errorf("--base-dtype %q: want one of %s", name, strings.Join(BaseDtypeNames(), ", "))
}

// InitBase returns the random model that model.InitRandom(c, seed, initializerRange) draws (the
// same generator, the same values in the same order) held as q says (quant.Config.Apply's
// choices: lm_head at torch_dtype's format, the other linear weights at load_in_*'s or
// torch_dtype's, the embedding and RMSNorm gains float32 because the graph reads their values).
// Each linear weight is converted right after it is drawn, so the float32 model is never held
// whole: besides what stays float32 and the converted storage, the only float32 memory is two
// buffers the size of the largest converted weight, reused for every one (one is drawn into while
// the other is converted). For llama3-8b that is the difference between a 32 GB float32 model and
// about 8.3 GB held (2.1 GB each for the float32 embedding and lm_head, 4.1 GB of NF4 blocks).
func InitBase(c model.Config, seed uint64, initializerRange float64, q quant.Config) (*model.Weights, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	if initializerRange <= 0 {
		initializerRange = 0.02
	}
	linear, head := q.Formats()
	format := func(name string, shape []int) quant.Format {
		switch {
		case !quant.IsLinear(name, shape):
			return quant.F32
		case name == model.LMHeadKey:
			return head
		}
		return linear
	}
	shapes := model.ExpectedShapes(c)
	names := make([]string, 0, len(shapes))
	scratchLen := 0
	for name, shape := range shapes {
		names = append(names, name)
		if format(name, shape) != quant.F32 {
			scratchLen = max(scratchLen, numel(shape))
		}
	}
	slices.Sort(names) // model.InitRandom draws in sorted name order

	// Drawing and converting overlap: one goroutine converts a weight while the next is drawn into
	// the other of two float32 buffers, so the random stream stays sequential (model.InitRandom's
	// order) and the conversion costs no extra wall time on a second core.
	type job struct {
		name  string
		shape []int
		f     quant.Format
		buf   []float32
	}
	type done struct {
		name string
		m    *quant.Matrix
		err  error
	}
	free := make(chan []float32, 2)
	if scratchLen > 0 {
		free <- make([]float32, scratchLen)
		free <- make([]float32, scratchLen)
	}
	jobs := make(chan job)
	results := make(chan done, len(names))
	go func() {
		defer close(results)
		for j := range jobs {
			m, err := quant.New(j.f, j.shape[0], j.shape[1], j.buf)
			if err != nil {
				err = fmt.Errorf("bench: holding %s as %s: %w", j.name, j.f, err)
			}
			results <- done{j.name, m, err}
			free <- j.buf[:cap(j.buf)]
		}
	}()

	// model.InitRandom's generator and stream.
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	w := &model.Weights{Config: c, Tensors: make(map[string]*model.Tensor, len(shapes))}
	for _, name := range names {
		shape := shapes[name]
		f := format(name, shape)
		var data []float32
		if f == quant.F32 {
			data = make([]float32, numel(shape))
		} else {
			data = (<-free)[:numel(shape)]
		}
		switch {
		case strings.HasSuffix(name, ".bias"):
			clear(data) // zeros, as transformers' _init_weights leaves a Linear's bias
		case len(shape) == 1:
			for i := range data {
				data[i] = 1
			}
		default:
			std := initializerRange
			if name == model.ScoreKey {
				std = 1 / math.Sqrt(float64(c.HiddenSize)+1)
			}
			for i := range data {
				data[i] = float32(rng.NormFloat64() * std)
			}
		}
		if f == quant.F32 {
			w.Tensors[name] = &model.Tensor{Shape: slices.Clone(shape), Data: data}
		} else {
			jobs <- job{name, shape, f, data}
		}
	}
	close(jobs)
	var first error
	for d := range results {
		if d.err != nil && first == nil {
			first = d.err
		}
		if d.err == nil {
			w.Tensors[d.name] = &model.Tensor{Shape: slices.Clone(shapes[d.name]), Frozen: d.m}
		}
	}
	if first != nil {
		return nil, first
	}
	return w, nil
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}
