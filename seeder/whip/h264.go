package whip

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// Bounds on what a publisher can make the depacketiser hold. They match
// the packager's (media/cmaf) so that a frame that passes here is never
// refused there for its size.
const (
	maxNALUSize     = 4 << 20
	maxFrameSize    = h264.MaxAccessUnitSize
	maxFrameNALUs   = h264.MaxNALUsPerAccessUnit
	maxParamSetSize = 4096
	maxPictureSide  = 16384
)

// NAL unit types (ITU-T H.264 table 7-1) and RTP payload structures
// (RFC 6184).
const (
	naluNonIDR   = 1
	naluPartA    = 2
	naluPartC    = 4
	naluIDR      = 5
	naluSEI      = 6
	naluSPS      = 7
	naluPPS      = 8
	naluSTAPA    = 24
	naluFUA      = 28
	naluTypeMask = 0x1f
)

var (
	errEmptyPayload = errors.New("empty payload")
	errForbiddenBit = errors.New("forbidden_zero_bit set")
	errFUNoStart    = errors.New("FU-A fragment without a start")
	errFUType       = errors.New("FU-A fragment of a different NAL type")
	errFUTooBig     = errors.New("fragmented NAL unit too large")
	errUnsupported  = errors.New("unsupported RTP payload structure (only single NAL, STAP-A and FU-A)")
)

// depacketizer turns H.264 RTP payloads (RFC 6184, packetization modes 0
// and 1) into NAL units. The parsing is pion's codecs.H264Packet; the
// guard around it keeps what pion does not check: a fragment run must
// start with a start bit and keep its type, and it is bounded, so a
// hostile stream can neither grow memory nor splice fragments of
// different units.
type depacketizer struct {
	pkt     codecs.H264Packet
	inFU    bool
	fuType  byte
	fuBytes int
}

func newDepacketizer() *depacketizer {
	return &depacketizer{pkt: codecs.H264Packet{IsAVC: true}}
}

// reset forgets a fragment in progress (after a loss).
func (d *depacketizer) reset() {
	d.pkt = codecs.H264Packet{IsAVC: true}
	d.inFU, d.fuType, d.fuBytes = false, 0, 0
}

func (d *depacketizer) pending() bool {
	if !d.inFU {
		return false
	}
	d.reset()
	return true
}

// push returns the NAL units that payload completes (none while a
// fragment run continues). The returned slices are fresh.
func (d *depacketizer) push(payload []byte) ([][]byte, error) {
	if len(payload) == 0 {
		return nil, errEmptyPayload
	}
	if payload[0]&0x80 != 0 {
		return nil, errForbiddenBit
	}
	typ := payload[0] & naluTypeMask
	switch {
	case typ >= 1 && typ <= 23, typ == naluSTAPA:
		if d.inFU {
			d.reset() // the run's end was lost
		}
	case typ == naluFUA:
		if len(payload) < 3 {
			return nil, fmt.Errorf("FU-A of %d bytes", len(payload))
		}
		start, end := payload[1]&0x80 != 0, payload[1]&0x40 != 0
		ftype := payload[1] & naluTypeMask
		switch {
		case start && end, ftype == 0 || ftype >= 24:
			d.reset()
			return nil, fmt.Errorf("malformed FU-A header %#02x", payload[1])
		case start:
			if d.inFU {
				d.reset()
			}
			d.inFU, d.fuType, d.fuBytes = true, ftype, 0
		case !d.inFU:
			return nil, errFUNoStart
		case ftype != d.fuType:
			d.reset()
			return nil, errFUType
		}
		d.fuBytes += len(payload) - 2
		if d.fuBytes > maxNALUSize {
			d.reset()
			return nil, errFUTooBig
		}
		if end {
			d.inFU = false
		}
	default:
		d.reset()
		return nil, fmt.Errorf("NAL type %d: %w", typ, errUnsupported)
	}
	avc, err := d.pkt.Unmarshal(payload)
	if err != nil {
		d.reset()
		return nil, err
	}
	return splitAVC(avc)
}

// splitAVC cuts 4-byte length-prefixed NAL units (what pion emits with
// IsAVC) into units, dropping empty ones.
func splitAVC(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, errors.New("truncated NAL length")
		}
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		if uint64(n) > uint64(len(b)) {
			return nil, errors.New("NAL length past the payload")
		}
		if n > 0 {
			out = append(out, b[:n:n])
		}
		b = b[n:]
	}
	return out, nil
}

// frame is one depacketised access unit: the NAL units (AV1: OBUs) that
// share an RTP timestamp.
type frame struct {
	ts    uint32
	nalus [][]byte
}

// unitDepacketizer is a codec's RTP payload format as the assembler uses
// it: payloads in order in, whole units (H.264 NAL units, AV1 OBUs) out,
// each a fresh slice; reset forgets a unit in progress after a loss.
type unitDepacketizer interface {
	push(payload []byte) ([][]byte, error)
	reset()
	// pending reports a unit left unfinished at a frame's end (a
	// fragment run whose end never came: the frame is incomplete) and
	// forgets it.
	pending() bool
}

// assembler groups in-order packets into frames (H.264 access units, AV1
// temporal units): a frame ends at the marker bit, or when the timestamp
// changes (a lost marker). A frame that lost a packet, or held a
// malformed one, is dropped whole.
type assembler struct {
	dep      unitDepacketizer
	maxUnits int // units in one frame
	maxSize  int // bytes of units in one frame
	have     bool
	ts       uint32
	nalus    [][]byte
	size     int
	broken   bool

	malformed uint64 // payloads refused
}

// newAssembler assembles H.264 access units.
func newAssembler() *assembler {
	return &assembler{dep: newDepacketizer(), maxUnits: maxFrameNALUs, maxSize: maxFrameSize}
}

// lost marks the frame in progress as incomplete.
func (a *assembler) lost() {
	a.dep.reset()
	if a.have {
		a.broken = true
	}
}

// push adds the next packet in sequence order and returns the frames it
// completes (at most two: the one a lost marker left open, and this one).
// Packets without payload (padding, bandwidth probes) are skipped.
func (a *assembler) push(p *rtp.Packet) []frame {
	if len(p.Payload) == 0 {
		return nil
	}
	var out []frame
	if a.have && p.Timestamp != a.ts {
		if f, ok := a.finish(); ok {
			out = append(out, f)
		}
	}
	if !a.have {
		a.have, a.ts = true, p.Timestamp
	}
	nalus, err := a.dep.push(p.Payload)
	if err != nil {
		a.malformed++
		a.broken = true
	}
	for _, n := range nalus {
		// Both codecs' unit headers start with a forbidden zero bit.
		if n[0]&0x80 != 0 || len(a.nalus) >= a.maxUnits || a.size+len(n) > a.maxSize {
			a.broken = true
			break
		}
		a.nalus = append(a.nalus, n)
		a.size += len(n)
	}
	if p.Marker {
		if f, ok := a.finish(); ok {
			out = append(out, f)
		}
	}
	return out
}

func (a *assembler) finish() (frame, bool) {
	if a.dep.pending() {
		a.malformed++
		a.broken = true
	}
	f := frame{ts: a.ts, nalus: a.nalus}
	ok := !a.broken && len(a.nalus) > 0
	a.have, a.nalus, a.size, a.broken = false, nil, 0, false
	return f, ok
}

// frameInfo is what a frame's NAL units say about it.
type frameInfo struct {
	key      bool   // holds an IDR slice
	idr      []byte // the first IDR slice
	vcl      bool   // holds a coded slice
	sps, pps []byte // in-band parameter sets, if any
	nalus    [][]byte
}

// classify sorts a frame's NAL units: parameter sets are taken out (they
// go to the sink as VideoConfig), delimiters, filler, end-of-sequence and
// extension units (SVC, MVC) are dropped, slices and SEI are kept.
func classify(nalus [][]byte) frameInfo {
	var fi frameInfo
	for _, n := range nalus {
		switch t := n[0] & naluTypeMask; {
		case t == naluSPS:
			fi.sps = n
		case t == naluPPS:
			fi.pps = n
		case t == naluIDR:
			if !fi.key {
				fi.idr = n
			}
			fi.key, fi.vcl = true, true
			fi.nalus = append(fi.nalus, n)
		case t == naluNonIDR, t >= naluPartA && t <= naluPartC:
			fi.vcl = true
			fi.nalus = append(fi.nalus, n)
		case t == naluSEI:
			fi.nalus = append(fi.nalus, n)
		}
	}
	return fi
}
