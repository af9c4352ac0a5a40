// Package chunk is Banyan's media chunk wire format: the fixed binary header,
// the end-to-end encryption of the payload (AES-128-GCM under SRTP-style
// keying), the Ed25519 signature, and the pieces a sealed chunk is cut into
// for WebRTC data channels. The seeder seals every chunk once; every hop, the
// HTTP origin and any CDN carry the same bytes. It uses only the standard
// library so that it builds for GOOS=js GOARCH=wasm as well, where the bulk
// crypto goes to the browser's WebCrypto when the page has it (bulk.go).
//
// # Sealed chunk
//
// All integers are big-endian. n is the payload (plaintext) length.
//
//	offset    size  field
//	0         1     magic 0xBA
//	1         1     version 0x01
//	2         1     flags: 0x01 init, 0x02 keyframe, 0x04 discontinuity,
//	                0x08 end of stream; other bits must be 0
//	3         1     reserved, must be 0
//	4         4     key id (uint32): which master key encrypted the payload
//	8         4     epoch (uint32): publishing epoch
//	12        8     sequence (uint64) within the epoch
//	20        8     media time, microseconds (uint64)
//	28        4     duration, microseconds (uint32)
//	32        4     payload length n (uint32), at most MaxPayload (8 MiB)
//	36        n+16  AES-128-GCM ciphertext of the payload, with its 16-byte tag
//	52+n      64    Ed25519ph signature
//
// A sealed chunk is exactly 116+n bytes; anything else is malformed.
//
// Sequence convention: the init segment of an epoch is the chunk with
// sequence 0 and it alone carries the init flag (a header with one but not
// the other is malformed); media chunks count up from 1. A change of codec
// configuration starts a new epoch, so every epoch has exactly one init
// segment. The sequence is 64 bits so that epoch‖sequence fills the 96-bit
// GCM nonce exactly and no code anywhere has to handle wrap-around (the
// source of SRTP's rollover-counter bugs); it costs 4 bytes per chunk and
// per piece. Epochs must never repeat for a master key and must increase
// (a unix time in seconds of the publish start, bumped if needed, does).
//
// # Keys
//
// A stream has one or more master keys (MasterKey: 32-bit id, 16-byte key,
// 12-byte salt); several coexist during rotation. For every (stream, epoch,
// key id) a 28-byte session secret is derived with HKDF-SHA256 (RFC 5869):
//
//	secret = master key (16 bytes)
//	salt   = master salt (12 bytes)
//	info   = "banyan chunk v1 session key" ‖ 0x00 ‖ uint8(len(stream)) ‖
//	         stream ‖ uint32 epoch ‖ uint32 key id
//	okm    = HKDF-SHA256(secret, salt, info, 28)
//	session key  = okm[0:16]  (AES-128)
//	session salt = okm[16:28]
//	nonce  = session salt XOR (uint32 epoch ‖ uint64 sequence)
//	AAD    = header bytes 0..35
//
// The stream name is bound through the key derivation (a chunk of stream A
// does not decrypt under stream B's keys even if both share a master key),
// the header through the AAD. A nonce never repeats under one session key as
// long as sequences within an epoch are not reused; Sealer enforces that.
//
// # Signature
//
// The signature is Ed25519ph (RFC 8032) with context string
// "banyan chunk v1" over the SHA-512 of
//
//	uint8(len(stream)) ‖ stream ‖ header bytes 0..35 ‖ ciphertext with tag
//
// so a chunk cannot be moved between streams or have its header altered, and
// signing and verifying hash the chunk in place, without a copy. Stream names
// are 1..255 bytes. Verify checks structure and signature only and needs no
// content key (relays, the tracker judging a bad-chunk report); Open verifies
// and then decrypts.
//
// # Pieces
//
// A data channel message carries at most MaxMessageSize (16 KiB) bytes, so
// a sealed chunk travels as pieces:
//
//	offset  size  field
//	0       1     type 0x50 ('P')
//	1       1     version 0x01
//	2       4     epoch (uint32)
//	6       8     sequence (uint64)
//	14      2     piece index (uint16), < count
//	16      2     piece count (uint16), >= 1
//	18      m     m >= 1 bytes of the sealed chunk
//
// Piece i holds bytes [i*S, i*S+m) of the sealed chunk. Every piece but the
// last has the same length S >= 36, so the first piece holds the whole chunk
// header and can be routed by it; the last has 1..S bytes. Every splitter of
// a chunk uses the same S (Split with MaxMessageSize gives S = 16366), so
// pieces from different parents can be mixed during repair. A Reassembler
// collects pieces in any order.
package chunk
