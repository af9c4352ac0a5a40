package peer_test

import (
	"testing"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/peer"
)

// countLink counts what the engine sends and accepts everything.
type countLink struct{ n, bytes int }

func (l *countLink) Send(m []byte) error { l.n++; l.bytes += len(m); return nil }
func (l *countLink) Buffered() int       { return 0 }
func (l *countLink) Path() string        { return peer.PathDirect }
func (l *countLink) Close() error        { return nil }

// BenchmarkRelay measures one engine relaying a 3 Mbit/s stream (94 KB
// chunks, 6 pieces) from its parent to 4 children: one op is one chunk in
// (cut-through forwarding, reassembly, Ed25519 verification, windowing).
// "play" also opens (decrypts) every chunk for a Player; "proofs" signs
// a delivery statement per chunk for each child of its stripe (2 of the
// 4: peer/proof.go).
func BenchmarkRelay(b *testing.B) {
	for _, c := range []struct {
		name         string
		play, proofs bool
	}{{"relay", false, false}, {"relay+play", true, false}, {"relay+proofs", false, true}} {
		b.Run(c.name, func(b *testing.B) { benchRelay(b, c.play, c.proofs) })
	}
}

type nopPlayer struct{}

func (nopPlayer) Init(uint32, []byte)        {}
func (nopPlayer) Chunk(chunk.Header, []byte) {}

func benchRelay(b *testing.B, play, proofs bool) {
	const pool = 256
	src := newSource(b, 94_000)
	msgs := make([][][]byte, pool+1)
	for seq := range uint64(pool + 1) {
		ps, err := chunk.Split(src.chunk(b, seq), chunk.MaxMessageSize)
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range ps {
			msgs[seq] = append(msgs[seq], chunk.AppendPiece(nil, p))
		}
	}
	var (
		e        *peer.Engine
		parent   *countLink
		children [4]*countLink
		now      time.Time
		next     int
	)
	reset := func() {
		if e != nil {
			e.Close()
		}
		now = time.Unix(1_700_000_000, 0)
		cfg := peer.Config{Stream: testStream, PublicKey: src.pub, Stripes: 2, Clock: func() time.Time { return now }}
		if play {
			cfg.Player, cfg.Keys = nopPlayer{}, src.keys
		}
		if proofs {
			cfg.ProofKey = proofKey
		}
		var err error
		if e, err = peer.New(cfg); err != nil {
			b.Fatal(err)
		}
		parent = &countLink{}
		for s := range 2 {
			_ = e.SetParent(s, 1, parent)
		}
		for i := range children {
			children[i] = &countLink{}
			_ = e.AddChild(i%2, peer.PeerID(10+i), children[i])
		}
		for _, m := range msgs[0] {
			e.HandleMessage(1, parent, m)
		}
		next = 1
	}
	reset()
	b.SetBytes(int64(len(src.chunk(b, 1))))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if next > pool {
			b.StopTimer()
			reset()
			b.StartTimer()
		}
		for _, m := range msgs[next] {
			e.HandleMessage(1, parent, m)
		}
		next++
		now = now.Add(250 * time.Millisecond)
		if i%4 == 0 {
			e.Tick(now)
		}
	}
	b.StopTimer()
	c := e.Counters()
	if c.Verified == 0 || c.Stalls != 0 {
		b.Fatalf("%+v", c)
	}
	if proofs && c.ProofsSent < c.Verified {
		b.Fatalf("%d statements for %d chunks", c.ProofsSent, c.Verified)
	}
	if play && c.Played == 0 {
		b.Fatalf("nothing played: %+v", c)
	}
	e.Close()
}
