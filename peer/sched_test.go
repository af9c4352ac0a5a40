package peer

import (
	"crypto/ed25519"
	"fmt"
	"github.com/banyan-live/banyan/chunk"
	"slices"
	"testing"
	"time"
)

func TestSendOrder(t *testing.T) {
	k := func(seq uint64) key { return key{1, seq} }
	// Pushed in a scrambled order; popped in the scheduler's order.
	in := []outMsg{
		{class: classRepair, k: k(5), rank: 1, idx: 0},
		{class: classFeed, k: k(7), rank: 2, idx: 1},
		{class: classBurst, k: k(3), rank: 1, idx: 0},
		{class: classFeed, k: k(7), rank: 2, idx: 0}, // reordered on the way in
		{class: classFeed, k: k(6), rank: 9, idx: 3}, // an older chunk goes first
		{class: classFeed, k: k(7), rank: 1, idx: 2},
		{class: classFeed, k: k(7), rank: 1, idx: 1},
	}
	want := []struct {
		c    sendClass
		seq  uint64
		rank int
		idx  uint16
	}{
		{classFeed, 6, 9, 3},
		{classFeed, 7, 1, 1}, // rank 1's copy completes before rank 2's starts
		{classFeed, 7, 1, 2},
		{classFeed, 7, 2, 0},
		{classFeed, 7, 2, 1},
		{classBurst, 3, 1, 0},
		{classRepair, 5, 1, 0},
	}
	var u uplink
	for _, m := range in {
		m.msg = make([]byte, 10)
		u.push(m)
	}
	if u.queued != 70 {
		t.Fatalf("queued %d bytes, want 70", u.queued)
	}
	for i, w := range want {
		m := u.pop()
		if m.class != w.c || m.k.seq != w.seq || m.rank != w.rank || m.idx != w.idx {
			t.Errorf("pop %d: class %d seq %d rank %d idx %d, want %+v", i, m.class, m.k.seq, m.rank, m.idx, w)
		}
	}
	if u.len() != 0 || u.queued != 0 {
		t.Errorf("left %d messages, %d bytes", u.len(), u.queued)
	}
}

func TestSendOrderTiesKeepFIFO(t *testing.T) {
	var u uplink
	for i := range 50 {
		u.push(outMsg{class: classRepair, k: key{1, 1}, msg: []byte{byte(i)}})
	}
	u.requeue(outMsg{class: classRepair, k: key{1, 1}, ord: 0, msg: []byte{255}}) // popped earlier: keeps its place
	if m := u.pop(); m.msg[0] != 255 {
		t.Fatalf("requeued message lost its place: got %d first", m.msg[0])
	}
	for i := range 50 {
		if m := u.pop(); m.msg[0] != byte(i) {
			t.Fatalf("pop %d: got %d", i, m.msg[0])
		}
	}
}

func TestUplinkRate(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	tests := []struct {
		name string
		// pumps: at ms, the links hold in bytes, drained bytes left them
		// since the last pump, and they hold after bytes after this one.
		pumps        [][4]int // at, in, drained, after
		wantRate     float64  // bytes/s
		wantMeasured bool
	}{
		{"nothing sent: unknown", [][4]int{{0, 0, 0, 0}, {300, 0, 0, 0}, {600, 0, 0, 0}}, 0, false},
		{"backed up 500 ms at 1 MB/s: measured, less one message", [][4]int{
			{0, 0, 0, 300_000}, {250, 50_000, 250_000, 300_000}, {500, 50_000, 250_000, 300_000},
		}, (500_000 - 16384) / 0.5, true},
		{"ran dry: a lower bound only", [][4]int{{0, 0, 0, 64_000}, {250, 0, 64_000, 64_000}, {500, 0, 64_000, 0}}, (128_000 - 16384) / 0.5, false},
		// A hidden tab pumps only when a piece arrives (its timers fire once
		// a second), just after writing a have notice (220 B) to a link: the
		// links never read empty, yet they drained each forward long before
		// the next pump. Not a measurement of the uplink.
		{"control bytes at every pump are no backlog", [][4]int{
			{0, 0, 0, 30_000}, {130, 220, 30_000, 30_220}, {260, 220, 30_000, 30_220},
			{390, 220, 30_000, 30_220}, {520, 220, 30_000, 30_220},
		}, (120_000 - 16384) / 0.52, false},
		{"a link that closed with bytes in it is no drain", [][4]int{{0, 0, 0, 500_000}, {600, 0, 0, 0}}, 0, false},
		{"a slow-link window does not lower the max", [][4]int{
			{0, 0, 0, 300_000}, {250, 50_000, 250_000, 300_000}, {500, 50_000, 250_000, 300_000},
			{750, 295_000, 5_000, 300_000}, {1000, 295_000, 5_000, 300_000},
		}, (500_000 - 16384) / 0.5, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var u uplink
			var last time.Time
			for _, p := range tc.pumps {
				last = ms(p[0])
				u.observe(last, p[1], p[2])
				u.inLinks = p[3]
			}
			if d := u.rate - tc.wantRate; d > tc.wantRate/100+1 || d < -tc.wantRate/100-1 {
				t.Errorf("rate %.0f B/s, want %.0f", u.rate, tc.wantRate)
			}
			if m := u.measured(last); m != tc.wantMeasured {
				t.Errorf("measured %v, want %v", m, tc.wantMeasured)
			}
		})
	}
}

func TestUplinkBudget(t *testing.T) {
	tests := []struct {
		rate       float64
		budget     int
		linkCap    int
		backlogged time.Duration // of 200 kB queued, 100 kB in the links
	}{
		{0, minBudget, minLinkCap, 0},
		{125e3, minBudget, minLinkCap, 2400 * time.Millisecond}, // 1 Mbit/s
		{1.25e6, 125_000, 62_500, 240 * time.Millisecond},       // 10 Mbit/s
		{100e6, maxBudget, maxBudget / 2, 3 * time.Millisecond},
	}
	for _, tc := range tests {
		u := uplink{rate: tc.rate, queued: 200_000, inLinks: 100_000}
		if b := u.budget(); b != tc.budget {
			t.Errorf("rate %.0f: budget %d, want %d", tc.rate, b, tc.budget)
		}
		if c := u.linkCap(); c != tc.linkCap {
			t.Errorf("rate %.0f: link cap %d, want %d", tc.rate, c, tc.linkCap)
		}
		if b := u.backlog(); b != tc.backlogged {
			t.Errorf("rate %.0f: backlog %v, want %v", tc.rate, b, tc.backlogged)
		}
	}
}

// TestRerank: a child that says it relays moves ahead of its siblings for
// what is already queued, all its pieces at once, never one overtaking
// another of its own.
func TestRerank(t *testing.T) {
	leaf, relay := &nbr{id: 2, rank: 1}, &nbr{id: 3, rank: 2}
	k := key{1, 4}
	var u uplink
	for i := range uint16(3) {
		for _, n := range []*nbr{leaf, relay} {
			u.push(outMsg{class: classFeed, k: k, rank: sendRank(n, 0), idx: i, to: n, msg: []byte{byte(i)}})
		}
	}
	u.push(outMsg{class: classFeed, k: key{1, 5}, rank: sendRank(relay, 1), idx: 0, to: relay, msg: []byte{9}}) // another stripe
	relay.relays[0] = 4
	u.rerank(relay, func(k key) bool { return k.seq == 4 }, sendRank(relay, 0))
	var got []string
	for u.len() > 0 {
		m := u.pop()
		got = append(got, fmt.Sprintf("%d:%d/%d", m.to.id, m.k.seq, m.idx))
	}
	want := []string{"3:4/0", "3:4/1", "3:4/2", "2:4/0", "2:4/1", "2:4/2", "3:5/0"}
	if !slices.Equal(got, want) {
		t.Errorf("send order %v, want %v", got, want)
	}
}

func TestSendRank(t *testing.T) {
	a := &nbr{rank: 1}                                 // leaf, attached first
	b := &nbr{rank: 2, relays: [16]uint16{0, 2}}       // feeds 2 in stripe 1
	c := &nbr{rank: 3, relays: [16]uint16{0, 5}}       // feeds 5 in stripe 1
	d := &nbr{rank: 4, relays: [16]uint16{1 << 15, 0}} // feeds many in stripe 0 only
	tests := []struct {
		stripe int
		order  []*nbr
	}{
		{1, []*nbr{c, b, a, d}},
		{0, []*nbr{d, a, b, c}},
	}
	for _, tt := range tests {
		for i := 1; i < len(tt.order); i++ {
			if sendRank(tt.order[i-1], tt.stripe) >= sendRank(tt.order[i], tt.stripe) {
				t.Errorf("stripe %d: rank %d (%d) not before rank %d (%d)", tt.stripe,
					tt.order[i-1].rank, sendRank(tt.order[i-1], tt.stripe), tt.order[i].rank, sendRank(tt.order[i], tt.stripe))
			}
		}
	}
}

// orderLink records, in one log shared by siblings, whom each piece went to.
type orderLink struct {
	nullLink
	id  PeerID
	log *[]PeerID
}

func (l *orderLink) Send(m []byte) error {
	if len(m) > 0 && m[0] == msgPiece {
		*l.log = append(*l.log, l.id)
	}
	return nil
}

// TestRelayChildFirst: a parent sends a chunk to the child that told it it
// relays before the leaf that was attached first.
func TestRelayChildFirst(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	mk, _ := chunk.NewMasterKey(1, nil)
	keys, _ := chunk.NewKeyring(mk)
	seal := func(h chunk.Header, n int) []byte {
		b, err := chunk.Seal(nil, h, make([]byte, n), keys, priv, "rl")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, announce := range []bool{false, true} {
		now := time.Unix(1000, 0)
		e, err := New(Config{Stream: "rl", PublicKey: priv.Public().(ed25519.PublicKey), Stripes: 1, Root: true, Clock: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		var log []PeerID
		leaf, relay := &orderLink{id: 2, log: &log}, &orderLink{id: 3, log: &log}
		_ = e.AddChild(0, 2, leaf)
		_ = e.AddChild(0, 3, relay)
		if announce {
			e.HandleMessage(3, relay, appendRelay(nil, 0, 2))
		}
		if err := e.Publish(seal(chunk.Header{Epoch: 1, Flags: chunk.FlagInit, KeyID: 1}, 100)); err != nil {
			t.Fatal(err)
		}
		log = log[:0]
		if err := e.Publish(seal(chunk.Header{Epoch: 1, Seq: 1, Flags: chunk.FlagKeyframe, KeyID: 1, Duration: 250000}, 40000)); err != nil {
			t.Fatal(err)
		}
		for range 5 {
			now = now.Add(50 * time.Millisecond)
			e.Tick(now)
		}
		e.Close()
		if len(log) < 4 || len(log)%2 != 0 {
			t.Fatalf("announce %v: %d pieces sent", announce, len(log))
		}
		first := PeerID(2)
		if announce {
			first = 3
		}
		half := len(log) / 2
		for i, id := range log {
			if (i < half) != (id == first) {
				t.Fatalf("announce %v: send order %v, want every piece to %d first", announce, log, first)
			}
		}
	}
}

// relayLink records the relay notices sent over it.
type relayLink struct {
	nullLink
	said []int
}

func (l *relayLink) Send(m []byte) error {
	if _, n, err := parseRelay(m, 1); err == nil {
		l.said = append(l.said, n)
	}
	return nil
}

// TestRelayNoticeDownstream: a peer's relay notice counts every viewer it
// feeds, its children and what their own notices say they feed, so that
// its parent serves the copy with the larger subtree first.
func TestRelayNoticeDownstream(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	tests := []struct {
		name string
		kids []int // each child's own notice (0: a leaf, no notice)
		want int
	}{
		{"no children", nil, 0},
		{"two leaves", []int{0, 0}, 2},
		{"a relay of ten and a leaf", []int{10, 0}, 12},
		{"two relays", []int{3, 40}, 45},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			e, err := New(Config{Stream: "dn", PublicKey: priv.Public().(ed25519.PublicKey), Stripes: 1, Clock: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			up := &relayLink{}
			if err := e.SetParent(0, 100, up); err != nil {
				t.Fatal(err)
			}
			for i, n := range tt.kids {
				id := PeerID(i + 2)
				l := &nullLink{}
				if err := e.AddChild(0, id, l); err != nil {
					t.Fatal(err)
				}
				if n > 0 {
					e.HandleMessage(id, l, appendRelay(nil, 0, n))
				}
			}
			// The ping repeats the notice with what the children said.
			now = now.Add(3 * time.Second)
			e.Tick(now)
			if len(up.said) == 0 && tt.want > 0 {
				t.Fatal("no relay notice to the parent")
			}
			if len(up.said) > 0 {
				if got := up.said[len(up.said)-1]; got != tt.want {
					t.Errorf("notice says %d, want %d (all: %v)", got, tt.want, up.said)
				}
			}
		})
	}
}
