package rlhf

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"

	"github.com/alignkit/alignkit/internal/atomicfile"
)

// Best returns the index of the highest reward, the lowest index among equal maxima. NaN rewards
// are skipped; an empty slice or one of only NaNs gives −1.
func Best(rewards []float64) int {
	best := -1
	for i, r := range rewards {
		if math.IsNaN(r) {
			continue
		}
		if best < 0 || r > rewards[best] {
			best = i
		}
	}
	return best
}

// Sample is one scored completion of one prompt.
type Sample struct {
	Prompt string  `json:"prompt"` // the prompt's key (its id, or its text)
	Text   string  `json:"text"`   // the completion
	Reward float64 `json:"reward"` // the reward model's score
	Round  int     `json:"round"`  // the rejection-sampling round that produced it
	Index  int     `json:"index"`  // its position among the round's samples for this prompt
}

// Pool keeps, per prompt, the best Keep samples over every round added so far. It is not safe for
// concurrent use.
type Pool struct {
	keep int
	// byPrompt holds each prompt's kept samples in rank order; seq numbers the insertions so that
	// ties go to the sample added first.
	byPrompt map[string][]ranked
	seq      int
}

type ranked struct {
	Sample
	seq int
}

// NewPool returns an empty pool that keeps the best keep ≥ 1 samples per prompt.
func NewPool(keep int) (*Pool, error) {
	if keep < 1 {
		return nil, fmt.Errorf("pool keep %d: want at least 1 sample per prompt", keep)
	}
	return &Pool{keep: keep, byPrompt: map[string][]ranked{}}, nil
}

// Keep is the number of samples kept per prompt.
func (p *Pool) Keep() int { return p.keep }

// Add scores one round's samples of one prompt into the pool: texts[i] has reward rewards[i]. A NaN
// or infinite reward is an error and leaves the pool unchanged.
func (p *Pool) Add(round int, prompt string, texts []string, rewards []float64) error {
	if round < 0 {
		return fmt.Errorf("prompt %q: round %d: want a round >= 0", prompt, round)
	}
	if len(texts) != len(rewards) {
		return fmt.Errorf("prompt %q round %d: %d texts but %d rewards", prompt, round, len(texts), len(rewards))
	}
	for i, r := range rewards {
		if math.IsNaN(r) || math.IsInf(r, 0) {
			return fmt.Errorf("prompt %q round %d sample %d: reward %v is not finite", prompt, round, i, r)
		}
	}
	if len(texts) == 0 {
		return nil // nothing to rank; the prompt is not listed until it has a sample
	}
	cur := p.byPrompt[prompt]
	for i, t := range texts {
		cur = append(cur, ranked{Sample{Prompt: prompt, Text: t, Reward: rewards[i], Round: round, Index: i}, p.seq})
		p.seq++
	}
	p.byPrompt[prompt] = p.trim(cur)
	return nil
}

// trim ranks a prompt's candidates, drops repeated texts below their best copy, and keeps the top.
func (p *Pool) trim(c []ranked) []ranked {
	sort.SliceStable(c, func(i, j int) bool {
		if c[i].Reward != c[j].Reward {
			return c[i].Reward > c[j].Reward
		}
		return c[i].seq < c[j].seq
	})
	seen := make(map[string]bool, len(c))
	out := c[:0]
	for _, s := range c {
		if seen[s.Text] {
			continue
		}
		seen[s.Text] = true
		out = append(out, s)
		if len(out) == p.keep {
			break
		}
	}
	return append([]ranked(nil), out...)
}

// Top returns a prompt's kept samples, best first (nil for an unknown prompt).
func (p *Pool) Top(prompt string) []Sample {
	rs := p.byPrompt[prompt]
	if len(rs) == 0 {
		return nil
	}
	out := make([]Sample, len(rs))
	for i, r := range rs {
		out[i] = r.Sample
	}
	return out
}

// Prompts lists the prompts in the pool, sorted.
func (p *Pool) Prompts() []string {
	ks := make([]string, 0, len(p.byPrompt))
	for k := range p.byPrompt {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Samples is the SFT set: every kept sample, by prompt (sorted) and then by rank.
func (p *Pool) Samples() []Sample {
	var out []Sample
	for _, k := range p.Prompts() {
		out = append(out, p.Top(k)...)
	}
	return out
}

// poolFile is the on-disk form of a pool. Samples are in rank order per prompt, so reloading and
// adding reproduces the same ties as the pool that was saved.
type poolFile struct {
	Keep    int      `json:"keep"`
	Samples []Sample `json:"samples"`
}

// Save writes the pool as JSON, atomically (a temporary file in the same directory, then rename), so
// that the next round can resume from it.
func (p *Pool) Save(path string) error {
	data, err := json.MarshalIndent(poolFile{Keep: p.keep, Samples: p.Samples()}, "", " ")
	if err != nil {
		return fmt.Errorf("encoding pool for %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, append(data, '\n'))
}

// LoadPool reads a pool written by Save.
func LoadPool(path string) (*Pool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading pool: %w", err)
	}
	var f poolFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("parsing pool %s: %w", path, err)
	}
	p, err := NewPool(f.Keep)
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", path, err)
	}
	for i, s := range f.Samples {
		if s.Round < 0 || math.IsNaN(s.Reward) || math.IsInf(s.Reward, 0) {
			return nil, fmt.Errorf("pool %s sample %d: round %d reward %v: want round >= 0 and a finite reward", path, i, s.Round, s.Reward)
		}
		// Samples are stored in rank order, so insertion order is the tie order.
		p.byPrompt[s.Prompt] = append(p.byPrompt[s.Prompt], ranked{s, p.seq})
		p.seq++
	}
	for k, rs := range p.byPrompt {
		if len(rs) > p.keep {
			return nil, fmt.Errorf("pool %s: prompt %q has %d samples: more than keep %d", path, k, len(rs), p.keep)
		}
		p.byPrompt[k] = p.trim(rs)
	}
	return p, nil
}
