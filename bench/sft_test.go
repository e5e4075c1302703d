package bench

import (
	"context"
	"math"
	"path/filepath"
	"testing"
)

// TestSFTStories260K times `alignkit sft` for a few steps on stories260K and no_robots: every timed
// step is read back from the loop's metrics.jsonl, and the loss starts near stories260K's SFT loss on
// this data (configs/sft/stories260k.yaml's eval loss starts at about 3.9) rather than at ln 512.
func TestSFTStories260K(t *testing.T) {
	shared := sharedDir(t)
	res, err := SFT(context.Background(), SFTOptions{Name: "stories260k", Model: filepath.Join(shared, "models", "stories260K"),
		Dataset: filepath.Join(shared, "data", "no_robots_test_sft.parquet"), Batch: 4, MaxLength: 128, Steps: 3, Warmup: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.StepTokensPerS) != 3 || res.TokensPerSecond <= 0 || res.Kind != "sft" {
		t.Fatalf("result %+v", res)
	}
	if res.LossFirst < 2 || res.LossFirst > 5 || math.IsNaN(res.LossLast) {
		t.Errorf("loss %.4f -> %.4f, want a first loss in [2, 5]", res.LossFirst, res.LossLast)
	}
}

func TestSFTBadOptions(t *testing.T) {
	_, err := SFT(context.Background(), SFTOptions{Steps: 1, Batch: 0, MaxLength: 128})
	want := "bench sft: steps 1, warmup 0, batch 0, max length 128 out of range"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}
