package turnserver

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// TestTCPConnsPerAddress (issue 18 #7): TURN's TCP control connections
// are capped per client address too (IPv6 by /64, loopback included), not
// only in total. Before the fix one address could take all MaxConns.
func TestTCPConnsPerAddress(t *testing.T) {
	s := newTestServer(t, func(c *Config) { c.MaxConnsPerIP = 3 })
	var conns []net.Conn
	for range 4 {
		c, err := net.Dial("tcp", s.TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	closed := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		ne, ok := err.(net.Error)
		return err != nil && !(ok && ne.Timeout())
	}
	if !closed(conns[3]) {
		t.Fatal("fourth TCP connection from 127.0.0.1 not refused")
	}
	for i := range 3 {
		if closed(conns[i]) {
			t.Fatalf("connection %d closed", i)
		}
	}
	if n := s.Stats().Refusals[ReasonCapacity]; n != 1 {
		t.Fatalf("capacity refusals %d, want 1", n)
	}
	// A slot frees when a connection goes.
	conns[0].Close()
	deadline := time.Now().Add(2 * time.Second)
	for s.connsPerIP.Count("127.0.0.1") != 2 {
		if time.Now().After(deadline) {
			t.Fatal("slot not freed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c, err := net.Dial("tcp", s.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if closed(c) {
		t.Fatal("connection in the freed slot refused")
	}
}

// TestAllocationsPerAddress (issue 18 #6): every websocket join mints a
// new peer id, so a client could collect allocations under many ids; the
// per-address quota bounds them whatever the ids. Before the fix the
// quota was per peer id only and all five allocations succeeded.
func TestAllocationsPerAddress(t *testing.T) {
	s := newTestServer(t, func(c *Config) { c.MaxAllocationsPerIP = 3 })
	ok := 0
	for i := range 5 {
		user, pass := goodCreds(fmt.Sprintf("sybil-%d", i))
		relay, err := newUDPClient(t, s, user, pass).Allocate()
		if err == nil {
			ok++
			defer relay.Close()
		} else if code := turnCode(err); code != 486 {
			t.Fatalf("allocation %d: %v (code %d), want 486", i, err, code)
		}
	}
	if ok != 3 {
		t.Fatalf("%d allocations from one address under 5 peer ids, want 3", ok)
	}
	if n := s.Stats().Refusals[ReasonQuota]; n != 2 {
		t.Fatalf("quota refusals %d, want 2", n)
	}
}

// TestTotalBandwidthCap (issue 18 #6): the server's relayed total is
// capped whatever the number of peers and addresses.
func TestTotalBandwidthCap(t *testing.T) {
	const bytesPerSec = 8000
	s := newTestServer(t, func(c *Config) {
		c.MaxBandwidthBps = 8 * bytesPerSec
		c.MaxBandwidthBpsPerUser, c.MaxBandwidthBpsPerIP = -1, -1
	})
	sink := startPeer(t, false)
	payload := make([]byte, 1000)
	start := time.Now()
	for i := range 3 {
		user, pass := goodCreds(fmt.Sprintf("bw-%d", i))
		relay, err := newUDPClient(t, s, user, pass).Allocate()
		if err != nil {
			t.Fatal(err)
		}
		defer relay.Close()
		for range 40 {
			if _, err := relay.WriteTo(payload, sink.addr()); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(200 * time.Millisecond)
	elapsed := time.Since(start).Seconds()
	got := sink.bytes.Load()
	limit := int64(minBurstBytes + bytesPerSec*elapsed + 1000)
	if got > limit || got < minBurstBytes/2 {
		t.Fatalf("%d of 120000 bytes reached the peer in %.2fs; want between %d and %d", got, elapsed, minBurstBytes/2, limit)
	}
	t.Logf("figures: 3 peers sent 120000 B in %.2fs under an 8 kB/s total cap: %d B relayed", elapsed, got)
}

// TestExpiredCredentialWhileAlive (issue 18 #6): banyan up mints short
// credentials; an expired one still authenticates while the tracker says
// its peer is connected (pion refreshes allocations with the credential
// it started with) and is refused once the session is gone.
func TestExpiredCredentialWhileAlive(t *testing.T) {
	for _, tc := range []struct {
		name  string
		alive func(string) bool
		ok    bool
	}{
		{"no session hook", nil, false},
		{"session alive", func(id string) bool { return id == "peer-live" }, true},
		{"session ended", func(string) bool { return false }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, func(c *Config) { c.Alive = tc.alive })
			user, pass := Credentials(testSecret, "peer-live", -time.Minute, time.Now())
			relay, err := newUDPClient(t, s, user, pass).Allocate()
			if tc.ok != (err == nil) {
				t.Fatalf("Allocate with an expired credential: %v, want ok=%v", err, tc.ok)
			}
			if err == nil {
				relay.Close()
			} else if n := s.Stats().Refusals[ReasonExpired]; n < 1 {
				t.Fatalf("expired refusals %d", n)
			}
		})
	}
}
