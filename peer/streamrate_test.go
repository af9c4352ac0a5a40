package peer_test

import (
	"testing"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/peer"
)

// The root's measured stream rate (what the tracker sizes every child slot
// from, protocol.Stats.StreamKbps) is the stream's from the first chunks,
// not Config.InitialRate decaying over a dozen chunks: with a 1.5 Mbit/s
// stream, the seeder's first report (2 s in) said 3.5 Mbit/s, its second
// 2.3.
func TestStreamKbpsFromFirstChunks(t *testing.T) {
	const kbps = 1500
	src := newSource(t, kbps*1000/8/4) // 250 ms chunks
	now := time.Unix(1e9, 0)
	e, err := peer.New(peer.Config{Stream: testStream, PublicKey: src.pub, Stripes: 2, Root: true, Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got := e.Stats().StreamKbps; got != 0 {
		t.Fatalf("before any chunk: %d kbps, want 0 (unknown)", got)
	}
	if err := e.Publish(src.chunk(t, 0)); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 40; seq++ {
		if err := e.Publish(src.chunk(t, seq)); err != nil {
			t.Fatal(err)
		}
		now = now.Add(src.dur)
		// The sealed size (header, signature, tag) is ~0.5 % over the payload.
		if got := e.Stats().StreamKbps; got < kbps*8/10 || got > kbps*12/10 {
			t.Fatalf("after %d chunks (%v of media): %d kbps, want %d ± 20 %%", seq, time.Duration(seq)*src.dur, got, kbps)
		}
	}
}

// Chunks of unequal length (a packager cutting at keyframes: 234, 266 and
// 100 ms here) weigh by their media time: the rate is bytes over seconds.
func TestStreamKbpsUnequalChunks(t *testing.T) {
	const kbps = 1600
	durs := []time.Duration{234 * time.Millisecond, 266 * time.Millisecond, 100 * time.Millisecond, 234 * time.Millisecond}
	src := newSource(t, 0)
	now := time.Unix(1e9, 0)
	e, err := peer.New(peer.Config{Stream: testStream, PublicKey: src.pub, Stripes: 2, Root: true, Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Publish(src.chunk(t, 0)); err != nil {
		t.Fatal(err)
	}
	var media time.Duration
	for seq := uint64(1); seq <= 24; seq++ {
		d := durs[int(seq-1)%len(durs)]
		// Keyframe chunks twice the size of the others, per second.
		n := int(d.Seconds() * kbps * 1000 / 8)
		if seq%4 == 1 {
			n = n * 3 / 2
		} else {
			n = n * 5 / 6
		}
		src.payload = n
		b := sealAt(t, src, seq, media, d)
		media += d
		if err := e.Publish(b); err != nil {
			t.Fatal(err)
		}
		now = now.Add(d)
		if seq < 4 {
			continue
		}
		if got := e.Stats().StreamKbps; got < kbps*8/10 || got > kbps*12/10 {
			t.Fatalf("after %d chunks: %d kbps, want %d ± 20 %%", seq, got, kbps)
		}
	}
}

// sealAt seals chunk seq of src's epoch at media time t, d long, with
// src.payload bytes.
func sealAt(tb testing.TB, src *source, seq uint64, t, d time.Duration) []byte {
	tb.Helper()
	h := chunk.Header{Epoch: src.epoch, Seq: seq, MediaTime: uint64(t.Microseconds()), Duration: uint32(d.Microseconds())}
	if seq%4 == 1 {
		h.Flags |= chunk.FlagKeyframe
	}
	b, err := src.sealer.Seal(h, make([]byte, src.payload))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
