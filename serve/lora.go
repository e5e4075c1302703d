package serve

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/alignkit/alignkit/model/lora"
	"github.com/alignkit/alignkit/rlhf"
)

// DefaultMaxLoRAs bounds the adapters loaded at runtime at once (Config.MaxLoRAs). An on-policy
// trainer holds two for a moment (it loads the new policy before unloading the old one); a few
// more leave room for side-by-side evaluation, while each adapter's tensors stay in memory until
// unloaded, so a client cannot load without bound.
const DefaultMaxLoRAs = 4

// Runtime LoRA updating follows vLLM's OpenAI server, which adds these routes when
// VLLM_ALLOW_RUNTIME_LORA_UPDATING=True (vllm/entrypoints/openai/api_server.py:
// @router.post("/v1/load_lora_adapter") and @router.post("/v1/unload_lora_adapter"), bodies
// LoadLoRAAdapterRequest{lora_name: str, lora_path: str} and UnloadLoRAAdapterRequest{lora_name:
// str, lora_int_id: int | None} of vllm/entrypoints/openai/protocol.py; OpenAIServingModels in
// serving_models.py answers 200 with a plain-text "Success: LoRA adapter '<name>' added
// successfully." and a loaded name is then a model id of /v1/models and of requests' "model").
// alignkit serve turns them on with Config.AllowRuntimeLoRA (--allow-runtime-lora).

// loraOff is the answer of both routes when runtime LoRA updating is off: 404, as vLLM answers
// (there, the routes do not exist), with one line saying how to turn it on.
const loraOff = "runtime LoRA updating is off: start alignkit serve with --allow-runtime-lora to use /v1/load_lora_adapter and /v1/unload_lora_adapter"

// loraRequest is LoadLoRAAdapterRequest and UnloadLoRAAdapterRequest in one.
type loraRequest struct {
	LoraName string `json:"lora_name"`
	LoraPath string `json:"lora_path"`
	// LoraIntID is vLLM's optional id on unload; alignkit unloads by name alone.
	LoraIntID *int `json:"lora_int_id"`
}

// loraRequest is the body of a load or unload request; with runtime LoRA off, or a body that does
// not decode, it has answered the client and ok is false.
func (s *Server) loraRequest(w http.ResponseWriter, r *http.Request) (q loraRequest, ok bool) {
	if !s.cfg.AllowRuntimeLoRA {
		writeError(w, http.StatusNotFound, "not_found_error", "", loraOff)
		return q, false
	}
	if err := s.decode(w, r, &q); err != nil {
		writeAPIError(w, err)
		return q, false
	}
	return q, true
}

// loadLoRA loads a PEFT adapter directory over the served base under a new name.
func (s *Server) loadLoRA(w http.ResponseWriter, r *http.Request) {
	q, ok := s.loraRequest(w, r)
	if !ok {
		return
	}
	if err := checkLoRAName(q.LoraName); err != nil {
		writeAPIError(w, err)
		return
	}
	dir, err := checkLoRAPath(q.LoraPath)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	// Reading the adapter happens outside the lock; the name and the limit are checked before (to
	// refuse early) and again when it is stored.
	if err := s.canLoad(q.LoraName); err != nil {
		writeAPIError(w, err)
		return
	}
	ad, _, err := lora.Load(dir, s.gen.Base())
	if err != nil {
		writeAPIError(w, badRequest("lora_path", "lora_path: %v", err))
		return
	}
	gen, err := s.gen.WithAdapter(ad)
	if err != nil {
		writeAPIError(w, badRequest("lora_path", "lora_path: %v", err))
		return
	}
	s.loraMu.Lock()
	if err := s.canLoadLocked(q.LoraName); err != nil {
		s.loraMu.Unlock()
		writeAPIError(w, err)
		return
	}
	s.loras[q.LoraName] = gen
	s.loraNames = append(s.loraNames, q.LoraName)
	s.loraMu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "Success: LoRA adapter '%s' added successfully.", q.LoraName)
}

// unloadLoRA forgets a loaded adapter; requests already running with it finish.
func (s *Server) unloadLoRA(w http.ResponseWriter, r *http.Request) {
	q, ok := s.loraRequest(w, r)
	if !ok {
		return
	}
	if q.LoraName == "" {
		writeAPIError(w, badRequest("lora_name", "lora_name: must be set"))
		return
	}
	s.loraMu.Lock()
	_, ok = s.loras[q.LoraName]
	if ok {
		delete(s.loras, q.LoraName)
		s.loraNames = slices.DeleteFunc(s.loraNames, func(n string) bool { return n == q.LoraName })
	}
	s.loraMu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "not_found_error", "lora_name", fmt.Sprintf("the LoRA adapter %q is not loaded", q.LoraName))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "Success: LoRA adapter '%s' removed successfully.", q.LoraName)
}

// checkLoRAName wants a name a client can send back as "model": printable, without spaces.
func checkLoRAName(name string) error {
	switch {
	case name == "":
		return badRequest("lora_name", "lora_name: must be set")
	case len(name) > 256:
		return badRequest("lora_name", "lora_name: %d bytes, want at most 256", len(name))
	case strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return badRequest("lora_name", "lora_name %q: want no spaces or control characters", name)
	}
	return nil
}

// checkLoRAPath wants a directory holding adapter_config.json. Its errors say only which of these
// the path is not: a file's content is never read back to the client, so the route cannot be used
// to probe the server's files beyond adapter directories.
func checkLoRAPath(path string) (string, error) {
	if path == "" {
		return "", badRequest("lora_path", "lora_path: must be set (a PEFT adapter directory on the server's file system)")
	}
	dir := filepath.Clean(path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", badRequest("lora_path", "lora_path %s: no such directory", path)
	case err != nil:
		return "", badRequest("lora_path", "lora_path %s: cannot be read", path)
	case !st.IsDir():
		return "", badRequest("lora_path", "lora_path %s: not a directory: want a PEFT adapter directory (adapter_config.json, adapter_model.safetensors)", path)
	}
	if st, err := os.Stat(filepath.Join(dir, lora.ConfigFile)); err != nil || !st.Mode().IsRegular() {
		return "", badRequest("lora_path", "lora_path %s: no %s: want a PEFT adapter directory", path, lora.ConfigFile)
	}
	return dir, nil
}

func (s *Server) canLoad(name string) error {
	s.loraMu.RLock()
	defer s.loraMu.RUnlock()
	return s.canLoadLocked(name)
}

// canLoadLocked refuses a name in use and a load beyond MaxLoRAs; loraMu is held.
func (s *Server) canLoadLocked(name string) error {
	if _, ok := s.loras[name]; ok || name == s.cfg.Name {
		return badRequest("lora_name", "lora_name %q: a model of that name is already loaded; unload it first or pick another name", name)
	}
	if len(s.loras) >= s.cfg.MaxLoRAs {
		return badRequest("lora_name", "lora_name %q: %d LoRA adapters are loaded, the most this server holds (--max-loras %d): unload one first", name, len(s.loras), s.cfg.MaxLoRAs)
	}
	return nil
}

// generator is the engine a request's "model" names: the served model ("" too), or a runtime
// LoRA adapter; the name echoed in the answer comes with it.
func (s *Server) generator(name string) (*rlhf.Local, string, error) {
	if name == "" || name == s.cfg.Name {
		return s.gen, s.cfg.Name, nil
	}
	s.loraMu.RLock()
	gen, ok := s.loras[name]
	s.loraMu.RUnlock()
	if ok {
		return gen, name, nil
	}
	return nil, "", &apiError{status: http.StatusNotFound, typ: "invalid_request_error", param: "model",
		msg: fmt.Sprintf("model %q is not served here: this server serves %q", name, s.cfg.Name)}
}

// loraModels are the loaded adapters' names, in load order.
func (s *Server) loraModels() []string {
	s.loraMu.RLock()
	defer s.loraMu.RUnlock()
	return slices.Clone(s.loraNames)
}
