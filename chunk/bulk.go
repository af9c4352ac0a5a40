package chunk

import (
	"crypto/sha256"
	"crypto/sha512"
	"io"
)

// The bulk of a chunk's crypto, the hashes over the whole chunk and the
// decryption, goes through prehash, Sum256 and (*sessionKey).open. In the
// browser's wasm they use WebCrypto where the page has it (webcrypto_js.go):
// there the pure-Go code runs at 30–100 MB/s, a few percent of a core at
// 3 Mbit/s; elsewhere (and as the browser's fallback) they are the
// standard library's.

// digest is the SHA-512 prehash the signature covers: the stream name
// (length-prefixed), the header and the ciphertext with its tag.
func digest(stream string, signed []byte) []byte {
	h := sha512.New()
	var pfx [1]byte
	pfx[0] = byte(len(stream))
	h.Write(pfx[:])
	io.WriteString(h, stream)
	h.Write(signed)
	return h.Sum(make([]byte, 0, sha512.Size))
}

// Sum256 is the SHA-256 of b; peers hash each sealed chunk they deliver
// with it (delivery statements, protocol.Delivery.Hash).
func Sum256(b []byte) [sha256.Size]byte {
	if h, ok := webSum256(b); ok {
		return h
	}
	return sha256.Sum256(b)
}

// prehash is digest, by WebCrypto where it is faster.
func prehash(stream string, signed []byte) []byte {
	if h, ok := webDigest(stream, signed); ok {
		return h
	}
	return digest(stream, signed)
}

// open decrypts and authenticates ct (with its tag) into dst.
func (s *sessionKey) open(dst, nonce, ct, aad []byte) ([]byte, error) {
	if pt, ok := s.webOpen(dst, nonce, ct, aad); ok {
		return pt, nil
	}
	return s.aead.Open(dst, nonce, ct, aad)
}
