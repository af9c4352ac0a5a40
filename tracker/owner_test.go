package tracker

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/banyan-live/banyan/protocol"
)

// TestOwnerRouting: with Config.Owner, a viewer or seeder joining a
// stream another tracker owns gets an in-band moved naming it and is
// disconnected; an unsettled owner is a clean internal error; a stream
// this tracker owns is served; CloseStream ends a stream's sessions.
func TestOwnerRouting(t *testing.T) {
	tt := newTestTracker(t, Config{Owner: func(stream string) (string, error) {
		switch stream {
		case "elsewhere":
			return "ws://10.0.0.2:8080/ws", nil
		case "unsettled":
			return "", errors.New("etcd away")
		}
		return "", nil
	}})
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	hello := func(stream string) protocol.SeederHello {
		return tt.signedHello(protocol.SeederHello{Stream: stream, UploadKbps: 1000, PublicKey: base64.StdEncoding.EncodeToString(pub)})
	}
	for _, tc := range []struct {
		name  string
		first protocol.Message
		moved string
		code  string
	}{
		{"viewer moved", protocol.Join{Stream: "elsewhere", Kind: protocol.KindNative}, "ws://10.0.0.2:8080/ws", ""},
		{"seeder moved", hello("elsewhere"), "ws://10.0.0.2:8080/ws", ""},
		{"owner unknown", protocol.Join{Stream: "unsettled", Kind: protocol.KindNative}, "", protocol.CodeInternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, tt.url)
			c.send(tc.first)
			if tc.moved != "" {
				m := c.next("moved", isType[protocol.Moved]).(protocol.Moved)
				if m.URL != tc.moved {
					t.Fatalf("moved to %q, want %q", m.URL, tc.moved)
				}
			} else {
				c.next(tc.code, errCode(tc.code))
			}
			c.closed()
		})
	}

	// Owned here: served; CloseStream ends its sessions.
	seed := joinSeeder(t, tt, "here")
	v, _ := joinViewer(t, tt, protocol.Join{Stream: "here", NoUpload: true})
	tt.t.CloseStream("here", "no longer the owner")
	seed.closed()
	v.closed()
}
