package model

import (
	"runtime"
	"testing"
	"time"
	"weak"
)

// TestGraphCollectable: once a Graph that has run is dropped, the GC frees it and the weights it
// binds, also with gradient checkpointing (whose sub-graphs have tape machines of their own). The tape machine's finalizer in a reference cycle through the loss closure used to pin
// them forever.
func TestGraphCollectable(t *testing.T) {
	cfg := Config{
		Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama", VocabSize: 32, HiddenSize: 16,
		IntermediateSize: 24, NumHiddenLayers: 1, NumAttentionHeads: 2, NumKeyValueHeads: 2, HeadDim: 8,
		RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 16, TieWordEmbeddings: true,
	}
	for _, c := range []struct{ grad, ckpt bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		grad := c.grad
		wp := func() weak.Pointer[float32] {
			w := InitRandom(cfg, 1, 0.02)
			wp := weak.Make(&w.Tensors[EmbedKey].Data[0])
			g, err := NewGraph(w, GraphSpec{Batch: 1, SeqLen: 4, Head: LMHead, Grad: grad, Checkpoint: c.ckpt})
			if err != nil {
				t.Fatal(err)
			}
			in := Inputs{Tokens: []int32{1, 2, 3, 4}, Targets: []int32{2, 3, 4, -1}, Weights: []float32{1, 1, 1, 0},
				Positions: []int32{0, 1, 2, 3}, Segments: []int32{1, 1, 1, 1}, LastIndex: []int32{3}}
			if _, _, err := g.Run(in, nil); err != nil {
				t.Fatal(err)
			}
			return wp
		}()
		for i := 0; i < 3 && wp.Value() != nil; i++ {
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
		}
		if wp.Value() != nil {
			t.Errorf("grad %v checkpoint %v: the weights of a dropped graph are still reachable", grad, c.ckpt)
		}
	}
}
