//go:build !js

package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banyan-live/banyan/peer/rtc"
	"github.com/banyan-live/banyan/protocol"
)

// TestRedialWhilePaired: a link that times out while the tracker keeps
// the pair (its report budget spent, or the tracker has nobody better) is
// dialed again with backoff. Before, the failed link was never retried
// and the child stayed on the origin for as long as the assignment stood
// (TestBrowserViewersInMesh on a loaded machine: viewers with no parent
// at all).
func TestRedialWhilePaired(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := protocol.Keys{PublicKey: base64.StdEncoding.EncodeToString(pub), Live: true}
	var (
		mu    sync.Mutex
		nodes = map[protocol.PeerID]*Node{}
		drop  atomic.Bool // the first offers vanish
	)
	drop.Store(true)
	relay := func(from protocol.PeerID) func(protocol.Message) {
		return func(m protocol.Message) {
			s, ok := m.(protocol.Signal)
			if !ok || (drop.Load() && s.SDP != nil) {
				return
			}
			mu.Lock()
			to := nodes[s.To]
			mu.Unlock()
			if to != nil {
				s.From, s.To = from, 0
				go to.Handle(s) // the tracker relays on its own goroutine
			}
		}
	}
	opened := make(chan protocol.PeerID, 4)
	mk := func(id protocol.PeerID) *Node {
		n, err := New(Config{Stream: "redial", Send: relay(id), API: rtc.LoopbackAPI(),
			OnAssign: func(protocol.Assign) {}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		mu.Lock()
		nodes[id] = n
		mu.Unlock()
		n.Handle(protocol.Welcome{Peer: id, Stripes: 1})
		n.Handle(keys)
		return n
	}
	parent, child := mk(1), mk(2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				parent.Tick(now)
				child.Tick(now)
				for id, n := range map[protocol.PeerID]*Node{1: parent, 2: child} {
					n.mu.Lock()
					nb := n.nbrs[3-id]
					if nb != nil && nb.open {
						select {
						case opened <- id:
						default:
						}
					}
					n.mu.Unlock()
				}
			}
		}
	}()
	child.Handle(protocol.Assign{Stripe: 0, Parent: 1, Depth: 2})
	parent.Handle(protocol.Assign{Stripe: 0, Child: 2, Depth: 1})
	// The parent (lower id) dials; its offer vanishes, the link times out
	// on the answer wait (1.5 s); then offers go through.
	time.Sleep(2500 * time.Millisecond)
	select {
	case id := <-opened:
		t.Fatalf("node %d opened a link although every offer was dropped", id)
	default:
	}
	drop.Store(false)
	select {
	case <-opened:
	case <-ctx.Done():
		t.Fatal("the pair never connected after the offers went through again: no redial")
	}
}
