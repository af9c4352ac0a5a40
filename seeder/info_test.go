package seeder

import (
	"crypto/ed25519"
	"log/slog"
	"testing"
	"time"
)

func TestInfoRates(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	now := time.Unix(1_800_000_000, 0)
	s, err := New(Config{SigningKey: priv, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if p, kbps, fps, live := s.Info("none"); p != "" || kbps != 0 || fps != 0 || live {
		t.Fatalf("unknown stream: %q %v %v %v", p, kbps, fps, live)
	}
	pub, err := s.StartPublish("demo", "rtmp", true, 0, func() {})
	if err != nil {
		t.Fatal(err)
	}
	// 30 video frames a second: the first estimate needs two seconds.
	frames := func(n int) { pub.rate.videoFrames.Add(uint64(n)) }
	frames(30)
	now = now.Add(time.Second)
	if p, _, fps, live := s.Info("demo"); p != "rtmp" || !live || fps != 0 {
		t.Fatalf("after 1 s: %q fps %v live %v", p, fps, live)
	}
	frames(30)
	now = now.Add(time.Second)
	if _, _, fps, _ := s.Info("demo"); fps != 30 {
		t.Fatalf("after 2 s: fps %v", fps)
	}
	// The rate follows the recent frames, not the average since the start.
	frames(20)
	now = now.Add(time.Second)
	frames(20)
	now = now.Add(time.Second)
	if _, _, fps, _ := s.Info("demo"); fps != 20 {
		t.Fatalf("after a drop to 20 fps: %v", fps)
	}
	// Bitrate: the sealed bytes of the last chunks over their media time.
	st := s.streams["demo"]
	st.window.StartEpoch(EpochInfo{Epoch: 1, Init: &Entry{Epoch: 1}})
	for i := uint64(1); i <= 20; i++ {
		st.window.Add(&Entry{Epoch: 1, Seq: i, Duration: 250 * time.Millisecond, Sealed: make([]byte, 31250), Added: now})
	}
	if _, kbps, _, _ := s.Info("demo"); kbps != 1000 {
		t.Fatalf("kbps %v, want 1000", kbps)
	}
	pub.End(nil)
	if _, _, _, live := s.Info("demo"); live {
		t.Fatal("live after End")
	}
}
