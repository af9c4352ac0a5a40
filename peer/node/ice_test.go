package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"reflect"
	"testing"

	"github.com/banyan-live/banyan/protocol"
)

// TestICERefreshReachesTransport: the tracker's ice message (fresh TURN
// credentials) replaces the ICE servers the node's transport gives new
// links. Before, the node ignored the message and kept the welcome's
// credentials, which expire minutes after the join (issue 18 #6);
// internal/turne2e's TestICERefreshUsedForNewLinks shows a real TURN
// server taking the refreshed ones.
func TestICERefreshReachesTransport(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{Stream: "ice", Send: func(protocol.Message) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	old := []protocol.ICEServer{{URLs: []string{"turn:127.0.0.1:3478?transport=udp"}, Username: "100:1", Credential: "old"}}
	fresh := []protocol.ICEServer{{URLs: []string{"turn:127.0.0.1:3478?transport=udp"}, Username: "200:1", Credential: "fresh"}}

	// Before the engine exists (no key yet): kept for the transport to come.
	n.Handle(protocol.Welcome{Peer: 1, Stripes: 1, ICEServers: old})
	n.Handle(protocol.ICE{ICEServers: fresh})
	n.Handle(protocol.Keys{PublicKey: base64.StdEncoding.EncodeToString(pub), Live: true})
	n.mu.Lock()
	tr := n.tr
	n.mu.Unlock()
	if tr == nil {
		t.Fatal("no transport after the stream key arrived")
	}
	if got := tr.ICEServers(); !reflect.DeepEqual(got, fresh) {
		t.Fatalf("transport built with %+v, want the refreshed %+v", got, fresh)
	}
	// With the transport up: the next links take the newest.
	newer := []protocol.ICEServer{{URLs: []string{"turn:127.0.0.1:3478?transport=udp"}, Username: "300:1", Credential: "newer"}}
	n.Handle(protocol.ICE{ICEServers: newer})
	if got := tr.ICEServers(); !reflect.DeepEqual(got, newer) {
		t.Fatalf("transport has %+v after a refresh, want %+v", got, newer)
	}
}
