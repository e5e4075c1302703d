package train

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// barTask declares its bar metrics through BarMetricsTask.
type barTask struct {
	*softmaxTask
	names []string
}

func (b barTask) BarMetrics() []string { return b.names }

// TestBarMetrics: the softmax task logs mean_token_accuracy for training and evaluation (every step
// is logged and step 20 evaluates). The bar's final description, which Finish writes out, shows it
// (and its eval_ twin) when the task asks, names it does not log or repeats are left out, and
// otherwise it shows only loss, tok/s and eval_loss. Plain log lines carry it regardless.
func TestBarMetrics(t *testing.T) {
	const acc = MeanTokenAccuracy
	shown := regexp.MustCompile(`\| ` + acc + ` [0-9.e-]+ \| eval_loss [0-9.]+ \| eval_` + acc + ` [0-9.e-]+`)
	for _, tc := range []struct {
		name  string
		task  func() Task
		opts  []Option
		shows bool
	}{
		{"task, unlogged and repeated names", func() Task { return barTask{newSoftmaxTask(16, 6, 1), []string{acc, "rewards/margins", acc}} }, nil, true},
		{"task", func() Task { return barTask{newSoftmaxTask(16, 6, 1), []string{"loss", acc}} }, nil, true},
		{"neither", func() Task { return newSoftmaxTask(16, 6, 1) }, nil, false},
	} {
		var log bytes.Buffer
		opts := append([]Option{WithLogWriter(&log), WithProgressBar(true)}, tc.opts...)
		mustRun(t, baseArgs(t.TempDir()), tc.task(), opts...)
		out := log.String()
		if got := shown.MatchString(out); got != tc.shows {
			t.Errorf("%s: bar shows %s: %v, want %v; output:\n%s", tc.name, acc, got, tc.shows, out)
		}
		if strings.Contains(out, "rewards/margins") || strings.Count(out, "| "+acc+" ") > strings.Count(out, " tok/s") {
			t.Errorf("%s: a metric the task does not log, or a repeated one, is on the bar:\n%s", tc.name, out)
		}
		if !tc.shows && strings.Contains(out, acc) {
			t.Errorf("%s: %s is on the bar unasked:\n%s", tc.name, acc, out)
		}

		log.Reset()
		opts[1] = WithProgressBar(false)
		mustRun(t, baseArgs(t.TempDir()), tc.task(), opts...)
		line := regexp.MustCompile(`(?m)^step 20/20 .* ` + acc + ` [0-9.e-]+ .*eval_` + acc + ` [0-9.e-]+`)
		if !line.MatchString(log.String()) {
			t.Errorf("%s: plain log lines lack %s:\n%s", tc.name, acc, log.String())
		}
	}
}
