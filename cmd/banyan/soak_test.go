package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/banyan-live/banyan/internal/e2e"
	"github.com/banyan-live/banyan/store"
)

// soakSample is one look at the server through /debug/pprof and /metrics.
type soakSample struct {
	At         int     `json:"at_s"` // seconds since the peers joined
	Goroutines int     `json:"goroutines"`
	HeapAlloc  uint64  `json:"heap_alloc_bytes"`
	HeapInuse  uint64  `json:"heap_inuse_bytes"`
	Sys        uint64  `json:"sys_bytes"`
	Peers      float64 `json:"tracker_peers"`
}

// soakReport is what TestSoak writes to SOAK_OUT/soak.json.
type soakReport struct {
	Duration    string       `json:"duration"`
	Peers       int          `json:"peers"`
	ChurnPerMin float64      `json:"churn_per_min"`
	Replaced    int          `json:"replaced"`
	Killed      int          `json:"killed_sigkill"`
	Samples     []soakSample `json:"samples"`
	Summaries   int          `json:"peer_summaries"`
	Chunks      uint64       `json:"chunks_played"`
	Stalls      uint64       `json:"stalls"`
	StallRatio  float64      `json:"stall_ratio"`
	StalledPeer int          `json:"peers_with_stalls"`
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// pprofGet fetches a /debug/pprof path with the admin token.
func pprofGet(base, token, path string) ([]byte, error) {
	req, err := http.NewRequest("GET", base+"/debug/pprof/"+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("pprof %s: %s", path, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// sample reads goroutines (goroutine?debug=1's total) and the heap
// (heap?gc=1&debug=1's MemStats lines, after a GC) from the server, and
// keeps the binary heap profile in dir for `go tool pprof`.
func sample(t *testing.T, base, token, dir string, at time.Duration) soakSample {
	t.Helper()
	s := soakSample{At: int(at.Round(time.Second) / time.Second)}
	g, err := pprofGet(base, token, "goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Sscanf(string(g), "goroutine profile: total %d", &s.Goroutines)
	h, err := pprofGet(base, token, "heap?gc=1&debug=1")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(h)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		for name, p := range map[string]*uint64{"# HeapAlloc = ": &s.HeapAlloc, "# HeapInuse = ": &s.HeapInuse, "# Sys = ": &s.Sys} {
			if strings.HasPrefix(l, name) {
				*p, _ = strconv.ParseUint(strings.TrimPrefix(l, name), 10, 64)
			}
		}
	}
	if bin, err := pprofGet(base, token, "heap"); err == nil {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("heap-%05ds.pb.gz", int(at.Seconds()))), bin, 0o644)
	}
	if gs, err := pprofGet(base, token, "goroutine?debug=2"); err == nil {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("goroutines-%05ds.txt", int(at.Seconds()))), gs, 0o644)
	}
	s.Peers = metricIn(metrics(t, base, token), `banyan_tracker_peers`)
	return s
}

// TestSoak is the long run behind `make soak` (skipped unless BANYAN_SOAK
// is set): ffmpeg publishes; SOAK_PEERS native peers (50) watch; every
// 60/(SOAK_CHURN_PER_MIN) seconds one of them is replaced, alternately
// stopped cleanly (SIGINT) and killed (SIGKILL); every minute the server's
// goroutines and heap are read from /debug/pprof. After SOAK_DURATION
// (30m) it checks that goroutines and heap are flat (end against the first
// sample after warm-up) and that the peers' stall ratio is under the
// design target, and writes SOAK_OUT/soak.json with the heap profiles.
func TestSoak(t *testing.T) {
	if os.Getenv("BANYAN_SOAK") == "" {
		t.Skip("soak run: set BANYAN_SOAK=1 (make soak)")
	}
	ffmpeg := e2e.Require(t, "ffmpeg")
	dur := envDuration("SOAK_DURATION", 30*time.Minute)
	warm := min(60*time.Second, dur/4)
	npeers := envInt("SOAK_PEERS", 50)
	churn := float64(envInt("SOAK_CHURN_PER_MIN", 5))
	out := os.Getenv("SOAK_OUT")
	if out == "" {
		out = filepath.Join(os.TempDir(), "banyan-soak-"+time.Now().Format("20060102-150405"))
	}
	os.MkdirAll(out, 0o755)
	t.Logf("soak: %v with %d peers, %.0f replaced per minute; output in %s", dur, npeers, churn, out)

	ctx, cancel := context.WithTimeout(context.Background(), dur+5*time.Minute)
	defer cancel()
	data := filepath.Join(t.TempDir(), "data")
	up := startUp(t, data, "--ice-loopback", "--pprof", "--log-level", "warn", "--root-capacity", "4", "--stripes", "2")
	token, err := store.ReadAdminTokenFile(data)
	if err != nil {
		t.Fatal(err)
	}
	url, key := up.rtmpURL(t)
	ff := publish(ctx, ffmpeg, url+"/"+key, int((dur + 2*time.Minute).Seconds()))
	if err := ff.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { ff.Process.Kill(); ff.Wait() }()
	viewerKeys(t, up.base, "demo")

	rep := soakReport{Duration: dur.String(), Peers: npeers, ChurnPerMin: churn}
	var summaries []peerSummary
	collect := func(p *peerProc) {
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
			return
		}
		var s peerSummary
		if json.Unmarshal(p.out.Bytes(), &s) == nil {
			summaries = append(summaries, s)
		}
	}
	peers := make([]*peerProc, 0, npeers)
	for i := 0; i < npeers; i++ {
		peers = append(peers, startPeer(t, up.base, "--log-level", "warn"))
		time.Sleep(100 * time.Millisecond)
	}

	start := time.Now()
	rng := rand.New(rand.NewPCG(11, 12))
	churnEvery := time.Duration(float64(time.Minute) / churn)
	nextChurn := start.Add(warm)
	nextSample := start.Add(warm)
	for time.Since(start) < dur {
		now := time.Now()
		if !now.Before(nextSample) {
			s := sample(t, up.base, token, out, time.Since(start))
			rep.Samples = append(rep.Samples, s)
			t.Logf("t=%4ds goroutines %d heap %.1f MiB (inuse %.1f, sys %.1f) tracker peers %.0f",
				s.At, s.Goroutines, float64(s.HeapAlloc)/(1<<20), float64(s.HeapInuse)/(1<<20), float64(s.Sys)/(1<<20), s.Peers)
			nextSample = nextSample.Add(time.Minute)
		}
		if !now.Before(nextChurn) {
			i := rng.IntN(len(peers))
			old := peers[i]
			if rep.Replaced%2 == 0 {
				old.cmd.Process.Signal(os.Interrupt)
				collect(old)
			} else {
				old.cmd.Process.Signal(syscall.SIGKILL)
				<-old.done
				rep.Killed++
			}
			peers[i] = startPeer(t, up.base, "--log-level", "warn")
			rep.Replaced++
			nextChurn = nextChurn.Add(churnEvery)
		}
		if up.cmd.ProcessState != nil {
			t.Fatalf("banyan up exited during the soak: %s", up.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Let the last joiners settle for a minute-boundary sample.
	end := sample(t, up.base, token, out, time.Since(start))
	rep.Samples = append(rep.Samples, end)
	t.Logf("t=%4ds goroutines %d heap %.1f MiB (inuse %.1f, sys %.1f) tracker peers %.0f (end)",
		end.At, end.Goroutines, float64(end.HeapAlloc)/(1<<20), float64(end.HeapInuse)/(1<<20), float64(end.Sys)/(1<<20), end.Peers)
	for _, p := range peers {
		p.cmd.Process.Signal(os.Interrupt)
	}
	for _, p := range peers {
		collect(p)
	}
	for _, s := range summaries {
		rep.Chunks += s.ChunksPlayed
		rep.Stalls += s.Stalls
		if s.Stalls > 0 {
			rep.StalledPeer++
		}
	}
	rep.Summaries = len(summaries)
	if rep.Chunks+rep.Stalls > 0 {
		rep.StallRatio = float64(rep.Stalls) / float64(rep.Chunks+rep.Stalls)
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	os.WriteFile(filepath.Join(out, "soak.json"), b, 0o644)

	first := rep.Samples[0]
	t.Logf("figures: soak %v, %d peers, %d replaced (%d by SIGKILL): goroutines %d -> %d, heap %.1f -> %.1f MiB, sys %.1f -> %.1f MiB; %d peer summaries: %d chunks played, %d stalls (ratio %.4f%%, %d peers with a stall); profiles in %s",
		dur, npeers, rep.Replaced, rep.Killed, first.Goroutines, end.Goroutines, float64(first.HeapAlloc)/(1<<20), float64(end.HeapAlloc)/(1<<20),
		float64(first.Sys)/(1<<20), float64(end.Sys)/(1<<20), rep.Summaries, rep.Chunks, rep.Stalls, 100*rep.StallRatio, rep.StalledPeer, out)
	if end.Peers < float64(npeers)*0.9 {
		t.Errorf("tracker sees %.0f peers at the end, want about %d", end.Peers, npeers)
	}
	// Flat: the same swarm size at both ends, so what a leak would add
	// shows. Slack for one stream's windows filling and GC timing.
	if end.Goroutines > first.Goroutines+first.Goroutines/5+20 {
		t.Errorf("goroutines grew %d -> %d", first.Goroutines, end.Goroutines)
	}
	if end.HeapAlloc > first.HeapAlloc+first.HeapAlloc/2+16<<20 {
		t.Errorf("heap grew %.1f -> %.1f MiB", float64(first.HeapAlloc)/(1<<20), float64(end.HeapAlloc)/(1<<20))
	}
	if rep.StallRatio > 0.005 {
		t.Errorf("stall ratio %.3f%% over the 0.5%% target", 100*rep.StallRatio)
	}
	up.stop(t, syscall.SIGTERM)
}
