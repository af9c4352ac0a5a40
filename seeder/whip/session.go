package whip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/av1"
	"github.com/banyan-live/banyan/media/vparams"
)

const (
	// tickEvery paces a session's housekeeping: reorder gaps expire,
	// PLIs are due, the no-media timeout fires, to within this.
	tickEvery = 25 * time.Millisecond
	// eventQueue is how many packets the readers may be ahead of the
	// session goroutine before they wait (pion's own buffers then fill).
	eventQueue = 512
	// maxReadErrors in a row end a session: a reader that keeps failing
	// without its connection closing would otherwise spin.
	maxReadErrors = 100
	// opusRate is Opus's RTP clock (RFC 7587), whatever the content.
	opusRate = 48000
	// rtxPoll is how often a reader of a track with RTX wakes to collect
	// repaired packets.
	rtxPoll = 20 * time.Millisecond
	// minPLIGap keeps a burst of losses from sending a burst of PLIs.
	minPLIGap = 200 * time.Millisecond
)

// errDeleted is the cause of a session ended by DELETE: End gets nil.
var errDeleted = errors.New("whip: session deleted by the publisher")

// session is one WHIP publish. Its goroutine (run) owns the media state;
// pion's callbacks and the readers only send it events.
type session struct {
	srv     *Server
	id      string
	stream  string
	etag    string
	ufrag   string // the publisher's ICE ufrag (a different one is an ICE restart)
	log     *slog.Logger
	pc      *webrtc.PeerConnection
	pub     Session
	ctx     context.Context
	cancel  context.CancelCauseFunc
	events  chan event
	done    chan struct{}
	created time.Time

	mu         sync.Mutex
	closing    bool
	haveVideo  bool
	haveAudio  bool
	candidates int
	readers    sync.WaitGroup

	// Owned by run.
	now       time.Time
	t0        time.Time // first RTP packet of any track
	lastMedia time.Time // last usable audio frame or video frame
	video     *videoState
	audio     *audioState
	stats     sessionStats
}

type sessionStats struct {
	videoFrames, keyframes, audioFrames uint64
	dropped                             map[string]uint64
	plis                                uint64
	syncCorrections                     int
}

// inTrack is a remote track as the readers see it.
type inTrack struct {
	kind  media.Kind
	codec media.Codec // H264 or AV1 for video
	ssrc  uint32
	pts   map[webrtc.PayloadType]bool // payload types of the track's codec
}

// event is what the readers send the session goroutine.
type event struct {
	tr    *inTrack
	added bool // the track has just appeared
	pkt   *rtp.Packet
	sr    *rtcp.SenderReport
	at    time.Time
}

type videoState struct {
	tr      *inTrack
	clock   *clock
	reorder *reorder
	asm     *assembler
	dts     h264.DTSExtractor

	sps, pps         []byte // what the sink was last given
	pendSPS, pendPPS []byte // the latest seen in-band
	spsID            uint32 // of pendSPS
	ppsID, ppsSPS    uint32 // of pendPPS, and the SPS it names
	needKey          bool   // drop frames until a keyframe (start, loss)
	lastKey          time.Time
	lastPLI          time.Time
	lastDTS          time.Duration
	emitted          bool

	// AV1 only.
	seqHeader []byte // the sequence header the sink was last given
	av1Still  bool   // its reduced_still_picture_header
}

// configured reports whether the sink has the video configuration.
func (v *videoState) configured() bool { return v.sps != nil || v.seqHeader != nil }

type audioState struct {
	tr       *inTrack
	clock    *clock
	reorder  *reorder
	released bool // AudioConfig sent; frames flow to the sink
	lastDTS  time.Duration
	emitted  bool
}

func newSession(srv *Server, id, stream string, pc *webrtc.PeerConnection) *session {
	ctx, cancel := context.WithCancelCause(srv.baseCtx)
	return &session{
		srv:    srv,
		id:     id,
		stream: stream,
		etag:   `"` + id[:16] + `"`,
		log:    srv.log.With("stream", stream, "session", id[:8]),
		pc:     pc,
		ctx:    ctx,
		cancel: cancel,
		events: make(chan event, eventQueue),
		done:   make(chan struct{}),
		stats:  sessionStats{dropped: make(map[string]uint64)},
	}
}

// onTrack is pion's OnTrack: the first H.264 or AV1 track and the first
// Opus track are read; any other is ignored (pion drops what nobody reads).
func (s *session) onTrack(track *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	var kind media.Kind
	var codec media.Codec
	mime := track.Codec().MimeType
	switch {
	case track.Kind() == webrtc.RTPCodecTypeVideo && strings.EqualFold(mime, webrtc.MimeTypeH264):
		kind, codec = media.Video, media.H264
	case track.Kind() == webrtc.RTPCodecTypeVideo && strings.EqualFold(mime, webrtc.MimeTypeAV1):
		kind, codec = media.Video, media.AV1
	case track.Kind() == webrtc.RTPCodecTypeAudio && strings.EqualFold(mime, webrtc.MimeTypeOpus):
		kind = media.Audio
	default:
		s.log.Info("ignoring a track", "kind", track.Kind().String(), "codec", mime)
		return
	}
	s.mu.Lock()
	if s.closing || (kind == media.Video && s.haveVideo) || (kind == media.Audio && s.haveAudio) {
		s.mu.Unlock()
		return
	}
	if kind == media.Video {
		s.haveVideo = true
	} else {
		s.haveAudio = true
	}
	s.readers.Add(2)
	s.mu.Unlock()

	tr := &inTrack{kind: kind, codec: codec, ssrc: uint32(track.SSRC()), pts: make(map[webrtc.PayloadType]bool)}
	tr.pts[track.PayloadType()] = true
	for _, c := range recv.GetParameters().Codecs {
		if strings.EqualFold(c.MimeType, mime) {
			tr.pts[c.PayloadType] = true
		}
	}
	go s.readRTP(tr, track)
	go s.readRTCP(tr, recv)
}

func (s *session) send(ev event) bool {
	select {
	case s.events <- ev:
		return true
	case <-s.ctx.Done():
		return false
	}
}

func (s *session) readRTP(tr *inTrack, track *webrtc.TrackRemote) {
	defer s.readers.Done()
	if !s.send(event{tr: tr, added: true, at: s.srv.cfg.Now()}) {
		return
	}
	errs := 0
	rtx := track.HasRTX()
	for {
		if rtx {
			// pion hands over an RTX-repaired packet only when a read
			// starts; wake up now and then so that a repair is not held
			// until the next media packet (the end of a burst, a slow
			// frame rate).
			_ = track.SetReadDeadline(time.Now().Add(rtxPoll))
		}
		pkt, _, err := track.ReadRTP()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, io.EOF) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errs++; errs > maxReadErrors {
				s.cancel(fmt.Errorf("whip: read %s RTP: %w", tr.kind, err))
				return
			}
			continue
		}
		errs = 0
		if !s.send(event{tr: tr, pkt: pkt, at: s.srv.cfg.Now()}) {
			return
		}
	}
}

// readRTCP reads the receiver's RTCP: pion's interceptors see it on the
// way (reports), and sender reports feed A/V sync.
func (s *session) readRTCP(tr *inTrack, recv *webrtc.RTPReceiver) {
	defer s.readers.Done()
	errs := 0
	for {
		pkts, _, err := recv.ReadRTCP()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, io.EOF) {
				return
			}
			if errs++; errs > maxReadErrors {
				return // RTCP is not worth ending the publish for
			}
			continue
		}
		errs = 0
		for _, p := range pkts {
			sr, ok := p.(*rtcp.SenderReport)
			if !ok || sr.SSRC != tr.ssrc {
				continue
			}
			if !s.send(event{tr: tr, sr: sr, at: s.srv.cfg.Now()}) {
				return
			}
		}
	}
}

// run is the session goroutine. It returns once the session is over and
// everything it started has stopped.
func (s *session) run() {
	defer s.srv.release()
	defer close(s.done)
	s.now = s.srv.cfg.Now()
	s.lastMedia = s.created
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			s.teardown()
			return
		case ev := <-s.events:
			s.now = ev.at
			s.handle(ev)
		case <-tick.C:
			s.now = s.srv.cfg.Now()
			s.housekeeping()
		}
	}
}

func (s *session) teardown() {
	cause := context.Cause(s.ctx)
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	if err := s.pc.Close(); err != nil {
		s.log.Debug("close peer connection", "err", err)
	}
	s.readers.Wait()
	s.srv.unregister(s)
	end := cause
	if errors.Is(cause, errDeleted) {
		end = nil
	}
	s.pub.End(end)
	s.srv.metrics.ended.WithLabelValues(causeLabel(cause)).Inc()
	s.log.Info("WHIP session ended", "cause", cause, "after", s.srv.cfg.Now().Sub(s.created).Round(time.Millisecond),
		"video_frames", s.stats.videoFrames, "keyframes", s.stats.keyframes, "audio_frames", s.stats.audioFrames,
		"plis", s.stats.plis, "dropped", s.stats.dropped)
}

func causeLabel(err error) string {
	switch {
	case errors.Is(err, errDeleted):
		return "deleted"
	case errors.Is(err, ErrStopped):
		return "stopped"
	case errors.Is(err, ErrNoMedia):
		return "no_media"
	case errors.Is(err, ErrConnectionFailed):
		return "connection"
	case errors.Is(err, ErrServerClosed):
		return "server_closed"
	}
	return "error"
}

// fail ends the session because the sink refused something.
func (s *session) fail(what string, err error) {
	s.cancel(fmt.Errorf("whip: %s: %w", what, err))
}

func (s *session) drop(kind media.Kind, reason string) {
	s.stats.dropped[kind.String()+"/"+reason]++
	s.srv.metrics.dropped.WithLabelValues(kind.String(), reason).Inc()
}

func (s *session) handle(ev event) {
	if s.ctx.Err() != nil {
		return
	}
	switch {
	case ev.added:
		s.addTrack(ev.tr)
	case ev.pkt != nil:
		if s.t0.IsZero() {
			s.t0 = ev.at
		}
		if !ev.tr.pts[webrtc.PayloadType(ev.pkt.PayloadType)] {
			s.drop(ev.tr.kind, "payload_type")
			return
		}
		if ev.tr.kind == media.Video && s.video != nil {
			v := s.video
			v.clock.start(ev.pkt.Timestamp, ev.at.Sub(s.t0))
			v.reorder.push(ev.pkt, ev.at, s.videoPacket)
		} else if ev.tr.kind == media.Audio && s.audio != nil {
			a := s.audio
			a.clock.start(ev.pkt.Timestamp, ev.at.Sub(s.t0))
			a.reorder.push(ev.pkt, ev.at, s.audioPacket)
		}
	case ev.sr != nil:
		if ev.tr.kind == media.Video && s.video != nil {
			s.video.clock.senderReport(ev.sr.NTPTime, ev.sr.RTPTime)
		} else if ev.tr.kind == media.Audio && s.audio != nil {
			s.audio.clock.senderReport(ev.sr.NTPTime, ev.sr.RTPTime)
		}
		if s.video != nil && s.audio != nil {
			if d := syncAudio(s.video.clock, s.audio.clock); d != 0 {
				s.stats.syncCorrections++
				s.log.Debug("audio moved to match video by sender reports", "by", d)
			}
		}
	}
}

func (s *session) addTrack(tr *inTrack) {
	switch tr.kind {
	case media.Video:
		asm := newAssembler()
		if tr.codec == media.AV1 {
			asm = newAV1Assembler()
		}
		v := &videoState{tr: tr, clock: newClock(90000), reorder: newReorder(s.srv.cfg.ReorderWait), asm: asm, needKey: true}
		v.dts.Initialize()
		s.video = v
		s.log.Info("video track", "ssrc", tr.ssrc, "codec", tr.codec)
		s.pli("start")
	case media.Audio:
		s.audio = &audioState{tr: tr, clock: newClock(opusRate), reorder: newReorder(s.srv.cfg.ReorderWait)}
		s.log.Debug("audio track", "ssrc", tr.ssrc)
	}
}

// housekeeping runs every tick: expired reorder gaps, the no-media
// timeout, PLIs.
func (s *session) housekeeping() {
	if s.video != nil {
		s.video.reorder.tick(s.now, s.videoPacket)
	}
	if s.audio != nil {
		s.audio.reorder.tick(s.now, s.audioPacket)
	}
	if s.now.Sub(s.lastMedia) >= s.srv.cfg.NoMediaTimeout {
		s.cancel(fmt.Errorf("%w (none for %v)", ErrNoMedia, s.srv.cfg.NoMediaTimeout))
		return
	}
	if v := s.video; v != nil {
		ki := s.srv.cfg.KeyframeInterval
		retry := min(ki, time.Second)
		switch {
		case v.needKey && s.now.Sub(v.lastPLI) >= retry:
			s.pli("waiting for a keyframe")
		case !v.needKey && s.now.Sub(v.lastKey) >= ki && s.now.Sub(v.lastPLI) >= retry:
			s.pli("keyframe overdue")
		}
	}
}

// pli asks the publisher for a keyframe.
func (s *session) pli(why string) {
	v := s.video
	v.lastPLI = s.now
	s.stats.plis++
	s.srv.metrics.plis.Inc()
	if err := s.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: v.tr.ssrc}}); err != nil {
		s.log.Debug("send PLI", "err", err)
		return
	}
	s.log.Debug("PLI sent", "why", why)
}

// videoPacket takes the next in-order video packet.
func (s *session) videoPacket(p *rtp.Packet, lost bool) {
	v := s.video
	if lost {
		s.srv.metrics.lost.WithLabelValues("video").Inc()
		s.log.Debug("video packets lost", "before_seq", p.SequenceNumber, "lost_total", v.reorder.lost)
		v.asm.lost()
		if !v.needKey {
			v.needKey = true
			if s.now.Sub(v.lastPLI) >= minPLIGap {
				s.pli("packet loss")
			}
		}
	}
	before := v.asm.malformed
	for _, f := range v.asm.push(p) {
		s.videoFrame(f)
	}
	if v.asm.malformed != before {
		s.drop(media.Video, "malformed")
	}
}

// videoFrame hands a complete frame to the sink: its parameter sets as a
// VideoConfig before a keyframe that uses new ones, then the frame, or
// drops it while no keyframe has been seen since the start or a loss.
func (s *session) videoFrame(f frame) {
	v := s.video
	if v.tr.codec == media.AV1 {
		s.av1Frame(f)
		return
	}
	fi := classify(f.nalus)
	if fi.sps != nil {
		if id, err := checkSPS(fi.sps); err != nil {
			s.drop(media.Video, "bad_sps")
		} else {
			v.pendSPS, v.spsID = fi.sps, id
		}
	}
	if fi.pps != nil {
		if id, spsID, err := checkPPS(fi.pps); err != nil {
			s.drop(media.Video, "bad_pps")
		} else {
			v.pendPPS, v.ppsID, v.ppsSPS = fi.pps, id, spsID
		}
	}
	if !fi.vcl {
		return // parameter sets or SEI on their own
	}
	if fi.key {
		if v.pendSPS == nil || v.pendPPS == nil || v.ppsSPS != v.spsID {
			s.drop(media.Video, "no_parameter_sets")
			v.needKey = true
			return
		}
		if err := checkIDRSlice(fi.idr, v.ppsID); err != nil {
			s.drop(media.Video, "bad_slice")
			v.needKey = true
			return
		}
		if !bytes.Equal(v.pendSPS, v.sps) || !bytes.Equal(v.pendPPS, v.pps) {
			if err := s.pub.VideoConfig(media.VideoConfig{SPS: v.pendSPS, PPS: v.pendPPS}); err != nil {
				s.fail("video config", err)
				return
			}
			v.sps, v.pps = v.pendSPS, v.pendPPS
			v.dts = h264.DTSExtractor{}
			v.dts.Initialize()
		}
		v.needKey = false
		v.lastKey = s.now
	} else if v.needKey {
		s.drop(media.Video, "before_keyframe")
		return
	}

	// RTP carries presentation time; the DTS extractor recovers decode
	// time from the slice headers when there are B-frames (OBS), and is
	// the identity without them (browsers).
	ptsTicks := v.clock.ticks(f.ts)
	dtsTicks := ptsTicks
	in := fi.nalus
	if fi.key {
		in = append([][]byte{v.sps}, fi.nalus...)
	}
	if d, err := v.dts.Extract(in, ptsTicks); err == nil {
		dtsTicks = d
	} else {
		v.dts = h264.DTSExtractor{}
		v.dts.Initialize()
	}
	s.writeVideo(dtsTicks, ptsTicks, fi.key, fi.nalus)
}

// writeVideo hands a frame to the sink, its decode time kept increasing.
func (s *session) writeVideo(dtsTicks, ptsTicks int64, key bool, units [][]byte) {
	v := s.video
	dts, pts := v.clock.media(dtsTicks), v.clock.media(ptsTicks)
	if outOfRange(dts) || outOfRange(pts) {
		s.drop(media.Video, "timestamp")
		return
	}
	if v.emitted && dts <= v.lastDTS {
		dts = v.lastDTS + v.clock.tick()
	}
	pts = max(pts, dts)
	if err := s.pub.WriteAU(media.AccessUnit{Kind: media.Video, DTS: dts, PTS: pts, Key: key, NALUs: units}); err != nil {
		s.fail("write video", err)
		return
	}
	v.lastDTS, v.emitted = dts, true
	s.lastMedia = s.now
	s.stats.videoFrames++
	if key {
		s.stats.keyframes++
	}
}

// av1Frame hands a temporal unit to the sink. The sequence header comes
// in-band with key frames (WebRTC has no out-of-band one); one that
// differs from the sink's becomes a new VideoConfig at its key frame,
// which the packager turns into a new epoch. Temporal units are in
// decode order and each shows one frame (AV1 hides its reordering inside
// them), so the RTP timestamp is both PTS and DTS.
func (s *session) av1Frame(f frame) {
	v := s.video
	if !hasAV1Frame(f.nalus) {
		return // metadata or a sequence header alone: nothing to show
	}
	var cfg *media.VideoConfig
	still := v.av1Still
	if sh := av1.SequenceHeader(f.nalus); sh != nil && !bytes.Equal(sh, v.seqHeader) {
		c := media.VideoConfig{Codec: media.AV1, SeqHeader: sh}
		in, err := vparams.Parse(c)
		if err != nil {
			// The frame needs a header we cannot describe: the packager
			// could not make an init of it.
			s.drop(media.Video, "bad_sequence_header")
			v.needKey = true
			return
		}
		cfg, still = &c, in.ReducedStill
	}
	key := av1.IsKey(f.nalus, still)
	if key {
		if cfg != nil {
			if err := s.pub.VideoConfig(*cfg); err != nil {
				s.fail("video config", err)
				return
			}
			v.seqHeader, v.av1Still = cfg.SeqHeader, still
		}
		if v.seqHeader == nil {
			s.drop(media.Video, "no_sequence_header")
			v.needKey = true
			return
		}
		v.needKey = false
		v.lastKey = s.now
	} else if v.needKey {
		s.drop(media.Video, "before_keyframe")
		return
	}
	t := v.clock.ticks(f.ts)
	s.writeVideo(t, t, key, f.nalus)
}

// hasAV1Frame reports whether a temporal unit holds a frame to decode.
func hasAV1Frame(obus [][]byte) bool {
	for _, o := range obus {
		if t := av1.Type(o); t == av1.OBUFrame || t == av1.OBUFrameHeader {
			return true
		}
	}
	return false
}

func outOfRange(d time.Duration) bool { return d > maxMediaTime || d < -maxMediaTime }

// audioPacket takes the next in-order audio packet: one Opus packet, one
// AU. Audio waits (dropped, as the packager would drop it before the first
// keyframe anyway) until the video configuration is known or VideoWait has
// passed, so that the first epoch has both tracks.
func (s *session) audioPacket(p *rtp.Packet, lost bool) {
	a := s.audio
	if lost {
		s.srv.metrics.lost.WithLabelValues("audio").Inc()
	}
	if len(p.Payload) == 0 {
		return // padding
	}
	if err := checkOpus(p.Payload); err != nil {
		s.drop(media.Audio, "malformed")
		return
	}
	ticks := a.clock.ticks(p.Timestamp)
	s.lastMedia = s.now
	if !a.released {
		if (s.video == nil || !s.video.configured()) && s.now.Sub(s.t0) < s.srv.cfg.VideoWait {
			s.drop(media.Audio, "waiting_for_video")
			return
		}
		if err := s.pub.AudioConfig(media.AudioConfig{Codec: media.Opus, SampleRate: opusRate, Channels: 2}); err != nil {
			s.fail("audio config", err)
			return
		}
		a.released = true
	}
	dts := a.clock.media(ticks)
	if outOfRange(dts) {
		s.drop(media.Audio, "timestamp")
		return
	}
	if a.emitted && dts <= a.lastDTS {
		// A sync correction moved audio back, or a duplicate timestamp:
		// drop rather than squeeze frames into no time.
		s.drop(media.Audio, "backwards")
		return
	}
	if err := s.pub.WriteAU(media.AccessUnit{Kind: media.Audio, DTS: dts, PTS: dts, Key: true, Frame: p.Payload}); err != nil {
		s.fail("write audio", err)
		return
	}
	a.lastDTS, a.emitted = dts, true
	s.stats.audioFrames++
}

// addCandidates counts remote candidates against the session's bound.
func (s *session) addCandidates(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.candidates+n > s.srv.cfg.MaxCandidates {
		return false
	}
	s.candidates += n
	return true
}
