package lora

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/alignkit/alignkit/internal/atomicfile"
	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/hf"
)

// The files of a PEFT adapter directory.
const (
	ConfigFile  = "adapter_config.json"
	WeightsFile = "adapter_model.safetensors"
	// Prefix is what PeftModel's state dict puts before the base model's own names.
	Prefix = "base_model.model."
)

// PEFT's task types for the two heads.
const (
	TaskCausalLM = "CAUSAL_LM"
	TaskSeqCls   = "SEQ_CLS"
)

// peftConfig is adapter_config.json as PEFT's LoraConfig.to_dict writes it. Only keys PEFT has had
// since 0.9 are written (older PEFT refuses keys it does not know; newer PEFT, vLLM and llama.cpp's
// convert_lora_to_gguf.py fill in defaults for absent ones); lora_bias is read to refuse it.
type peftConfig struct {
	PeftType            string         `json:"peft_type"`
	TaskType            string         `json:"task_type"`
	BaseModelNameOrPath string         `json:"base_model_name_or_path"`
	Revision            any            `json:"revision"`
	R                   int            `json:"r"`
	LoraAlpha           float64        `json:"lora_alpha"`
	LoraDropout         float64        `json:"lora_dropout"`
	TargetModules       []string       `json:"target_modules"`
	ModulesToSave       []string       `json:"modules_to_save"`
	UseRSLoRA           bool           `json:"use_rslora"`
	UseDoRA             bool           `json:"use_dora"`
	Bias                string         `json:"bias"`
	FanInFanOut         bool           `json:"fan_in_fan_out"`
	InitLoraWeights     bool           `json:"init_lora_weights"`
	InferenceMode       bool           `json:"inference_mode"`
	RankPattern         map[string]any `json:"rank_pattern"`
	AlphaPattern        map[string]any `json:"alpha_pattern"`
	LayersToTransform   any            `json:"layers_to_transform"`
	LayersPattern       any            `json:"layers_pattern"`
	AutoMapping         any            `json:"auto_mapping"`
	MegatronConfig      any            `json:"megatron_config"`
	MegatronCore        string         `json:"megatron_core"`
	LoftqConfig         map[string]any `json:"loftq_config"`
	LoraBias            bool           `json:"lora_bias,omitempty"`
}

// Meta is what an adapter directory records beside the tensors.
type Meta struct {
	// BaseModel is base_model_name_or_path: where the base was loaded from.
	BaseModel string
	// TaskType is CAUSAL_LM or SEQ_CLS (a reward model); empty picks it from the base's config.
	TaskType string
}

// Save writes the adapter as PEFT's save_pretrained does: adapter_config.json and
// adapter_model.safetensors (F32) with PEFT's state-dict names —
// base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight and ...lora_B.weight for each
// adapted weight, base_model.model.lm_head.weight for a modules_to_save tensor. Each file is
// written atomically. w is the base the adapter belongs to (checked against it).
func Save(dir string, ad *model.Adapter, w *model.Weights, meta Meta) error {
	if err := ad.Check(w, "lora: save"); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("lora: save: %w", err)
	}
	task := meta.TaskType
	if task == "" {
		task = TaskCausalLM
		if w.Config.IsRewardModel() {
			task = TaskSeqCls
		}
	}
	tensors := map[string]*model.Tensor{}
	var targets, saved []string
	for _, name := range ad.LayerNames() {
		a, b := model.LoRAKeys(name)
		tensors[Prefix+a] = ad.Layers[name].A
		tensors[Prefix+b] = ad.Layers[name].B
		if m := ModuleName(name); !slices.Contains(targets, m) {
			targets = append(targets, m)
		}
	}
	for name, t := range ad.Saved {
		tensors[Prefix+name] = t
		if m := ModuleName(name); !slices.Contains(saved, m) {
			saved = append(saved, m)
		}
	}
	slices.Sort(targets)
	slices.Sort(saved) // nil writes JSON null, as PEFT writes an unset modules_to_save
	cfg := peftConfig{
		PeftType: "LORA", TaskType: task, BaseModelNameOrPath: meta.BaseModel,
		R: ad.R, LoraAlpha: ad.Alpha, LoraDropout: ad.Dropout, TargetModules: targets, ModulesToSave: saved,
		UseRSLoRA: ad.RSLoRA, Bias: "none", InitLoraWeights: true, InferenceMode: true,
		RankPattern: map[string]any{}, AlphaPattern: map[string]any{}, MegatronCore: "megatron.core",
		LoftqConfig: map[string]any{},
	}
	if targets == nil {
		cfg.TargetModules = []string{}
	}
	js, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("lora: save: %w", err)
	}
	if err := hf.WriteSafetensors(filepath.Join(dir, WeightsFile), tensors, "f32", map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("lora: save: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, ConfigFile), append(js, '\n')); err != nil {
		return fmt.Errorf("lora: save: %w", err)
	}
	return nil
}

// maxConfigBytes bounds adapter_config.json (PEFT's is about 1 KB).
const maxConfigBytes = 1 << 20

// IsAdapterDir reports whether dir is a PEFT adapter directory: it holds adapter_config.json and
// no config.json of a full model.
func IsAdapterDir(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, ConfigFile)); err != nil {
		return false
	}
	_, err := os.Stat(filepath.Join(dir, "config.json"))
	return err != nil
}

// ReadMeta reads what an adapter directory records beside its tensors: the base_model_name_or_path
// PEFT's AutoPeftModel classes load the base from (which must be set), and the task type.
func ReadMeta(dir string) (Meta, error) {
	cfg, err := readConfig(dir)
	if err != nil {
		return Meta{}, err
	}
	if cfg.BaseModelNameOrPath == "" {
		return Meta{}, fmt.Errorf("%s: base_model_name_or_path is empty: name the base model and give this directory as the adapter", filepath.Join(dir, ConfigFile))
	}
	return Meta{BaseModel: cfg.BaseModelNameOrPath, TaskType: cfg.TaskType}, nil
}

// readConfig reads dir's adapter_config.json within maxConfigBytes.
func readConfig(dir string) (peftConfig, error) {
	cfgPath := filepath.Join(dir, ConfigFile)
	st, err := os.Stat(cfgPath)
	if err != nil {
		return peftConfig{}, fmt.Errorf("lora: opening adapter: %w", err)
	}
	if st.Size() > maxConfigBytes {
		return peftConfig{}, fmt.Errorf("%s: %d bytes, more than an adapter config's %d", cfgPath, st.Size(), maxConfigBytes)
	}
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		return peftConfig{}, fmt.Errorf("lora: %w", err)
	}
	var cfg peftConfig
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&cfg); err != nil {
		return peftConfig{}, fmt.Errorf("%s: invalid JSON: %v", cfgPath, err)
	}
	return cfg, nil
}

// Load reads a PEFT LoRA adapter directory for the base w and checks it against w: every tensor
// must name one of w's weights, and A, B and saved tensors must have the shapes w implies (an
// error names the tensor and both shapes). PEFT features alignkit does not run (DoRA, bias
// training, rank or alpha patterns, fan_in_fan_out, embedding adapters) are refused, each by name.
func Load(dir string, w *model.Weights) (*model.Adapter, Meta, error) {
	cfgPath := filepath.Join(dir, ConfigFile)
	cfg, err := readConfig(dir)
	if err != nil {
		return nil, Meta{}, err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", cfgPath, fmt.Sprintf(format, args...))
	}
	switch {
	case cfg.PeftType != "LORA":
		return nil, Meta{}, bad("peft_type %q is not LORA", cfg.PeftType)
	case cfg.R < 1:
		return nil, Meta{}, bad("r must be >= 1, got %d", cfg.R)
	case math.IsNaN(cfg.LoraAlpha) || math.IsInf(cfg.LoraAlpha, 0):
		return nil, Meta{}, bad("lora_alpha %g is not finite", cfg.LoraAlpha)
	case !(cfg.LoraDropout >= 0 && cfg.LoraDropout < 1):
		return nil, Meta{}, bad("lora_dropout %g is outside [0, 1)", cfg.LoraDropout)
	case cfg.UseDoRA:
		return nil, Meta{}, bad("use_dora is true; alignkit runs plain LoRA only")
	case cfg.Bias != "" && cfg.Bias != "none":
		return nil, Meta{}, bad("bias %q: alignkit's models have no biases to train (want none)", cfg.Bias)
	case cfg.FanInFanOut:
		return nil, Meta{}, bad("fan_in_fan_out is true; that is for GPT-2's Conv1D layers, which alignkit's models lack")
	case len(cfg.RankPattern) > 0:
		return nil, Meta{}, bad("rank_pattern is set; alignkit runs one rank for every layer")
	case len(cfg.AlphaPattern) > 0:
		return nil, Meta{}, bad("alpha_pattern is set; alignkit runs one alpha for every layer")
	case cfg.LoraBias:
		return nil, Meta{}, bad("lora_bias is true; alignkit's adapters have no bias")
	}
	ad := &model.Adapter{R: cfg.R, Alpha: cfg.LoraAlpha, RSLoRA: cfg.UseRSLoRA, Dropout: cfg.LoraDropout,
		Layers: map[string]*model.LoRALayer{}, Saved: map[string]*model.Tensor{}}
	wPath := filepath.Join(dir, WeightsFile)
	tensors, err := hf.ReadSafetensors(wPath)
	if err != nil {
		return nil, Meta{}, fmt.Errorf("lora: %w", err)
	}
	for _, key := range sortedKeys(tensors) {
		t := tensors[key]
		name, ok := strings.CutPrefix(key, Prefix)
		if !ok {
			return nil, Meta{}, fmt.Errorf("%s: tensor %q lacks PEFT's %q prefix", wPath, key, Prefix)
		}
		var base string
		var isA bool
		switch {
		case strings.HasSuffix(name, ".lora_A.weight"):
			base, isA = strings.TrimSuffix(name, ".lora_A.weight")+".weight", true
		case strings.HasSuffix(name, ".lora_B.weight"):
			base = strings.TrimSuffix(name, ".lora_B.weight") + ".weight"
		case strings.Contains(name, "lora_"):
			return nil, Meta{}, fmt.Errorf("%s: tensor %q is not a linear layer's lora_A or lora_B (embedding adapters and LoRA biases are not supported)", wPath, key)
		default:
			if _, ok := w.Tensors[name]; !ok {
				return nil, Meta{}, fmt.Errorf("%s: tensor %q names %q, which the base model lacks", wPath, key, name)
			}
			ad.Saved[name] = t
			continue
		}
		if _, ok := w.Tensors[base]; !ok {
			return nil, Meta{}, fmt.Errorf("%s: tensor %q adapts %q, which the base model lacks", wPath, key, base)
		}
		l := ad.Layers[base]
		if l == nil {
			l = &model.LoRALayer{}
			ad.Layers[base] = l
		}
		if isA {
			l.A = t
		} else {
			l.B = t
		}
	}
	for _, name := range ad.LayerNames() {
		l := ad.Layers[name]
		a, b := model.LoRAKeys(name)
		if l.A == nil {
			return nil, Meta{}, fmt.Errorf("%s: %q has no partner %q", wPath, Prefix+b, Prefix+a)
		}
		if l.B == nil {
			return nil, Meta{}, fmt.Errorf("%s: %q has no partner %q", wPath, Prefix+a, Prefix+b)
		}
	}
	if len(ad.Layers) == 0 && len(ad.Saved) == 0 {
		return nil, Meta{}, fmt.Errorf("%s: no LoRA tensors", wPath)
	}
	if err := ad.Check(w, dir); err != nil {
		return nil, Meta{}, err
	}
	return ad, Meta{BaseModel: cfg.BaseModelNameOrPath, TaskType: cfg.TaskType}, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
