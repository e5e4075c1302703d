package train

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// jfloat is a float64 that survives JSON exactly: finite values use the shortest representation that
// parses back to the same bits, non-finite ones the strings "NaN", "+Inf", "-Inf".
type jfloat float64

func (f jfloat) MarshalJSON() ([]byte, error) {
	x := float64(f)
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return []byte(strconv.Quote(strconv.FormatFloat(x, 'g', -1, 64))), nil
	}
	return []byte(strconv.FormatFloat(x, 'g', -1, 64)), nil
}

func (f *jfloat) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) > 0 && s[0] == '"' {
		u, err := strconv.Unquote(s)
		if err != nil {
			return err
		}
		s = u
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("bad number %s", b)
	}
	*f = jfloat(x)
	return nil
}

// trainingStateVersion is bumped when training_state.json changes incompatibly.
const trainingStateVersion = 1

// trainingState is checkpoint-N/training_state.json: everything beyond weights and moments that an exact
// resume needs.
type trainingState struct {
	Version    int `json:"version"`
	GlobalStep int `json:"global_step"`
	// Epoch and MicroBatch are the data position: MicroBatch micro-batches of 0-based Epoch are consumed.
	Epoch          int   `json:"epoch"`
	MicroBatch     int   `json:"micro_batch_in_epoch"`
	NumExamples    int   `json:"num_examples"`
	TrainBatchSize int   `json:"per_device_train_batch_size"`
	Seed           int64 `json:"seed"`
	// RNG documents the shuffle generator; its state is a pure function of (seed, epoch), so restoring
	// Seed and Epoch restores it.
	RNG       rngState    `json:"rng"`
	NumTokens int64       `json:"num_tokens"`
	LossSum   jfloat      `json:"loss_sum"`
	Window    windowState `json:"logging_window"`
}

type rngState struct {
	Algorithm string `json:"algorithm"`
	Seed      uint64 `json:"seed"`
	Stream    uint64 `json:"stream"`
}

const rngAlgorithm = "PCG-DXSM(seed, stream=epoch), Fisher-Yates with Lemire bounded draws"

// windowState accumulates the steps since the last metrics line.
type windowState struct {
	Steps   int               `json:"steps"`
	LossSum jfloat            `json:"loss_sum"`
	Tokens  int64             `json:"tokens"`
	Sums    map[string]jfloat `json:"weighted_sums"`
	Weights map[string]jfloat `json:"weights"`
}

func (w *windowState) reset() {
	*w = windowState{Sums: map[string]jfloat{}, Weights: map[string]jfloat{}}
}

// trainerState is HF's TrainerState as written to trainer_state.json (keys sorted, as HF's
// json.dumps(sort_keys=True) writes them).
type trainerState struct {
	BestGlobalStep      *int             `json:"best_global_step"`
	BestMetric          *float64         `json:"best_metric"`
	BestModelCheckpoint *string          `json:"best_model_checkpoint"`
	Epoch               float64          `json:"epoch"`
	EvalSteps           int              `json:"eval_steps"`
	GlobalStep          int              `json:"global_step"`
	IsHyperParamSearch  bool             `json:"is_hyper_param_search"`
	IsLocalProcessZero  bool             `json:"is_local_process_zero"`
	IsWorldProcessZero  bool             `json:"is_world_process_zero"`
	LogHistory          []map[string]any `json:"log_history"`
	LoggingSteps        int              `json:"logging_steps"`
	MaxSteps            int              `json:"max_steps"`
	NumInputTokensSeen  int64            `json:"num_input_tokens_seen"`
	NumTrainEpochs      int              `json:"num_train_epochs"`
	SaveSteps           int              `json:"save_steps"`
	StatefulCallbacks   map[string]any   `json:"stateful_callbacks"`
	TotalFlos           float64          `json:"total_flos"`
	TrainBatchSize      int              `json:"train_batch_size"`
	TrialName           *string          `json:"trial_name"`
	TrialParams         map[string]any   `json:"trial_params"`
}

func marshalIndent(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// jsonNumber returns x, or nil (JSON null) when x is not finite: JSON has no NaN.
func jsonNumber(x float64) any {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return x
}
