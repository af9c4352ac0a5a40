package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
	"github.com/pion/turn/v5"

	"github.com/banyan-live/banyan/internal/e2e"
	"github.com/banyan-live/banyan/internal/pebbletest"
	"github.com/banyan-live/banyan/internal/testca"
	"github.com/banyan-live/banyan/protocol"
)

// tlsClient trusts only ca, speaks HTTP/2 when offered and never follows
// redirects (the test looks at them).
func tlsClient(ca *testca.CA) *http.Client {
	return &http.Client{
		Timeout:       10 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func noRedirect(tr http.RoundTripper) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// TestUpOverTLS: `banyan up --tls-cert/--tls-key` serves pages over HTTPS
// (HTTP/2), prints https URLs, redirects plain HTTP, sends HSTS and a
// Secure cookie; ffmpeg broadcasts over RTMPS (verifying the certificate)
// to a native peer that joined over wss:// and trusts the test CA through
// SSL_CERT_FILE; the in-process seeder reaches its own tracker over TLS.
func TestUpOverTLS(t *testing.T) {
	ffmpeg := e2e.Require(t, "ffmpeg")
	ca := testca.New(t)
	dir := t.TempDir()
	certFile, keyFile := ca.Issue(t, "localhost", "127.0.0.1").Write(t, dir)
	caFile := ca.WriteCA(t, dir)
	redirect := freePorts(t, 1)[0]
	up := startUp(t, filepath.Join(dir, "data"), "--ice-loopback", "--tls-cert", certFile, "--tls-key", keyFile,
		"--hsts", "--http-redirect", fmt.Sprintf("127.0.0.1:%d", redirect), "--rtmps", "127.0.0.1:0", "--turns", "127.0.0.1:0")
	defer func() {
		if t.Failed() {
			t.Logf("banyan up stderr:\n%s", up.stderr)
		}
	}()
	if !strings.HasPrefix(up.base, "https://") {
		t.Fatalf("banner prints %s, want https URLs:\n%s", up.base, up.banner)
	}
	if strings.Contains(up.banner, "http://") {
		t.Errorf("banner still prints a plain http URL:\n%s", up.banner)
	}
	c := tlsClient(ca)
	defer c.CloseIdleConnections()

	res, err := c.Get(up.base + "/watch/demo")
	if err != nil {
		t.Fatalf("GET over HTTPS: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Proto != "HTTP/2.0" {
		t.Fatalf("watch page: %d over %s, want 200 over HTTP/2.0", res.StatusCode, res.Proto)
	}
	if hsts := res.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(hsts, "max-age=") {
		t.Errorf("no HSTS header with --hsts: %q", hsts)
	}
	// Plain HTTP on the HTTPS port is refused; on --http-redirect it is
	// sent to HTTPS.
	if res, err := http.Get("http" + strings.TrimPrefix(up.base, "https") + "/healthz"); err == nil {
		res.Body.Close()
		if res.StatusCode == 200 {
			t.Error("plain HTTP served on the HTTPS port")
		}
	}
	res, err = c.Get(fmt.Sprintf("http://127.0.0.1:%d/watch/demo?x=1", redirect))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if loc := res.Header.Get("Location"); res.StatusCode != http.StatusMovedPermanently || loc != up.base+"/watch/demo?x=1" {
		t.Errorf("--http-redirect answered %d %q, want 301 to %s/watch/demo?x=1", res.StatusCode, loc, up.base)
	}
	// The dashboard's session cookie is Secure over HTTPS.
	if ck := login(t, c, up.base, up.adminToken(t), nil); !ck.Secure {
		t.Errorf("session cookie over HTTPS without Secure: %+v", ck)
	}

	turnsAllocate(t, up.base, ca)

	// The certificate files are replaced (certbot renewing): the next
	// handshakes get the new one, without a restart.
	renewed := ca.Issue(t, "localhost", "127.0.0.1")
	renewed.Write(t, dir)
	for i := 0; ; i++ {
		conn, err := tls.Dial("tcp", strings.TrimPrefix(up.base, "https://"), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		serial := conn.ConnectionState().PeerCertificates[0].SerialNumber
		conn.Close()
		if serial.Cmp(renewed.Serial) == 0 {
			break
		}
		if i == 50 {
			t.Fatalf("still serving serial %v 5 s after the files changed, want %v", serial, renewed.Serial)
		}
		time.Sleep(100 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// OBS's Server field is RTMPS now; ffmpeg publishes over it,
	// verifying the certificate against the test CA.
	m, k := regexp.MustCompile(`Server\s+rtmps://localhost:(\d+)/live`).FindStringSubmatch(up.banner), keyRE.FindStringSubmatch(up.banner)
	if m == nil || k == nil {
		t.Fatalf("no RTMPS server in the banner:\n%s", up.banner)
	}
	ff := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "30", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "30", "-preset", "veryfast", "-c:a", "aac",
		"-f", "flv", "-tls_verify", "1", "-ca_file", caFile, "rtmps://localhost:"+m[1]+"/live/"+k[1])
	var ffErr strings.Builder
	ff.Stderr = &ffErr
	if err := ff.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ff.Process.Kill(); ff.Wait() })

	wss := "wss" + strings.TrimPrefix(up.base, "https") + "/ws"
	peer := exec.CommandContext(ctx, banyanBin, "peer", "--tracker", wss, "--ca", caFile,
		"--stream", "demo", "--ice-loopback", "--json", "--duration", "12s")
	peer.Env = cleanEnv()
	var stderr strings.Builder
	peer.Stderr = &stderr
	out, err := peer.Output()
	if err != nil {
		t.Fatalf("banyan peer over wss: %v\n%s", err, stderr.String())
	}
	var sum peerSummary
	if err := json.Unmarshal(out, &sum); err != nil {
		t.Fatalf("peer summary %q: %v", out, err)
	}
	if sum.ChunksPlayed < 10 || sum.BadChunks != 0 {
		t.Fatalf("peer over wss played %d chunks (%d bad); peer stderr:\n%s\nffmpeg over rtmps:\n%s", sum.ChunksPlayed, sum.BadChunks, stderr.String(), ffErr.String())
	}
	// SSL_CERT_FILE instead of --ca works too; trusting neither, the
	// peer refuses the server and plays nothing.
	for _, tc := range []struct {
		name, certFile string
		plays          bool
	}{
		{"SSL_CERT_FILE", caFile, true},
		{"no CA", filepath.Join(dir, "none.pem"), false},
	} {
		p := exec.CommandContext(ctx, banyanBin, "peer", "--tracker", wss, "--stream", "demo", "--ice-loopback", "--json", "--duration", "4s")
		p.Env = append(cleanEnv(), "SSL_CERT_FILE="+tc.certFile)
		out, _ := p.Output()
		var s peerSummary
		_ = json.Unmarshal(out, &s)
		if (s.ChunksPlayed > 0) != tc.plays {
			t.Errorf("peer with %s played %d chunks (want some: %v)", tc.name, s.ChunksPlayed, tc.plays)
		}
	}
}

// login posts the admin token to the dashboard and returns the session
// cookie it sets.
func login(t *testing.T, c *http.Client, base, token string, hdr http.Header) *http.Cookie {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/dashboard/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header[k] = v
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	res.Body.Close()
	for _, ck := range res.Cookies() {
		if ck.Value != "" {
			return ck
		}
	}
	t.Fatalf("login answered %d without a session cookie", res.StatusCode)
	return nil
}

// TestUpBehindProxy: behind a TLS-terminating reverse proxy named with
// --trusted-proxy, the cookie is Secure and the per-address websocket
// limit counts the forwarded client addresses; the same headers from an
// address that is not a trusted proxy are ignored.
func TestUpBehindProxy(t *testing.T) {
	up := startUp(t, t.TempDir(), "--trusted-proxy", "127.0.0.1", "--ws-max-conns-per-ip", "2")
	backend, _ := url.Parse(up.base)

	// The proxy: TLS to the clients, plain HTTP to banyan, and the
	// client's address in X-Forwarded-For. Every test client is on
	// loopback, so the proxy maps each to a public address it stands for
	// (the X-Test-Client header), as a proxy on the internet would see it.
	ca := testca.New(t)
	proxy := httptest.NewUnstartedServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(backend)
		r.SetXForwarded()
		r.Out.Header.Set("X-Forwarded-For", r.In.Header.Get("X-Test-Client"))
		r.Out.Header.Del("X-Test-Client")
	}})
	proxy.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "127.0.0.1").TLSCertificate(t)}}
	proxy.StartTLS()
	defer proxy.Close()
	c := tlsClient(ca)
	defer c.CloseIdleConnections()

	if ck := login(t, c, proxy.URL, up.adminToken(t), http.Header{"X-Test-Client": {"203.0.113.9"}}); !ck.Secure {
		t.Errorf("cookie through a TLS proxy without Secure: %+v", ck)
	}
	// Plain HTTP straight to banyan, no proxy: not Secure.
	if ck := login(t, noRedirect(http.DefaultTransport), up.base, up.adminToken(t), nil); ck.Secure {
		t.Errorf("cookie over plain HTTP is Secure: %+v", ck)
	}

	wsThroughProxy := func(client string) (*websocket.Conn, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, res, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(proxy.URL, "https")+"/ws", &websocket.DialOptions{
			HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}},
			HTTPHeader: http.Header{"X-Test-Client": {client}},
		})
		if err != nil {
			if res == nil {
				t.Fatalf("dial through proxy: %v", err)
			}
			return nil, res.StatusCode
		}
		t.Cleanup(func() { conn.CloseNow() })
		return conn, http.StatusSwitchingProtocols
	}
	for i, want := range []int{101, 101, http.StatusTooManyRequests} {
		if _, code := wsThroughProxy("203.0.113.9"); code != want {
			t.Fatalf("websocket %d from 203.0.113.9 via the proxy: %d, want %d", i+1, code, want)
		}
	}
	if _, code := wsThroughProxy("198.51.100.4"); code != 101 {
		t.Fatalf("another client via the same proxy refused: %d", code)
	}

	// From 127.0.0.2, not a trusted proxy: a forged X-Forwarded-For is
	// ignored (the loopback peer is exempt, so nothing is refused) and so
	// is a forged X-Forwarded-Proto (no Secure cookie).
	from2 := noRedirect(&http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext})
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(up.base, "http")+"/ws", &websocket.DialOptions{
			HTTPClient: from2, HTTPHeader: http.Header{"X-Forwarded-For": {"203.0.113.9"}},
		})
		cancel()
		if err != nil {
			code := 0
			if res != nil {
				code = res.StatusCode
			}
			t.Fatalf("websocket %d from an untrusted address with a forged X-Forwarded-For: %v (%d): the header was believed", i+1, err, code)
		}
		defer conn.CloseNow()
	}
	if ck := login(t, from2, up.base, up.adminToken(t), http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-For": {"203.0.113.9"}}); ck.Secure {
		t.Errorf("forged X-Forwarded-Proto from an untrusted address made the cookie Secure")
	}
}

// TestUpACME: `banyan up --acme-domain` gets its certificate from a real
// ACME CA (Pebble on loopback, validating TLS-ALPN-01 on the HTTPS port),
// serves it, prints the domain in its URLs and caches it in the data dir.
func TestUpACME(t *testing.T) {
	port := freePorts(t, 1)[0]
	pb := pebbletest.Start(t, port, pebbletest.FreePort(t), time.Hour)
	data := filepath.Join(t.TempDir(), "data")
	up := startUp(t, data, "--http", fmt.Sprintf("127.0.0.1:%d", port), "--acme-domain", "banyan.example",
		"--acme-email", "ops@banyan.example", "--acme-ca", pb.Dir, "--ca", pb.CAFile, "--http-redirect", "off", "--rtmps", "off", "--turns", "off")
	if want := fmt.Sprintf("https://banyan.example:%d/watch/demo", port); !strings.Contains(up.banner, want) {
		t.Errorf("banner lacks %s:\n%s", want, up.banner)
	}
	c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pb.Roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", port))
		},
	}}
	defer c.CloseIdleConnections()
	res, err := c.Get(fmt.Sprintf("https://banyan.example:%d/healthz", port))
	if err != nil {
		t.Fatalf("GET with the ACME certificate: %v\n%s", err, up.stderr)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("healthz: %d", res.StatusCode)
	}
	if _, err := os.Stat(filepath.Join(data, "acme", "banyan.example")); err != nil {
		t.Errorf("certificate not cached in the data dir: %v", err)
	}
}

// turnsAllocate joins over wss, takes the welcome's turns: server and its
// credentials, and allocates a relay over TLS with them (checking the
// certificate against the test CA by the URL's name).
func turnsAllocate(t *testing.T, base string, ca *testca.CA) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(base, "https")+"/ws", &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}},
	})
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	defer conn.CloseNow()
	b, _ := protocol.Encode(protocol.Join{Stream: "demo", Kind: protocol.KindNative, NoUpload: true})
	if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
	var welcome protocol.Welcome
	for i := 0; i < 20; i++ {
		_, data, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for the welcome: %v", err)
		}
		m, err := protocol.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		if w, ok := m.(protocol.Welcome); ok {
			welcome = w
			break
		}
	}
	var turnsURL, user, pass string
	for _, is := range welcome.ICEServers {
		for _, u := range is.URLs {
			if strings.HasPrefix(u, "turns:") {
				turnsURL, user, pass = u, is.Username, is.Credential
			}
		}
	}
	if turnsURL == "" {
		t.Fatalf("welcome offers no turns: server: %+v", welcome.ICEServers)
	}
	hostPort := strings.TrimSuffix(strings.TrimPrefix(turnsURL, "turns:"), "?transport=tcp")
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		t.Fatalf("turns URL %q: %v", turnsURL, err)
	}
	tc, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", port), &tls.Config{RootCAs: ca.Pool(), ServerName: host})
	if err != nil {
		t.Fatalf("TLS to %s: %v", turnsURL, err)
	}
	addr := tc.RemoteAddr()
	client, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: addr.String(), TURNServerAddr: addr.String(), Conn: turn.NewSTUNConn(tc),
		Username: user, Password: pass, RTO: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := client.Allocate()
	if err != nil {
		t.Fatalf("relay allocation over %s with the welcome's credentials: %v", turnsURL, err)
	}
	t.Logf("relay %s allocated over %s", relay.LocalAddr(), turnsURL)
	relay.Close()
}

// TestBrowserOverTLS: on a non-localhost name (mapped to 127.0.0.1), over
// HTTPS only, Chromium's publisher page gets the (fake) camera, which
// browsers allow only in a secure context, and goes live over WHIP; a
// second Chromium context opens the watch page, whose wasm player signals
// over wss:// and plays it.
func TestBrowserOverTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the browser TLS test in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ca := testca.New(t)
	dir := t.TempDir()
	leaf := ca.Issue(t, "banyan.test")
	certFile, keyFile := leaf.Write(t, dir)
	bctx := browser(t, ctx,
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("host-resolver-rules", "MAP banyan.test 127.0.0.1"),
		chromedp.Flag("ignore-certificate-errors-spki-list", leaf.SPKIHash(t)))
	up := startUp(t, filepath.Join(dir, "data"), "--ice-loopback", "--tls-cert", certFile, "--tls-key", keyFile,
		"--public-host", "banyan.test", "--rtmps", "off", "--turns", "off")
	k := keyRE.FindStringSubmatch(up.banner)
	if k == nil {
		t.Fatalf("no stream key in the banner:\n%s", up.banner)
	}
	site := "https://banyan.test:" + strings.TrimPrefix(up.base, "https://127.0.0.1:")

	pctx := openViewer(t, bctx, site+"/publish/demo")
	waitPublisher(t, pctx, "the camera preview over https", 30*time.Second, func(p publisherProbe) bool { return p.State == "ready" })
	if err := chromedp.Do(pctx, chromedp.SetValue(chromedp.ID("key"), k[1]), chromedp.Click(chromedp.ID("golive"))); err != nil {
		t.Fatalf("go live: %v", err)
	}
	waitPublisher(t, pctx, "live over WHIP on https", 40*time.Second, func(p publisherProbe) bool { return p.State == "live" && p.FramesSent > 0 })

	v := openViewer(t, bctx, site+"/watch/demo")
	live := waitViewer(t, v, "viewer live over TLS", 40*time.Second, func(p viewerProbe) bool { return p.State == "live" && p.Time > 0 })
	waitViewer(t, v, "3 s of playback over TLS", 20*time.Second, func(p viewerProbe) bool { return p.Time >= live.Time+3 })
	secure, err := chromedp.Run(v, chromedp.Evaluate[bool](`window.isSecureContext`))
	if err != nil {
		t.Fatal(err)
	}
	proto, err := chromedp.Run(v, chromedp.Evaluate[string](`performance.getEntriesByType('navigation')[0].nextHopProtocol`))
	if err != nil {
		t.Fatal(err)
	}
	if !secure || proto != "h2" {
		t.Fatalf("page: secure context %v over %q, want a secure context over h2", secure, proto)
	}
}

// TestTLSOperatorMistakes: bad TLS flags are one-line errors before
// anything starts.
func TestTLSOperatorMistakes(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t)
	certFile, keyFile := ca.Issue(t, "localhost").Write(t, dir)
	data := filepath.Join(dir, "data")
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"cert without key", []string{"--tls-cert", certFile}, 1, "needs its key"},
		{"key is not a key", []string{"--tls-cert", certFile, "--tls-key", certFile}, 1, "load"},
		{"missing cert file", []string{"--tls-cert", filepath.Join(dir, "nope.pem"), "--tls-key", keyFile}, 1, "no such file"},
		{"files and acme", []string{"--tls-cert", certFile, "--tls-key", keyFile, "--acme-domain", "a.example"}, 1, "both given"},
		{"acme for localhost", []string{"--acme-domain", "localhost"}, 1, "not a DNS name"},
		{"hsts without https", []string{"--hsts"}, 2, "--hsts needs HTTPS"},
		{"rtmps without a certificate", []string{"--rtmps", ":1936"}, 2, "--rtmps needs a certificate"},
		{"turns without a certificate", []string{"--turns", ":5349"}, 2, "--turns needs a certificate"},
		{"redirect without a certificate", []string{"--http-redirect", ":80"}, 2, "--http-redirect needs a certificate"},
		{"bad trusted proxy", []string{"--trusted-proxy", "10.0.0.0/33"}, 2, "trusted proxy"},
		{"bad --ca", []string{"--acme-domain", "a.example", "--ca", certFile + ".none"}, 1, "--ca"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"up", "--data", data, "--http", "127.0.0.1:0", "--rtmp", "127.0.0.1:0", "--turn", "127.0.0.1:0"}, c.args...)
			_, stderr, code := cli(t, args...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d stderr %q; want exit %d containing %q", code, stderr, c.code, c.want)
			}
			if strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
				t.Fatalf("want a one-line error, got:\n%s", stderr)
			}
		})
	}
	if _, err := os.Stat(data); err == nil {
		t.Error("a refused start created the data dir")
	}
}
