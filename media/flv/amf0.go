package flv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// MaxAMF0Depth bounds object/array nesting. Real RTMP commands and
// metadata nest two levels deep at most; the bound keeps a hostile message
// from driving a recursive decoder (ours, or go-amf0 behind us) into a
// stack overflow, which Go cannot recover from.
const MaxAMF0Depth = 16

// AMF0 markers.
const (
	amfNumber      = 0x00
	amfBoolean     = 0x01
	amfString      = 0x02
	amfObject      = 0x03
	amfMovieClip   = 0x04
	amfNull        = 0x05
	amfUndefined   = 0x06
	amfReference   = 0x07
	amfECMAArray   = 0x08
	amfObjectEnd   = 0x09
	amfStrictArray = 0x0a
	amfDate        = 0x0b
	amfLongString  = 0x0c
	amfUnsupported = 0x0d
	amfRecordSet   = 0x0e
	amfXMLDocument = 0x0f
	amfTypedObject = 0x10
	amfAVMPlus     = 0x11
)

var errAMFShort = errors.New("flv: amf0: truncated")

// DecodeAMF0 decodes every AMF0 value in b. Numbers and dates become
// float64, booleans bool, strings string, objects and ECMA arrays
// map[string]any, strict arrays []any, null and undefined nil. References,
// AVM+ (AMF3) values and reserved markers are errors. Every length is
// checked against the input, so the work and memory are bounded by len(b).
// On error the values decoded so far are returned.
func DecodeAMF0(b []byte) ([]any, error) {
	d := amfDecoder{b: b}
	var out []any
	for d.pos < len(b) {
		v, err := d.value(0)
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, nil
}

type amfDecoder struct {
	b   []byte
	pos int
}

func (d *amfDecoder) need(n int) error {
	if n < 0 || len(d.b)-d.pos < n {
		return fmt.Errorf("%w: need %d bytes at offset %d, have %d", errAMFShort, n, d.pos, len(d.b)-d.pos)
	}
	return nil
}

func (d *amfDecoder) u16() (int, error) {
	if err := d.need(2); err != nil {
		return 0, err
	}
	v := binary.BigEndian.Uint16(d.b[d.pos:])
	d.pos += 2
	return int(v), nil
}

func (d *amfDecoder) u32() (uint32, error) {
	if err := d.need(4); err != nil {
		return 0, err
	}
	v := binary.BigEndian.Uint32(d.b[d.pos:])
	d.pos += 4
	return v, nil
}

func (d *amfDecoder) str(n uint32) (string, error) {
	if uint64(n) > uint64(len(d.b)-d.pos) {
		return "", fmt.Errorf("%w: string of %d bytes at offset %d, have %d", errAMFShort, n, d.pos, len(d.b)-d.pos)
	}
	s := string(d.b[d.pos : d.pos+int(n)])
	d.pos += int(n)
	return s, nil
}

func (d *amfDecoder) value(depth int) (any, error) {
	if depth > MaxAMF0Depth {
		return nil, fmt.Errorf("flv: amf0: nesting deeper than %d", MaxAMF0Depth)
	}
	if err := d.need(1); err != nil {
		return nil, err
	}
	m := d.b[d.pos]
	d.pos++
	switch m {
	case amfNumber:
		if err := d.need(8); err != nil {
			return nil, err
		}
		v := math.Float64frombits(binary.BigEndian.Uint64(d.b[d.pos:]))
		d.pos += 8
		return v, nil
	case amfBoolean:
		if err := d.need(1); err != nil {
			return nil, err
		}
		v := d.b[d.pos] != 0
		d.pos++
		return v, nil
	case amfString:
		n, err := d.u16()
		if err != nil {
			return nil, err
		}
		return d.str(uint32(n))
	case amfLongString, amfXMLDocument:
		n, err := d.u32()
		if err != nil {
			return nil, err
		}
		return d.str(n)
	case amfObject:
		return d.properties(depth, false)
	case amfTypedObject:
		n, err := d.u16()
		if err != nil {
			return nil, err
		}
		if _, err := d.str(uint32(n)); err != nil {
			return nil, err
		}
		return d.properties(depth, false)
	case amfECMAArray:
		// The count is advisory (encoders get it wrong); the end marker
		// terminates the array.
		if _, err := d.u32(); err != nil {
			return nil, err
		}
		return d.properties(depth, true)
	case amfStrictArray:
		n, err := d.u32()
		if err != nil {
			return nil, err
		}
		// Every element takes at least one byte: a count beyond the
		// remaining input is a lie, refused before allocating for it.
		if uint64(n) > uint64(len(d.b)-d.pos) {
			return nil, fmt.Errorf("flv: amf0: strict array of %d elements with %d bytes left", n, len(d.b)-d.pos)
		}
		arr := make([]any, 0, n)
		for i := uint32(0); i < n; i++ {
			v, err := d.value(depth + 1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		return arr, nil
	case amfDate:
		if err := d.need(10); err != nil {
			return nil, err
		}
		v := math.Float64frombits(binary.BigEndian.Uint64(d.b[d.pos:]))
		d.pos += 10 // time zone (2 bytes) is reserved and ignored
		return v, nil
	case amfNull, amfUndefined, amfUnsupported:
		return nil, nil
	case amfObjectEnd:
		return nil, fmt.Errorf("flv: amf0: object end marker outside an object at offset %d", d.pos-1)
	case amfReference, amfMovieClip, amfRecordSet:
		return nil, fmt.Errorf("flv: amf0: unsupported marker 0x%02x", m)
	case amfAVMPlus:
		return nil, errors.New("flv: amf0: AMF3 values are not supported")
	}
	return nil, fmt.Errorf("flv: amf0: unknown marker 0x%02x at offset %d", m, d.pos-1)
}

// properties reads key/value pairs up to the empty key and object end
// marker. lenient accepts an ECMA array cut off at the end of the input,
// which some encoders write.
func (d *amfDecoder) properties(depth int, lenient bool) (map[string]any, error) {
	obj := make(map[string]any)
	for {
		if lenient && d.pos == len(d.b) {
			return obj, nil
		}
		n, err := d.u16()
		if err != nil {
			return nil, err
		}
		if n == 0 {
			if err := d.need(1); err != nil {
				return nil, err
			}
			if d.b[d.pos] != amfObjectEnd {
				return nil, fmt.Errorf("flv: amf0: empty key not followed by object end at offset %d", d.pos)
			}
			d.pos++
			return obj, nil
		}
		k, err := d.str(uint32(n))
		if err != nil {
			return nil, err
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		obj[k] = v
	}
}
