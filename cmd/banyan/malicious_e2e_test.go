package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/banyan-live/banyan/internal/e2e"
	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/peer/node"
	"github.com/banyan-live/banyan/peer/rtc"
	"github.com/banyan-live/banyan/protocol"
)

// flipLink corrupts every piece it relays: one byte of the chunk flipped.
type flipLink struct {
	peer.Link
	flipped *atomic.Int64
}

func (l flipLink) Send(msg []byte) error {
	if len(msg) > 40 && msg[0] == 'P' {
		bad := append([]byte(nil), msg...)
		bad[len(bad)-1] ^= 0x55
		l.flipped.Add(1)
		return l.Link.Send(bad)
	}
	return l.Link.Send(msg)
}

func TestMaliciousParentEvicted(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the malicious-parent test in -short mode")
	}
	ffprobe := e2e.Require(t, "ffprobe")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	up := liveDemo(t, ctx, 40, "--root-capacity", "1", "--stripes", "1")

	// The forger joins first with a big uplink: the root's only child.
	var flipped atomic.Int64
	var firstFlip atomic.Int64
	evilDone := make(chan error, 1)
	go func() {
		evilDone <- node.Run(ctx, node.ClientConfig{
			TrackerURL: "ws" + strings.TrimPrefix(up.base, "http") + "/ws",
			Join:       protocol.Join{Stream: "demo", Kind: protocol.KindNative, UploadKbps: 100_000},
			Node: node.Config{
				API: rtc.LoopbackAPI(),
				WrapLink: func(l peer.Link) peer.Link {
					firstFlip.CompareAndSwap(0, time.Now().UnixNano())
					return flipLink{Link: l, flipped: &flipped}
				},
			},
		})
	}()
	time.Sleep(2 * time.Second)

	dir := t.TempDir()
	var honest []*peerProc
	for i := 0; i < 4; i++ {
		p := startPeer(t, up.base, "--duration", "20s", "--no-upload", "--record", filepath.Join(dir, "h"+string(rune('a'+i))+".mp4"))
		p.record = filepath.Join(dir, "h"+string(rune('a'+i))+".mp4")
		honest = append(honest, p)
		time.Sleep(200 * time.Millisecond)
	}

	// Detected, reported and evicted.
	var evictedAfter time.Duration
	select {
	case err := <-evilDone:
		if !errors.Is(err, node.ErrRefused) || !strings.Contains(err.Error(), protocol.CodeEvicted) {
			t.Fatalf("the forger ended with %v, want an eviction", err)
		}
		evictedAfter = time.Since(time.Unix(0, firstFlip.Load()))
	case <-time.After(30 * time.Second):
		t.Fatalf("the forger was not evicted (%d pieces flipped)", flipped.Load())
	}
	if flipped.Load() == 0 {
		t.Fatal("the forger never relayed anything: the test proves nothing")
	}

	detected := uint64(0)
	for i, p := range honest {
		s := p.summary(t)
		detected += s.BadChunks
		if s.ChunksPlayed < 40 {
			t.Errorf("honest peer %d played only %d chunks: %+v\n%s", i, s.ChunksPlayed, s, p.errb.String())
		}
		// Nothing forged was played: the recording is exactly what ffprobe decodes.
		frames, _ := recording(t, p.record)
		if got := ffprobeFrames(t, ffprobe, p.record); got != frames {
			t.Errorf("honest peer %d: recording holds %d frames, ffprobe decodes %d", i, frames, got)
		}
	}
	if detected == 0 {
		t.Error("no honest peer detected a forged chunk")
	}
	if ev := metric(t, up, "banyan_tracker_evictions_total"); ev < 1 {
		t.Errorf("evictions metric %v", ev)
	}
	t.Logf("figures: forger evicted %v after its first link; %d pieces flipped, %d forged chunks detected by honest peers, none played",
		evictedAfter.Round(time.Millisecond), flipped.Load(), detected)
	up.stop(t, syscall.SIGTERM)
}
