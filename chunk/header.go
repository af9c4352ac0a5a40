package chunk

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"

	"github.com/banyan-live/banyan/internal/errs"
)

// Wire constants of a sealed chunk.
const (
	Magic   = 0xBA // first byte of every sealed chunk
	Version = 1    // the only version this package reads and writes

	HeaderSize    = 36 // fixed header, bytes 0..35
	TagSize       = 16 // AES-GCM tag appended to the ciphertext
	SignatureSize = 64 // Ed25519 signature at the end
	// Overhead is what sealing adds to a payload.
	Overhead = HeaderSize + TagSize + SignatureSize

	// MaxPayload bounds the payload length a header may declare, so that a
	// hostile length never makes anyone allocate more. A 250 ms chunk at
	// 50 Mbit/s is about 1.6 MB.
	MaxPayload = 8 << 20
	// MaxChunkSize is the largest well-formed sealed chunk.
	MaxChunkSize = MaxPayload + Overhead

	// MaxStreamName bounds stream names (they are length-prefixed by one
	// byte in the signed and derived data).
	MaxStreamName = 255
)

// Errors returned by this package; test with errors.Is.
var (
	// ErrMalformed: the bytes do not form a valid chunk or piece.
	ErrMalformed = errors.New("malformed")
	// ErrBadSignature: the signature does not verify for this stream.
	ErrBadSignature = errors.New("bad signature")
	// ErrUnknownKey: the chunk names a key id the keyring does not hold.
	ErrUnknownKey = errors.New("unknown key id")
	// ErrDecrypt: the payload did not authenticate under the session key.
	ErrDecrypt = errors.New("decryption failed")
	// ErrSeqOrder: a Sealer was asked to seal an (epoch, sequence) that is
	// not after the last one it sealed; sealing it could reuse a nonce.
	ErrSeqOrder = errors.New("epoch or sequence not increasing")
	// ErrKeyConflict: a different master key with the same id is present.
	ErrKeyConflict = errors.New("key id already holds a different key")
	// ErrBadStream: the stream name is empty or longer than MaxStreamName.
	ErrBadStream = errors.New("bad stream name")
)

// Flags describe a chunk. Unknown bits are malformed in version 1.
type Flags uint8

const (
	// FlagInit marks the init segment; it is set exactly when Seq is 0.
	FlagInit Flags = 1 << iota
	// FlagKeyframe: the chunk starts with a sync sample (a segment boundary).
	FlagKeyframe
	// FlagDiscontinuity: media time does not follow the previous chunk.
	FlagDiscontinuity
	// FlagEndOfStream: the publisher ended; no chunk follows in this epoch.
	FlagEndOfStream

	knownFlags = FlagInit | FlagKeyframe | FlagDiscontinuity | FlagEndOfStream
)

func (f Flags) String() string {
	if f == 0 {
		return "0"
	}
	var parts []string
	for _, x := range []struct {
		f Flags
		s string
	}{{FlagInit, "init"}, {FlagKeyframe, "key"}, {FlagDiscontinuity, "disc"}, {FlagEndOfStream, "eos"}} {
		if f&x.f != 0 {
			parts = append(parts, x.s)
		}
	}
	if rest := f &^ knownFlags; rest != 0 {
		parts = append(parts, "0x"+strconv.FormatUint(uint64(uint8(rest)), 16))
	}
	return strings.Join(parts, "|")
}

// Header is the fixed, unencrypted, signed front of a sealed chunk.
type Header struct {
	Flags Flags
	KeyID uint32
	Epoch uint32
	// Seq is 0 for the init segment, 1.. for media chunks.
	Seq uint64
	// MediaTime is the decode time of the first sample, in microseconds
	// since the start of the publish.
	MediaTime uint64
	// Duration of the chunk's media, in microseconds.
	Duration uint32
	// PayloadLen is the plaintext length. Seal fills it in.
	PayloadLen uint32
}

// SealedLen is the length of the sealed chunk this header describes.
func (h Header) SealedLen() int { return Overhead + int(h.PayloadLen) }

// IsInit reports whether the chunk is an init segment.
func (h Header) IsInit() bool { return h.Flags&FlagInit != 0 }

func (h Header) String() string {
	return "chunk{epoch=" + strconv.FormatUint(uint64(h.Epoch), 10) + " seq=" + strconv.FormatUint(h.Seq, 10) + " flags=" + h.Flags.String() + " key=" + strconv.FormatUint(uint64(h.KeyID), 10) + " t=" + strconv.FormatUint(h.MediaTime, 10) + "us d=" + strconv.FormatUint(uint64(h.Duration), 10) + "us len=" + strconv.FormatUint(uint64(h.PayloadLen), 10) + "}"
}

// Validate checks the header's own rules (flags, init convention, bounds).
func (h Header) Validate() error {
	if err := h.validate(); err != nil {
		return errs.Wrap("chunk: header: ", err, "")
	}
	return nil
}

func (h Header) validate() error {
	if h.Flags&^knownFlags != 0 {
		return errs.Wrap("", ErrMalformed, ": unknown flags 0x"+strconv.FormatUint(uint64(uint8(h.Flags&^knownFlags)), 16))
	}
	if h.IsInit() != (h.Seq == 0) {
		return errs.Wrap("", ErrMalformed, ": init flag must be set exactly on sequence 0 (seq "+strconv.FormatUint(h.Seq, 10)+", flags "+h.Flags.String()+")")
	}
	if h.PayloadLen > MaxPayload {
		return errs.Wrap("", ErrMalformed, ": payload length "+strconv.FormatUint(uint64(h.PayloadLen), 10)+" exceeds "+strconv.Itoa(MaxPayload))
	}
	return nil
}

// AppendBinary appends the HeaderSize-byte encoding of h to b. It does not
// validate h.
func (h Header) AppendBinary(b []byte) ([]byte, error) {
	return h.appendTo(b), nil
}

func (h Header) appendTo(b []byte) []byte {
	b = append(b, Magic, Version, byte(h.Flags), 0)
	b = binary.BigEndian.AppendUint32(b, h.KeyID)
	b = binary.BigEndian.AppendUint32(b, h.Epoch)
	b = binary.BigEndian.AppendUint64(b, h.Seq)
	b = binary.BigEndian.AppendUint64(b, h.MediaTime)
	b = binary.BigEndian.AppendUint32(b, h.Duration)
	b = binary.BigEndian.AppendUint32(b, h.PayloadLen)
	return b
}

// ParseHeader decodes and validates the header at the start of b, which may
// be a whole sealed chunk or only its first piece. It does no cryptography:
// a parsed header is only a routing hint until Verify has passed.
func ParseHeader(b []byte) (Header, error) {
	h, err := parseHeader(b)
	if err != nil {
		return Header{}, errs.Wrap("chunk: parse header: ", err, "")
	}
	return h, nil
}

func parseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, errs.Wrap("", ErrMalformed, ": "+strconv.Itoa(len(b))+" bytes, header needs "+strconv.Itoa(HeaderSize))
	}
	if b[0] != Magic {
		return Header{}, errs.Wrap("", ErrMalformed, ": bad magic 0x"+strconv.FormatUint(uint64(b[0]), 16))
	}
	if b[1] != Version {
		return Header{}, errs.Wrap("", ErrMalformed, ": unsupported version "+strconv.FormatUint(uint64(b[1]), 10))
	}
	if b[3] != 0 {
		return Header{}, errs.Wrap("", ErrMalformed, ": reserved byte 0x"+strconv.FormatUint(uint64(b[3]), 16))
	}
	h := Header{
		Flags:      Flags(b[2]),
		KeyID:      binary.BigEndian.Uint32(b[4:]),
		Epoch:      binary.BigEndian.Uint32(b[8:]),
		Seq:        binary.BigEndian.Uint64(b[12:]),
		MediaTime:  binary.BigEndian.Uint64(b[20:]),
		Duration:   binary.BigEndian.Uint32(b[28:]),
		PayloadLen: binary.BigEndian.Uint32(b[32:]),
	}
	if err := h.validate(); err != nil {
		return Header{}, err
	}
	return h, nil
}

func checkStream(stream string) error {
	if len(stream) == 0 || len(stream) > MaxStreamName {
		return errs.Wrap("", ErrBadStream, ": length "+strconv.Itoa(len(stream))+", want 1.."+strconv.Itoa(MaxStreamName))
	}
	return nil
}
