package lm

import (
	"testing"

	"github.com/alignkit/alignkit/internal/testutil"
	"github.com/alignkit/alignkit/model"
)

// TestPadID walks the padding rule on stories260K's tokenizer, which has no pad token, unk 0, BOS 1
// and EOS 2 (tokenizer_config.json), with configs that name other pad and EOS ids.
func TestPadID(t *testing.T) {
	ck := testutil.Stories(t)
	ptr := func(i int) *int { return &i }
	tests := []struct {
		name string
		cfg  model.Config
		want int32
	}{
		// The model's own config: no pad_token_id, so the tokenizer's unk 0.
		{"stories config", ck.Weights.Config, 0},
		{"config pad_token_id wins", model.Config{VocabSize: 512, PadTokenID: ptr(5)}, 5},
		// pad_token_id 2 is the tokenizer's EOS: passed over for unk.
		{"pad_token_id that is EOS", model.Config{VocabSize: 512, PadTokenID: ptr(2)}, 0},
		// 600 is outside the vocabulary: passed over for unk.
		{"pad_token_id past the vocabulary", model.Config{VocabSize: 512, PadTokenID: ptr(600)}, 0},
		// The config calls 0 (unk) an EOS too: unk is passed over, then 0; 1 (BOS) is the first left.
		{"unk is an EOS", model.Config{VocabSize: 512, EOSTokenIDs: []int{0}}, 1},
	}
	for _, tc := range tests {
		if got := PadID(ck.Tok, tc.cfg); got != tc.want {
			t.Errorf("%s: PadID = %d, want %d", tc.name, got, tc.want)
		}
	}
	// Without a tokenizer only the config speaks: EOS ids 0 and 1 leave 2.
	if got := PadID(nil, model.Config{EOSTokenIDs: []int{0, 1}}); got != 2 {
		t.Errorf("no tokenizer: PadID = %d, want 2", got)
	}
}

// TestDataTokenizer: stories260K has no chat template, so without one asked for the tokenizer has
// none (plain rows only); naming a built-in template gives one.
func TestDataTokenizer(t *testing.T) {
	ck := testutil.Stories(t)
	plain, err := DataTokenizer(ck.Tok, "")
	if err != nil {
		t.Fatal(err)
	}
	if plain.Template() != nil {
		t.Errorf("no template asked for and none in the tokenizer, got %v", plain.Template())
	}
	withChat, err := DataTokenizer(ck.Tok, "chatml")
	if err != nil {
		t.Fatal(err)
	}
	if withChat.Template() == nil {
		t.Error("chatml: no template")
	}
}
