package chunk

import (
	"encoding/binary"
	"fmt"
)

// Piece wire constants.
const (
	PieceType    = 0x50 // 'P', first byte of a piece message
	PieceVersion = 1

	PieceHeaderSize = 18
	// MaxMessageSize is the largest data channel message Banyan sends.
	MaxMessageSize = 16 << 10
	// DefaultPieceData is the piece size S that Split(sealed,
	// MaxMessageSize) produces; all splitters use it.
	DefaultPieceData = MaxMessageSize - PieceHeaderSize
	// MaxPieces is the most pieces a chunk can have (Count is a uint16).
	MaxPieces = 1<<16 - 1
)

// Piece is one data channel message's share of a sealed chunk. Data aliases
// the buffer it was parsed from or split out of.
type Piece struct {
	Epoch uint32
	Seq   uint64
	Index uint16 // 0-based, < Count
	Count uint16 // >= 1
	Data  []byte // >= 1 byte
}

func (p Piece) validate() error {
	if p.Count == 0 {
		return fmt.Errorf("%w: piece count 0", ErrMalformed)
	}
	if p.Index >= p.Count {
		return fmt.Errorf("%w: piece index %d of %d", ErrMalformed, p.Index, p.Count)
	}
	if len(p.Data) == 0 {
		return fmt.Errorf("%w: empty piece", ErrMalformed)
	}
	if p.Index < p.Count-1 && len(p.Data) < HeaderSize {
		// Every piece but the last has the common size S, and S must hold
		// the chunk header so that a first piece can be routed by it.
		return fmt.Errorf("%w: piece %d of %d has %d bytes, fewer than a chunk header", ErrMalformed, p.Index, p.Count, len(p.Data))
	}
	if len(p.Data) > MaxChunkSize {
		return fmt.Errorf("%w: piece of %d bytes", ErrMalformed, len(p.Data))
	}
	return nil
}

// AppendPiece appends the encoding of p to dst.
func AppendPiece(dst []byte, p Piece) []byte {
	dst = append(dst, PieceType, PieceVersion)
	dst = binary.BigEndian.AppendUint32(dst, p.Epoch)
	dst = binary.BigEndian.AppendUint64(dst, p.Seq)
	dst = binary.BigEndian.AppendUint16(dst, p.Index)
	dst = binary.BigEndian.AppendUint16(dst, p.Count)
	return append(dst, p.Data...)
}

// ParsePiece decodes a piece message. Data aliases b (no copy).
func ParsePiece(b []byte) (Piece, error) {
	if len(b) < PieceHeaderSize {
		return Piece{}, fmt.Errorf("chunk: parse piece: %w: %d bytes, header needs %d", ErrMalformed, len(b), PieceHeaderSize)
	}
	if b[0] != PieceType || b[1] != PieceVersion {
		return Piece{}, fmt.Errorf("chunk: parse piece: %w: type %#x version %d", ErrMalformed, b[0], b[1])
	}
	p := Piece{
		Epoch: binary.BigEndian.Uint32(b[2:]),
		Seq:   binary.BigEndian.Uint64(b[6:]),
		Index: binary.BigEndian.Uint16(b[14:]),
		Count: binary.BigEndian.Uint16(b[16:]),
		Data:  b[PieceHeaderSize:],
	}
	if err := p.validate(); err != nil {
		return Piece{}, fmt.Errorf("chunk: parse piece: %w", err)
	}
	return p, nil
}

// Split cuts a sealed chunk into pieces whose encodings are at most
// maxMessage bytes each (use MaxMessageSize). Data fields are slices of
// sealed, not copies. The epoch and sequence come from the chunk header;
// Split checks its structure but not its signature.
func Split(sealed []byte, maxMessage int) ([]Piece, error) {
	h, err := parseHeader(sealed)
	if err != nil {
		return nil, fmt.Errorf("chunk: split: %w", err)
	}
	if len(sealed) != h.SealedLen() {
		return nil, fmt.Errorf("chunk: split: %w: %d bytes, header says %d", ErrMalformed, len(sealed), h.SealedLen())
	}
	size := maxMessage - PieceHeaderSize
	if size < HeaderSize {
		return nil, fmt.Errorf("chunk: split: message size %d leaves less than a chunk header (%d bytes) for data", maxMessage, HeaderSize)
	}
	n := (len(sealed) + size - 1) / size
	if n > MaxPieces {
		return nil, fmt.Errorf("chunk: split: %d pieces of %d bytes exceed %d", n, size, MaxPieces)
	}
	pieces := make([]Piece, n)
	for i := range pieces {
		end := min((i+1)*size, len(sealed))
		pieces[i] = Piece{
			Epoch: h.Epoch,
			Seq:   h.Seq,
			Index: uint16(i),
			Count: uint16(n),
			Data:  sealed[i*size : end : end],
		}
	}
	return pieces, nil
}
