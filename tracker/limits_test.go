package tracker

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/banyan-live/banyan/protocol"
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

// TestICERefreshAndAlive (issue 18 #6): a viewer's TURN credentials are
// short-lived, so the tracker sends fresh ICE servers while the session
// lives and stops when it ends; Alive tells the TURN relay which sessions
// live; ids start after FirstPeerID, so a restarted tracker (a larger
// base) never hands out an id, and with it a TURN user, twice.
func TestICERefreshAndAlive(t *testing.T) {
	var minted atomic.Int64
	tt := newTestTracker(t, Config{
		FirstPeerID: 7 << 32, ICERefresh: 50 * time.Millisecond,
		ICEServers: func(id protocol.PeerID) []protocol.ICEServer {
			n := minted.Add(1)
			return []protocol.ICEServer{{URLs: []string{"turn:127.0.0.1:3478"}, Username: fmt.Sprintf("%d:%d", n, id), Credential: "c"}}
		},
	})
	c, w := joinViewer(t, tt, protocol.Join{Stream: "show"})
	if w.Peer <= 7<<32 {
		t.Fatalf("peer id %d not above FirstPeerID", w.Peer)
	}
	if !tt.t.Alive(w.Peer) {
		t.Fatal("joined viewer not alive")
	}
	seen := map[string]bool{w.ICEServers[0].Username: true}
	for range 3 {
		m := c.next("ice refresh", isType[protocol.ICE]).(protocol.ICE)
		u := m.ICEServers[0].Username
		if seen[u] || !strings.HasSuffix(u, fmt.Sprint(":", w.Peer)) {
			t.Fatalf("refresh %q: repeated or for another peer", u)
		}
		seen[u] = true
	}
	c.send(protocol.Leave{})
	c.closed()
	deadline := time.Now().Add(2 * time.Second)
	for tt.t.Alive(w.Peer) {
		if time.Now().After(deadline) {
			t.Fatal("viewer still alive after leaving")
		}
		time.Sleep(5 * time.Millisecond)
	}
	after := minted.Load()
	time.Sleep(200 * time.Millisecond)
	if n := minted.Load(); n != after {
		t.Fatalf("%d credentials minted after the session ended", n-after)
	}
}
