package memnet

import (
	"errors"
	"testing"
	"time"

	"github.com/banyan-live/banyan/peer"
)

func TestLatencyBandwidthBackpressure(t *testing.T) {
	n := New(Config{Latency: 10 * time.Millisecond})
	a, b := n.Connect(1, 2, LinkOptions{Bps: 8e6, HighWater: 3000}) // 1 MB/s
	var at []time.Duration
	b.OnMessage(func(m []byte) { at = append(at, n.Now().Sub(n.start)) })
	msg := make([]byte, 1000) // 1 ms at 1 MB/s
	for i := range 3 {
		if err := a.Send(msg); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if a.Buffered() != 3000 {
		t.Errorf("buffered %d, want 3000", a.Buffered())
	}
	if err := a.Send(msg); !errors.Is(err, peer.ErrBackpressure) {
		t.Errorf("4th send: %v, want backpressure", err)
	}
	n.RunFor(50 * time.Millisecond)
	want := []time.Duration{11 * time.Millisecond, 12 * time.Millisecond, 13 * time.Millisecond}
	if len(at) != 3 || at[0] != want[0] || at[1] != want[1] || at[2] != want[2] {
		t.Errorf("arrivals %v, want %v", at, want)
	}
	if a.Buffered() != 0 || a.Send(msg) != nil {
		t.Error("link did not drain")
	}
	n.Node(2).Kill()
	if err := a.Send(msg); !errors.Is(err, peer.ErrLinkClosed) {
		t.Errorf("send to a killed node: %v", err)
	}
}

func TestUploadShared(t *testing.T) {
	n := New(Config{UploadBps: 8e6})
	a1, b1 := n.Connect(1, 2, LinkOptions{})
	a2, b2 := n.Connect(1, 3, LinkOptions{})
	var t1, t2 time.Duration
	b1.OnMessage(func([]byte) { t1 = n.Now().Sub(n.start) })
	b2.OnMessage(func([]byte) { t2 = n.Now().Sub(n.start) })
	_ = a1.Send(make([]byte, 1000))
	_ = a2.Send(make([]byte, 1000))
	n.RunFor(time.Second)
	if t1 != time.Millisecond || t2 != 2*time.Millisecond {
		t.Errorf("uplink not shared: %v %v", t1, t2)
	}
}

func TestSeededLossAndOrder(t *testing.T) {
	run := func() (int, bool) {
		n := New(Config{Seed: 42, Latency: 5 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.1})
		a, b := n.Connect(1, 2, LinkOptions{})
		var got []byte
		b.OnMessage(func(m []byte) { got = append(got, m[0]) })
		for i := range 200 {
			_ = a.Send([]byte{byte(i)})
		}
		n.RunFor(time.Second)
		ordered := true
		for i := 1; i < len(got); i++ {
			ordered = ordered && got[i] > got[i-1]
		}
		return len(got), ordered
	}
	c1, o1 := run()
	c2, _ := run()
	if c1 != c2 || c1 < 160 || c1 > 195 {
		t.Errorf("seeded loss not reproducible or implausible: %d %d of 200", c1, c2)
	}
	if !o1 {
		t.Error("ordered link reordered")
	}
}

func TestTimers(t *testing.T) {
	n := New(Config{})
	var ticks []time.Duration
	stop := n.Every(100*time.Millisecond, func(now time.Time) { ticks = append(ticks, now.Sub(n.start)) })
	n.RunFor(350 * time.Millisecond)
	stop()
	n.RunFor(time.Second)
	if len(ticks) != 3 || ticks[2] != 300*time.Millisecond {
		t.Errorf("ticks %v", ticks)
	}
}
