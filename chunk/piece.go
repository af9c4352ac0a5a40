package chunk

import (
	"encoding/binary"
	"errors"
	"strconv"

	"github.com/banyan-live/banyan/internal/errs"
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
		return errs.Wrap("", ErrMalformed, ": piece count 0")
	}
	if p.Index >= p.Count {
		return errs.Wrap("", ErrMalformed, ": piece index "+strconv.FormatUint(uint64(p.Index), 10)+" of "+strconv.FormatUint(uint64(p.Count), 10))
	}
	if len(p.Data) == 0 {
		return errs.Wrap("", ErrMalformed, ": empty piece")
	}
	if p.Index < p.Count-1 && len(p.Data) < HeaderSize {
		// Every piece but the last has the common size S, and S must hold
		// the chunk header so that a first piece can be routed by it.
		return errs.Wrap("", ErrMalformed, ": piece "+strconv.FormatUint(uint64(p.Index), 10)+" of "+strconv.FormatUint(uint64(p.Count), 10)+" has "+strconv.Itoa(len(p.Data))+" bytes, fewer than a chunk header")
	}
	if len(p.Data) > MaxChunkSize {
		return errs.Wrap("", ErrMalformed, ": piece of "+strconv.Itoa(len(p.Data))+" bytes")
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
		return Piece{}, errs.Wrap("chunk: parse piece: ", ErrMalformed, ": "+strconv.Itoa(len(b))+" bytes, header needs "+strconv.Itoa(PieceHeaderSize))
	}
	if b[0] != PieceType || b[1] != PieceVersion {
		return Piece{}, errs.Wrap("chunk: parse piece: ", ErrMalformed, ": type 0x"+strconv.FormatUint(uint64(b[0]), 16)+" version "+strconv.FormatUint(uint64(b[1]), 10))
	}
	p := Piece{
		Epoch: binary.BigEndian.Uint32(b[2:]),
		Seq:   binary.BigEndian.Uint64(b[6:]),
		Index: binary.BigEndian.Uint16(b[14:]),
		Count: binary.BigEndian.Uint16(b[16:]),
		Data:  b[PieceHeaderSize:],
	}
	if err := p.validate(); err != nil {
		return Piece{}, errs.Wrap("chunk: parse piece: ", err, "")
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
		return nil, errs.Wrap("chunk: split: ", err, "")
	}
	if len(sealed) != h.SealedLen() {
		return nil, errs.Wrap("chunk: split: ", ErrMalformed, ": "+strconv.Itoa(len(sealed))+" bytes, header says "+strconv.Itoa(h.SealedLen()))
	}
	size := maxMessage - PieceHeaderSize
	if size < HeaderSize {
		return nil, errors.New("chunk: split: message size " + strconv.Itoa(maxMessage) + " leaves less than a chunk header (" + strconv.Itoa(HeaderSize) + " bytes) for data")
	}
	n := (len(sealed) + size - 1) / size
	if n > MaxPieces {
		return nil, errors.New("chunk: split: " + strconv.Itoa(n) + " pieces of " + strconv.Itoa(size) + " bytes exceed " + strconv.Itoa(MaxPieces))
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
