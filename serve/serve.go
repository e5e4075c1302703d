package serve

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/rlhf"
)

// Defaults.
const (
	DefaultAddr          = "127.0.0.1:8080"
	DefaultMaxBodyBytes  = 1 << 20
	DefaultMaxConcurrent = 2
	DefaultShutdownGrace = 10 * time.Second
	// DefaultBodyTimeout is how long a client has to send a request body once its headers arrived:
	// a client that trickles its body is cut off rather than holding a connection and a slot.
	DefaultBodyTimeout = 30 * time.Second
	// DefaultIdleTimeout closes keep-alive connections that send nothing for this long.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMaxConnections bounds the connections open at once; more wait in the kernel's backlog.
	DefaultMaxConnections = 64
	// MaxN bounds n, the choices per prompt of one request.
	MaxN = 128
)

// Config configures a Server.
type Config struct {
	// Model is the policy: an HF directory or a .gguf file. Required.
	Model string
	// Adapter is a PEFT LoRA adapter directory over Model ("" for none), run unmerged.
	Adapter string
	// RewardModel enables /v1/score: an HF directory or .gguf with a score head ("" disables it).
	RewardModel string
	// Addr is the listen address (default 127.0.0.1:8080, loopback).
	Addr string
	// ChatTemplate is used for /v1/chat/completions and conversational scoring: a built-in name, a
	// file or Jinja source; "" is the model's own.
	ChatTemplate string
	// Name is the model id at /v1/models and in responses (default: the base name of Model).
	Name string
	// MaxBodyBytes limits request bodies (default 1 MiB).
	MaxBodyBytes int64
	// MaxConcurrent bounds the generations and scorings running at once (default 2); others wait.
	MaxConcurrent int
	// ShutdownGrace is how long a shutdown waits for requests in flight (default 10 s).
	ShutdownGrace time.Duration
	// APIKey, when set, is required as "Authorization: Bearer KEY" on every endpoint but /health.
	APIKey string
	// InsecureNoAuth allows a non-loopback Addr without an APIKey (anyone who can reach the port may
	// use the model); without it such an Addr is refused.
	InsecureNoAuth bool
	// BodyTimeout limits how long reading one request body may take (default 30 s).
	BodyTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections (default 60 s).
	IdleTimeout time.Duration
	// MaxConnections bounds the connections served at once (default 64).
	MaxConnections int
	// AllowRuntimeLoRA turns on POST /v1/load_lora_adapter and /v1/unload_lora_adapter (vLLM's
	// routes under VLLM_ALLOW_RUNTIME_LORA_UPDATING=True): a client may then load PEFT adapter
	// directories of the server's file system over the served base, each under a name that
	// requests send as "model" (unmerged, as Adapter runs). Off, both routes answer 404. An
	// adapter runs over Model's weights, not over Adapter's. Anyone who may call the API may
	// then make the server read adapter directories it can reach: pair it with an API key off
	// loopback.
	AllowRuntimeLoRA bool
	// MaxLoRAs bounds the adapters loaded at runtime at once (default DefaultMaxLoRAs).
	MaxLoRAs int
	// Log receives one line per request and the listening address (nil: discarded).
	Log io.Writer
}

// Server answers the OpenAI-compatible endpoints for one policy and an optional reward model.
type Server struct {
	cfg     Config
	gen     *rlhf.Local
	scorer  rlhf.Scorer
	created int64
	sem     chan struct{}
	waiting atomic.Int64 // requests queued for a slot, reported by /health
	log     io.Writer
	// loras are the adapters loaded at runtime by name (AllowRuntimeLoRA), loraNames their names in
	// load order; loraMu guards both.
	loraMu    sync.RWMutex
	loras     map[string]*rlhf.Local
	loraNames []string
	// afterChunk, when set (by tests), runs after each streamed text chunk is flushed.
	afterChunk func()
}

// Validate checks cfg before any model is loaded. Zero limits mean their defaults (NewWith fills
// them in); negative ones are errors, as is a non-loopback address with neither an API key nor
// InsecureNoAuth.
func (cfg Config) Validate() error {
	switch {
	case cfg.MaxBodyBytes < 0:
		return fmt.Errorf("serve: max body bytes must be > 0, got %d", cfg.MaxBodyBytes)
	case cfg.MaxConcurrent < 0:
		return fmt.Errorf("serve: max concurrent must be > 0, got %d", cfg.MaxConcurrent)
	case cfg.MaxLoRAs < 0:
		return fmt.Errorf("serve: max loras must be > 0, got %d", cfg.MaxLoRAs)
	case cfg.MaxConnections < 0:
		return fmt.Errorf("serve: max connections must be > 0, got %d", cfg.MaxConnections)
	case cfg.BodyTimeout < 0 || cfg.IdleTimeout < 0 || cfg.ShutdownGrace < 0:
		return fmt.Errorf("serve: timeouts must be > 0")
	}
	addr := cfg.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	if cfg.APIKey == "" && !cfg.InsecureNoAuth && !IsLoopback(addr) {
		return fmt.Errorf("serve: %s is not a loopback address and no API key is set: set --api-key or ALIGNKIT_API_KEY, or pass --insecure-no-auth to serve it to anyone who can reach it", addr)
	}
	return nil
}

// IsLoopback reports whether addr (host:port) listens only on loopback: localhost or a loopback
// IP. An empty host or 0.0.0.0 listens on every interface.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// New loads the models of cfg; loading the policy stops between tensors when ctx ends.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Model == "" {
		return nil, errors.New("serve: no model: want --model DIR (an HF directory or a .gguf file)")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ck, err := checkpoint.OpenInference(ctx, cfg.Model, cfg.Adapter)
	if err != nil {
		return nil, err
	}
	gen, err := rlhf.NewLocal(ck, cfg.ChatTemplate)
	if err != nil {
		return nil, err
	}
	var sc rlhf.Scorer
	if cfg.RewardModel != "" {
		if sc, err = rlhf.LoadScorer(cfg.RewardModel, cfg.ChatTemplate); err != nil {
			return nil, fmt.Errorf("reward model: %w", err)
		}
	}
	return NewWith(gen, sc, cfg), nil
}

// NewWith serves models already loaded (scorer may be nil); cfg's paths are used only for the name.
func NewWith(gen *rlhf.Local, scorer rlhf.Scorer, cfg Config) *Server {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = DefaultShutdownGrace
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.MaxLoRAs <= 0 {
		cfg.MaxLoRAs = DefaultMaxLoRAs
	}
	if cfg.Name == "" {
		cfg.Name = filepath.Base(filepath.Clean(cfg.Model))
		if cfg.Model == "" {
			cfg.Name = "alignkit"
		}
	}
	log := cfg.Log
	if log == nil {
		log = io.Discard
	}
	return &Server{cfg: cfg, gen: gen, scorer: scorer, created: time.Now().Unix(),
		sem: make(chan struct{}, cfg.MaxConcurrent), log: log, loras: map[string]*rlhf.Local{}}
}

// Name is the served model id.
func (s *Server) Name() string { return s.cfg.Name }

// Handler routes the endpoints, behind the API key when one is set (/health stays open so that
// load balancers can probe it).
func (s *Server) Handler() http.Handler {
	mux := s.routes()
	if s.cfg.APIKey == "" {
		return mux
	}
	want := sha256.Sum256([]byte(s.cfg.APIKey))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
			ok = ok && strings.EqualFold(scheme, "Bearer") // schemes are case-insensitive (RFC 9110)
			// Hashes of equal length: the comparison takes the same time whatever the key's length.
			got := sha256.Sum256([]byte(token))
			if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
				w.Header().Set("WWW-Authenticate", "Bearer")
				writeError(w, http.StatusUnauthorized, "authentication_error", "", "missing or invalid API key: want Authorization: Bearer KEY")
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", s.only(http.MethodGet, s.health))
	mux.HandleFunc("/v1/models", s.only(http.MethodGet, s.models))
	mux.HandleFunc("/v1/completions", s.only(http.MethodPost, s.completions))
	mux.HandleFunc("/v1/chat/completions", s.only(http.MethodPost, s.chatCompletions))
	mux.HandleFunc("/v1/score", s.only(http.MethodPost, s.score))
	mux.HandleFunc("/v1/load_lora_adapter", s.only(http.MethodPost, s.loadLoRA))
	mux.HandleFunc("/v1/unload_lora_adapter", s.only(http.MethodPost, s.unloadLoRA))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found_error", "", fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func (s *Server) only(method string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			w.Header().Set("Allow", method)
			writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "", fmt.Sprintf("%s %s: want %s", r.Method, r.URL.Path, method))
			return
		}
		start := time.Now()
		h(w, r)
		fmt.Fprintf(s.log, "%s %s %s\n", r.Method, r.URL.Path, time.Since(start).Round(time.Millisecond))
	}
}

// ListenAndServe listens on cfg.Addr and serves until ctx is cancelled.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("serve: listening on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is cancelled, then shuts down gracefully: no new connections, and
// requests in flight get ShutdownGrace to finish before their connections are closed.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// No ReadTimeout or WriteTimeout: a generation may stream for minutes. The body's own deadline
	// is set in decode (BodyTimeout), headers get ReadHeaderTimeout, idle connections IdleTimeout.
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       s.cfg.IdleTimeout,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	ln = limitListener(ln, s.cfg.MaxConnections)
	fmt.Fprintf(s.log, "serving %s on http://%s/v1\n", s.cfg.Name, ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		srv.Close()
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", serr)
	}
	if err != nil {
		return fmt.Errorf("serve: shutdown: %w", err)
	}
	return nil
}

// acquire waits for a generation slot; false when the client went away first.
func (s *Server) acquire(ctx context.Context) bool {
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	select {
	case s.sem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Server) release() { <-s.sem }

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "running": len(s.sem), "waiting": s.waiting.Load()})
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	data := []map[string]any{{"id": s.cfg.Name, "object": "model", "created": s.created, "owned_by": "alignkit"}}
	// Loaded adapters follow, with parent naming their base as vLLM lists them (vLLM also gives
	// root, the lora_path: left out, so that /v1/models does not disclose the server's files).
	for _, name := range s.loraModels() {
		data = append(data, map[string]any{"id": name, "object": "model", "created": s.created, "owned_by": "alignkit", "parent": s.cfg.Name})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// randomSeed draws a seed for requests that give none.
func randomSeed() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) >> 1 // fits an int64, as a JSON seed would
}

func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// stopIndex is where the earliest stop string in text starts, -1 when none occurs.
func stopIndex(text string, stops []string) int {
	cut := -1
	for _, st := range stops {
		if i := strings.Index(text, st); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	return cut
}

// cutStop ends text at the first stop string; ok reports a cut.
func cutStop(text string, stops []string) (string, bool) {
	cut := stopIndex(text, stops)
	if cut < 0 {
		return text, false
	}
	return text[:cut], true
}

// limitListener accepts at most n connections at once: Accept waits until one closes.
func limitListener(ln net.Listener, n int) net.Listener {
	return &limited{Listener: ln, slots: make(chan struct{}, n), done: make(chan struct{})}
}

type limited struct {
	net.Listener
	slots     chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *limited) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limited) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
