package serve

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serveOn serves cfg (no models: the endpoints used here never reach them) on a loopback port.
func serveOn(t *testing.T, cfg Config) string {
	t.Helper()
	s := NewWith(nil, nil, cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func get(t *testing.T, url, auth string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, strings.TrimSpace(string(b))
}

// With an API key every endpoint but /health wants "Authorization: Bearer KEY": no header, another
// scheme, or a wrong key (shorter, longer, same length) is 401 with OpenAI's error shape.
func TestAPIKey(t *testing.T) {
	base := "http://" + serveOn(t, Config{APIKey: "s3cret"})
	const unauthorized = `{"error":{"code":null,"message":"missing or invalid API key: want Authorization: Bearer KEY","param":null,"type":"authentication_error"}}`
	for _, auth := range []string{"", "s3cret", "Basic s3cret", "Bearer s3cre", "Bearer s3cret2", "Bearer S3cret", "Bearer  s3cret"} {
		for _, path := range []string{"/v1/models", "/v1/completions", "/nowhere"} {
			if code, body := get(t, base+path, auth); code != http.StatusUnauthorized || body != unauthorized {
				t.Errorf("GET %s with %q: %d %s", path, auth, code, body)
			}
		}
	}
	for _, auth := range []string{"Bearer s3cret", "bearer s3cret"} {
		if code, _ := get(t, base+"/v1/models", auth); code != http.StatusOK {
			t.Errorf("/v1/models with %q: %d", auth, code)
		}
	}
	if code, _ := get(t, base+"/health", ""); code != http.StatusOK {
		t.Errorf("/health without the key: %d", code)
	}
	// No key configured: no header needed.
	open := "http://" + serveOn(t, Config{})
	if code, _ := get(t, open+"/v1/models", ""); code != http.StatusOK {
		t.Errorf("/v1/models on a server without a key: %d", code)
	}
}

// A client that sends headers and part of its body, then stalls, gets 408 after BodyTimeout and
// its connection closed, instead of holding it open.
func TestSlowBodyCutOff(t *testing.T) {
	addr := serveOn(t, Config{BodyTimeout: 300 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := io.WriteString(c, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"prompt\": \"Once"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	b, _ := io.ReadAll(res.Body) // ends when the server closes the connection
	elapsed := time.Since(start)
	want := `{"error":{"code":null,"message":"request body not received within 300ms","param":null,"type":"invalid_request_error"}}`
	if res.StatusCode != http.StatusRequestTimeout || strings.TrimSpace(string(b)) != want {
		t.Errorf("stalled body: %d %s", res.StatusCode, b)
	}
	if elapsed < 300*time.Millisecond || elapsed > 5*time.Second {
		t.Errorf("cut off after %s, want about 300ms", elapsed)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("connection still open after the timeout")
	}
}

// MaxConnections bounds the connections served at once: with one idle connection held, another
// client is not answered until it closes.
func TestConnectionLimit(t *testing.T) {
	addr := serveOn(t, Config{MaxConnections: 1})
	held, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the server accept it
	client := &http.Client{Timeout: 500 * time.Millisecond}
	if res, err := client.Get("http://" + addr + "/health"); err == nil {
		res.Body.Close()
		t.Fatalf("second connection served while the limit of 1 was held: %d", res.StatusCode)
	}
	held.Close()
	client.Timeout = 10 * time.Second
	res, err := client.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatalf("after the held connection closed: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("/health: %d", res.StatusCode)
	}
}

// A non-loopback address without a key is refused before any model is loaded, unless
// InsecureNoAuth says so; negative limits are errors rather than defaults.
func TestConfigValidate(t *testing.T) {
	const refused = "serve: %s is not a loopback address and no API key is set: set --api-key or ALIGNKIT_API_KEY, or pass --insecure-no-auth to serve it to anyone who can reach it"
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Addr: "0.0.0.0:8080"}, strings.ReplaceAll(refused, "%s", "0.0.0.0:8080")},
		{Config{Addr: ":8080"}, strings.ReplaceAll(refused, "%s", ":8080")},
		{Config{Addr: "192.168.1.5:80"}, strings.ReplaceAll(refused, "%s", "192.168.1.5:80")},
		{Config{Addr: "[::]:8080"}, strings.ReplaceAll(refused, "%s", "[::]:8080")},
		{Config{Addr: "0.0.0.0:8080", APIKey: "k"}, ""},
		{Config{Addr: "0.0.0.0:8080", InsecureNoAuth: true}, ""},
		{Config{Addr: "127.0.0.1:8080"}, ""},
		{Config{Addr: "[::1]:8080"}, ""},
		{Config{Addr: "localhost:8080"}, ""},
		{Config{}, ""},
		{Config{MaxBodyBytes: -1}, "serve: max body bytes must be > 0, got -1"},
		{Config{MaxConcurrent: -2}, "serve: max concurrent must be > 0, got -2"},
		{Config{MaxConnections: -1}, "serve: max connections must be > 0, got -1"},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if (err == nil) != (c.want == "") || (err != nil && err.Error() != c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
	_, err := New(context.Background(), Config{Model: "/nonexistent", Addr: "0.0.0.0:1"})
	if want := strings.ReplaceAll(refused, "%s", "0.0.0.0:1"); err == nil || err.Error() != want {
		t.Errorf("New: %v", err)
	}
}
