package rlhf_test

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/model/checkpoint"
	"github.com/alignkit/alignkit/reward"
)

// sharedDir is ../shared; tests skip unless it holds stories260K.
func sharedDir(t *testing.T) string {
	t.Helper()
	return sharedtest.Dir(t, "models/stories260K/config.json")
}

func storiesDir(t *testing.T) string { return filepath.Join(sharedDir(t), "models", "stories260K") }

// rewardFrom turns a causal LM into a reward model with a seeded fresh score head, as the reward
// trainer starts from an SFT model.
func rewardFrom(t *testing.T, ck *checkpoint.Model, seed uint64) *checkpoint.Model {
	t.Helper()
	r, err := reward.FromCausalLM(ck, seed)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// serveHTTP serves h on a loopback port until the test ends and returns its base URL.
func serveHTTP(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return "http://" + ln.Addr().String()
}

// freePort returns a loopback address nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
