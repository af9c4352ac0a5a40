package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/banyan-live/banyan/cluster"
	"github.com/banyan-live/banyan/internal/e2e"
	"github.com/banyan-live/banyan/internal/etcdtest"
	"github.com/banyan-live/banyan/protocol"
)

// roleProc is a `banyan tracker` or `banyan seeder` process.
type roleProc struct {
	cmd    *exec.Cmd
	banner string
	stderr *syncBuffer
	done   chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startRole runs banyan with args and waits for a banner line matching last.
func startRole(t *testing.T, last *regexp.Regexp, args ...string) *roleProc {
	t.Helper()
	cmd := exec.Command(banyanBin, args...)
	cmd.Env = cleanEnv()
	stdout, _ := cmd.StdoutPipe()
	p := &roleProc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	var banner strings.Builder
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("banyan %s exited early: %s", args[0], p.stderr)
			}
			banner.WriteString(l + "\n")
			if last.MatchString(l) {
				p.banner = banner.String()
				go func() {
					for range lines {
					}
				}()
				return p
			}
		case <-deadline:
			t.Fatalf("no banner from banyan %s; stderr: %s", args[0], p.stderr)
		}
	}
}

func (p *roleProc) find(t *testing.T, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(p.banner)
	if m == nil {
		t.Fatalf("%q not in banner:\n%s", re, p.banner)
	}
	return m[1]
}

// stop sends SIGTERM and wants a clean exit.
func (p *roleProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("banyan %s did not stop on SIGTERM", p.cmd.Args[1])
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("banyan %s exited %d: %s", p.cmd.Args[1], code, p.stderr)
	}
}

// welcome joins the tracker as a silent viewer and returns the welcome
// once the stream is live.
func liveWelcome(t *testing.T, trackerWS, stream string) protocol.Welcome {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, _, err := websocket.Dial(ctx, trackerWS, nil)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		b, _ := protocol.Encode(protocol.Join{Stream: stream, Kind: protocol.KindNative, NoUpload: true})
		conn.Write(ctx, websocket.MessageText, b)
		var w protocol.Welcome
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				break
			}
			if m, err := protocol.Decode(data); err == nil {
				if ww, ok := m.(protocol.Welcome); ok {
					w = ww
					break
				}
			}
		}
		conn.CloseNow()
		cancel()
		if w.Live {
			return w
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("stream %s not live at the tracker within 30 s", stream)
	return protocol.Welcome{}
}

type ingestAnswer struct {
	RTMPURL string `json:"rtmp_url"`
	WHIPURL string `json:"whip_url"`
	Region  string `json:"region"`
	Seeder  string `json:"seeder"`
}

func askIngest(t *testing.T, base, query string) (int, ingestAnswer) {
	t.Helper()
	code, body := adminDo(t, "GET", base+"/api/ingest?"+query, "", "")
	var a ingestAnswer
	json.Unmarshal(body, &a)
	return code, a
}

// waitIngest polls /api/ingest until want accepts the answer.
func waitIngest(t *testing.T, base, query string, within time.Duration, want func(int, ingestAnswer) bool) (ingestAnswer, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		code, a := askIngest(t, base, query)
		if want(code, a) {
			return a, time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("/api/ingest?%s: %d %+v after %v", query, code, a, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestClusterTrackerSeederProcesses: an etcd, a tracker and two seeders
// (regions eu and us), each its own process on loopback. /api/ingest
// picks by region; a key created through the tracker's admin API
// publishes on the chosen seeder (which checks keys in etcd and registers
// with the tracker over the network with its own id); the tracker's
// welcome names that seeder's origin and /api/ingest keeps answering it
// for the stream, whatever the region; a native peer joining through the
// tracker plays from the seeder's root peer; a revoke through the tracker
// ends the publish on the seeder; a seeder killed with SIGKILL leaves
// /api/ingest within its lease; the rest stop cleanly.
func TestClusterTrackerSeederProcesses(t *testing.T) {
	ffmpeg := e2e.Require(t, "ffmpeg")
	etcd := etcdtest.Start(t, etcdtest.Embedded)
	tr := startRole(t, regexp.MustCompile(`Dashboard:`), "tracker", "--etcd", etcd.Endpoint, "--http", "127.0.0.1:0")
	token := tr.find(t, `Admin token.*\n\s+(\S+)`)
	trackerHost := tr.find(t, `Signaling:\s+ws://(\S+)/ws`)
	trackerWS := "ws://" + trackerHost + "/ws"
	base := "http://" + trackerHost

	code, body := adminDo(t, "POST", base+"/api/streams", token, `{"name":"demo"}`, "Content-Type", "application/json")
	if code != 201 && code != 200 {
		t.Fatalf("create stream through the tracker: %d %s", code, body)
	}
	var created struct{ Key string }
	json.Unmarshal(body, &created)

	const lease = 2 * time.Second
	seeder := func(id, region string) *roleProc {
		return startRole(t, regexp.MustCompile(`Tracker:`), "seeder", "--etcd", etcd.Endpoint, "--http", "127.0.0.1:0",
			"--rtmp", "127.0.0.1:0", "--tracker", trackerWS, "--id", id, "--region", region, "--ice-loopback", "--lease", lease.String())
	}
	eu, us := seeder("eu1", "eu"), seeder("us1", "us")
	rtmpURL := us.find(t, `RTMP:\s+(\S+)`)
	origin := us.find(t, `Origin:\s+(\S+)`)
	if strings.Contains(origin, trackerHost) {
		t.Fatalf("seeder origin %s is the tracker's host", origin)
	}
	ing, _ := waitIngest(t, base, "stream=demo&region=us", 10*time.Second, func(c int, a ingestAnswer) bool { return c == 200 && a.Seeder == "us1" })
	if ing.RTMPURL != rtmpURL || ing.WHIPURL != origin+"/whip/" || ing.Region != "us" {
		t.Errorf("/api/ingest for us: %+v, want us1's %s", ing, rtmpURL)
	}
	waitIngest(t, base, "stream=demo&region=eu", 5*time.Second, func(c int, a ingestAnswer) bool { return c == 200 && a.Seeder == "eu1" })
	if out, errb, code := cli(t, "ingest", "demo", "--server", base, "--region", "us"); code != 0 ||
		!strings.Contains(out, "OBS Server:  "+rtmpURL) || !strings.Contains(out, "WHIP URL:    "+origin+"/whip/demo") || !strings.Contains(out, "us1 (region us)") {
		t.Errorf("banyan ingest demo --region us: %d %q %s", code, out, errb)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ff := publish(ctx, ffmpeg, strings.Replace(rtmpURL, "localhost", "127.0.0.1", 1)+"/"+created.Key, 60)
	var ffErr bytes.Buffer
	ff.Stderr = &ffErr
	if err := ff.Start(); err != nil {
		t.Fatal(err)
	}
	ffDone := make(chan struct{})
	go func() { ff.Wait(); close(ffDone) }()
	t.Cleanup(func() { ff.Process.Kill(); <-ffDone })

	w := liveWelcome(t, trackerWS, "demo")
	if w.OriginURL != origin {
		t.Errorf("welcome names origin %q, want the seeder's %q", w.OriginURL, origin)
	}
	// The stream stays where it is live, whatever region asks.
	waitIngest(t, base, "stream=demo&region=eu", 5*time.Second, func(c int, a ingestAnswer) bool { return c == 200 && a.Seeder == "us1" })

	peer := startPeer(t, base, "--duration", "8s")
	s := peer.summary(t)
	if s.ChunksPlayed < 16 || s.BadChunks != 0 || s.BytesP2P == 0 {
		t.Errorf("peer through the tracker: %+v (want ≥ 16 chunks played, none bad, bytes from the seeder's root peer); ffmpeg: %s", s, ffErr.String())
	}
	t.Logf("figures: peer played %d chunks, first after %d ms; p2p %d B, origin %d B", s.ChunksPlayed, s.FirstChunkMS, s.BytesP2P, s.BytesOrigin)

	// A revoke through the tracker ends the publish on the seeder.
	revoked := time.Now()
	if code, body := adminDo(t, "DELETE", base+"/api/streams/demo", token, ""); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	select {
	case <-ffDone:
		t.Logf("figures: publish on the seeder ended %v after the revoke through the tracker", time.Since(revoked).Round(10*time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("publish on the seeder still running 10 s after the revoke")
	}

	// SIGKILL: the seeder leaves the stream manager when its lease expires.
	eu.cmd.Process.Kill()
	<-eu.done
	_, gone := waitIngest(t, base, "stream=other&region=eu", lease+5*time.Second, func(c int, a ingestAnswer) bool { return c == 200 && a.Seeder == "us1" })
	t.Logf("figures: killed seeder left /api/ingest %v after SIGKILL (lease %v)", gone.Round(10*time.Millisecond), lease)
	// Draining the last seeder leaves the stream manager nowhere to send
	// a new stream.
	usBase := strings.Replace(origin, "localhost", "127.0.0.1", 1)
	if code, body := adminDo(t, "POST", usBase+"/drain", "", ""); code != 401 {
		t.Fatalf("drain without the admin token: %d %s", code, body)
	}
	if code, body := adminDo(t, "POST", usBase+"/drain", token, ""); code != 200 {
		t.Fatalf("drain: %d %s", code, body)
	}
	waitIngest(t, base, "stream=other", 5*time.Second, func(c int, a ingestAnswer) bool { return c == 503 })

	// banyan key works on the cluster's store directly.
	if out, errb, code := cli(t, "key", "create", "direct", "--etcd", etcd.Endpoint, "--json"); code != 0 || !strings.Contains(out, `"key"`) {
		t.Fatalf("banyan key create --etcd: %d %s %s", code, out, errb)
	}
	if code, body := adminDo(t, "GET", base+"/api/streams", token, ""); code != 200 || !strings.Contains(string(body), `"direct"`) {
		t.Fatalf("the tracker does not list the stream made with --etcd: %d %s", code, body)
	}
	us.stop(t)
	tr.stop(t)
}

// TestClusterTrackerSharding: two trackers share the streams by
// rendezvous hashing. A seeder and a native peer that name only the
// tracker that does not own the stream are moved (in-band) to the owner
// and play; when the owner is killed with SIGKILL, its lease expires, the
// other tracker claims the stream, and the seeder and the peer re-home
// there and play on.
func TestClusterTrackerSharding(t *testing.T) {
	ffmpeg := e2e.Require(t, "ffmpeg")
	etcd := etcdtest.Start(t, etcdtest.Embedded)
	const lease = 2 * time.Second
	ownerID := cluster.Rendezvous("demo", []string{"ta", "tb"})
	otherID := map[string]string{"ta": "tb", "tb": "ta"}[ownerID]
	trackerProc := func(id string) (*roleProc, string) {
		p := startRole(t, regexp.MustCompile(`Dashboard:`), "tracker", "--etcd", etcd.Endpoint, "--http", "127.0.0.1:0",
			"--id", id, "--lease", lease.String(), "--public-host", "127.0.0.1")
		return p, p.find(t, `Signaling:\s+ws://(\S+)/ws`)
	}
	owner, ownerHost := trackerProc(ownerID)
	token := owner.find(t, `Admin token.*\n\s+(\S+)`)
	other, otherHost := trackerProc(otherID)
	ownerWS, otherWS := "ws://"+ownerHost+"/ws", "ws://"+otherHost+"/ws"

	// Keys through either tracker: the store is shared.
	code, body := adminDo(t, "POST", "http://"+otherHost+"/api/streams", token, `{"name":"demo"}`, "Content-Type", "application/json")
	if code != 201 && code != 200 {
		t.Fatalf("create stream through the non-owner: %d %s", code, body)
	}
	var created struct{ Key string }
	json.Unmarshal(body, &created)

	// A viewer at the non-owner is told where the stream lives.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, otherWS, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := protocol.Encode(protocol.Join{Stream: "demo", Kind: protocol.KindNative, NoUpload: true})
	conn.Write(ctx, websocket.MessageText, b)
	_, data, err := conn.Read(ctx)
	conn.CloseNow()
	if m, derr := protocol.Decode(data); err != nil || derr != nil || m != (protocol.Moved{URL: ownerWS}) {
		t.Fatalf("join at the non-owner: %v %s, want moved to %s", err, data, ownerWS)
	}

	sd := startRole(t, regexp.MustCompile(`Tracker:`), "seeder", "--etcd", etcd.Endpoint, "--http", "127.0.0.1:0",
		"--rtmp", "127.0.0.1:0", "--tracker", otherWS, "--id", "s1", "--ice-loopback", "--lease", lease.String())
	rtmpURL := sd.find(t, `RTMP:\s+(\S+)`)
	ff := publish(ctx, ffmpeg, strings.Replace(rtmpURL, "localhost", "127.0.0.1", 1)+"/"+created.Key, 60)
	if err := ff.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ff.Process.Kill(); ff.Wait() })
	liveWelcome(t, ownerWS, "demo") // the seeder followed the move

	peer := startPeer(t, "http://"+otherHost, "--duration", "16s")
	// A Chromium viewer opens the non-owner's watch page: it is moved to
	// the owner (the page's CSP allows the cluster's trackers and seeder
	// origins) and plays. Not in -short mode, which builds no wasm.
	var viewer context.Context
	if !testing.Short() {
		viewer = openViewer(t, browser(t, ctx), "http://"+otherHost+"/watch/demo")
		live := waitViewer(t, viewer, "browser live through the non-owner", 30*time.Second, func(p viewerProbe) bool { return p.State == "live" && p.Time > 0 })
		waitViewer(t, viewer, "browser 2 s of playback", 15*time.Second, func(p viewerProbe) bool { return p.Time >= live.Time+2 })
	}
	time.Sleep(5 * time.Second)
	owner.cmd.Process.Kill()
	<-owner.done
	killed := time.Now()
	liveWelcome(t, otherWS, "demo") // the other tracker owns it now, and the seeder is back
	rehomed := time.Since(killed)
	if rehomed > lease+5*time.Second {
		t.Errorf("stream live at the other tracker %v after the owner's death, want within lease + 5 s", rehomed)
	}
	if viewer != nil {
		// The browser re-homes too, through its page's tracker.
		before := probe(t, viewer).Time
		waitViewer(t, viewer, "browser playing on after the owner's death", 30*time.Second, func(p viewerProbe) bool { return p.State == "live" && p.Time >= before+3 })
	}
	s := peer.summary(t)
	// The 5 s before the kill make about 20 chunks: 30 or more means it
	// played on after re-homing (before the root peer's init fix it
	// stopped at the kill).
	if s.ChunksPlayed < 30 || s.BadChunks != 0 {
		t.Errorf("peer across the owner's death: %+v (want ≥ 30 chunks: it re-homed and played on)", s)
	}
	t.Logf("figures: stream live again at the other tracker %v after SIGKILL of its owner (lease %v); peer played %d chunks in 16 s",
		rehomed.Round(10*time.Millisecond), lease, s.ChunksPlayed)
	stopAt := time.Now()
	sd.stop(t)
	other.stop(t)
	t.Logf("roles stopped in %v", time.Since(stopAt).Round(10*time.Millisecond))
}
