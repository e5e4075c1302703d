package lora

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/hf"
)

func ptr[T any](v T) *T { return &v }

// tiny is a small Llama (or Mixtral with 4 experts, or a reward model) for adapter tests.
func tiny(moe, reward, untied bool) *model.Weights {
	c := model.Config{
		Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama",
		VocabSize: 37, HiddenSize: 16, IntermediateSize: 24, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, HeadDim: 4,
		RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 64,
		TieWordEmbeddings: !untied, BOSTokenID: 1, EOSTokenIDs: []int{2},
	}
	if moe {
		c.ModelType, c.Architectures = "mixtral", []string{"MixtralForCausalLM"}
		c.NumLocalExperts, c.NumExpertsPerTok, c.RouterAuxLossCoef = 4, 2, 0.02
	}
	if reward {
		c.Architectures = []string{strings.TrimSuffix(c.Architectures[0], "CausalLM") + "SequenceClassification"}
		c.NumLabels = 1
	}
	return model.InitRandom(c, 5, 0.2)
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
		want string
	}{
		{"r zero", Config{LoraR: ptr(0)}, "lora_r: must be >= 1, got 0"},
		{"r negative", Config{LoraR: ptr(-2)}, "lora_r: must be >= 1, got -2"},
		{"alpha", Config{LoraAlpha: ptr(math.NaN())}, "lora_alpha: must be a finite number > 0, got NaN"},
		{"dropout", Config{LoraDropout: ptr(1.0)}, "lora_dropout: must be in [0, 1), got 1"},
		{"targets type", Config{LoraTargetModules: 3}, "lora_target_modules: want a list of module names or all-linear, got int 3"},
		{"targets element", Config{LoraTargetModules: []any{"q_proj", 7}}, "lora_target_modules[1]: want a module name, got int 7"},
		{"targets empty", Config{LoraTargetModules: []any{}}, "lora_target_modules: empty list (leave the key out for the default [q_proj v_proj], or use all-linear)"},
		{"all-linear mixed", Config{LoraTargetModules: []any{"all-linear", "q_proj"}}, "lora_target_modules: all-linear stands alone, got [all-linear q_proj]"},
		{"save empty", Config{LoraModulesToSave: []string{" "}}, "lora_modules_to_save[0]: empty module name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	// Defaults are TRL's; explicit values stay, 0 dropout included.
	d := Config{}.Defaults()
	if *d.LoraR != 16 || *d.LoraAlpha != 32 || *d.LoraDropout != 0.05 {
		t.Fatalf("defaults r %d alpha %g dropout %g, want TRL's 16, 32, 0.05", *d.LoraR, *d.LoraAlpha, *d.LoraDropout)
	}
	e := Config{LoraR: ptr(4), LoraAlpha: ptr(8.0), LoraDropout: ptr(0.0)}.Defaults()
	if *e.LoraR != 4 || *e.LoraAlpha != 8 || *e.LoraDropout != 0 {
		t.Fatalf("explicit values replaced: r %d alpha %g dropout %g", *e.LoraR, *e.LoraAlpha, *e.LoraDropout)
	}
}

func TestResolve(t *testing.T) {
	llama, moe, rm := tiny(false, false, true), tiny(true, false, false), tiny(false, true, false)
	for _, tc := range []struct {
		name          string
		w             *model.Weights
		c             Config
		targets, save []string
		want          string
	}{
		{"default q v", llama, Config{}, []string{"q_proj", "v_proj"}, nil, ""},
		{"all-linear llama", llama, Config{LoraTargetModules: "all-linear"},
			[]string{"down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"}, nil, ""},
		{"all-linear mixtral", moe, Config{LoraTargetModules: []any{"all-linear"}},
			[]string{"gate", "k_proj", "o_proj", "q_proj", "v_proj", "w1", "w2", "w3"}, nil, ""},
		{"experts", moe, Config{LoraTargetModules: []string{"w1", "w2"}}, []string{"w1", "w2"}, nil, ""},
		{"lm_head saved", llama, Config{LoraModulesToSave: []string{"lm_head", "embed_tokens"}},
			[]string{"q_proj", "v_proj"}, []string{"lm_head", "embed_tokens"}, ""}, // sorted by tensor name
		{"reward saves score", rm, Config{}, []string{"q_proj", "v_proj"}, []string{"score"}, ""},
		{"unknown module", llama, Config{LoraTargetModules: []any{"q_proj", "c_attn"}}, nil, nil,
			`lora_target_modules: the model has no linear module "c_attn" (it has down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj, or all-linear)`},
		{"experts on llama", llama, Config{LoraTargetModules: []any{"w1"}}, nil, nil,
			`lora_target_modules: the model has no linear module "w1" (it has down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj, or all-linear)`},
		{"embedding target", llama, Config{LoraTargetModules: []any{"embed_tokens"}}, nil, nil,
			`lora_target_modules: "embed_tokens" is the token embedding; alignkit adapts linear layers only (train it in full with lora_modules_to_save: [embed_tokens])`},
		{"tied lm_head", moe, Config{LoraModulesToSave: []string{"lm_head"}}, nil, nil,
			`lora_modules_to_save: the model has no module "lm_head" (it has embed_tokens, gate, input_layernorm, k_proj, norm, o_proj, post_attention_layernorm, q_proj, v_proj, w1, w2, w3)`},
		{"both", llama, Config{LoraModulesToSave: []string{"q_proj"}}, nil, nil,
			`lora_modules_to_save: "q_proj" is also a LoRA target (model.layers.0.self_attn.q_proj.weight); a module is either adapted or trained in full`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			targets, saved, err := tc.c.Resolve(tc.w)
			if tc.want != "" {
				if err == nil || err.Error() != tc.want {
					t.Fatalf("got %v\nwant %s", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := moduleNames(targets); !slices.Equal(got, tc.targets) {
				t.Fatalf("targets %v, want modules %v", targets, tc.targets)
			}
			var sm []string
			for _, s := range saved {
				sm = append(sm, ModuleName(s))
			}
			if !slices.Equal(sm, tc.save) {
				t.Fatalf("saved %v, want %v", saved, tc.save)
			}
			// Every matching weight of every layer (and expert) is adapted.
			want := 0
			for _, n := range linearWeights(tc.w) {
				if slices.Contains(tc.targets, ModuleName(n)) {
					want++
				}
			}
			if len(targets) != want {
				t.Fatalf("%d weights adapted, want %d", len(targets), want)
			}
		})
	}
}

// New follows PEFT's init: A uniform on ±1/√in (kaiming_uniform_ with a=√5), B zero.
func TestNewInit(t *testing.T) {
	w := tiny(false, false, false)
	ad, err := New(Config{LoraR: ptr(8), LoraTargetModules: "all-linear"}, w, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ad.R != 8 || ad.Alpha != 32 || ad.Dropout != 0.05 || ad.Scale() != 4 {
		t.Fatalf("r %d alpha %g dropout %g scale %g", ad.R, ad.Alpha, ad.Dropout, ad.Scale())
	}
	if rs := (&model.Adapter{R: 16, Alpha: 32, RSLoRA: true}).Scale(); rs != 8 {
		t.Fatalf("rsLoRA scale %g, want 32/√16 = 8", rs)
	}
	for _, name := range ad.LayerNames() {
		l := ad.Layers[name]
		in := w.Tensors[name].Shape[1]
		bound := 1 / math.Sqrt(float64(in))
		var maxAbs, sum2 float64
		for _, v := range l.A.Data {
			maxAbs = math.Max(maxAbs, math.Abs(float64(v)))
			sum2 += float64(v) * float64(v)
		}
		if maxAbs > bound || maxAbs < 0.8*bound {
			t.Fatalf("%s: max |A| %g for bound %g", name, maxAbs, bound)
		}
		// The variance of U(−b, b) is b²/3.
		if v := sum2 / float64(len(l.A.Data)); math.Abs(v-bound*bound/3) > 0.35*bound*bound/3 {
			t.Fatalf("%s: A variance %g, want about %g", name, v, bound*bound/3)
		}
		for _, v := range l.B.Data {
			if v != 0 {
				t.Fatalf("%s: B is not zero", name)
			}
		}
	}
	again, _ := New(Config{LoraR: ptr(8), LoraTargetModules: "all-linear"}, w, 1)
	q := model.LayerKey(1, "self_attn.q_proj.weight")
	if !slices.Equal(again.Layers[q].A.Data, ad.Layers[q].A.Data) {
		t.Fatal("the same seed gave another A")
	}
	if _, err := New(Config{LoraR: ptr(0)}, w, 1); err == nil || err.Error() != "lora_r: must be >= 1, got 0" {
		t.Fatalf("got %v", err)
	}
}

func randomize(ad *model.Adapter, rng *rand.Rand) {
	for _, name := range ad.LayerNames() { // sorted: the same draws every run
		l := ad.Layers[name]
		for i := range l.B.Data {
			l.B.Data[i] = float32(rng.NormFloat64() * 0.2)
		}
	}
}

// The saved directory is PEFT's layout: adapter_config.json's keys and values, and the tensor
// names and shapes of adapter_model.safetensors; Load reads back the same adapter.
func TestSavePEFTLayout(t *testing.T) {
	w := tiny(false, false, true)
	ad, err := New(Config{LoraR: ptr(4), LoraAlpha: ptr(8.0), LoraTargetModules: []any{"q_proj", "down_proj"}, LoraModulesToSave: []string{"lm_head"}}, w, 3)
	if err != nil {
		t.Fatal(err)
	}
	randomize(ad, rand.New(rand.NewPCG(1, 2)))
	dir := filepath.Join(t.TempDir(), "adapter")
	if err := Save(dir, ad, w, Meta{BaseModel: "../shared/models/stories260K"}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4.0, "lora_alpha": 8.0, "lora_dropout": 0.05,
		"use_rslora": false, "use_dora": false, "bias": "none", "fan_in_fan_out": false,
		"base_model_name_or_path": "../shared/models/stories260K", "inference_mode": true, "init_lora_weights": true,
	} {
		if cfg[k] != want {
			t.Errorf("adapter_config.json %s = %v, want %v", k, cfg[k], want)
		}
	}
	if got := cfg["target_modules"]; !slices.Equal(toStrings(got), []string{"down_proj", "q_proj"}) {
		t.Errorf("target_modules %v", got)
	}
	if got := cfg["modules_to_save"]; !slices.Equal(toStrings(got), []string{"lm_head"}) {
		t.Errorf("modules_to_save %v", got)
	}
	tensors, err := hf.ReadSafetensors(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]int{"base_model.model.lm_head.weight": {37, 16}}
	for l := 0; l < 2; l++ {
		p := "base_model.model.model.layers." + string(rune('0'+l))
		want[p+".self_attn.q_proj.lora_A.weight"] = []int{4, 16}
		want[p+".self_attn.q_proj.lora_B.weight"] = []int{16, 4}
		want[p+".mlp.down_proj.lora_A.weight"] = []int{4, 24}
		want[p+".mlp.down_proj.lora_B.weight"] = []int{16, 4}
	}
	if len(tensors) != len(want) {
		t.Fatalf("%d tensors, want %d: %v", len(tensors), len(want), sortedKeys(tensors))
	}
	for name, shape := range want {
		if tensors[name] == nil || !slices.Equal(tensors[name].Shape, shape) {
			t.Fatalf("tensor %s: %v, want shape %v", name, tensors[name], shape)
		}
	}
	back, meta, err := Load(dir, w)
	if err != nil {
		t.Fatal(err)
	}
	if meta.BaseModel != "../shared/models/stories260K" || meta.TaskType != "CAUSAL_LM" {
		t.Fatalf("meta %+v", meta)
	}
	if back.R != 4 || back.Alpha != 8 || back.Dropout != 0.05 || len(back.Layers) != 4 || len(back.Saved) != 1 {
		t.Fatalf("loaded r %d alpha %g dropout %g, %d layers, %d saved", back.R, back.Alpha, back.Dropout, len(back.Layers), len(back.Saved))
	}
	for name, l := range ad.Layers {
		if !slices.Equal(back.Layers[name].A.Data, l.A.Data) || !slices.Equal(back.Layers[name].B.Data, l.B.Data) {
			t.Fatalf("%s differs after the round trip", name)
		}
	}
	// A reward model's adapter is SEQ_CLS and saves score.
	rm := tiny(false, true, false)
	rad, err := New(Config{}, rm, 1)
	if err != nil {
		t.Fatal(err)
	}
	rdir := filepath.Join(t.TempDir(), "rm")
	if err := Save(rdir, rad, rm, Meta{}); err != nil {
		t.Fatal(err)
	}
	raw, _ = os.ReadFile(filepath.Join(rdir, "adapter_config.json"))
	if !strings.Contains(string(raw), `"task_type": "SEQ_CLS"`) || !strings.Contains(string(raw), `"score"`) {
		t.Fatalf("reward adapter config:\n%s", raw)
	}
	rt, _ := hf.ReadSafetensors(filepath.Join(rdir, "adapter_model.safetensors"))
	if rt["base_model.model.score.weight"] == nil {
		t.Fatalf("reward adapter lacks base_model.model.score.weight: %v", sortedKeys(rt))
	}
}

func toStrings(v any) []string {
	var out []string
	for _, e := range v.([]any) {
		out = append(out, e.(string))
	}
	return out
}

func TestLoadErrors(t *testing.T) {
	w := tiny(false, false, true)
	ad, err := New(Config{LoraR: ptr(2)}, w, 3)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "a")
	if err := Save(dir, ad, w, Meta{}); err != nil {
		t.Fatal(err)
	}
	// A base of other shapes: hidden 16 → 24.
	other := tiny(false, false, true)
	c := other.Config
	c.HiddenSize, c.HeadDim = 24, 6
	other = model.InitRandom(c, 1, 0.02)
	_, _, err = Load(dir, other)
	want := dir + `: tensor "model.layers.0.self_attn.q_proj.lora_A.weight" has shape [2 16], the base's model.layers.0.self_attn.q_proj.weight [24 24] implies [2 24]`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	edit := func(t *testing.T, key string, val any) string {
		d := filepath.Join(t.TempDir(), "e")
		if err := Save(d, ad, w, Meta{}); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(d, ConfigFile)
		raw, _ := os.ReadFile(p)
		var m map[string]any
		json.Unmarshal(raw, &m)
		m[key] = val
		raw, _ = json.Marshal(m)
		os.WriteFile(p, raw, 0o644)
		return d
	}
	for _, tc := range []struct {
		key  string
		val  any
		want string
	}{
		{"peft_type", "IA3", `peft_type "IA3" is not LORA`},
		{"r", 0, "r must be >= 1, got 0"},
		{"use_dora", true, "use_dora is true; alignkit runs plain LoRA only"},
		{"bias", "all", `bias "all": alignkit's models have no biases to train (want none)`},
		{"rank_pattern", map[string]any{"q_proj": 8}, "rank_pattern is set; alignkit runs one rank for every layer"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			d := edit(t, tc.key, tc.val)
			_, _, err := Load(d, w)
			if want := filepath.Join(d, ConfigFile) + ": " + tc.want; err == nil || err.Error() != want {
				t.Fatalf("got %v\nwant %s", err, want)
			}
		})
	}
}
