package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/banyan-live/banyan/overlay"
	"github.com/banyan-live/banyan/peer/node"
)

// NetnsModel configures the netns transport: native `banyan peer`
// processes, each in its own network namespace behind a tbf-limited uplink
// with 0.5 % random egress loss (iptables statistic; this kernel has no
// netem), under a `banyan up` in the root namespace reached over a bridge.
type NetnsModel struct {
	// Start starts the broadcast (tracker + seeder) listening on host;
	// required. rootCap is `banyan up --root-capacity`.
	Start func(ctx context.Context, host string, stripes, rootCap int) (*Broadcast, error)
	// Binary is the banyan executable the peers run (default: this one).
	Binary string
	// Unlimited leaves every uplink without tbf (loss still applies); the
	// mix is still drawn and recorded, --no-upload viewers stay so.
	Unlimited bool
	// Loss is the egress drop probability (default 0.005; <0: none).
	Loss float64
	// Media is a pre-encoded FLV to publish with -re -c copy; when empty
	// one is encoded before the run (testsrc, cfg.Bitrate, keyframe 1 s).
	Media string
	// Peers receives every peer's record (their --json summary and limit).
	Peers *[]NetnsPeer
}

// NetnsPeer is one viewer of a netns run.
type NetnsPeer struct {
	NS        string      `json:"ns"`
	UplinkBps float64     `json:"uplink_bps"` // tbf rate (0: --no-upload)
	Limited   bool        `json:"limited"`
	Summary   PeerSummary `json:"summary"`
	UpKbps    float64     `json:"up_kbps"` // bytes_up × 8 / time in the swarm
	AliveS    float64     `json:"alive_s"`
	// TbfSentBytes is what the tbf qdisc on the namespace's uplink
	// passed (tc -s), read before teardown; 0 when not limited.
	TbfSentBytes uint64 `json:"tbf_sent_bytes,omitempty"`
	Err          string `json:"err,omitempty"`
	StderrTail   string `json:"-"`
	summaryRead  bool
}

// PeerSummary is what `banyan peer --json` prints (node.Summary).
type PeerSummary = node.Summary

// NetnsPrefix names every namespace and link a netns run creates; a run
// removes leftovers with this prefix from a crashed run first.
const NetnsPrefix = "bnysw"

const (
	netnsBridge = NetnsPrefix + "br"
	netnsHost   = "10.231.100.1"
)

func netnsPeerIP(i int) string { return fmt.Sprintf("10.231.100.%d", 10+i) }

// NetnsCheck reports what the netns transport needs and what is missing.
type NetnsCheck struct {
	Netem   bool // the kernel has the netem qdisc (not required)
	Missing []string
}

// CheckNetns probes the machine for the netns transport.
func CheckNetns(ctx context.Context) NetnsCheck {
	var c NetnsCheck
	if os.Geteuid() != 0 {
		c.Missing = append(c.Missing, "root")
	}
	for _, b := range []string{"ip", "tc", "iptables", "ffmpeg"} {
		if _, err := exec.LookPath(b); err != nil {
			c.Missing = append(c.Missing, b)
		}
	}
	if len(c.Missing) == 0 {
		c.Netem = probeNetem(ctx)
	}
	return c
}

func probeNetem(ctx context.Context) bool {
	ns := fmt.Sprintf("%s-chk%d", NetnsPrefix, os.Getpid())
	if netnsRun(ctx, "ip", "netns", "add", ns) != nil {
		return false
	}
	defer netnsRun(context.WithoutCancel(ctx), "ip", "netns", "del", ns)
	return netnsRun(ctx, "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "loss", "1%") == nil
}

// netnsRun runs one setup command, bounded to 15 s.
func netnsRun(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// RemoveStaleNetns deletes namespaces and the bridge left by a crashed run.
func RemoveStaleNetns(ctx context.Context) {
	out, _ := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], NetnsPrefix) {
			_ = netnsRun(ctx, "ip", "netns", "del", f[0])
		}
	}
	_ = exec.CommandContext(ctx, "ip", "link", "del", netnsBridge).Run()
}

// EncodeTestMedia encodes d of testsrc + sine at bitrate (CBR, keyframe
// every second) into path as FLV, once, so the run publishes with -c copy.
func EncodeTestMedia(ctx context.Context, ffmpeg, path string, d time.Duration, bitrate float64) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	br := strconv.Itoa(int(bitrate-128e3)/1000) + "k"
	out, err := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", strconv.Itoa(int(d.Seconds())), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
		"-b:v", br, "-minrate", br, "-maxrate", br, "-bufsize", br, "-x264-params", "nal-hrd=cbr",
		"-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-c:a", "aac", "-b:a", "128k", "-f", "flv", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("encoding test media: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

type netnsProc struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr lockedTail
	done   chan struct{}
}

// lockedTail keeps the last 4 KiB written to it.
type lockedTail struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if len(l.b) > 4096 {
		l.b = append([]byte(nil), l.b[len(l.b)-4096:]...)
	}
	return len(p), nil
}

func (l *lockedTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

func startProc(name string, args ...string) (*netnsProc, error) {
	p := &netnsProc{cmd: exec.Command(name, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }() // owned by p: ends with the process
	return p, nil
}

// stop sends SIGINT and waits up to grace, then kills.
func (p *netnsProc) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// swarmNetns runs the swarm with native `banyan peer` processes, each in
// its own network namespace.
func swarmNetns(ctx context.Context, cfg SwarmConfig) (res SwarmResult, err error) {
	m := cfg.Netns
	if c := CheckNetns(ctx); len(c.Missing) > 0 {
		return SwarmResult{}, fmt.Errorf("bench swarm: --transport netns needs %s: %w", strings.Join(c.Missing, ", "), ErrNotAvailable)
	}
	switch {
	case m.Start == nil:
		return SwarmResult{}, fmt.Errorf("bench swarm: --transport netns needs a broadcast to join: %w", ErrNotAvailable)
	case cfg.Mode != ModeMesh:
		return SwarmResult{}, errors.New("bench swarm: --transport netns runs --mode mesh")
	case cfg.Peers > 200:
		return SwarmResult{}, fmt.Errorf("bench swarm: --transport netns: %d peers: at most 200 (one process and namespace each)", cfg.Peers)
	case cfg.ChurnPerMin > 0 || cfg.Kill > 0:
		return SwarmResult{}, errors.New("bench swarm: --transport netns does not churn or kill (yet)")
	}
	bin := m.Binary
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return SwarmResult{}, err
		}
	}
	loss := m.Loss
	if loss == 0 {
		loss = 0.005
	}
	rootCap := cfg.Mem.RootCapacity
	if rootCap == 0 {
		rootCap = overlay.DefaultRootCapacity // banyan up's default
	}
	progress := func(f string, a ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "netns: "+f+"\n", a...)
		}
	}
	cleanup := context.WithoutCancel(ctx)
	RemoveStaleNetns(cleanup)
	defer RemoveStaleNetns(cleanup)

	dir, err := os.MkdirTemp("", "banyan-netns-")
	if err != nil {
		return SwarmResult{}, err
	}
	defer os.RemoveAll(dir)
	media := m.Media
	if media == "" {
		media = filepath.Join(dir, "media.flv")
		t0 := time.Now()
		if err := EncodeTestMedia(ctx, "ffmpeg", media, cfg.Duration+30*time.Second, cfg.Bitrate); err != nil {
			return SwarmResult{}, err
		}
		progress("encoded %v of media in %v", cfg.Duration+30*time.Second, time.Since(t0).Round(time.Millisecond))
	}

	// The bridge in the root namespace: banyan up listens on its address.
	for _, a := range [][]string{
		{"link", "add", "name", netnsBridge, "type", "bridge"},
		{"addr", "add", netnsHost + "/24", "dev", netnsBridge},
		{"link", "set", netnsBridge, "up"},
	} {
		if err := netnsRun(ctx, "ip", a...); err != nil {
			return SwarmResult{}, err
		}
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6e65746e73))
	peers := make([]NetnsPeer, cfg.Peers)
	for i := range peers {
		ns := fmt.Sprintf("%s-p%d", NetnsPrefix, i)
		veth := fmt.Sprintf("%sv%d", NetnsPrefix, i)
		peers[i] = NetnsPeer{NS: ns, UplinkBps: sampleUpload(rng, DefaultNoUploadPct)}
		p := &peers[i]
		cmds := [][]string{
			{"ip", "netns", "add", ns},
			{"ip", "-n", ns, "link", "set", "lo", "up"},
			{"ip", "link", "add", "name", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"ip", "link", "set", veth, "master", netnsBridge, "up"},
			{"ip", "-n", ns, "addr", "add", netnsPeerIP(i) + "/24", "dev", "eth0"},
			{"ip", "-n", ns, "link", "set", "eth0", "up"},
		}
		if p.UplinkBps > 0 && !m.Unlimited {
			p.Limited = true
			kbit := strconv.Itoa(int(p.UplinkBps / 1000))
			// burst: 10 ms at the rate, at least 32 KiB (tbf needs ≥ MTU);
			// latency bounds the queue at 100 ms.
			burst := strconv.Itoa(max(32*1024, int(p.UplinkBps/8/100)))
			cmds = append(cmds, []string{"ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "eth0", "root", "tbf",
				"rate", kbit + "kbit", "burst", burst, "latency", "100ms"})
		}
		if loss > 0 {
			cmds = append(cmds, []string{"ip", "netns", "exec", ns, "iptables", "-A", "OUTPUT", "-o", "eth0",
				"-m", "statistic", "--mode", "random", "--probability", strconv.FormatFloat(loss, 'f', -1, 64), "-j", "DROP"})
		}
		for _, c := range cmds {
			if err := netnsRun(ctx, c[0], c[1:]...); err != nil {
				return SwarmResult{}, err
			}
		}
	}
	progress("%d namespaces ready (limited=%v, loss %.3f)", cfg.Peers, !m.Unlimited, loss)

	bc, err := m.Start(ctx, netnsHost, cfg.Stripes, rootCap)
	if err != nil {
		return SwarmResult{}, fmt.Errorf("bench swarm: starting the broadcast: %w", err)
	}
	defer bc.Close()
	ff, err := startProc("ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", media, "-c", "copy", "-f", "flv", bc.PublishURL)
	if err != nil {
		return SwarmResult{}, err
	}
	defer ff.stop(3 * time.Second)
	live := false
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end) && ctx.Err() == nil; {
		if bc.SeederSent != nil && liveChunks(ctx, bc.OriginURL+"/chunks/"+bc.Stream+"/live") {
			live = true
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !live {
		return SwarmResult{}, fmt.Errorf("bench swarm: no chunks 20 s after ffmpeg started: %s", ff.stderr.String())
	}
	progress("stream live; starting %d peers over %v", cfg.Peers, cfg.Ramp)

	t0 := time.Now()
	procs := make([]*netnsProc, len(peers))
	starts := make([]time.Time, len(peers))
	defer func() {
		for _, p := range procs {
			if p != nil {
				p.stop(time.Second)
			}
		}
	}()
	for i := range peers {
		at := t0.Add(time.Duration(int64(cfg.Ramp) * int64(i) / int64(max(1, len(peers)))))
		select {
		case <-ctx.Done():
			return SwarmResult{}, ctx.Err()
		case <-time.After(time.Until(at)):
		}
		args := []string{"netns", "exec", peers[i].NS, bin, "peer", "--tracker", bc.TrackerURL, "--stream", bc.Stream,
			"--json", "--log-level", "warn"}
		if peers[i].UplinkBps == 0 {
			args = append(args, "--no-upload")
		} else {
			args = append(args, "--capacity-mbps", strconv.FormatFloat(peers[i].UplinkBps/1e6, 'f', 2, 64))
		}
		if procs[i], err = startProc("ip", args...); err != nil {
			return SwarmResult{}, err
		}
		starts[i] = time.Now()
	}
	for next := t0.Add(cfg.ProgressEvery); time.Since(t0) < cfg.Duration; next = next.Add(cfg.ProgressEvery) {
		select {
		case <-ctx.Done():
			return SwarmResult{}, ctx.Err()
		case <-time.After(min(time.Until(next), time.Until(t0.Add(cfg.Duration)))):
		}
		progress("t=%v seeder sent %d MB", time.Since(t0).Round(time.Second), bc.SeederSent()/1e6)
	}
	// Stop every peer at once (SIGINT: each prints its summary), then
	// read the seeder's total.
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop(10 * time.Second) }() // joined below
		_ = i
	}
	wg.Wait()
	end := time.Now()
	seederSent := bc.SeederSent()
	for i := range peers {
		if peers[i].Limited {
			peers[i].TbfSentBytes = tbfSent(cleanup, peers[i].NS)
		}
	}

	col := newCollector()
	col.seederBytes = seederSent
	res = SwarmResult{Transport: TransportNetns, Mode: cfg.Mode, Source: SourceFFmpeg, Peers: cfg.Peers, Stripes: cfg.Stripes,
		BitrateBps: cfg.Bitrate, DurationS: cfg.Duration.Seconds(), Seed: cfg.Seed, Joined: cfg.Peers, RootCapacity: rootCap}
	for i, p := range procs {
		pp := &peers[i]
		pp.AliveS = end.Sub(starts[i]).Seconds()
		pp.StderrTail = p.stderr.String()
		line := bytes.TrimSpace(p.stdout.Bytes())
		if j := bytes.LastIndexByte(line, '\n'); j >= 0 {
			line = line[j+1:]
		}
		if err := json.Unmarshal(line, &pp.Summary); err != nil {
			pp.Err = fmt.Sprintf("no --json summary: %v (stdout %q)", err, line)
			col.neverPlayed++
			continue
		}
		pp.summaryRead = true
		s := pp.Summary
		if pp.AliveS > 0 {
			pp.UpKbps = float64(s.BytesUp) * 8 / 1000 / pp.AliveS
		}
		col.peerBytes += s.BytesUp
		col.originBytes += s.BytesOrigin
		col.turnBytes += s.BytesTURN
		col.stalledMS += float64(s.StalledMS)
		col.watchedMS += float64(s.WatchedMS)
		if s.Stalls > 0 {
			col.stalledPeers++
		}
		if s.ChunksPlayed == 0 && s.WatchedMS == 0 {
			col.neverPlayed++
		}
		col.missed += s.Stalls
		col.played += s.ChunksPlayed
		col.badDetected += s.BadChunks
		col.repOrigin += s.Repaired
		col.dupBytes += s.DupBytes
		col.unsentBytes += s.UnsentBytes
		col.maxDepth = max(col.maxDepth, s.MaxDepth)
		if s.FirstChunkMS > 0 {
			col.join.add(time.Duration(s.FirstChunkMS) * time.Millisecond)
		}
	}
	col.fill(&res)
	if m.Peers != nil {
		*m.Peers = peers
	}
	return res, nil
}

// liveChunks reports whether the origin serves the stream's live chunk
// index (the harness talks only to the bridge address).
func liveChunks(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// tbfSent reads the bytes the root tbf qdisc of ns's eth0 has sent.
func tbfSent(ctx context.Context, ns string) uint64 {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "tc", "-s", "qdisc", "show", "dev", "eth0").Output()
	if err != nil {
		return 0
	}
	// "qdisc tbf 8001: root ... \n Sent 123 bytes 45 pkt ..."
	f := strings.Fields(string(out))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "tbf" {
			for j := i; j+1 < len(f); j++ {
				if f[j] == "Sent" {
					n, _ := strconv.ParseUint(f[j+1], 10, 64)
					return n
				}
			}
		}
	}
	return 0
}
