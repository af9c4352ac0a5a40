package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/banyan-live/banyan/bench"
	"github.com/banyan-live/banyan/internal/e2e"
)

// TestBenchSwarmNetns runs `banyan bench swarm --transport netns` small: 8
// native peers, each in its own network namespace with a tbf uplink from the
// mem model's mix and 0.5 % egress loss, 40 s of a pre-encoded 3 Mbit/s
// stream. It checks the harness (everyone played, nothing bad, the limits
// really held, the byte counts agree), not offload or stalls: those are
// benchmark figures on a shared, noisy machine.
func TestBenchSwarmNetns(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: network-namespace swarm in -short mode")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("BANYAN_E2E") == "1" {
			t.Fatal("BANYAN_E2E=1 but not root: the netns swarm needs root")
		}
		t.Skip("skipping: the netns swarm needs root")
	}
	for _, tool := range []string{"ip", "tc", "iptables", "ffmpeg"} {
		e2e.Require(t, tool)
	}
	t.Cleanup(func() { bench.RemoveStaleNetns(context.Background()) }) // also after a killed run
	const n = 8
	peersFile := filepath.Join(t.TempDir(), "peers.json")
	ctx, cancel := context.WithTimeout(context.Background(), 110*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, banyanBin, "bench", "swarm", "--transport", "netns", "--peers", "8",
		"--duration", "40s", "--ramp", "5s", "--root-capacity", "2", "--seed", "3", "--netns-peers", peersFile, "--json")
	cmd.Env = cleanEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench swarm --transport netns: %v\n%s", err, errb.String())
	}
	var r bench.SwarmResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, out.String())
	}
	var peers []bench.NetnsPeer
	b, err := os.ReadFile(peersFile)
	if err == nil {
		err = json.Unmarshal(b, &peers)
	}
	if err != nil || len(peers) != n {
		t.Fatalf("--netns-peers: %d peers, %v", len(peers), err)
	}
	t.Logf("figures (not asserted): offload %.1f %%, stall ratio %.4f, origin %d B, duplicate share %.4f",
		100*r.Offload, r.StallRatio, r.OriginBytes, r.DuplicateShare)
	if r.Transport != bench.TransportNetns || r.NeverPlayed != 0 || r.BadChunksDetected != 0 || r.BadChunksPlayed != 0 {
		t.Errorf("transport %q, %d never played, %d bad chunks", r.Transport, r.NeverPlayed, r.BadChunksDetected)
	}
	var recvP2P, sentUp, origin uint64
	limited, measured := 0, 0
	for _, p := range peers {
		s := p.Summary
		t.Logf("%s: limit %.1f Mbit/s (limited %v), up %.0f kbit/s, tbf sent %d B, played %d, depths %v, stalled %d ms of %d",
			p.NS, p.UplinkBps/1e6, p.Limited, p.UpKbps, p.TbfSentBytes, s.ChunksPlayed, s.Depths, s.StalledMS, s.WatchedMS)
		if p.Err != "" || s.ChunksPlayed < 40*4/2 || s.WatchedMS < 20_000 {
			t.Errorf("%s did not play: %d chunks, watched %d ms, %s", p.NS, s.ChunksPlayed, s.WatchedMS, p.Err)
		}
		if s.BadChunks != 0 {
			t.Errorf("%s: %d bad chunks", p.NS, s.BadChunks)
		}
		if p.UplinkBps == 0 && s.BytesUp > 1<<20 {
			t.Errorf("%s runs --no-upload but sent %d B", p.NS, s.BytesUp)
		}
		if p.Limited {
			limited++
			// The qdisc carried the peer's uplink (all of its payload, plus
			// IP/UDP/DTLS/SCTP framing and signalling) and held its rate.
			if p.TbfSentBytes < s.BytesUp {
				t.Errorf("%s: tbf sent %d B < %d B the peer uploaded: the limit is not on its path", p.NS, p.TbfSentBytes, s.BytesUp)
			}
			if kbps := float64(p.TbfSentBytes) * 8 / 1000 / p.AliveS; kbps > p.UplinkBps/1000*1.1 || p.UpKbps > p.UplinkBps/1000*1.1 {
				t.Errorf("%s: uploaded %.0f kbit/s (tbf %.0f) over a %.0f kbit/s limit", p.NS, p.UpKbps, kbps, p.UplinkBps/1000)
			}
			if p.TbfSentBytes > 1<<20 {
				measured++
			}
		}
		recvP2P += s.BytesP2P
		sentUp += s.BytesUp
		origin += s.BytesOrigin
	}
	if limited == 0 || measured == 0 {
		t.Errorf("%d limited peers, %d of them uploaded over 1 MiB: the tbf check measured nothing", limited, measured)
	}
	// Bytes add up: what the peers received over data channels is at most
	// what the seeder and the peers sent. The first runs received 89 % of it:
	// bytes_up counts what a sender handed to its data channel (SCTP buffers
	// it behind the tbf) and receivers that exit first stop counting while
	// senders go on; the 0.85 floor is that observation, not a derivation.
	sent := r.SeederBytes + sentUp
	if r.PeerBytes != sentUp || r.OriginBytes != origin {
		t.Errorf("result peer bytes %d origin %d, peers' summaries %d and %d", r.PeerBytes, r.OriginBytes, sentUp, origin)
	}
	if float64(recvP2P) < 0.85*float64(sent) || float64(recvP2P) > 1.01*float64(sent) {
		t.Errorf("peers received %d B over data channels, seeder %d + peers %d = %d B sent", recvP2P, r.SeederBytes, sentUp, sent)
	}
	if off := float64(sentUp) / float64(sentUp+r.SeederBytes+origin); r.Offload < off-0.0001 || r.Offload > off+0.0001 {
		t.Errorf("offload %.4f, bytes say %.4f", r.Offload, off)
	}
}
