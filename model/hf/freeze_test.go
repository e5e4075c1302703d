package hf

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/alignkit/alignkit/model"
	"github.com/alignkit/alignkit/model/ops"
)

// TestLoadWithFreeze: Freeze is offered every tensor of stories260K (tied) but the embedding and the
// lm_head beside it (which Load compares and drops), single-file and sharded alike; what it returns takes the
// tensor's place, holding the values Load reads; a non-finite value in an offered tensor, and an
// error of convert, are one line naming the file and the tensor.
func TestLoadWithFreeze(t *testing.T) {
	w := loadStories(t)
	tensors := map[string]*model.Tensor{model.LMHeadKey: w.Tensors[model.EmbedKey]}
	for name, tn := range w.Tensors {
		tensors[name] = tn
	}
	single := modelDir(t, nil, tensors)
	sharded := t.TempDir()
	if err := Save(sharded, w, SaveOptions{MaxShardSize: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	q := model.LayerKey(0, "self_attn.q_proj.weight")
	for _, dir := range []string{single, sharded} {
		var offered []string
		freeze := func(name string, shape []int) func([]float32) (*model.Tensor, error) {
			offered = append(offered, name)
			if len(shape) != 2 {
				return nil
			}
			return func(data []float32) (*model.Tensor, error) {
				f, err := ops.NewDenseFrozen(slices.Clone(data), shape[0], shape[1])
				return &model.Tensor{Shape: shape, Frozen: f}, err
			}
		}
		got, err := LoadWith(context.Background(), dir, LoadOptions{Freeze: freeze})
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(offered, model.LMHeadKey) || slices.Contains(offered, model.EmbedKey) || len(offered) != len(w.Tensors)-1 {
			t.Fatalf("%s: offered %v, want the model's tensors but the embedding and lm_head", dir, offered)
		}
		for name, want := range w.Tensors {
			tn := got.Tensors[name]
			values := tn.Data
			if len(want.Shape) == 2 && name != model.EmbedKey {
				d, ok := tn.Frozen.(*ops.DenseFrozen)
				if !ok || tn.Data != nil {
					t.Fatalf("%s: %s held as %T with %d values, want what Freeze returned", dir, name, tn.Frozen, len(tn.Data))
				}
				values = d.W
			}
			if !slices.Equal(values, want.Data) {
				t.Fatalf("%s: %s holds other values than Load reads", dir, name)
			}
		}
	}

	bad := map[string]*model.Tensor{}
	for name, tn := range w.Tensors {
		bad[name] = &model.Tensor{Shape: tn.Shape, Data: slices.Clone(tn.Data)}
	}
	bad[q].Data[3] = float32(math.NaN())
	dir := modelDir(t, nil, bad)
	keep := func(string, []int) func([]float32) (*model.Tensor, error) {
		return func([]float32) (*model.Tensor, error) { return nil, errors.New("boom") }
	}
	file := filepath.Join(dir, WeightsFile)
	for _, c := range []struct {
		freeze func(string, []int) func([]float32) (*model.Tensor, error)
		want   string
	}{
		{func(name string, _ []int) func([]float32) (*model.Tensor, error) {
			if name != q {
				return nil
			}
			return keep(name, nil)
		}, file + `: tensor "` + q + `" holds NaN at index 3`},
		{keep, file + `: tensor "` + model.LayerKey(0, "input_layernorm.weight") + `": boom`},
	} {
		if _, err := LoadWith(context.Background(), dir, LoadOptions{Freeze: c.freeze}); err == nil || err.Error() != c.want {
			t.Errorf("error %v\nwant %s", err, c.want)
		}
	}
}
