package httpx

import (
	"bufio"
	"io"
	"net"
	"net/http"
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
