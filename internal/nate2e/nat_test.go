package nate2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/banyan-live/banyan/internal/e2e"
	"github.com/banyan-live/banyan/internal/logbuf"
)

// binDir holds the banyan binary, built once the test knows it can run.
var binDir string

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	flag.Parse()
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildBanyan builds the real binary (after the skip checks, so that a
// machine that cannot run the test does not pay for the build).
func buildBanyan(t *testing.T) string {
	t.Helper()
	if binDir != "" { // built by an earlier test of this run
		return filepath.Join(binDir, "banyan")
	}
	dir, err := os.MkdirTemp("", "banyan-nate2e-")
	if err != nil {
		t.Fatal(err)
	}
	binDir = dir
	bin := filepath.Join(dir, "banyan")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/banyan-live/banyan/cmd/banyan").CombinedOutput()
	if err != nil {
		t.Fatalf("build banyan: %v\n%s", err, out)
	}
	return bin
}

// The lab's addresses. They exist only inside the test's namespaces.
const (
	pubIP    = "10.231.0.1" // the "internet" host: tracker, seeder, TURN
	httpAddr = pubIP + ":8080"
	stream   = "demo"
)

// natIP is router i's address on the internet side; hostIP is host i's
// private address behind it, gwIP the router's address on that side.
func natIP(i int) string  { return fmt.Sprintf("10.231.0.%d", 1+i) }
func gwIP(i int) string   { return fmt.Sprintf("10.231.%d.1", i) }
func hostIP(i int) string { return fmt.Sprintf("10.231.%d.2", i) }

// lab is a set of network namespaces: pub (a bridge, the internet), nat1
// and nat2 (routers with a wan port on the bridge and a lan port), h1 and
// h2 (one host behind each router).
type lab struct {
	t  *testing.T
	ns map[string]string // role -> namespace name
}

// run runs a command with a 10 s bound and returns its combined output.
func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// notPossible skips (or, under BANYAN_E2E=1, fails) when the machine cannot
// host the lab.
func notPossible(t *testing.T, why string, err error) {
	t.Helper()
	if os.Getenv("BANYAN_E2E") == "1" {
		t.Fatalf("%s (BANYAN_E2E=1): %v", why, err)
	}
	t.Skipf("skipping: %s: %v", why, err)
}

// newLab makes the namespaces and links; t.Cleanup deletes them (which
// removes their interfaces and netfilter rules with them) even on failure.
func newLab(t *testing.T) *lab {
	l := &lab{t: t, ns: map[string]string{}}
	removeStale()
	for _, role := range []string{"pub", "nat1", "nat2", "h1", "h2"} {
		name := fmt.Sprintf("banyan-nat%d-%s", os.Getpid(), role)
		if _, err := run("ip", "netns", "add", name); err != nil {
			notPossible(t, "cannot create a network namespace (needs root or CAP_NET_ADMIN)", err)
		}
		t.Cleanup(func() {
			if _, err := run("ip", "netns", "del", name); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		})
		l.ns[role] = name
		l.ip(role, "link", "set", "lo", "up")
	}
	l.ip("pub", "link", "add", "name", "inet0", "type", "bridge")
	l.ip("pub", "addr", "add", pubIP+"/24", "dev", "inet0")
	l.ip("pub", "link", "set", "inet0", "up")
	for i := 1; i <= 2; i++ {
		nat, h := fmt.Sprintf("nat%d", i), fmt.Sprintf("h%d", i)
		port := fmt.Sprintf("p%d", i)
		// Each veth is made inside a namespace with its peer sent to
		// another: nothing is ever created in the host's namespace.
		l.ip(nat, "link", "add", "name", "wan", "type", "veth", "peer", "name", port, "netns", l.ns["pub"])
		l.ip("pub", "link", "set", port, "master", "inet0", "up")
		l.ip(nat, "addr", "add", natIP(i)+"/24", "dev", "wan")
		l.ip(nat, "link", "set", "wan", "up")
		l.ip(h, "link", "add", "name", "eth0", "type", "veth", "peer", "name", "lan", "netns", l.ns[nat])
		l.ip(nat, "addr", "add", gwIP(i)+"/24", "dev", "lan")
		l.ip(nat, "link", "set", "lan", "up")
		l.ip(h, "addr", "add", hostIP(i)+"/24", "dev", "eth0")
		l.ip(h, "link", "set", "eth0", "up")
		l.ip(h, "route", "add", "default", "via", gwIP(i))
		l.exec(nat, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		// A home router's firewall: out is free, in only as replies.
		l.exec(nat, "iptables", "-A", "FORWARD", "-i", "lan", "-o", "wan", "-j", "ACCEPT")
		l.exec(nat, "iptables", "-A", "FORWARD", "-i", "wan", "-o", "lan", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
		l.exec(nat, "iptables", "-A", "FORWARD", "-j", "DROP")
	}
	return l
}

// staleRE matches the namespaces this test names after its process id.
var staleRE = regexp.MustCompile(`^banyan-nat(\d+)-(pub|nat1|nat2|h1|h2)\b`)

// removeStale deletes namespaces left by runs of this test that were
// killed before their cleanup ran (their process is gone).
func removeStale() {
	out, err := run("ip", "netns", "list")
	if err != nil {
		return
	}
	for _, line := range strings.Split(out, "\n") {
		m := staleRE.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		_, _ = run("ip", "netns", "del", strings.Fields(line)[0])
	}
}

func (l *lab) ip(role string, args ...string) {
	l.t.Helper()
	if _, err := run("ip", append([]string{"-n", l.ns[role]}, args...)...); err != nil {
		l.t.Fatal(err)
	}
}

// exec runs a command inside role's namespace.
func (l *lab) exec(role, name string, args ...string) string {
	l.t.Helper()
	out, err := run("ip", append([]string{"netns", "exec", l.ns[role], name}, args...)...)
	if err != nil {
		l.t.Fatal(err)
	}
	return out
}

// masquerade (re)sets both routers' source NAT: plain MASQUERADE keeps a
// socket's port for every destination (endpoint-independent mapping);
// --random-fully picks a random port for every new flow, like a symmetric
// NAT, so that the address a STUN server sees is useless to a peer.
func (l *lab) masquerade(randomFully bool) {
	l.t.Helper()
	for _, nat := range []string{"nat1", "nat2"} {
		l.exec(nat, "iptables", "-t", "nat", "-F", "POSTROUTING")
		args := []string{"-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"}
		if randomFully {
			args = append(args, "--random-fully")
		}
		if _, err := run("ip", append([]string{"netns", "exec", l.ns[nat], "iptables"}, args...)...); err != nil {
			notPossible(l.t, "iptables cannot NAT in a namespace (nf_nat missing?)", err)
		}
	}
}

// proc is a long-running process inside a namespace.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout *logbuf.Buffer
	stderr *logbuf.Buffer
	done   chan struct{}
	err    error
}

// tail is the end of s, for failure messages.
func tail(s string) string {
	if len(s) > 3000 {
		return "…" + s[len(s)-3000:]
	}
	return s
}

// start runs name in role's namespace (ip netns exec execs it in place, so
// the process is ours to signal); t.Cleanup stops it: SIGTERM, then SIGKILL
// after 5 s.
func (l *lab) start(role, name string, env []string, args ...string) *proc {
	l.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.ns[role], name}, args...)...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with a killed test
	p := &proc{name: role + ":" + filepath.Base(name), cmd: cmd, stdout: &logbuf.Buffer{}, stderr: &logbuf.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	l.t.Cleanup(func() { p.stop(5 * time.Second) })
	return p
}

func (p *proc) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// wait waits up to d for the process to exit.
func (p *proc) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("%s: %v\nstderr: %s", p.name, p.err, tail(p.stderr.String()))
		}
	case <-time.After(d):
		t.Fatalf("%s still running after %v\nstderr: %s", p.name, d, tail(p.stderr.String()))
	}
}

// helperEnvFor is the environment of a helper run of this test binary.
func helperEnvFor(mode string, kv ...string) []string {
	return append(append(os.Environ(), helperEnv+"="+mode), kv...)
}

// cleanEnv is the environment without BANYAN_* settings, so that the
// commands run with the flags the test gives them and nothing else.
func cleanEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "BANYAN_") {
			env = append(env, e)
		}
	}
	return env
}

// lines is a process's stdout, line by line.
type lines struct {
	ch chan string
}

func linesOf(r io.Reader) *lines {
	l := &lines{ch: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l.ch <- sc.Text()
		}
		close(l.ch)
	}()
	return l
}

// next returns the next line with prefix, within d.
func (l *lines) next(t *testing.T, prefix string, d time.Duration) []string {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case s, ok := <-l.ch:
			if !ok {
				t.Fatalf("helper ended before printing %q", prefix)
			}
			if f, ok := strings.CutPrefix(s, prefix+" "); ok {
				return strings.Fields(f)
			}
		case <-deadline:
			t.Fatalf("no %q line in %v", prefix, d)
		}
	}
}

// probe is a "probe" helper in one host's namespace.
type probe struct {
	p   *proc
	in  io.WriteCloser
	out *lines
}

func (l *lab) probe(role string, servers ...string) *probe {
	l.t.Helper()
	self, err := os.Executable()
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", l.ns[role], self)
	cmd.Env = helperEnvFor("probe", stunServers+"="+strings.Join(servers, ","))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	// Through an io.Pipe, not StdoutPipe: Wait then waits for exec's copy,
	// and the reader sees every line however the process ends.
	out, outW := io.Pipe()
	stderr := &logbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = outW, stderr
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	p := &proc{name: role + ":probe", cmd: cmd, stdout: &logbuf.Buffer{}, stderr: stderr, done: make(chan struct{})}
	pr := &probe{p: p, in: in, out: linesOf(out)}
	go func() { p.err = cmd.Wait(); outW.Close(); close(p.done) }()
	l.t.Cleanup(func() { in.Close(); p.stop(time.Second) })
	return pr
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// get fetches url from inside role's namespace.
func (l *lab) get(role, url string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.ns[role], self)
	cmd.Env = helperEnvFor("get", getURL+"="+url)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%v: %s", err, bytes.TrimSpace(errb.Bytes()))
	}
	return out.String(), nil
}

// metric reads one sample from a Prometheus text exposition.
func metric(text, name, labels string) float64 {
	re := regexp.MustCompile("(?m)^" + regexp.QuoteMeta(name+"{"+labels+"}") + ` (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// demoKey waits until `banyan up` (proc up, --data data) answers ready
// (a URL on pub) and returns the demo stream's key.
func (l *lab) demoKey(up *proc, data, ready string) string {
	l.t.Helper()
	for end := time.Now().Add(15 * time.Second); ; {
		if b, err := os.ReadFile(filepath.Join(data, "demo-stream.key")); err == nil {
			if _, err := l.get("pub", ready); err == nil {
				return strings.TrimSpace(string(b))
			}
		}
		if time.Now().After(end) {
			l.t.Fatalf("banyan up did not start: %s", tail(up.stderr.String()))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// broadcast publishes a short, low-bitrate test stream with ffmpeg from
// pub to the demo stream's RTMP ingest.
func (l *lab) broadcast(ffmpeg, key string, seconds int) *proc {
	return l.start("pub", ffmpeg, os.Environ(), "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=15", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", strconv.Itoa(seconds), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-b:v", "300k", "-g", "15",
		"-c:a", "aac", "-b:a", "48k", "-f", "flv", "rtmp://"+pubIP+":1935/live/"+key)
}

// peerSummary is the part of `banyan peer --json` the test reads.
type peerSummary struct {
	Peer         uint64 `json:"peer"`
	Depths       []int  `json:"depths"`
	MaxDepth     int    `json:"max_depth"`
	ChunksPlayed uint64 `json:"chunks_played"`
	FirstChunkMS int64  `json:"first_chunk_ms"`
	Stalls       uint64 `json:"stalls"`
	BadChunks    uint64 `json:"bad_chunks"`
	BytesP2P     uint64 `json:"bytes_p2p"`
	BytesTURN    uint64 `json:"bytes_turn"`
	BytesOrigin  uint64 `json:"bytes_origin"`
	BytesUp      uint64 `json:"bytes_up"`
}

func summaryOf(t *testing.T, p *proc) peerSummary {
	t.Helper()
	var s peerSummary
	if err := json.Unmarshal(bytes.TrimSpace([]byte(p.stdout.String())), &s); err != nil {
		t.Fatalf("%s: summary %q: %v\nstderr: %s", p.name, p.stdout.String(), err, tail(p.stderr.String()))
	}
	return s
}

// TestPeersBehindSymmetricNATsUseTURN is issue 8's NAT test. Two viewers,
// each behind its own NAT that maps every flow to a new port, cannot reach
// each other directly (shown first with a hole-punching probe), and still
// get their chunks from each other through the bundled TURN server: h1's
// parent is the seeder (reachable from behind a NAT: direct), h2's parent
// is h1 (only through TURN).
func TestPeersBehindSymmetricNATsUseTURN(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: network-namespace end-to-end test in -short mode")
	}
	e2e.Require(t, "ip")
	e2e.Require(t, "iptables")
	ffmpeg := e2e.Require(t, "ffmpeg")
	start := time.Now()
	l := newLab(t)
	banyanBin := buildBanyan(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}

	// 1. The NATs. A STUN server with two ports on the internet shows the
	// mapping: one port for both destinations behind plain MASQUERADE, a
	// new one per destination behind --random-fully.
	stunP := l.start("pub", self, helperEnvFor("stun", stunListen+"="+pubIP))
	var stunAddrs []string
	for end := time.Now().Add(5 * time.Second); len(stunAddrs) == 0 && time.Now().Before(end); {
		if f, ok := strings.CutPrefix(strings.TrimSpace(stunP.stdout.String()), "STUN "); ok {
			stunAddrs = strings.Fields(f)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(stunAddrs) != 2 {
		t.Fatalf("STUN helper: %q %s", stunP.stdout.String(), stunP.stderr.String())
	}
	l.masquerade(false)
	pr := l.probe("h1", stunAddrs...)
	m := pr.out.next(t, "MAPPED", 5*time.Second)
	fmt.Fprintln(pr.in, "DONE")
	if portOf(t, m[0]) != portOf(t, m[1]) {
		t.Errorf("plain MASQUERADE mapped one socket to %v: want one port (the probe's control)", m)
	}
	l.masquerade(true)
	p1, p2 := l.probe("h1", stunAddrs...), l.probe("h2", stunAddrs...)
	m1, m2 := p1.out.next(t, "MAPPED", 5*time.Second), p2.out.next(t, "MAPPED", 5*time.Second)
	for i, m := range [][]string{m1, m2} {
		if host, _, _ := net.SplitHostPort(m[0]); host != natIP(i+1) {
			t.Errorf("h%d is seen as %s, want its router's %s", i+1, m[0], natIP(i+1))
		}
		if portOf(t, m[0]) == portOf(t, m[1]) {
			t.Errorf("h%d: --random-fully kept port %s for two destinations", i+1, portOf(t, m[0]))
		}
	}
	// Each punches towards the address the other learned from STUN, as a
	// server-reflexive ICE candidate would.
	fmt.Fprintln(p1.in, "PEER "+m2[0])
	fmt.Fprintln(p2.in, "PEER "+m1[0])
	r1, r2 := p1.out.next(t, "RESULT", 5*time.Second), p2.out.next(t, "RESULT", 5*time.Second)
	if r1[0] != "none" || r2[0] != "none" {
		t.Fatalf("UDP hole punching between the NATs worked (h1 %s, h2 %s): they are not symmetric", r1[0], r2[0])
	}
	stunP.stop(time.Second)
	t.Logf("NATs: h1 seen as %v, h2 as %v by two STUN ports; hole punching failed both ways (%v)", m1, m2, time.Since(start).Round(time.Millisecond))

	// 2. banyan up on the internet: TURN relays to the lab's private
	// addresses (--turn-allow-private) and advertises the public address.
	data := t.TempDir()
	metricsAddr := pubIP + ":9100"
	up := l.start("pub", banyanBin, cleanEnv(), "up", "--data", data,
		"--http", httpAddr, "--rtmp", pubIP+":1935", "--turn", pubIP+":3478", "--public-host", pubIP,
		"--turn-allow-private", "--stripes", "1", "--root-capacity", "1", "--demo-stream", stream, "--log-level", "debug",
		"--metrics", metricsAddr) // /metrics without a token, on its own port

	key := l.demoKey(up, data, "http://"+httpAddr+"/healthz")

	// 3. A short, low-bitrate broadcast from the internet side.
	ff := l.broadcast(ffmpeg, key, 45)
	for end := time.Now().Add(20 * time.Second); ; {
		if _, err := l.get("pub", "http://"+httpAddr+"/chunks/"+stream+"/live"); err == nil {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("no chunks 20 s after ffmpeg started; ffmpeg: %s; up: %s", ff.stderr.String(), tail(up.stderr.String()))
		}
		time.Sleep(200 * time.Millisecond)
	}

	// 4. h1 joins first and takes the seeder's only child slot; h2, which
	// uploads nothing, then gets h1 as its parent.
	tracker := "ws://" + httpAddr + "/ws"
	h1 := l.start("h1", banyanBin, cleanEnv(), "peer", "--tracker", tracker, "--stream", stream,
		"--capacity-mbps", "20", "--duration", "26s", "--json", "--log-level", "debug")
	metrics := func() string {
		s, err := l.get("pub", "http://"+metricsAddr+"/metrics")
		if err != nil {
			t.Logf("metrics: %v", err)
		}
		return s
	}
	recv := func(text, path string) float64 {
		return metric(text, "banyan_swarm_received_bytes", `path="`+path+`",stream="`+stream+`"`)
	}
	for end := time.Now().Add(20 * time.Second); recv(metrics(), "p2p") == 0; {
		if time.Now().After(end) {
			t.Fatalf("h1 reported no peer bytes in 20 s; h1: %s", tail(h1.stderr.String()))
		}
		time.Sleep(500 * time.Millisecond)
	}
	h2 := l.start("h2", banyanBin, cleanEnv(), "peer", "--tracker", tracker, "--stream", stream,
		"--no-upload", "--duration", "16s", "--json", "--log-level", "debug")
	h2At := time.Now()
	var mt string
	for end := time.Now().Add(20 * time.Second); ; {
		mt = metrics()
		if recv(mt, "turn") > 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("no TURN bytes reported in 20 s; h2: %s\nh1: %s", tail(h2.stderr.String()), tail(h1.stderr.String()))
		}
		time.Sleep(500 * time.Millisecond)
	}
	turnAt := time.Since(h2At)
	h2.wait(t, 30*time.Second)
	last := metrics() // h1 still in the swarm: its session's totals
	h1.wait(t, 30*time.Second)
	ff.stop(time.Second)

	s1, s2 := summaryOf(t, h1), summaryOf(t, h2)
	t.Logf("h1: %+v", s1)
	t.Logf("h2: %+v", s2)
	t.Logf("metrics: received p2p %.0f turn %.0f origin %.0f; TURN relayed to peers %.0f, to clients %.0f; first TURN bytes reported %v after h2 started",
		recv(mt, "p2p"), recv(mt, "turn"), recv(mt, "origin"),
		metric(last, "banyan_turn_relayed_bytes_total", `direction="to_peer"`),
		metric(last, "banyan_turn_relayed_bytes_total", `direction="to_client"`), turnAt.Round(100*time.Millisecond))

	// h1 reaches the seeder on the internet directly, through its NAT.
	if s1.BytesP2P == 0 || s1.BytesTURN != 0 || s1.BytesUp == 0 || s1.ChunksPlayed == 0 {
		t.Errorf("h1: want direct bytes from the seeder, none through TURN, and bytes sent to h2: %+v", s1)
	}
	// h2's only parent is h1, and only TURN connects them.
	if s2.MaxDepth != 2 {
		t.Errorf("h2 max depth %d, want 2 (h1's child)", s2.MaxDepth)
	}
	if s2.BytesTURN == 0 || s2.BytesP2P != 0 {
		t.Errorf("h2: bytes turn %d p2p %d: want all peer bytes through TURN", s2.BytesTURN, s2.BytesP2P)
	}
	// It starts from the origin while ICE waits for the relayed pair;
	// after that the relay carries the stream.
	if s2.ChunksPlayed < 20 || s2.BytesTURN <= s2.BytesOrigin || s2.BadChunks != 0 {
		t.Errorf("h2 played %d chunks (%d bad), %d B through TURN, %d B from the origin: want most through TURN",
			s2.ChunksPlayed, s2.BadChunks, s2.BytesTURN, s2.BytesOrigin)
	}
	// Whichever pair ICE chose (h1's host to h2's relay, or relay to
	// relay), h2's bytes crossed at least one relay leg: from h1 into h1's
	// allocation towards h2 (to_peer), or from outside into h2's (to_client).
	toPeer := metric(last, "banyan_turn_relayed_bytes_total", `direction="to_peer"`)
	toClient := metric(last, "banyan_turn_relayed_bytes_total", `direction="to_client"`)
	if toPeer+toClient < float64(s2.BytesTURN) {
		t.Errorf("TURN server relayed %.0f+%.0f B, less than the %d B h2 received through it", toPeer, toClient, s2.BytesTURN)
	}
	if t.Failed() {
		t.Logf("h1 stderr: %s", tail(h1.stderr.String()))
		t.Logf("h2 stderr: %s", tail(h2.stderr.String()))
		t.Logf("up stderr: %s", tail(up.stderr.String()))
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}
