package hub

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// ollama's defaults for a short name (ollama's types/model.ParseName): host registry.ollama.ai,
// namespace library, tag latest.
const (
	ollamaHost      = "registry.ollama.ai"
	ollamaNamespace = "library"
	ollamaTag       = "latest"
	ollamaModelType = "application/vnd.ollama.image.model"
)

var (
	ollamaPart   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	ollamaDigest = regexp.MustCompile(`^sha256[:-]([0-9a-f]{64})$`)
)

// ollamaManifest is the part of an ollama (OCI) manifest that locates the weights.
type ollamaManifest struct {
	Layers []struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
	} `json:"layers"`
}

// ollama resolves "name[:tag]", "user/name[:tag]" or "host/namespace/name[:tag]" to the model
// layer's blob, a GGUF file.
func (l Locations) ollama(ref string) (string, error) {
	path, tag, hasTag := strings.Cut(ref, ":")
	if !hasTag {
		tag = ollamaTag
	}
	parts := strings.Split(path, "/")
	switch len(parts) {
	case 1:
		parts = []string{ollamaHost, ollamaNamespace, parts[0]}
	case 2:
		parts = []string{ollamaHost, parts[0], parts[1]}
	case 3:
	default:
		return "", fmt.Errorf("%s%s: want ollama:name[:tag], ollama:user/name[:tag] or ollama:host/namespace/name[:tag]", OllamaPrefix, ref)
	}
	for _, p := range append(parts, tag) {
		if !ollamaPart.MatchString(p) {
			return "", fmt.Errorf("%s%s: %q is not a valid ollama name part", OllamaPrefix, ref, p)
		}
	}
	// ollama pull takes the short forms it was given; show the name as the user wrote it.
	pull := "ollama pull " + ref
	manifest := filepath.Join(append([]string{l.OllamaModels, "manifests"}, append(parts, tag)...)...)
	b, err := os.ReadFile(manifest)
	if os.IsNotExist(err) {
		return "", &notFound{fmt.Sprintf("%s%s: not a local path, and not in the ollama store %s (no %s) (fetch it with: %s)",
			OllamaPrefix, ref, l.OllamaModels, manifest, pull)}
	}
	if err != nil {
		return "", fmt.Errorf("%s%s: %w", OllamaPrefix, ref, err)
	}
	var m ollamaManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return "", fmt.Errorf("%s%s: manifest %s: %w", OllamaPrefix, ref, manifest, err)
	}
	for _, layer := range m.Layers {
		if layer.MediaType != ollamaModelType {
			continue
		}
		d := ollamaDigest.FindStringSubmatch(layer.Digest)
		if d == nil {
			return "", fmt.Errorf("%s%s: manifest %s: model layer digest %q is not sha256:<64 hex>", OllamaPrefix, ref, manifest, layer.Digest)
		}
		blob := filepath.Join(l.OllamaModels, "blobs", "sha256-"+d[1])
		if !exists(blob) {
			return "", &notFound{fmt.Sprintf("%s%s: manifest %s names blob %s, which is missing (fetch it with: %s)",
				OllamaPrefix, ref, manifest, blob, pull)}
		}
		return blob, nil
	}
	return "", fmt.Errorf("%s%s: manifest %s has no %s layer", OllamaPrefix, ref, manifest, ollamaModelType)
}
