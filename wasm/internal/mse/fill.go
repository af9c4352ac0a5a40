package mse

import (
	"encoding/binary"
	"errors"

	"github.com/banyan-live/banyan/internal/errs"
)

// Filling a video hole (docs/long-gop.md, option 4). After a lost chunk the
// chunks up to the next keyframe cannot be decoded: their video references
// the lost frames. Dropping them whole loses their audio too, since the
// chunks are muxed, and a SourceBuffer's buffered ranges are the
// intersection of its tracks, so audio alone would not carry playback
// across the video hole. FillVideo keeps such a chunk's audio and replaces
// its video with one sample that decodes on its own: the keyframe that
// opened the GOP, re-timed to cover the chunk. The picture holds that
// frame; the sound plays on; buffered has no hole.

// ErrFragment: a media fragment FillVideo cannot read or rewrite.
var ErrFragment = errors.New("mse: media fragment")

func fragErr(detail string) error { return errs.Wrap("", ErrFragment, ": "+detail) }

// tfhd and trun flags (ISO/IEC 14496-12 8.8.7, 8.8.8).
const (
	tfhdBaseDataOffset  = 0x000001
	tfhdDefaultBaseMoof = 0x020000

	trunDataOffset       = 0x000001
	trunFirstSampleFlags = 0x000004
	trunDuration         = 0x000100
	trunSize             = 0x000200
	trunFlags            = 0x000400
	trunCTO              = 0x000800
	sampleNonSync        = 0x010000
)

// traf is what FillVideo needs of one track fragment. The code is kept
// small on purpose: every byte here is downloaded by every viewer.
type traf struct {
	raw  []byte // the whole traf box
	tfhd []byte // the whole tfhd box
	id   uint32
	base uint64 // tfdt
	// offAt is where the trun's data offset sits in raw; data is the
	// samples' bytes.
	offAt int
	data  []byte
	// Decode duration of all samples, the earliest presentation time
	// relative to base, and the first sample's size and explicit flags.
	dur       uint64
	minPTS    int64
	first     uint32
	flags     uint32
	haveFlags bool
}

// parseFragment reads the trafs of a moof+mdat fragment as Banyan's
// packager writes it: each traf with a tfhd whose data is relative to the
// moof (default-base-is-moof), a tfdt and one trun with a data offset.
func parseFragment(b []byte) ([]traf, error) {
	budget := maxBoxes
	top, err := boxes(b, &budget)
	if err != nil || len(top) == 0 || top[0].typ != "moof" || int(u32(b, 0)) != 8+len(top[0].body) {
		return nil, fragErr("not a moof")
	}
	kids, err := boxes(top[0].body, &budget)
	if err != nil {
		return nil, fragErr("bad moof")
	}
	var out []traf
	at := 8 // offsets below assume 8-byte box headers, as written
	for _, k := range kids {
		size := 8 + len(k.body)
		if int(u32(b, at)) != size {
			return nil, fragErr("large box in the moof")
		}
		if k.typ == "traf" {
			t := traf{raw: b[at : at+size]}
			if err := t.parse(b, &budget); err != nil {
				return nil, err
			}
			out = append(out, t)
		}
		at += size
	}
	if len(out) == 0 {
		return nil, fragErr("no traf")
	}
	return out, nil
}

func u32(b []byte, at int) uint32 { return binary.BigEndian.Uint32(b[at:]) }

// parse reads t.raw, a traf of frag (whose first byte is the moof's).
func (t *traf) parse(frag []byte, budget *int) error {
	bs, err := boxes(t.raw[8:], budget)
	if err != nil {
		return fragErr("bad traf")
	}
	pos := 8
	var defDur, defSize uint32
	var trun []byte
	trunAt := 0
	have := 0
	for _, x := range bs {
		b := x.body
		if int(u32(t.raw, pos)) != 8+len(b) {
			return fragErr("large box in a traf")
		}
		switch {
		case x.typ == "tfhd" && len(b) >= 8:
			fl := u32(b, 0) & 0xffffff
			if fl&tfhdBaseDataOffset != 0 || fl&tfhdDefaultBaseMoof == 0 {
				return fragErr("tfhd data not relative to the moof")
			}
			t.id, t.tfhd = u32(b, 4), t.raw[pos:pos+8+len(b)]
			i := 8
			if fl&0x2 != 0 {
				i += 4
			}
			if fl&0x8 != 0 && len(b) >= i+4 {
				defDur = u32(b, i)
				i += 4
			}
			if fl&0x10 != 0 && len(b) >= i+4 {
				defSize = u32(b, i)
			}
			have |= 1
		case x.typ == "tfdt" && len(b) >= 12 && b[0] == 1:
			t.base = binary.BigEndian.Uint64(b[4:])
			have |= 2
		case x.typ == "tfdt" && len(b) >= 8 && b[0] == 0:
			t.base = uint64(u32(b, 4))
			have |= 2
		case x.typ == "trun" && len(b) >= 12 && have&4 == 0:
			trun, trunAt = b, pos+8
			have |= 4
		}
		pos += 8 + len(x.body)
	}
	if have != 7 {
		return fragErr("traf without tfhd, tfdt or trun")
	}
	fl := u32(trun, 0) & 0xffffff
	if fl&trunDataOffset == 0 {
		return fragErr("trun without a data offset")
	}
	n := int(u32(trun, 4))
	t.offAt = trunAt + 8
	off := int64(int32(u32(trun, 8)))
	i := 12
	if fl&trunFirstSampleFlags != 0 && len(trun) >= 16 {
		t.flags, t.haveFlags = u32(trun, 12), true
		i = 16
	}
	stride := 0
	for f := uint32(trunDuration); f <= trunCTO; f <<= 1 {
		if fl&f != 0 {
			stride += 4
		}
	}
	if n < 0 || stride > 0 && n > (len(trun)-i)/stride || stride == 0 && n > 1<<16 {
		return fragErr("trun does not fit")
	}
	total := int64(0)
	for s := range n {
		dur, size, cto := defDur, defSize, int64(0)
		if fl&trunDuration != 0 {
			dur = u32(trun, i)
			i += 4
		}
		if fl&trunSize != 0 {
			size = u32(trun, i)
			i += 4
		}
		if fl&trunFlags != 0 {
			if s == 0 {
				t.flags, t.haveFlags = u32(trun, i), true
			}
			i += 4
		}
		if fl&trunCTO != 0 {
			cto = int64(int32(u32(trun, i)))
			if trun[0] == 0 {
				cto = int64(u32(trun, i))
			}
			i += 4
		}
		if pts := int64(t.dur) + cto; s == 0 || pts < t.minPTS {
			t.minPTS = pts
		}
		if s == 0 {
			t.first = size
		}
		t.dur += uint64(dur)
		total += int64(size)
	}
	if off < 0 || off+total > int64(len(frag)) {
		return fragErr("sample data outside the fragment")
	}
	t.data = frag[off : off+total]
	return nil
}

// FillVideo returns the dependent chunk dep with its video track (videoID)
// replaced by one sample: the first sample of key's video track, which
// must be a sync sample, decoded at dep's video decode time for as long
// as dep's video, and presented from where dep's video is. dep's other
// tracks are kept byte for byte.
func FillVideo(dep, key []byte, videoID uint32) ([]byte, error) {
	dt, err := parseFragment(dep)
	if err != nil {
		return nil, err
	}
	kt, err := parseFragment(key)
	if err != nil {
		return nil, err
	}
	var kv *traf
	for i := range kt {
		if kt[i].id == videoID {
			kv = &kt[i]
		}
	}
	if kv == nil || len(kv.data) == 0 || kv.haveFlags && kv.flags&sampleNonSync != 0 {
		return nil, fragErr("keyframe chunk does not start with a sync video sample")
	}
	if kv.first == 0 || int(kv.first) > len(kv.data) {
		return nil, fragErr("bad keyframe sample")
	}
	// moof, mfhd, then the trafs; the data offsets are patched once the
	// moof's size is known.
	out := append(make([]byte, 0, 256+len(dep)+int(kv.first)), 0, 0, 0, 0, 'm', 'o', 'o', 'f',
		0, 0, 0, 16, 'm', 'f', 'h', 'd', 0, 0, 0, 0, 0, 0, 0, 0)
	var offs [8]int // where each traf's data offset goes
	var data [8][]byte
	found := false
	if len(dt) > len(offs) {
		return nil, fragErr("too many tracks")
	}
	for i, t := range dt {
		if t.id != videoID {
			offs[i] = len(out) + t.offAt
			out = append(out, t.raw...)
			data[i] = t.data
			continue
		}
		if t.dur > 0xffffffff || t.minPTS < -1<<31 || t.minPTS > 1<<31-1 {
			return nil, fragErr("dependent video out of range")
		}
		found = true
		fl := uint32(trunDataOffset | trunDuration | trunSize | trunCTO)
		size := 32
		if kv.haveFlags {
			fl |= trunFlags
			size += 4
		}
		start := len(out)
		out = append(out, 0, 0, 0, 0, 't', 'r', 'a', 'f')
		out = append(out, kv.tfhd...)
		out = append(out, 0, 0, 0, 20, 't', 'f', 'd', 't', 1, 0, 0, 0)
		out = binary.BigEndian.AppendUint64(out, t.base)
		out = binary.BigEndian.AppendUint32(out, uint32(size))
		out = append(out, 't', 'r', 'u', 'n')
		out = binary.BigEndian.AppendUint32(out, 1<<24|fl)
		out = binary.BigEndian.AppendUint32(out, 1)
		offs[i] = len(out)
		out = binary.BigEndian.AppendUint32(out, 0)
		out = binary.BigEndian.AppendUint32(out, uint32(t.dur))
		out = binary.BigEndian.AppendUint32(out, kv.first)
		if kv.haveFlags {
			out = binary.BigEndian.AppendUint32(out, kv.flags)
		}
		out = binary.BigEndian.AppendUint32(out, uint32(int32(t.minPTS)))
		binary.BigEndian.PutUint32(out[start:], uint32(len(out)-start))
		data[i] = kv.data[:kv.first]
	}
	if !found {
		return nil, fragErr("dependent chunk without the video track")
	}
	binary.BigEndian.PutUint32(out, uint32(len(out)))
	pos := len(out) + 8
	total := 0
	for i := range dt {
		binary.BigEndian.PutUint32(out[offs[i]:], uint32(pos))
		pos += len(data[i])
		total += len(data[i])
	}
	out = binary.BigEndian.AppendUint32(out, uint32(8+total))
	out = append(out, 'm', 'd', 'a', 't')
	for i := range dt {
		out = append(out, data[i]...)
	}
	return out, nil
}
