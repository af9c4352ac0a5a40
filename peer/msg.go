package peer

import (
	"encoding/binary"
	"errors"
	"strconv"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/internal/errs"
)

// Data channel message types: the first byte of every message. Pieces use
// chunk.PieceType ('P'); the control messages below use other letters so a
// receiver can dispatch on one byte. See doc.go for the layouts.
const (
	msgPiece = chunk.PieceType // 'P'
	msgWant  = 'W'             // ask a neighbour for pieces of a chunk it holds
	msgNope  = 'N'             // "I do not hold that chunk": ask someone else now
	msgSub   = 'S'             // "you are my parent in stripe s": send init and catch-up
	msgBad   = 'B'             // "a chunk I forwarded failed verification": do not blame me
	msgPing  = 'I'             // RTT probe
	msgPong  = 'O'             // RTT probe answer
	msgHave  = 'H'             // child to parent: "stop sending this chunk, I have it (or gave up)"
	msgRelay = 'R'             // child to parent: "I feed n viewers in stripe s" (directly or not)

	msgVersion = 1
)

// Control message sizes.
const (
	wantHeader = 16 // type, version, epoch(4), seq(8), n(2)
	// maxWantIndexes bounds the explicit piece list of one want; a longer
	// list is sent as "all pieces" (n = 0).
	maxWantIndexes = 512
	chunkRefSize   = 14 // type, version, epoch(4), seq(8)
	subSize        = 3  // type, version, stripe
	subHeldSize    = 16 // subSize, flags, epoch(4), from(8)
	pingSize       = 10 // type, version, token(8)
	relaySize      = 5  // type, version, stripe, n(2)
)

var errBadMessage = errors.New("peer: malformed message")

// want asks for pieces of (Epoch, Seq); an empty Pieces means all of them.
type want struct {
	Epoch  uint32
	Seq    uint64
	Pieces []uint16
}

func appendWant(dst []byte, w want) []byte {
	pieces := w.Pieces
	if len(pieces) > maxWantIndexes {
		pieces = nil // ask for everything rather than truncating silently
	}
	dst = append(dst, msgWant, msgVersion)
	dst = binary.BigEndian.AppendUint32(dst, w.Epoch)
	dst = binary.BigEndian.AppendUint64(dst, w.Seq)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(pieces)))
	for _, p := range pieces {
		dst = binary.BigEndian.AppendUint16(dst, p)
	}
	return dst
}

func parseWant(b []byte) (want, error) {
	if len(b) < wantHeader || b[0] != msgWant || b[1] != msgVersion {
		return want{}, errs.Wrap("", errBadMessage, ": want of "+strconv.Itoa(len(b))+" bytes")
	}
	n := int(binary.BigEndian.Uint16(b[14:]))
	if n > maxWantIndexes || len(b) != wantHeader+2*n {
		return want{}, errs.Wrap("", errBadMessage, ": want lists "+strconv.Itoa(n)+" pieces in "+strconv.Itoa(len(b))+" bytes")
	}
	w := want{Epoch: binary.BigEndian.Uint32(b[2:]), Seq: binary.BigEndian.Uint64(b[6:])}
	if n > 0 {
		w.Pieces = make([]uint16, n)
		for i := range w.Pieces {
			w.Pieces[i] = binary.BigEndian.Uint16(b[wantHeader+2*i:])
		}
	}
	return w, nil
}

// appendRef encodes the messages that name one chunk (nope, bad, have).
func appendRef(dst []byte, typ byte, k key) []byte {
	dst = append(dst, typ, msgVersion)
	dst = binary.BigEndian.AppendUint32(dst, k.epoch)
	return binary.BigEndian.AppendUint64(dst, k.seq)
}

func parseRef(b []byte, typ byte) (key, error) {
	if len(b) != chunkRefSize || b[0] != typ || b[1] != msgVersion {
		return key{}, errs.Wrap("", errBadMessage, ": "+strconv.QuoteRune(rune(typ))+" message of "+strconv.Itoa(len(b))+" bytes")
	}
	return key{binary.BigEndian.Uint32(b[2:]), binary.BigEndian.Uint64(b[6:])}, nil
}

// held is what a subscribing child already holds of a stripe, so that the
// parent's catch-up burst leaves it out: the init segment of epoch (init),
// and every chunk of the stripe before from that it still needs. A child
// that re-parents mid-stream holds the whole burst already; sending it
// again is pure duplicate upload.
type held struct {
	ok    bool // the subscribe said what it holds
	init  bool
	epoch uint32
	from  uint64
}

// Subscribe flags.
const subInit = 1 // the child holds the init segment of the epoch

func appendSub(dst []byte, stripe int, h held) []byte {
	dst = append(dst, msgSub, msgVersion, byte(stripe))
	if !h.ok {
		return dst
	}
	var flags byte
	if h.init {
		flags |= subInit
	}
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint32(dst, h.epoch)
	return binary.BigEndian.AppendUint64(dst, h.from)
}

// parseSub accepts both layouts: the bare one (stripe only: send the whole
// burst) and the one that says what the child holds.
func parseSub(b []byte, stripes int) (int, held, error) {
	if (len(b) != subSize && len(b) != subHeldSize) || b[0] != msgSub || b[1] != msgVersion || int(b[2]) >= stripes {
		return 0, held{}, errs.Wrap("", errBadMessage, ": subscribe of "+strconv.Itoa(len(b))+" bytes")
	}
	if len(b) == subSize {
		return int(b[2]), held{}, nil
	}
	if b[3]&^subInit != 0 {
		return 0, held{}, errs.Wrap("", errBadMessage, ": subscribe flags 0x"+strconv.FormatUint(uint64(b[3]), 16))
	}
	return int(b[2]), held{ok: true, init: b[3]&subInit != 0, epoch: binary.BigEndian.Uint32(b[4:]), from: binary.BigEndian.Uint64(b[8:])}, nil
}

func appendPing(dst []byte, typ byte, token uint64) []byte {
	dst = append(dst, typ, msgVersion)
	return binary.BigEndian.AppendUint64(dst, token)
}

func parsePing(b []byte, typ byte) (uint64, error) {
	if len(b) != pingSize || b[0] != typ || b[1] != msgVersion {
		return 0, errs.Wrap("", errBadMessage, ": "+strconv.QuoteRune(rune(typ))+" message of "+strconv.Itoa(len(b))+" bytes")
	}
	return binary.BigEndian.Uint64(b[2:]), nil
}

func appendRelay(dst []byte, stripe, children int) []byte {
	dst = append(dst, msgRelay, msgVersion, byte(stripe))
	return binary.BigEndian.AppendUint16(dst, uint16(min(children, 1<<16-1)))
}

func parseRelay(b []byte, stripes int) (stripe, children int, err error) {
	if len(b) != relaySize || b[0] != msgRelay || b[1] != msgVersion || int(b[2]) >= stripes {
		return 0, 0, errs.Wrap("", errBadMessage, ": relay of "+strconv.Itoa(len(b))+" bytes")
	}
	return int(b[2]), int(binary.BigEndian.Uint16(b[3:])), nil
}
