package turnserver

import (
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
