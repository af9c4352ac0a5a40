// Package hevc parses the H.265 structures an RTMP ingest meets: the
// HEVCDecoderConfigurationRecord (hvcC, ISO/IEC 14496-15 §8.3.3.1) carried
// by enhanced RTMP's SequenceStart, the NAL unit header, and the
// profile_tier_level that names the stream in its RFC 6381 codec string
// (ISO/IEC 14496-15 Annex E). Length-prefixed NAL units split as in H.264
// (avc.SplitAVCC). Every input is treated as hostile: lengths are checked
// against the buffer and the parsers return errors, never panic.
//
// It depends on nothing but the standard library, so the browser player
// (wasm) can use CodecString too.
package hevc

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/bits"
	"strconv"
	"strings"

	"github.com/banyan-live/banyan/internal/errs"
)

// NAL unit types used by the ingest and the packager (ITU-T H.265 Table 7-1).
const (
	NALUTypeBLAWLP    = 16 // first IRAP type
	NALUTypeIDRWRADL  = 19
	NALUTypeIDRNLP    = 20
	NALUTypeCRA       = 21
	NALUTypeIRAPLast  = 23 // last (reserved) IRAP type
	NALUTypeVPS       = 32
	NALUTypeSPS       = 33
	NALUTypePPS       = 34
	NALUTypeAUD       = 35
	NALUTypeSEIPrefix = 39
)

// NALUType returns the nal_unit_type of a NAL unit (0 for an empty one).
func NALUType(nalu []byte) uint8 {
	if len(nalu) == 0 {
		return 0
	}
	return (nalu[0] >> 1) & 0x3f
}

// IsIRAP reports whether a NAL unit type is an intra random access point
// (BLA, IDR, CRA): a picture a decoder can start at.
func IsIRAP(typ uint8) bool { return typ >= NALUTypeBLAWLP && typ <= NALUTypeIRAPLast }

// Limits of the record.
const (
	MaxParamSetSize = 4096
	// maxParamSets bounds how many parameter sets of one type a record may
	// carry; real encoders send one VPS, one SPS and one PPS.
	maxParamSets = 16
	// recordHeader is the fixed part of hvcC before its NAL unit arrays.
	recordHeader = 23
	// PTLSize is the general profile_tier_level: profile space, tier and
	// profile (1 byte), compatibility flags (4), constraint flags (6),
	// level (1). hvcC and the SPS carry it alike.
	PTLSize = 12
)

// Errors returned by the parsers; wrapped with detail.
var (
	ErrShort   = errors.New("hevc: truncated")
	ErrVersion = errors.New("hevc: unsupported configurationVersion")
)

// DecoderConfig is a parsed HEVCDecoderConfigurationRecord: the fields a
// packager needs. Parameter sets alias the parsed buffer.
type DecoderConfig struct {
	PTL        [PTLSize]byte // general profile_tier_level, as in the SPS
	LengthSize int           // NAL unit length prefix size: 1, 2 or 4
	VPS        [][]byte
	SPS        [][]byte
	PPS        [][]byte
}

// ParseDecoderConfig parses an HEVCDecoderConfigurationRecord. Arrays of
// other NAL types (SEI) are skipped; trailing bytes are ignored.
func ParseDecoderConfig(b []byte) (DecoderConfig, error) {
	var c DecoderConfig
	if len(b) < recordHeader {
		return c, errs.Wrap("", ErrShort, ": config record is "+strconv.Itoa(len(b))+" bytes, need at least "+strconv.Itoa(recordHeader))
	}
	// Version 1 is the standard; some early muxers wrote 0 with the same
	// layout.
	if b[0] > 1 {
		return c, errs.Wrap("", ErrVersion, ": "+strconv.FormatUint(uint64(b[0]), 10))
	}
	copy(c.PTL[:], b[1:1+PTLSize])
	c.LengthSize = int(b[21]&0x03) + 1
	if c.LengthSize == 3 {
		return c, errors.New("hevc: config record: invalid lengthSizeMinusOne 2")
	}
	n := int(b[22])
	pos := recordHeader
	for i := 0; i < n; i++ {
		if len(b)-pos < 3 {
			return c, errs.Wrap("", ErrShort, ": array "+strconv.Itoa(i)+" header")
		}
		typ := b[pos] & 0x3f
		count := int(binary.BigEndian.Uint16(b[pos+1:]))
		pos += 3
		for j := 0; j < count; j++ {
			if len(b)-pos < 2 {
				return c, errs.Wrap("", ErrShort, ": array "+strconv.Itoa(i)+" NAL unit "+strconv.Itoa(j)+" length")
			}
			l := int(binary.BigEndian.Uint16(b[pos:]))
			pos += 2
			if len(b)-pos < l {
				return c, errs.Wrap("", ErrShort, ": array "+strconv.Itoa(i)+" NAL unit "+strconv.Itoa(j)+" needs "+strconv.Itoa(l)+" bytes, "+strconv.Itoa(len(b)-pos)+" left")
			}
			nalu := b[pos : pos+l : pos+l]
			pos += l
			var dst *[][]byte
			switch typ {
			case NALUTypeVPS:
				dst = &c.VPS
			case NALUTypeSPS:
				dst = &c.SPS
			case NALUTypePPS:
				dst = &c.PPS
			default:
				continue
			}
			if l == 0 || l > MaxParamSetSize {
				return c, errors.New("hevc: config record: NAL unit of type " + strconv.FormatUint(uint64(typ), 10) + " is " + strconv.Itoa(l) + " bytes (1 to " + strconv.Itoa(MaxParamSetSize) + ")")
			}
			if t := NALUType(nalu); t != typ {
				return c, errors.New("hevc: config record: array of type " + strconv.FormatUint(uint64(typ), 10) + " holds NAL type " + strconv.FormatUint(uint64(t), 10))
			}
			if len(*dst) == maxParamSets {
				return c, errors.New("hevc: config record: more than " + strconv.Itoa(maxParamSets) + " NAL units of type " + strconv.FormatUint(uint64(typ), 10))
			}
			*dst = append(*dst, nalu)
		}
	}
	return c, nil
}

// Marshal encodes a record with one array per parameter set type, the
// profile_tier_level taken from PTL and 4-byte NAL unit lengths when
// LengthSize is 0. Fields a decoder derives from the SPS (chroma format,
// bit depths, frame rate) are written as "unknown" where the format
// allows and as 4:2:0 8-bit otherwise; players read the SPS.
func (c DecoderConfig) Marshal() ([]byte, error) {
	ls := c.LengthSize
	if ls == 0 {
		ls = 4
	}
	if ls != 1 && ls != 2 && ls != 4 {
		return nil, errors.New("hevc: marshal: invalid length size " + strconv.Itoa(ls))
	}
	out := make([]byte, 0, 64)
	out = append(out, 1)
	out = append(out, c.PTL[:]...)
	out = append(out,
		0xf0, 0x00, // min_spatial_segmentation_idc 0
		0xfc,       // parallelismType unknown
		0xfd,       // chroma_format_idc 1 (4:2:0)
		0xf8, 0xf8, // bit depths 8
		0x00, 0x00, // avgFrameRate unknown
		byte(ls-1)) // constantFrameRate 0, numTemporalLayers 0, temporalIdNested 0
	arrays := []struct {
		typ  uint8
		sets [][]byte
	}{{NALUTypeVPS, c.VPS}, {NALUTypeSPS, c.SPS}, {NALUTypePPS, c.PPS}}
	n := 0
	for _, a := range arrays {
		if len(a.sets) > 0 {
			n++
		}
	}
	out = append(out, byte(n))
	for _, a := range arrays {
		if len(a.sets) == 0 {
			continue
		}
		if len(a.sets) > maxParamSets {
			return nil, errors.New("hevc: marshal: " + strconv.Itoa(len(a.sets)) + " NAL units of type " + strconv.FormatUint(uint64(a.typ), 10))
		}
		out = append(out, 0x80|a.typ) // array_completeness 1
		out = binary.BigEndian.AppendUint16(out, uint16(len(a.sets)))
		for _, s := range a.sets {
			if len(s) == 0 || len(s) > MaxParamSetSize {
				return nil, errors.New("hevc: marshal: NAL unit of type " + strconv.FormatUint(uint64(a.typ), 10) + " is " + strconv.Itoa(len(s)) + " bytes")
			}
			out = binary.BigEndian.AppendUint16(out, uint16(len(s)))
			out = append(out, s...)
		}
	}
	return out, nil
}

// PTLFromSPS reads the general profile_tier_level of an SPS NAL unit: the
// 12 bytes after the NAL header and the byte holding the VPS id, with
// emulation prevention removed.
func PTLFromSPS(sps []byte) ([PTLSize]byte, error) {
	var ptl [PTLSize]byte
	if t := NALUType(sps); len(sps) < 2 || t != NALUTypeSPS {
		return ptl, errors.New("hevc: profile_tier_level: not an SPS (" + strconv.Itoa(len(sps)) + " bytes, NAL type " + strconv.FormatUint(uint64(t), 10) + ")")
	}
	// RBSP bytes after the 2-byte NAL header; the first is
	// sps_video_parameter_set_id, sps_max_sub_layers_minus1 and
	// sps_temporal_id_nesting_flag.
	var rbsp [1 + PTLSize]byte
	n, zeros := 0, 0
	for _, c := range sps[2:] {
		if n == len(rbsp) {
			break
		}
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue // emulation_prevention_three_byte
		}
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
		rbsp[n] = c
		n++
	}
	if n < len(rbsp) {
		return ptl, errs.Wrap("", ErrShort, ": SPS of "+strconv.Itoa(len(sps))+" bytes ends in its profile_tier_level")
	}
	copy(ptl[:], rbsp[1:])
	return ptl, nil
}

// CodecString returns the RFC 6381 codec string of a stream whose sample
// entry is entry ("hvc1" or "hev1") and whose general profile_tier_level is
// ptl (ISO/IEC 14496-15 Annex E.3), e.g. "hvc1.1.6.L93.90": profile space
// (A, B, C or nothing) and profile_idc; the compatibility flags in reverse
// bit order, in hex; L or H for the tier and level_idc; the constraint
// bytes in hex, each after a period, trailing zero bytes left out.
func CodecString(entry string, ptl [PTLSize]byte) string {
	var b strings.Builder
	b.WriteString(entry)
	b.WriteByte('.')
	if space := ptl[0] >> 6; space > 0 {
		b.WriteByte('A' + space - 1)
	}
	b.WriteString(strconv.Itoa(int(ptl[0] & 0x1f)))
	b.WriteByte('.')
	b.WriteString(strings.ToUpper(strconv.FormatUint(uint64(bits.Reverse32(binary.BigEndian.Uint32(ptl[1:5]))), 16)))
	b.WriteByte('.')
	if ptl[0]&0x20 != 0 {
		b.WriteByte('H')
	} else {
		b.WriteByte('L')
	}
	b.WriteString(strconv.Itoa(int(ptl[11])))
	cons := ptl[5:11]
	last := -1
	for i, c := range cons {
		if c != 0 {
			last = i
		}
	}
	for _, c := range cons[:last+1] {
		b.WriteString("." + strings.ToUpper(hex.EncodeToString([]byte{c})))
	}
	return b.String()
}
