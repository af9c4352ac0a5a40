//go:build !js

package turne2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/peer/rtc"
	"github.com/banyan-live/banyan/protocol"
	"github.com/banyan-live/banyan/turnserver"
)

// TestICERefreshUsedForNewLinks: two relay-only transports and a real
// TURN server. The dialer's credentials have expired (as a welcome's do
// minutes after the join): its link cannot allocate and fails. After
// SetICEServers with fresh credentials (what the node does with the
// tracker's ice message) the next link opens through the relay.
func TestICERefreshUsedForNewLinks(t *testing.T) {
	srv, err := turnserver.New(turnserver.Config{
		UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", Secret: secret,
		AllowLoopback: true, Logger: quiet(), Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ice := func(id peer.PeerID, ttl time.Duration) []protocol.ICEServer {
		user, pass := turnserver.Credentials(secret, fmt.Sprint(id), ttl, time.Now())
		return []protocol.ICEServer{{URLs: []string{"turn:" + srv.UDPAddr().String() + "?transport=udp"}, Username: user, Credential: pass}}
	}
	var se webrtc.SettingEngine
	rtc.LoopbackSettings(&se)
	rtc.RelayOnlySettings(&se)
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se))
	b := newBus(t)
	opened := make(chan peer.PeerID, 4)
	closed := make(chan error, 4)
	mk := func(self peer.PeerID, servers []protocol.ICEServer) *rtc.Transport {
		tr, err := rtc.New(rtc.Config{
			Self: self, ICEServers: servers, API: api, RelayOnly: true, ConnectTimeout: 3 * time.Second,
			Signal: b.send(self), Logger: quiet(),
			OnOpen:  func(l *rtc.Link) { opened <- self },
			OnClose: func(l *rtc.Link, err error) { closed <- err },
		})
		if err != nil {
			t.Fatal(err)
		}
		b.mu.Lock()
		b.ts[self] = tr
		b.mu.Unlock()
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	dialer := mk(rootID, ice(rootID, -time.Minute)) // expired
	answerer := mk(childID, ice(childID, time.Hour))

	if _, err := dialer.Dial(childID); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-opened:
		t.Fatalf("a link opened (side %d) with expired credentials", id)
	case <-closed:
	case <-time.After(15 * time.Second):
		t.Fatal("the link with expired credentials neither opened nor failed")
	}
	refused := srv.Stats().Refusals[turnserver.ReasonExpired]
	if refused == 0 {
		t.Fatalf("server refusals %v: the expired credentials were not what failed", srv.Stats().Refusals)
	}
	// Both ends drop the failed link (each reports its close) before the
	// next dial.
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the other end of the failed link did not close")
	}
	deadline := time.Now().Add(10 * time.Second)
	for dialer.Link(childID) != nil || answerer.Link(rootID) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the failed link was not forgotten")
		}
		time.Sleep(50 * time.Millisecond)
	}

	dialer.SetICEServers(ice(rootID, time.Hour))
	if _, err := dialer.Dial(childID); err != nil {
		t.Fatal(err)
	}
	for n := 0; n < 2; n++ {
		select {
		case <-opened:
		case err := <-closed:
			t.Fatalf("the link with refreshed credentials closed: %v", err)
		case <-time.After(15 * time.Second):
			t.Fatal("the link with refreshed credentials did not open")
		}
	}
	if p := dialer.Link(childID).Path(); p != "turn" {
		t.Errorf("path %q, want turn", p)
	}
	if srv.Stats().Allocations == 0 {
		t.Error("no TURN allocation")
	}
}
