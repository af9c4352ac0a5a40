package peer

import (
	"crypto/ed25519"
	"slices"
	"testing"
	"time"

	"github.com/banyan-live/banyan/chunk"
)

// What a peer sends that its receiver already holds (duplicate bytes):
// the have notices that stop a slower copy, and the send rules that leave
// out what a child holds or what is already on its way.

func TestHeldHas(t *testing.T) {
	h := held{ok: true, init: true, epoch: 3, from: 10}
	cases := []struct {
		name string
		h    held
		k    key
		want bool
	}{
		{"nothing said", held{}, key{3, 1}, false},
		{"init held", h, key{3, 0}, true},
		{"init not held", held{ok: true, epoch: 3, from: 10}, key{3, 0}, false},
		{"before from", h, key{3, 9}, true},
		{"at from", h, key{3, 10}, false},
		{"after from", h, key{3, 11}, false},
		{"other epoch", h, key{4, 2}, false},
		{"from 0: nothing", held{ok: true, epoch: 3}, key{3, 1}, false},
	}
	for _, c := range cases {
		if got := c.h.has(c.k); got != c.want {
			t.Errorf("%s: has(%v) = %v, want %v", c.name, c.k, got, c.want)
		}
	}
}

func TestSentLogOnTheWay(t *testing.T) {
	t0 := time.Unix(1000, 0)
	k := key{1, 5}
	cases := []struct {
		name  string
		ahead int
		rate  float64
		rtt   time.Duration
		ask   time.Duration // after the send
		k     key
		idx   uint16
		want  bool
	}{
		{"just sent", 16 << 10, 1 << 20, 40 * time.Millisecond, 10 * time.Millisecond, k, 2, true},
		{"behind a full link", 512 << 10, 1 << 20, 40 * time.Millisecond, 400 * time.Millisecond, k, 2, true},
		{"long arrived: lost", 16 << 10, 1 << 20, 40 * time.Millisecond, 200 * time.Millisecond, k, 2, false},
		{"other piece", 16 << 10, 1 << 20, 40 * time.Millisecond, 10 * time.Millisecond, k, 3, false},
		{"other chunk", 16 << 10, 1 << 20, 40 * time.Millisecond, 10 * time.Millisecond, key{1, 6}, 2, false},
		{"rate unknown", 16 << 10, 0, 40 * time.Millisecond, 120 * time.Millisecond, k, 2, true},
	}
	for _, c := range cases {
		var l sentLog
		l.add(k, 2, t0, c.ahead, c.rate, c.rtt)
		if got := l.onTheWay(c.k, c.idx, t0.Add(c.ask)); got != c.want {
			t.Errorf("%s: onTheWay = %v, want %v", c.name, got, c.want)
		}
	}
	// The log keeps the newest sends.
	var l sentLog
	for i := range 100 {
		l.add(key{1, uint64(i)}, 0, t0, 0, 1<<20, time.Second)
	}
	if l.onTheWay(key{1, 0}, 0, t0) || !l.onTheWay(key{1, 99}, 0, t0) {
		t.Error("sent log keeps old sends or forgets new ones")
	}
}

func TestLostPieces(t *testing.T) {
	cases := []struct {
		name    string
		missing []uint16
		hi      uint16
		ask     []uint16
		askHi   uint16
	}{
		{"holes below the last piece sent", []uint16{1, 3, 6, 7}, 6, []uint16{1, 3}, 4},
		{"one hole", []uint16{0, 5}, 5, []uint16{0}, 1},
		{"no hole: all", []uint16{6, 7}, 6, []uint16{6, 7}, 0},
		{"all below", []uint16{2, 4}, 9, []uint16{2, 4}, 5},
	}
	for _, c := range cases {
		ask, hi := lostPieces(c.missing, c.hi)
		if !slices.Equal(ask, c.ask) || hi != c.askHi {
			t.Errorf("%s: lostPieces(%v, %d) = %v, %d; want %v, %d", c.name, c.missing, c.hi, ask, hi, c.ask, c.askHi)
		}
	}
}

// holdLink records what goes through it and reports a backed-up buffer
// while hold is set, so the scheduler keeps messages queued.
type holdLink struct {
	hold   bool
	pieces []chunk.Piece
	msgs   [][]byte
}

func (l *holdLink) Send(m []byte) error {
	l.msgs = append(l.msgs, m)
	if p, err := chunk.ParsePiece(m); err == nil {
		l.pieces = append(l.pieces, p)
	}
	return nil
}

func (l *holdLink) Buffered() int {
	if l.hold {
		return 4 << 20
	}
	return 0
}
func (l *holdLink) Path() string { return PathMem }
func (l *holdLink) Close() error { return nil }

func (l *holdLink) sent(seq uint64) int {
	n := 0
	for _, p := range l.pieces {
		if p.Seq == seq {
			n++
		}
	}
	return n
}

func (l *holdLink) haves(k key) int {
	n := 0
	for _, m := range l.msgs {
		if got, err := parseRef(m, msgHave); err == nil && got == k {
			n++
		}
	}
	return n
}

type testChunks struct {
	priv ed25519.PrivateKey
	keys *chunk.Keyring
}

func newTestChunks() testChunks {
	mk, _ := chunk.NewMasterKey(1, nil)
	keys, _ := chunk.NewKeyring(mk)
	return testChunks{priv: ed25519.NewKeyFromSeed(make([]byte, 32)), keys: keys}
}

func (c testChunks) seal(t *testing.T, seq uint64, n int) []byte {
	t.Helper()
	h := chunk.Header{Epoch: 1, Seq: seq, KeyID: 1}
	if seq == 0 {
		h.Flags = chunk.FlagInit
	} else {
		h.Duration, h.MediaTime = 250000, (seq-1)*250000
		if seq%4 == 1 {
			h.Flags = chunk.FlagKeyframe
		}
	}
	b, err := chunk.Seal(nil, h, make([]byte, n), c.keys, c.priv, "dup")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (c testChunks) engine(t *testing.T, root bool, stripes int, now *time.Time) *Engine {
	t.Helper()
	e, err := New(Config{Stream: "dup", PublicKey: c.priv.Public().(ed25519.PublicKey), Stripes: stripes, Root: root,
		Clock: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// rootWithChild is a root engine with child 9 in stripe 0.
func (c testChunks) rootWithChild(t *testing.T, stripes int, now *time.Time) (*Engine, *holdLink) {
	t.Helper()
	e := c.engine(t, true, stripes, now)
	l := &holdLink{}
	if err := e.AddChild(0, 9, l); err != nil {
		t.Fatal(err)
	}
	return e, l
}

// TestHaveDropsQueued: a have notice drops what is still queued of the
// chunk for whoever sent it, whether it was feed to a child or a repair
// answer to a neighbour that asked (a repair answer used to go out all the
// same, and arrive as a duplicate).
func TestHaveDropsQueued(t *testing.T) {
	tc := newTestChunks()
	for _, c := range []struct {
		name   string
		repair bool
	}{{"feed", false}, {"repair answer", true}} {
		t.Run(c.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			// The neighbour is our child in stripe 0; a want for a
			// stripe-1 chunk is a repair request.
			e, l := tc.rootWithChild(t, 2, &now)
			for seq := range uint64(3) {
				if err := e.Publish(tc.seal(t, seq, 40000)); err != nil {
					t.Fatal(err)
				}
			}
			l.hold = true
			seq := uint64(2) // stripe 0: feed
			if c.repair {
				seq = 1
				e.HandleMessage(9, l, appendWant(nil, want{Epoch: 1, Seq: seq}))
			} else {
				if err := e.Publish(tc.seal(t, 4, 40000)); err != nil {
					t.Fatal(err)
				}
				seq = 4
			}
			before := l.sent(seq)
			e.HandleMessage(9, l, appendRef(nil, msgHave, key{1, seq}))
			l.hold = false
			for range 4 {
				now = now.Add(50 * time.Millisecond)
				e.Tick(now)
			}
			if got := l.sent(seq) - before; got != 0 {
				t.Errorf("%d pieces of chunk %d sent after the have", got, seq)
			}
		})
	}
}

// TestHaveToRepairSource: a chunk completed from the feed tells the
// neighbour asked to repair it to stop (it used to tell only the parent,
// and the answer arrived in full as a duplicate); one completed from the
// origin tells the parent.
func TestHaveToRepairSource(t *testing.T) {
	tc := newTestChunks()
	sealed := tc.seal(t, 1, 40000)
	ps, err := chunk.Split(sealed, chunk.MaxMessageSize)
	if err != nil {
		t.Fatal(err)
	}
	k := key{1, 1}
	for _, c := range []struct {
		name                   string
		origin                 bool
		wantParent, wantHelper int
	}{{"feed completes", false, 0, 1}, {"origin completes", true, 1, 1}} {
		t.Run(c.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			e := tc.engine(t, false, 2, &now)
			parent, helper := &holdLink{}, &holdLink{}
			_ = e.SetParent(1, 2, parent) // chunk 1 is stripe 1's
			_ = e.SetParent(0, 3, helper)
			e.mu.Lock()
			pd := e.pendOf(k)
			pd.asked, pd.askUntil = 3, now.Add(time.Second)
			e.mu.Unlock()
			n := len(ps)
			if c.origin {
				n-- // the parent sends all but the last piece
			}
			for _, p := range ps[:n] {
				e.HandleMessage(2, parent, chunk.AppendPiece(nil, p))
			}
			if c.origin {
				e.originDone(k, nil, sealed, nil)
			}
			if got := e.Counters().Verified; got != 1 {
				t.Fatalf("%d chunks verified, want 1", got)
			}
			if got := parent.haves(k); got != c.wantParent {
				t.Errorf("parent got %d haves, want %d", got, c.wantParent)
			}
			if got := helper.haves(k); got != c.wantHelper {
				t.Errorf("the neighbour asked to repair got %d haves, want %d", got, c.wantHelper)
			}
		})
	}
}

// TestChildWantSkipsPiecesOnTheWay: a child that asks its parent again for
// pieces still on their way to it (it took a late forward for a loss) is
// not sent them twice; pieces that had time to arrive are resent.
func TestChildWantSkipsPiecesOnTheWay(t *testing.T) {
	tc := newTestChunks()
	for _, c := range []struct {
		name  string
		after time.Duration
		want  int
	}{{"crossed on the way", 20 * time.Millisecond, 0}, {"lost", 2 * time.Second, 2}} {
		t.Run(c.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			e, l := tc.rootWithChild(t, 1, &now)
			if err := e.Publish(tc.seal(t, 0, 100)); err != nil {
				t.Fatal(err)
			}
			if err := e.Publish(tc.seal(t, 1, 60000)); err != nil {
				t.Fatal(err)
			}
			sent := l.sent(1)
			if sent < 3 {
				t.Fatalf("%d pieces sent, want the chunk's", sent)
			}
			now = now.Add(c.after)
			e.HandleMessage(9, l, appendWant(nil, want{Epoch: 1, Seq: 1, Pieces: []uint16{1, 2}}))
			now = now.Add(50 * time.Millisecond)
			e.Tick(now)
			if got := l.sent(1) - sent; got != c.want {
				t.Errorf("%d pieces resent, want %d", got, c.want)
			}
		})
	}
}

// TestLateRepairAnswerCounted: pieces of a held chunk from a neighbour that
// is not (or no longer) a source of it are duplicates too: they were
// counted as unsolicited, and the wasted upload did not show.
func TestLateRepairAnswerCounted(t *testing.T) {
	tc := newTestChunks()
	sealed := tc.seal(t, 1, 40000)
	ps, err := chunk.Split(sealed, chunk.MaxMessageSize)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	e := tc.engine(t, false, 2, &now)
	parent, helper := &holdLink{}, &holdLink{}
	_ = e.SetParent(1, 2, parent)
	_ = e.SetParent(0, 3, helper)
	for _, p := range ps {
		e.HandleMessage(2, parent, chunk.AppendPiece(nil, p))
	}
	before := e.Traffic().Dup
	m := chunk.AppendPiece(nil, ps[0])
	e.HandleMessage(3, helper, m)
	if got := e.Traffic().Dup - before; got != uint64(len(m)) {
		t.Errorf("a late answer of %d bytes counted as %d duplicate bytes", len(m), got)
	}
}
