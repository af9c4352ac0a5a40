package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"github.com/banyan-live/banyan/internal/e2e"
)

// peerProc is a `banyan peer` process.
type peerProc struct {
	cmd    *exec.Cmd
	out    bytes.Buffer
	errb   bytes.Buffer
	done   chan error
	record string
}

func startPeer(t *testing.T, base string, extra ...string) *peerProc {
	t.Helper()
	tracker := "ws" + strings.TrimPrefix(base, "http") + "/ws"
	args := append([]string{"peer", "--tracker", tracker, "--stream", "demo", "--ice-loopback", "--json", "--log-level", "debug"}, extra...)
	p := &peerProc{cmd: exec.Command(banyanBin, args...), done: make(chan error, 1)}
	p.cmd.Env = cleanEnv()
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.errb
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *peerProc) summary(t *testing.T) peerSummary {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.cmd.Process.Kill()
		t.Fatalf("peer did not leave; stderr:\n%s", p.errb.String())
	}
	var s peerSummary
	if err := json.Unmarshal(p.out.Bytes(), &s); err != nil {
		t.Fatalf("peer summary %q: %v; stderr:\n%s", p.out.String(), err, p.errb.String())
	}
	return s
}

// recording checks a --record file: the fragments are consecutive (no
// chunk missing) and returns the video sample count.
func recording(t *testing.T, path string) (frames int, seqs []uint32) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var init fmp4.Init
	r := bytes.NewReader(b)
	if err := init.Unmarshal(r); err != nil {
		t.Fatalf("%s: init: %v", path, err)
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(b); err != nil {
		t.Fatalf("%s: fragments: %v", path, err)
	}
	for _, p := range parts {
		seqs = append(seqs, p.SequenceNumber)
		for _, tr := range p.Tracks {
			if tr.ID == 1 {
				frames += len(tr.Samples)
			}
		}
	}
	return frames, seqs
}

func ffprobeFrames(t *testing.T, ffprobe, path string) int {
	t.Helper()
	out, err := exec.Command(ffprobe, "-v", "error", "-count_frames", "-select_streams", "v",
		"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var n int
	fmt.Sscan(strings.TrimSpace(string(out)), &n)
	return n
}

// metrics reads /metrics with a bearer token (the admin token opens it).
func metrics(t *testing.T, base, token string) []byte {
	t.Helper()
	code, b := adminDo(t, "GET", base+"/metrics", token, "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, b)
	}
	return b
}

// metric reads one value from the server's /metrics.
func metric(t *testing.T, p *upProc, name string) float64 {
	t.Helper()
	return metricIn(metrics(t, p.base, p.adminToken(t)), name)
}

// metricIn finds one value in a Prometheus exposition.
func metricIn(b []byte, name string) float64 {
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			return v
		}
	}
	return 0
}

// liveDemo runs `banyan up` (with upArgs and loopback ICE) and an ffmpeg
// broadcast of the demo stream for seconds, and waits until the stream is
// registered and live. The broadcast stops with the test.
func liveDemo(t *testing.T, ctx context.Context, seconds int, upArgs ...string) *upProc {
	t.Helper()
	ffmpeg := e2e.Require(t, "ffmpeg")
	return liveMedia(t, ctx, ffmpeg, demoMedia(t, ffmpeg, seconds), upArgs...)
}

// liveMedia is liveDemo publishing the file media.
func liveMedia(t *testing.T, ctx context.Context, ffmpeg, media string, upArgs ...string) *upProc {
	t.Helper()
	up := startUp(t, t.TempDir(), append([]string{"--ice-loopback"}, upArgs...)...)
	url, key := up.rtmpURL(t)
	broadcast(t, ctx, ffmpeg, media, url+"/"+key)
	viewerKeys(t, up.base, "demo")
	return up
}

// demoMedia is the broadcast of publish (640x360, 1 s GOP, AAC) encoded
// once per length into the test binary's directory: the mesh tests publish
// it with -re -c copy, a real RTMP publish from ffmpeg without a live x264
// encode taking a core from the 20 peers on a 2-core machine.
func demoMedia(t *testing.T, ffmpeg string, seconds int) string {
	t.Helper()
	return encodedMedia(t, ffmpeg, seconds, "640x360", "")
}

var demoMediaMu sync.Mutex

// encodedMedia is the broadcast of publish at size (30 fps, 1 s GOP,
// AAC), x264 at its default rate control or, when rate is set, at that
// video bitrate with a VBV cap, encoded once into the test binary's
// directory (or $BANYAN_MEDIA_DIR).
func encodedMedia(t *testing.T, ffmpeg string, seconds int, size, rate string) string {
	t.Helper()
	demoMediaMu.Lock()
	defer demoMediaMu.Unlock()
	name := fmt.Sprintf("demo-%s-%ds.flv", size, seconds)
	var rc []string
	if rate != "" {
		name = fmt.Sprintf("demo-%s-%ds-%s.flv", size, seconds, rate)
		rc = []string{"-b:v", rate, "-maxrate", rate, "-bufsize", rate}
	}
	// BANYAN_MEDIA_DIR keeps the files across runs (a 5-minute 720p
	// encode takes minutes on a loaded 2-core machine).
	path := filepath.Join(cmp.Or(os.Getenv("BANYAN_MEDIA_DIR"), filepath.Dir(banyanBin)), name)
	if _, err := os.Stat(path); err == nil {
		return path
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tmp := path + ".part.flv"
	args := []string{"-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=" + size + ":rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", fmt.Sprint(seconds),
		"-c:v", "libx264", "-pix_fmt", "yuv420p", "-profile:v", "main", "-bf", "2", "-g", "30", "-preset", "veryfast"}
	args = append(append(args, rc...), "-c:a", "aac", "-b:a", "128k", "-f", "flv", tmp)
	out, err := exec.CommandContext(ctx, ffmpeg, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("encoding the demo broadcast: %v: %s", err, out)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestNativeMesh(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the 20-peer mesh in -short mode")
	}
	ffprobe := e2e.Require(t, "ffprobe")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	up := liveDemo(t, ctx, 40, "--root-capacity", "2", "--stripes", "2")

	const n = 20
	dir := t.TempDir()
	var peers []*peerProc
	for i := 0; i < n; i++ {
		rec := filepath.Join(dir, fmt.Sprintf("peer%02d.mp4", i))
		p := startPeer(t, up.base, "--duration", "22s", "--record", rec)
		p.record = rec
		peers = append(peers, p)
		time.Sleep(150 * time.Millisecond)
	}
	var sums []peerSummary
	for _, p := range peers {
		sums = append(sums, p.summary(t))
	}
	var p2p, origin, turn uint64
	deepest := -1
	for i, s := range sums {
		p2p, origin, turn = p2p+s.BytesP2P, origin+s.BytesOrigin, turn+s.BytesTURN
		if s.ChunksPlayed < 60 || s.BadChunks != 0 {
			t.Errorf("peer %d: %+v", i, s)
		}
		if s.Stalls != 0 {
			t.Errorf("peer %d stalled %d times; its missed chunks:\n%s", i, s.Stalls, grepLines(peers[i].errb.Bytes(), "missed its deadline"))
		}
		if deepest < 0 || s.MaxDepth > sums[deepest].MaxDepth {
			deepest = i
		}
	}
	// Every chunk: each recording's fragments are consecutive.
	for i, p := range peers {
		_, seqs := recording(t, p.record)
		for j := 1; j < len(seqs); j++ {
			if seqs[j] != seqs[j-1]+1 {
				t.Errorf("peer %d: recording jumps from chunk %d to %d", i, seqs[j-1], seqs[j])
				break
			}
		}
	}
	// The deepest leaf's recording decodes with the right frame count.
	d := sums[deepest]
	if d.MaxDepth < 3 {
		t.Errorf("deepest peer is at depth %d, want ≥ 3 (root capacity 2)", d.MaxDepth)
	}
	frames, seqs := recording(t, peers[deepest].record)
	if got := ffprobeFrames(t, ffprobe, peers[deepest].record); got != frames || frames < 300 {
		t.Errorf("depth-%d recording: ffprobe decodes %d frames, the fragments hold %d", d.MaxDepth, got, frames)
	}
	seederSent := metric(t, up, "banyan_swarm_seeder_sent_bytes")
	total := float64(p2p + origin + turn)
	t.Logf("figures: %d peers, depth of the deepest %d (%d chunks, %d frames); p2p %d B, origin %d B, turn %d B; seeder root sent %.0f B; offload %.1f %%",
		n, d.MaxDepth, len(seqs), frames, p2p, origin, turn, seederSent, 100*(1-(seederSent+float64(origin))/total))
	up.stop(t, syscall.SIGTERM)
}

func TestNativeChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the churn test in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	up := liveDemo(t, ctx, 40, "--root-capacity", "2", "--stripes", "2")

	const n = 16
	var peers []*peerProc
	for i := 0; i < n; i++ {
		peers = append(peers, startPeer(t, up.base, "--duration", "24s"))
		time.Sleep(150 * time.Millisecond)
	}
	time.Sleep(6 * time.Second)
	// The first joiners sit high in the trees: kill four of them abruptly.
	killAt := time.Now()
	for _, p := range peers[:4] {
		p.cmd.Process.Signal(syscall.SIGKILL)
	}
	var reparent []time.Duration
	stalled := 0
	for i, p := range peers[4:] {
		s := p.summary(t)
		if s.Stalls != 0 {
			stalled++
			t.Logf("survivor %d stalled %d times", i, s.Stalls)
		}
		if s.BadChunks != 0 || s.ChunksPlayed < 60 {
			t.Errorf("survivor %d: %+v", i, s)
		}
		for _, c := range s.ParentChanges {
			if c.At.After(killAt) && c.At.Before(killAt.Add(10*time.Second)) {
				reparent = append(reparent, c.At.Sub(killAt))
			}
		}
	}
	if len(reparent) == 0 {
		t.Fatal("no survivor lost a parent: the killed peers fed nobody")
	}
	slices.Sort(reparent)
	p95 := reparent[(len(reparent)*95)/100]
	if p95 > reparent[len(reparent)-1] {
		p95 = reparent[len(reparent)-1]
	}
	t.Logf("figures: %d orphaned stripes re-parented, p50 %v p95 %v max %v after the kill; %d of %d survivors stalled",
		len(reparent), reparent[len(reparent)/2], p95, reparent[len(reparent)-1], stalled, n-4)
	if stalled > 0 {
		t.Errorf("%d survivors stalled after 4 of %d peers were killed", stalled, n)
	}
}
