package cmaf_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/cmaf"
)

// Parameter sets copied from libx264 output (ffmpeg testsrc2).
var (
	// High profile, level 3.1, 1280x720, 30 fps.
	spsHigh = mustHex("6764001facd9405005bb0110000003001000000303c0f1831960")
	ppsHigh = mustHex("68ebe3cb22c0")
	// Constrained baseline, level 3.0, 640x360.
	spsBase = mustHex("6742c01ed900a02ff970110000030001000003003c0f162e48")
	ppsBase = mustHex("68cb83cb20")

	// AAC-LC AudioSpecificConfigs.
	ascLC48 = []byte{0x11, 0x90} // 48 kHz stereo
	ascLC44 = []byte{0x12, 0x10} // 44.1 kHz stereo
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

var (
	videoHigh = media.VideoConfig{SPS: spsHigh, PPS: ppsHigh}
	videoBase = media.VideoConfig{SPS: spsBase, PPS: ppsBase}
	audioAAC  = media.AudioConfig{Codec: media.AAC, ASC: ascLC48, SampleRate: 48000, Channels: 2}
	audioAAC2 = media.AudioConfig{Codec: media.AAC, ASC: ascLC44, SampleRate: 44100, Channels: 2}
	audioOpus = media.AudioConfig{Codec: media.Opus, SampleRate: 48000, Channels: 2}
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// recorder collects the packager's output in order.
type recorder struct {
	events []any // cmaf.Init or cmaf.Chunk
}

func (r *recorder) inits() []cmaf.Init {
	var out []cmaf.Init
	for _, ev := range r.events {
		if in, ok := ev.(cmaf.Init); ok {
			out = append(out, in)
		}
	}
	return out
}

func (r *recorder) chunks() []cmaf.Chunk {
	var out []cmaf.Chunk
	for _, ev := range r.events {
		if c, ok := ev.(cmaf.Chunk); ok {
			out = append(out, c)
		}
	}
	return out
}

func newPackager(tb testing.TB, cfg cmaf.Config) (*cmaf.Packager, *recorder) {
	tb.Helper()
	r := &recorder{}
	cfg.OnInit = func(i cmaf.Init) error { r.events = append(r.events, i); return nil }
	cfg.OnChunk = func(c cmaf.Chunk) error { r.events = append(r.events, c); return nil }
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	p, err := cmaf.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return p, r
}

// --- synthetic input -------------------------------------------------------

// fed is one access unit of a synthetic stream with its exact timestamps in
// the track's timescale (the packager must reproduce them).
type fed struct {
	au           media.AccessUnit
	dtsT, ptsT   int64  // ticks of the track timescale
	wantPayload  []byte // the sample payload the packager must emit
	decodeIndex  int
	presentIndex int
}

type genOpts struct {
	dur        time.Duration
	fps        int  // video frame rate; 0 = no video
	bframes    bool // I P B B decode pattern with composition offsets
	gop        int  // frames per GOP
	audioRate  int  // AAC sample rate; 0 = no audio
	audioFrame int  // samples per audio frame (1024 AAC, 960 Opus)
	// videoStartFrames shifts video DTS by this many frames (negative: the
	// publish starts with negative DTS, as B-frame encoders do).
	videoStartFrames int
	// audioLag delivers audio this late relative to video, as loosely
	// interleaving encoders do.
	audioLag time.Duration
	// skipLeadingFrames drops the first n decode-order frames (so the
	// stream starts mid-GOP, without a keyframe).
	skipLeadingFrames int
	payloadSize       int
	dtsBase           time.Duration // added to every timestamp
}

// frameTime returns n/rate seconds as a Duration, truncated (as an ingest
// with nanosecond clocks would produce), and its exact ticks.
func frameTime(n int64, num int64, rate int64) time.Duration {
	return time.Duration(n * num * int64(time.Second) / rate)
}

// decodeOrder returns, for a GOP of n frames, the display index of each
// decode-order frame: I0 P3 B1 B2 P6 B4 B5 … (tail as P frames).
func decodeOrder(n int, bframes bool) []int {
	out := []int{0}
	j := 1
	for j < n {
		if bframes && j+2 < n {
			out = append(out, j+2, j, j+1)
			j += 3
			continue
		}
		out = append(out, j)
		j++
	}
	return out
}

// genVideo makes the video AUs of a stream in decode order.
func genVideo(o genOpts) []fed {
	if o.fps == 0 {
		return nil
	}
	total := int(o.dur * time.Duration(o.fps) / time.Second)
	tpf := int64(cmaf.VideoTimescale / o.fps)
	shift := int64(0)
	if o.bframes {
		shift = 1 // PTS = DTS + at least 0
	}
	var out []fed
	for g := 0; g*o.gop < total; g++ {
		n := min(o.gop, total-g*o.gop)
		for k, disp := range decodeOrder(n, o.bframes) {
			di := g*o.gop + k
			pi := g*o.gop + disp
			dF := int64(di + o.videoStartFrames)
			pF := int64(pi+o.videoStartFrames) + shift
			key := k == 0
			var nalus [][]byte
			var want [][]byte
			aud := []byte{0x09, 0xf0}
			slice := make([]byte, 5+o.payloadSize)
			binary.BigEndian.PutUint32(slice[1:], uint32(di))
			for i := 5; i < len(slice); i++ {
				slice[i] = byte(di*7 + i)
			}
			if key {
				sei := []byte{0x06, 0x05, 0x01, 0xaa, 0x80}
				slice[0] = 0x65
				nalus = [][]byte{aud, spsHigh, ppsHigh, sei, slice}
				want = [][]byte{sei, slice}
			} else {
				slice[0] = 0x41
				nalus = [][]byte{aud, slice}
				want = [][]byte{slice}
			}
			out = append(out, fed{
				au: media.AccessUnit{
					Kind:  media.Video,
					DTS:   o.dtsBase + frameTime(dF, 1, int64(o.fps)),
					PTS:   o.dtsBase + frameTime(pF, 1, int64(o.fps)),
					Key:   key,
					NALUs: nalus,
				},
				dtsT:         dF * tpf,
				ptsT:         pF * tpf,
				wantPayload:  avcc(want),
				decodeIndex:  di,
				presentIndex: pi,
			})
		}
	}
	return out[min(o.skipLeadingFrames, len(out)):]
}

func genAudio(o genOpts) []fed {
	if o.audioRate == 0 {
		return nil
	}
	spf := o.audioFrame
	if spf == 0 {
		spf = 1024
	}
	total := int(int64(o.dur) * int64(o.audioRate) / int64(time.Second) / int64(spf))
	out := make([]fed, 0, total)
	for n := range total {
		frame := make([]byte, 200+n%50)
		binary.BigEndian.PutUint32(frame, uint32(n))
		out = append(out, fed{
			au: media.AccessUnit{
				Kind:  media.Audio,
				DTS:   o.dtsBase + frameTime(int64(n), int64(spf), int64(o.audioRate)),
				PTS:   o.dtsBase + frameTime(int64(n), int64(spf), int64(o.audioRate)),
				Key:   true,
				Frame: frame,
			},
			dtsT:        int64(n * spf),
			ptsT:        int64(n * spf),
			wantPayload: frame,
			decodeIndex: n,
		})
	}
	return out
}

// interleave merges video and audio by delivery time (DTS, audio delayed by
// lag), video first on ties.
func interleave(v, a []fed, lag time.Duration) []media.AccessUnit {
	out := make([]media.AccessUnit, 0, len(v)+len(a))
	i, j := 0, 0
	for i < len(v) || j < len(a) {
		if j >= len(a) || (i < len(v) && v[i].au.DTS <= a[j].au.DTS+lag) {
			out = append(out, v[i].au)
			i++
		} else {
			out = append(out, a[j].au)
			j++
		}
	}
	return out
}

func avcc(nalus [][]byte) []byte {
	var b bytes.Buffer
	for _, n := range nalus {
		_ = binary.Write(&b, binary.BigEndian, uint32(len(n)))
		b.Write(n)
	}
	return b.Bytes()
}

// --- parsing the output back -------------------------------------------------

type gotSample struct {
	dts, pts int64 // ticks, absolute (tfdt-based)
	dur      uint32
	sync     bool
	payload  []byte
	chunk    int // index into epoch.chunks
}

type gotEpoch struct {
	init      cmaf.Init
	parsed    fmp4.Init
	timescale map[int]uint32
	chunks    []cmaf.Chunk
	parts     []*fmp4.Part
	samples   map[int][]gotSample // by track ID
}

// parseOutput parses every init and chunk with mediacommon's reader and
// checks the structural invariants that must hold for any input:
// inits precede their chunks, Seq and mfhd count 1, 2, 3… per epoch, each
// track's tfdt continues where its previous fragment ended, a keyframe is
// always the first video sample of its chunk, Keyframe matches that, and
// MediaTime/Duration match the fragment.
func parseOutput(tb testing.TB, r *recorder) []*gotEpoch {
	tb.Helper()
	eps, err := parseEvents(r.events)
	if err != nil {
		tb.Fatal(err)
	}
	return eps
}

func parseEvents(events []any) ([]*gotEpoch, error) {
	var eps []*gotEpoch
	var cur *gotEpoch
	for _, ev := range events {
		switch v := ev.(type) {
		case cmaf.Init:
			if cur != nil && v.Epoch == cur.init.Epoch {
				return nil, fmt.Errorf("epoch %d: second init", v.Epoch)
			}
			g := &gotEpoch{init: v, timescale: map[int]uint32{}, samples: map[int][]gotSample{}}
			if err := g.parsed.Unmarshal(bytes.NewReader(v.Data)); err != nil {
				return nil, fmt.Errorf("epoch %d: parse init: %w", v.Epoch, err)
			}
			for _, tr := range g.parsed.Tracks {
				g.timescale[tr.ID] = tr.TimeScale
			}
			wantTracks := 0
			if v.VideoCodec != "" {
				wantTracks++
			}
			if v.AudioCodec != "" {
				wantTracks++
			}
			if len(g.parsed.Tracks) != wantTracks {
				return nil, fmt.Errorf("epoch %d: %d tracks in init, codecs %q", v.Epoch, len(g.parsed.Tracks), v.Codecs)
			}
			eps = append(eps, g)
			cur = g
		case cmaf.Chunk:
			if cur == nil || v.Epoch != cur.init.Epoch {
				return nil, fmt.Errorf("chunk of epoch %d without its init", v.Epoch)
			}
			if err := cur.addChunk(v); err != nil {
				return nil, fmt.Errorf("epoch %d chunk %d: %w", v.Epoch, v.Seq, err)
			}
		}
	}
	return eps, nil
}

func (g *gotEpoch) addChunk(c cmaf.Chunk) error {
	if want := uint64(len(g.chunks) + 1); c.Seq != want {
		return fmt.Errorf("seq %d, want %d", c.Seq, want)
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(c.Data); err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	if len(parts) != 1 {
		return fmt.Errorf("%d moofs", len(parts))
	}
	part := parts[0]
	if uint64(part.SequenceNumber) != c.Seq {
		return fmt.Errorf("mfhd %d", part.SequenceNumber)
	}
	idx := len(g.chunks)
	g.chunks = append(g.chunks, c)
	g.parts = append(g.parts, part)
	var videoFirstSync, haveVideo bool
	byID := map[int]*fmp4.PartTrack{}
	for _, pt := range part.Tracks {
		ts, ok := g.timescale[pt.ID]
		if !ok {
			return fmt.Errorf("track %d not in init", pt.ID)
		}
		if len(pt.Samples) == 0 {
			return fmt.Errorf("empty traf %d", pt.ID)
		}
		if pt.BaseTime >= 1<<62 {
			return fmt.Errorf("track %d tfdt %d: negative decode time", pt.ID, pt.BaseTime)
		}
		byID[pt.ID] = pt
		prev := g.samples[pt.ID]
		if len(prev) > 0 {
			last := prev[len(prev)-1]
			if end := last.dts + int64(last.dur); int64(pt.BaseTime) != end {
				return fmt.Errorf("track %d tfdt %d, previous fragment ended at %d", pt.ID, pt.BaseTime, end)
			}
		}
		dts := int64(pt.BaseTime)
		for i, s := range pt.Samples {
			if s.Duration == 0 {
				return fmt.Errorf("track %d sample %d: zero duration", pt.ID, i)
			}
			if pt.ID == cmaf.VideoTrackID && !s.IsNonSyncSample && i > 0 {
				return fmt.Errorf("keyframe at position %d of its chunk", i)
			}
			g.samples[pt.ID] = append(g.samples[pt.ID], gotSample{
				dts: dts, pts: dts + int64(s.PTSOffset), dur: s.Duration,
				sync: !s.IsNonSyncSample, payload: s.Payload, chunk: idx,
			})
			dts += int64(s.Duration)
		}
		if pt.ID == cmaf.VideoTrackID {
			haveVideo = true
			videoFirstSync = !pt.Samples[0].IsNonSyncSample
			if len(prev) == 0 && !videoFirstSync {
				return fmt.Errorf("epoch's video does not start with a keyframe")
			}
		}
		_ = ts
	}
	if g.init.VideoCodec != "" && c.Keyframe != (haveVideo && videoFirstSync) {
		return fmt.Errorf("Keyframe=%v but video first-sample sync=%v (video present %v)", c.Keyframe, videoFirstSync, haveVideo)
	}
	// MediaTime and Duration describe the video traf, else the audio one.
	ref := byID[cmaf.VideoTrackID]
	if ref == nil {
		ref = byID[cmaf.AudioTrackID]
	}
	ts := g.timescale[ref.ID]
	var sum uint64
	for _, s := range ref.Samples {
		sum += uint64(s.Duration)
	}
	if d := absDur(c.MediaTime - ticksDur(int64(ref.BaseTime), ts)); d > time.Microsecond {
		return fmt.Errorf("MediaTime %v, tfdt says %v", c.MediaTime, ticksDur(int64(ref.BaseTime), ts))
	}
	if d := absDur(c.Duration - ticksDur(int64(sum), ts)); d > time.Microsecond {
		return fmt.Errorf("Duration %v, samples say %v", c.Duration, ticksDur(int64(sum), ts))
	}
	return nil
}

func ticksDur(t int64, ts uint32) time.Duration {
	return time.Duration(float64(t) / float64(ts) * float64(time.Second))
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// allSamples concatenates a track's samples across epochs.
func allSamples(eps []*gotEpoch, id int) []gotSample {
	var out []gotSample
	for _, e := range eps {
		out = append(out, e.samples[id]...)
	}
	return out
}

// checkTrack compares a track's samples with what was fed (after dropping
// what the packager should drop), exactly: DTS, PTS, sync flag, payload.
func checkTrack(tb testing.TB, name string, got []gotSample, want []fed, dtsOffsetT int64) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("%s: %d samples, want %d", name, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.dts != w.dtsT+dtsOffsetT || g.pts != w.ptsT+dtsOffsetT {
			tb.Fatalf("%s sample %d: dts/pts %d/%d, want %d/%d", name, i, g.dts, g.pts, w.dtsT+dtsOffsetT, w.ptsT+dtsOffsetT)
		}
		if g.sync != (w.au.Key || w.au.Kind == media.Audio) {
			tb.Fatalf("%s sample %d: sync %v", name, i, g.sync)
		}
		if !bytes.Equal(g.payload, w.wantPayload) {
			tb.Fatalf("%s sample %d: payload differs (%d vs %d bytes)", name, i, len(g.payload), len(w.wantPayload))
		}
	}
}

func feedAll(tb testing.TB, p *cmaf.Packager, aus []media.AccessUnit) {
	tb.Helper()
	for i, au := range aus {
		if err := p.WriteAU(au); err != nil {
			tb.Fatalf("WriteAU %d (%v dts %v): %v", i, au.Kind, au.DTS, err)
		}
	}
}

func configure(tb testing.TB, p *cmaf.Packager, v *media.VideoConfig, a *media.AudioConfig) {
	tb.Helper()
	if v != nil {
		if err := p.VideoConfig(*v); err != nil {
			tb.Fatal(err)
		}
	}
	if a != nil {
		if err := p.AudioConfig(*a); err != nil {
			tb.Fatal(err)
		}
	}
}

// packageOne packages aus (with a default Config), flushes, and returns the
// packager and the one epoch it made.
func packageOne(tb testing.TB, v *media.VideoConfig, a *media.AudioConfig, aus []media.AccessUnit) (*cmaf.Packager, *gotEpoch) {
	tb.Helper()
	p, r := newPackager(tb, cmaf.Config{})
	configure(tb, p, v, a)
	feedAll(tb, p, aus)
	if err := p.Flush(); err != nil {
		tb.Fatal(err)
	}
	eps := parseOutput(tb, r)
	if len(eps) != 1 {
		tb.Fatalf("%d epochs", len(eps))
	}
	return p, eps[0]
}

// writeMP4 writes an epoch's init and chunks as one fragmented MP4 file in
// dir and returns its path.
func writeMP4(tb testing.TB, dir string, g *gotEpoch) string {
	tb.Helper()
	var file bytes.Buffer
	file.Write(g.init.Data)
	for _, c := range g.chunks {
		file.Write(c.Data)
	}
	out := filepath.Join(dir, "out.mp4")
	if err := os.WriteFile(out, file.Bytes(), 0o600); err != nil {
		tb.Fatal(err)
	}
	return out
}
