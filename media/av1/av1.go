// Package av1 reads what Banyan needs from an AV1 bitstream: it splits a
// temporal unit into OBUs, finds the sequence header in an
// AV1CodecConfigurationRecord (av1C), tells a key frame from the frame
// header's first bits, writes samples as the AV1 ISOBMFF binding wants them
// and names the stream with its RFC 6381 codec string. It does no I/O and
// decodes nothing beyond those bits.
//
// An OBU in this package's form is its header (one byte, or two with the
// extension) with obu_has_size_field cleared, then its payload: the size
// field is implied by the slice, so two copies of a sequence header compare
// equal whether or not their encoder wrote a size.
package av1

import (
	"errors"
	"strconv"

	"github.com/banyan-live/banyan/internal/errs"
)

// OBUType is an OBU's obu_type.
type OBUType uint8

// OBU types (AV1 spec 6.2.2).
const (
	OBUSequenceHeader       OBUType = 1
	OBUTemporalDelimiter    OBUType = 2
	OBUFrameHeader          OBUType = 3
	OBUTileGroup            OBUType = 4
	OBUMetadata             OBUType = 5
	OBUFrame                OBUType = 6
	OBURedundantFrameHeader OBUType = 7
	OBUTileList             OBUType = 8
	OBUPadding              OBUType = 15
)

// Bounds on hostile input.
const (
	MaxOBUsPerTU = 64
	// maxLEB128Bytes is the spec's limit on a leb128() field.
	maxLEB128Bytes = 8
)

// Type is obu's type; 0 for an empty slice.
func Type(obu []byte) OBUType {
	if len(obu) == 0 {
		return 0
	}
	return OBUType(obu[0] >> 3 & 0x0f)
}

// headerLen is the length of obu's header: 2 with the extension flag.
func headerLen(b byte) int {
	if b&0x04 != 0 {
		return 2
	}
	return 1
}

// Split appends to dst the OBUs of a temporal unit in the low-overhead
// bitstream format (obu_has_size_field set; the last OBU may leave it
// clear and run to the end). The OBUs are copies in this package's form.
func Split(dst [][]byte, tu []byte) ([][]byte, error) {
	buf := make([]byte, 0, len(tu))
	for len(tu) > 0 {
		if len(dst) >= MaxOBUsPerTU {
			return dst, errors.New("av1: temporal unit has more than " + strconv.Itoa(MaxOBUsPerTU) + " OBUs")
		}
		h := tu[0]
		if h&0x80 != 0 {
			return dst, errors.New("av1: OBU forbidden bit set")
		}
		hl := headerLen(h)
		if len(tu) < hl {
			return dst, errors.New("av1: truncated OBU header")
		}
		size, rest := len(tu)-hl, tu[hl:]
		if h&0x02 != 0 {
			v, n, err := readLEB128(rest)
			if err != nil {
				return dst, err
			}
			if v > uint64(len(rest)-n) {
				return dst, errors.New("av1: OBU of " + strconv.FormatUint(v, 10) + " bytes, " + strconv.Itoa(len(rest)-n) + " left")
			}
			size, rest = int(v), rest[n:]
		}
		start := len(buf)
		buf = append(buf, h&^0x02)
		buf = append(buf, tu[1:hl]...)
		buf = append(buf, rest[:size]...)
		dst = append(dst, buf[start:len(buf):len(buf)])
		tu = rest[size:]
	}
	return dst, nil
}

// AppendSample appends the OBUs to dst as an ISOBMFF sample: each with its
// size field, without temporal delimiters, padding or tile lists (the
// binding's rules). OBUs shorter than their header are skipped.
func AppendSample(dst []byte, obus [][]byte) []byte {
	for _, o := range obus {
		hl, ok := inSample(o)
		if !ok {
			continue
		}
		dst = append(dst, o[0]|0x02)
		dst = append(dst, o[1:hl]...)
		dst = appendLEB128(dst, uint64(len(o)-hl))
		dst = append(dst, o[hl:]...)
	}
	return dst
}

// SampleSize is len(AppendSample(nil, obus)).
func SampleSize(obus [][]byte) int {
	n := 0
	for _, o := range obus {
		if hl, ok := inSample(o); ok {
			n += len(o) + lebLen(uint64(len(o)-hl))
		}
	}
	return n
}

// inSample says whether an OBU goes into a sample, and its header length.
func inSample(o []byte) (int, bool) {
	if len(o) == 0 || len(o) < headerLen(o[0]) {
		return 0, false
	}
	switch Type(o) {
	case OBUTemporalDelimiter, OBUPadding, OBUTileList:
		return 0, false
	}
	return headerLen(o[0]), true
}

// SequenceHeader returns the first sequence header among obus, or nil.
func SequenceHeader(obus [][]byte) []byte {
	for _, o := range obus {
		if Type(o) == OBUSequenceHeader {
			return o
		}
	}
	return nil
}

// IsKey reports whether the temporal unit starts a key frame: its first
// frame header (alone or in a frame OBU) has show_existing_frame 0 and
// frame_type KEY_FRAME. reducedStill is the sequence header's
// reduced_still_picture_header, under which every frame is a key frame.
// A shown existing key frame is not counted: it only resets the decoder
// with the sequence header and frame it already has.
func IsKey(obus [][]byte, reducedStill bool) bool {
	for _, o := range obus {
		if t := Type(o); t != OBUFrameHeader && t != OBUFrame {
			continue
		}
		if reducedStill {
			return true
		}
		hl := headerLen(o[0])
		if len(o) <= hl {
			return false
		}
		b := o[hl]
		// show_existing_frame (1 bit), then frame_type (2 bits).
		return b&0x80 == 0 && b>>5&0x03 == 0
	}
	return false
}

// ConfigRecord is what an AV1CodecConfigurationRecord says.
type ConfigRecord struct {
	// Fixed are the record's bytes 1 and 2 (profile, level, tier, bit
	// depth, chroma), which the codec string is made from.
	Fixed [2]byte
	// SeqHeader is the sequence header among the config OBUs, nil when
	// the record carries none (it then comes in-band with a key frame).
	SeqHeader []byte
}

// ParseConfigRecord parses an av1C body (AV1-ISOBMFF 2.3.3).
func ParseConfigRecord(b []byte) (ConfigRecord, error) {
	var r ConfigRecord
	if len(b) < 4 {
		return r, errors.New("av1: config record of " + strconv.Itoa(len(b)) + " bytes, need 4")
	}
	if b[0] != 0x81 {
		return r, errors.New("av1: config record marker/version byte 0x" + strconv.FormatUint(uint64(b[0]), 16) + ", want 0x81")
	}
	r.Fixed = [2]byte{b[1], b[2]}
	obus, err := Split(nil, b[4:])
	if err != nil {
		return r, errs.Wrap("av1: config OBUs: ", err, "")
	}
	r.SeqHeader = SequenceHeader(obus)
	return r, nil
}

// CodecString is the RFC 6381 codec string of the AV1 ISOBMFF binding,
// av01.P.LLT.DD, from an av1C record's bytes 1 and 2.
func CodecString(fixed [2]byte) string {
	profile, level := fixed[0]>>5, fixed[0]&0x1f
	tier := byte('M')
	if fixed[1]&0x80 != 0 {
		tier = 'H'
	}
	depth := 8
	if fixed[1]&0x40 != 0 { // high_bitdepth
		depth = 10
		if profile == 2 && fixed[1]&0x20 != 0 { // twelve_bit
			depth = 12
		}
	}
	b := make([]byte, 0, len("av01.0.00M.08"))
	b = append(b, "av01."...)
	b = strconv.AppendUint(b, uint64(profile), 10)
	b = append(b, '.', '0'+level/10, '0'+level%10, tier, '.', '0'+byte(depth/10), '0'+byte(depth%10))
	return string(b)
}

func readLEB128(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < maxLEB128Bytes; i++ {
		if i >= len(b) {
			return 0, 0, errors.New("av1: truncated OBU size")
		}
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			if v > 1<<32-1 {
				return 0, 0, errors.New("av1: OBU size exceeds 2^32-1")
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("av1: OBU size field longer than 8 bytes")
}

func appendLEB128(dst []byte, v uint64) []byte {
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}

func lebLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
