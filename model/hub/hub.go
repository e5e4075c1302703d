// Package hub resolves the names users already have on disk into local paths, offline: a Hugging
// Face repo id (org/name[@revision]) through the Hugging Face hub cache, and an ollama model
// (ollama:name[:tag]) through ollama's model store. Nothing is ever downloaded: a name that is not
// on disk is one error line saying where it looked and the command that would fetch it.
//
// The layouts are huggingface_hub's cache (models--org--name/refs/<branch> holds a commit hash,
// snapshots/<commit>/ holds the files, as symlinks into blobs/) and ollama's store
// (manifests/<host>/<namespace>/<name>/<tag> is an OCI manifest whose
// application/vnd.ollama.image.model layer names blobs/sha256-<hex>, a GGUF).
package hub

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Locations are the directories names resolve in. The zero value is unusable; use FromEnv.
type Locations struct {
	// HubCache is the Hugging Face hub cache: HF_HUB_CACHE, else HF_HOME/hub, else
	// ~/.cache/huggingface/hub (huggingface_hub's constants.HF_HUB_CACHE).
	HubCache string
	// OllamaModels is ollama's model store: OLLAMA_MODELS, else ~/.ollama/models.
	OllamaModels string
}

// FromEnv reads the locations from the environment, with huggingface_hub's and ollama's defaults.
func FromEnv() Locations {
	home, _ := os.UserHomeDir()
	l := Locations{HubCache: os.Getenv("HF_HUB_CACHE"), OllamaModels: os.Getenv("OLLAMA_MODELS")}
	if l.HubCache == "" {
		hfHome := os.Getenv("HF_HOME")
		if hfHome == "" {
			xdg := os.Getenv("XDG_CACHE_HOME")
			if xdg == "" {
				xdg = filepath.Join(home, ".cache")
			}
			hfHome = filepath.Join(xdg, "huggingface")
		}
		l.HubCache = filepath.Join(hfHome, "hub")
	}
	if l.OllamaModels == "" {
		l.OllamaModels = filepath.Join(home, ".ollama", "models")
	}
	return l
}

// ErrNotFound is wrapped by every error for a well-formed name that is not on disk.
var ErrNotFound = errors.New("not found")

// notFound is a miss: one line naming where it looked and the command that fetches the name.
type notFound struct{ msg string }

func (e *notFound) Error() string { return e.msg }
func (e *notFound) Is(t error) bool {
	return t == ErrNotFound
}

// OllamaPrefix marks an ollama model name.
const OllamaPrefix = "ollama:"

// repoIDPart is one half of a Hugging Face repo id: huggingface_hub's validate_repo_id allows
// letters, digits, '-', '_' and '.', not starting or ending with '-' or '.'; "--" and ".." are
// refused.
var repoIDPart = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$`)

// revisionRe is a branch, tag or commit: git ref characters, "/" allowed (refs/pr/1).
var revisionRe = regexp.MustCompile(`^[A-Za-z0-9_.][A-Za-z0-9_./-]*$`)

// Repo is a parsed Hugging Face repo id with an optional revision.
type Repo struct {
	Org, Name string
	Revision  string // "" means main
}

// ID is "org/name".
func (r Repo) ID() string { return r.Org + "/" + r.Name }

// ParseRepo parses "org/name" or "org/name@revision"; ok is false for anything else (a path with
// more or fewer than one '/', a leading '.' or '/', characters a repo id cannot hold).
func ParseRepo(s string) (Repo, bool) {
	id, rev, hasRev := strings.Cut(s, "@")
	if hasRev && (rev == "" || !revisionRe.MatchString(rev) || strings.Contains(rev, "..")) {
		return Repo{}, false
	}
	org, name, ok := strings.Cut(id, "/")
	if !ok || strings.Contains(name, "/") || len(id) > 96 {
		return Repo{}, false
	}
	for _, p := range []string{org, name} {
		if !repoIDPart.MatchString(p) || strings.Contains(p, "--") || strings.Contains(p, "..") {
			return Repo{}, false
		}
	}
	return Repo{Org: org, Name: name, Revision: rev}, true
}

// IsName reports whether s has the shape of a name this package resolves (a repo id or an ollama
// name). Callers try a local path first: a path that exists always wins.
func IsName(s string) bool {
	if strings.HasPrefix(s, OllamaPrefix) {
		return true
	}
	_, ok := ParseRepo(s)
	return ok
}

// exists reports whether a local path exists (the rule that a path always wins over a name).
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// snapshot resolves repo's revision in the cache folder of kind ("models" or "datasets") to its
// snapshot directory.
func (l Locations) snapshot(kind string, r Repo, fetch string) (string, error) {
	repoDir := filepath.Join(l.HubCache, kind+"--"+r.Org+"--"+r.Name)
	rev := r.Revision
	if rev == "" {
		rev = "main"
	}
	miss := func(what string) error {
		return &notFound{fmt.Sprintf("%s: %s (fetch it with: %s)", r.ID()+revSuffix(r), what, fetch)}
	}
	if !exists(repoDir) {
		return "", miss(fmt.Sprintf("not a local path, and not in the Hugging Face cache %s (no %s)", l.HubCache, filepath.Base(repoDir)))
	}
	commit := rev
	if b, err := os.ReadFile(filepath.Join(repoDir, "refs", filepath.FromSlash(rev))); err == nil {
		commit = strings.TrimSpace(string(b))
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%s: reading ref %s: %w", r.ID(), rev, err)
	}
	if commit == "" || strings.ContainsAny(commit, `/\`) || commit == "." || commit == ".." {
		return "", fmt.Errorf("%s: ref %s in %s holds %q, not a commit hash", r.ID(), rev, repoDir, commit)
	}
	snap := filepath.Join(repoDir, "snapshots", commit)
	if st, err := os.Stat(snap); err != nil || !st.IsDir() {
		if commit == rev {
			return "", miss(fmt.Sprintf("revision %q is neither a ref nor a snapshot in %s", rev, repoDir))
		}
		return "", miss(fmt.Sprintf("ref %s points at commit %s, which has no snapshot in %s", rev, commit, repoDir))
	}
	return snap, nil
}

func revSuffix(r Repo) string {
	if r.Revision == "" {
		return ""
	}
	return "@" + r.Revision
}

func fetchModel(r Repo) string {
	if r.Revision != "" {
		return fmt.Sprintf("huggingface-cli download %s --revision %s", r.ID(), r.Revision)
	}
	return "huggingface-cli download " + r.ID()
}

func fetchDataset(r Repo) string {
	if r.Revision != "" {
		return fmt.Sprintf("huggingface-cli download --repo-type dataset %s --revision %s", r.ID(), r.Revision)
	}
	return "huggingface-cli download --repo-type dataset " + r.ID()
}

// Model resolves a model name to a local path: an HF snapshot directory (config.json inside), the
// one .gguf file of a snapshot that holds GGUFs only, or an ollama model's GGUF blob. A local path
// that exists is returned as it is.
func (l Locations) Model(name string) (string, error) {
	if exists(name) {
		return name, nil
	}
	if strings.HasPrefix(name, OllamaPrefix) {
		return l.ollama(strings.TrimPrefix(name, OllamaPrefix))
	}
	r, ok := ParseRepo(name)
	if !ok {
		return "", fmt.Errorf("%s: no such file or directory (and not a Hugging Face org/name or ollama:name)", name)
	}
	snap, err := l.snapshot("models", r, fetchModel(r))
	if err != nil {
		return "", err
	}
	if exists(filepath.Join(snap, "config.json")) {
		return snap, nil
	}
	ggufs, _ := filepath.Glob(filepath.Join(snap, "*.gguf"))
	switch len(ggufs) {
	case 0:
		return "", fmt.Errorf("%s: snapshot %s has neither config.json nor a .gguf file", r.ID()+revSuffix(r), snap)
	case 1:
		return ggufs[0], nil
	}
	names := make([]string, len(ggufs))
	for i, g := range ggufs {
		names[i] = filepath.Base(g)
	}
	return "", fmt.Errorf("%s: snapshot %s holds %d GGUF files (%s): give the file's path", r.ID()+revSuffix(r), snap, len(ggufs), strings.Join(names, ", "))
}

// Model resolves name with the environment's locations (see Locations.Model).
func Model(name string) (string, error) { return FromEnv().Model(name) }

// Dataset resolves a dataset name and split to its data files (see Locations.Dataset).
func Dataset(name, split string) ([]string, error) { return FromEnv().Dataset(name, split) }
