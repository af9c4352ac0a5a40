package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/letsencrypt/challtestsrv"

	"github.com/banyan-live/banyan/internal/testca"
)

// pebble is a Pebble ACME CA run by the test on loopback, with a DNS
// server (Let's Encrypt's challtestsrv) that resolves every name to
// 127.0.0.1, so that Pebble's validation connects to this test's server
// and nowhere else.
type pebble struct {
	dir   string         // ACME directory URL
	http  *http.Client   // trusts Pebble's own HTTPS certificate
	roots *x509.CertPool // Pebble's issuing root: what clients of the issued certificates trust
}

// pebbleBinary builds the pinned Pebble tool (go.mod's tool directive)
// and returns its path; the build is cached by the go command.
func pebbleBinary(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "tool", "-n", "pebble").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go tool -n pebble: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go tool -n pebble: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startPebble runs Pebble validating tls-alpn-01 on tlsPort and http-01
// on httpPort of 127.0.0.1, issuing certificates valid for validity.
func startPebble(t *testing.T, tlsPort, httpPort int, validity time.Duration) *pebble {
	t.Helper()
	bin := pebbleBinary(t)
	dir := t.TempDir()

	dnsPort := freePort(t)
	dns, err := challtestsrv.New(challtestsrv.Config{
		DNSAddrs: []string{fmt.Sprintf("127.0.0.1:%d", dnsPort)},
		Log:      log.New(io.Discard, "", 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	dns.SetDefaultDNSIPv4("127.0.0.1")
	dns.SetDefaultDNSIPv6("")
	dns.Run()
	t.Cleanup(dns.Shutdown)

	ca := testca.New(t)
	certFile, keyFile := ca.Issue(t, "127.0.0.1", "localhost").Write(t, dir)
	apiPort, mgmtPort := freePort(t), freePort(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  fmt.Sprintf("127.0.0.1:%d", apiPort),
		"managementListenAddress":        fmt.Sprintf("127.0.0.1:%d", mgmtPort),
		"certificate":                    certFile,
		"privateKey":                     keyFile,
		"httpPort":                       httpPort,
		"tlsPort":                        tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"profiles": map[string]any{
			"default": map[string]any{"description": "short-lived, to exercise renewal", "validityPeriod": int(validity.Seconds())},
		},
	}}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-config", cfgFile, "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort))
	// No sleeps before validation, no injected bad nonces: the test is
	// about Banyan's side of ACME, not the client's retry of Pebble's chaos.
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	logf, err := os.Create(filepath.Join(dir, "pebble.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start pebble: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("pebble log:\n%s", b)
		}
	})

	p := &pebble{
		dir:  fmt.Sprintf("https://127.0.0.1:%d/dir", apiPort),
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}},
	}
	t.Cleanup(p.http.CloseIdleConnections)
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		res, err := p.http.Get(p.dir)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) || i > 400 {
			t.Fatalf("pebble did not come up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	res, err := p.http.Get(fmt.Sprintf("https://127.0.0.1:%d/roots/0", mgmtPort))
	if err != nil {
		t.Fatalf("pebble root: %v", err)
	}
	pemRoot, _ := io.ReadAll(res.Body)
	res.Body.Close()
	p.roots = x509.NewCertPool()
	if !p.roots.AppendCertsFromPEM(pemRoot) {
		t.Fatalf("pebble root is not PEM: %q", pemRoot)
	}
	return p
}

// httpsServer serves src on ln (HTTP/2 and HTTP/1.1) and, when redirect
// is not nil, src's plain-HTTP handler (http-01 answers, redirects) on it.
func httpsServer(t *testing.T, src *Source, ln, redirect net.Listener) {
	t.Helper()
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello over "+r.Proto) }),
		TLSConfig: src.ServerConfig("h2", "http/1.1"),
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	done := make(chan struct{}, 2)
	go func() { _ = srv.ServeTLS(ln, "", ""); done <- struct{}{} }()
	var plain *http.Server
	if redirect != nil {
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		plain = &http.Server{Handler: src.HTTPHandler(port), ErrorLog: log.New(io.Discard, "", 0)}
		go func() { _ = plain.Serve(redirect); done <- struct{}{} }()
	}
	t.Cleanup(func() {
		srv.Close()
		<-done
		if plain != nil {
			plain.Close()
			<-done
		}
	})
}

// fetch GETs https://name:port/ dialing 127.0.0.1, trusting roots, and
// returns the body and the serial of the server's certificate.
func fetch(t *testing.T, name string, port int, roots *x509.CertPool) (string, *big.Int, error) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	res, err := c.Get("https://" + net.JoinHostPort(name, strconv.Itoa(port)) + "/")
	if err != nil {
		return "", nil, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b), res.TLS.PeerCertificates[0].SerialNumber, nil
}

// TestACMEPebbleTLSALPN: a certificate is obtained from a real ACME CA
// answering the TLS-ALPN-01 challenge on the HTTPS port itself, served
// over HTTP/2, cached in the cache directory, and renewed before it
// expires without a restart.
func TestACMEPebbleTLSALPN(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	// 6 s certificates: autocert renews a third of the lifetime early.
	pb := startPebble(t, port, freePort(t), 6*time.Second)
	cache := t.TempDir()
	src, err := New(Config{ACME: ACME{Domains: []string{"banyan.example"}, Email: "ops@banyan.example", CA: pb.dir, CacheDir: cache, HTTPClient: pb.http}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	httpsServer(t, src, ln, nil)

	body, first, err := fetch(t, "banyan.example", port, pb.roots)
	if err != nil {
		t.Fatalf("GET over the ACME certificate: %v", err)
	}
	if body != "hello over HTTP/2.0" {
		t.Fatalf("body %q, want hello over HTTP/2.0", body)
	}
	if _, err := os.Stat(filepath.Join(cache, "banyan.example")); err != nil {
		t.Fatalf("certificate not cached in the data dir: %v", err)
	}
	// A name not configured gets no certificate (and costs no order).
	if _, _, err := fetch(t, "other.example", port, pb.roots); err == nil {
		t.Fatal("a handshake for an unconfigured name succeeded")
	}

	deadline := time.Now().Add(40 * time.Second)
	for i := 0; ; i++ {
		_, serial, err := fetch(t, "banyan.example", port, pb.roots)
		if err == nil && serial.Cmp(first) != 0 {
			break // renewed, and the new certificate is served
		}
		if time.Now().After(deadline) || i > 400 {
			t.Fatalf("certificate not renewed within 40s (last err %v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestACMEPebbleHTTP01: with the TLS-ALPN-01 port unreachable for the CA,
// the certificate comes through HTTP-01 answered on the plain-HTTP port,
// which redirects every other request to HTTPS.
func TestACMEPebbleHTTP01(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	red, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	redPort := red.Addr().(*net.TCPAddr).Port
	pb := startPebble(t, freePort(t), redPort, time.Hour)
	src, err := New(Config{ACME: ACME{Domains: []string{"banyan.example"}, CA: pb.dir, CacheDir: t.TempDir(), HTTPClient: pb.http}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	httpsServer(t, src, ln, red)

	if _, _, err := fetch(t, "banyan.example", port, pb.roots); err != nil {
		t.Fatalf("GET over the ACME certificate: %v", err)
	}
	noFollow := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noFollow.Get(fmt.Sprintf("http://127.0.0.1:%d/watch/demo", redPort))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if want := fmt.Sprintf("https://127.0.0.1:%d/watch/demo", port); res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != want {
		t.Fatalf("plain HTTP answered %d to %q, want 301 to %q", res.StatusCode, res.Header.Get("Location"), want)
	}
}
