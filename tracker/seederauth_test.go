package tracker

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"testing"
	"time"

	"github.com/banyan-live/banyan/protocol"
)

// TestSeederHelloFreshness: a seeder hello is accepted once; a replay of
// the same bytes, a stale or future time, a tampered seeder id or stream,
// or a wrong secret is refused with unauthorized. Each seeder has its own
// secret: s2's secret does not make a hello as s1 (before per-seeder keys
// one cluster secret did), and an id the tracker has no key for is
// refused.
func TestSeederHelloFreshness(t *testing.T) {
	tt := newTestTracker(t, Config{})
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	base := protocol.SeederHello{Stream: "fresh", UploadKbps: 1000, PublicKey: base64.StdEncoding.EncodeToString(pub)}
	good := tt.signedHello(base)

	accepted := func(h protocol.SeederHello) bool {
		t.Helper()
		c := dial(t, tt.url)
		c.send(h)
		m := c.next("welcome or error", func(m protocol.Message) bool {
			return isType[protocol.Welcome](m) || isType[protocol.Error](m)
		})
		if e, ok := m.(protocol.Error); ok {
			if e.Code != protocol.CodeUnauthorized {
				t.Fatalf("refused with %q, want %q", e.Code, protocol.CodeUnauthorized)
			}
			c.closed()
			return false
		}
		c.conn.CloseNow()
		return true
	}
	signed := func(secret []byte, id string, at time.Time) protocol.SeederHello {
		h := base
		h.Sign(secret, id, at, rand.Text())
		return h
	}
	tamperedID := tt.signedHello(base)
	tamperedID.SeederID = "s2"
	tamperedStream := tt.signedHello(base)
	tamperedStream.Stream = "other"

	for _, tc := range []struct {
		name string
		h    protocol.SeederHello
		ok   bool
	}{
		{"first use", good, true},
		{"replayed", good, false},
		{"fresh nonce", tt.signedHello(base), true},
		{"stale", signed(seederSecret, "s1", time.Now().Add(-2*protocol.SeederAuthSkew)), false},
		{"future", signed(seederSecret, "s1", time.Now().Add(2*protocol.SeederAuthSkew)), false},
		{"within skew", signed(seederSecret, "s1", time.Now().Add(-protocol.SeederAuthSkew/2)), true},
		{"seeder id changed", tamperedID, false},
		{"stream changed", tamperedStream, false},
		{"wrong secret", signed([]byte("another secret"), "s1", time.Now()), false},
		{"s2 as itself", signed(testSeederKeys["s2"], "s2", time.Now()), true},
		{"s2 claiming s1's id", signed(testSeederKeys["s2"], "s1", time.Now()), false},
		{"unknown seeder", signed(seederSecret, "s9", time.Now()), false},
	} {
		if got := accepted(tc.h); got != tc.ok {
			t.Errorf("%s: accepted=%v, want %v", tc.name, got, tc.ok)
		}
	}
}
