package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/banyan-live/banyan/internal/e2e"
	"github.com/banyan-live/banyan/store"
)

// adminDo sends an admin API request with the given bearer token (none
// when empty) and extra header pairs.
func adminDo(t *testing.T, method, url, token, body string, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// ffmpegRun is a publish whose end is watched.
type ffmpegRun struct {
	cmd  *exec.Cmd
	errb bytes.Buffer
	done chan struct{} // closed when ffmpeg has exited, err set
	err  error
}

// revokeEnds revokes a stream's key through the admin API at url
// (…/api/streams/NAME) and waits until that ends pub; it returns how long
// that took.
func revokeEnds(t *testing.T, url, token string, pub *ffmpegRun) time.Duration {
	t.Helper()
	start := time.Now()
	if code, b := adminDo(t, "DELETE", url, token, ""); code != 200 {
		t.Fatalf("revoke %s: %d %s", url, code, b)
	}
	select {
	case <-pub.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("revoking %s did not end the live publish within 10 s", url)
	}
	return time.Since(start)
}

func startPublish(t *testing.T, ctx context.Context, ffmpeg, url string, seconds int) *ffmpegRun {
	t.Helper()
	r := &ffmpegRun{cmd: publish(ctx, ffmpeg, url, seconds), done: make(chan struct{})}
	r.cmd.Stderr = &r.errb
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.err = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		r.cmd.Process.Kill()
		<-r.done
	})
	return r
}

// TestRevokeEndsLivePublish: revoking a stream's key through the admin API
// ends its live RTMP publish (ffmpeg's connection is closed), and the old
// key is refused from then on; a key rotation does the same to the old key
// and the new key publishes. The admin API refuses requests without the
// token and cross-site ones.
func TestRevokeEndsLivePublish(t *testing.T) {
	ffmpeg := e2e.Require(t, "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	data := filepath.Join(t.TempDir(), "data")
	up := startUp(t, data)
	token, err := store.ReadAdminTokenFile(data)
	if err != nil {
		t.Fatal(err)
	}
	url, _ := up.rtmpURL(t)
	api := up.base + "/api/streams"

	// Without the token, or from another site, nothing happens.
	if code, _ := adminDo(t, "POST", api, "", `{"name":"rev"}`); code != 401 {
		t.Fatalf("create without token: %d", code)
	}
	if code, _ := adminDo(t, "POST", api, token, `{"name":"rev"}`, "Origin", "http://evil.example"); code != 403 {
		t.Fatalf("cross-site create: %d", code)
	}
	if code, _ := adminDo(t, "POST", api, token, `{"name":"rev"}`, "Sec-Fetch-Site", "cross-site"); code != 403 {
		t.Fatalf("cross-site create (fetch metadata): %d", code)
	}
	create := func(name string) string {
		code, b := adminDo(t, "POST", api, token, fmt.Sprintf(`{"name":%q}`, name))
		var cs struct{ Key string }
		if code != 201 || json.Unmarshal(b, &cs) != nil || cs.Key == "" {
			t.Fatalf("create %s: %d %s", name, code, b)
		}
		return cs.Key
	}

	// Revoke while live.
	key := create("rev")
	pub := startPublish(t, ctx, ffmpeg, url+"/"+key, 120)
	liveOf(t, up.base, "rev", 0)
	if code, _ := adminDo(t, "DELETE", api+"/rev", "", ""); code != 401 {
		t.Fatalf("revoke without token: %d", code)
	}
	select {
	case <-pub.done:
		t.Fatal("ffmpeg ended by itself")
	case <-time.After(500 * time.Millisecond):
	}
	ended := revokeEnds(t, api+"/rev", token, pub)
	// The old key is refused at once.
	start := time.Now()
	again := startPublish(t, ctx, ffmpeg, url+"/"+key, 10)
	select {
	case <-again.done:
		if again.err == nil {
			t.Fatal("a publish with the revoked key succeeded")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a publish with the revoked key was not refused")
	}
	refused := time.Since(start)
	if !strings.Contains(up.stderr.String(), "key revoked") {
		t.Error("no kick logged")
	}

	// Rotate while live: the old key's publish ends, the new key works.
	old := create("rot")
	pub = startPublish(t, ctx, ffmpeg, url+"/"+old, 120)
	first := liveOf(t, up.base, "rot", 0)
	code, b := adminDo(t, "POST", api+"/rot/key", token, "")
	var cs struct{ Key string }
	if code != 200 || json.Unmarshal(b, &cs) != nil || cs.Key == "" || cs.Key == old {
		t.Fatalf("rotate: %d %s", code, b)
	}
	select {
	case <-pub.done:
	case <-time.After(10 * time.Second):
		t.Fatal("rotating the key did not end the live publish")
	}
	bad := startPublish(t, ctx, ffmpeg, url+"/"+old, 10)
	select {
	case <-bad.done:
		if bad.err == nil {
			t.Fatal("a publish with the rotated-out key succeeded")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the rotated-out key was not refused")
	}
	startPublish(t, ctx, ffmpeg, url+"/"+cs.Key, 20)
	second := liveOf(t, up.base, "rot", first.Epoch)
	t.Logf("figures: revoke -> ffmpeg disconnected in %v; revoked key refused in %v (ffmpeg exit); rotation ended the old publish, new key live on epoch %d (was %d)",
		ended.Round(10*time.Millisecond), refused.Round(10*time.Millisecond), second.Epoch, first.Epoch)
	up.stop(t, syscall.SIGTERM)
}

// TestLimitsAndPprof starts `banyan up` with short timeouts and --pprof:
// a slow header, a slow body, a websocket that never joins and an RTMP
// connection that never finishes its handshake are each closed in about
// their timeout;
// /debug/pprof/ needs the admin token and refuses cross-site requests.
func TestLimitsAndPprof(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	up := startUp(t, data, "--pprof", "--http-header-timeout", "1s", "--http-read-timeout", "2s", "--ws-join-timeout", "1s", "--rtmp-handshake-timeout", "1s")
	token, err := store.ReadAdminTokenFile(data)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := adminDo(t, "GET", up.base+"/debug/pprof/", "", ""); code != 401 {
		t.Errorf("pprof without token: %d", code)
	}
	if code, _ := adminDo(t, "GET", up.base+"/debug/pprof/", "wrong", ""); code != 401 {
		t.Errorf("pprof with a wrong token: %d", code)
	}
	if code, _ := adminDo(t, "GET", up.base+"/debug/pprof/goroutine?debug=1", token, "", "Sec-Fetch-Site", "cross-site"); code != 403 {
		t.Errorf("cross-site pprof: %d", code)
	}
	if code, b := adminDo(t, "GET", up.base+"/debug/pprof/goroutine?debug=1", token, ""); code != 200 || !bytes.Contains(b, []byte("goroutine profile:")) {
		t.Errorf("pprof with token: %d %.100s", code, b)
	}

	closedWithin := func(what string, c net.Conn, limit time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(limit + 5*time.Second))
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("%s: still open after %v", what, limit+5*time.Second)
				}
				return time.Since(start)
			}
		}
	}
	addr := strings.TrimPrefix(up.base, "http://")
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "))
	hdr := closedWithin("slow header", slow, time.Second)

	slowBody, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slowBody.Close()
	fmt.Fprintf(slowBody, "POST /api/streams HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\":", token)
	body := closedWithin("slow body", slowBody, 2*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, _, err = ws.Read(ctx)
	join := time.Since(start)
	if err == nil || join > 5*time.Second {
		t.Errorf("silent websocket: %v after %v", err, join)
	}

	rurl, _ := up.rtmpURL(t)
	rtmp, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(rurl, "rtmp://"), "/live"))
	if err != nil {
		t.Fatal(err)
	}
	defer rtmp.Close()
	rtmp.Write([]byte{3})
	hs := closedWithin("half RTMP handshake", rtmp, time.Second)
	for what, d := range map[string]time.Duration{"slow header": hdr, "slow body": body, "websocket join": join, "RTMP handshake": hs} {
		if d > 4*time.Second {
			t.Errorf("%s closed after %v with a 1 s limit", what, d)
		}
	}
	t.Logf("figures: slow header closed after %v (1 s limit), slow body after %v (2 s), silent websocket after %v (1 s), half RTMP handshake after %v (1 s)",
		hdr.Round(10*time.Millisecond), body.Round(10*time.Millisecond), join.Round(10*time.Millisecond), hs.Round(10*time.Millisecond))
	up.stop(t, syscall.SIGTERM)
}
