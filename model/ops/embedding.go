package ops

import (
	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Embedding gathers rows: weight (V, D) and ids (N) (Int32) give (N, D) with row i = weight[ids[i]].
// It is the token embedding and also the score head's pick of each row's last hidden state. An id
// outside 0..V-1 is an error naming the row. The backward op scatter-adds the upstream rows into a
// dense dW (V, D), split over the cores by vocabulary range so that no two workers write one row.
func Embedding(weight, ids *G.Node) (*G.Node, error) {
	return G.ApplyOp(&embeddingOp{base: base{name: "ops.Embedding"}}, weight, ids)
}

type embeddingOp struct {
	base
	out buf
}

func (op *embeddingOp) Arity() int    { return 2 }
func (op *embeddingOp) Type() hm.Type { return fnType(floatT(2), intT(1), floatT(2)) }

func (op *embeddingOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	sh, err := op.shapes(ds)
	if err != nil {
		return nil, err
	}
	w, ids := sh[0], sh[1]
	if len(w) != 2 || len(ids) != 1 {
		return nil, op.errorf("weight %v and ids %v: want (V, D) and (N)", w, ids)
	}
	return tensor.Shape{ids[0], w[1]}, nil
}

func checkIDs(op *base, ids []int32, v int) error {
	for i, id := range ids {
		if id < 0 || int(id) >= v {
			return op.errorf("id %d at row %d is outside 0..%d", id, i, v-1)
		}
	}
	return nil
}

func (op *embeddingOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs[0])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	ids, err := int32s(vs[1])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	v, d := vs[0].Shape()[0], vs[0].Shape()[1]
	if err := checkIDs(&op.base, ids, v); err != nil {
		return nil, err
	}
	y := op.out.get(dt, len(ids), d)
	if dt == tensor.Float32 {
		gatherRows(floats[float32](y), floats[float32](vs[0]), ids, d)
	} else {
		gatherRows(floats[float64](y), floats[float64](vs[0]), ids, d)
	}
	return y, nil
}

func gatherRows[T Float](y, w []T, ids []int32, d int) {
	parallelRange(len(ids), max(1, 4096/max(d, 1)), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			copy(y[i*d:(i+1)*d], w[int(ids[i])*d:int(ids[i]+1)*d])
		}
	})
}

func (op *embeddingOp) DiffWRT(int) []bool { return []bool{true, false} }

func (op *embeddingOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dw, err := G.ApplyOp(&embeddingGradOp{base: base{name: "ops.EmbeddingGrad"}, vocab: inputs[0].Shape()[0]}, grad, inputs[1])
	if err != nil {
		return nil, err
	}
	return G.Nodes{dw, nil}, nil
}

// embeddingGradOp is dW (V, D) = Σ over rows i of onehot(ids[i]) ⊗ dy[i].
type embeddingGradOp struct {
	base
	vocab int
	out   buf
}

func (op *embeddingGradOp) Arity() int    { return 2 }
func (op *embeddingGradOp) Type() hm.Type { return fnType(floatT(2), intT(1), floatT(2)) }
func (op *embeddingGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	dy, _ := shapeOf(ds[0])
	return tensor.Shape{op.vocab, dy[1]}, nil
}

func (op *embeddingGradOp) Do(vs ...G.Value) (G.Value, error) {
	dt, err := checkFloat(vs[0])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	ids, err := int32s(vs[1])
	if err != nil {
		return nil, op.errorf("%v", err)
	}
	if err := checkIDs(&op.base, ids, op.vocab); err != nil {
		return nil, err
	}
	d := vs[0].Shape()[1]
	dw := op.out.get(dt, op.vocab, d)
	if dt == tensor.Float32 {
		scatterRows(floats[float32](dw), floats[float32](vs[0]), ids, op.vocab, d)
	} else {
		scatterRows(floats[float64](dw), floats[float64](vs[0]), ids, op.vocab, d)
	}
	return dw, nil
}

func scatterRows[T Float](dw, dy []T, ids []int32, v, d int) {
	parallelRange(v, 64, func(lo, hi int) {
		clear(dw[lo*d : hi*d])
		for i, id := range ids {
			r := int(id)
			if r < lo || r >= hi {
				continue
			}
			dst, src := dw[r*d:(r+1)*d], dy[i*d:(i+1)*d]
			for j := range dst {
				dst[j] += src[j]
			}
		}
	})
}
