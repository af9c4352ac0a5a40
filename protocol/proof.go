package protocol

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
)

// A delivery proof lets the tracker evict a parent that sent forged bytes
// (issue 18 #2). An unverifiable chunk in a child's report proves nothing
// by itself: the child may have made it up. So each peer joins with an
// Ed25519 key of its own (Join.ProofKey), and a parent signs, for each
// chunk and each child it fed, a small statement: "I sent child C the
// chunk (epoch, seq) whose sealed bytes hash to H" (Delivery). The child
// cannot forge it (it does not hold the parent's key); a per-link MAC
// would not do, since the child would know the key. On a chunk that fails
// to verify, the child attaches the statement (Report.Proof); the tracker
// checks the parent's signature, that the chunk's SHA-256 is H and that
// the chunk fails the seeder's signature, and only then evicts. An honest
// parent signs only chunks it verified itself, so no child can frame it.

// Delivery is what a parent signs for one chunk sent to one child.
type Delivery struct {
	Epoch uint32
	Seq   uint64
	Child PeerID
	// Hash is the SHA-256 of the sealed chunk as sent.
	Hash [sha256.Size]byte
}

// ProofSize is the size of Report.Proof: epoch (4), sequence (8), the
// chunk's hash (32) and the parent's signature (64).
const ProofSize = 4 + 8 + sha256.Size + ed25519.SignatureSize

// deliveryContext separates delivery statements from every other
// signature a peer key could make.
const deliveryContext = "banyan delivery v1\x00"

// signedBytes is the message a Delivery's signature covers.
func (d Delivery) signedBytes(stream string) []byte {
	b := make([]byte, 0, len(deliveryContext)+1+len(stream)+4+8+8+sha256.Size)
	b = append(b, deliveryContext...)
	b = append(b, byte(len(stream)))
	b = append(b, stream...)
	b = binary.BigEndian.AppendUint32(b, d.Epoch)
	b = binary.BigEndian.AppendUint64(b, d.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(d.Child))
	return append(b, d.Hash[:]...)
}

// AppendProof signs d for stream with priv and appends the proof
// (ProofSize bytes) to dst.
func AppendProof(dst []byte, priv ed25519.PrivateKey, stream string, d Delivery) []byte {
	dst = binary.BigEndian.AppendUint32(dst, d.Epoch)
	dst = binary.BigEndian.AppendUint64(dst, d.Seq)
	dst = append(dst, d.Hash[:]...)
	return append(dst, ed25519.Sign(priv, d.signedBytes(stream))...)
}

// ParseProof splits a proof into the statement it signs (for child) and
// the signature.
func ParseProof(proof []byte, child PeerID) (Delivery, []byte, error) {
	if len(proof) != ProofSize {
		return Delivery{}, nil, errors.New("proof: wrong size")
	}
	d := Delivery{Epoch: binary.BigEndian.Uint32(proof), Seq: binary.BigEndian.Uint64(proof[4:]), Child: child}
	copy(d.Hash[:], proof[12:])
	return d, proof[12+sha256.Size:], nil
}

// CheckProof reports whether proof shows that the holder of pub sent
// child exactly sealed: its signature is good and sealed hashes to what it
// signed. Whether sealed is forged is the caller's to check.
//
// The signature is checked first, over the hash the proof names: a junk
// proof costs one verification of a short message, not a hash of the
// chunk (up to 1 MiB).
func CheckProof(pub ed25519.PublicKey, stream string, child PeerID, sealed, proof []byte) bool {
	d, sig, err := ParseProof(proof, child)
	if err != nil || len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, d.signedBytes(stream), sig) {
		return false
	}
	return sha256.Sum256(sealed) == d.Hash
}

// ParseProofKey decodes Join.ProofKey.
func ParseProofKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("proof_key is not base64 Ed25519")
	}
	return ed25519.PublicKey(b), nil
}

// EncodeProofKey is Join.ProofKey for pub.
func EncodeProofKey(pub ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(pub) }
