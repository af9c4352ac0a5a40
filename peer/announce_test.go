package peer_test

import (
	"testing"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/peer/memnet"
	"github.com/banyan-live/banyan/protocol"
)

// TestReplayedHigherEpochHeld (issue 18 #4, peer side): a parent injects
// genuine, signed chunks of a higher epoch (an older run of the seeder
// whose epoch numbers were higher: a clock stepped back, a wiped data
// dir). Peers told the current epoch by the tracker hold them and play
// the real stream to the end; when the tracker announces that epoch they
// move to it. Before, peer 2 followed the replayed epoch at once, played
// its init and dropped the real chunks as stale.
func TestReplayedHigherEpochHeld(t *testing.T) {
	sw := newSwarm(t, memnet.Config{Seed: 5, Latency: 5 * time.Millisecond}, 1, 30_000, nil)
	defer sw.close()
	sw.addPeers(2, 2)
	sw.edge(0, rootID, 2)
	sw.edge(0, 2, 3)
	for _, id := range []peer.PeerID{2, 3} {
		sw.engines[id].AnnounceEpoch(sw.src.epoch)
	}
	const last = 30
	sw.publish(last)
	sw.net.RunFor(10 * 250 * time.Millisecond)

	const replayed = 5000 // above the live epoch (1000)
	rootEnd := sw.links[[2]peer.PeerID{rootID, 2}]
	for seq := uint64(0); seq <= 3; seq++ {
		h := chunk.Header{KeyID: 7, Epoch: replayed, Seq: seq, Duration: 250_000, MediaTime: seq * 250_000}
		if seq == 0 {
			h = chunk.Header{KeyID: 7, Epoch: replayed, Flags: chunk.FlagInit}
		} else if seq == 1 {
			h.Flags = chunk.FlagKeyframe
		}
		sealed, err := chunk.Seal(nil, h, make([]byte, 2000), sw.src.keys, sw.src.priv, testStream)
		if err != nil {
			t.Fatal(err)
		}
		ps, err := chunk.Split(sealed, chunk.MaxMessageSize)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if err := rootEnd.Send(chunk.AppendPiece(nil, p)); err != nil {
				t.Fatal(err)
			}
		}
	}
	sw.net.RunFor((last-10)*250*time.Millisecond + 3*time.Second)
	sw.checkPlayed(2, 1, last)
	sw.checkPlayed(3, 1, last)

	// The tracker announces it: peer 2 moves to it (its player gets the
	// held init of the new epoch).
	sw.engines[2].AnnounceEpoch(replayed)
	sw.net.RunFor(time.Second)
	if ep := sw.players[2].epoch; len(ep) != 2 || ep[1] != replayed {
		t.Fatalf("peer 2 played inits of epochs %v after the announcement, want [%d %d]", ep, sw.src.epoch, replayed)
	}
}

// TestHostileJunkWithholder (issue 18 #5): a parent that sends, instead
// of each piece, one 8-byte junk piece: naming the next epoch, or naming
// a chunk its children already hold. Neither is a sign of life (an
// unverified piece of an epoch the tracker has not announced; a duplicate
// whose bytes are not the held chunk's), so its children report it
// silent. Before, both counted as "parent alive" (Engine.recent) and the
// withholder was never reported.
func TestHostileJunkWithholder(t *testing.T) {
	for _, tc := range []struct {
		name string
		junk func(p chunk.Piece) chunk.Piece
	}{
		{"next epoch", func(p chunk.Piece) chunk.Piece {
			return chunk.Piece{Epoch: p.Epoch + 1, Seq: p.Seq, Index: 1, Count: 2, Data: make([]byte, 8)}
		}},
		{"held chunk", func(p chunk.Piece) chunk.Piece {
			return chunk.Piece{Epoch: p.Epoch, Seq: max(p.Seq, 3) - 2, Index: 1, Count: 2, Data: make([]byte, 8)}
		}},
		// A chunk a few ahead in the current epoch, not held yet: its
		// junk never completes into a chunk that verifies.
		{"chunk ahead", func(p chunk.Piece) chunk.Piece {
			return chunk.Piece{Epoch: p.Epoch, Seq: p.Seq + 4, Index: 1, Count: 2, Data: make([]byte, 8)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runHostile(t, hostileCase{
				name: "junk withholder (one 8-byte piece instead of each piece: " + tc.name + ")", from: 0,
				kinds: []string{protocol.ReportSilent},
				setup: func(sw *swarm) {
					for _, e := range sw.engines {
						e.AnnounceEpoch(sw.src.epoch)
					}
				},
				link: func(sw *swarm, b peer.PeerID, l *memnet.Link, active func() bool, junk *int) peer.Link {
					return pieces(l, active, junk, func(p chunk.Piece, m []byte) [][]byte {
						return [][]byte{chunk.AppendPiece(nil, tc.junk(p))}
					})
				},
			})
		})
	}
}
