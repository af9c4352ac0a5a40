package tracker

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/banyan-live/banyan/internal/ipkey"
	"github.com/banyan-live/banyan/protocol"
)

// sendQueue bounds what a tracker buffers for one slow websocket; a peer
// that cannot take its signaling in time is disconnected.
const sendQueue = 256

// session is one websocket: a viewer or a seeder.
type session struct {
	t      *Tracker
	id     protocol.PeerID
	conn   *websocket.Conn
	remote string
	out    chan []byte
	ctx    context.Context
	cancel context.CancelFunc
	seen   atomic.Int64 // unix nanoseconds of the last message
	lim    *rate.Limiter

	closeOnce sync.Once
	reason    atomic.Value // string: why the tracker closed it

	// Set at join; guarded by the stream's mutex afterwards.
	st       *streamState
	isSeeder bool
	kind     protocol.ClientKind
	engine   string // client group for the dashboard (experience.go)
	joinMS   int32  // join to the first report with media, 0 until then
	joined   time.Time
	capacity int
	noUpload bool // declared it will not upload: capacity stays 0
	stats    protocol.Stats
	strikes  int
	badMsgs  int
	// proofKey is the peer's own key (Join.ProofKey), which its delivery
	// statements are signed with; nil if it sent none. evicted: a proof
	// of forgery already evicted it.
	proofKey ed25519.PublicKey
	evicted  bool
	// complaints[child] is when that child last reported this peer silent
	// or flooding; demotedUntil blocks capacity raises after one.
	complaints   map[protocol.PeerID]time.Time
	demotedUntil time.Time
	// reportMoves budgets the moves this peer's own reports buy it
	// (ReportMoveBurst); nil until its first report.
	reportMoves *rate.Limiter

	iceTimer atomic.Pointer[time.Timer] // next protocol.ICE (refreshICE)

	// ipKey is the slot of Config.MaxConnsPerIP this session holds while
	// ipHeld; an authenticated seeder gives it back (releaseIPSlot).
	ipKey  ipkey.Key
	ipHeld atomic.Bool
	// ipLoop: the client is this machine (ipKey is then no one's own).
	ipLoop bool
}

// releaseIPSlot gives back the session's slot of MaxConnsPerIP, once.
func (s *session) releaseIPSlot() {
	if s.ipHeld.CompareAndSwap(true, false) {
		s.t.ipConns.Release(s.ipKey)
	}
}

// refreshICE sends the viewer fresh ICE servers every Config.ICERefresh
// while its session lives. A timer rather than a goroutine: a tracker
// holds up to 100 000 viewers per stream.
func (s *session) refreshICE() {
	d, mint := s.t.cfg.ICERefresh, s.t.cfg.ICEServers
	if d <= 0 || mint == nil {
		return
	}
	var tick func()
	tick = func() {
		if s.ctx.Err() != nil {
			return // ended: stopICE may have run already; do not re-arm
		}
		s.send(protocol.ICE{ICEServers: mint(s.id)})
		s.iceTimer.Store(time.AfterFunc(d, tick))
	}
	s.iceTimer.Store(time.AfterFunc(d, tick))
}

// stopICE stops the refresh; a tick racing it finds the context done.
func (s *session) stopICE() {
	if t := s.iceTimer.Load(); t != nil {
		t.Stop()
	}
}

func (s *session) touch()              { s.seen.Store(s.t.cfg.Now().UnixNano()) }
func (s *session) lastSeen() time.Time { return time.Unix(0, s.seen.Load()) }

// send queues m; a full queue closes the session rather than block the
// tracker on one peer.
func (s *session) send(m protocol.Message) {
	b, err := protocol.Encode(m)
	if err != nil {
		s.t.log.Error("encode signaling message", "type", m.Type(), "err", err)
		return
	}
	select {
	case s.out <- b:
		s.t.metrics.msgsOut.WithLabelValues(m.Type()).Inc()
	case <-s.ctx.Done():
	default:
		s.close("too slow to read signaling")
	}
}

// close ends the session; its handler then leaves the overlay.
func (s *session) close(reason string) {
	s.closeOnce.Do(func() {
		s.reason.CompareAndSwap(nil, reason)
		s.cancel()
	})
}

// closeAfterFlush closes the session once what is queued so far has been
// written, so a refusal or eviction reaches the peer before the close.
func (s *session) closeAfterFlush(reason string) {
	s.reason.CompareAndSwap(nil, reason)
	select {
	case s.out <- nil: // the writer's cue
	default:
		s.close(reason)
	}
}

// evict tells the peer why and closes it. It does not block.
func (s *session) evict(reason string) {
	s.t.metrics.evictions.Inc()
	s.send(protocol.Error{Code: protocol.CodeEvicted, Message: reason})
	s.closeAfterFlush("evicted: " + reason)
}

// ServeHTTP is the /ws endpoint.
func (t *Tracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ip := remoteIP(r)
	// Counted by ipkey: an IPv6 client is its /64, not one address of it.
	key, loopback := ipkey.Of(r.RemoteAddr)
	if !t.ipConns.Acquire(key, loopback) {
		t.metrics.refused.WithLabelValues("conns_per_ip").Inc()
		http.Error(w, "too many connections from your address", http.StatusTooManyRequests)
		return
	}
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		// Any page may embed the player: /ws uses no cookies or ambient
		// credentials, so cross-origin use grants nothing.
		InsecureSkipVerify: true,
	})
	if err != nil {
		t.ipConns.Release(key)
		return
	}
	conn.SetReadLimit(protocol.MaxMessage)
	ctx, cancel := context.WithCancel(t.ctx)
	s := &session{
		t: t, id: protocol.PeerID(t.nextID.Add(1)), conn: conn, remote: ip,
		out: make(chan []byte, sendQueue), ctx: ctx, cancel: cancel,
		lim:   rate.NewLimiter(rate.Limit(t.cfg.MsgRate), t.cfg.MsgBurst),
		ipKey: key, ipLoop: loopback,
	}
	s.ipHeld.Store(true)
	defer s.releaseIPSlot()
	s.touch()
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); s.writeLoop() }()
	err = s.readLoop()
	// Flush what is queued (a refusal, say), then stop the writer.
	s.closeAfterFlush(closeReason(err))
	select {
	case <-writerDone:
	case <-time.After(time.Second):
	}
	s.close(closeReason(err))
	<-writerDone
	s.stopICE()
	t.viewers.Delete(s.id)
	if s.st != nil {
		s.st.leave(s)
	}
	reason, _ := s.reason.Load().(string)
	status := websocket.StatusNormalClosure
	if reason != "" && reason != "left" && reason != "connection closed" {
		status = websocket.StatusPolicyViolation
	}
	conn.Close(status, truncate(reason, 120))
}

func closeReason(err error) string {
	var pe protocolError
	switch {
	case err == nil, errors.Is(err, errLeft):
		return "left"
	case errors.As(err, &pe):
		return pe.msg
	default:
		return "connection closed"
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// protocolError ends a session for a protocol violation.
type protocolError struct{ msg string }

func (e protocolError) Error() string { return e.msg }

func (s *session) writeLoop() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case b := <-s.out:
			if b == nil {
				s.close("")
				return
			}
			ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			err := s.conn.Write(ctx, websocket.MessageText, b)
			cancel()
			if err != nil {
				s.close("write failed")
				return
			}
		}
	}
}

func (s *session) readLoop() error {
	t := s.t
	first := true
	for {
		ctx := s.ctx
		var cancel context.CancelFunc = func() {}
		if first {
			ctx, cancel = context.WithTimeout(s.ctx, t.cfg.JoinTimeout)
		}
		typ, data, err := s.conn.Read(ctx)
		cancel()
		if err != nil {
			if first && errors.Is(err, context.DeadlineExceeded) {
				return protocolError{"no join within " + t.cfg.JoinTimeout.String()}
			}
			return err
		}
		s.touch()
		if !s.lim.Allow() {
			t.metrics.refused.WithLabelValues("rate").Inc()
			s.send(protocol.Error{Code: protocol.CodeRateLimited, Message: "too many messages"})
			s.badMsgs++
			if s.badMsgs > 20 {
				return protocolError{"message flood"}
			}
			continue
		}
		if typ != websocket.MessageText {
			return protocolError{"binary message on the signaling socket"}
		}
		m, err := protocol.Decode(data)
		if err != nil {
			t.metrics.msgsIn.WithLabelValues("invalid").Inc()
			if s.badMsgs == 0 {
				t.log.Info("bad signaling message", "peer", s.id, "remote", s.remote, "err", err)
			}
			s.badMsgs++
			s.send(protocol.Error{Code: protocol.CodeBadMessage, Message: truncate(err.Error(), 200)})
			if first || s.badMsgs > 20 {
				return protocolError{"bad message"}
			}
			continue
		}
		t.metrics.msgsIn.WithLabelValues(m.Type()).Inc()
		if first {
			first = false
			if err := s.handleFirst(m); err != nil {
				return err
			}
			continue
		}
		if err := s.handle(m); err != nil {
			return err
		}
	}
}

// refuse answers with an error; the caller ends the session, after the
// error has been flushed.
func (s *session) refuse(code, msg string) error {
	s.t.metrics.refused.WithLabelValues(code).Inc()
	s.send(protocol.Error{Code: code, Message: msg})
	return protocolError{msg}
}

func (s *session) handleFirst(m protocol.Message) error {
	t := s.t
	switch m := m.(type) {
	case protocol.Join:
		if t.cfg.Access != nil {
			if err := t.cfg.Access.Admit(m.Stream, m.Token); err != nil {
				if errors.Is(err, ErrNoStream) {
					return s.refuse(protocol.CodeNoStream, "no stream "+m.Stream)
				}
				return s.refuse(protocol.CodeUnauthorized, "viewer token required or invalid")
			}
		}
		if err := s.routeToOwner(m.Stream); err != nil {
			return err
		}
		st, err := t.stream(m.Stream)
		if err != nil {
			return s.refuse(protocol.CodeInternal, "tracker closing")
		}
		s.kind, s.engine = m.Kind, clientEngine(m.Kind, m.Client)
		if err := st.join(s, m); err != nil {
			if errors.Is(err, errFull) {
				return s.refuse(protocol.CodeFull, "stream is full")
			}
			return s.refuse(protocol.CodeInternal, "join failed")
		}
		return nil
	case protocol.SeederHello:
		if err := t.checkSeederHello(m); err != nil {
			t.log.Warn("seeder refused", "stream", m.Stream, "seeder", m.SeederID, "remote", s.remote, "err", err)
			return s.refuse(protocol.CodeUnauthorized, "seeder authentication failed")
		}
		if err := s.routeToOwner(m.Stream); err != nil {
			return err
		}
		st, err := t.stream(m.Stream)
		if err != nil {
			return s.refuse(protocol.CodeInternal, "tracker closing")
		}
		s.isSeeder = true
		t.learnIngest(m)
		if err := st.registerSeeder(s, m); err != nil {
			return s.refuse(protocol.CodeBadMessage, err.Error())
		}
		s.releaseIPSlot() // a seeder carries many streams: no per-address cap
		t.log.Info("seeder registered", "stream", m.Stream, "seeder", m.SeederID, "peer", s.id, "origin", m.OriginURL, "epoch", m.Epoch)
		return nil
	}
	return s.refuse(protocol.CodeBadMessage, "first message must be join or seeder_hello")
}

// routeToOwner sends the client to the tracker that owns stream
// (Config.Owner) and ends the session; nil when this tracker owns it.
func (s *session) routeToOwner(stream string) error {
	if s.t.cfg.Owner == nil {
		return nil
	}
	url, err := s.t.cfg.Owner(stream)
	if err != nil {
		s.t.log.Warn("stream owner", "stream", stream, "err", err)
		return s.refuse(protocol.CodeInternal, "stream owner unknown, try again")
	}
	if url == "" {
		return nil
	}
	s.t.metrics.refused.WithLabelValues("moved").Inc()
	s.send(protocol.Moved{URL: url})
	return protocolError{"moved to " + url}
}

func (s *session) handle(m protocol.Message) error {
	st := s.st
	switch m := m.(type) {
	case protocol.Signal:
		if err := st.relay(s, m); err != nil {
			s.t.metrics.refused.WithLabelValues("not_paired").Inc()
			s.send(protocol.Error{Code: protocol.CodeNotPaired, Message: err.Error()})
		}
	case protocol.Stats:
		st.stats(s, m)
	case protocol.Report:
		st.report(s, m)
	case protocol.Keys:
		if !s.isSeeder {
			return protocolError{"keys from a viewer"}
		}
		st.updateFromSeeder(m)
	case protocol.Leave:
		return errLeft
	default:
		s.send(protocol.Error{Code: protocol.CodeBadMessage, Message: "unexpected " + m.Type()})
	}
	return nil
}

var errLeft = errors.New("left")

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// ErrNoStream is returned by an Access for an unknown stream.
var ErrNoStream = errors.New("no such stream")
