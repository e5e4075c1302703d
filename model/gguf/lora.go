package gguf

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/alignkit/alignkit/model"
)

// WriteLoRA exports a LoRA adapter over a `llama`-architecture base as llama.cpp's
// convert_lora_to_gguf.py writes one, for llama.cpp's --lora and node-llama-cpp's
// createContext({lora}):
//
//   - metadata general.architecture "llama", general.type "adapter", adapter.type "lora" and
//     adapter.lora.alpha; llama.cpp scales by alpha/r with r read from lora_b, so an rsLoRA adapter
//     is written with alpha·√r, which gives its alpha/√r;
//   - for each adapted weight named blk.N.attn_q.weight (etc.) in the base GGUF, the tensors
//     blk.N.attn_q.weight.lora_a, A (r, in) as torch stores it (ggml dims in, r), and
//     blk.N.attn_q.weight.lora_b, B (out, r) (ggml dims r, out);
//   - B of q_proj and k_proj gets the same row permutation as the base's Q and K (HF's rotate-half
//     layout to llama.cpp's interleaved one), since the permutation acts on the output rows;
//   - Mixtral experts' pairs stacked over experts as the base's ffn_*_exps: A (E, r, in), B
//     (E, out, r); an expert without an adapter stacks zeros (its delta is 0).
//
// Tensors are F32. modules_to_save tensors have no place in a GGUF adapter (convert_lora_to_gguf.py
// refuses them too): export such an adapter merged.
func WriteLoRA(path string, c model.Config, ad *model.Adapter, name string) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if c.IsRewardModel() {
		return fmt.Errorf("writing %s: a reward model's adapter cannot be exported to GGUF: llama.cpp's llama architecture has no score head", path)
	}
	if len(ad.Saved) > 0 {
		var names []string
		for n := range ad.Saved {
			names = append(names, n)
		}
		sort.Strings(names)
		return fmt.Errorf("writing %s: the adapter trains %s in full (modules_to_save), which a GGUF LoRA adapter cannot hold; export it merged (--merge)", path, strings.Join(names, ", "))
	}
	if len(ad.Layers) == 0 {
		return fmt.Errorf("writing %s: the adapter adapts no weights", path)
	}
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	pair := func(hfName string) (*model.LoRALayer, error) {
		l := ad.Layers[hfName]
		if l == nil {
			return nil, nil
		}
		if l.A == nil || l.B == nil || len(l.A.Shape) != 2 || len(l.B.Shape) != 2 || l.A.Shape[0] != ad.R || l.B.Shape[1] != ad.R {
			return nil, fmt.Errorf("writing %s: %s's adapter is not a rank-%d (r, in), (out, r) pair", path, hfName, ad.R)
		}
		return l, nil
	}
	var out []outTensor
	add := func(gg string, l *model.LoRALayer, permuteHeads int) {
		b := l.B
		if permuteHeads > 0 {
			b = &model.Tensor{Shape: b.Shape, Data: permuteRoPE(b.Data, b.Shape, permuteHeads, true)}
		}
		out = append(out,
			outTensor{name: gg + ".lora_a", dims: ggmlDims(l.A.Shape), data: l.A.Data, typ: TypeF32},
			outTensor{name: gg + ".lora_b", dims: ggmlDims(b.Shape), data: b.Data, typ: TypeF32})
	}
	used := 0
	for l := 0; l < c.NumHiddenLayers; l++ {
		lts := c.LayerTensors(l)
		for i := 0; i < len(lts); i++ {
			lt := lts[i]
			if lt.Expert < 0 {
				p, err := pair(lt.HF)
				if err != nil {
					return err
				}
				if p != nil {
					add(lt.GGUF, p, lt.RoPEHeads)
					used++
				}
				continue
			}
			// Experts: llama.cpp holds one stacked (E, ...) tensor per role; an expert the adapter
			// leaves alone contributes zeros.
			experts := lts[i : i+c.NumLocalExperts]
			i += c.NumLocalExperts - 1
			var first *model.LoRALayer
			for _, x := range experts {
				p, err := pair(x.HF)
				if err != nil {
					return err
				}
				if first == nil {
					first = p
				}
			}
			if first == nil {
				continue
			}
			E := c.NumLocalExperts
			a := &model.Tensor{Shape: append([]int{E}, first.A.Shape...), Data: make([]float32, 0, E*len(first.A.Data))} // (E, r, in)
			b := &model.Tensor{Shape: append([]int{E}, first.B.Shape...), Data: make([]float32, 0, E*len(first.B.Data))} // (E, out, r)
			for _, x := range experts {
				p, _ := pair(x.HF)
				if p == nil {
					a.Data = append(a.Data, make([]float32, len(first.A.Data))...)
					b.Data = append(b.Data, make([]float32, len(first.B.Data))...)
					continue
				}
				a.Data = append(a.Data, p.A.Data...)
				b.Data = append(b.Data, p.B.Data...)
				used++
			}
			add(lt.GGUF, &model.LoRALayer{A: a, B: b}, 0)
		}
	}
	if p, err := pair(model.LMHeadKey); err != nil {
		return err
	} else if p != nil {
		add("output.weight", p, 0)
		used++
	}
	if used != len(ad.Layers) {
		return fmt.Errorf("writing %s: %d of the adapter's %d weights have no llama.cpp tensor", path, len(ad.Layers)-used, len(ad.Layers))
	}
	kvs := []kv{
		{"general.architecture", c.GGUFArch()},
		{"general.type", "adapter"},
		{"general.name", name},
		{"general.alignment", uint32(defaultAlign)},
		{"adapter.type", "lora"},
		{"adapter.lora.alpha", float32(ad.Scale() * float64(ad.R))},
		{"general.file_type", uint32(fileTypeAllF32)},
	}
	return writeFile(path, kvs, out, defaultAlign)
}
