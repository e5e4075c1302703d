package reward

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/alignkit/alignkit/train"
)

// Output is the loss, its gradient and the diagnostics of one batch of N pairs.
type Output struct {
	Loss   float64   // mean over pairs of −log σ(r_c − r_r − m) + λ·(r_c + r_r)²
	Losses []float64 // (N) per-pair loss, centering included

	// Gradient of Loss with respect to the chosen and rejected rewards.
	DChosen, DRejected []float64 // (N)

	// Metrics: accuracy (share of pairs with r_c > r_r; a tie counts as wrong), margin (mean r_c − r_r),
	// reward/min, reward/mean, reward/max over all 2N rewards, and centering (mean (r_c + r_r)²,
	// before multiplying by the coefficient).
	Metrics map[string]float64
}

// Loss is the Bradley–Terry reward-model loss with an optional per-pair margin (nil for none) and
// TRL's reward-centering coefficient (0 disables it). Non-finite inputs are errors.
func Loss(chosen, rejected, margin []float64, centerCoef float64) (Output, error) {
	n := len(chosen)
	if n == 0 {
		return Output{}, errors.New("chosen rewards are empty: want at least one pair")
	}
	if len(rejected) != n {
		return Output{}, fmt.Errorf("rejected rewards have %d entries: want %d, as chosen", len(rejected), n)
	}
	if margin != nil && len(margin) != n {
		return Output{}, fmt.Errorf("margins have %d entries: want %d, as chosen", len(margin), n)
	}
	if math.IsNaN(centerCoef) || math.IsInf(centerCoef, 0) || centerCoef < 0 {
		return Output{}, fmt.Errorf("center_rewards_coefficient %v: want a finite value >= 0", centerCoef)
	}
	for _, f := range []struct {
		name string
		v    []float64
	}{{"chosen", chosen}, {"rejected", rejected}, {"margin", margin}} {
		for i, x := range f.v {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return Output{}, fmt.Errorf("%s[%d] = %v: want a finite number", f.name, i, x)
			}
		}
	}

	out := Output{
		Losses:    make([]float64, n),
		DChosen:   make([]float64, n),
		DRejected: make([]float64, n),
		Metrics:   map[string]float64{},
	}
	inv := 1 / float64(n)
	var sumLoss, sumAcc, sumMargin, sumCenter, sumReward float64
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := 0; i < n; i++ {
		rc, rr := chosen[i], rejected[i]
		var m float64
		if margin != nil {
			m = margin[i]
		}
		z := rc - rr - m
		s := rc + rr
		// d/dz[−log σ(z)] = −σ(−z); d/d r_c[λ s²] = d/d r_r[λ s²] = 2λs.
		l := -train.LogSigmoid(z) + centerCoef*s*s
		g := -train.Sigmoid(-z)
		out.Losses[i] = l
		out.DChosen[i] = (g + 2*centerCoef*s) * inv
		out.DRejected[i] = (-g + 2*centerCoef*s) * inv
		sumLoss += l
		if rc > rr {
			sumAcc++
		}
		sumMargin += rc - rr
		sumCenter += s * s
		sumReward += s
		lo = math.Min(lo, math.Min(rc, rr))
		hi = math.Max(hi, math.Max(rc, rr))
	}
	out.Loss = sumLoss * inv
	out.Metrics["accuracy"] = sumAcc * inv
	out.Metrics["margin"] = sumMargin * inv
	out.Metrics["centering"] = sumCenter * inv
	out.Metrics["reward/min"] = lo
	out.Metrics["reward/mean"] = sumReward * inv / 2
	out.Metrics["reward/max"] = hi
	return out, nil
}

// Margin preset names.
const (
	PresetSmall = "small"
	PresetLarge = "large"
)

// Rating labels of Llama 2's four-point preference scale, normalised as NormalizeRating does.
const (
	RatingSignificantlyBetter = "significantly better"
	RatingBetter              = "better"
	RatingSlightlyBetter      = "slightly better"
	RatingNegligiblyBetter    = "negligibly better / unsure"
)

// MarginPreset returns the rating → margin map of Llama 2 Table 27: "small" is
// {significantly better: 1, better: 2/3, slightly better: 1/3, negligibly better / unsure: 0} and
// "large" is {3, 2, 1, 0}. The last rating is also listed under "negligibly better" and "unsure".
// The caller owns the returned map.
func MarginPreset(name string) (map[string]float64, error) {
	var v [4]float64
	switch name {
	case PresetSmall:
		v = [4]float64{1, 2.0 / 3, 1.0 / 3, 0}
	case PresetLarge:
		v = [4]float64{3, 2, 1, 0}
	default:
		return nil, fmt.Errorf("margin preset %q: want one of small, large", name)
	}
	return map[string]float64{
		RatingSignificantlyBetter: v[0],
		RatingBetter:              v[1],
		RatingSlightlyBetter:      v[2],
		RatingNegligiblyBetter:    v[3],
		"negligibly better":       v[3],
		"unsure":                  v[3],
	}, nil
}

// MarginTable maps a dataset's rating column (a string label or a number) to a margin. Keys are
// normalised so that "Significantly  Better" matches "significantly better" and 3.0 matches "3".
type MarginTable struct {
	m map[string]float64
}

// NewMarginTable builds a table from an optional preset ("" for none) extended or overridden by
// custom entries, as a config file gives them (rating → margin). Two custom keys that normalise to
// the same rating, a non-finite margin, or an empty table are errors.
func NewMarginTable(preset string, custom map[string]float64) (*MarginTable, error) {
	t := &MarginTable{m: map[string]float64{}}
	if preset != "" {
		p, err := MarginPreset(preset)
		if err != nil {
			return nil, err
		}
		for k, v := range p {
			t.m[k] = v
		}
	}
	// Sorted so that the duplicate error names the same pair on every run.
	keys := make([]string, 0, len(custom))
	for k := range custom {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	seen := map[string]string{}
	for _, k := range keys {
		v := custom[k]
		nk := normalizeKey(k)
		if nk == "" {
			return nil, fmt.Errorf("margin map key %q: want a non-empty rating", k)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("margin map key %q: margin %v is not finite", k, v)
		}
		if prev, ok := seen[nk]; ok {
			return nil, fmt.Errorf("margin map keys %q and %q are the same rating %q", prev, k, nk)
		}
		seen[nk] = k
		t.m[nk] = v
	}
	if len(t.m) == 0 {
		return nil, errors.New("margin table is empty: set a preset (small, large) or a rating map")
	}
	return t, nil
}

// Margin returns the margin of one rating: a string, any Go integer or float type, or a
// json.Number-like fmt.Stringer holding a number.
func (t *MarginTable) Margin(rating any) (float64, error) {
	k, err := NormalizeRating(rating)
	if err != nil {
		return 0, err
	}
	v, ok := t.m[k]
	if !ok {
		return 0, fmt.Errorf("rating %q has no margin: want one of %s", k, strings.Join(t.Ratings(), ", "))
	}
	return v, nil
}

// Margins maps a whole rating column; the error names the row.
func (t *MarginTable) Margins(ratings []any) ([]float64, error) {
	out := make([]float64, len(ratings))
	for i, r := range ratings {
		v, err := t.Margin(r)
		if err != nil {
			return nil, fmt.Errorf("row %d: %w", i, err)
		}
		out[i] = v
	}
	return out, nil
}

// Ratings lists the table's normalised rating keys, sorted.
func (t *MarginTable) Ratings() []string {
	ks := make([]string, 0, len(t.m))
	for k := range t.m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// NormalizeRating turns a rating cell into its table key: strings are trimmed, lower-cased and have
// runs of spaces collapsed ("Negligibly Better / Unsure" → "negligibly better / unsure"); numbers,
// and strings that parse as numbers, are written in Go's shortest form (3.0 → "3", "0.50" → "0.5").
func NormalizeRating(rating any) (string, error) {
	var f float64
	switch v := rating.(type) {
	case string:
		return normalizeKey(v), nil
	case float64:
		f = v
	case float32:
		f = float64(v)
	case int:
		f = float64(v)
	case int8:
		f = float64(v)
	case int16:
		f = float64(v)
	case int32:
		f = float64(v)
	case int64:
		f = float64(v)
	case uint:
		f = float64(v)
	case uint8:
		f = float64(v)
	case uint16:
		f = float64(v)
	case uint32:
		f = float64(v)
	case uint64:
		f = float64(v)
	case fmt.Stringer:
		return normalizeKey(v.String()), nil
	default:
		return "", fmt.Errorf("rating %v of type %T: want a string or a number", rating, rating)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "", fmt.Errorf("rating %v: want a finite number", f)
	}
	return strconv.FormatFloat(f, 'g', -1, 64), nil
}

func normalizeKey(s string) string {
	s = strings.ToLower(strings.Join(strings.Fields(s), " "))
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return s
}

// BucketStat is the ranking accuracy of the pairs in one bucket.
type BucketStat struct {
	Bucket   string
	Pairs    int
	Correct  int     // pairs with r_c > r_r
	Accuracy float64 // Correct / Pairs
}

// BucketAccuracy is the accuracy per rating (or margin) bucket, as Llama 2 Table 28 reports it per
// preference rating. bucket[i] labels pair i. The buckets come back sorted by label, and overall
// covers every pair (its Bucket is empty). A tie r_c = r_r counts as wrong.
func BucketAccuracy(chosen, rejected []float64, bucket []string) (buckets []BucketStat, overall BucketStat, err error) {
	n := len(chosen)
	if n == 0 {
		return nil, BucketStat{}, errors.New("chosen rewards are empty: want at least one pair")
	}
	if len(rejected) != n {
		return nil, BucketStat{}, fmt.Errorf("rejected rewards have %d entries: want %d, as chosen", len(rejected), n)
	}
	if len(bucket) != n {
		return nil, BucketStat{}, fmt.Errorf("buckets have %d entries: want %d, as chosen", len(bucket), n)
	}
	by := map[string]*BucketStat{}
	var all BucketStat
	for i := 0; i < n; i++ {
		if math.IsNaN(chosen[i]) || math.IsNaN(rejected[i]) {
			return nil, BucketStat{}, fmt.Errorf("pair %d: reward is NaN", i)
		}
		s := by[bucket[i]]
		if s == nil {
			s = &BucketStat{Bucket: bucket[i]}
			by[bucket[i]] = s
		}
		s.Pairs++
		all.Pairs++
		if chosen[i] > rejected[i] {
			s.Correct++
			all.Correct++
		}
	}
	out := make([]BucketStat, 0, len(by))
	for _, s := range by {
		s.Accuracy = float64(s.Correct) / float64(s.Pairs)
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Bucket < out[j].Bucket })
	all.Accuracy = float64(all.Correct) / float64(all.Pairs)
	return out, all, nil
}
