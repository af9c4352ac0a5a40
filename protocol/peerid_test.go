package protocol

import (
	"fmt"
	"testing"
)

// The wasm logs peer IDs through String, not fmt: it must print what
// fmt printed before the method existed.
func TestPeerIDStringLikeFmt(t *testing.T) {
	for _, id := range []PeerID{0, 7, 1<<64 - 1} {
		if got, want := id.String(), fmt.Sprint(uint64(id)); got != want {
			t.Errorf("PeerID(%d).String() = %q, want %q", uint64(id), got, want)
		}
	}
}
