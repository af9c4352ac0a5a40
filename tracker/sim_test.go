package tracker

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/banyan-live/banyan/overlay"
	"github.com/banyan-live/banyan/protocol"
)

// A simulated swarm: sessions without websockets, joined through the same
// code paths as real ones (join, registerSeeder, stats, leave), so the
// dashboard sees what it would see in production.

func newSimTracker(tb testing.TB, stripes int) *Tracker {
	tb.Helper()
	tr, err := New(Config{
		Stripes: stripes, SeederKey: testSeederKey, Logger: slog.New(slog.DiscardHandler),
		StatsInterval: time.Hour, // no reaping: simulated peers report when told
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { tr.Close() })
	return tr
}

// simSession is a session whose signaling goes nowhere: a small queue
// that closes it when full, which only cancels its context.
func simSession(tr *Tracker) *session {
	ctx, cancel := context.WithCancel(tr.ctx)
	s := &session{t: tr, id: protocol.PeerID(tr.nextID.Add(1)), out: make(chan []byte, 64), ctx: ctx, cancel: cancel, remote: "127.0.0.1"}
	s.touch()
	return s
}

func simSeeder(tb testing.TB, tr *Tracker, stream string, epoch uint32) *session {
	tb.Helper()
	st, err := tr.stream(stream)
	if err != nil {
		tb.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	s := simSession(tr)
	s.isSeeder = true
	h := protocol.SeederHello{Stream: stream, PublicKey: base64.StdEncoding.EncodeToString(pub), Epoch: epoch,
		Keys: []protocol.ContentKey{{ID: 1, Key: "k", Salt: "s"}}}
	if err := st.registerSeeder(s, h); err != nil {
		tb.Fatal(err)
	}
	return s
}

func simJoin(tb testing.TB, tr *Tracker, stream string, n int, kind protocol.ClientKind) []*session {
	tb.Helper()
	st, err := tr.stream(stream)
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]*session, 0, n)
	for range n {
		s := simSession(tr)
		s.kind = kind
		if err := st.join(s, protocol.Join{Stream: stream, Kind: kind}); err != nil {
			tb.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// simReport gives every viewer of stream a plausible stats report: media
// flowing over its current parents (direct, some over TURN, origin-fed
// stripes from the origin), a buffer that is mostly healthy, and the
// seeder's root peer its upload.
func simReport(tr *Tracker, stream string, rng *rand.Rand, round int) {
	st := tr.streamState(stream)
	st.mu.Lock()
	var list []*session
	for _, s := range st.sessions {
		list = append(list, s)
	}
	k := st.forest.Stripes()
	parents := make(map[protocol.PeerID][]protocol.ParentHealth, len(list))
	var rootUp uint64
	for _, s := range list {
		if s.isSeeder {
			continue
		}
		var ph []protocol.ParentHealth
		for stripe := range k {
			p, err := st.forest.Parent(overlay.PeerID(s.id), stripe)
			if err != nil || p == overlay.Origin {
				continue
			}
			path := "direct"
			switch x := rng.IntN(20); {
			case x == 0:
				path = "turn"
			case x == 1 && round < 2:
				path = "connecting"
			}
			ph = append(ph, protocol.ParentHealth{Stripe: stripe, Parent: st.pid(p), Kbps: 1400 + rng.IntN(200), Path: path})
			if p == overlay.Root {
				rootUp += 375_000
			}
		}
		parents[s.id] = ph
	}
	st.mu.Unlock()
	for _, s := range list {
		if s.isSeeder {
			st.stats(s, protocol.Stats{BytesUp: s.stats.BytesUp + rootUp})
			continue
		}
		prev := s.stats
		buf := 900 + rng.IntN(400)
		switch x := rng.IntN(50); {
		case x == 0:
			buf = rng.IntN(200)
		case x < 3:
			buf = 200 + rng.IntN(400)
		}
		stalls := prev.Stalls
		if buf < 100 {
			stalls++
		}
		st.stats(s, protocol.Stats{
			BytesP2P: prev.BytesP2P + 700_000, BytesOrigin: prev.BytesOrigin + uint64(rng.IntN(2))*10_000,
			BytesTURN: prev.BytesTURN + uint64(rng.IntN(20)/19)*50_000,
			BufferMS:  buf, BehindLiveMS: buf + 200 + rng.IntN(300), Stalls: stalls,
			Parents: parents[s.id],
		})
	}
}
