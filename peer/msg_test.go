package peer

import (
	"crypto/ed25519"
	"slices"
	"testing"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/protocol"
)

func TestMessagesRoundTrip(t *testing.T) {
	for _, w := range []want{
		{Epoch: 1, Seq: 2},
		{Epoch: 1<<32 - 1, Seq: 1<<64 - 1, Pieces: []uint16{0, 5, 65534}},
	} {
		got, err := parseWant(appendWant(nil, w))
		if err != nil || got.Epoch != w.Epoch || got.Seq != w.Seq || !slices.Equal(got.Pieces, w.Pieces) {
			t.Errorf("want %+v -> %+v, %v", w, got, err)
		}
	}
	long := want{Epoch: 1, Seq: 1, Pieces: make([]uint16, maxWantIndexes+1)}
	if got, err := parseWant(appendWant(nil, long)); err != nil || got.Pieces != nil {
		t.Errorf("over-long want should become 'all pieces': %+v %v", got, err)
	}
	k := key{7, 9}
	for _, typ := range []byte{msgNope, msgBad} {
		if got, err := parseRef(appendRef(nil, typ, k), typ); err != nil || got != k {
			t.Errorf("%q: %v %v", typ, got, err)
		}
	}
	for _, h := range []held{{}, {ok: true}, {ok: true, init: true, epoch: 7, from: 1 << 40}} {
		if s, got, err := parseSub(appendSub(nil, 3, h), 4); err != nil || s != 3 || got != h {
			t.Errorf("sub %+v: %d %+v %v", h, s, got, err)
		}
	}
	if _, _, err := parseSub(appendSub(nil, 4, held{}), 4); err == nil {
		t.Error("sub for a stripe out of range accepted")
	}
	if b := appendSub(nil, 1, held{ok: true}); true {
		b[3] = 0x80
		if _, _, err := parseSub(b, 4); err == nil {
			t.Error("sub with unknown flags accepted")
		}
		if _, _, err := parseSub(b[:10], 4); err == nil {
			t.Error("truncated sub accepted")
		}
	}
	if s, n, err := parseRelay(appendRelay(nil, 3, 70000), 4); err != nil || s != 3 || n != 1<<16-1 {
		t.Errorf("relay: %d %d %v", s, n, err)
	}
	if _, _, err := parseRelay(appendRelay(nil, 4, 1), 4); err == nil {
		t.Error("relay for a stripe out of range accepted")
	}
	if _, _, err := parseRelay(appendSub(nil, 1, held{}), 4); err == nil {
		t.Error("subscribe parsed as relay")
	}
	if tok, err := parsePing(appendPing(nil, msgPong, 42), msgPong); err != nil || tok != 42 {
		t.Errorf("pong: %d %v", tok, err)
	}
	for _, bad := range [][]byte{nil, {msgWant}, {msgWant, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, {msgNope, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, err := parseWant(bad); err == nil && len(bad) > 0 && bad[0] == msgWant {
			t.Errorf("parseWant(%x) accepted", bad)
		}
		if _, err := parseRef(bad, msgNope); err == nil {
			t.Errorf("parseRef(%x) accepted", bad)
		}
	}
}

// nullLink accepts everything.
type nullLink struct{ sent int }

func (l *nullLink) Send(m []byte) error { l.sent += len(m); return nil }
func (l *nullLink) Buffered() int       { return 0 }
func (l *nullLink) Path() string        { return PathMem }
func (l *nullLink) Close() error        { return nil }

// FuzzHandleMessage feeds arbitrary messages from a parent and a child: the
// engine must never panic, and must not play or keep anything unsigned.
func FuzzHandleMessage(f *testing.F) {
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	mk, _ := chunk.NewMasterKey(1, nil)
	keys, _ := chunk.NewKeyring(mk)
	sealed, err := chunk.Seal(nil, chunk.Header{Epoch: 1, Seq: 1, Flags: chunk.FlagKeyframe, KeyID: 1, Duration: 250000}, make([]byte, 40000), keys, priv, "fz")
	if err != nil {
		f.Fatal(err)
	}
	ps, _ := chunk.Split(sealed, chunk.MaxMessageSize)
	for _, p := range ps {
		f.Add(chunk.AppendPiece(nil, p), false)
	}
	f.Add(appendWant(nil, want{Epoch: 1, Seq: 1, Pieces: []uint16{0, 9}}), true)
	f.Add(appendRef(nil, msgBad, key{1, 1}), false)
	f.Add(appendRef(nil, msgNope, key{1, 1}), false)
	f.Add(appendSub(nil, 1, held{}), true)
	f.Add(appendSub(nil, 0, held{ok: true, init: true, epoch: 1, from: 2}), true)
	f.Add(appendRelay(nil, 0, 3), true)
	f.Add(appendPing(nil, msgPing, 5), true)
	f.Add(appendPing(nil, msgPong, 5), false)
	f.Add(protocol.AppendProof([]byte{msgProof, msgVersion}, priv, "fz", protocol.Delivery{Epoch: 1, Seq: 1, Child: 1}), false)
	f.Fuzz(func(t *testing.T, msg []byte, fromChild bool) {
		now := time.Unix(1000, 0)
		var played int
		e, err := New(Config{Stream: "fz", PublicKey: priv.Public().(ed25519.PublicKey), Stripes: 2, Keys: keys,
			Player: playerFunc(func() { played++ }), Clock: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		parent, child := &nullLink{}, &nullLink{}
		_ = e.SetParent(1, 2, parent)
		_ = e.AddChild(0, 3, child)
		from, l := PeerID(2), Link(parent)
		if fromChild {
			from, l = 3, child
		}
		for i := 0; i < 3; i++ {
			e.HandleMessage(from, l, msg)
			now = now.Add(100 * time.Millisecond)
			e.Tick(now)
		}
		if c := e.Counters(); c.Verified != 0 || played != 0 {
			t.Fatalf("kept or played an unsigned chunk: %+v", c)
		}
	})
}

type playerFunc func()

func (f playerFunc) Init(uint32, []byte)        { f() }
func (f playerFunc) Chunk(chunk.Header, []byte) { f() }
