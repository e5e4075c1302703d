package chat

import (
	"embed"
	"sort"
)

// The built-in templates are stored verbatim (the chat_template string after
// JSON decoding) in templates/; templates/README.md names each source model.
//
//go:embed templates/*.jinja
var builtinFS embed.FS

// builtinTokens are the special-token strings each built-in's model uses, the
// defaults when the caller does not give its tokenizer's.
var builtinTokens = map[string][2]string{
	"llama-2": {"<s>", "</s>"},                     // meta-llama/Llama-2-7b-chat-hf
	"mistral": {"<s>", "</s>"},                     // mistralai/Mistral-7B-Instruct-v0.1
	"chatml":  {"<s>", "<|im_end|>"},               // teknium/OpenHermes-2.5-Mistral-7B
	"zephyr":  {"<s>", "</s>"},                     // HuggingFaceH4/zephyr-7b-beta
	"llama-3": {"<|begin_of_text|>", "<|eot_id|>"}, // meta-llama/Meta-Llama-3-8B-Instruct
}

// BuiltinNames lists the built-in template names, sorted.
func BuiltinNames() []string {
	names := make([]string, 0, len(builtinTokens))
	for n := range builtinTokens {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// BuiltinSource returns the Jinja source of a built-in template.
func BuiltinSource(name string) (string, bool) {
	if _, ok := builtinTokens[name]; !ok {
		return "", false
	}
	b, err := builtinFS.ReadFile("templates/" + name + ".jinja")
	if err != nil {
		return "", false
	}
	return string(b), true
}

// BuiltinTokens returns the BOS and EOS strings of a built-in's model.
func BuiltinTokens(name string) (bos, eos string, ok bool) {
	t, ok := builtinTokens[name]
	return t[0], t[1], ok
}
