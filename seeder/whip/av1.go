package whip

import (
	"errors"
	"fmt"

	"github.com/banyan-live/banyan/media/av1"
)

// AV1 RTP payload format (https://aomediacodec.github.io/av1-rtp-spec/,
// section 4.4): a one-byte aggregation header, then OBU elements.
const (
	av1Z = 0x80 // the first element continues an OBU of the previous packet
	av1Y = 0x40 // the last element continues in the next packet
	av1W = 0x30 // element count (0: every element has a length field)
	av1N = 0x08 // first packet of a coded video sequence
)

// maxAV1TUSize bounds the OBU bytes of a temporal unit so that the sample
// the packager makes of it (each OBU with its size field added) stays
// within its limit (media/cmaf's MaxVideoAUSize).
const maxAV1TUSize = maxFrameSize - av1.MaxOBUsPerTU*8

var (
	errAV1Short    = errors.New("AV1 payload shorter than its aggregation header and one byte")
	errAV1NoStart  = errors.New("AV1 OBU fragment without its start")
	errAV1NoEnd    = errors.New("AV1 OBU fragment whose end was not sent")
	errAV1Count    = errors.New("AV1 payload holds fewer OBU elements than its header says")
	errAV1Element  = errors.New("AV1 OBU element past the payload")
	errAV1TooBig   = errors.New("fragmented AV1 OBU too large")
	errAV1LEB128   = errors.New("AV1 element length: bad leb128")
	errAV1Trailing = errors.New("AV1 OBU element with bytes after its sized OBUs")
)

// av1Depacketizer turns AV1 RTP payloads into OBUs in media/av1's form
// (header without the size field, then the payload), temporal delimiters
// and tile lists left out as receivers must. pion's AV1Depacketizer is not
// used: it re-copies a fragmented OBU on every packet (quadratic in a big
// key frame's size) and does not bound it, and it re-adds size fields that
// the packager's parser would strip again.
type av1Depacketizer struct {
	frag   []byte // an OBU element continued in the next packet
	inFrag bool
}

func newAV1Depacketizer() *av1Depacketizer { return &av1Depacketizer{} }

// newAV1Assembler assembles AV1 temporal units.
func newAV1Assembler() *assembler {
	return &assembler{dep: newAV1Depacketizer(), maxUnits: av1.MaxOBUsPerTU, maxSize: maxAV1TUSize}
}

func (d *av1Depacketizer) reset() {
	d.frag, d.inFrag = d.frag[:0], false
	if cap(d.frag) > 1<<20 {
		d.frag = nil // do not keep a rare huge OBU's buffer for the session
	}
}

// pending reports an OBU left unfinished at the end of a temporal unit
// (which the format forbids: OBUs never span temporal units) and forgets it.
func (d *av1Depacketizer) pending() bool {
	p := d.inFrag
	d.reset()
	return p
}

// push returns the OBUs that payload completes. The returned slices are
// fresh.
func (d *av1Depacketizer) push(payload []byte) ([][]byte, error) {
	if len(payload) < 2 {
		return nil, errAV1Short
	}
	h := payload[0]
	z, y, w := h&av1Z != 0, h&av1Y != 0, int(h&av1W>>4)
	if !z && d.inFrag {
		d.reset()
		return nil, errAV1NoEnd
	}
	if z && !d.inFrag {
		return nil, errAV1NoStart
	}
	var out [][]byte
	rest := payload[1:]
	// With W set, the last of its W elements has no length and runs to
	// the end; without, every element has one.
	for i := 0; len(rest) > 0 || (w > 0 && i < w); i++ {
		var elem []byte
		if w == 0 || i < w-1 {
			n, k, err := readLEB128(rest)
			if err != nil {
				d.reset()
				return nil, err
			}
			if n > uint64(len(rest)-k) {
				d.reset()
				return nil, errAV1Element
			}
			elem, rest = rest[k:k+int(n)], rest[k+int(n):]
		} else {
			if len(rest) == 0 {
				d.reset()
				return nil, errAV1Count
			}
			elem, rest = rest, nil
		}
		first, last := i == 0, len(rest) == 0 && (w == 0 || i == w-1)
		if first && z {
			if len(d.frag)+len(elem) > maxAV1TUSize {
				d.reset()
				return nil, errAV1TooBig
			}
			d.frag = append(d.frag, elem...)
			if last && y {
				return out, nil // a middle fragment
			}
			elem = d.frag
			d.inFrag = false
		} else if last && y {
			if len(elem) > maxAV1TUSize {
				return nil, errAV1TooBig
			}
			d.frag, d.inFrag = append(d.frag[:0], elem...), true
			return out, nil
		}
		var err error
		if out, err = appendOBUs(out, elem); err != nil {
			d.reset()
			return nil, err
		}
		if first && z {
			d.frag = d.frag[:0]
		}
	}
	return out, nil
}

// appendOBUs appends the OBU of an element (with or without its size
// field) in media/av1's form, unless receivers ignore it.
func appendOBUs(dst [][]byte, elem []byte) ([][]byte, error) {
	if len(elem) == 0 {
		return dst, nil // an empty element holds nothing to keep
	}
	obus, err := av1.Split(nil, elem)
	if err != nil {
		return dst, fmt.Errorf("AV1 OBU: %w", err)
	}
	if len(obus) != 1 {
		// A size field shorter than the element: the format has one OBU
		// per element.
		return dst, errAV1Trailing
	}
	switch av1.Type(obus[0]) {
	case av1.OBUTemporalDelimiter, av1.OBUTileList:
		return dst, nil
	}
	return append(dst, obus[0]), nil
}

// readLEB128 reads an element length: at most 8 bytes, below 2^32.
func readLEB128(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < 8 && i < len(b); i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			if v > 1<<32-1 {
				return 0, 0, errAV1LEB128
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, errAV1LEB128
}
