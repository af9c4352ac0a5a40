package turnserver

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/banyan-live/banyan/internal/logbuf"
)

// stunMagicCookie is RFC 5389's magic cookie (pion/stun keeps its constant private).
const stunMagicCookie = 0x2112A442

var testSecret = []byte("test-secret-0123456789")

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newTestServer starts a server on loopback UDP and TCP with loopback relaying allowed,
// applies mut, and closes it (checking Close's error) when the test ends.
func newTestServer(tb testing.TB, mut func(*Config)) *Server {
	tb.Helper()
	cfg := Config{
		UDPAddr:       "127.0.0.1:0",
		TCPAddr:       "127.0.0.1:0",
		Secret:        testSecret,
		AllowLoopback: true,
		Logger:        quietLogger(),
		Registerer:    prometheus.NewRegistry(),
	}
	if mut != nil {
		mut(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})

	return s
}

func clientLoggers() logging.LoggerFactory {
	f := logging.NewDefaultLoggerFactory()
	f.DefaultLogLevel = logging.LogLevelDisabled

	return f
}

// newClient starts a pion TURN client over conn (a UDP socket or a STUNConn) towards addr.
func newClient(tb testing.TB, conn net.PacketConn, addr net.Addr, user, pass string) *turn.Client {
	tb.Helper()
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: addr.String(),
		TURNServerAddr: addr.String(),
		Conn:           conn,
		Username:       user,
		Password:       pass,
		Realm:          DefaultRealm,
		LoggerFactory:  clientLoggers(),
		RTO:            100 * time.Millisecond,
	})
	if err != nil {
		tb.Fatalf("turn.NewClient: %v", err)
	}
	if err := c.Listen(); err != nil {
		tb.Fatalf("client Listen: %v", err)
	}
	tb.Cleanup(func() {
		c.Close()
		_ = conn.Close()
	})

	return c
}

// newUDPClient is newClient over a fresh loopback UDP socket.
func newUDPClient(tb testing.TB, s *Server, user, pass string) *turn.Client {
	tb.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}

	return newClient(tb, conn, s.UDPAddr(), user, pass)
}

func goodCreds(peer string) (string, string) {
	return Credentials(testSecret, peer, time.Hour, time.Now())
}

// udpPeer is a loopback UDP endpoint playing the remote peer: it counts what arrives and,
// when echo is set, sends it back.
type udpPeer struct {
	conn    net.PacketConn
	packets atomic.Int64
	bytes   atomic.Int64
	done    chan struct{}
}

func startPeer(tb testing.TB, echo bool) *udpPeer {
	tb.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &udpPeer{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			p.packets.Add(1)
			p.bytes.Add(int64(n))
			if echo {
				_, _ = conn.WriteTo(buf[:n], from)
			}
		}
	}()
	tb.Cleanup(func() {
		_ = conn.Close()
		<-p.done
	})

	return p
}

func (p *udpPeer) addr() *net.UDPAddr { return p.conn.LocalAddr().(*net.UDPAddr) }

// roundTrip sends msg through relay to the echo peer and waits for it to come back,
// retrying a few times (UDP).
func roundTrip(t *testing.T, relay net.PacketConn, peer *net.UDPAddr, msg []byte) error {
	t.Helper()
	buf := make([]byte, 2048)
	var last error
	for range 5 {
		if _, err := relay.WriteTo(msg, peer); err != nil {
			return err
		}
		if err := relay.SetReadDeadline(time.Now().Add(500 * time.Millisecond)); err != nil {
			return err
		}
		n, from, err := relay.ReadFrom(buf)
		if err != nil {
			last = err

			continue
		}
		if !bytes.Equal(buf[:n], msg) {
			return errors.New("echo payload differs")
		}
		if ua, ok := from.(*net.UDPAddr); !ok || !ua.IP.Equal(peer.IP) || ua.Port != peer.Port {
			return errors.New("echo from unexpected address " + from.String())
		}

		return nil
	}

	return last
}

// eventually polls cond for up to 3 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func turnCode(err error) int {
	var te *stun.TurnError
	if errors.As(err, &te) {
		return int(te.ErrorCodeAttr.Code)
	}

	return 0
}

func TestRelayUDP(t *testing.T) {
	s := newTestServer(t, nil)
	echo := startPeer(t, true)
	user, pass := goodCreds("peer-a")
	c := newUDPClient(t, s, user, pass)
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	defer relay.Close()
	if ip := relay.LocalAddr().(*net.UDPAddr).IP; !ip.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("relayed address %v, want the default 127.0.0.1", ip)
	}
	for i := range 3 {
		if err := roundTrip(t, relay, echo.addr(), []byte("hello through the relay "+string(rune('a'+i)))); err != nil {
			t.Fatalf("round trip %d: %v", i, err)
		}
	}

	// A stranger (no permission: permissions are per IP, so it sits on another loopback
	// IP) writing to the relay port reaches nobody and is not counted as relayed.
	before := s.Stats().RelayedBytesToClient
	stranger, err := net.ListenPacket("udp4", "127.0.0.2:0")
	if err != nil {
		t.Skipf("cannot bind 127.0.0.2: %v", err)
	}
	defer stranger.Close()
	for range 5 {
		_, _ = stranger.WriteTo([]byte("unsolicited"), relay.LocalAddr())
	}
	if err := relay.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n, from, err := relay.ReadFrom(make([]byte, 64)); err == nil {
		t.Fatalf("got %d bytes from stranger %v", n, from)
	}
	st := s.Stats()
	if st.RelayedBytesToClient != before {
		t.Fatalf("stranger packets counted as relayed: %d -> %d", before, st.RelayedBytesToClient)
	}
	if st.Allocations != 1 || st.ActiveAllocations != 1 {
		t.Fatalf("allocations %d active %d, want 1 and 1", st.Allocations, st.ActiveAllocations)
	}
	if st.RelayedBytesToPeer < 3*24 || st.RelayedBytesToClient < 3*24 {
		t.Fatalf("relayed bytes to peer %d, to client %d; want >= 72 each", st.RelayedBytesToPeer, st.RelayedBytesToClient)
	}
	for r, n := range st.Refusals {
		if n != 0 {
			t.Errorf("unexpected refusal %s = %d", r, n)
		}
	}
}

func TestRelayTCP(t *testing.T) {
	s := newTestServer(t, nil)
	echo := startPeer(t, true)
	conn, err := net.Dial("tcp", s.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	user, pass := goodCreds("peer-tcp")
	c := newClient(t, turn.NewSTUNConn(conn), s.TCPAddr(), user, pass)
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("Allocate over TCP: %v", err)
	}
	defer relay.Close()
	if err := roundTrip(t, relay, echo.addr(), []byte("over tcp")); err != nil {
		t.Fatalf("round trip: %v", err)
	}
}

func TestRelayTLS(t *testing.T) {
	certFile, keyFile, pool := writeTestCert(t)
	for _, tc := range []struct {
		name string
		set  func(c *Config)
	}{
		{"files", func(c *Config) { c.CertFile, c.KeyFile = certFile, keyFile }},
		{"GetCertificate", func(c *Config) {
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			c.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { testRelayTLS(t, pool, tc.set) })
	}
}

func testRelayTLS(t *testing.T, pool *x509.CertPool, set func(c *Config)) {
	s := newTestServer(t, func(c *Config) {
		c.TLSAddr = "127.0.0.1:0"
		set(c)
	})
	if s.TLSAddr() == nil {
		t.Fatal("no TLS listener")
	}
	echo := startPeer(t, true)
	conn, err := tls.Dial("tcp", s.TLSAddr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	user, pass := goodCreds("peer-tls")
	c := newClient(t, turn.NewSTUNConn(conn), s.TLSAddr(), user, pass)
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("Allocate over TLS: %v", err)
	}
	defer relay.Close()
	if err := roundTrip(t, relay, echo.addr(), []byte("over tls")); err != nil {
		t.Fatalf("round trip: %v", err)
	}

	// A client that fails the handshake is dropped, not kept open.
	raw, err := net.Dial("tcp", s.TLSAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_, _ = raw.Write([]byte("this is not a TLS client hello, not at all........"))
	_ = raw.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.Copy(io.Discard, raw); err != nil {
		t.Fatalf("server did not close a failed TLS handshake: %v", err)
	}
}

func TestLoopbackRefused(t *testing.T) {
	var logs logbuf.Buffer
	s := newTestServer(t, func(c *Config) {
		c.AllowLoopback = false
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	sink := startPeer(t, false)
	user, pass := goodCreds("peer-b")
	c := newUDPClient(t, s, user, pass)
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	defer relay.Close()
	_, err = relay.WriteTo([]byte("to loopback"), sink.addr())
	if code := turnCode(err); code != 403 {
		t.Fatalf("WriteTo loopback peer: err %v (code %d), want 403 Forbidden", err, code)
	}
	time.Sleep(100 * time.Millisecond)
	if n := sink.packets.Load(); n != 0 {
		t.Fatalf("%d packets reached the loopback peer", n)
	}
	if n := s.Stats().Refusals[ReasonPeerAddress]; n < 1 {
		t.Fatalf("peer-address refusals = %d, want >= 1", n)
	}
	// Routine during playback (browsers try every candidate): counted, not
	// logged at info (issue 21).
	if strings.Contains(logs.String(), "permission refused") {
		t.Errorf("permission refusal logged at info:\n%s", logs.String())
	}
}

// TestPeerRefusedRawSTUN drives CreatePermission, ChannelBind, Send indications and
// ChannelData by hand, since pion's client stops at the first refusal.
func TestPeerRefusedRawSTUN(t *testing.T) {
	s := newTestServer(t, func(c *Config) { c.AllowLoopback = false })
	sink := startPeer(t, false)
	user, pass := goodCreds("peer-raw")
	rc := newRawClient(t, s.UDPAddr(), user, pass)
	rc.allocate(t)
	peer := xorPeer{IP: sink.addr().IP, Port: sink.addr().Port}

	res := rc.do(t, stun.NewType(stun.MethodCreatePermission, stun.ClassRequest), peer)
	if res.Type.Class != stun.ClassErrorResponse {
		t.Fatalf("CreatePermission to loopback: %v, want an error response", res.Type)
	}
	res = rc.do(t, stun.NewType(stun.MethodChannelBind, stun.ClassRequest),
		stun.RawAttribute{Type: stun.AttrChannelNumber, Value: []byte{0x40, 0x00, 0, 0}}, peer)
	if res.Type.Class != stun.ClassErrorResponse {
		t.Fatalf("ChannelBind to loopback: %v, want an error response", res.Type)
	}
	ind, err := stun.Build(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication), peer,
		stun.RawAttribute{Type: stun.AttrData, Value: []byte("send indication")}, stun.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	chData := []byte{0x40, 0x00, 0x00, 0x04, 'd', 'a', 't', 'a'}
	for range 3 {
		_, _ = rc.conn.WriteTo(ind.Raw, rc.server)
		_, _ = rc.conn.WriteTo(chData, rc.server)
	}
	time.Sleep(150 * time.Millisecond)
	if n := sink.packets.Load(); n != 0 {
		t.Fatalf("%d packets reached the loopback peer", n)
	}
	if n := s.Stats().Refusals[ReasonPeerAddress]; n < 2 {
		t.Fatalf("peer-address refusals = %d, want >= 2 (permission and channel bind)", n)
	}
}

// TestRelayWriteFilter checks the per-packet fallback filter on the relay socket itself.
func TestRelayWriteFilter(t *testing.T) {
	s := newTestServer(t, func(c *Config) { c.AllowLoopback = false })
	sink := startPeer(t, false)
	gen := &relayGen{s: s, inner: &turn.RelayAddressGeneratorPortRange{
		RelayAddress: net.IPv4(127, 0, 0, 1), Address: "127.0.0.1", MinPort: 49152, MaxPort: 65535,
	}}
	if err := gen.Validate(); err != nil {
		t.Fatal(err)
	}
	pc, _, err := gen.AllocatePacketConn(turn.AllocateListenerConfig{Network: "udp4", UserID: "direct"})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := pc.WriteTo([]byte("x"), sink.addr()); n != 1 || err != nil {
		t.Fatalf("dropped write = %d, %v; want silent success", n, err)
	}
	if _, err := pc.WriteTo([]byte("x"), &net.TCPAddr{IP: net.IPv4(8, 8, 8, 8), Port: 1}); err == nil {
		t.Fatal("write to a TCP address accepted")
	}
	time.Sleep(50 * time.Millisecond)
	if sink.packets.Load() != 0 {
		t.Fatal("packet reached a loopback peer")
	}
	if s.Stats().Refusals[ReasonPeerAddress] != 1 || s.Stats().ActiveAllocations != 1 {
		t.Fatalf("stats %+v", s.Stats())
	}
	if err := pc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pc.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if a := s.Stats().ActiveAllocations; a != 0 {
		t.Fatalf("active allocations %d after Close", a)
	}
}

func TestAuthRefused(t *testing.T) {
	now := time.Now()
	goodUser, goodPass := goodCreds("peer-c")
	expUser, expPass := Credentials(testSecret, "peer-c", -time.Minute, now)
	otherUser, otherPass := Credentials([]byte("another-secret-entirely"), "peer-c", time.Hour, now)
	tests := []struct {
		name       string
		user, pass string
		reason     Reason
	}{
		{"expired", expUser, expPass, ReasonExpired},
		{"wrong password", goodUser, goodPass + "x", ReasonAuth},
		{"other secret", otherUser, otherPass, ReasonAuth},
		{"malformed username", "alice", Password(testSecret, "alice"), ReasonAuth},
		{"peer id with colon", "99999999999:a:b", Password(testSecret, "99999999999:a:b"), ReasonAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, nil)
			c := newUDPClient(t, s, tt.user, tt.pass)
			if relay, err := c.Allocate(); err == nil {
				relay.Close()
				t.Fatal("Allocate succeeded")
			}
			st := s.Stats()
			if st.Refusals[tt.reason] < 1 {
				t.Fatalf("refusals %v, want %s counted", st.Refusals, tt.reason)
			}
			if st.Allocations != 0 || st.ActiveAllocations != 0 {
				t.Fatalf("allocations %d active %d", st.Allocations, st.ActiveAllocations)
			}
		})
	}
}

func TestAllocationQuota(t *testing.T) {
	s := newTestServer(t, func(c *Config) { c.MaxAllocationsPerUser = 1 })
	user, pass := goodCreds("peer-q")
	first, err := newUDPClient(t, s, user, pass).Allocate()
	if err != nil {
		t.Fatalf("first Allocate: %v", err)
	}
	_, err = newUDPClient(t, s, user, pass).Allocate()
	if code := turnCode(err); code != 486 {
		t.Fatalf("second Allocate: %v (code %d), want 486 Allocation Quota Reached", err, code)
	}
	if n := s.Stats().Refusals[ReasonQuota]; n != 1 {
		t.Fatalf("quota refusals = %d, want 1", n)
	}
	// Another peer is not affected.
	u2, p2 := goodCreds("peer-other")
	other, err := newUDPClient(t, s, u2, p2).Allocate()
	if err != nil {
		t.Fatalf("other peer's Allocate: %v", err)
	}
	defer other.Close()
	// Closing the first allocation gives the quota back.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first allocation to go", func() bool { return s.Stats().ActiveAllocations == 1 })
	third, err := newUDPClient(t, s, user, pass).Allocate()
	if err != nil {
		t.Fatalf("Allocate after release: %v", err)
	}
	third.Close()
}

func TestBandwidthQuota(t *testing.T) {
	const bytesPerSec = 8000
	s := newTestServer(t, func(c *Config) { c.MaxBandwidthBpsPerUser = 8 * bytesPerSec })
	sink := startPeer(t, false)
	user, pass := goodCreds("peer-bw")
	relay, err := newUDPClient(t, s, user, pass).Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	payload := make([]byte, 1000)
	start := time.Now()
	for range 100 {
		if _, err := relay.WriteTo(payload, sink.addr()); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	elapsed := time.Since(start).Seconds()
	got := sink.bytes.Load()
	limit := int64(minBurstBytes + bytesPerSec*elapsed + 1000)
	if got > limit || got < minBurstBytes/2 {
		t.Fatalf("%d bytes reached the peer in %.2fs; want between %d and %d", got, elapsed, minBurstBytes/2, limit)
	}
	if n := s.Stats().Refusals[ReasonBandwidth]; n < 50 {
		t.Fatalf("bandwidth drops = %d, want >= 50", n)
	}
}

func TestMaxLifetime(t *testing.T) {
	s := newTestServer(t, func(c *Config) { c.MaxLifetime = 300 * time.Millisecond })
	echo := startPeer(t, true)
	user, pass := goodCreds("peer-life")
	relay, err := newUDPClient(t, s, user, pass).Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	if err := roundTrip(t, relay, echo.addr(), []byte("young")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the allocation to expire", func() bool { return s.Stats().ActiveAllocations == 0 })
	eventually(t, "pion to drop the allocation", func() bool { return s.turn.AllocationCount() == 0 })
	if _, err := relay.WriteTo([]byte("old"), echo.addr()); err == nil {
		if err := relay.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := relay.ReadFrom(make([]byte, 64)); err == nil {
			t.Fatal("relay still works after MaxLifetime")
		}
	}
}

func TestRelayIPAndPortRange(t *testing.T) {
	s := newTestServer(t, func(c *Config) {
		c.RelayIP = net.ParseIP("203.0.113.5") // advertised only, never contacted
		c.RelayPortMin, c.RelayPortMax = 50000, 50063
	})
	user, pass := goodCreds("peer-ip")
	relay, err := newUDPClient(t, s, user, pass).Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	a := relay.LocalAddr().(*net.UDPAddr)
	if !a.IP.Equal(net.ParseIP("203.0.113.5")) || a.Port < 50000 || a.Port > 50063 {
		t.Fatalf("relayed address %v, want 203.0.113.5:50000-50063", a)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		mut  func(*Config)
		want string
	}{
		{"no secret", func(c *Config) { c.Secret = nil }, "Secret is required"},
		{"half port range", func(c *Config) { c.RelayPortMin = 50000 }, "relay port range"},
		{"inverted port range", func(c *Config) { c.RelayPortMin, c.RelayPortMax = 60000, 50000 }, "relay port range"},
		{"cert without key", func(c *Config) { c.CertFile = bad }, "go together"},
		{"bad cert", func(c *Config) { c.CertFile, c.KeyFile = bad, bad; c.TLSAddr = "127.0.0.1:0" }, "TLS certificate"},
		{"bad udp addr", func(c *Config) { c.UDPAddr = "no-port" }, "listen address"},
		{"busy tcp port", nil, "listen TCP"},
	}
	busy, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests[len(tests)-1].mut = func(c *Config) { c.TCPAddr = busy.Addr().String() }
	reg := prometheus.NewRegistry()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", Secret: testSecret, Logger: quietLogger(), Registerer: reg}
			tt.mut(&cfg)
			s, err := New(cfg)
			if err == nil {
				_ = s.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
		})
	}
	// The failures left the registry untouched.
	newTestServer(t, func(c *Config) { c.Registerer = reg })
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newTestServer(t, func(c *Config) { c.Registerer = reg })
	user, pass := goodCreds("peer-m")
	relay, err := newUDPClient(t, s, user, pass).Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	expUser, expPass := Credentials(testSecret, "peer-m", -time.Hour, time.Now())
	if _, err := newUDPClient(t, s, expUser, expPass).Allocate(); err == nil {
		t.Fatal("expired Allocate succeeded")
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch {
			case m.Counter != nil:
				values[name] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				values[name] = m.GetGauge().GetValue()
			}
		}
	}
	want := map[string]float64{
		"banyan_turn_allocations_total":                      1,
		"banyan_turn_allocations_active":                     1,
		"banyan_turn_refusals_total{reason=expired}":         1,
		"banyan_turn_refusals_total{reason=peer-address}":    0,
		"banyan_turn_relayed_bytes_total{direction=to_peer}": 0,
	}
	for k, v := range want {
		if got, ok := values[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	for _, r := range reasons {
		if _, ok := values["banyan_turn_refusals_total{reason="+string(r)+"}"]; !ok {
			t.Errorf("no refusal series for %s", r)
		}
	}
	// A second server on the same registry is a clear error, not a panic.
	if s2, err := New(Config{UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", Secret: testSecret, Logger: quietLogger(), Registerer: reg}); err == nil {
		_ = s2.Close()
		t.Fatal("duplicate registration accepted")
	}
}

func TestRefusalLogRateLimited(t *testing.T) {
	var buf logbuf.Buffer
	s := newTestServer(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&buf, nil)) })
	user, pass := Credentials(testSecret, "peer-flood", -time.Hour, time.Now())
	for range 10 {
		if _, err := newUDPClient(t, s, user, pass).Allocate(); err == nil {
			t.Fatal("expired Allocate succeeded")
		}
	}
	if n := s.Stats().Refusals[ReasonExpired]; n != 10 {
		t.Fatalf("expired refusals = %d, want 10", n)
	}
	if n := strings.Count(buf.String(), "credential expired"); n != 1 {
		t.Fatalf("%d log lines for 10 expired credentials, want 1:\n%s", n, buf.String())
	}
}

func TestRateLog(t *testing.T) {
	var buf logbuf.Buffer
	r := newRateLog(slog.New(slog.NewTextHandler(&buf, nil)), 50*time.Millisecond)
	for range 100 {
		r.logf("a", slog.LevelInfo, "line a")
		r.logf("b", slog.LevelInfo, "line b")
	}
	time.Sleep(60 * time.Millisecond)
	r.logf("a", slog.LevelInfo, "line a")
	out := buf.String()
	if strings.Count(out, "line a") != 2 || strings.Count(out, "line b") != 1 || !strings.Contains(out, "suppressed=99") {
		t.Fatalf("unexpected log:\n%s", out)
	}
	for i := range 2 * maxRateLogKeys {
		r.logf(string(rune(0x100+i)), slog.LevelInfo, "many keys")
	}
	if len(r.keys) > maxRateLogKeys+1 {
		t.Fatalf("%d keys kept, want <= %d", len(r.keys), maxRateLogKeys+1)
	}
}

func TestClose(t *testing.T) {
	s, err := New(Config{UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", Secret: testSecret, Logger: quietLogger(), AllowLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	user, pass := goodCreds("peer-close")
	if _, err := newUDPClient(t, s, user, pass).Allocate(); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", s.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := newClient(t, turn.NewSTUNConn(conn), s.TCPAddr(), user, pass).Allocate(); err != nil {
		t.Fatal(err)
	}
	// An idle TCP client that never speaks.
	idle, err := net.Dial("tcp", s.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	eventually(t, "two allocations", func() bool { return s.Stats().ActiveAllocations == 2 })

	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v", d)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if st := s.Stats(); st.ActiveAllocations != 0 || s.turn.AllocationCount() != 0 || s.inflight.Load() != 0 {
		t.Fatalf("after Close: active %d, pion %d, in flight %d", st.ActiveAllocations, s.turn.AllocationCount(), s.inflight.Load())
	}
	_ = idle.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := idle.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("idle TCP client not disconnected: %v", err)
	}
	if c, err := net.DialTimeout("tcp", s.TCPAddr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("TCP listener still accepting")
	}
}

// TestHostileInput throws garbage at every listener and checks that the server keeps
// serving and does not keep garbage TCP connections open.
func TestHostileInput(t *testing.T) {
	s := newTestServer(t, nil)
	seed := [32]byte{1}
	src := mrand.NewChaCha8(seed)
	rng := mrand.New(src)
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	for i := range 300 {
		p := make([]byte, rng.IntN(1800))
		_, _ = src.Read(p)
		if i%3 == 0 && len(p) >= 20 {
			// A STUN-looking header (magic cookie) with garbage attributes.
			p[0], p[1] = 0x00, 0x03
			binary.BigEndian.PutUint16(p[2:], uint16(len(p)-20))
			binary.BigEndian.PutUint32(p[4:], stunMagicCookie)
		}
		_, _ = udp.WriteTo(p, s.UDPAddr())
	}
	var tcps []net.Conn
	for i := range 10 {
		c, err := net.Dial("tcp", s.TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if i%2 == 0 {
			// A STUN header announcing 64 KiB, then nothing: the read deadline must end it.
			h := make([]byte, 20)
			binary.BigEndian.PutUint16(h[2:], 0xfffc)
			binary.BigEndian.PutUint32(h[4:], stunMagicCookie)
			_, _ = c.Write(h)
		} else {
			junk := make([]byte, 100)
			_, _ = src.Read(junk)
			junk[0] = 0xff // neither STUN nor ChannelData: pion drops the connection
			_, _ = c.Write(junk)
		}
		tcps = append(tcps, c)
	}
	echo := startPeer(t, true)
	user, pass := goodCreds("peer-after-garbage")
	relay, err := newUDPClient(t, s, user, pass).Allocate()
	if err != nil {
		t.Fatalf("Allocate after garbage: %v", err)
	}
	defer relay.Close()
	if err := roundTrip(t, relay, echo.addr(), []byte("still fine")); err != nil {
		t.Fatal(err)
	}
	for i, c := range tcps {
		if i%2 == 0 {
			continue // these wait for firstReadTimeout; too slow for a unit test
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("garbage TCP connection %d not closed: %v", i, err)
		}
	}
}

// --- raw STUN client ---

type xorPeer struct {
	IP   net.IP
	Port int
}

func (p xorPeer) AddTo(m *stun.Message) error {
	return stun.XORMappedAddress{IP: p.IP, Port: p.Port}.AddToAs(m, stun.AttrXORPeerAddress)
}

type rawClient struct {
	conn       net.PacketConn
	server     net.Addr
	user, pass string
	realm      stun.Realm
	nonce      stun.Nonce
}

func newRawClient(t *testing.T, server net.Addr, user, pass string) *rawClient {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })

	return &rawClient{conn: conn, server: server, user: user, pass: pass}
}

// do sends an authenticated request (once a nonce is known) and returns the response.
func (r *rawClient) do(t *testing.T, typ stun.MessageType, attrs ...stun.Setter) *stun.Message {
	t.Helper()
	setters := append([]stun.Setter{stun.TransactionID, typ}, attrs...)
	if r.nonce != nil {
		setters = append(setters, stun.NewUsername(r.user), r.realm, r.nonce,
			stun.NewLongTermIntegrity(r.user, r.realm.String(), r.pass))
	}
	setters = append(setters, stun.Fingerprint)
	req, err := stun.Build(setters...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.conn.WriteTo(req.Raw, r.server); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	_ = r.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		n, _, err := r.conn.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no response to %v: %v", typ, err)
		}
		res := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if res.Decode() == nil && res.TransactionID == req.TransactionID {
			return res
		}
	}
}

func (r *rawClient) allocate(t *testing.T) {
	t.Helper()
	typ := stun.NewType(stun.MethodAllocate, stun.ClassRequest)
	udp := stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}
	res := r.do(t, typ, udp)
	if err := r.nonce.GetFrom(res); err != nil {
		t.Fatalf("no nonce in %v", res)
	}
	if err := r.realm.GetFrom(res); err != nil {
		t.Fatalf("no realm in %v", res)
	}
	res = r.do(t, typ, udp)
	if res.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("Allocate: %v", res)
	}
}

// writeTestCert writes a self-signed ECDSA certificate for 127.0.0.1.
func writeTestCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "banyan test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)

	return certFile, keyFile, pool
}
