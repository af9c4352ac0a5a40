// Package avc parses the H.264 structures an RTMP ingest meets: the
// AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1) carried by the
// FLV sequence header, and length-prefixed (AVCC) NAL units carried by every
// video frame. Every input is treated as hostile: all lengths are checked
// against the buffer and the parsers return errors, never panic.
package avc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// NAL unit types used by the ingest (ITU-T H.264 Table 7-1).
const (
	NALUTypeNonIDR      = 1
	NALUTypeIDR         = 5
	NALUTypeSEI         = 6
	NALUTypeSPS         = 7
	NALUTypePPS         = 8
	NALUTypeAUD         = 9
	NALUTypeEndOfSeq    = 10
	NALUTypeEndOfStream = 11
	NALUTypeFiller      = 12
)

// NALUType returns the nal_unit_type of a NAL unit (0 for an empty one).
func NALUType(nalu []byte) uint8 {
	if len(nalu) == 0 {
		return 0
	}
	return nalu[0] & 0x1f
}

// Limits of the decoder configuration record. The format itself caps the
// counts (5 bits for SPS, 8 bits for PPS); MaxParamSetSize keeps a hostile
// record from smuggling huge "parameter sets" through to the packager.
const (
	MaxParamSetSize = 4096
)

// Errors returned by the parsers; wrapped with detail.
var (
	ErrShort   = errors.New("avc: truncated")
	ErrVersion = errors.New("avc: unsupported configurationVersion")
	ErrLength  = errors.New("avc: bad NAL unit length")
)

// DecoderConfig is a parsed AVCDecoderConfigurationRecord.
type DecoderConfig struct {
	Version       uint8 // configurationVersion, always 1
	Profile       uint8 // AVCProfileIndication
	ProfileCompat uint8 // profile_compatibility (constraint flags)
	Level         uint8 // AVCLevelIndication
	LengthSize    int   // NAL unit length prefix size: 1, 2 or 4
	SPS           [][]byte
	PPS           [][]byte
}

// ParseDecoderConfig parses an AVCDecoderConfigurationRecord. The returned
// parameter sets alias b. Trailing bytes (the optional High-profile
// extension, or padding some encoders append) are ignored.
func ParseDecoderConfig(b []byte) (DecoderConfig, error) {
	var c DecoderConfig
	if len(b) < 7 {
		return c, fmt.Errorf("%w: config record is %d bytes, need at least 7", ErrShort, len(b))
	}
	c.Version = b[0]
	if c.Version != 1 {
		return c, fmt.Errorf("%w: %d", ErrVersion, c.Version)
	}
	c.Profile, c.ProfileCompat, c.Level = b[1], b[2], b[3]
	c.LengthSize = int(b[4]&0x03) + 1
	if c.LengthSize == 3 {
		// lengthSizeMinusOne == 2 is reserved by the spec.
		return c, fmt.Errorf("avc: config record: invalid lengthSizeMinusOne 2")
	}
	pos := 5
	var err error
	nsps := int(b[pos] & 0x1f)
	pos++
	c.SPS, pos, err = readParamSets(b, pos, nsps, NALUTypeSPS, "SPS")
	if err != nil {
		return c, err
	}
	if pos >= len(b) {
		return c, fmt.Errorf("%w: config record ends before numOfPictureParameterSets", ErrShort)
	}
	npps := int(b[pos])
	pos++
	c.PPS, _, err = readParamSets(b, pos, npps, NALUTypePPS, "PPS")
	if err != nil {
		return c, err
	}
	return c, nil
}

func readParamSets(b []byte, pos, n int, wantType uint8, what string) ([][]byte, int, error) {
	if n == 0 {
		return nil, pos, nil
	}
	sets := make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		if len(b)-pos < 2 {
			return nil, pos, fmt.Errorf("%w: %s %d length", ErrShort, what, i)
		}
		l := int(binary.BigEndian.Uint16(b[pos:]))
		pos += 2
		if l == 0 {
			return nil, pos, fmt.Errorf("avc: config record: %s %d is empty", what, i)
		}
		if l > MaxParamSetSize {
			return nil, pos, fmt.Errorf("avc: config record: %s %d is %d bytes, limit %d", what, i, l, MaxParamSetSize)
		}
		if len(b)-pos < l {
			return nil, pos, fmt.Errorf("%w: %s %d needs %d bytes, %d left", ErrShort, what, i, l, len(b)-pos)
		}
		ps := b[pos : pos+l : pos+l]
		if t := NALUType(ps); t != wantType {
			return nil, pos, fmt.Errorf("avc: config record: %s %d has NAL type %d", what, i, t)
		}
		sets = append(sets, ps)
		pos += l
	}
	return sets, pos, nil
}

// Marshal encodes the record (without the High-profile extension). It is
// the inverse of ParseDecoderConfig for records that carry no extension.
func (c DecoderConfig) Marshal() ([]byte, error) {
	if c.LengthSize != 1 && c.LengthSize != 2 && c.LengthSize != 4 {
		return nil, fmt.Errorf("avc: marshal: invalid length size %d", c.LengthSize)
	}
	if len(c.SPS) > 31 || len(c.PPS) > 255 {
		return nil, fmt.Errorf("avc: marshal: %d SPS / %d PPS exceed the record's counts", len(c.SPS), len(c.PPS))
	}
	v := c.Version
	if v == 0 {
		v = 1
	}
	out := []byte{v, c.Profile, c.ProfileCompat, c.Level, 0xfc | byte(c.LengthSize-1), 0xe0 | byte(len(c.SPS))}
	for _, s := range c.SPS {
		if len(s) == 0 || len(s) > MaxParamSetSize {
			return nil, fmt.Errorf("avc: marshal: SPS of %d bytes", len(s))
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(s)))
		out = append(out, s...)
	}
	out = append(out, byte(len(c.PPS)))
	for _, p := range c.PPS {
		if len(p) == 0 || len(p) > MaxParamSetSize {
			return nil, fmt.Errorf("avc: marshal: PPS of %d bytes", len(p))
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(p)))
		out = append(out, p...)
	}
	return out, nil
}

// Equal reports whether two records carry the same stream parameters.
func (c DecoderConfig) Equal(o DecoderConfig) bool {
	if c.Profile != o.Profile || c.ProfileCompat != o.ProfileCompat || c.Level != o.Level ||
		c.LengthSize != o.LengthSize || len(c.SPS) != len(o.SPS) || len(c.PPS) != len(o.PPS) {
		return false
	}
	for i := range c.SPS {
		if !bytes.Equal(c.SPS[i], o.SPS[i]) {
			return false
		}
	}
	for i := range c.PPS {
		if !bytes.Equal(c.PPS[i], o.PPS[i]) {
			return false
		}
	}
	return true
}

// SplitAVCC splits a buffer of length-prefixed NAL units (prefix size
// lengthSize: 1, 2 or 4 bytes, big endian) and appends them to dst, which it
// returns. The NAL units alias b. Zero-length NAL units are skipped (some
// muxers pad with them). A length that overruns the buffer, a truncated
// prefix, or more than maxNALUs units is an error. maxNALUs <= 0 means no
// count limit beyond what the buffer can hold.
func SplitAVCC(dst [][]byte, b []byte, lengthSize, maxNALUs int) ([][]byte, error) {
	if lengthSize != 1 && lengthSize != 2 && lengthSize != 4 {
		return dst, fmt.Errorf("avc: split: invalid length size %d", lengthSize)
	}
	n := 0
	pos := 0
	for pos < len(b) {
		if len(b)-pos < lengthSize {
			return dst, fmt.Errorf("%w: %d bytes left at offset %d, prefix needs %d", ErrLength, len(b)-pos, pos, lengthSize)
		}
		var l uint64
		switch lengthSize {
		case 1:
			l = uint64(b[pos])
		case 2:
			l = uint64(binary.BigEndian.Uint16(b[pos:]))
		case 4:
			l = uint64(binary.BigEndian.Uint32(b[pos:]))
		}
		pos += lengthSize
		// Compare in uint64 so a 4-byte length near 2^32 cannot wrap on
		// 32-bit platforms.
		if l > uint64(len(b)-pos) {
			return dst, fmt.Errorf("%w: NAL unit of %d bytes at offset %d, %d left", ErrLength, l, pos-lengthSize, len(b)-pos)
		}
		if l == 0 {
			continue
		}
		n++
		if maxNALUs > 0 && n > maxNALUs {
			return dst, fmt.Errorf("avc: split: more than %d NAL units", maxNALUs)
		}
		end := pos + int(l)
		dst = append(dst, b[pos:end:end])
		pos = end
	}
	return dst, nil
}

// CodecString returns the RFC 6381 codec string ("avc1.PPCCLL", hex
// profile_idc, constraint flags and level_idc) of an SPS NAL unit.
func CodecString(sps []byte) (string, error) {
	if len(sps) < 4 {
		return "", fmt.Errorf("%w: SPS of %d bytes", ErrShort, len(sps))
	}
	if t := NALUType(sps); t != NALUTypeSPS {
		return "", fmt.Errorf("avc: codec string: NAL type %d is not an SPS", t)
	}
	// Bytes 1..3 follow the 1-byte NAL header directly; emulation
	// prevention cannot occur there because profile_idc is never 0.
	return fmt.Sprintf("avc1.%02X%02X%02X", sps[1], sps[2], sps[3]), nil
}
