package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/peer/node"
	"github.com/banyan-live/banyan/peer/rtc"
	"github.com/banyan-live/banyan/protocol"
)

// signingForger flips a byte of every piece it relays, like flipLink, and
// signs what it forged: for each chunk whose pieces it sent whole, a
// delivery statement over the forged bytes, for the child at the other end
// (its engine's own statements, over the genuine bytes, are dropped).
type signingForger struct {
	peer.Link
	child  protocol.PeerID
	priv   ed25519.PrivateKey
	signed *atomic.Int64

	mu     sync.Mutex
	chunks map[[2]uint64][][]byte // (epoch, seq) -> forged piece data
}

func (l *signingForger) Send(msg []byte) error {
	if len(msg) > 0 && msg[0] == 'D' {
		return nil
	}
	p, err := chunk.ParsePiece(msg)
	if err != nil {
		return l.Link.Send(msg)
	}
	bad := append([]byte(nil), msg...)
	bad[len(bad)-1] ^= 0x55
	if err := l.Link.Send(bad); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := [2]uint64{uint64(p.Epoch), p.Seq}
	ps := l.chunks[k]
	if ps == nil {
		if len(l.chunks) > 64 {
			clear(l.chunks)
		}
		ps = make([][]byte, p.Count)
		l.chunks[k] = ps
	}
	if int(p.Index) >= len(ps) {
		return nil
	}
	ps[p.Index] = bad[len(bad)-len(p.Data):]
	var sealed []byte
	for _, d := range ps {
		if d == nil {
			return nil
		}
		sealed = append(sealed, d...)
	}
	delete(l.chunks, k)
	st := protocol.AppendProof([]byte{'D', 1}, l.priv, "demo", protocol.Delivery{Epoch: p.Epoch, Seq: p.Seq, Child: l.child, Hash: sha256.Sum256(sealed)})
	l.signed.Add(1)
	return l.Link.Send(st)
}

// TestSignedForgeryEvicted (issue 18 #2): a relay that forges what it
// relays and signs delivery statements for the forged bytes is evicted
// on its first child's report, end to end: the child's engine attaches the
// statement, the tracker checks it against the key the forger joined with
// and the seeder's signature, and evicts. Nothing forged is played. Before,
// the tracker evicted on no report (TestMaliciousParentContained: a forger
// that does not sign is still only contained).
func TestSignedForgeryEvicted(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the signed-forgery test in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	up := liveDemo(t, ctx, 30, "--root-capacity", "1", "--stripes", "1")

	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	var signed atomic.Int64
	evilDone := runHostileRelay(ctx, up, node.Config{
		ProofKey: priv,
		WrapLink: func(l peer.Link) peer.Link {
			var child protocol.PeerID
			if rl, ok := l.(*rtc.Link); ok {
				child = rl.Remote()
			}
			return &signingForger{Link: l, child: child, priv: priv, signed: &signed, chunks: map[[2]uint64][][]byte{}}
		},
	})
	time.Sleep(2 * time.Second)
	h := startPeer(t, up.base, "--duration", "12s", "--no-upload")

	var evictErr error
	select {
	case evictErr = <-evilDone:
	case <-time.After(30 * time.Second):
		t.Fatalf("the signing forger was not evicted (%d statements signed)", signed.Load())
	}
	var e protocol.Error
	if !errors.As(evictErr, &e) || e.Code != protocol.CodeEvicted {
		t.Fatalf("the forger ended with %v, want evicted", evictErr)
	}
	s := h.summary(t)
	if s.BadChunks == 0 {
		t.Error("the honest child met no forged chunk")
	}
	if s.ChunksPlayed < 20 {
		t.Errorf("the honest child played only %d chunks after the eviction: %+v", s.ChunksPlayed, s)
	}
	if ev := metric(t, up, "banyan_tracker_evictions_total"); ev != 1 {
		t.Errorf("evictions metric %v, want 1", ev)
	}
	t.Logf("figures: %d forged statements signed, the forger evicted (%v); the child met %d forged chunks, played %d",
		signed.Load(), evictErr, s.BadChunks, s.ChunksPlayed)
	up.stop(t, syscall.SIGTERM)
}
