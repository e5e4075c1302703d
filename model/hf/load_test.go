package hf

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/model"
)

// modelDir writes config.json (the stories260K one with edits applied: a nil value deletes a key)
// and model.safetensors holding tensors into a fresh directory.
func modelDir(t *testing.T, edits map[string]any, tensors map[string]*model.Tensor) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(storiesDir(t), ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	for k, v := range edits {
		if v == nil {
			delete(cfg, k)
		} else {
			cfg[k] = v
		}
	}
	dir := t.TempDir()
	b, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if tensors != nil {
		if err := WriteSafetensors(filepath.Join(dir, WeightsFile), tensors, "f32", map[string]string{"format": "pt"}); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadErrors(t *testing.T) {
	base := loadStories(t).Tensors
	with := func(edit func(m map[string]*model.Tensor)) map[string]*model.Tensor {
		m := map[string]*model.Tensor{}
		for k, v := range base {
			m[k] = &model.Tensor{Shape: append([]int(nil), v.Shape...), Data: append([]float32(nil), v.Data...)}
		}
		edit(m)
		return m
	}
	reward := map[string]any{"architectures": []string{"LlamaForSequenceClassification"}, "num_labels": 1}
	cases := []struct {
		name    string
		edits   map[string]any
		tensors map[string]*model.Tensor
		gen     string // generation_config.json content, if any
		want    string // D stands for the directory
	}{
		{"wrong shape vs config", nil, with(func(m map[string]*model.Tensor) {
			m["model.layers.0.mlp.up_proj.weight"].Shape = []int{64, 172}
		}), "", `D: tensor "model.layers.0.mlp.up_proj.weight" has shape [64 172], config.json implies [172 64]`},
		{"missing tensor", nil, with(func(m map[string]*model.Tensor) { delete(m, "model.norm.weight") }), "",
			`D: tensor "model.norm.weight" is missing`},
		{"extra layer", nil, with(func(m map[string]*model.Tensor) { m["model.layers.5.input_layernorm.weight"] = model.NewTensor(64) }), "",
			`D: unexpected tensor "model.layers.5.input_layernorm.weight" for this config`},
		{"config has more layers", map[string]any{"num_hidden_layers": 6}, base, "",
			`D: tensor "model.layers.5.input_layernorm.weight" is missing`},
		{"reward model without score", reward, base, "",
			`D: tensor "score.weight" is missing: config.json declares LlamaForSequenceClassification, a reward model with a [1, 64] score head`},
		{"reward config on a causal LM", reward, with(func(m map[string]*model.Tensor) { m["lm_head.weight"] = m["model.embed_tokens.weight"] }), "",
			`D: tensor "score.weight" is missing: config.json declares LlamaForSequenceClassification, a reward model with a [1, 64] score head, but the weights have lm_head.weight as a causal LM does`},
		{"tied head differs", nil, with(func(m map[string]*model.Tensor) { m["lm_head.weight"] = model.NewTensor(512, 64) }), "",
			`D: config.json ties the output head to the embeddings (tie_word_embeddings true), but lm_head.weight differs from model.embed_tokens.weight`},
		{"untied without lm_head", map[string]any{"tie_word_embeddings": false}, base, "", `D: tensor "lm_head.weight" is missing`},
		{"NaN weight", nil, with(func(m map[string]*model.Tensor) { m["model.norm.weight"].Data[7] = float32(math.NaN()) }), "",
			`D: tensor "model.norm.weight" holds NaN at index 7`},
		{"Inf weight", nil, with(func(m map[string]*model.Tensor) { m["model.embed_tokens.weight"].Data[0] = float32(math.Inf(-1)) }), "",
			`D: tensor "model.embed_tokens.weight" holds -Inf at index 0`},
		{"no weights", nil, nil, "", "D: no model.safetensors or model.safetensors.index.json"},
		{"unsupported rope scaling", map[string]any{"rope_scaling": map[string]any{"type": "linear", "factor": 2}}, base, "",
			`D/config.json: rope_scaling = {"factor":2,"type":"linear"} is not supported by alignkit's model (rope_type "linear" for llama; supported: "llama3" (LlamaForCausalLM), or rope_scaling null)`},
		{"config wrong type", map[string]any{"hidden_size": "64"}, base, "",
			`D/config.json: field "hidden_size" has the wrong type: got a JSON string, want int`},
		{"generation eos wrong type", nil, base, `{"eos_token_id": "x"}`,
			`D/generation_config.json: field "eos_token_id": want an integer or a list of integers, got "x"`},
		{"generation bos is a list", nil, base, `{"bos_token_id": [1, 2]}`,
			`D/generation_config.json: field "bos_token_id": want an integer, got [1,2]`},
		{"generation eos outside vocab", nil, base, `{"eos_token_id": [2, 600]}`,
			`D/generation_config.json: eos_token_id 600 is outside the vocabulary (vocab_size 512)`},
		{"generation not JSON", nil, base, `{"eos_token_id": `, `D/generation_config.json: not a JSON object`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := modelDir(t, c.edits, c.tensors)
			if c.gen != "" {
				if err := os.WriteFile(filepath.Join(dir, GenerationConfigFile), []byte(c.gen), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Load(dir)
			if want := strings.ReplaceAll(c.want, "D", dir); err == nil || err.Error() != want {
				t.Fatalf("error %v\nwant     %s", err, want)
			}
		})
	}

	t.Run("no config", func(t *testing.T) {
		dir := t.TempDir()
		_, err := Load(dir)
		p := filepath.Join(dir, ConfigFile)
		if want := "reading " + p + ": stat " + p + ": no such file or directory"; err == nil || err.Error() != want {
			t.Fatalf("error %v\nwant %s", err, want)
		}
	})
	t.Run("pytorch checkpoint", func(t *testing.T) {
		dir := modelDir(t, nil, nil)
		os.WriteFile(filepath.Join(dir, "pytorch_model.bin"), []byte("PK"), 0o644)
		_, err := Load(dir)
		want := dir + ": no model.safetensors or model.safetensors.index.json (pytorch_model.bin checkpoints are not supported: convert them to safetensors)"
		if err == nil || err.Error() != want {
			t.Fatalf("error %v\nwant %s", err, want)
		}
	})
}

func TestLoadCompat(t *testing.T) {
	stories := loadStories(t)
	base := stories.Tensors
	score := &model.Tensor{Shape: []int{1, 64}, Data: make([]float32, 64)}
	for i := range score.Data {
		score.Data[i] = float32(i) / 64
	}
	plusScore := map[string]*model.Tensor{model.ScoreKey: score}
	plusTied := map[string]*model.Tensor{model.LMHeadKey: base[model.EmbedKey]}
	plusInvFreq := map[string]*model.Tensor{"model.layers.0.self_attn.rotary_emb.inv_freq": {Shape: []int{4}, Data: []float32{1, 0.1, 0.01, 0.001}}}
	cases := []struct {
		name  string
		edits map[string]any
		add   map[string]*model.Tensor
		gen   string
		check func(t *testing.T, c model.Config)
	}{
		{"reward model as transformers saves it (id2label, no num_labels)", map[string]any{
			"architectures": []string{"LlamaForSequenceClassification"},
			"id2label":      map[string]string{"0": "LABEL_0"}, "label2id": map[string]int{"LABEL_0": 0}, "pad_token_id": 0,
		}, plusScore, "", func(t *testing.T, c model.Config) {
			if !c.IsRewardModel() || c.NumLabels != 1 || c.PadTokenID == nil || *c.PadTokenID != 0 {
				t.Errorf("reward config %+v", c)
			}
		}},
		{"Llama 2 config without rope_theta (transformers 4.31)", map[string]any{"rope_theta": nil}, nil, "", func(t *testing.T, c model.Config) {
			if c.RopeTheta != 10000 {
				t.Errorf("rope_theta %v, want transformers' default 10000", c.RopeTheta)
			}
		}},
		{"tied lm_head saved anyway", nil, plusTied, "", func(t *testing.T, c model.Config) {}},
		{"rotary inv_freq buffer", nil, plusInvFreq, "", func(t *testing.T, c model.Config) {}},
		{"generation_config ids", nil, nil, `{"bos_token_id": 1, "eos_token_id": [2, 3, 2], "pad_token_id": -1, "temperature": 0.6}`,
			func(t *testing.T, c model.Config) {
				if !reflect.DeepEqual(c.EOSTokenIDs, []int{2, 3}) || c.EOS() != 2 || c.BOSTokenID != 1 || c.PadTokenID != nil {
					t.Errorf("merged ids: bos %d eos %v pad %v", c.BOSTokenID, c.EOSTokenIDs, c.PadTokenID)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ts := map[string]*model.Tensor{}
			for k, v := range base {
				ts[k] = v
			}
			for k, v := range c.add {
				ts[k] = v
			}
			dir := modelDir(t, c.edits, ts)
			if c.gen != "" {
				os.WriteFile(filepath.Join(dir, GenerationConfigFile), []byte(c.gen), 0o644)
			}
			w, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, w.Config)
			for name, t0 := range base {
				if !sameBits(t0, w.Tensors[name]) {
					t.Errorf("tensor %q differs", name)
				}
			}
			if _, ok := c.add[model.ScoreKey]; ok && !sameBits(w.Tensors[model.ScoreKey], score) {
				t.Error("score.weight differs")
			}
			want := len(base) // the extras are dropped, except a reward head
			if c.add[model.ScoreKey] != nil {
				want++
			}
			if len(w.Tensors) != want {
				t.Errorf("%d tensors, want %d", len(w.Tensors), want)
			}
		})
	}
}

func TestSaveLoadOtherArchitectures(t *testing.T) {
	llama := loadStories(t).Config
	reward := llama
	reward.Architectures = []string{"LlamaForSequenceClassification"}
	reward.NumLabels = 1
	mixtral := llama
	mixtral.Architectures, mixtral.ModelType = []string{"MixtralForCausalLM"}, "mixtral"
	mixtral.NumLocalExperts, mixtral.NumExpertsPerTok, mixtral.RouterAuxLossCoef = 4, 2, 0.02
	mixtral.TieWordEmbeddings = false
	mistral := llama
	mistral.Architectures, mistral.ModelType, mistral.SlidingWindow = []string{"MistralForCausalLM"}, "mistral", 16
	for _, c := range []struct {
		name string
		cfg  model.Config
		opts SaveOptions
	}{
		{"reward", reward, SaveOptions{}},
		{"mixtral sharded", mixtral, SaveOptions{MaxShardSize: 100_000}},
		{"mistral", mistral, SaveOptions{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := model.InitRandom(c.cfg, 7, 0.02)
			dir := t.TempDir()
			saveLoadIdentical(t, dir, w, c.opts)
			if c.cfg.IsRewardModel() {
				var raw map[string]any
				b, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
				json.Unmarshal(b, &raw)
				if !reflect.DeepEqual(raw["id2label"], map[string]any{"0": "LABEL_0"}) || raw["num_labels"] != 1.0 {
					t.Errorf("reward config.json lacks the label fields transformers reads: %s", b)
				}
			}
		})
	}
}

func TestLoadShardedIndexErrors(t *testing.T) {
	w := loadStories(t)
	src := t.TempDir()
	if err := Save(src, w, SaveOptions{MaxShardSize: 300_000}); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(filepath.Join(src, IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	var idx shardIndex
	if err := json.Unmarshal(orig, &idx); err != nil {
		t.Fatal(err)
	}
	norm := "model.norm.weight"
	normFile := idx.WeightMap[norm] // the last shard
	cases := []struct {
		name string
		edit func(m map[string]string)
		raw  string
		want string // I stands for the index path
	}{
		{"file outside the directory", func(m map[string]string) { m[norm] = "../model-00001-of-00004.safetensors" }, "",
			`I: weight_map puts tensor "model.norm.weight" in "../model-00001-of-00004.safetensors", which is not a file name in this directory`},
		{"tensor listed in the wrong shard", func(m map[string]string) { m[norm] = "model-00001-of-00004.safetensors" }, "",
			`I: tensor "model.norm.weight" is in ` + normFile + `, but weight_map puts it in model-00001-of-00004.safetensors`},
		{"tensor not listed", func(m map[string]string) { delete(m, norm) }, "",
			`I: tensor "model.norm.weight" in ` + normFile + ` is not listed in weight_map`},
		{"listed tensor absent", func(m map[string]string) { m["model.extra.weight"] = normFile }, "",
			`I: weight_map puts tensor "model.extra.weight" in ` + normFile + `, which does not hold it`},
		{"missing shard file", func(m map[string]string) { m[norm] = "model-00009-of-00009.safetensors" }, "",
			"I: shard model-00009-of-00009.safetensors is missing"},
		{"corrupt shard", func(m map[string]string) {}, "",
			"D/model-00002-of-00004.safetensors: file is 4 bytes, too short for the 8-byte header length"},
		{"empty weight_map", nil, `{"metadata": {}, "weight_map": {}}`, "I: weight_map is missing or empty"},
		{"weight_map of the wrong type", nil, `{"weight_map": []}`, `I: field "weight_map" has the wrong type: got a JSON array, want map[string]string`},
		{"not JSON", nil, `{"weight_map": `, "I: not valid JSON: unexpected end of JSON input"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, e := range listDir(t, src) {
				b, _ := os.ReadFile(filepath.Join(src, e))
				os.WriteFile(filepath.Join(dir, e), b, 0o644)
			}
			text := []byte(c.raw)
			if c.edit != nil {
				m := map[string]string{}
				for k, v := range idx.WeightMap {
					m[k] = v
				}
				c.edit(m)
				text, _ = json.Marshal(shardIndex{Metadata: idx.Metadata, WeightMap: m})
			}
			ip := filepath.Join(dir, IndexFile)
			os.WriteFile(ip, text, 0o644)
			if c.name == "corrupt shard" {
				os.Truncate(filepath.Join(dir, "model-00002-of-00004.safetensors"), 4)
			}
			_, err := Load(dir)
			want := strings.NewReplacer("I:", ip+":", "D/", dir+"/").Replace(c.want)
			if err == nil || err.Error() != want {
				t.Fatalf("error %v\nwant     %s", err, want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		err  string
	}{
		{"2GB", 2_000_000_000, ""},
		{"500MB", 500_000_000, ""},
		{"10KB", 10_000, ""},
		{"5gb", 625_000_000, ""}, // transformers: a lower-case trailing b means bits
		{"5Gb", 625_000_000, ""},
		{"1GiB", 1 << 30, ""},
		{"3mib", 3 << 20, ""},
		{"4KiB", 4096, ""},
		{" 2GB ", 2_000_000_000, ""},
		{"123456", 123456, ""},
		{"1.5GB", 0, `size "1.5GB": want a positive integer with an optional unit, e.g. "2GB", "500MB" or "10KiB"`},
		{"0MB", 0, `size "0MB": want a positive integer with an optional unit, e.g. "2GB", "500MB" or "10KiB"`},
		{"-1GB", 0, `size "-1GB": want a positive integer with an optional unit, e.g. "2GB", "500MB" or "10KiB"`},
		{"GB", 0, `size "GB": want a positive integer with an optional unit, e.g. "2GB", "500MB" or "10KiB"`},
		{"", 0, `size "": want a positive integer with an optional unit, e.g. "2GB", "500MB" or "10KiB"`},
		{"2TB", 0, `size "2TB": want a positive integer with an optional unit, e.g. "2GB", "500MB" or "10KiB"`},
		{"99999999999GB", 0, `size "99999999999GB" is too large`},
	}
	for _, c := range cases {
		got, err := ParseSize(c.in)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("ParseSize(%q) error %v, want %s", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

func TestCopyTokenizerFiles(t *testing.T) {
	src := storiesDir(t)
	dst := filepath.Join(t.TempDir(), "new", "model")
	if err := CopyTokenizerFiles(src, dst); err != nil {
		t.Fatal(err)
	}
	want := []string{"special_tokens_map.json", "tokenizer.model", "tokenizer_config.json"} // what stories260K has
	if got := listDir(t, dst); !reflect.DeepEqual(got, want) {
		t.Errorf("copied %v, want %v", got, want)
	}
	for _, f := range want {
		a, _ := os.ReadFile(filepath.Join(src, f))
		b, _ := os.ReadFile(filepath.Join(dst, f))
		if len(a) == 0 || string(a) != string(b) {
			t.Errorf("%s differs after the copy", f)
		}
	}
	// Copying a directory onto itself changes nothing.
	if err := CopyTokenizerFiles(dst, dst); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, dst); !reflect.DeepEqual(got, want) {
		t.Errorf("after a self-copy: %v", got)
	}
	missing := filepath.Join(t.TempDir(), "absent")
	err := CopyTokenizerFiles(missing, dst)
	if want := "copying tokenizer files: stat " + missing + ": no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}
