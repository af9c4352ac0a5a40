package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"testing"

	"github.com/banyan-live/banyan/protocol"
)

// TestNodeAnnouncesEpochs: the epoch of the welcome (before the engine
// exists) and of every keys message reaches the engine, which moves to a
// higher epoch only once announced (peer TestReplayedHigherEpochHeld).
// An older announcement does not lower it.
func TestNodeAnnouncesEpochs(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{Stream: "ep", Send: func(protocol.Message) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	pk := base64.StdEncoding.EncodeToString(pub)
	n.Handle(protocol.Welcome{Peer: 1, Stripes: 1, Epoch: 1000})
	n.Handle(protocol.Keys{PublicKey: pk, Epoch: 1000, Live: true})
	for _, tc := range []struct {
		epoch, want uint32
	}{{0, 1000}, {1001, 1001}, {999, 1001}} {
		if tc.epoch != 0 {
			n.Handle(protocol.Keys{PublicKey: pk, Epoch: tc.epoch, Live: true})
		}
		if got := n.Engine().AnnouncedEpoch(); got != tc.want {
			t.Fatalf("after keys of epoch %d: engine announced %d, want %d", tc.epoch, got, tc.want)
		}
	}
}
