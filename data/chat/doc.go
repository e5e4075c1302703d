// Package chat renders conversations with Hugging Face chat templates.
//
// Templates are Jinja sources, rendered with internal/jinja (a fork of
// github.com/ardanlabs/jinja v1.8.0 that bounds each render) configured as
// transformers configures jinja2 for apply_chat_template:
// trim_blocks and lstrip_blocks on, a raise_exception global, tojson without
// ASCII escaping, the bos_token and eos_token variables, add_generation_prompt,
// and messages as ordered {role, content} dicts. A template may come from a
// model's tokenizer_config.json or be one of the built-ins (llama-2, mistral,
// chatml, zephyr, llama-3), each the chat_template of a real model.
//
// One difference from transformers is known and not covered by the golden
// tests: this engine's tojson(indent=N) sorts object keys, where Python keeps
// insertion order. Templates use indent only for tool definitions, which
// alignkit does not pass.
//
// A template comes from a model file, so it is untrusted: every render runs
// within Limits (call nesting, loop iterations, output and value size, time)
// and fails, naming the template's source, when it exceeds one; an engine
// panic fails the render too, never the process.
//
// RenderSegments also reports which parts of the rendered text are template
// text and which are message content, so that a tokenizer can parse special
// tokens in the former and never in the latter.
//
// Templates that take contents apart at tags (Qwen3 splits an assistant
// content at "</think>") are segmented with one sentinel per run of text
// between tags and whitespace; the tags that contents hold are then Plain
// segments, encoded as message text wherever they appear.
package chat
