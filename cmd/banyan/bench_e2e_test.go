package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/banyan-live/banyan/bench"
	"github.com/banyan-live/banyan/internal/e2e"
)

// TestBenchSwarmWebRTC runs the webrtc swarm benchmark end to end: banyan up
// in process, ffmpeg publishing over RTMP, native nodes over real pion data
// channels on loopback, one of them killed mid-run.
func TestBenchSwarmWebRTC(t *testing.T) {
	e2e.Require(t, "ffmpeg")
	// A root of 2 per stripe: the seeder's default 8 would feed all 8
	// viewers itself, and nobody would relay.
	out, errOut, code := cli(t, "bench", "swarm", "--transport", "webrtc", "--peers", "8", "--duration", "20s",
		"--ramp", "4s", "--bitrate", "1M", "--kill", "0.25", "--root-capacity", "2", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "bench swarm:") {
		t.Errorf("no progress on stderr: %q", errOut)
	}
	var r bench.SwarmResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, out)
	}
	t.Logf("figures: 8 native peers over webrtc: offload %.1f %%, join p95 %.0f ms, hop p50 %.1f ms p95 %.1f ms, stall ratio %.4f, killed %d, media %.0f bit/s",
		100*r.Offload, r.JoinP95ms, r.HopLatencyP50ms, r.HopLatencyP95ms, r.StallRatio, r.Killed, r.MediaBps)
	switch {
	case r.Transport != bench.TransportWebRTC || r.Source != bench.SourceFFmpeg:
		t.Errorf("transport %q source %q", r.Transport, r.Source)
	case r.Joined != 8 || r.Killed != 2:
		t.Errorf("joined %d killed %d, want 8 and 2", r.Joined, r.Killed)
	case r.ChunksPlayed == 0 || r.NeverPlayed != 0:
		t.Errorf("played %d chunks, %d viewers never played", r.ChunksPlayed, r.NeverPlayed)
	case r.BadChunksPlayed != 0:
		t.Errorf("%d bad chunks played", r.BadChunksPlayed)
	case r.PeerBytes == 0 || r.SeederBytes == 0 || r.Offload <= 0:
		// With 8 viewers and the root feeding 2 per stripe, most stripe
		// slots hang under other viewers.
		t.Errorf("seeder %d B, peers %d B, offload %v: the viewers relayed nothing", r.SeederBytes, r.PeerBytes, r.Offload)
	case r.HopLatencyP50ms <= 0 || len(r.LatencyP95msByDepth) == 0:
		t.Errorf("hop p50 %v, latency by depth %v: completions not timed", r.HopLatencyP50ms, r.LatencyP95msByDepth)
	case r.MediaBps < 0.5e6:
		t.Errorf("ffmpeg produced %.0f bit/s for a 1M request", r.MediaBps)
	case r.KillSurvivors != 6:
		t.Errorf("%d kill survivors, want 6", r.KillSurvivors)
	}
}
