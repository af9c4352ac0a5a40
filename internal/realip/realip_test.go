package realip

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func mustTrusted(t testing.TB, s string) Trusted {
	t.Helper()
	tr, err := ParseTrusted(s)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestParseTrusted(t *testing.T) {
	for _, tc := range []struct {
		in      string
		in4, ok []string // addresses inside / outside
		out     []string
		err     bool
	}{
		{in: "", out: []string{"127.0.0.1"}},
		{in: "127.0.0.1", in4: []string{"127.0.0.1", "::ffff:127.0.0.1"}, out: []string{"127.0.0.2"}},
		{in: "10.0.0.0/8, 2001:db8::/32", in4: []string{"10.200.0.1", "2001:db8:1::5"}, out: []string{"11.0.0.1", "2001:db9::1"}},
		{in: "10.1.2.3/8", in4: []string{"10.9.9.9"}}, // host bits are masked
		{in: "::1", in4: []string{"::1"}, out: []string{"127.0.0.1"}},
		{in: "nonsense", err: true},
		{in: "10.0.0.0/33", err: true},
		{in: "::ffff:10.0.0.0/104", err: true},
	} {
		tr, err := ParseTrusted(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("ParseTrusted(%q): err %v", tc.in, err)
			continue
		}
		for _, a := range tc.in4 {
			if !tr.Contains(netip.MustParseAddr(a)) {
				t.Errorf("%q should contain %s", tc.in, a)
			}
		}
		for _, a := range tc.out {
			if tr.Contains(netip.MustParseAddr(a)) {
				t.Errorf("%q should not contain %s", tc.in, a)
			}
		}
	}
}

func TestResolve(t *testing.T) {
	tr := mustTrusted(t, "127.0.0.1,10.0.0.0/8,2001:db8:ffff::/48")
	type hdr = map[string][]string
	for _, tc := range []struct {
		name      string
		remote    string
		h         hdr
		tls       bool
		addr      string
		https     bool
		forwarded bool
	}{
		{name: "direct, no headers", remote: "198.51.100.7:4000", addr: "198.51.100.7"},
		{name: "direct TLS", remote: "198.51.100.7:4000", tls: true, addr: "198.51.100.7", https: true},
		{name: "untrusted peer forges XFF", remote: "198.51.100.7:4000", h: hdr{"X-Forwarded-For": {"203.0.113.9"}, "X-Forwarded-Proto": {"https"}}, addr: "198.51.100.7"},
		{name: "untrusted peer forges Forwarded", remote: "198.51.100.7:4000", h: hdr{"Forwarded": {"for=203.0.113.9;proto=https"}}, addr: "198.51.100.7"},
		{name: "trusted proxy, XFF", remote: "127.0.0.1:5000", h: hdr{"X-Forwarded-For": {"203.0.113.9"}, "X-Forwarded-Proto": {"https"}}, addr: "203.0.113.9", https: true, forwarded: true},
		{name: "trusted proxy, plain http", remote: "127.0.0.1:5000", h: hdr{"X-Forwarded-For": {"203.0.113.9"}, "X-Forwarded-Proto": {"http"}}, addr: "203.0.113.9", forwarded: true},
		{name: "trusted proxy, no headers", remote: "127.0.0.1:5000", addr: "127.0.0.1"},
		{name: "trusted proxy, only proto", remote: "127.0.0.1:5000", h: hdr{"X-Forwarded-Proto": {"https"}}, addr: "127.0.0.1", https: true},
		{name: "client prepends a forged hop", remote: "127.0.0.1:5000", h: hdr{"X-Forwarded-For": {"1.2.3.4, 203.0.113.9"}}, addr: "203.0.113.9", forwarded: true},
		{name: "forged hop on its own line", remote: "127.0.0.1:5000", h: hdr{"X-Forwarded-For": {"1.2.3.4", "203.0.113.9"}}, addr: "203.0.113.9", forwarded: true},
		{name: "two trusted hops", remote: "127.0.0.1:5000", h: hdr{"X-Forwarded-For": {"203.0.113.9, 10.1.1.1"}}, addr: "203.0.113.9", forwarded: true},
		{name: "client claims to be a trusted proxy", remote: "127.0.0.1:5000", h: hdr{"X-Forwarded-For": {"10.1.1.1"}}, addr: "10.1.1.1", forwarded: true},
		{name: "all hops trusted: leftmost", remote: "127.0.0.1:5000", h: hdr{"X-Forwarded-For": {"10.2.2.2, 10.1.1.1"}}, addr: "10.2.2.2", forwarded: true},
		{name: "ipv6 client with port", remote: "127.0.0.1:5000", h: hdr{"X-Forwarded-For": {"[2001:db8::7]:1234"}}, addr: "2001:db8::7", forwarded: true},
		{name: "ipv6 trusted proxy", remote: "[2001:db8:ffff::1]:443", h: hdr{"X-Forwarded-For": {"2001:db8::7"}}, addr: "2001:db8::7", forwarded: true},
		{name: "mapped ipv4 peer", remote: "[::ffff:127.0.0.1]:5000", h: hdr{"X-Forwarded-For": {"203.0.113.9"}}, addr: "203.0.113.9", forwarded: true},
		{name: "malformed nearest hop", remote: "127.0.0.1:5000", h: hdr{"X-Forwarded-For": {"203.0.113.9, garbage"}}, addr: "127.0.0.1"},
		{name: "malformed beyond a trusted hop", remote: "127.0.0.1:5000", h: hdr{"X-Forwarded-For": {"garbage, 10.1.1.1"}}, addr: "10.1.1.1", forwarded: true},
		{name: "empty XFF entries", remote: "127.0.0.1:5000", h: hdr{"X-Forwarded-For": {" , "}}, addr: "127.0.0.1"},
		{name: "Forwarded wins over XFF", remote: "127.0.0.1:5000", h: hdr{"Forwarded": {"for=203.0.113.9;proto=https"}, "X-Forwarded-For": {"1.2.3.4"}}, addr: "203.0.113.9", https: true, forwarded: true},
		{name: "Forwarded quoted ipv6", remote: "127.0.0.1:5000", h: hdr{"Forwarded": {`For="[2001:db8::7]:4711";Proto=HTTPS`}}, addr: "2001:db8::7", https: true, forwarded: true},
		{name: "Forwarded several hops", remote: "127.0.0.1:5000", h: hdr{"Forwarded": {"for=203.0.113.9;proto=https, for=10.1.1.1;proto=http"}}, addr: "203.0.113.9", https: true, forwarded: true},
		{name: "Forwarded forged hop", remote: "127.0.0.1:5000", h: hdr{"Forwarded": {"for=1.2.3.4;proto=http", "for=203.0.113.9;proto=https"}}, addr: "203.0.113.9", https: true, forwarded: true},
		{name: "Forwarded unknown", remote: "127.0.0.1:5000", h: hdr{"Forwarded": {"for=unknown;proto=https"}}, addr: "127.0.0.1"},
		{name: "Forwarded obfuscated", remote: "127.0.0.1:5000", h: hdr{"Forwarded": {"for=_hidden"}}, addr: "127.0.0.1"},
		{name: "Forwarded without for", remote: "127.0.0.1:5000", h: hdr{"Forwarded": {"proto=https;by=10.0.0.1"}}, addr: "127.0.0.1"},
		{name: "Forwarded quoted comma", remote: "127.0.0.1:5000", h: hdr{"Forwarded": {`for="203.0.113.9,1.2.3.4"`}}, addr: "127.0.0.1"},
		{name: "Forwarded unterminated quote", remote: "127.0.0.1:5000", h: hdr{"Forwarded": {`for="203.0.113.9`}}, addr: "127.0.0.1"},
		{name: "proto list: nearest value", remote: "127.0.0.1:5000", h: hdr{"X-Forwarded-For": {"203.0.113.9"}, "X-Forwarded-Proto": {"http, https"}}, addr: "203.0.113.9", https: true, forwarded: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := tr.Resolve(tc.remote, http.Header(tc.h), tc.tls)
			if !ok {
				t.Fatal("not resolved")
			}
			if c.Addr != netip.MustParseAddr(tc.addr) || c.HTTPS != tc.https || c.Forwarded != tc.forwarded {
				t.Fatalf("got %+v, want addr %s https %v forwarded %v", c, tc.addr, tc.https, tc.forwarded)
			}
		})
	}
}

// TestNoTrustedProxy: with no --trusted-proxy every header is ignored,
// loopback included (the default must not believe a local attacker).
func TestNoTrustedProxy(t *testing.T) {
	var tr Trusted
	c, _ := tr.Resolve("127.0.0.1:1", http.Header{"X-Forwarded-For": {"203.0.113.9"}, "X-Forwarded-Proto": {"https"}}, false)
	if c.Addr != netip.MustParseAddr("127.0.0.1") || c.HTTPS || c.Forwarded {
		t.Fatalf("got %+v", c)
	}
}

func TestHandler(t *testing.T) {
	tr := mustTrusted(t, "127.0.0.1")
	var gotAddr string
	var gotHTTPS bool
	h := tr.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAddr, gotHTTPS = r.RemoteAddr, HTTPS(r)
	}))
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "127.0.0.1:5555"
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	r.Header.Set("X-Forwarded-Proto", "https")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if gotAddr != "203.0.113.9:0" || !gotHTTPS {
		t.Fatalf("RemoteAddr %q https %v", gotAddr, gotHTTPS)
	}
	r = httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "198.51.100.1:5555"
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	r.Header.Set("X-Forwarded-Proto", "https")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if gotAddr != "198.51.100.1:5555" || gotHTTPS {
		t.Fatalf("untrusted: RemoteAddr %q https %v", gotAddr, gotHTTPS)
	}
	// Without the Handler, HTTPS knows only the connection.
	if HTTPS(httptest.NewRequest("GET", "/", nil)) {
		t.Fatal("plain request reported HTTPS")
	}
}

// FuzzResolve: any header never panics, and the answer is either the peer
// itself or an address some header named, never from an untrusted peer.
func FuzzResolve(f *testing.F) {
	f.Add("127.0.0.1:1", "203.0.113.9, 10.0.0.1", "for=203.0.113.9;proto=https", "https")
	f.Add("198.51.100.1:1", "1.2.3.4", "", "")
	f.Add("127.0.0.1:1", "", `for="[2001:db8::1]:80";proto="https", for=unknown`, "")
	f.Add("[::1]:1", `[::1]:1,,"`, `for="\"`, "http,https")
	tr := mustTrusted(f, "127.0.0.0/8,::1,10.0.0.0/8")
	f.Fuzz(func(t *testing.T, remote, xff, fwd, proto string) {
		h := http.Header{}
		if xff != "" {
			h.Set("X-Forwarded-For", xff)
		}
		if fwd != "" {
			h.Set("Forwarded", fwd)
		}
		if proto != "" {
			h.Set("X-Forwarded-Proto", proto)
		}
		c, ok := tr.Resolve(remote, h, false)
		if !ok {
			return
		}
		peer, _ := parseHost(remote)
		if !tr.Contains(peer) && (c.Addr != peer || c.Forwarded || c.HTTPS) {
			t.Fatalf("untrusted peer %s believed: %+v", remote, c)
		}
		if c.Forwarded && !strings.Contains(xff+fwd, trimIPv6(c.Addr)) {
			t.Fatalf("client %s named by no header (xff %q, forwarded %q)", c.Addr, xff, fwd)
		}
	})
}

// trimIPv6 is how an address appears in a header at least in part.
func trimIPv6(a netip.Addr) string {
	s := a.String()
	if a.Is6() {
		// "2001:db8::1" may be written "2001:db8:0::1": compare a piece.
		return s[:1]
	}
	return s
}
