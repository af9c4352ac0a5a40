package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"

	"github.com/banyan-live/banyan/protocol"
	"github.com/banyan-live/banyan/store"
	"github.com/banyan-live/banyan/turnserver"
)

// h264Offer is a real WHIP offer (pion, one send-only H.264 video
// section, no candidates: the server accepts trickle).
func h264Offer(t *testing.T) string {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	tr, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, "video", "pub")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return offer.SDP
}

// createStream makes a stream through the admin API and returns its key.
func createStream(t *testing.T, base, token, name string) string {
	t.Helper()
	code, b := adminDo(t, "POST", base+"/api/streams", token, fmt.Sprintf(`{"name":%q}`, name))
	var cs struct{ Key string }
	if code != 201 || json.Unmarshal(b, &cs) != nil || cs.Key == "" {
		t.Fatalf("create %s: %d %s", name, code, b)
	}
	return cs.Key
}

// TestRevokedKeyCannotStartWHIP (issue 18 #1): a WHIP POST is authorized
// on its headers, then its body may take up to the HTTP read timeout. A
// key revoked (or rotated) while the offer is still arriving must not
// start a publish when the offer is complete: the seeder re-checks the
// key generation as the publish starts. Before the fix the POST got 201
// and the stream went live on a revoked key, with nothing left to kick it.
func TestRevokedKeyCannotStartWHIP(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	up := startUp(t, data, "--ice-loopback")
	token, err := store.ReadAdminTokenFile(data)
	if err != nil {
		t.Fatal(err)
	}
	offer := h264Offer(t)
	for _, tc := range []struct {
		name   string
		change func(stream string) // while the offer trickles in
	}{
		{"control", func(string) {}},
		{"revoke", func(s string) {
			if code, b := adminDo(t, "DELETE", up.base+"/api/streams/"+s, token, ""); code != 200 {
				t.Fatalf("revoke: %d %s", code, b)
			}
		}},
		{"rotate", func(s string) {
			if code, b := adminDo(t, "POST", up.base+"/api/streams/"+s+"/key", token, ""); code != 200 {
				t.Fatalf("rotate: %d %s", code, b)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := "whip-" + tc.name
			key := createStream(t, up.base, token, stream)
			pr, pw := io.Pipe()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, "POST", up.base+"/whip/"+stream, pr)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Content-Type", "application/sdp")
			type result struct {
				code int
				body string
				err  error
			}
			res := make(chan result, 1)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					res <- result{err: err}
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				res <- result{code: resp.StatusCode, body: string(b)}
			}()
			half := len(offer) / 2
			if _, err := io.WriteString(pw, offer[:half]); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond) // the key check is done: the server is reading the body
			tc.change(stream)
			if _, err := io.WriteString(pw, offer[half:]); err != nil {
				t.Fatal(err)
			}
			pw.Close()
			r := <-res
			if r.err != nil {
				t.Fatal(r.err)
			}
			if tc.name == "control" {
				if r.code != http.StatusCreated {
					t.Fatalf("control publish: %d %s", r.code, r.body)
				}
				return
			}
			if r.code == http.StatusCreated {
				t.Fatalf("%s during the offer: the publish started anyway (201)", tc.name)
			}
			if !strings.Contains(r.body, "revoked") {
				t.Errorf("%s: answer %d %q does not say why", tc.name, r.code, strings.TrimSpace(r.body))
			}
			t.Logf("figures: key %s while the offer arrived: %d %s", tc.name, r.code, strings.TrimSpace(r.body))
		})
	}
	up.stop(t, syscall.SIGTERM)
}

// joinDemo joins stream on the tracker as a viewer and returns its welcome.
func joinDemo(t *testing.T, base, stream string) (protocol.Welcome, *websocket.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	b, err := protocol.Encode(protocol.Join{Stream: stream, Kind: protocol.KindNative})
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("no welcome: %v", err)
		}
		m, err := protocol.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		if w, ok := m.(protocol.Welcome); ok {
			return w, ws
		}
	}
}

// turnCreds picks the TURN-over-UDP server and its credentials from a welcome.
func turnCreds(t *testing.T, w protocol.Welcome) (addr, user, pass string) {
	t.Helper()
	for _, is := range w.ICEServers {
		for _, u := range is.URLs {
			if rest, ok := strings.CutPrefix(u, "turn:"); ok && strings.HasSuffix(rest, "?transport=udp") {
				return strings.TrimSuffix(rest, "?transport=udp"), is.Username, is.Credential
			}
		}
	}
	t.Fatalf("no TURN server in the welcome: %+v", w.ICEServers)
	return
}

// relayTo allocates on the TURN server with the credentials and sends one
// datagram through the relay to peer; it returns the error of that send
// (a refused permission is a 403 there).
func relayTo(t *testing.T, addr, user, pass string, peer net.Addr) error {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: addr, TURNServerAddr: addr, Conn: conn,
		Username: user, Password: pass, Realm: "banyan", RTO: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { c.Close(); conn.Close() }()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := c.Allocate()
	if err != nil {
		return fmt.Errorf("allocate: %w", err)
	}
	defer relay.Close()
	_, err = relay.WriteTo([]byte("hello loopback"), peer)
	return err
}

// TestUpTURNLoopback (issue 18 #3): `banyan up` hands every viewer TURN
// credentials; by default they must not reach services on the server's
// own loopback. Only --ice-loopback (tests, single-machine demos) lets the
// relay send to 127.0.0.1. Before the fix loopback was always allowed and
// the default row delivered the datagram.
func TestUpTURNLoopback(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		allowed bool
	}{
		{"default", nil, false},
		{"ice-loopback", []string{"--ice-loopback"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := startUp(t, t.TempDir(), tc.args...)
			sink, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer sink.Close()
			w, _ := joinDemo(t, up.base, "demo")
			addr, user, pass := turnCreds(t, w)
			err = relayTo(t, addr, user, pass, sink.LocalAddr())
			got := make(chan bool, 1)
			go func() {
				sink.SetReadDeadline(time.Now().Add(time.Second))
				_, _, err := sink.ReadFrom(make([]byte, 100))
				got <- err == nil
			}()
			delivered := <-got
			if tc.allowed && (err != nil || !delivered) {
				t.Fatalf("with --ice-loopback: send %v, delivered %v", err, delivered)
			}
			if !tc.allowed && (err == nil || delivered) {
				t.Fatalf("default: relaying to 127.0.0.1 allowed (send err %v, delivered %v)", err, delivered)
			}
			t.Logf("figures: %s: send to %s through TURN: err=%v delivered=%v", tc.name, sink.LocalAddr(), err, delivered)
			up.stop(t, syscall.SIGTERM)
		})
	}
}

// TestMetricsNeedToken (issue 18 #10): /metrics names every stream,
// private ones included, so on the public HTTP port it needs the admin
// token or --metrics-token; --metrics serves it without a token on a
// separate address meant for a private interface. Before the fix the
// "no token" row got 200.
func TestMetricsNeedToken(t *testing.T) {
	ports := freePorts(t, 1)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	up := startUp(t, t.TempDir(), "--metrics-token", "scrape-secret", "--metrics", metricsAddr)
	admin := up.adminToken(t)
	for _, tc := range []struct {
		name, url, token string
		want             int
	}{
		{"no token", up.base + "/metrics", "", 401},
		{"wrong token", up.base + "/metrics", "nope", 401},
		{"too long a token", up.base + "/metrics", strings.Repeat("x", 1000), 401},
		{"admin token", up.base + "/metrics", admin, 200},
		{"metrics token", up.base + "/metrics", "scrape-secret", 200},
		{"separate listener", "http://" + metricsAddr + "/metrics", "", 200},
		{"separate listener serves nothing else", "http://" + metricsAddr + "/api/streams", admin, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := adminDo(t, "GET", tc.url, tc.token, "")
			if code != tc.want {
				t.Fatalf("GET %s: %d, want %d", tc.url, code, tc.want)
			}
			if code == 200 && !strings.Contains(string(b), "banyan_streams") {
				t.Fatalf("not the exposition: %.200s", b)
			}
		})
	}
	up.stop(t, syscall.SIGTERM)
}

// TestProductionSwitches (issue 18 #12): --demo=false starts with no demo
// stream and no demo key file; the TURN secret comes from a file or the
// environment instead of the command line (the credentials in a welcome
// verify with it); giving a secret twice or an empty file is a one-line
// error. The admin token is printed on the first start only
// (TestUpServesAndStopsCleanly checks the second start). Before the fix
// --demo and --turn-secret-file did not exist.
func TestProductionSwitches(t *testing.T) {
	tmp := t.TempDir()
	secretFile := filepath.Join(tmp, "turn.secret")
	if err := os.WriteFile(secretFile, []byte("file-secret-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(tmp, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("demo off", func(t *testing.T) {
		data := filepath.Join(tmp, "nodemo")
		up := startUp(t, data, "--demo=false")
		if strings.Contains(up.banner, "Stream Key") || strings.Contains(up.banner, "/watch/demo") {
			t.Fatalf("banner shows a demo stream:\n%s", up.banner)
		}
		if !strings.Contains(up.banner, "Admin token (shown once") {
			t.Fatalf("first start without the admin token:\n%s", up.banner)
		}
		if _, err := os.Stat(filepath.Join(data, "demo-stream.key")); !os.IsNotExist(err) {
			t.Fatalf("demo-stream.key: %v, want none", err)
		}
		code, b := adminDo(t, "GET", up.base+"/api/streams", up.adminToken(t), "")
		if code != 200 || strings.Contains(string(b), `"demo"`) {
			t.Fatalf("streams: %d %s", code, b)
		}
		up.stop(t, syscall.SIGTERM)
	})
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"secret file", nil, []string{"--turn-secret-file", secretFile}, "file-secret-0123456789abcdef"},
		{"secret env", []string{"BANYAN_TURN_SECRET=env-secret-0123456789abcdef"}, nil, "env-secret-0123456789abcdef"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := startUpEnv(t, t.TempDir(), tc.env, tc.args...)
			w, _ := joinDemo(t, up.base, "demo")
			_, user, pass := turnCreds(t, w)
			if turnserver.Password([]byte(tc.want), user) != pass {
				t.Fatalf("TURN credential not minted with the %s", tc.name)
			}
			up.stop(t, syscall.SIGTERM)
		})
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"secret twice", []string{"--turn-secret", "x", "--turn-secret-file", secretFile}, 2, "both given"},
		{"empty secret file", []string{"--turn-secret-file", empty}, 1, "is empty"},
		{"missing secret file", []string{"--turn-secret-file", filepath.Join(tmp, "nope")}, 1, "no such file"},
		{"metrics token twice", []string{"--metrics-token", "x", "--metrics-token-file", secretFile}, 2, "both given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"up", "--data", filepath.Join(tmp, "bad"), "--http", "127.0.0.1:0"}, tc.args...)
			_, stderr, code := cli(t, args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
				t.Fatalf("exit %d stderr %q; want exit %d, one line containing %q", code, stderr, tc.code, tc.want)
			}
		})
	}
}

// TestUpTURNCredentialsFollowSession (issue 18 #6): a viewer's TURN
// credential is short-lived (--turn-credential-ttl), the tracker sends a
// fresh one while the viewer stays, an expired one keeps working only
// while its session lives, and peer ids (the TURN user) never repeat
// across a restart. Before the fix credentials lived 12 h whatever the
// session did and ids restarted at 1.
func TestUpTURNCredentialsFollowSession(t *testing.T) {
	data := t.TempDir()
	up := startUp(t, data, "--ice-loopback", "--turn-credential-ttl", "2s")
	sink, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	w, ws := joinDemo(t, up.base, "demo")
	addr, user, pass := turnCreds(t, w)
	expiry, _, err := turnserver.ParseUsername(user)
	if err != nil {
		t.Fatal(err)
	}
	if ttl := time.Until(expiry); ttl > 5*time.Second {
		t.Fatalf("credential lives %v, want about 2 s", ttl)
	}
	// A fresh credential arrives over the websocket within the TTL.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var fresh string
	for fresh == "" {
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("no ICE refresh: %v", err)
		}
		if m, err := protocol.Decode(b); err == nil {
			if ice, ok := m.(protocol.ICE); ok && len(ice.ICEServers) > 1 {
				fresh = ice.ICEServers[1].Username
			}
		}
	}
	if fresh == user {
		t.Fatal("the refresh repeated the welcome's credential")
	}
	time.Sleep(time.Until(expiry) + 1500*time.Millisecond)
	if err := relayTo(t, addr, user, pass, sink.LocalAddr()); err != nil {
		t.Fatalf("expired credential of a joined viewer refused: %v", err)
	}
	ws.Close(websocket.StatusNormalClosure, "bye")
	time.Sleep(300 * time.Millisecond)
	if err := relayTo(t, addr, user, pass, sink.LocalAddr()); err == nil {
		t.Fatal("expired credential still works after the session ended")
	}
	up.stop(t, syscall.SIGTERM)

	up2 := startUp(t, data, "--ice-loopback")
	w2, _ := joinDemo(t, up2.base, "demo")
	if w2.Peer <= w.Peer {
		t.Fatalf("peer id %d after a restart, %d before: ids repeat", w2.Peer, w.Peer)
	}
	t.Logf("figures: welcome credential TTL about 2 s, refreshed over the websocket; peer id %d, after a restart %d", w.Peer, w2.Peer)
	up2.stop(t, syscall.SIGTERM)
}

// TestHomePageLinksOpen: every same-site link on the home page opens
// without a token (the dashboard answers its login form, 401 with a
// form, which is a page a person can use; everything else 200). Before
// the fix the page linked /metrics, which answers a bare 401 since
// /metrics needs a token (issue 18 #10).
func TestHomePageLinksOpen(t *testing.T) {
	up := startUp(t, t.TempDir())
	code, page := adminDo(t, "GET", up.base+"/", "", "")
	if code != 200 {
		t.Fatalf("GET /: %d", code)
	}
	links := regexp.MustCompile(`href="(/[^"]*)"`).FindAllStringSubmatch(string(page), -1)
	if len(links) < 3 {
		t.Fatalf("only %d links on the home page", len(links))
	}
	for _, l := range links {
		path := l[1]
		code, b := adminDo(t, "GET", up.base+path, "", "")
		switch {
		case path == "/dashboard" && code == 401 && strings.Contains(string(b), `action="/dashboard/login"`):
		case code == 200:
		default:
			t.Errorf("home page links %s, which answers %d without a token", path, code)
		}
	}
	up.stop(t, syscall.SIGTERM)
}
