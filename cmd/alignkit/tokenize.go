package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/alignkit/alignkit/data"
	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/lm"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/model/tokenizer"
)

func newTokenizeCmd() *cobra.Command {
	var modelPath, text, messagesPath, chatTemplate string
	var noBOS, asJSON, addGen bool
	cmd := &cobra.Command{
		Use: "tokenize --model DIR (--text \"...\" [--no-bos] | --messages FILE.json [--add-generation-prompt]) [--json]",
		Short: "Print the token ids of a text (special-token strings in it stay text) or of a conversation " +
			"rendered with the chat template",
		Long: `Print the token ids of a text, or of a conversation rendered with the model's chat template.

--model is a model directory, a directory holding only tokenizer files (tokenizer.json or
tokenizer.model, with tokenizer_config.json), or a .gguf file.

--messages FILE.json is a JSON list of {"role": ..., "content": ...} messages. The template's own text
may hold special tokens (<|im_start|>, <|eot_id|>); the messages' contents never become one. With
--json it prints {"text": <rendered template>, "ids": [...]}; --text prints {"ids": [...]}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case cmd.Flags().Changed("text") && messagesPath != "":
				return errors.New("tokenize: give --text or --messages, not both")
			case !cmd.Flags().Changed("text") && messagesPath == "":
				return errors.New("tokenize: give --text or --messages")
			case messagesPath != "" && noBOS:
				return errors.New("tokenize: --no-bos applies to --text; with --messages the chat template decides where BOS goes")
			case messagesPath == "" && addGen:
				return errors.New("tokenize: --add-generation-prompt applies to --messages")
			case messagesPath == "" && chatTemplate != "":
				return errors.New("tokenize: --chat-template applies to --messages")
			}
			tok, err := openTokenizer(modelPath)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if messagesPath == "" {
				ids := tok.Encode(text, !noBOS && tok.AddBOS())
				if asJSON {
					return json.NewEncoder(out).Encode(map[string]any{"ids": ids})
				}
				printIDs(cmd, tok, ids)
				return nil
			}
			msgs, err := readMessages(messagesPath)
			if err != nil {
				return err
			}
			ct, err := lm.ChatTokenizer(tok, chatTemplate)
			if err != nil {
				return err
			}
			segs, err := ct.Template().RenderSegments(msgs, addGen)
			if err != nil {
				return fmt.Errorf("%s: %w", messagesPath, err)
			}
			var rendered bytes.Buffer
			for _, s := range segs {
				rendered.WriteString(s.Text)
			}
			ids := data.EncodeRendered(lm.Encoder(tok), segs)
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetEscapeHTML(false) // "<|im_start|>" stays readable
				return enc.Encode(struct {
					Text string  `json:"text"`
					IDs  []int32 `json:"ids"`
				}{rendered.String(), ids})
			}
			printIDs(cmd, tok, ids)
			return nil
		},
	}
	cmd.Flags().StringVar(&modelPath, "model", "", "model directory, tokenizer-only directory, or .gguf file")
	cmd.Flags().StringVar(&text, "text", "", "text to tokenize")
	cmd.Flags().StringVar(&messagesPath, "messages", "", "JSON file with a list of {role, content} messages to render with the chat template")
	cmd.Flags().BoolVar(&addGen, "add-generation-prompt", false, "end the rendering with the header of an assistant turn (with --messages)")
	cmd.Flags().StringVar(&chatTemplate, "chat-template", "", "chat template for --messages: a built-in name, a file or Jinja source (default: the model's own)")
	cmd.Flags().BoolVar(&noBOS, "no-bos", false, "do not add the BOS token (with --text)")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"ids": [...]}, with --messages {"text": ..., "ids": [...]}`)
	_ = cmd.MarkFlagRequired("model")
	return cmd
}

// openTokenizer loads the tokenizer of path: a .gguf file's embedded one, else the tokenizer files
// of a directory, which need not hold a model.
func openTokenizer(path string) (*tokenizer.Tokenizer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("opening model: %w", err)
	}
	if !st.IsDir() {
		m, err := checkpoint.Open(path)
		if err != nil {
			return nil, err
		}
		return m.Tok, nil
	}
	return tokenizer.Load(path)
}

func printIDs(cmd *cobra.Command, tok *tokenizer.Tokenizer, ids []int32) {
	for _, id := range ids {
		fmt.Fprintf(cmd.OutOrStdout(), "%d\t%q\n", id, tok.DecodeToken(id))
	}
}

// readMessages reads a JSON list of {role, content} messages. Any other key is an error: the
// renderer passes only role and content, and a key silently dropped would change the rendering.
func readMessages(path string) ([]chat.Message, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading messages: %w", err)
	}
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%s: want a JSON list of {\"role\", \"content\"} messages: %w", path, err)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("%s: no messages", path)
	}
	msgs := make([]chat.Message, len(raw))
	for i, m := range raw {
		for k := range m {
			if k != "role" && k != "content" {
				return nil, fmt.Errorf("%s: messages[%d]: key %q is not supported (only role and content)", path, i, k)
			}
		}
		for _, f := range []struct {
			key string
			dst *string
		}{{"role", &msgs[i].Role}, {"content", &msgs[i].Content}} {
			v, ok := m[f.key]
			if !ok {
				return nil, fmt.Errorf("%s: messages[%d]: no %q", path, i, f.key)
			}
			if err := json.Unmarshal(v, f.dst); err != nil {
				return nil, fmt.Errorf("%s: messages[%d]: %s: want a string", path, i, f.key)
			}
		}
		if msgs[i].Role == "" {
			return nil, fmt.Errorf("%s: messages[%d]: empty role", path, i)
		}
	}
	return msgs, nil
}
