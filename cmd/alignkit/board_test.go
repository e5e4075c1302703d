package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `alignkit board` through the real command line: it lists a run on the address given, SIGINT stops
// it with status 130, and a non-loopback address or a missing directory is refused with one line.
func TestBoardCLI(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "run-a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "run-a", "metrics.jsonl"), []byte(`{"step":1,"loss":2}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	done := make(chan cliResult, 1)
	go func() { done <- runCLI(t, "board", dir, "--addr", addr) }()
	base := "http://" + addr
	var body string
	for range 400 { // up to 20 s on a loaded machine
		if res, err := http.Get(base + "/api/runs/run-a/metrics"); err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			body = string(b)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(syscall.Getpid(), syscall.SIGINT)
	var res cliResult
	select {
	case res = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("alignkit board did not stop on SIGINT")
	}
	if want := `{"run":"run-a","from":0,"next":1,"points":[{"line":0,"values":{"loss":2,"step":1}}],"errors":[]}`; strings.TrimSpace(body) != want {
		t.Errorf("metrics: %q, want %q", body, want)
	}
	if res.Code != 130 || !strings.Contains(res.Stderr, "at http://"+addr+"/") {
		t.Errorf("exit %d, stderr:\n%s", res.Code, res.Stderr)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"board", dir, "--addr", "0.0.0.0:6006"}, "alignkit: board: 0.0.0.0:6006 is not a loopback address; the board serves files and has no authentication, so it listens only on 127.0.0.1, ::1 or localhost"},
		{[]string{"board", filepath.Join(dir, "run-a", "metrics.jsonl")}, "alignkit: board: " + filepath.Join(dir, "run-a", "metrics.jsonl") + " is not a directory"},
		{[]string{"board"}, "alignkit: accepts 1 arg(s), received 0"},
	} {
		if r := runCLI(t, tc.args...); r.Code != 1 || r.ErrorLine() != tc.want {
			t.Errorf("%v: exit %d, %q, want %q", tc.args, r.Code, r.ErrorLine(), tc.want)
		}
	}
}
