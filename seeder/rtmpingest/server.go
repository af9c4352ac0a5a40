// Package rtmpingest accepts RTMP publishes (OBS, ffmpeg) at
// rtmp://HOST/live/<stream key>, checks the key before any media is
// accepted, and turns the FLV audio/video messages into media.Sink calls.
//
// Protocol handling is github.com/yutopp/go-rtmp; a guard in front of it
// (see guard.go) bounds what a hostile peer can make it do. Each
// connection is served by one goroutine that the Server owns: Close (or
// cancelling Serve's context) ends them all and waits for them.
package rtmpingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	rtmp "github.com/yutopp/go-rtmp"

	"github.com/banyan-live/banyan/internal/ipkey"
	"github.com/banyan-live/banyan/media"
)

// App is the only RTMP application name accepted: rtmp://HOST/live/<key>.
const App = "live"

// Errors passed to a publish's done callback (and logged) when the server
// ends it.
var (
	ErrKicked       = errors.New("rtmpingest: publish ended by the server")
	ErrTakenOver    = errors.New("rtmpingest: a newer publish took over the stream")
	ErrServerClosed = errors.New("rtmpingest: server closed")
	ErrUnauthorized = errors.New("rtmpingest: stream key refused")
)

// Defaults of Config.
const (
	DefaultAddr             = ":1935"
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultIdleTimeout      = 30 * time.Second
	DefaultMaxConns         = 1024
	DefaultMaxConnsPerIP    = 8
	DefaultMaxChunkSize     = 1 << 20
	DefaultMaxMessageSize   = 8 << 20
)

// Grant is what a stream key check established.
type Grant struct {
	// Stream is the stream the key belongs to.
	Stream string
	// KeyGen is the key generation the key was checked at. A take-over
	// waits up to 5 s after the check, so NewSink must re-check it (the
	// seeder does, in StartPublish) before media is accepted.
	KeyGen uint64
}

// Publish describes an accepted publish.
type Publish struct {
	Stream     string   // what Authorize returned for the key
	KeyGen     uint64   // the key generation Authorize returned
	ID         uint64   // unique and increasing within a Server
	RemoteAddr net.Addr // the publisher
	Started    time.Time

	stop func()
}

// Stop ends this publish, and only this one (unlike Server.Kick, which
// ends whichever publish holds the stream): its connection is closed and
// done gets ErrKicked. It may be called from any goroutine, more than once.
func (p Publish) Stop() {
	if p.stop != nil {
		p.stop()
	}
}

// Config configures a Server.
type Config struct {
	// Addr to listen on; DefaultAddr when empty. "127.0.0.1:0" picks a
	// free port (see Server.Addr).
	Addr string
	// Authorize maps a stream key to its Grant, or refuses it. It is
	// called on publish, before any media is accepted; ctx ends with the
	// handshake deadline. Required.
	Authorize func(ctx context.Context, key string) (Grant, error)
	// NewSink is called once the key is accepted. The sink receives every
	// call of this publish from one goroutine; done (may be nil) is called
	// once when the publish ends, with nil for a clean unpublish or the
	// cause (ErrKicked, ErrTakenOver, ErrServerClosed, a protocol or sink
	// error). ctx is cancelled when the connection ends. An error refuses
	// the publish. Required.
	NewSink func(ctx context.Context, p Publish) (sink media.Sink, done func(error), err error)
	Logger  *slog.Logger
	// HandshakeTimeout bounds everything before media flows: the RTMP
	// handshake, connect, createStream, publish and Authorize.
	HandshakeTimeout time.Duration
	// IdleTimeout ends a publish that sends nothing for this long; it also
	// bounds each write to the peer.
	IdleTimeout   time.Duration
	MaxConns      int
	MaxConnsPerIP int
	// MaxChunkSize is the largest chunk size a peer may set; a larger one
	// closes the connection.
	MaxChunkSize uint32
	// MaxMessageSize bounds one audio/video message (a keyframe).
	MaxMessageSize uint32
	// MaxTimestampJump is passed to flv.Config.MaxJump.
	MaxTimestampJump time.Duration
	// TLS, when set, makes this an RTMPS server: every connection is TLS
	// first, its handshake within HandshakeTimeout like the rest.
	TLS *tls.Config
}

// Server is an RTMP ingest server.
type Server struct {
	cfg Config
	log *slog.Logger
	rs  *rtmp.Server
	cl  *chanListener

	baseCtx    context.Context
	baseCancel context.CancelFunc

	mu       sync.Mutex
	ln       net.Listener
	conns    map[*conn]struct{}
	perIP    *ipkey.Counter // connections per client address (IPv6 by /64)
	pubs     map[string]*publish
	nextID   uint64
	nextPub  uint64
	serving  bool
	closing  bool
	rejected int       // refusals not yet logged
	lastRej  time.Time // last refusal log line

	wg        sync.WaitGroup // connections
	closeOnce sync.Once
	serveDone chan struct{}
}

// New validates cfg and returns a Server that is not yet listening.
func New(cfg Config) (*Server, error) {
	if cfg.Authorize == nil || cfg.NewSink == nil {
		return nil, errors.New("rtmpingest: Config.Authorize and Config.NewSink are required")
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxConnsPerIP <= 0 {
		cfg.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if cfg.MaxChunkSize == 0 {
		cfg.MaxChunkSize = DefaultMaxChunkSize
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.MaxMessageSize > 0xffffff {
		cfg.MaxMessageSize = 0xffffff // the RTMP length field is 24 bits
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		conns:     make(map[*conn]struct{}),
		perIP:     ipkey.NewCounter(cfg.MaxConnsPerIP, false),
		pubs:      make(map[string]*publish),
		serveDone: make(chan struct{}),
	}
	s.baseCtx, s.baseCancel = context.WithCancel(context.Background())
	s.cl = newChanListener()
	s.rs = rtmp.NewServer(&rtmp.ServerConfig{OnConnect: s.onConnect})
	return s, nil
}

// Listen binds Config.Addr. Serve calls it when it has not been called.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return ErrServerClosed
	}
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("rtmpingest: listen %s: %w", s.cfg.Addr, err)
	}
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	s.ln = ln
	s.cl.addr = ln.Addr()
	return nil
}

// Addr is the bound address, or nil before Listen.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve accepts connections until ctx is cancelled or Close is called,
// then ends every connection and waits for them. It returns nil on such a
// shutdown and an error if listening fails.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.serving {
		s.mu.Unlock()
		return errors.New("rtmpingest: Serve called twice")
	}
	s.serving = true
	ln := s.ln
	s.mu.Unlock()
	defer close(s.serveDone)

	rtmpDone := make(chan struct{})
	go func() {
		defer close(rtmpDone)
		_ = s.rs.Serve(s.cl) // returns once s.cl is closed
	}()
	stop := context.AfterFunc(ctx, s.shutdown)
	defer stop()

	s.log.Info("rtmp: listening", "addr", ln.Addr().String(), "app", App, "tls", s.cfg.TLS != nil)
	err := s.acceptLoop(ln)
	s.shutdown()
	<-rtmpDone
	s.wg.Wait()
	return err
}

// Close stops the server, ends every connection (their publishes end with
// ErrServerClosed) and waits for their goroutines.
func (s *Server) Close() error {
	s.shutdown()
	s.mu.Lock()
	serving := s.serving
	s.mu.Unlock()
	if serving {
		<-s.serveDone
	}
	s.wg.Wait()
	return nil
}

// Kick ends the live publish of stream (for example because its key was
// revoked). The publish's done callback gets ErrKicked. It reports whether
// a publish was live.
func (s *Server) Kick(stream string) bool {
	s.mu.Lock()
	p := s.pubs[stream]
	s.mu.Unlock()
	if p == nil {
		return false
	}
	p.c.kill(ErrKicked)
	return true
}

// Live returns the streams being published.
func (s *Server) Live() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.pubs))
	for name := range s.pubs {
		out = append(out, name)
	}
	return out
}

func (s *Server) shutdown() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		ln := s.ln
		conns := make([]*conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		s.baseCancel()
		if ln != nil {
			_ = ln.Close()
		}
		_ = s.cl.Close()
		_ = s.rs.Close()
		for _, c := range conns {
			c.kill(ErrServerClosed)
		}
	})
}

func (s *Server) acceptLoop(ln net.Listener) error {
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("rtmpingest: accept: %w", err)
			}
			// Transient (EMFILE, ECONNABORTED…): back off like net/http.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("rtmp: accept failed, retrying", "err", err, "in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.baseCtx.Done():
				t.Stop()
			}
			continue
		}
		backoff = 0
		s.handle(nc)
	}
}

func (s *Server) handle(nc net.Conn) {
	ip, loopback := ipkey.OfNet(nc.RemoteAddr())
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = nc.Close()
		return
	}
	var why string
	switch {
	case len(s.conns) >= s.cfg.MaxConns:
		why = "too many connections"
	case !s.perIP.Acquire(ip, loopback):
		why = "too many connections from this address"
	}
	if why != "" {
		// Log refusals at most once a second: a flood must not flood
		// the log too.
		s.rejected++
		var n int
		if time.Since(s.lastRej) >= time.Second {
			n, s.rejected, s.lastRej = s.rejected, 0, time.Now()
		}
		s.mu.Unlock()
		_ = nc.Close()
		if n > 0 {
			s.log.Warn("rtmp: connection refused", "remote", nc.RemoteAddr().String(), "reason", why, "refused", n)
		}
		return
	}
	s.nextID++
	c := newConn(s, nc, s.nextID, ip)
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()

	// Everything before the publish is accepted shares one deadline.
	_ = nc.SetDeadline(c.accepted.Add(s.cfg.HandshakeTimeout))
	if !s.cl.hand(&acceptedConn{Conn: nc, c: c}) {
		// go-rtmp is shutting down and will never serve it.
		c.kill(ErrServerClosed)
		_ = c.g.Close()
	}
}

// connDone is called once per connection, last.
func (s *Server) connDone(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.perIP.Release(c.ip)
	s.mu.Unlock()
	s.wg.Done()
}

// claim makes p the live publish of its stream and returns the one it
// replaces, if any.
func (s *Server) claim(p *publish) *publish {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextPub++
	p.info.ID = s.nextPub
	old := s.pubs[p.info.Stream]
	s.pubs[p.info.Stream] = p
	return old
}

// release forgets p if it is still the live publish of its stream.
func (s *Server) release(p *publish) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pubs[p.info.Stream] == p {
		delete(s.pubs, p.info.Stream)
	}
}

// onConnect is go-rtmp's per-connection hook, run on the connection's
// goroutine.
func (s *Server) onConnect(nc net.Conn) (io.ReadWriteCloser, *rtmp.ConnConfig) {
	ac := nc.(*acceptedConn)
	return ac.c.g, ac.c.rtmpConfig()
}

// acceptedConn carries our connection state through go-rtmp's Serve.
type acceptedConn struct {
	net.Conn
	c *conn
}

// chanListener feeds connections we accepted (and vetted) to go-rtmp's
// Serve, which has no other way in.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) hand(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
