package lora

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/alignkit/alignkit/conf"
)

// job is how a trainer's config embeds the LoRA keys.
type job struct {
	Lora      Config `mapstructure:",squash"`
	OutputDir string `mapstructure:"output_dir"`
}

func (j *job) Validate() error { return j.Lora.Validate() }

// The keys load through conf as TRL spells them: lora_target_modules as a YAML list, as one name
// (TRL's `lora_target_modules: all-linear`) and from --set; lora_r: 0 is one line naming the key.
func TestConfigThroughConf(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var j job
	if err := conf.Load(write("use_peft: true\nlora_r: 8\nlora_dropout: 0\nlora_target_modules: [q_proj, v_proj, o_proj]\nlora_modules_to_save: [lm_head]\nuse_rslora: true\n"), nil, &j); err != nil {
		t.Fatal(err)
	}
	targets, _ := j.Lora.Targets()
	if !j.Lora.UsePEFT || *j.Lora.LoraR != 8 || *j.Lora.LoraDropout != 0 || !j.Lora.UseRSLoRA || j.Lora.LoraAlpha != nil ||
		!slices.Equal(targets, []string{"q_proj", "v_proj", "o_proj"}) || !slices.Equal(j.Lora.LoraModulesToSave, []string{"lm_head"}) {
		t.Fatalf("loaded %+v, targets %v", j.Lora, targets)
	}
	j = job{}
	if err := conf.Load(write("lora_target_modules: all-linear\n"), []string{"lora_alpha=64"}, &j); err != nil {
		t.Fatal(err)
	}
	if targets, _ := j.Lora.Targets(); !slices.Equal(targets, []string{"all-linear"}) || *j.Lora.LoraAlpha != 64 {
		t.Fatalf("loaded %+v", j.Lora)
	}
	j = job{}
	if err := conf.Load(write("use_peft: true\n"), []string{"lora_target_modules=k_proj"}, &j); err != nil {
		t.Fatal(err)
	}
	if targets, _ := j.Lora.Targets(); !slices.Equal(targets, []string{"k_proj"}) {
		t.Fatalf("--set lora_target_modules: %v", targets)
	}
	p := write("lora_r: 0\n")
	err := conf.Load(p, nil, &job{})
	if want := p + ": lora_r: must be >= 1, got 0"; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}
