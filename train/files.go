package train

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
)

// syncTree fsyncs every file and directory under dir so that a rename of dir publishes durable content.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		return syncDir(path)
	})
}

// syncDir fsyncs one directory (or regular file).
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

var checkpointName = regexp.MustCompile(`^checkpoint-([0-9]+)$`)

// checkpointFiles are written by the loop in every checkpoint; a directory lacking one of them is not a
// complete checkpoint (the task's model files come first, trainer_state.json last).
var checkpointFiles = []string{paramsFile, optimizerFile, trainingStateFile, trainerStateFile}

const (
	paramsFile        = "params.bin"
	optimizerFile     = "optimizer.bin"
	trainingStateFile = "training_state.json"
	trainerStateFile  = "trainer_state.json"
	metricsFile       = "metrics.jsonl"
	configFile        = "run_config.json"
	completeFile      = "training_complete.json"
	plotFile          = "loss.png"
	finalTmpDir       = ".final.tmp"
)

// isCompleteCheckpoint reports whether dir holds every file the loop writes into a checkpoint.
func isCompleteCheckpoint(dir string) bool {
	for _, name := range checkpointFiles {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || !st.Mode().IsRegular() {
			return false
		}
	}
	return true
}

type checkpointDir struct {
	step int
	path string
}

// listCheckpoints returns output_dir's checkpoint-N directories sorted by N; complete restricts them to
// complete ones.
func listCheckpoints(outputDir string, complete bool) ([]checkpointDir, error) {
	entries, err := os.ReadDir(outputDir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing checkpoints in %s: %w", outputDir, err)
	}
	var out []checkpointDir
	for _, e := range entries {
		m := checkpointName.FindStringSubmatch(e.Name())
		if m == nil || !e.IsDir() {
			continue
		}
		n, err := strconv.Atoi(m[1])
		if err != nil {
			continue
		}
		p := filepath.Join(outputDir, e.Name())
		if complete && !isCompleteCheckpoint(p) {
			continue
		}
		out = append(out, checkpointDir{n, p})
	}
	slices.SortFunc(out, func(a, b checkpointDir) int { return a.step - b.step })
	return out, nil
}

// LatestCheckpoint returns the complete checkpoint-N directory of outputDir with the largest N, or ""
// when there is none.
func LatestCheckpoint(outputDir string) (string, error) {
	cs, err := listCheckpoints(outputDir, true)
	if err != nil || len(cs) == 0 {
		return "", err
	}
	return cs[len(cs)-1].path, nil
}

// cleanStale removes what an interrupted save or finalisation left behind: .checkpoint-N.tmp,
// .checkpoint-N.old and .final.tmp directories. None of them can be mistaken for a checkpoint, but they
// hold disk space.
func cleanStale(outputDir string) error {
	entries, err := os.ReadDir(outputDir)
	if err != nil {
		return fmt.Errorf("reading %s: %w", outputDir, err)
	}
	stale := regexp.MustCompile(`^\.checkpoint-[0-9]+\.(tmp|old)$`)
	for _, e := range entries {
		if e.IsDir() && (stale.MatchString(e.Name()) || e.Name() == finalTmpDir) {
			if err := os.RemoveAll(filepath.Join(outputDir, e.Name())); err != nil {
				return fmt.Errorf("removing stale %s: %w", e.Name(), err)
			}
		}
	}
	return nil
}
