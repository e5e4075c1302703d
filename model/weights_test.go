package model

import "testing"

// NumParams on stories260K's shape (vocab 512, d 64, 5 layers, 8 query / 4 KV heads of 8, SwiGLU
// 172), counted by hand: embedding 512·64 = 32768; per layer q 64·64 + k 64·32 + v 64·32 + o 64·64
// + gate, up, down 3·64·172 + two norms 2·64 = 45440, times 5 = 227200; final norm 64. Tied:
// 260032 (the model's name); untied adds lm_head's 32768.
func TestNumParams(t *testing.T) {
	cases := []struct {
		name string
		tied bool
		want int64
	}{
		{"tied", true, 260032},
		{"untied", false, 292800},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig(configJSON(t, map[string]any{"tie_word_embeddings": tc.tied}), "config.json")
			if err != nil {
				t.Fatal(err)
			}
			if got := InitRandom(cfg, 1, 0.02).NumParams(); got != tc.want {
				t.Fatalf("NumParams = %d, want %d", got, tc.want)
			}
		})
	}
}
