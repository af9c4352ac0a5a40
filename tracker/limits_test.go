package tracker

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestWebsocketsPerAddressGroupIPv6 (issue 18 #7): websockets from
// addresses of one IPv6 /64 share MaxConnsPerIP; another /64 and an IPv4
// address have their own. A front proxy stamps the client address the
// test chooses (real websockets, real tracker). Before the fix each IPv6
// address had its own budget and all three from the /64 were admitted.
func TestWebsocketsPerAddressGroupIPv6(t *testing.T) {
	tr, err := New(Config{MaxConnsPerIP: 2, JoinTimeout: time.Minute, StatsInterval: time.Minute, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.RemoteAddr = r.Header.Get("X-Test-Remote")
		tr.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { tr.Close(); srv.Close() })
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	for _, tc := range []struct {
		remote string
		ok     bool
	}{
		{"[2001:db8:1:2::1]:5000", true},
		{"[2001:db8:1:2::2]:5000", true},
		{"[2001:db8:1:2:ffff::3]:5000", false},
		{"[2001:db8:1:3::1]:5000", true},
		{"192.0.2.1:5000", true},
		{"192.0.2.1:5001", true},
		{"192.0.2.1:5002", false},
		{"[::1]:5000", true}, // loopback: a reverse proxy, exempt
		{"[::1]:5001", true},
		{"[::1]:5002", true},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"X-Test-Remote": {tc.remote}}})
		cancel()
		if tc.ok != (err == nil) {
			t.Fatalf("%s: dial err %v, want admitted=%v", tc.remote, err, tc.ok)
		}
		if err == nil {
			defer c.CloseNow()
		} else if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("%s: refused with %v, want 429", tc.remote, resp)
		}
	}
}
