package protocol

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"testing"
)

func TestProofRoundTrip(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	other, _, _ := ed25519.GenerateKey(nil)
	sealed := bytes.Repeat([]byte{1}, 1000)
	proof := AppendProof(nil, priv, "s", Delivery{Epoch: 3, Seq: 9, Child: 42, Hash: sha256.Sum256(sealed)})
	if len(proof) != ProofSize {
		t.Fatalf("proof of %d bytes, want %d", len(proof), ProofSize)
	}
	for _, tc := range []struct {
		name   string
		pub    ed25519.PublicKey
		stream string
		child  PeerID
		sealed []byte
		proof  []byte
		ok     bool
	}{
		{"good", pub, "s", 42, sealed, proof, true},
		{"other key", other, "s", 42, sealed, proof, false},
		{"other stream", pub, "t", 42, sealed, proof, false},
		{"other child", pub, "s", 43, sealed, proof, false},
		{"other bytes", pub, "s", 42, sealed[1:], proof, false},
		{"truncated", pub, "s", 42, sealed, proof[1:], false},
		{"no key", nil, "s", 42, sealed, proof, false},
		{"epoch changed", pub, "s", 42, sealed, append([]byte{9}, proof[1:]...), false},
	} {
		if got := CheckProof(tc.pub, tc.stream, tc.child, tc.sealed, tc.proof); got != tc.ok {
			t.Errorf("%s: CheckProof = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

// BenchmarkDeliveryProof is a parent's cost per chunk and child (one
// signature; the chunk's hash is shared by its children) and the
// tracker's cost per proved report, for a 94 KB chunk (3 Mbit/s, 250 ms).
func BenchmarkDeliveryProof(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	sealed := bytes.Repeat([]byte{1}, 94_000)
	d := Delivery{Epoch: 3, Seq: 9, Child: 42, Hash: sha256.Sum256(sealed)}
	b.Run("hash", func(b *testing.B) {
		b.SetBytes(int64(len(sealed)))
		for b.Loop() {
			_ = sha256.Sum256(sealed)
		}
	})
	b.Run("sign", func(b *testing.B) {
		buf := make([]byte, 0, ProofSize)
		for b.Loop() {
			buf = AppendProof(buf[:0], priv, "stream", d)
		}
	})
	b.Run("check", func(b *testing.B) {
		proof := AppendProof(nil, priv, "stream", d)
		for b.Loop() {
			if !CheckProof(pub, "stream", 42, sealed, proof) {
				b.Fatal("proof does not check")
			}
		}
	})
}
