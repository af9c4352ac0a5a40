// Package mse holds the decisions behind Banyan's browser player, free of
// syscall/js so they build and test natively: the codec string of an init
// segment, the order in which init segments and chunks go into a
// SourceBuffer (Planner), live-edge control (Edge), stall accounting
// (StallMeter) and eviction of old buffered media (Evict). The wasm main
// executes what these decide against Media Source Extensions.
package mse

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/banyan-live/banyan/internal/errs"
	"github.com/banyan-live/banyan/media/av1"
	"github.com/banyan-live/banyan/media/hevc"
)

// MaxInitSize bounds the init segment ParseInit reads. A real one (ftyp,
// moov with two tracks and their parameter sets) is well under 4 KiB.
const MaxInitSize = 1 << 20

// maxBoxes bounds how many boxes ParseInit visits, so a hostile init made
// of millions of empty boxes costs nothing.
const maxBoxes = 4096

// InitInfo is what a player needs to know about an init segment.
type InitInfo struct {
	// VideoCodec and AudioCodec are RFC 6381 codec strings ("avc1.64001f",
	// "mp4a.40.2", "Opus"); empty when the track is absent.
	VideoCodec string
	AudioCodec string
	// VideoTrack is the video track's ID (tkhd), 0 without video.
	VideoTrack uint32
}

// Codecs joins the present codec strings, video first, as MSE wants them.
func (i InitInfo) Codecs() string {
	var parts []string
	for _, c := range []string{i.VideoCodec, i.AudioCodec} {
		if c != "" {
			parts = append(parts, c)
		}
	}
	return strings.Join(parts, ",")
}

// MIME returns the type for MediaSource.addSourceBuffer, for example
// `video/mp4; codecs="avc1.64001f,mp4a.40.2"` (audio/mp4 without video).
// It matches media/cmaf's Init.MIME for the same stream.
func (i InitInfo) MIME() string {
	kind := "video/mp4"
	if i.VideoCodec == "" {
		kind = "audio/mp4"
	}
	return kind + `; codecs="` + i.Codecs() + `"`
}

// codecSpellings are codec names browsers disagree on, each with the
// spellings to offer, the RFC 6381 one first: Safari accepts only "Opus"
// in MP4 types, Firefox long accepted only "opus", Chromium both.
var codecSpellings = [][]string{{"Opus", "opus"}}

// SupportedMIME returns the spelling of mime that the browser supports
// (isTypeSupported: MediaSource.isTypeSupported), trying the alternative
// spellings of its codecs; ok is false when none is supported.
func SupportedMIME(mime string, isTypeSupported func(string) bool) (string, bool) {
	if isTypeSupported(mime) {
		return mime, true
	}
	kind, rest, found := strings.Cut(mime, `; codecs="`)
	codecs, tail, closed := strings.Cut(rest, `"`)
	if !found || !closed {
		return "", false
	}
	// Each codec's candidate spellings; mixed spellings are never needed
	// (one codec per track), so the candidates are tried position-wise.
	var alts [][]string
	for _, c := range strings.Split(codecs, ",") {
		opts := []string{c}
		for _, sp := range codecSpellings {
			if slices.ContainsFunc(sp, func(s string) bool { return strings.EqualFold(s, c) }) {
				opts = sp
			}
		}
		alts = append(alts, opts)
	}
	for i := range maxSpellings() {
		parts := make([]string, len(alts))
		for j, opts := range alts {
			parts[j] = opts[min(i, len(opts)-1)]
		}
		if m := kind + `; codecs="` + strings.Join(parts, ",") + `"` + tail; m != mime && isTypeSupported(m) {
			return m, true
		}
	}
	return "", false
}

// UnsupportedReason says why a browser whose MediaSource refused mime
// cannot play the stream, naming the codec where it is one that only some
// browsers decode: Chromium and Firefox on Linux decode HEVC only with a
// hardware decoder (Debian's Chromium not at all), Safari has it on every
// Apple device since 2017.
func UnsupportedReason(mime string) string {
	_, codecs, _ := strings.Cut(mime, `codecs="`)
	codecs, _, _ = strings.Cut(codecs, `"`)
	for _, c := range strings.Split(codecs, ",") {
		switch {
		case strings.HasPrefix(c, "hvc1.") || strings.HasPrefix(c, "hev1."):
			return "this browser cannot decode HEVC (H.265) video (" + c + "). Safari plays this stream, " +
				"and so do Chrome and Edge on a system with an HEVC hardware decoder; " +
				"or ask the broadcaster to stream H.264"
		case strings.HasPrefix(c, "av01."):
			return "this browser cannot decode AV1 video (" + c + "). Chrome, Edge and Firefox play this stream, " +
				"and so does Safari on a device with an AV1 hardware decoder (iPhone 15 Pro, M3 Macs and later); " +
				"or ask the broadcaster to stream H.264"
		}
	}
	return "this browser cannot play " + mime
}

func maxSpellings() int {
	n := 1
	for _, sp := range codecSpellings {
		n = max(n, len(sp))
	}
	return n
}

// ErrInit reports an init segment ParseInit cannot use.
var ErrInit = errors.New("mse: init segment")

func initErr(detail string) error {
	return errs.Wrap("", ErrInit, ": "+detail)
}

// box is one ISO BMFF box: its type and its body.
type box struct {
	typ  string
	body []byte
}

// boxes splits b into boxes. It never reads past b and refuses sizes that
// do not fit.
func boxes(b []byte, budget *int) ([]box, error) {
	var out []box
	for len(b) > 0 {
		if *budget <= 0 {
			return nil, initErr("too many boxes")
		}
		*budget--
		if len(b) < 8 {
			return nil, initErr("truncated box header")
		}
		size := uint64(binary.BigEndian.Uint32(b))
		typ := string(b[4:8])
		hdr := uint64(8)
		switch size {
		case 0: // to the end of the enclosing space
			size = uint64(len(b))
		case 1:
			if len(b) < 16 {
				return nil, initErr("truncated large box header")
			}
			size, hdr = binary.BigEndian.Uint64(b[8:]), 16
		}
		if size < hdr || size > uint64(len(b)) {
			return nil, initErr("box " + strconv.Quote(printable(typ)) + " size " + strconv.FormatUint(size, 10) + " does not fit in " + strconv.Itoa(len(b)) + " bytes")
		}
		out = append(out, box{typ: typ, body: b[hdr:size]})
		b = b[size:]
	}
	return out, nil
}

// printable keeps error messages readable for hostile box types.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

func child(bs []box, typ string) (box, bool) {
	for _, b := range bs {
		if b.typ == typ {
			return b, true
		}
	}
	return box{}, false
}

// ParseInit reads the codec strings from a CMAF init segment (ftyp+moov):
// moov/trak/mdia/minf/stbl/stsd and the first sample entry of each track.
// It understands the sample entries Banyan's packager writes (avc1/avc3 with
// avcC, hvc1/hev1 with hvcC, av01 with av1C, mp4a with esds, Opus) and refuses anything else with an error that
// names it, rather than guessing a codec string the browser would reject
// later with a less useful message.
func ParseInit(b []byte) (InitInfo, error) {
	if len(b) > MaxInitSize {
		return InitInfo{}, initErr(strconv.Itoa(len(b)) + " bytes exceeds " + strconv.Itoa(MaxInitSize))
	}
	budget := maxBoxes
	top, err := boxes(b, &budget)
	if err != nil {
		return InitInfo{}, err
	}
	moov, ok := child(top, "moov")
	if !ok {
		return InitInfo{}, initErr("no moov box")
	}
	kids, err := boxes(moov.body, &budget)
	if err != nil {
		return InitInfo{}, err
	}
	var info InitInfo
	for _, trak := range kids {
		if trak.typ != "trak" {
			continue
		}
		entry, err := sampleEntry(trak.body, &budget)
		if err != nil {
			return InitInfo{}, err
		}
		codec, video, err := codecOf(entry, &budget)
		if err != nil {
			return InitInfo{}, err
		}
		switch {
		case video && info.VideoCodec == "":
			info.VideoCodec = codec
			info.VideoTrack = trackID(trak.body, &budget)
		case !video && info.AudioCodec == "":
			info.AudioCodec = codec
		default:
			return InitInfo{}, initErr("more than one " + map[bool]string{true: "video", false: "audio"}[video] + " track")
		}
	}
	if info.VideoCodec == "" && info.AudioCodec == "" {
		return InitInfo{}, initErr("no tracks")
	}
	return info, nil
}

// trackID reads the track ID from trak's tkhd (0 when it cannot).
func trackID(trak []byte, budget *int) uint32 {
	bs, err := boxes(trak, budget)
	if err != nil {
		return 0
	}
	tk, ok := child(bs, "tkhd")
	if !ok || len(tk.body) < 4 {
		return 0
	}
	at := 12 // version 0: flags, creation and modification times (32-bit)
	if tk.body[0] == 1 {
		at = 20
	}
	if len(tk.body) < at+4 {
		return 0
	}
	return binary.BigEndian.Uint32(tk.body[at:])
}

// sampleEntry descends trak/mdia/minf/stbl/stsd to the first sample entry.
func sampleEntry(trak []byte, budget *int) (box, error) {
	cur := trak
	for _, typ := range []string{"mdia", "minf", "stbl", "stsd"} {
		bs, err := boxes(cur, budget)
		if err != nil {
			return box{}, err
		}
		b, ok := child(bs, typ)
		if !ok {
			return box{}, initErr("trak without " + typ)
		}
		cur = b.body
	}
	// stsd is a full box: version, flags, entry count, then the entries.
	if len(cur) < 8 {
		return box{}, initErr("truncated stsd")
	}
	if binary.BigEndian.Uint32(cur[4:]) == 0 {
		return box{}, initErr("stsd without entries")
	}
	entries, err := boxes(cur[8:], budget)
	if err != nil {
		return box{}, err
	}
	if len(entries) == 0 {
		return box{}, initErr("stsd without entries")
	}
	return entries[0], nil
}

// Fixed sizes of the sample entry headers before their child boxes
// (ISO/IEC 14496-12: SampleEntry 8 bytes, then Visual 70 or Audio 20).
const (
	visualEntryHeader = 8 + 70
	audioEntryHeader  = 8 + 20
)

func codecOf(e box, budget *int) (codec string, video bool, err error) {
	switch e.typ {
	case "avc1", "avc3":
		if len(e.body) < visualEntryHeader {
			return "", true, initErr("truncated " + e.typ + " entry")
		}
		kids, err := boxes(e.body[visualEntryHeader:], budget)
		if err != nil {
			return "", true, err
		}
		avcC, ok := child(kids, "avcC")
		if !ok || len(avcC.body) < 4 {
			return "", true, initErr(e.typ + " without a usable avcC")
		}
		// configurationVersion, then profile, compatibility, level: the
		// same three bytes as the SPS carries after its NAL header.
		return e.typ + "." + hex.EncodeToString(avcC.body[1:4]), true, nil
	case "hvc1", "hev1":
		if len(e.body) < visualEntryHeader {
			return "", true, initErr("truncated " + e.typ + " entry")
		}
		kids, err := boxes(e.body[visualEntryHeader:], budget)
		if err != nil {
			return "", true, err
		}
		hvcC, ok := child(kids, "hvcC")
		if !ok || len(hvcC.body) < 1+hevc.PTLSize {
			return "", true, initErr(e.typ + " without a usable hvcC")
		}
		// configurationVersion, then the general profile_tier_level.
		return hevc.CodecString(e.typ, [hevc.PTLSize]byte(hvcC.body[1:1+hevc.PTLSize])), true, nil
	case "av01":
		if len(e.body) < visualEntryHeader {
			return "", true, initErr("truncated av01 entry")
		}
		kids, err := boxes(e.body[visualEntryHeader:], budget)
		if err != nil {
			return "", true, err
		}
		av1C, ok := child(kids, "av1C")
		if !ok || len(av1C.body) < 4 || av1C.body[0] != 0x81 {
			return "", true, initErr("av01 without a usable av1C")
		}
		// marker and version, then profile, level, tier and bit depth.
		return av1.CodecString([2]byte(av1C.body[1:3])), true, nil
	case "mp4a":
		if len(e.body) < audioEntryHeader {
			return "", false, initErr("truncated mp4a entry")
		}
		kids, err := boxes(e.body[audioEntryHeader:], budget)
		if err != nil {
			return "", false, err
		}
		esds, ok := child(kids, "esds")
		if !ok || len(esds.body) < 4 {
			return "", false, initErr("mp4a without esds")
		}
		c, err := esdsCodec(esds.body[4:]) // skip version and flags
		return c, false, err
	case "Opus":
		return "Opus", false, nil
	}
	return "", false, initErr("unsupported sample entry " + strconv.Quote(printable(e.typ)))
}

// descriptor reads one MPEG-4 descriptor (ISO/IEC 14496-1 8.3.3): a tag
// and a length of up to four 7-bit groups.
func descriptor(b []byte) (tag byte, body, rest []byte, err error) {
	if len(b) < 2 {
		return 0, nil, nil, initErr("truncated descriptor")
	}
	tag = b[0]
	n, i := 0, 1
	for ; i < 5; i++ {
		if i >= len(b) {
			return 0, nil, nil, initErr("truncated descriptor length")
		}
		n = n<<7 | int(b[i]&0x7f)
		if b[i]&0x80 == 0 {
			break
		}
	}
	if i == 5 {
		return 0, nil, nil, initErr("descriptor length too long")
	}
	i++
	if n > len(b)-i {
		return 0, nil, nil, initErr("descriptor 0x" + hex.EncodeToString([]byte{tag}) + " of " + strconv.Itoa(n) + " bytes does not fit")
	}
	return tag, b[i : i+n], b[i+n:], nil
}

// Descriptor tags used in esds.
const (
	tagES        = 0x03
	tagDecConfig = 0x04
	tagDecSpec   = 0x05
	otiMPEG4Aud  = 0x40
)

// esdsCodec builds mp4a.OO[.A] from an ES_Descriptor: the object type
// indication in hex and, for MPEG-4 audio, the audio object type of the
// AudioSpecificConfig in decimal.
func esdsCodec(b []byte) (string, error) {
	tag, es, _, err := descriptor(b)
	if err != nil {
		return "", err
	}
	if tag != tagES || len(es) < 3 {
		return "", initErr("esds without ES_Descriptor")
	}
	flags := es[2]
	es = es[3:] // ES_ID, flags
	if flags&0x80 != 0 {
		es = skip(es, 2) // dependsOn_ES_ID
	}
	if flags&0x40 != 0 { // URL
		if len(es) < 1 {
			return "", initErr("truncated ES_Descriptor URL")
		}
		es = skip(es, 1+int(es[0]))
	}
	if flags&0x20 != 0 {
		es = skip(es, 2) // OCR_ES_Id
	}
	for len(es) > 0 {
		tag, dc, rest, err := descriptor(es)
		if err != nil {
			return "", err
		}
		es = rest
		if tag != tagDecConfig {
			continue
		}
		if len(dc) < 13 {
			return "", initErr("truncated DecoderConfigDescriptor")
		}
		oti := dc[0]
		codec := "mp4a." + strings.ToUpper(hex.EncodeToString([]byte{oti}))
		if oti != otiMPEG4Aud {
			return codec, nil
		}
		for spec := dc[13:]; len(spec) > 0; {
			tag, asc, rest, err := descriptor(spec)
			if err != nil {
				return "", err
			}
			spec = rest
			if tag == tagDecSpec {
				aot, err := audioObjectType(asc)
				if err != nil {
					return "", err
				}
				return codec + "." + strconv.Itoa(aot), nil
			}
		}
		return "", initErr("MPEG-4 audio without an AudioSpecificConfig")
	}
	return "", initErr("esds without DecoderConfigDescriptor")
}

func skip(b []byte, n int) []byte {
	if n > len(b) {
		return nil
	}
	return b[n:]
}

// audioObjectType reads the first field of an AudioSpecificConfig: five
// bits, or 32 plus six more when the five are 31 (the escape).
func audioObjectType(asc []byte) (int, error) {
	if len(asc) < 1 {
		return 0, initErr("empty AudioSpecificConfig")
	}
	aot := int(asc[0] >> 3)
	if aot == 31 {
		if len(asc) < 2 {
			return 0, initErr("truncated AudioSpecificConfig")
		}
		aot = 32 + (int(asc[0]&0x07)<<3 | int(asc[1]>>5))
	}
	if aot == 0 {
		return 0, initErr("AudioSpecificConfig with object type 0")
	}
	return aot, nil
}
