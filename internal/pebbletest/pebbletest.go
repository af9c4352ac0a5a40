// Package pebbletest runs Pebble, Let's Encrypt's ACME test CA (pinned in
// go.mod as a tool), on loopback for tests, with a DNS server that
// resolves every name to 127.0.0.1 so that Pebble's challenge validation
// connects to the test's own server and nowhere else.
package pebbletest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/letsencrypt/challtestsrv"

	"github.com/banyan-live/banyan/internal/testca"

	"github.com/banyan-live/banyan/internal/e2e"
)

// Pebble is a Pebble ACME CA run by the test on loopback, with a DNS
// server (Let's Encrypt's challtestsrv) that resolves every name to
// 127.0.0.1, so that Pebble's validation connects to this test's server
// and nowhere else.
type Pebble struct {
	Dir   string         // ACME directory URL
	HTTP  *http.Client   // trusts Pebble's own HTTPS certificate
	Roots *x509.CertPool // Pebble's issuing root: what clients of the issued certificates trust
	// CAFile is the PEM file of the CA behind Pebble's own HTTPS
	// certificate (banyan up --ca), RootsFile Pebble's issuing root.
	CAFile, RootsFile string
}

// binary builds the pinned Pebble tool (go.mod's tool directive)
// and returns its path; the build is cached by the go command.
func binary(t testing.TB) string {
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

// FreePort is e2e.FreePort.
func FreePort(t testing.TB) int { return e2e.FreePort(t) }

// Start runs Pebble validating tls-alpn-01 on tlsPort and http-01
// on httpPort of 127.0.0.1, issuing certificates valid for validity.
func Start(t testing.TB, tlsPort, httpPort int, validity time.Duration) *Pebble {
	t.Helper()
	bin := binary(t)
	dir := t.TempDir()

	dnsPort := FreePort(t)
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
	apiPort, mgmtPort := FreePort(t), FreePort(t)
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

	p := &Pebble{
		CAFile: ca.WriteCA(t, dir),
		Dir:    fmt.Sprintf("https://127.0.0.1:%d/dir", apiPort),
		HTTP:   &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}},
	}
	t.Cleanup(p.HTTP.CloseIdleConnections)
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		res, err := p.HTTP.Get(p.Dir)
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
	res, err := p.HTTP.Get(fmt.Sprintf("https://127.0.0.1:%d/roots/0", mgmtPort))
	if err != nil {
		t.Fatalf("pebble root: %v", err)
	}
	pemRoot, _ := io.ReadAll(res.Body)
	res.Body.Close()
	p.Roots = x509.NewCertPool()
	if !p.Roots.AppendCertsFromPEM(pemRoot) {
		t.Fatalf("pebble root is not PEM: %q", pemRoot)
	}
	p.RootsFile = filepath.Join(dir, "pebble-root.pem")
	if err := os.WriteFile(p.RootsFile, pemRoot, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
