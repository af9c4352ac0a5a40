package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/banyan-live/banyan/internal/pebbletest"
)

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
	pb := pebbletest.Start(t, port, pebbletest.FreePort(t), 6*time.Second)
	cache := t.TempDir()
	src, err := New(Config{ACME: ACME{Domains: []string{"banyan.example"}, Email: "ops@banyan.example", CA: pb.Dir, CacheDir: cache, HTTPClient: pb.HTTP}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	httpsServer(t, src, ln, nil)

	body, first, err := fetch(t, "banyan.example", port, pb.Roots)
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
	if _, _, err := fetch(t, "other.example", port, pb.Roots); err == nil {
		t.Fatal("a handshake for an unconfigured name succeeded")
	}

	deadline := time.Now().Add(40 * time.Second)
	for i := 0; ; i++ {
		_, serial, err := fetch(t, "banyan.example", port, pb.Roots)
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
	pb := pebbletest.Start(t, pebbletest.FreePort(t), redPort, time.Hour)
	src, err := New(Config{ACME: ACME{Domains: []string{"banyan.example"}, CA: pb.Dir, CacheDir: t.TempDir(), HTTPClient: pb.HTTP}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	httpsServer(t, src, ln, red)

	if _, _, err := fetch(t, "banyan.example", port, pb.Roots); err != nil {
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
