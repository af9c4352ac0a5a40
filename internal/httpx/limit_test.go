package httpx

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

func TestLimitListener(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused []string
	ln := LimitListener(raw, LimitConfig{PerIP: 3, Total: 5, OnRefuse: func(r string) { refused = append(refused, r) }})
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ReadHeaderTimeout: 2 * time.Second,
	}
	go srv.Serve(ln)
	defer srv.Close()

	// Three idle connections from 127.0.0.1 (a slowloris that never sends
	// a header) use up the address's share.
	var idle []net.Conn
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	waitOpen(t, ln, 3)
	// A fourth from the same address is closed at once, unanswered.
	c, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := c.Read(make([]byte, 64)); err == nil {
		t.Fatalf("connection over the per-address limit was served (%d bytes)", n)
	}
	c.Close()
	// Closing one frees its slot: a real request is served again.
	idle[0].Close()
	waitOpen(t, ln, 2)
	get(t, raw.Addr().String())
	if len(refused) != 1 || refused[0] != "per_ip" {
		t.Fatalf("refusals %v", refused)
	}
	waitOpen(t, ln, 2)
	if n, a := OpenConns(ln); n != 2 || a != 1 {
		t.Fatalf("open %d from %d addresses", n, a)
	}
}

func TestLimitListenerTotalAndLoopback(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := LimitListener(raw, LimitConfig{PerIP: 1, Total: 4, ExemptLoopback: true})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), ReadHeaderTimeout: 2 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	// Loopback is exempt from PerIP but not from Total.
	for i := 0; i < 4; i++ {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	waitOpen(t, ln, 4)
	c, _ := net.Dial("tcp", raw.Addr().String())
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection over the total was kept")
	}
}

func waitOpen(t *testing.T, ln net.Listener, want int) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if n, _ := OpenConns(ln); n == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	n, _ := OpenConns(ln)
	t.Fatalf("open connections %d, want %d", n, want)
}

func get(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// addrConn is one end of a pipe that claims to come from addr.
type addrConn struct {
	net.Conn
	addr net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.addr }

// chanListener hands out the connections sent on it, then fails.
type chanListener struct{ c chan net.Conn }

func (l chanListener) Accept() (net.Conn, error) {
	c, ok := <-l.c
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}
func (l chanListener) Close() error   { return nil }
func (l chanListener) Addr() net.Addr { return &net.TCPAddr{} }

// TestLimitListenerGroupsIPv6 (issue 18 #7): an IPv6 client may use any
// address of its /64; they all share one per-address budget. Before the
// fix each of the 6 addresses had its own and all 6 were served.
func TestLimitListenerGroupsIPv6(t *testing.T) {
	raw := chanListener{c: make(chan net.Conn, 16)}
	var refused []string
	ln := LimitListener(raw, LimitConfig{PerIP: 2, OnRefuse: func(r string) { refused = append(refused, r) }})
	for _, a := range []string{"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2::3", "2001:db8:1:2:aaaa::4", "2001:db8:1:2::5", "2001:db8:1:2::6", "2001:db8:1:3::1", "192.0.2.1", "192.0.2.2"} {
		c, _ := net.Pipe()
		raw.c <- addrConn{Conn: c, addr: &net.TCPAddr{IP: net.ParseIP(a), Port: 1}}
	}
	close(raw.c)
	var got []string
	for {
		c, err := ln.Accept()
		if err != nil {
			break
		}
		got = append(got, c.RemoteAddr().String())
	}
	if len(got) != 5 || len(refused) != 4 {
		t.Fatalf("accepted %v, refused %d; want 2 from 2001:db8:1:2::/64, 1 from 2001:db8:1:3::/64 and both IPv4", got, len(refused))
	}
	if _, addrs := OpenConns(ln); addrs != 4 {
		t.Fatalf("%d addresses hold connections, want 4", addrs)
	}
}

// TestLimitListenerExemptProxy: a trusted reverse proxy (Exempt) may hold
// more than PerIP connections; the clients behind it are limited per
// address by the handlers, on their forwarded addresses.
func TestLimitListenerExemptProxy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		exempt func(netip.Addr) bool
		want   int // connections held open
	}{
		{"not trusted", func(netip.Addr) bool { return false }, 2},
		{"trusted proxy", func(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.1") }, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			ln := LimitListener(raw, LimitConfig{PerIP: 2, Exempt: tc.exempt})
			accepted := make(chan net.Conn, 8)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						close(accepted)
						return
					}
					accepted <- c
				}
			}()
			var clients []net.Conn
			for i := 0; i < 4; i++ {
				c, err := net.Dial("tcp", raw.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				clients = append(clients, c)
			}
			// A refused connection is closed by the listener: its read ends.
			open := 0
			for _, c := range clients {
				c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				if _, err := c.Read(make([]byte, 1)); err != nil && isTimeout(err) {
					open++
				}
				c.Close()
			}
			if open != tc.want {
				t.Fatalf("%d connections held open, want %d", open, tc.want)
			}
			// Drain what was accepted so the next case starts clean.
			for len(accepted) > 0 {
				(<-accepted).Close()
			}
		})
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
