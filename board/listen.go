package board

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// DefaultAddr is where the board listens unless told otherwise (TensorBoard's port, on loopback).
const DefaultAddr = "127.0.0.1:6006"

// ListenAndServe refuses a non-loopback addr, then serves the board there until ctx ends, and shuts
// down gracefully. It prints the URL to log once listening.
func (s *Server) ListenAndServe(ctx context.Context, addr string, log io.Writer) error {
	if err := CheckAddr(addr); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("board: %w", err)
	}
	return s.Serve(ctx, ln, log)
}

// Serve serves the board on ln until ctx ends. The caller has checked ln's address.
func (s *Server) Serve(ctx context.Context, ln net.Listener, log io.Writer) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	fmt.Fprintf(log, "board: serving the runs under %s at http://%s/\n", s.root, ln.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("board: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("board: shutting down: %w", err)
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("board: %w", err)
	}
	return nil
}
