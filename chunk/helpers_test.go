package chunk

import (
	"crypto/ed25519"
	"crypto/sha256"
	"testing"
)

const testStream = "live-test"

// detReader is a deterministic byte stream for reproducible keys.
type detReader struct{ ctr byte }

func (d *detReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = d.ctr
		d.ctr++
	}
	return len(p), nil
}

type fixture struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	mk   MasterKey
	keys *Keyring
}

func newFixture(tb testing.TB) fixture {
	tb.Helper()
	seed := sha256.Sum256([]byte("banyan chunk test signing key"))
	priv := ed25519.NewKeyFromSeed(seed[:])
	mk, err := NewMasterKey(1, &detReader{})
	if err != nil {
		tb.Fatal(err)
	}
	keys, err := NewKeyring(mk)
	if err != nil {
		tb.Fatal(err)
	}
	return fixture{priv: priv, pub: priv.Public().(ed25519.PublicKey), mk: mk, keys: keys}
}

func testPayload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func mediaHeader(epoch uint32, seq uint64) Header {
	h := Header{Epoch: epoch, Seq: seq, KeyID: 1, MediaTime: seq * 250_000, Duration: 250_000}
	if seq == 0 {
		h.Flags = FlagInit
		h.MediaTime, h.Duration = 0, 0
	}
	return h
}

func (f fixture) seal(tb testing.TB, h Header, payload []byte) []byte {
	tb.Helper()
	b, err := Seal(nil, h, payload, f.keys, f.priv, testStream)
	if err != nil {
		tb.Fatalf("seal %v: %v", h, err)
	}
	return b
}
