package rtmpingest

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

	"github.com/sirupsen/logrus"
	rtmp "github.com/yutopp/go-rtmp"
	"github.com/yutopp/go-rtmp/message"

	"github.com/banyan-live/banyan/internal/ipkey"
	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/flv"
)

const (
	maxKeyLen       = 256
	takeoverWait    = 5 * time.Second
	statusWriteWait = 2 * time.Second
	maxCapturedErr  = 300
)

// conn is one TCP connection. Its goroutine is go-rtmp's handleConn, which
// calls the handler methods and, last, guard.Close → finish.
type conn struct {
	srv      *Server
	nc       net.Conn
	g        *guard
	id       uint64
	ip       ipkey.Key
	accepted time.Time
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc

	// Owned by the connection goroutine.
	rc  *rtmp.Conn
	pub *publish

	mu      sync.Mutex
	cause   error  // first reason the server gave for ending it
	libErr  string // last error go-rtmp logged
	stream  string
	started bool // a publish was accepted

	finishOnce sync.Once
}

// publish is one accepted publish on a connection.
type publish struct {
	c       *conn
	info    Publish
	sink    media.Sink
	done    func(error)
	conv    *flv.Converter
	scratch bytes.Buffer
	ended   chan struct{}
	endOnce sync.Once
}

func newConn(s *Server, nc net.Conn, id uint64, ip ipkey.Key) *conn {
	c := &conn{srv: s, nc: nc, id: id, ip: ip, accepted: time.Now()}
	c.ctx, c.cancel = context.WithCancel(s.baseCtx)
	c.log = s.log.With("conn", id, "remote", nc.RemoteAddr().String())
	lim := guardLimits{
		maxChunkSize:    s.cfg.MaxChunkSize,
		maxMessageSize:  s.cfg.MaxMessageSize,
		maxChunkStreams: 32,
		preAuthBytes:    256 << 10,
		preAuthMessage:  64 << 10,
		maxAMFMessage:   64 << 10,
	}
	c.g = newGuard(nc, lim, s.cfg.IdleTimeout, c.finish)
	return c
}

func (c *conn) rtmpConfig() *rtmp.ConnConfig {
	// go-rtmp logs through logrus; keep only its errors, to report the
	// cause in our single end-of-connection line.
	ll := logrus.New()
	ll.Out = io.Discard
	ll.Level = logrus.ErrorLevel
	ll.AddHook(captureHook{c})
	return &rtmp.ConnConfig{
		Handler:                   &handler{c: c},
		SkipHandshakeVerification: true, // some encoders do not echo S1 exactly; it proves nothing
		ReaderBufferSize:          16 << 10,
		WriterBufferSize:          4 << 10,
		ControlState: rtmp.StreamControlStateConfig{
			MaxChunkStreams:   64,
			MaxMessageStreams: 8,
		},
		Logger: ll,
	}
}

// kill ends the connection from any goroutine; cause is reported to the
// publish's done callback and the log.
func (c *conn) kill(cause error) {
	c.mu.Lock()
	if c.cause == nil {
		c.cause = cause
	}
	c.mu.Unlock()
	c.cancel()
	// Unblocks the read loop at once; go-rtmp then runs OnClose and
	// guard.Close on the connection goroutine.
	_ = c.nc.SetDeadline(time.Now())
	_ = c.nc.Close()
}

func (c *conn) setCause(err error) {
	c.mu.Lock()
	if c.cause == nil {
		c.cause = err
	}
	c.mu.Unlock()
}

func (c *conn) hasStarted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started
}

// endCause is why the connection ended; nil for a clean close by the peer.
func (c *conn) endCause() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cause != nil {
		return c.cause
	}
	if err := c.g.Err(); err != nil {
		if errors.Is(err, io.EOF) {
			if c.started {
				return nil // the publisher hung up between messages
			}
			return errors.New("peer closed the connection before publishing")
		}
		return err
	}
	if c.libErr != "" {
		return errors.New(c.libErr)
	}
	if !c.started {
		return errors.New("connection ended before publishing")
	}
	return nil
}

func (c *conn) silentProbe() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause == nil && errors.Is(c.g.Err(), io.EOF) && c.g.hsLeft == handshakeSize
}

// finish runs once, last, on the connection goroutine (from guard.Close).
func (c *conn) finish() {
	c.finishOnce.Do(func() {
		c.cancel()
		if c.pub != nil {
			// go-rtmp calls OnClose before closing the guard; this is
			// for the paths that never reach go-rtmp.
			c.pub.end(c.endCause())
		}
		cause := c.endCause()
		attrs := []any{"duration", time.Since(c.accepted).Round(time.Millisecond)}
		c.mu.Lock()
		if c.stream != "" {
			attrs = append(attrs, "stream", c.stream)
		}
		c.mu.Unlock()
		switch {
		case cause == nil:
			c.log.Info("rtmp: connection closed", attrs...)
		case c.silentProbe():
			// Opened and closed without a byte: a TCP health check.
			c.log.Debug("rtmp: connection closed", append(attrs, "cause", "no data")...)
		default:
			c.log.Warn("rtmp: connection closed", append(attrs, "cause", cause.Error())...)
		}
		c.srv.connDone(c)
	})
}

// sendStatus writes an onStatus error to the peer, so that clients print
// why they were refused (ffmpeg: "Server error: …") and exit.
func (c *conn) sendStatus(streamID uint32, code message.NetStreamOnStatusCode, desc string) {
	if c.rc == nil {
		return
	}
	var body bytes.Buffer
	enc := message.NewAMFEncoder(&body, message.EncodingTypeAMF0)
	if err := message.EncodeBodyAnyValues(enc, &message.NetStreamOnStatus{
		InfoObject: message.NetStreamOnStatusInfoObject{
			Level:       message.NetStreamOnStatusLevelError,
			Code:        code,
			Description: desc,
		},
	}); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, statusWriteWait)
	defer cancel()
	_ = c.rc.Write(ctx, 5, 0, &rtmp.ChunkMessage{
		StreamID: streamID,
		Message: &message.CommandMessage{
			CommandName:   "onStatus",
			TransactionID: 0,
			Encoding:      message.EncodingTypeAMF0,
			Body:          &body,
		},
	})
}

// end finishes the publish once: the sink owner's done callback, the
// stream registry, one log line.
func (p *publish) end(cause error) {
	p.endOnce.Do(func() {
		defer close(p.ended)
		p.c.srv.release(p)
		if p.conv == nil {
			return // refused before it started: nothing to report or call
		}
		st := p.conv.Stats()
		attrs := []any{"stream", p.info.Stream, "publish", p.info.ID,
			"duration", time.Since(p.info.Started).Round(time.Millisecond),
			"video_aus", st.VideoAUs, "audio_frames", st.AudioFrames, "keyframes", st.Keyframes,
			"dropped_video", st.DroppedVideo, "dropped_audio", st.DroppedAudio, "backward_audio", st.BackwardAudio,
			"discontinuities", st.Discontinuities}
		if cause != nil {
			attrs = append(attrs, "cause", cause.Error())
		}
		p.c.log.Info("rtmp: publish ended", attrs...)
		if p.done != nil {
			func() {
				defer func() {
					if r := recover(); r != nil {
						p.c.log.Error("rtmp: done callback panicked", "panic", fmt.Sprint(r))
					}
				}()
				p.done(cause)
			}()
		}
	})
}

// handler implements go-rtmp's callbacks for one connection. go-rtmp
// calls them on the connection goroutine; a returned error ends the
// connection (after go-rtmp sends its own failure status, if any).
type handler struct {
	rtmp.DefaultHandler
	c *conn
}

func (h *handler) OnServe(rc *rtmp.Conn) { h.c.rc = rc }

func (h *handler) OnConnect(_ uint32, cmd *message.NetConnectionConnect) error {
	app := strings.Trim(cmd.Command.App, "/")
	if app != App {
		err := fmt.Errorf("connect: application %q, want %q", truncate(app, 64), App)
		h.c.setCause(err)
		return err
	}
	return nil
}

func (h *handler) OnPublish(sctx *rtmp.StreamContext, _ uint32, cmd *message.NetStreamPublish) error {
	c := h.c
	if c.pub != nil || c.hasStarted() {
		err := errors.New("publish: already publishing on this connection")
		c.setCause(err)
		return err
	}
	key := cmd.PublishingName
	if key == "" || len(key) > maxKeyLen {
		c.sendStatus(sctx.StreamID, message.NetStreamOnStatusCodePublishBadName, "Missing or invalid stream key.")
		err := fmt.Errorf("%w: key of %d bytes", ErrUnauthorized, len(key))
		c.setCause(err)
		return err
	}
	actx, cancel := context.WithDeadline(c.ctx, c.accepted.Add(c.srv.cfg.HandshakeTimeout))
	grant, err := c.srv.cfg.Authorize(actx, key)
	cancel()
	stream := grant.Stream
	if err == nil && stream == "" {
		err = errors.New("no stream for the key")
	}
	if err != nil {
		// Never log the key itself: it is a secret.
		c.sendStatus(sctx.StreamID, message.NetStreamOnStatusCodePublishBadName, "Stream key refused.")
		err = fmt.Errorf("%w: %v", ErrUnauthorized, err)
		c.setCause(err)
		return err
	}
	c.mu.Lock()
	c.stream = stream
	c.mu.Unlock()

	p := &publish{c: c, ended: make(chan struct{}),
		info: Publish{Stream: stream, KeyGen: grant.KeyGen, RemoteAddr: c.nc.RemoteAddr(), Started: time.Now(),
			stop: func() { c.kill(ErrKicked) }}}
	if old := c.srv.claim(p); old != nil {
		c.log.Info("rtmp: publish takes over the stream", "stream", stream, "old_publish", old.info.ID)
		old.c.kill(ErrTakenOver)
		t := time.NewTimer(takeoverWait)
		select {
		case <-old.ended:
		case <-t.C:
			c.log.Warn("rtmp: previous publish did not end in time", "stream", stream, "old_publish", old.info.ID)
		case <-c.ctx.Done():
		}
		t.Stop()
	}
	if err := c.ctx.Err(); err != nil {
		p.end(err)
		return fmt.Errorf("publish: %w", err)
	}
	sink, done, err := c.srv.cfg.NewSink(c.ctx, p.info)
	if err != nil {
		err = fmt.Errorf("publish: sink: %w", err)
		c.setCause(err)
		p.end(err) // releases the stream and wakes a waiting take-over
		return err // go-rtmp answers NetStream.Publish.Failed
	}
	p.sink, p.done = sink, done
	p.conv = flv.NewConverter(flv.Config{
		Sink:    sink,
		Logger:  c.log.With("stream", stream, "publish", p.info.ID),
		MaxJump: c.srv.cfg.MaxTimestampJump,
		// OBS reconnects every few seconds after a failed publish; an
		// VP9 publish that goes on audio-only, or an MP3 (or
		// Opus) one that goes on video-only, does not, and the sink tells
		// the broadcaster why (flv.UnsupportedSink). With both tracks
		// refused the publish fails (flv.ErrNothingPlayable).
		DropUnsupported: true,
	})
	c.pub = p
	c.mu.Lock()
	c.started = true
	c.mu.Unlock()
	c.g.authorize()
	c.log.Info("rtmp: publish started", "stream", stream, "publish", p.info.ID)
	return nil
}

func (h *handler) OnPlay(*rtmp.StreamContext, uint32, *message.NetStreamPlay) error {
	err := errors.New("play: this server only ingests; watch over HTTP")
	h.c.setCause(err)
	return err
}

func (h *handler) OnSetDataFrame(_ uint32, data *message.NetStreamSetDataFrame) error {
	h.metadata(data.Payload)
	return nil
}

func (h *handler) metadata(b []byte) {
	p := h.c.pub
	if p == nil {
		return
	}
	if _, err := p.conv.Metadata(b); err != nil {
		// Metadata is informative only; a bad one does not end a publish.
		h.c.log.Debug("rtmp: unreadable metadata", "err", err)
	}
}

func (h *handler) OnAudio(ts uint32, payload io.Reader) error {
	return h.media(ts, payload, false)
}

func (h *handler) OnVideo(ts uint32, payload io.Reader) error {
	return h.media(ts, payload, true)
}

func (h *handler) media(ts uint32, payload io.Reader, video bool) error {
	p := h.c.pub
	if p == nil {
		return nil
	}
	// go-rtmp reuses its buffer for the next message, and the converter
	// hands sub-slices to the sink: give each message its own copy.
	p.scratch.Reset()
	if _, err := p.scratch.ReadFrom(payload); err != nil {
		return fmt.Errorf("media: read: %w", err)
	}
	body := bytes.Clone(p.scratch.Bytes())
	var err error
	if video {
		err = p.conv.Video(ts, body)
	} else {
		err = p.conv.Audio(ts, body)
	}
	if err != nil {
		h.c.setCause(err)
		return err
	}
	return nil
}

func (h *handler) OnFCUnpublish(uint32, *message.NetStreamFCUnpublish) error {
	h.unpublish()
	return nil
}

func (h *handler) OnDeleteStream(uint32, *message.NetStreamDeleteStream) error {
	h.unpublish()
	return nil
}

// unpublish ends the publish cleanly; the peer closes the connection next.
func (h *handler) unpublish() {
	if p := h.c.pub; p != nil {
		h.c.pub = nil
		p.end(nil)
	}
}

func (h *handler) OnClose() {
	if p := h.c.pub; p != nil {
		h.c.pub = nil
		p.end(h.c.endCause())
	}
}

// captureHook records go-rtmp's error log lines (first line only: it logs
// stack traces) for our end-of-connection line.
type captureHook struct{ c *conn }

func (captureHook) Levels() []logrus.Level { return []logrus.Level{logrus.ErrorLevel} }

func (h captureHook) Fire(e *logrus.Entry) error {
	msg, _, _ := strings.Cut(e.Message, "\n")
	h.c.mu.Lock()
	h.c.libErr = truncate(msg, maxCapturedErr)
	h.c.mu.Unlock()
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
