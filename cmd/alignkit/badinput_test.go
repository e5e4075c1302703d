package main

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/model/gguf"
)

// badCase is one entry of the bad-input corpus: a command line that must fail with exactly one
// error line and exit status 1, leaving its output directory empty. In args and want, {BAD} is
// cmd/alignkit/testdata/badinput, {GEN} a directory the case's gen built, {OUT} the case's own
// output directory and {S} ../shared/models/stories260K.
type badCase struct {
	name   string
	args   []string
	env    map[string]string
	gen    func(t *testing.T, shared, dir string) // builds inputs under {GEN} from the real model
	want   string                                 // the whole error line
	prefix bool                                   // want is a prefix (the rest is machine-dependent)
}

// sftArgs runs the corpus's base SFT config with overrides; output_dir is always under {OUT}.
func sftArgs(sets ...string) []string {
	args := []string{"sft", "--config", "{BAD}/sft.yaml", "--set", "output_dir={OUT}/run"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	return args
}

func dataArgs(file string) []string { return sftArgs("dataset_name={BAD}/" + file) }

// copyStories copies the stories260K HF directory to dir, applying edits to config.json (nil
// deletes a key).
func copyStories(t *testing.T, shared, dir string, edits map[string]any) {
	t.Helper()
	src := filepath.Join(shared, "models", "stories260K")
	for _, f := range []string{"model.safetensors", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "config.json"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "config.json" && edits != nil {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			for k, v := range edits {
				if v == nil {
					delete(m, k)
				} else {
					m[k] = v
				}
			}
			b, _ = json.Marshal(m)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func editStories(edits map[string]any) func(t *testing.T, shared, dir string) {
	return func(t *testing.T, shared, dir string) { copyStories(t, shared, dir, edits) }
}

// patchFile overwrites bytes of dir/name at off.
func patchFile(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func f32Bytes(v float32) []byte { return binary.LittleEndian.AppendUint32(nil, math.Float32bits(v)) }

// safetensorsData is where model.safetensors' data section starts: after the 8-byte header length
// and the header.
func safetensorsData(t *testing.T, path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return 8 + int64(binary.LittleEndian.Uint64(b[:8]))
}

func badInputCases() []badCase {
	const order = " (want an optional system message, then user and assistant alternating from user)"
	return []badCase{
		// Data files: JSONL.
		{name: "jsonl invalid", args: dataArgs("jsonl_invalid.jsonl"), want: "alignkit: reading {BAD}/jsonl_invalid.jsonl: row 1 (line 2): invalid JSON: unexpected EOF"},
		{name: "jsonl not an object", args: dataArgs("jsonl_not_object.jsonl"), want: "alignkit: reading {BAD}/jsonl_not_object.jsonl: row 1 (line 2): want a JSON object, got list"},
		{name: "jsonl missing column", args: dataArgs("jsonl_missing_column.jsonl"), want: `alignkit: {BAD}/jsonl_missing_column.jsonl: row 1: missing column "completion"`},
		{name: "jsonl two values on a line", args: dataArgs("two_values_one_line.jsonl"), want: "alignkit: reading {BAD}/two_values_one_line.jsonl: row 0 (line 1): invalid JSON: more than one value on the line"},
		{name: "jsonl empty", args: dataArgs("empty.jsonl"), want: "alignkit: {BAD}/empty.jsonl: no rows"},
		{name: "jsonl blank lines only", args: dataArgs("blank_lines.jsonl"), want: "alignkit: {BAD}/blank_lines.jsonl: no rows"},
		{name: "json array element", args: dataArgs("array_not_object.json"), want: "alignkit: reading {BAD}/array_not_object.json: row 1: want a JSON object, got int"},
		{name: "jsonl 10 MB line", args: sftArgs("dataset_name={GEN}/long.jsonl"), gen: func(t *testing.T, _, dir string) {
			body := `{"prompt": "a", "completion": "` + strings.Repeat("x", 10<<20) + `"}` + "\n"
			os.WriteFile(filepath.Join(dir, "long.jsonl"), []byte(body), 0o644)
		}, want: "alignkit: reading {GEN}/long.jsonl: row 0 (line 1): longer than 1048576 bytes"},
		{name: "dataset missing", args: dataArgs("nonexistent.jsonl"), want: "alignkit: reading {BAD}/nonexistent.jsonl: open {BAD}/nonexistent.jsonl: no such file or directory"},
		{name: "dataset of unknown type", args: dataArgs("dataset.txt"), want: `alignkit: reading {BAD}/dataset.txt: unknown file type ".txt" (want .parquet, .jsonl or .json)`},
		// Data rows: roles and messages, every template.
		{name: "role two users", args: dataArgs("role_two_users.jsonl"), want: `alignkit: {BAD}/role_two_users.jsonl: row 0: column "messages": message 1: two user messages in a row` + order},
		{name: "role two users llama-2", args: append(dataArgs("role_two_users.jsonl"), "--set", "chat_template=llama-2"), want: `alignkit: {BAD}/role_two_users.jsonl: row 0: column "messages": message 1: two user messages in a row` + order},
		{name: "role assistant first", args: dataArgs("role_assistant_first.jsonl"), want: `alignkit: {BAD}/role_assistant_first.jsonl: row 0: column "messages": message 0: an assistant message before any user message` + order},
		{name: "role late system", args: dataArgs("role_late_system.jsonl"), want: `alignkit: {BAD}/role_late_system.jsonl: row 0: column "messages": message 1: a system message after the first message` + order},
		{name: "role two assistants", args: dataArgs("role_two_assistants.jsonl"), want: `alignkit: {BAD}/role_two_assistants.jsonl: row 0: column "messages": message 2: two assistant messages in a row` + order},
		{name: "role completion repeats", args: dataArgs("role_completion_repeats.jsonl"), want: `alignkit: {BAD}/role_completion_repeats.jsonl: row 0: column "completion": message 0: two assistant messages in a row` + order},
		{name: "role unknown", args: dataArgs("role_unknown.jsonl"), want: `alignkit: {BAD}/role_unknown.jsonl: row 0: column "messages": message 1: unknown role "bot" (want system, user or assistant)`},
		{name: "message without content", args: dataArgs("message_no_content.jsonl"), want: `alignkit: {BAD}/message_no_content.jsonl: row 0: column "messages": message 0: missing content`},
		{name: "message content a number", args: dataArgs("message_content_number.jsonl"), want: `alignkit: {BAD}/message_content_number.jsonl: row 0: column "messages": message 0: content: want string, got int`},
		{name: "empty conversation", args: dataArgs("conversation_empty.jsonl"), want: `alignkit: {BAD}/conversation_empty.jsonl: row 0: column "messages": empty conversation`},
		{name: "empty text", args: dataArgs("text_empty.jsonl"), want: `alignkit: {BAD}/text_empty.jsonl: row 0: column "text": empty text`},
		{name: "prompt list completion string", args: dataArgs("prompt_completion_mixed.jsonl"), want: `alignkit: {BAD}/prompt_completion_mixed.jsonl: row 0: column "completion": want a list of messages like column "prompt", got string`},
		{name: "preference data for sft", args: dataArgs("preference.jsonl"), want: "alignkit: dataset_name: {BAD}/preference.jsonl holds preference pairs (chosen/rejected); sft trains on text, messages, prompt/completion or alpaca rows"},
		{name: "identical pair for dpo", args: []string{"dpo", "--config", "{BAD}/sft.yaml", "--set", "output_dir={OUT}/run", "--set", "dataset_name={BAD}/pair_identical.jsonl"}, want: `alignkit: {BAD}/pair_identical.jsonl: row 0: columns "chosen" and "rejected" are identical`},
		// Data files: Parquet.
		{name: "parquet claims 2^31 rows", args: dataArgs("pq_huge_rows.parquet"), want: "alignkit: reading {BAD}/pq_huge_rows.parquet: malformed Parquet footer: it declares 2147483648 rows, more than a 654-byte file can hold (at most 10464, 16 per byte)"},
		{name: "parquet footer length", args: dataArgs("pq_footer_length.parquet"), want: "alignkit: reading {BAD}/pq_footer_length.parquet: malformed Parquet file: its footer claims 827474256 bytes, more than the 12-byte file holds"},
		{name: "parquet 8 bytes", args: dataArgs("pq_tiny.parquet"), want: "alignkit: reading {BAD}/pq_tiny.parquet: not a Parquet file: 8 bytes, shorter than the 12 of an empty one"},
		{name: "parquet truncated", args: dataArgs("pq_truncated.parquet"), want: "alignkit: reading {BAD}/pq_truncated.parquet: not a Parquet file: no PAR1 magic at its start and end"},
		{name: "parquet row groups disagree", args: dataArgs("pq_rowgroups_disagree.parquet"), want: "alignkit: reading {BAD}/pq_rowgroups_disagree.parquet: malformed Parquet footer: its row groups hold 3 rows, it declares 5"},
		{name: "parquet group short", args: dataArgs("pq_group_short.parquet"), want: "alignkit: reading {BAD}/pq_group_short.parquet: row group 0 holds 3 rows, its footer declares 4"},
		{name: "parquet chunk past end", args: dataArgs("pq_chunk_past_end.parquet"), want: "alignkit: reading {BAD}/pq_chunk_past_end.parquet: malformed Parquet footer: row group 0 column 0 lies outside the 650-byte file (offset 1073741824, 136 bytes)"},
		{name: "parquet page header", args: dataArgs("pq_page_header.parquet"), want: "alignkit: reading {BAD}/pq_page_header.parquet: row group 0 column 0 page 0: malformed page header: decoding thrift payload: 8:FIELD<STRUCT> → 8:FIELD<STRUCT> → 5:FIELD<BINARY>: unexpected EOF"},
		{name: "parquet page that panics parquet-go", args: dataArgs("pq_panic_num_nulls.parquet"), want: "alignkit: reading {BAD}/pq_panic_num_nulls.parquet: malformed Parquet file: runtime error: slice bounds out of range [:-58]"},
		{name: "parquet schema that panics parquet-go", args: dataArgs("pq_panic_schema_children.parquet"), want: "alignkit: reading {BAD}/pq_panic_schema_children.parquet: malformed Parquet file: runtime error: slice bounds out of range [::-2]"},
		{name: "parquet leaf annotated LIST", args: dataArgs("pq_leaf_list.parquet"), want: `alignkit: reading {BAD}/pq_leaf_list.parquet: column "prompt": a leaf column annotated as a LIST or MAP (only a group can be one)`},
		{name: "parquet that is text", args: sftArgs("dataset_name={BAD}/sft.yaml"), want: `alignkit: reading {BAD}/sft.yaml: unknown file type ".yaml" (want .parquet, .jsonl or .json)`},
		// Config values: an explicit value is never replaced by a default.
		{name: "learning_rate 0", args: sftArgs("learning_rate=0"), want: `alignkit: --set learning_rate: learning_rate: 0 is not a valid value (it would mean "use the default"; omit the key for that)`},
		{name: "batch size 0", args: sftArgs("per_device_train_batch_size=0"), want: `alignkit: --set per_device_train_batch_size: per_device_train_batch_size: 0 is not a valid value (it would mean "use the default"; omit the key for that)`},
		{name: "gradient accumulation 0", args: sftArgs("gradient_accumulation_steps=0"), want: `alignkit: --set gradient_accumulation_steps: gradient_accumulation_steps: 0 is not a valid value (it would mean "use the default"; omit the key for that)`},
		{name: "max_length 0", args: sftArgs("max_length=0"), want: `alignkit: --set max_length: max_length: 0 is not a valid value (it would mean "use the default"; omit the key for that)`},
		{name: "adam_beta1 0", args: sftArgs("adam_beta1=0"), want: `alignkit: --set adam_beta1: adam_beta1: 0 is not a valid value (it would mean "use the default"; omit the key for that)`},
		{name: "empty scheduler", args: sftArgs(`lr_scheduler_type=""`), want: `alignkit: --set lr_scheduler_type: lr_scheduler_type: "" is not a valid value (it would mean "use the default"; omit the key for that)`},
		{name: "yaml learning_rate 0", args: []string{"sft", "--config", "{BAD}/yaml_lr_zero.yaml", "--set", "output_dir={OUT}/run"}, want: `alignkit: {BAD}/yaml_lr_zero.yaml: learning_rate: 0 is not a valid value (it would mean "use the default"; omit the key for that)`},
		{name: "yaml learning_rate nan", args: []string{"sft", "--config", "{BAD}/yaml_lr_nan.yaml", "--set", "output_dir={OUT}/run", "--set", "dataset_name={BAD}/pc_good.jsonl"}, want: "alignkit: {BAD}/yaml_lr_nan.yaml: learning_rate: must be a finite number, got NaN"},
		{name: "yaml unknown key", args: []string{"sft", "--config", "{BAD}/yaml_unknown_key.yaml"}, want: `alignkit: {BAD}/yaml_unknown_key.yaml: unknown key "learning_rat" (did you mean "learning_rate"?)`},
		{name: "yaml invalid", args: []string{"sft", "--config", "{BAD}/yaml_invalid.yaml"}, want: "alignkit: {BAD}/yaml_invalid.yaml: invalid YAML: yaml: line 1: did not find expected ',' or ']'"},
		{name: "yaml wrong type", args: []string{"sft", "--config", "{BAD}/yaml_wrong_type.yaml"}, want: `alignkit: {BAD}/yaml_wrong_type.yaml: key "max_steps" must be int, got string`},
		{name: "yaml a list", args: []string{"sft", "--config", "{BAD}/yaml_list.yaml"}, want: "alignkit: {BAD}/yaml_list.yaml: invalid YAML: yaml: unmarshal errors: line 1: cannot unmarshal !!seq into map[string]interface {}"},
		{name: "set wrong type", args: sftArgs("max_steps=ten"), want: `alignkit: --set max_steps: key "max_steps" must be int, got string`},
		{name: "set unknown key", args: sftArgs("learning_rat=1"), want: `alignkit: --set learning_rat: unknown key "learning_rat" (did you mean "learning_rate"?)`},
		{name: "set malformed", args: sftArgs("learning_rate"), want: `alignkit: --set "learning_rate": want key=value`},
		{name: "eval_split 1.5", args: sftArgs("eval_split=1.5"), want: "alignkit: --set eval_split: eval_split: must be in [0, 1), got 1.5"},
		{name: "unknown scheduler", args: sftArgs("lr_scheduler_type=sawtooth"), want: `alignkit: --set lr_scheduler_type: lr_scheduler_type: unknown "sawtooth" (want constant, constant_with_warmup, linear, cosine or cosine_with_min_lr)`},
		{name: "env unknown variable", args: sftArgs(), env: map[string]string{"ALIGNKIT_LERNING_RATE": "1e-3"}, want: "alignkit: environment ALIGNKIT_LERNING_RATE: matches no config key (did you mean ALIGNKIT_LEARNING_RATE?)"},
		{name: "env wrong type", args: sftArgs(), env: map[string]string{"ALIGNKIT_MAX_STEPS": "ten"}, want: `alignkit: environment ALIGNKIT_MAX_STEPS: key "max_steps" must be int, got string`},
		{name: "env zero", args: sftArgs(), env: map[string]string{"ALIGNKIT_PER_DEVICE_TRAIN_BATCH_SIZE": "0"}, want: `alignkit: environment ALIGNKIT_PER_DEVICE_TRAIN_BATCH_SIZE: per_device_train_batch_size: 0 is not a valid value (it would mean "use the default"; omit the key for that)`},
		{name: "env fails validation", args: sftArgs(), env: map[string]string{"ALIGNKIT_LEARNING_RATE": "-1"}, want: "alignkit: environment ALIGNKIT_LEARNING_RATE: learning_rate: must be > 0, got -1"},
		// Model files: sizes checked before memory is spent, non-finite weights refused.
		{name: "config 10^8 layers", args: []string{"generate", "--model", "{GEN}", "--prompt", "Once"}, gen: editStories(map[string]any{"num_hidden_layers": 100000000}), want: "alignkit: {GEN}/config.json: the model it describes has more than 1099511627776 parameters"},
		{name: "config 10^6 layers", args: []string{"generate", "--model", "{GEN}", "--prompt", "Once"}, gen: editStories(map[string]any{"num_hidden_layers": 1000000}), want: "alignkit: {GEN}/config.json: the config describes 1000000 layers and 45440032832 parameters (181.76 GB as float32), but the weights hold 47 tensors and 260032 parameters"},
		{name: "config 2^40 vocabulary", args: []string{"generate", "--model", "{GEN}", "--prompt", "Once"}, gen: editStories(map[string]any{"vocab_size": 1 << 40}), want: "alignkit: {GEN}/config.json: the model it describes has more than 1099511627776 parameters"},
		{name: "config 2^20 experts", args: []string{"generate", "--model", "{GEN}", "--prompt", "Once"}, gen: editStories(map[string]any{"architectures": []any{"MixtralForCausalLM"}, "model_type": "mixtral", "num_local_experts": 1 << 20, "num_experts_per_tok": 2}), want: "alignkit: {GEN}/config.json: the config describes 5 layers and 173476508352 parameters (693.91 GB as float32), but the weights hold 47 tensors and 260032 parameters"},
		{name: "config not JSON", args: []string{"generate", "--model", "{GEN}", "--prompt", "Once"}, gen: func(t *testing.T, shared, dir string) {
			copyStories(t, shared, dir, nil)
			os.WriteFile(filepath.Join(dir, "config.json"), []byte("{"), 0o644)
		}, want: "alignkit: {GEN}/config.json: not valid JSON: unexpected end of JSON input"},
		{name: "config other architecture", args: []string{"generate", "--model", "{GEN}", "--prompt", "Once"}, gen: editStories(map[string]any{"architectures": []any{"GPT2LMHeadModel"}}), want: `alignkit: {GEN}/config.json: field "architectures": "GPT2LMHeadModel" is not supported (supported: LlamaForCausalLM, LlamaForSequenceClassification, MistralForCausalLM, MistralForSequenceClassification, MixtralForCausalLM, MixtralForSequenceClassification, Qwen2ForCausalLM, Qwen2ForSequenceClassification, Qwen3ForCausalLM, Qwen3ForSequenceClassification, Qwen3MoeForCausalLM, Qwen3MoeForSequenceClassification)`},
		{name: "safetensors NaN", args: []string{"generate", "--model", "{GEN}", "--prompt", "Once"}, gen: func(t *testing.T, shared, dir string) {
			copyStories(t, shared, dir, nil)
			p := filepath.Join(dir, "model.safetensors")
			patchFile(t, p, safetensorsData(t, p)+4*100, f32Bytes(float32(math.NaN())))
		}, want: `alignkit: {GEN}: tensor "model.embed_tokens.weight" holds NaN at index 100`},
		{name: "safetensors Inf", args: []string{"generate", "--model", "{GEN}", "--prompt", "Once"}, gen: func(t *testing.T, shared, dir string) {
			copyStories(t, shared, dir, nil)
			p := filepath.Join(dir, "model.safetensors")
			patchFile(t, p, safetensorsData(t, p), f32Bytes(float32(math.Inf(-1))))
		}, want: `alignkit: {GEN}: tensor "model.embed_tokens.weight" holds -Inf at index 0`},
		{name: "safetensors truncated", args: []string{"generate", "--model", "{GEN}", "--prompt", "Once"}, gen: func(t *testing.T, shared, dir string) {
			copyStories(t, shared, dir, nil)
			p := filepath.Join(dir, "model.safetensors")
			os.Truncate(p, 100000)
		}, want: `alignkit: {GEN}/model.safetensors: tensor "model.embed_tokens.weight": data_offsets [0, 131072] run past the 95136-byte data section`},
		{name: "safetensors header length", args: []string{"generate", "--model", "{GEN}", "--prompt", "Once"}, gen: func(t *testing.T, shared, dir string) {
			copyStories(t, shared, dir, nil)
			patchFile(t, filepath.Join(dir, "model.safetensors"), 0, binary.LittleEndian.AppendUint64(nil, 1<<40))
		}, want: "alignkit: {GEN}/model.safetensors: header length 1099511627776 exceeds file size 1044992"},
		{name: "tokenizer.model garbage", args: []string{"generate", "--model", "{GEN}", "--prompt", "Once"}, gen: func(t *testing.T, shared, dir string) {
			copyStories(t, shared, dir, nil)
			os.WriteFile(filepath.Join(dir, "tokenizer.model"), []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2}, 0o644)
		}, want: "alignkit: {GEN}/tokenizer.model: not a tokenizer (neither a SentencePiece model nor a tokenizer.json)"},
		{name: "gguf NaN", args: []string{"generate", "--model", "{GEN}/m.gguf", "--prompt", "Once"}, gen: func(t *testing.T, shared, dir string) {
			src := filepath.Join(shared, "models", "stories260K", "stories260K-f32.gguf")
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, "m.gguf")
			os.WriteFile(p, b, 0o644)
			g, err := gguf.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			ti, _ := g.Tensor("token_embd.weight")
			patchFile(t, p, int64(g.DataOffset+ti.Offset)+8, f32Bytes(float32(math.NaN())))
		}, want: `alignkit: {GEN}/m.gguf: tensor "model.embed_tokens.weight" holds NaN at index 2`},
		{name: "gguf garbage", args: []string{"generate", "--model", "{GEN}/m.gguf", "--prompt", "Once"}, gen: func(t *testing.T, _, dir string) {
			os.WriteFile(filepath.Join(dir, "m.gguf"), []byte("GGUF\x03\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff"), 0o644)
		}, want: "alignkit: {GEN}/m.gguf: corrupt or truncated GGUF: the header: tensor count 18446744073709551615 is impossible with 0 bytes left in the 16-byte file"},
		{name: "model missing", args: []string{"generate", "--model", "{OUT}/none", "--prompt", "Once"}, want: "alignkit: opening model: stat {OUT}/none: no such file or directory"},
		{name: "init beyond memory", args: []string{"init", "--config", "{BAD}/init_huge.yaml", "--out", "{OUT}/m"}, want: "alignkit: init config: the model has 342270156800 parameters, 1369.08 GB as float32, more than the ", prefix: true},
		{name: "init absurd", args: []string{"init", "--config", "{BAD}/init_absurd.yaml", "--out", "{OUT}/m"}, want: "alignkit: init config: the model it describes has more than 1099511627776 parameters"},
		{name: "init without tokenizer", args: []string{"init", "--config", "{BAD}/init_no_tokenizer.yaml", "--out", "{OUT}/m"}, want: `alignkit: {BAD}/init_no_tokenizer.yaml: key "tokenizer" is required: the path of a tokenizer.model or tokenizer.json`},
		{name: "export NaN to gguf", args: []string{"export", "--model", "{GEN}", "--format", "gguf", "--out", "{OUT}/m.gguf"}, gen: func(t *testing.T, shared, dir string) {
			copyStories(t, shared, dir, nil)
			p := filepath.Join(dir, "model.safetensors")
			patchFile(t, p, safetensorsData(t, p)+4*7, f32Bytes(float32(math.NaN())))
		}, want: `alignkit: {GEN}: tensor "model.embed_tokens.weight" holds NaN at index 7`},
		{name: "export unknown format", args: []string{"export", "--model", "{S}", "--format", "onnx", "--out", "{OUT}/m"}, want: `alignkit: --format "onnx": want gguf or hf`},
		{name: "export unknown dtype", args: []string{"export", "--model", "{S}", "--format", "gguf", "--dtype", "q4_0", "--out", "{OUT}/m.gguf"}, want: `alignkit: --dtype "q4_0" is not valid for --format gguf: want one of f32, f16, q8_0`},
		{name: "reward score with a causal LM", args: []string{"reward", "score", "--model", "{S}", "--input", "{BAD}/pq_huge_rows.parquet", "--output", "{OUT}/y.parquet"}, want: "alignkit: {S} is not a reward model: it has no score.weight (architectures LlamaForCausalLM); train one with `alignkit reward train`"},
		// serve: flags checked before any model is loaded.
		{name: "serve max-concurrent 0", args: []string{"serve", "--model", "{S}", "--max-concurrent", "0"}, want: "alignkit: --max-concurrent: must be >= 1, got 0"},
		{name: "serve max-body-bytes -1", args: []string{"serve", "--model", "{S}", "--max-body-bytes", "-1"}, want: "alignkit: --max-body-bytes: must be >= 1, got -1"},
		{name: "serve max-connections 0", args: []string{"serve", "--model", "{S}", "--max-connections", "0"}, want: "alignkit: --max-connections: must be >= 1, got 0"},
		{name: "serve max-loras 0", args: []string{"serve", "--model", "{S}", "--max-loras", "0"}, want: "alignkit: --max-loras: must be >= 1, got 0"},
		{name: "serve body-timeout 0", args: []string{"serve", "--model", "{S}", "--body-timeout", "0s"}, want: "alignkit: --body-timeout: must be > 0, got 0s"},
		{name: "serve empty api key", args: []string{"serve", "--model", "{S}", "--api-key", ""}, want: "alignkit: --api-key: must not be empty (omit it to serve without a key on loopback)"},
		{name: "serve open address without key", args: []string{"serve", "--model", "{S}", "--addr", "0.0.0.0:0"}, want: "alignkit: serve: 0.0.0.0:0 is not a loopback address and no API key is set: set --api-key or ALIGNKIT_API_KEY, or pass --insecure-no-auth to serve it to anyone who can reach it"},
		{name: "serve all interfaces without key", args: []string{"serve", "--model", "{S}", "--addr", ":0"}, want: "alignkit: serve: :0 is not a loopback address and no API key is set: set --api-key or ALIGNKIT_API_KEY, or pass --insecure-no-auth to serve it to anyone who can reach it"},
	}
}

// TestBadInputCorpus runs every case of the corpus through the real command line (main's run):
// exactly the expected error line, exit status 1, no panic, and nothing written to its output
// directory.
func TestBadInputCorpus(t *testing.T) {
	shared := sharedtest.Dir(t, "models/stories260K")
	root := sharedtest.RepoRoot(t)
	bad := filepath.Join(root, "cmd", "alignkit", "testdata", "badinput")
	stories := filepath.Join(shared, "models", "stories260K")
	cases := badInputCases()
	if len(cases) < 60 {
		t.Fatalf("the corpus has %d cases, want at least 60", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, gen := t.TempDir(), t.TempDir()
			if c.gen != nil {
				c.gen(t, shared, gen)
			}
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			fill := strings.NewReplacer("{BAD}", bad, "{GEN}", gen, "{OUT}", out, "{S}", stories)
			args := make([]string, len(c.args))
			for i, a := range c.args {
				args[i] = fill.Replace(a)
			}
			res := runCLI(t, args...)
			want := fill.Replace(c.want)
			got := res.ErrorLine()
			ok := got == want || (c.prefix && c.want != "" && strings.HasPrefix(got, want))
			// The error line is all of stderr: no stack, no "internal error", no partial progress.
			if res.Code != 1 || !ok || strings.TrimRight(res.Stderr, "\n") != got {
				t.Errorf("exit %d\n got: %s\nwant: %s\nstderr:\n%s", res.Code, got, want, res.Stderr)
			}
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Errorf("output directory not empty: %v", entries)
			}
		})
	}
}
