package hub_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/gguf"
	"github.com/alignkit/alignkit/model/hub"
)

// putRepo lays out one repo revision as huggingface_hub's cache does: each file's bytes in
// blobs/<sha256>, snapshots/<commit>/<path> a relative symlink to it, and refs/<ref> holding the
// commit (no ref file when ref is "").
func putRepo(t *testing.T, cache, kind, id, ref, commit string, files map[string]string) string {
	t.Helper()
	repo := filepath.Join(cache, kind+"--"+strings.ReplaceAll(id, "/", "--"))
	for rel, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		blob := filepath.Join(repo, "blobs", hex.EncodeToString(sum[:]))
		mustWrite(t, blob, b)
		link := filepath.Join(repo, "snapshots", commit, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			t.Fatal(err)
		}
		target, err := filepath.Rel(filepath.Dir(link), blob)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	if ref != "" {
		mustWrite(t, filepath.Join(repo, "refs", filepath.FromSlash(ref)), []byte(commit))
	}
	return filepath.Join(repo, "snapshots", commit)
}

func mustWrite(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// storiesFiles are stories260K's HF files, by repo path.
func storiesFiles(t *testing.T) map[string]string {
	dir := sharedtest.Path(t, "models", "stories260K")
	out := map[string]string{}
	for _, f := range []string{"config.json", "generation_config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.model", "tokenizer_config.json"} {
		out[f] = filepath.Join(dir, f)
	}
	return out
}

const (
	commitMain = "0123456789abcdef0123456789abcdef01234567"
	commitV1   = "89abcdef0123456789abcdef0123456789abcdef"
)

func TestParseRepo(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want hub.Repo
		ok   bool
	}{
		{"karpathy/tinyllamas", hub.Repo{Org: "karpathy", Name: "tinyllamas"}, true},
		{"HuggingFaceH4/no_robots@v1.0", hub.Repo{Org: "HuggingFaceH4", Name: "no_robots", Revision: "v1.0"}, true},
		{"org/name@refs/pr/1", hub.Repo{Org: "org", Name: "name", Revision: "refs/pr/1"}, true},
		{"org/Qwen2.5-0.5B", hub.Repo{Org: "org", Name: "Qwen2.5-0.5B"}, true},
		{"runs", hub.Repo{}, false},
		{"/abs/path", hub.Repo{}, false},
		{"./rel/x", hub.Repo{}, false},
		{"a/b/c", hub.Repo{}, false},
		{"org/na--me", hub.Repo{}, false},
		{"org/name.", hub.Repo{}, false},
		{"org/name@", hub.Repo{}, false},
		{"org/name@../x", hub.Repo{}, false},
		{"data/x.parquet", hub.Repo{Org: "data", Name: "x.parquet"}, true}, // shaped like a name: a local path still wins
	} {
		got, ok := hub.ParseRepo(tc.in)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseRepo(%q) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestModelRevisions(t *testing.T) {
	cache := t.TempDir()
	files := storiesFiles(t)
	snapMain := putRepo(t, cache, "models", "karpathy/stories260K", "main", commitMain, files)
	snapV1 := putRepo(t, cache, "models", "karpathy/stories260K", "v1", commitV1, files)
	// An unreferenced snapshot, reachable only by its commit hash.
	snapBare := putRepo(t, cache, "models", "karpathy/stories260K", "", "fedcba9876543210fedcba9876543210fedcba98", files)
	loc := hub.Locations{HubCache: cache, OllamaModels: t.TempDir()}
	for _, tc := range []struct{ name, want string }{
		{"karpathy/stories260K", snapMain},
		{"karpathy/stories260K@main", snapMain},
		{"karpathy/stories260K@v1", snapV1},
		{"karpathy/stories260K@" + commitV1, snapV1},
		{"karpathy/stories260K@fedcba9876543210fedcba9876543210fedcba98", snapBare},
	} {
		got, err := loc.Model(tc.name)
		if err != nil || got != tc.want {
			t.Errorf("Model(%q) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestModelMisses(t *testing.T) {
	cache := t.TempDir()
	putRepo(t, cache, "models", "karpathy/stories260K", "main", commitMain, storiesFiles(t))
	ollama := t.TempDir()
	loc := hub.Locations{HubCache: cache, OllamaModels: ollama}
	repo := filepath.Join(cache, "models--karpathy--stories260K")
	for _, tc := range []struct{ name, want string }{
		{"meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-7b-hf: not a local path, and not in the Hugging Face cache " + cache +
			" (no models--meta-llama--Llama-2-7b-hf) (fetch it with: huggingface-cli download meta-llama/Llama-2-7b-hf)"},
		{"karpathy/stories260K@v2", "karpathy/stories260K@v2: revision \"v2\" is neither a ref nor a snapshot in " + repo +
			" (fetch it with: huggingface-cli download karpathy/stories260K --revision v2)"},
		{"ollama:llama3.2", "ollama:llama3.2: not a local path, and not in the ollama store " + ollama + " (no " +
			filepath.Join(ollama, "manifests", "registry.ollama.ai", "library", "llama3.2", "latest") + ") (fetch it with: ollama pull llama3.2)"},
		{"ollama:me/tiny:q8", "ollama:me/tiny:q8: not a local path, and not in the ollama store " + ollama + " (no " +
			filepath.Join(ollama, "manifests", "registry.ollama.ai", "me", "tiny", "q8") + ") (fetch it with: ollama pull me/tiny:q8)"},
	} {
		_, err := loc.Model(tc.name)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Model(%q) error:\n got %v\nwant %s", tc.name, err, tc.want)
		}
		if !errors.Is(err, hub.ErrNotFound) {
			t.Errorf("Model(%q): error does not wrap ErrNotFound", tc.name)
		}
	}
	// A ref pointing at a commit with no snapshot (an interrupted download).
	mustWrite(t, filepath.Join(repo, "refs", "broken"), []byte("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"))
	want := "karpathy/stories260K@broken: ref broken points at commit aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, which has no snapshot in " +
		repo + " (fetch it with: huggingface-cli download karpathy/stories260K --revision broken)"
	if _, err := loc.Model("karpathy/stories260K@broken"); err == nil || err.Error() != want {
		t.Errorf("broken ref:\n got %v\nwant %s", err, want)
	}
}

// TestLocalPathWins: a directory named like a repo id is used as the path it is.
func TestLocalPathWins(t *testing.T) {
	cache := t.TempDir()
	putRepo(t, cache, "models", "karpathy/stories260K", "main", commitMain, storiesFiles(t))
	wd := t.TempDir()
	t.Chdir(wd)
	if err := os.MkdirAll(filepath.Join("karpathy", "stories260K"), 0o755); err != nil {
		t.Fatal(err)
	}
	loc := hub.Locations{HubCache: cache}
	if got, err := loc.Model("karpathy/stories260K"); err != nil || got != "karpathy/stories260K" {
		t.Errorf("Model = %q, %v; want the local directory", got, err)
	}
}

// writeOllama stores blob under OLLAMA_MODELS as ollama pull does, with a manifest at
// manifests/<host>/<ns>/<name>/<tag> naming it as the model layer beside a template layer.
func writeOllama(t *testing.T, root string, parts []string, blob []byte) string {
	t.Helper()
	sum := sha256.Sum256(blob)
	hexSum := hex.EncodeToString(sum[:])
	path := filepath.Join(root, "blobs", "sha256-"+hexSum)
	mustWrite(t, path, blob)
	tmpl := []byte("{{ .Prompt }}")
	tsum := sha256.Sum256(tmpl)
	mustWrite(t, filepath.Join(root, "blobs", "sha256-"+hex.EncodeToString(tsum[:])), tmpl)
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.docker.distribution.manifest.v2+json",
		"config":        map[string]any{"mediaType": "application/vnd.docker.container.image.v1+json", "digest": "sha256:" + strings.Repeat("0", 64), "size": 2},
		"layers": []map[string]any{
			{"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + hex.EncodeToString(tsum[:]), "size": len(tmpl)},
			{"mediaType": "application/vnd.ollama.image.model", "digest": "sha256:" + hexSum, "size": len(blob)},
		},
	}
	b, _ := json.Marshal(m)
	mustWrite(t, filepath.Join(append([]string{root, "manifests"}, parts...)...), b)
	return path
}

func TestOllamaNames(t *testing.T) {
	g, err := os.ReadFile(sharedtest.Path(t, "models", "stories260K", "stories260K-f32.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	latest := writeOllama(t, root, []string{"registry.ollama.ai", "library", "stories", "latest"}, g)
	other := writeOllama(t, root, []string{"registry.ollama.ai", "me", "stories", "f32"}, append(append([]byte(nil), g...), 0))
	hf := writeOllama(t, root, []string{"hf.co", "karpathy", "stories", "latest"}, append(append([]byte(nil), g...), 0, 0))
	loc := hub.Locations{HubCache: t.TempDir(), OllamaModels: root}
	for _, tc := range []struct{ name, want string }{
		{"ollama:stories", latest},
		{"ollama:stories:latest", latest},
		{"ollama:me/stories:f32", other},
		{"ollama:hf.co/karpathy/stories", hf},
	} {
		got, err := loc.Model(tc.name)
		if err != nil || got != tc.want {
			t.Errorf("Model(%q) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	// A manifest whose blob was deleted.
	if err := os.Remove(other); err != nil {
		t.Fatal(err)
	}
	want := "ollama:me/stories:f32: manifest " + filepath.Join(root, "manifests", "registry.ollama.ai", "me", "stories", "f32") +
		" names blob " + other + ", which is missing (fetch it with: ollama pull me/stories:f32)"
	if _, err := loc.Model("ollama:me/stories:f32"); err == nil || err.Error() != want {
		t.Errorf("missing blob:\n got %v\nwant %s", err, want)
	}
}

// TestOpenThroughEnvironment: checkpoint.Open takes the names, reading HF_HUB_CACHE and
// OLLAMA_MODELS, and an ollama model's GGUF brings its chat template.
func TestOpenThroughEnvironment(t *testing.T) {
	cache, root := t.TempDir(), t.TempDir()
	t.Setenv("HF_HUB_CACHE", cache)
	t.Setenv("OLLAMA_MODELS", root)
	putRepo(t, cache, "models", "karpathy/stories260K", "main", commitMain, storiesFiles(t))

	src, err := checkpoint.Open(sharedtest.Path(t, "models", "stories260K"))
	if err != nil {
		t.Fatal(err)
	}
	const tmpl = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
	info := checkpoint.GGUFTokenizer(src.Tok)
	info.ChatTemplate = tmpl
	gpath := filepath.Join(t.TempDir(), "chat.gguf")
	if err := gguf.Write(gpath, src.Weights, info, gguf.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	g, err := os.ReadFile(gpath)
	if err != nil {
		t.Fatal(err)
	}
	writeOllama(t, root, []string{"registry.ollama.ai", "library", "stories-chat", "latest"}, g)

	hfm, err := checkpoint.Open("karpathy/stories260K")
	if err != nil {
		t.Fatal(err)
	}
	if hfm.Source != "karpathy/stories260K" || hfm.Dir != filepath.Join(cache, "models--karpathy--stories260K", "snapshots", commitMain) {
		t.Errorf("Source %q Dir %q", hfm.Source, hfm.Dir)
	}
	om, err := checkpoint.Open("ollama:stories-chat")
	if err != nil {
		t.Fatal(err)
	}
	if got := om.Tok.ChatTemplate(); got != tmpl {
		t.Errorf("ollama model's chat template = %q, want %q", got, tmpl)
	}
	// Same weights and tokens as the directory they came from.
	text := "Once upon a time"
	if a, b := hfm.Tok.Encode(text, true), om.Tok.Encode(text, true); !equal(a, b) || !equal(a, []int32{1, 403, 407, 261, 378}) {
		t.Errorf("encodings differ: %v vs %v", a, b)
	}
	if hfm.Weights.NumParams() != om.Weights.NumParams() {
		t.Errorf("params %d vs %d", hfm.Weights.NumParams(), om.Weights.NumParams())
	}
	want := "opening model: nobody/nothing: not a local path, and not in the Hugging Face cache " + cache +
		" (no models--nobody--nothing) (fetch it with: huggingface-cli download nobody/nothing)"
	if _, err := checkpoint.Open("nobody/nothing"); err == nil || err.Error() != want {
		t.Errorf("miss:\n got %v\nwant %s", err, want)
	}
}

func equal(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
