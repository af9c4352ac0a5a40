package tlsconf

import (
	"crypto/tls"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banyan-live/banyan/internal/testca"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// serveTLS runs a bare TLS listener on loopback with src's config and
// returns its address; every connection is handshaken and closed.
func serveTLS(t *testing.T, src *Source) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", src.ServerConfig("http/1.1"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// servedSerial handshakes with addr, trusting ca, and returns the serial
// of the certificate the server presented.
func servedSerial(t *testing.T, addr string, ca *testca.CA) *big.Int {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "banyan.test"})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber
}

// TestFileRotation: a certificate replaced on disk is served without a
// restart, and a broken replacement leaves the previous one in service.
func TestFileRotation(t *testing.T) {
	ca := testca.New(t)
	dir := t.TempDir()
	first := ca.Issue(t, "banyan.test", "127.0.0.1")
	certFile, keyFile := first.Write(t, dir)
	src, err := New(Config{CertFile: certFile, KeyFile: keyFile, ReloadCheck: 20 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, src)
	if got := servedSerial(t, addr, ca); got.Cmp(first.Serial) != 0 {
		t.Fatalf("served serial %v, want the first certificate's %v", got, first.Serial)
	}

	second := ca.Issue(t, "banyan.test", "127.0.0.1")
	second.Write(t, dir)
	waitSerial(t, addr, ca, second.Serial)

	// A new certificate whose key was not written yet (a half-done
	// rotation): the pair does not match, the second stays in service.
	third := ca.Issue(t, "banyan.test")
	if err := writeFile(filepath.Join(dir, "cert.pem"), third.CertPEM); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		time.Sleep(30 * time.Millisecond) // past ReloadCheck: the files are looked at again
		if got := servedSerial(t, addr, ca); got.Cmp(second.Serial) != 0 {
			t.Fatalf("after a mismatched rotation the server serves %v, want the previous %v", got, second.Serial)
		}
	}
	// The key arrives: the third is served.
	if err := writeFile(filepath.Join(dir, "key.pem"), third.KeyPEM); err != nil {
		t.Fatal(err)
	}
	waitSerial(t, addr, ca, third.Serial)
}

func waitSerial(t *testing.T, addr string, ca *testca.CA, want *big.Int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; ; i++ {
		got := servedSerial(t, addr, ca)
		if got.Cmp(want) == 0 {
			return
		}
		if time.Now().After(deadline) || i > 500 {
			t.Fatalf("server still serves %v, want %v (rotation not picked up)", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func writeFile(path string, b []byte) error {
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func TestConfigErrors(t *testing.T) {
	ca := testca.New(t)
	dir := t.TempDir()
	certFile, keyFile := ca.Issue(t, "banyan.test").Write(t, dir)
	other, _ := ca.Issue(t, "other.test").Write(t, t.TempDir())
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"nothing", Config{}, "no certificate"},
		{"cert without key", Config{CertFile: certFile}, "needs its key"},
		{"key without cert", Config{KeyFile: keyFile}, "needs its key"},
		{"files and acme", Config{CertFile: certFile, KeyFile: keyFile, ACME: ACME{Domains: []string{"a.example"}, CacheDir: dir}}, "both given"},
		{"missing file", Config{CertFile: filepath.Join(dir, "nope.pem"), KeyFile: keyFile}, "certificate file"},
		{"key of another certificate", Config{CertFile: other, KeyFile: keyFile}, "load"},
		{"key file is a certificate", Config{CertFile: certFile, KeyFile: certFile}, "load"},
		{"acme single label", Config{ACME: ACME{Domains: []string{"localhost"}, CacheDir: dir}}, "not a DNS name"},
		{"acme ip", Config{ACME: ACME{Domains: []string{"192.0.2.1"}, CacheDir: dir}}, "not a DNS name"},
		{"acme no cache", Config{ACME: ACME{Domains: []string{"a.example"}}}, "cache directory"},
		{"acme empty names", Config{ACME: ACME{Domains: []string{" ", ""}, CacheDir: dir}}, "no ACME domain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Logger = quiet()
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: err %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestRedirect(t *testing.T) {
	for _, tc := range []struct {
		name, method, host, target, port string
		code                             int
		loc                              string
	}{
		{"get default port", "GET", "example.org", "/watch/demo?x=1", "443", 301, "https://example.org/watch/demo?x=1"},
		{"host with port", "GET", "example.org:80", "/", "443", 301, "https://example.org/"},
		{"other https port", "HEAD", "example.org:8080", "/a", "8443", 301, "https://example.org:8443/a"},
		{"ipv6", "GET", "[2001:db8::1]:80", "/a", "8443", 301, "https://[2001:db8::1]:8443/a"},
		{"post keeps method", "POST", "example.org", "/whip/demo", "443", 308, "https://example.org/whip/demo"},
		{"bad host", "GET", "evil.example/x@", "/", "443", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "http://placeholder"+tc.target, nil)
			r.Host = tc.host
			w := httptest.NewRecorder()
			Redirect(tc.port).ServeHTTP(w, r)
			if w.Code != tc.code {
				t.Fatalf("status %d, want %d", w.Code, tc.code)
			}
			if got := w.Header().Get("Location"); got != tc.loc {
				t.Fatalf("Location %q, want %q", got, tc.loc)
			}
		})
	}
}

// TestServerConfigALPN: HTTP/2 is offered when asked for, and the ACME
// protocol only with ACME.
func TestServerConfigALPN(t *testing.T) {
	ca := testca.New(t)
	certFile, keyFile := ca.Issue(t, "banyan.test").Write(t, t.TempDir())
	src, err := New(Config{CertFile: certFile, KeyFile: keyFile, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) }))
	srv.TLS = src.ServerConfig("h2", "http/1.1")
	srv.StartTLS()
	defer srv.Close()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "banyan.test"}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "HTTP/2.0" {
		t.Fatalf("served over %q, want HTTP/2.0", b)
	}
	for _, p := range src.ServerConfig("h2").NextProtos {
		if p == "acme-tls/1" {
			t.Fatal("acme-tls/1 offered without ACME")
		}
	}
}

// testLogger logs through t, shown on failure or with -v.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, nil))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// TestSelfClientConfig: the in-process client trusts what this Source
// serves, even across a rotation, and refuses another server's
// certificate from the very same CA.
func TestSelfClientConfig(t *testing.T) {
	ca := testca.New(t)
	dir := t.TempDir()
	first := ca.Issue(t, "banyan.test")
	certFile, keyFile := first.Write(t, dir)
	src, err := New(Config{CertFile: certFile, KeyFile: keyFile, ReloadCheck: 10 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, src)
	dial := func(addr string) error {
		c, err := tls.Dial("tcp", addr, src.SelfClientConfig())
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(addr); err != nil {
		t.Fatalf("self dial: %v", err)
	}
	second := ca.Issue(t, "banyan.test")
	second.Write(t, dir)
	waitSerial(t, addr, ca, second.Serial)
	if err := dial(addr); err != nil {
		t.Fatalf("self dial after rotation: %v", err)
	}

	impostorDir := t.TempDir()
	ic, ik := ca.Issue(t, "banyan.test").Write(t, impostorDir)
	impostor, err := New(Config{CertFile: ic, KeyFile: ik, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := dial(serveTLS(t, impostor)); err == nil || !strings.Contains(err.Error(), "not one this process serves") {
		t.Fatalf("dial to another server with a certificate of the same CA: %v, want refused", err)
	}
}
