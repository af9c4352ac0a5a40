package nate2e

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banyan-live/banyan/internal/e2e"
	"github.com/banyan-live/banyan/internal/testca"
)

// TestPeerThroughTURNSOnly: h2 sits behind a symmetric NAT whose firewall
// lets neither UDP nor plain TCP out to the TURN port, only TLS to 5349
// (a corporate network that passes TLS alone). Everything runs over TLS
// with a test CA: HTTPS, wss:// signaling, TURN over TLS. h2 still gets
// the stream from its parent h1 through the relay, which it can reach only
// as turns: from the welcome.
func TestPeerThroughTURNSOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: network-namespace end-to-end test in -short mode")
	}
	e2e.Require(t, "ip")
	e2e.Require(t, "iptables")
	ffmpeg := e2e.Require(t, "ffmpeg")
	l := newLab(t)
	banyanBin := buildBanyan(t)
	l.masquerade(true)
	// Refused, not dropped: pion's ICE dials TURN over TCP without a
	// timeout, so behind a firewall that drops silently a peer waits for
	// the kernel's SYN retries (about 2 min) before it can close.
	l.exec("nat2", "iptables", "-I", "FORWARD", "1", "-i", "lan", "-p", "udp", "-d", pubIP, "--dport", "3478", "-j", "REJECT")
	l.exec("nat2", "iptables", "-I", "FORWARD", "1", "-i", "lan", "-p", "tcp", "-d", pubIP, "--dport", "3478", "-j", "REJECT", "--reject-with", "tcp-reset")

	dir := t.TempDir()
	ca := testca.New(t)
	certFile, keyFile := ca.Issue(t, pubIP).Write(t, dir)
	caEnv := append(cleanEnv(), "SSL_CERT_FILE="+ca.WriteCA(t, dir))
	data := filepath.Join(dir, "data")
	metricsAddr := pubIP + ":9100"
	up := l.start("pub", banyanBin, cleanEnv(), "up", "--data", data,
		"--http", httpAddr, "--rtmp", pubIP+":1935", "--turn", pubIP+":3478", "--turns", pubIP+":5349", "--rtmps", "off",
		"--tls-cert", certFile, "--tls-key", keyFile, "--public-host", pubIP,
		"--turn-allow-private", "--stripes", "1", "--root-capacity", "1", "--demo-stream", stream, "--log-level", "debug",
		"--metrics", metricsAddr)
	// Ready when the token-free metrics listener answers (plain HTTP,
	// which the lab's fetch helper speaks).
	key := l.demoKey(up, data, "http://"+metricsAddr+"/metrics")
	ff := l.broadcast(ffmpeg, key, 40)
	defer ff.stop(time.Second)
	metrics := func() string { s, _ := l.get("pub", "http://"+metricsAddr+"/metrics"); return s }
	recv := func(text, path string) float64 {
		return metric(text, "banyan_swarm_received_bytes", `path="`+path+`",stream="`+stream+`"`)
	}

	tracker := "wss://" + httpAddr + "/ws"
	h1 := l.start("h1", banyanBin, caEnv, "peer", "--tracker", tracker, "--stream", stream,
		"--capacity-mbps", "20", "--duration", "24s", "--json")
	for end := time.Now().Add(25 * time.Second); recv(metrics(), "p2p") == 0; {
		if time.Now().After(end) {
			t.Fatalf("h1 reported no peer bytes in 25 s; h1: %s\nup: %s", tail(h1.stderr.String()), tail(up.stderr.String()))
		}
		time.Sleep(500 * time.Millisecond)
	}
	h2 := l.start("h2", banyanBin, caEnv, "peer", "--tracker", tracker, "--stream", stream,
		"--no-upload", "--duration", "14s", "--json")
	h2.wait(t, 30*time.Second)
	h1.wait(t, 30*time.Second)

	s2 := summaryOf(t, h2)
	t.Logf("h2: %+v", s2)
	if s2.MaxDepth != 2 || s2.BytesTURN == 0 || s2.BytesP2P != 0 || s2.ChunksPlayed < 10 || s2.BadChunks != 0 {
		t.Errorf("h2: want h1's child getting its chunks through the relay: %+v", s2)
	}
	// h2 did try UDP and plain TCP to the TURN port: its router refused them.
	out := l.exec("nat2", "iptables", "-L", "FORWARD", "-v", "-n", "-x")
	for _, proto := range []string{"udp", "tcp"} {
		m := regexp.MustCompile(`(?m)^\s*(\d+)\s+\d+\s+REJECT\s.*\b` + proto + ` dpt:3478`).FindStringSubmatch(out)
		if n, _ := strconv.Atoi(m2(m)); n == 0 {
			t.Errorf("no %s packet to TURN port 3478 refused at h2's router: the test did not block it\n%s", proto, out)
		}
	}
	// And its allocation came in over the only way left: TLS to 5349.
	if !strings.Contains(up.stderr.String(), `msg="turn: allocation created" component=turn src=`+natIP(2)) {
		t.Errorf("no TURN allocation from h2's router %s in the server log", natIP(2))
	}
	if t.Failed() {
		t.Logf("h2 stderr: %s", tail(h2.stderr.String()))
		t.Logf("up stderr: %s", tail(up.stderr.String()))
	}
}

func m2(m []string) string {
	if len(m) < 2 {
		return ""
	}
	return m[1]
}
