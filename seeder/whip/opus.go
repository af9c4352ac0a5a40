package whip

import "errors"

// maxOpusPacket bounds one Opus packet: 120 ms at 510 kbit/s is under
// 8 KiB; anything bigger is not Opus.
const maxOpusPacket = 8 << 10

// Opus frame sizes in 48 kHz samples, indexed by the TOC's config field
// (RFC 6716 section 3.1).
var opusFrameSamples = [32]int{
	480, 960, 1920, 2880, 480, 960, 1920, 2880, 480, 960, 1920, 2880, // SILK
	480, 960, 480, 960, // hybrid
	120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960, // CELT
}

var errOpus = errors.New("not a well-formed Opus packet")

// checkOpus applies the packet rules of RFC 6716 section 3.4 (R1–R7): the
// framing the TOC byte announces must fit the packet exactly. It does not
// decode, so random bytes that happen to be well formed pass; it keeps out
// what a decoder would refuse.
func checkOpus(p []byte) error {
	if len(p) < 1 || len(p) > maxOpusPacket {
		return errOpus // R1
	}
	samples := opusFrameSamples[p[0]>>3]
	rest := p[1:]
	switch p[0] & 3 {
	case 0: // one frame
		if len(rest) > 1275 {
			return errOpus // R2
		}
	case 1: // two frames of equal size
		if len(rest)%2 != 0 || len(rest)/2 > 1275 {
			return errOpus // R3
		}
	case 2: // two frames, the first's size coded
		n, used, ok := opusFrameLen(rest)
		if !ok || n > len(rest)-used || len(rest)-used-n > 1275 {
			return errOpus // R4
		}
	case 3: // a signalled number of frames
		if len(rest) < 1 {
			return errOpus // R6
		}
		vbr, padded, count := rest[0]&0x80 != 0, rest[0]&0x40 != 0, int(rest[0]&0x3f)
		rest = rest[1:]
		if count == 0 || count*samples > 5760 {
			return errOpus // R5: at most 120 ms
		}
		pad := 0
		if padded {
			for {
				if len(rest) < 1 {
					return errOpus
				}
				b := int(rest[0])
				rest = rest[1:]
				if b == 255 {
					pad += 254
					continue
				}
				pad += b
				break
			}
		}
		if pad > len(rest) {
			return errOpus
		}
		rest = rest[:len(rest)-pad]
		if vbr {
			total := 0
			for i := 0; i < count-1; i++ {
				n, used, ok := opusFrameLen(rest)
				if !ok {
					return errOpus
				}
				rest = rest[used:]
				total += n
			}
			if total > len(rest) || len(rest)-total > 1275 {
				return errOpus // R7
			}
		} else if len(rest)%count != 0 || len(rest)/count > 1275 {
			return errOpus // R6
		}
	}
	return nil
}

// opusFrameLen reads a frame length coded in one or two bytes.
func opusFrameLen(b []byte) (n, used int, ok bool) {
	switch {
	case len(b) < 1:
		return 0, 0, false
	case b[0] < 252:
		return int(b[0]), 1, true
	case len(b) < 2:
		return 0, 0, false
	default:
		return int(b[1])*4 + int(b[0]), 2, true
	}
}
