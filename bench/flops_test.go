package bench

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
)

// TestCounts checks the parameter and FLOP counts against values derived by hand and, for
// smollm135m, against the published size of HuggingFaceTB/SmolLM-135M.
func TestCounts(t *testing.T) {
	tests := []struct {
		preset        string
		params, nmat  int64
		flopsPerToken float64
	}{
		// ref: per layer q 256·256 + k,v 2·256·128 + o 256·256 + SwiGLU 3·256·688 = 724,992; ×4 layers
		// = 2,899,968, plus the tied head 4096·256 = 1,048,576 → N = 3,948,544. Stored params add the
		// 9 RMSNorm gains of 256 (2 per layer + final) = 2,304 → 3,950,848 (the head is the embedding).
		// FLOPs/token = 6·N + 12·4·256·(8·32) = 23,691,264 + 3,145,728.
		{"ref", 3_950_848, 3_948_544, 26_836_992},
		// smollm135m: per layer 576·576·2 + 2·576·192 + 3·576·1536 = 3,538,944; ×30 = 106,168,320, plus
		// head 49152·576 = 28,311,552 → N = 134,479,872; + 61 norms of 576 = 35,136 → 134,515,008, the
		// parameter count of SmolLM-135M. Attention: 12·30·512·576 = 106,168,320.
		{"smollm135m", 134_515_008, 134_479_872, 6*134_479_872 + 106_168_320},
		// decode512 (untied): per layer 512·512·2 + 2·512·256 + 3·512·1376 = 2,899,968; ×8 = 23,199,744,
		// + head 32000·512 = 16,384,000 → N = 39,583,744; stored also holds the embedding (16,384,000)
		// and 17 norms of 512 (8,704) → 55,976,448.
		{"decode512", 55_976_448, 39_583_744, 6*39_583_744 + 12*8*128*512},
		// qwen3-0.6b (tied, head_dim 128 ≠ 1024/16): per layer q 1024·2048 + k,v 2·1024·1024 + o 2048·1024
		// + 3·1024·3072 = 15,728,640; ×28 = 440,401,920 (Qwen3-0.6B's published 0.44B non-embedding),
		// + head 151936·1024 = 155,582,464 → N = 595,984,384. Stored adds 28·(2·1024 + q_norm 128 +
		// k_norm 128) + 1024 = 65,536 gains → 596,049,920. Attention: 12·28·512·(16·128) = 352,321,536.
		{"qwen3-0.6b", 596_049_920, 595_984_384, 6*595_984_384 + 12*28*512*16*128},
	}
	for _, tc := range tests {
		t.Run(tc.preset, func(t *testing.T) {
			c := preset(t, tc.preset).Config
			if got := ParamCount(c); got != tc.params {
				t.Errorf("ParamCount = %d, want %d", got, tc.params)
			}
			if got := MatmulParams(c); got != tc.nmat {
				t.Errorf("MatmulParams = %d, want %d", got, tc.nmat)
			}
			if got := FLOPsPerToken(c, preset(t, tc.preset).SeqLen); got != tc.flopsPerToken {
				t.Errorf("FLOPsPerToken = %.0f, want %.0f", got, tc.flopsPerToken)
			}
		})
	}
}

// TestTorchScriptAgrees checks that bench/torch_train.py builds the same shapes (its nn.Module's own
// parameter count, with and without its hand-written LoRA) and counts FLOPs with the same formulas as
// this package, for every preset and mode.
func TestTorchScriptAgrees(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: builds every preset in PyTorch")
	}
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import torch").Run(); err != nil {
		t.Skipf("%s cannot import torch (apt-get install -y python3-torch): %v", py, err)
	}
	out, err := exec.Command(py, filepath.Join(sharedtest.RepoRoot(t), "bench", "torch_train.py"), "--describe").Output()
	if err != nil {
		t.Fatalf("torch_train.py --describe: %v", err)
	}
	var got map[string]struct {
		Params       int64   `json:"params"`
		ParamsMatmul int64   `json:"params_matmul"`
		FLOPPerToken float64 `json:"flop_per_token"`
		Batch        int     `json:"batch"`
		SeqLen       int     `json:"seq_len"`
		// The hand-written LoRA's trainable count at r 16 (its nn.Module's own), and the count of
		// the other modes.
		LoRA16Trainable int64   `json:"lora16_trainable_params"`
		FLOPCkpt        float64 `json:"flop_per_token_ckpt"`
		FLOPLoRA16      float64 `json:"flop_per_token_lora16"`
		FLOPLoRA16Ckpt  float64 `json:"flop_per_token_lora16_ckpt"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("torch_train.py --describe printed %q: %v", out, err)
	}
	for _, name := range PresetNames() {
		p := preset(t, name)
		g, ok := got[name]
		if !ok {
			t.Errorf("torch_train.py has no preset %s", name)
			continue
		}
		if g.Params != ParamCount(p.Config) || g.ParamsMatmul != MatmulParams(p.Config) ||
			g.FLOPPerToken != FLOPsPerToken(p.Config, p.SeqLen) || g.Batch != p.Batch || g.SeqLen != p.SeqLen {
			t.Errorf("%s: torch %+v, Go params %d, matmul %d, FLOPs/token %.0f, batch %d × %d", name, g,
				ParamCount(p.Config), MatmulParams(p.Config), FLOPsPerToken(p.Config, p.SeqLen), p.Batch, p.SeqLen)
		}
		modes := []struct {
			torch float64
			m     Mode
		}{{g.FLOPCkpt, Mode{GradientCheckpointing: true}}, {g.FLOPLoRA16, Mode{LoRAR: 16}}, {g.FLOPLoRA16Ckpt, Mode{LoRAR: 16, GradientCheckpointing: true}}}
		for _, m := range modes {
			if want := StepFLOPsPerToken(p.Config, p.SeqLen, m.m); m.torch != want {
				t.Errorf("%s %+v: torch counts %.0f FLOPs/token, Go %.0f", name, m.m, m.torch, want)
			}
		}
		if want := LoRAMatmulParams(p.Config, 16); g.LoRA16Trainable != want {
			t.Errorf("%s: torch's LoRA r16 trains %d values, Go counts %d", name, g.LoRA16Trainable, want)
		}
	}
	if len(got) != len(PresetNames()) {
		t.Errorf("torch_train.py has %d presets, Go has %d", len(got), len(PresetNames()))
	}
}

func TestLookupPresetUnknown(t *testing.T) {
	_, err := LookupPreset("big")
	want := `preset "big": want one of ref, smollm135m, decode512, stories260k, tiny, llama3-1b, llama3-8b, qwen3-0.6b`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}
