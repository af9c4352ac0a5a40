package cmaf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
)

// A stream's epochs each start their own timeline (a reconnect restarts
// the broadcaster's timestamps at 0). Players that stitch epochs by their
// playlist position cope, but some (GStreamer's hlsdemux, WebKitGTK's own
// HLS player) stop at a timeline that goes back, even behind an
// EXT-X-DISCONTINUITY. Timescales and ShiftDecodeTimes let an LL-HLS
// origin carry every epoch on one continuous timeline instead, without
// touching the chunks the mesh carries.

// Timescales returns the timescale of each track of an init segment, by
// track ID.
func Timescales(init []byte) (map[uint32]uint32, error) {
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(init)); err != nil {
		return nil, fmt.Errorf("cmaf: init segment: %w", err)
	}
	out := make(map[uint32]uint32, len(in.Tracks))
	for _, t := range in.Tracks {
		if t.TimeScale == 0 {
			return nil, fmt.Errorf("cmaf: init segment: track %d has timescale 0", t.ID)
		}
		out[uint32(t.ID)] = t.TimeScale
	}
	return out, nil
}

// ShiftDecodeTimes returns a copy of frag (one or more moof+mdat) with the
// decode time of every track fragment (tfdt) moved by d, in each track's
// timescale (rounded to the nearest tick). frag itself is not changed; d of
// 0 returns it as it is. A track missing from scales, a time that would
// leave the tfdt's range, or a malformed box is an error.
func ShiftDecodeTimes(frag []byte, scales map[uint32]uint32, d time.Duration) ([]byte, error) {
	if d == 0 {
		return frag, nil
	}
	out := bytes.Clone(frag)
	err := eachBox(out, func(typ string, moof []byte) error {
		if typ != "moof" {
			return nil
		}
		return eachBox(moof, func(typ string, traf []byte) error {
			if typ != "traf" {
				return nil
			}
			return shiftTraf(traf, scales, d)
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// shiftTraf moves the tfdt of one traf's children (tfhd comes first, as
// ISO/IEC 14496-12 requires).
func shiftTraf(children []byte, scales map[uint32]uint32, d time.Duration) error {
	track, seen := uint32(0), false
	return eachBox(children, func(typ string, box []byte) error {
		switch typ {
		case "tfhd":
			if len(box) < 8 {
				return errors.New("cmaf: short tfhd")
			}
			track, seen = binary.BigEndian.Uint32(box[4:8]), true
		case "tfdt":
			if !seen {
				return errors.New("cmaf: tfdt before tfhd")
			}
			ts, ok := scales[track]
			if !ok {
				return fmt.Errorf("cmaf: no timescale for track %d", track)
			}
			ticks := ticksOf(d, ts)
			if len(box) < 8 {
				return errors.New("cmaf: short tfdt")
			}
			switch box[0] {
			case 1:
				if len(box) < 12 {
					return errors.New("cmaf: short tfdt")
				}
				t, ok := addTicks(binary.BigEndian.Uint64(box[4:12]), ticks, 1<<63-1)
				if !ok {
					return fmt.Errorf("cmaf: track %d: decode time out of range after a shift of %v", track, d)
				}
				binary.BigEndian.PutUint64(box[4:12], t)
			case 0:
				t, ok := addTicks(uint64(binary.BigEndian.Uint32(box[4:8])), ticks, 1<<32-1)
				if !ok {
					return fmt.Errorf("cmaf: track %d: decode time out of range after a shift of %v (32-bit tfdt)", track, d)
				}
				binary.BigEndian.PutUint32(box[4:8], uint32(t))
			default:
				return fmt.Errorf("cmaf: tfdt version %d", box[0])
			}
		}
		return nil
	})
}

// ticksOf is d in ticks of timescale ts, rounded to the nearest.
func ticksOf(d time.Duration, ts uint32) int64 {
	n := int64(d) * int64(ts)
	if n/int64(ts) != int64(d) { // beyond int64: precision does not matter here
		return int64(d.Seconds() * float64(ts))
	}
	if n < 0 {
		return -((-n + int64(time.Second)/2) / int64(time.Second))
	}
	return (n + int64(time.Second)/2) / int64(time.Second)
}

// addTicks is t+delta if it stays within [0, max].
func addTicks(t uint64, delta int64, max uint64) (uint64, bool) {
	if delta < 0 {
		if uint64(-delta) > t {
			return 0, false
		}
		return t - uint64(-delta), true
	}
	if t > max || uint64(delta) > max-t {
		return 0, false
	}
	return t + uint64(delta), true
}

// eachBox calls fn with the type and the payload (the bytes after the
// header, which fn may change in place) of each box in b, in order.
func eachBox(b []byte, fn func(typ string, box []byte) error) error {
	for len(b) > 0 {
		if len(b) < 8 {
			return errors.New("cmaf: truncated box header")
		}
		size, hdr := uint64(binary.BigEndian.Uint32(b[:4])), uint64(8)
		switch size {
		case 0:
			size = uint64(len(b))
		case 1:
			if len(b) < 16 {
				return errors.New("cmaf: truncated box header")
			}
			size, hdr = binary.BigEndian.Uint64(b[8:16]), 16
		}
		if size < hdr || size > uint64(len(b)) {
			return fmt.Errorf("cmaf: box %q of size %d in %d bytes", b[4:8], size, len(b))
		}
		if err := fn(string(b[4:8]), b[hdr:size]); err != nil {
			return err
		}
		b = b[size:]
	}
	return nil
}
