package checkpoint

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/alignkit/alignkit/model/lora"
)

// TestOpenAdapterDir: a PEFT adapter directory given where a model is expected opens the base its
// adapter_config.json names with the adapter over it (as PEFT's AutoPeftModelForCausalLM), reads
// the directory's own tokenizer (with the chat template the trainer saved), and keeps the base as
// Source; an empty, self-naming or stacked base is refused in one line.
func TestOpenAdapterDir(t *testing.T) {
	base := filepath.Join(sharedDir(t), "models", "stories260K")
	m, err := Open(base)
	if err != nil {
		t.Fatal(err)
	}
	r, alpha := 2, 4.0
	ad, err := lora.New(lora.Config{UsePEFT: true, LoraR: &r, LoraAlpha: &alpha}.Defaults(), m.Weights, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ad.Layers {
		for i := range l.B.Data {
			l.B.Data[i] = 0.01 * float32(i%7)
		}
	}
	m.Adapter = ad
	dir := filepath.Join(t.TempDir(), "adapter")
	if err := SaveAdapter(dir, m); err != nil {
		t.Fatal(err)
	}
	const tmpl = "{% for m in messages %}[{{ m.content }}]{% endfor %}"
	if err := os.WriteFile(filepath.Join(dir, "chat_template.jinja"), []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Source != base || got.Adapter == nil || len(got.Adapter.Layers) != len(ad.Layers) {
		t.Fatalf("Source %q, adapter %v: want the base %q and %d adapted layers", got.Source, got.Adapter, base, len(ad.Layers))
	}
	for name, l := range ad.Layers {
		g := got.Adapter.Layers[name]
		for i := range l.B.Data {
			if g.B.Data[i] != l.B.Data[i] {
				t.Fatalf("%s B[%d]: %v, saved %v", name, i, g.B.Data[i], l.B.Data[i])
			}
		}
	}
	if got.Tok.ChatTemplate() != tmpl {
		t.Fatalf("chat template %q: want the adapter directory's", got.Tok.ChatTemplate())
	}

	write := func(name, baseName string) string {
		d := filepath.Join(t.TempDir(), name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		js := `{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "base_model_name_or_path": "` + baseName + `"}`
		if err := os.WriteFile(filepath.Join(d, lora.ConfigFile), []byte(js), 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	empty := write("empty", "")
	self := write("self", "")
	os.WriteFile(filepath.Join(self, lora.ConfigFile), []byte(`{"peft_type": "LORA", "r": 2, "base_model_name_or_path": "`+self+`"}`), 0o644)
	stacked := write("stacked", dir)
	for _, tc := range []struct{ path, want string }{
		{empty, filepath.Join(empty, lora.ConfigFile) + ": base_model_name_or_path is empty: name the base model and give this directory as the adapter"},
		{self, filepath.Join(self, lora.ConfigFile) + ": base_model_name_or_path names the adapter directory itself"},
		{stacked, filepath.Join(stacked, lora.ConfigFile) + ": base_model_name_or_path " + dir + " is itself an adapter directory; alignkit stacks no adapters (merge the first one with export --merge)"},
	} {
		if _, err := Open(tc.path); err == nil || err.Error() != tc.want {
			t.Errorf("Open(%s): %v\nwant %s", tc.path, err, tc.want)
		}
	}
}
