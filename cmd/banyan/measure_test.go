package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tests in this file measure figures for the issues' notes. They are
// heavy and print numbers rather than assert targets, so they run only with
// BANYAN_MEASURE=1:
//
//	BANYAN_MEASURE=1 go test ./cmd/banyan -run Measure -v

func measuring(t *testing.T) {
	if os.Getenv("BANYAN_MEASURE") != "1" {
		t.Skip("measurement: set BANYAN_MEASURE=1")
	}
}

// TestMeasureNativeOffload runs N native peers (BANYAN_MEASURE_PEERS,
// default 50) and reports the origin offload.
func TestMeasureNativeOffload(t *testing.T) {
	measuring(t)
	n := 50
	if v, err := strconv.Atoi(os.Getenv("BANYAN_MEASURE_PEERS")); err == nil && v > 0 {
		n = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	up := liveDemo(t, ctx, 60, "--root-capacity", "2", "--stripes", "2")
	var peers []*peerProc
	for i := 0; i < n; i++ {
		peers = append(peers, startPeer(t, up.base, "--duration", "30s", "--log-level", "warn"))
		time.Sleep(100 * time.Millisecond)
	}
	var p2p, origin, turn, stalls uint64
	maxDepth := 0
	for _, p := range peers {
		s := p.summary(t)
		p2p, origin, turn, stalls = p2p+s.BytesP2P, origin+s.BytesOrigin, turn+s.BytesTURN, stalls+s.Stalls
		maxDepth = max(maxDepth, s.MaxDepth)
	}
	sent := metric(t, up, "banyan_swarm_seeder_sent_bytes")
	total := float64(p2p + origin + turn)
	t.Logf("figures: %d native peers, max depth %d: offload %.1f %% (seeder root %.0f B + origin %d B of %.0f B), stalls %d",
		n, maxDepth, 100*(1-(sent+float64(origin))/total), sent, origin, total, stalls)
	up.stop(t, syscall.SIGTERM)
}

// TestMeasureBrowserJoins opens 10 viewers one after the other and reports
// join-to-first-frame, latency behind live and the browsers' CPU.
func TestMeasureBrowserJoins(t *testing.T) {
	measuring(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bctx := browser(t, ctx)
	up := liveDemo(t, ctx, 120, "--root-capacity", "1", "--stripes", "2")
	time.Sleep(2 * time.Second)

	var firsts, behind []float64
	var viewers []context.Context
	for i := 0; i < 10; i++ {
		v := openViewer(t, bctx, up.base+"/watch/demo")
		viewers = append(viewers, v)
		p := waitViewer(t, v, fmt.Sprintf("viewer %d first frame", i), 30*time.Second, func(p viewerProbe) bool {
			return p.State == "live" && p.Stats != nil && p.Stats.FirstMS > 0
		})
		firsts = append(firsts, p.Stats.FirstMS)
		time.Sleep(time.Second)
	}
	time.Sleep(5 * time.Second)
	cpu0, at0 := chromiumCPU(t), time.Now()
	time.Sleep(10 * time.Second)
	cpu1, at1 := chromiumCPU(t), time.Now()
	relaying := 0
	for _, v := range viewers {
		p := probe(t, v)
		behind = append(behind, p.Stats.BehindMs)
		if p.Stats.Children > 0 {
			relaying++
		}
	}
	slices.Sort(firsts)
	slices.Sort(behind)
	pct := func(s []float64, q float64) float64 { return s[min(len(s)-1, int(q*float64(len(s))))] }
	cores := (cpu1 - cpu0) / at1.Sub(at0).Seconds()
	t.Logf("figures: join to first frame over %d joins p50 %.0f ms p95 %.0f ms (all: %v); behind live p50 %.0f ms p95 %.0f ms; "+
		"chromium total %.1f %% of a core for %d viewers (%d relaying) = %.1f %% per viewer",
		len(firsts), pct(firsts, .5), pct(firsts, .95), firsts, pct(behind, .5), pct(behind, .95), 100*cores, len(viewers), relaying, 100*cores/float64(len(viewers)))
	up.stop(t, syscall.SIGTERM)
}

// chromiumCPU sums the CPU seconds used so far by every chromium process.
func chromiumCPU(t *testing.T) float64 {
	out, err := exec.Command("pgrep", "-f", "chromium").Output()
	if err != nil {
		t.Fatal(err)
	}
	ticks := 0.0
	for _, pid := range strings.Fields(string(out)) {
		b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		u, _ := strconv.ParseFloat(f[11], 64)
		s, _ := strconv.ParseFloat(f[12], 64)
		ticks += u + s
	}
	return ticks / 100
}
