package seeder_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/seeder"
)

// Parameter sets from libx264 (High, 1280x720).
var (
	testSPS = mustHex("6764001facd9405005bb0110000003001000000303c0f1831960")
	testPPS = mustHex("68ebe3cb22c0")
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// clock is a manual clock the test moves with the media time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// capture keeps what a seeder emits: sealed chunks and key events.
type capture struct {
	mu     sync.Mutex
	chunks []*seeder.Entry
	events []seeder.Event
}

func newSeeder(t *testing.T, cfg seeder.Config) (*seeder.Seeder, *capture, ed25519.PublicKey) {
	t.Helper()
	seed := sha256.Sum256([]byte("seeder access test"))
	priv := ed25519.NewKeyFromSeed(seed[:])
	c := &capture{}
	cfg.SigningKey = priv
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Events = func(e seeder.Event) { c.mu.Lock(); c.events = append(c.events, e); c.mu.Unlock() }
	cfg.Root = func(_ string, e *seeder.Entry) { c.mu.Lock(); c.chunks = append(c.chunks, e); c.mu.Unlock() }
	s, err := seeder.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, c, priv.Public().(ed25519.PublicKey)
}

// feedVideo writes seconds of 30 fps video-only media (a keyframe every
// second), moving clk with the media time from start.
func feedVideo(t *testing.T, p *seeder.Publish, clk *clock, start time.Time, from, seconds int) {
	t.Helper()
	for i := from * 30; i < (from+seconds)*30; i++ {
		dts := time.Duration(i) * time.Second / 30
		clk.set(start.Add(dts))
		key := i%30 == 0
		slice := make([]byte, 400)
		slice[0] = 0x41
		nalus := [][]byte{slice}
		if key {
			slice[0] = 0x65
			nalus = [][]byte{testSPS, testPPS, slice}
		}
		if err := p.WriteAU(media.AccessUnit{Kind: media.Video, DTS: dts, PTS: dts, Key: key, NALUs: nalus}); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
}

func ring(t *testing.T, keys []chunk.MasterKey) *chunk.Keyring {
	t.Helper()
	r, err := chunk.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := r.Add(k); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// TestRotationLocksOutRemovedViewer follows the seeder's content-key
// schedule: a viewer that keeps receiving the keys the seeder announces
// (an admitted one) opens every chunk; a viewer removed before a rotation
// (it got no Keys after that) opens the chunks sealed before it and none
// sealed with the new key: ErrUnknownKey.
func TestRotationLocksOutRemovedViewer(t *testing.T) {
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	clk := &clock{t: start}
	s, c, pub := newSeeder(t, seeder.Config{Now: clk.Now, KeyRotation: 4 * time.Second, KeyGrace: time.Second})
	p, err := s.StartPublish("vip", "rtmp", false, 0, func() {})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.VideoConfig(media.VideoConfig{SPS: testSPS, PPS: testPPS}); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	first := c.events[0].Keys
	c.mu.Unlock()
	admitted, removed := ring(t, first), ring(t, first)

	feedVideo(t, p, clk, start, 0, 14)
	p.End(nil)

	// The admitted viewer applies every key event, as the tracker relays
	// them to admitted sessions; the removed one applied none.
	c.mu.Lock()
	defer c.mu.Unlock()
	var announced []uint32
	for _, e := range c.events {
		if e.Kind == seeder.KeysChanged {
			for _, k := range e.Keys {
				if _, ok := admitted.Get(k.ID); !ok {
					announced = append(announced, k.ID)
					admitted.Add(k)
				}
			}
		}
	}
	if len(announced) < 2 {
		t.Fatalf("14 s with a 4 s rotation announced keys %v, want at least 2", announced)
	}
	byKey := map[uint32]int{}
	lockedOut := 0
	for _, e := range c.chunks {
		h, _, err := chunk.Open(pub, "vip", admitted, e.Sealed)
		if err != nil {
			t.Fatalf("admitted viewer: chunk %d/%d: %v", e.Epoch, e.Seq, err)
		}
		byKey[h.KeyID]++
		_, _, err = chunk.Open(pub, "vip", removed, e.Sealed)
		switch {
		case h.KeyID == first[0].ID && err != nil:
			t.Fatalf("removed viewer: chunk %d sealed with its key: %v", e.Seq, err)
		case h.KeyID != first[0].ID && !errors.Is(err, chunk.ErrUnknownKey):
			t.Fatalf("removed viewer opened chunk %d sealed with new key %d: %v", e.Seq, h.KeyID, err)
		case h.KeyID != first[0].ID:
			lockedOut++
		}
	}
	if len(byKey) < 3 || lockedOut == 0 {
		t.Fatalf("chunks per key id %v; %d locked out", byKey, lockedOut)
	}
	// Old keys are dropped: the seeder holds the active and the previous.
	if ks := s.Keys("vip"); len(ks) > 2 {
		t.Fatalf("seeder still holds %d keys", len(ks))
	}
	t.Logf("chunks per key id %v; the removed viewer could open %d of %d chunks", byKey, len(c.chunks)-lockedOut, len(c.chunks))
}

// TestMaxLive: streams per server. A new stream over the limit is refused;
// taking over a live stream and a stream whose publish ended are not.
func TestMaxLive(t *testing.T) {
	s, _, _ := newSeeder(t, seeder.Config{MaxLive: 2})
	a, err := s.StartPublish("a", "rtmp", true, 0, func() {})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartPublish("b", "whip", true, 0, func() {}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartPublish("c", "rtmp", true, 0, func() {}); !errors.Is(err, seeder.ErrTooManyStreams) {
		t.Fatalf("third stream: %v, want ErrTooManyStreams", err)
	}
	stopped := false
	a2, err := s.StartPublish("a", "rtmp", true, 0, func() { stopped = true })
	if err != nil {
		t.Fatalf("take-over at the limit: %v", err)
	}
	_ = a
	a2.End(nil)
	if _, err := s.StartPublish("c", "rtmp", true, 0, func() {}); err != nil {
		t.Fatalf("after an end: %v", err)
	}
	if stopped {
		t.Fatal("the take-over's own stop was called")
	}
}
