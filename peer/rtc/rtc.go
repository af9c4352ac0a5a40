// Package rtc carries the peer engine's links over WebRTC data channels.
// Natively the PeerConnections are pion/webrtc/v4's; for GOOS=js they are
// the browser's own RTCPeerConnection through a thin syscall/js binding
// (conn_js.go), which keeps pion out of the viewer's wasm. Only data
// channels are used.
//
// One PeerConnection per neighbour pair with one data channel for pieces and
// control messages. Negotiation is driven by signaling callbacks: the
// Transport produces protocol.Signal values (offer, answer, trickled
// candidates) through Config.Signal and takes the remote side's through
// HandleSignal. By convention the peer with the lower id dials; if both dial
// at once (glare), the lower id's offer wins.
//
// Reliability: the data channel is unordered with maxRetransmits 0 by
// default (Unreliable). The choice was made by measurement; see doc.go.
package rtc

import (
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/internal/errs"
	"github.com/banyan-live/banyan/internal/guard"
	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/protocol"
)

// Reliability selects the data channel's delivery semantics.
type Reliability int

const (
	// Unreliable is unordered with maxRetransmits 0: a lost SCTP packet
	// loses its piece, which the engine's repair fetches again.
	Unreliable Reliability = iota
	// ReliableOrdered is the WebRTC default (TCP-like).
	ReliableOrdered
	// ReliableUnordered retransmits but delivers messages as they complete.
	ReliableUnordered
)

func (r Reliability) String() string {
	switch r {
	case Unreliable:
		return "unordered,maxRetransmits=0"
	case ReliableOrdered:
		return "reliable,ordered"
	case ReliableUnordered:
		return "reliable,unordered"
	}
	return "Reliability(" + strconv.Itoa(int(r)) + ")"
}

// Errors.
var (
	ErrConnectTimeout = errors.New("rtc: not connected in time")
	// ErrNoAnswer: the dialed peer did not answer the offer within
	// AnswerTimeout. It wraps ErrConnectTimeout.
	ErrNoAnswer = errs.Wrap("", ErrConnectTimeout, ": no answer to the offer")
	ErrNotOpen  = errors.New("rtc: data channel not open")
	ErrClosed   = errors.New("rtc: link closed")
)

// Config configures a Transport.
type Config struct {
	// Self is this peer's id (glare resolution).
	Self       peer.PeerID
	ICEServers []protocol.ICEServer
	// API builds PeerConnections; nil means the default (natively
	// webrtc.NewAPI(); in the browser there is nothing to choose).
	// Natively, LoopbackAPI restricts ICE to 127.0.0.1 for tests.
	API *API
	// ConnectTimeout bounds how long a link may take to open (default 5 s).
	ConnectTimeout time.Duration
	// AnswerTimeout is the least a dialer waits for the answer to its
	// offer (default 1.5 s), counted from when the offer went out. The
	// answer is one signaling round trip, while ICE through TURN may take
	// seconds: a parent that does not answer has vanished (the tracker
	// does not know yet), and its child should not wait the whole
	// ConnectTimeout on the origin. The wait grows past it with the
	// answers seen (AnswerClock): a loaded browser answers in seconds.
	AnswerTimeout time.Duration
	// HighWater is the buffered amount above which Send returns
	// peer.ErrBackpressure (default 1 MiB); sends resume once the buffer
	// drains to LowWater (default HighWater/4).
	HighWater, LowWater int
	Reliability         Reliability
	// RelayOnly restricts ICE to relayed candidates (ICE transport policy
	// "relay"): every link goes through a TURN server in ICEServers, and
	// none connects without one. It hides the peer's addresses from its
	// neighbours, and tests use it to force the TURN path. A caller that
	// builds its own API should apply RelayOnlySettings to it.
	RelayOnly bool

	// Signal sends a signal to its To peer through the tracker. It must not
	// block for long; it is called from pion's goroutines (natively)
	// or the browser binding's.
	Signal func(protocol.Signal)
	// Accept decides whether an offer from a peer we did not dial is
	// welcome (the tracker paired us); nil accepts all.
	Accept func(remote peer.PeerID) bool
	// OnOpen is called once a link's data channel is open, OnMessage for
	// every binary message (the buffer is the callee's), OnClose once when
	// a link ends (err says why: ErrConnectTimeout, ErrClosed, ...).
	OnOpen    func(*Link)
	OnMessage func(l *Link, msg []byte)
	OnClose   func(l *Link, err error)
	Logger    peer.Logger // default: none (a *slog.Logger natively)
	// Guard, when set, runs every callback (the PeerConnection's and the link timers)
	// and the link's goroutines: a panic in one fails that link with the
	// *guard.PanicError and is reported to the Guard instead of ending
	// the program. In the browser the callbacks start from JS events,
	// where a panic would kill the whole peer. nil: panics crash.
	Guard *guard.Guard
}

// Transport owns the links of one peer.
type Transport struct {
	cfg Config
	api *API
	log peer.Logger

	mu     sync.Mutex
	links  map[peer.PeerID]*Link
	closed bool
	wg     sync.WaitGroup
	// ice is what the next PeerConnection uses: Config.ICEServers until
	// SetICEServers replaces it (the tracker re-mints TURN credentials).
	ice      []protocol.ICEServer
	answers  AnswerClock
	attempts uint32 // the last Signal.Attempt this peer dialed
}

// New returns a Transport.
func New(cfg Config) (*Transport, error) {
	if cfg.Signal == nil {
		return nil, errors.New("rtc: new: Config.Signal is required")
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	if cfg.AnswerTimeout <= 0 {
		cfg.AnswerTimeout = 1500 * time.Millisecond
	}
	if cfg.HighWater <= 0 {
		cfg.HighWater = 1 << 20
	}
	if cfg.LowWater <= 0 || cfg.LowWater >= cfg.HighWater {
		cfg.LowWater = cfg.HighWater / 4
	}
	if cfg.Logger == nil {
		cfg.Logger = peer.Discard
	}
	api := cfg.API
	if api == nil {
		api = defaultAPI(cfg.RelayOnly)
	}
	return &Transport{cfg: cfg, api: api, log: cfg.Logger, links: make(map[peer.PeerID]*Link), ice: cfg.ICEServers,
		answers: NewAnswerClock(cfg.AnswerTimeout, cfg.ConnectTimeout)}, nil
}

// SetICEServers replaces the ICE servers of the links made from now on.
// TURN credentials are short-lived and the tracker sends fresh ones
// (protocol.ICE) while the session lasts; links already up keep theirs
// (a TURN allocation is refreshed on its own once made).
func (t *Transport) SetICEServers(s []protocol.ICEServer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ice = slices.Clone(s)
}

// ICEServers returns the ICE servers the next link will use.
func (t *Transport) ICEServers() []protocol.ICEServer {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.ice)
}

// Link is one PeerConnection and its data channel; it implements peer.Link.
type Link struct {
	t      *Transport
	remote peer.PeerID
	dialer bool
	pc     peerConn

	mu       sync.Mutex
	dc       dataChannel
	haveDesc bool
	cands    []candidateInit // arrived before the remote description
	// sentDesc: our offer or answer has gone out. Candidates gathered
	// before it wait in outCands: sent first, they would reach a remote
	// that has no link to us yet and be dropped.
	sentDesc  bool
	outCands  [][]byte
	attempt   uint32 // the dialer's Signal.Attempt (0: the remote's is unknown)
	offeredAt time.Time
	timer     *time.Timer
	answerT   *time.Timer // dialer: the answer to our offer is due
	opened    bool

	open      atomic.Bool
	congested atomic.Bool
	path      atomic.Value // string
	done      chan struct{}
	closeOnce sync.Once
	err       error
	openedAt  time.Time
}

// Remote is the neighbour's id.
func (l *Link) Remote() peer.PeerID { return l.remote }

// Done is closed when the link has ended; Err then says why.
func (l *Link) Done() <-chan struct{} { return l.done }

// Err is why the link ended (nil while it lives).
func (l *Link) Err() error {
	select {
	case <-l.done:
		return l.err
	default:
		return nil
	}
}

// Dial starts a link to remote: it creates the PeerConnection, the data
// channel and the offer, which goes out through Config.Signal.
func (t *Transport) Dial(remote peer.PeerID) (*Link, error) {
	t.mu.Lock()
	t.attempts++
	attempt := t.attempts
	t.mu.Unlock()
	l, err := t.newLink(remote, true, attempt)
	if err != nil {
		return nil, err
	}
	dc, err := l.pc.createDataChannel("banyan", t.cfg.Reliability)
	if err != nil {
		l.fail(errs.Wrap("rtc: dial "+remote.String()+": data channel: ", err, ""))
		return nil, l.err
	}
	l.setupDC(dc)
	offer, err := l.pc.offer()
	if err != nil {
		l.fail(errs.Wrap("rtc: dial "+remote.String()+": offer: ", err, ""))
		return nil, l.err
	}
	l.sendDesc("offer", offer)
	t.mu.Lock()
	wait := t.answers.Wait()
	t.mu.Unlock()
	if wait < t.cfg.ConnectTimeout {
		l.mu.Lock()
		l.answerT = time.AfterFunc(wait, l.guarded("answer timeout", func() {
			l.mu.Lock()
			answered := l.haveDesc
			l.mu.Unlock()
			if !answered {
				t.mu.Lock()
				t.answers.Missed()
				t.mu.Unlock()
				l.fail(ErrNoAnswer)
			}
		}))
		l.mu.Unlock()
	}
	return l, nil
}

// sendDesc signals our offer or answer, then the candidates gathered
// while it was being made.
func (l *Link) sendDesc(typ, sdp string) {
	l.mu.Lock()
	l.offeredAt = time.Now()
	l.mu.Unlock()
	l.t.cfg.Signal(protocol.Signal{To: l.remote, SDP: &protocol.SDP{Type: typ, SDP: sdp}, Attempt: l.attempt})
	l.mu.Lock()
	l.sentDesc = true
	cands := l.outCands
	l.outCands = nil
	l.mu.Unlock()
	for _, c := range cands {
		l.t.cfg.Signal(protocol.Signal{To: l.remote, Candidate: c, Attempt: l.attempt})
	}
}

func (t *Transport) newLink(remote peer.PeerID, dialer bool, attempt uint32) (*Link, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	if old := t.links[remote]; old != nil {
		t.mu.Unlock()
		return nil, errors.New("rtc: link to " + remote.String() + " exists")
	}
	l := &Link{t: t, remote: remote, dialer: dialer, attempt: attempt, done: make(chan struct{})}
	l.path.Store(initialPath)
	t.links[remote] = l
	ice := t.ice
	t.mu.Unlock()

	pc, err := newPeerConn(t.api, ice, t.cfg.RelayOnly, pcEvents{
		candidate: func(c candidateInit) {
			l.guarded("ICE candidate", func() {
				b := c.marshal()
				l.mu.Lock()
				if !l.sentDesc {
					if len(l.outCands) < 64 {
						l.outCands = append(l.outCands, b)
					}
					l.mu.Unlock()
					return
				}
				l.mu.Unlock()
				t.cfg.Signal(protocol.Signal{To: remote, Candidate: b, Attempt: l.attempt})
			})()
		},
		state: func(s connState) {
			l.guarded("connection state", func() {
				switch s {
				case stateConnected:
					l.updatePath()
				case stateFailed:
					l.fail(errors.New("rtc: link to " + remote.String() + ": ICE failed"))
				case stateClosed:
					l.fail(ErrClosed)
				}
			})()
		},
		dataChannel: func(dc dataChannel) {
			l.guarded("data channel", func() {
				if dialer || dc.label() != "banyan" {
					_ = dc.close()
					return
				}
				l.setupDC(dc)
			})()
		},
	})
	if err != nil {
		t.forget(l)
		return nil, errs.Wrap("rtc: peer connection to "+remote.String()+": ", err, "")
	}
	l.pc = pc
	l.mu.Lock()
	l.timer = time.AfterFunc(t.cfg.ConnectTimeout, l.guarded("connect timeout", func() {
		if !l.open.Load() {
			l.fail(ErrConnectTimeout)
		}
	}))
	l.mu.Unlock()
	return l, nil
}

func (l *Link) setupDC(dc dataChannel) {
	l.mu.Lock()
	l.dc = dc
	l.mu.Unlock()
	var ev dcEvents
	ev.bufferedLow = func() { l.congested.Store(false) }
	ev.open = l.guarded("open", func() {
		l.mu.Lock()
		if l.opened {
			l.mu.Unlock()
			return
		}
		l.opened = true
		if l.timer != nil {
			l.timer.Stop()
		}
		l.openedAt = time.Now()
		l.mu.Unlock()
		l.updatePath()
		l.open.Store(true)
		select {
		case <-l.done:
			return
		default:
		}
		if f := l.t.cfg.OnOpen; f != nil {
			f(l)
		}
	})
	ev.message = func(data []byte) {
		if len(data) == 0 || len(data) > chunk.MaxMessageSize {
			return // hostile or foreign: the engine never sends these
		}
		if f := l.t.cfg.OnMessage; f != nil && l.open.Load() {
			l.guarded("message", func() { f(l, data) })()
		}
	}
	ev.close = l.guarded("close", func() { l.fail(ErrClosed) })
	dc.handle(l.t.cfg.LowWater, ev)
}

// guarded wraps a callback of this link in the Transport's Guard: a panic
// in it fails the link with the panic error (the Guard has reported it).
// Without a Guard it is f itself, and a panic crashes as before.
//
//go:noinline
func (l *Link) guarded(where string, f func()) func() {
	g := l.t.cfg.Guard
	if g == nil {
		return f
	}
	return func() {
		if err := g.Run("rtc "+where, f); err != nil {
			l.fail(errs.Wrap("rtc: link to "+l.remote.String()+": ", err, ""))
		}
	}
}

// HandleSignal applies a signal from the tracker: an offer (accepted as a
// new link if Config.Accept allows), an answer, or a candidate.
func (t *Transport) HandleSignal(s protocol.Signal) error {
	remote := s.From
	if remote == 0 {
		return errors.New("rtc: signal without sender")
	}
	t.mu.Lock()
	l := t.links[remote]
	t.mu.Unlock()
	switch {
	case s.SDP != nil && s.SDP.Type == "offer":
		if f := t.cfg.Accept; f != nil && !f(remote) {
			return errors.New("rtc: offer from unpaired peer " + remote.String() + " refused")
		}
		if l != nil {
			if l.dialer && t.cfg.Self < remote {
				return nil // glare: our offer wins
			}
			// A renegotiation or the remote's restart: start afresh.
			l.fail(errors.New("rtc: link to " + remote.String() + " replaced by its offer"))
		}
		nl, err := t.newLink(remote, false, s.Attempt)
		if err != nil {
			return err
		}
		return nl.answer(s.SDP.SDP)
	case l == nil:
		return errors.New("rtc: signal from " + remote.String() + " without a link")
	case s.Attempt != 0 && l.attempt != 0 && s.Attempt != l.attempt:
		// The answer or a candidate of an attempt that already failed: it
		// must not touch this one's PeerConnection.
		return nil
	case s.SDP != nil && s.SDP.Type == "answer":
		if !l.dialer {
			return errors.New("rtc: unexpected answer from " + remote.String())
		}
		l.mu.Lock()
		took := time.Since(l.offeredAt)
		l.mu.Unlock()
		t.mu.Lock()
		t.answers.Answered(took)
		t.mu.Unlock()
		if err := l.pc.setAnswer(s.SDP.SDP); err != nil {
			l.fail(errs.Wrap("rtc: answer from "+remote.String()+": ", err, ""))
			return l.err
		}
		return l.flushCandidates()
	case len(s.Candidate) > 0:
		c, err := parseCandidate(s.Candidate)
		if err != nil {
			return errs.Wrap("rtc: candidate from "+remote.String()+": ", err, "")
		}
		l.mu.Lock()
		if !l.haveDesc {
			if len(l.cands) < 64 {
				l.cands = append(l.cands, c)
			}
			l.mu.Unlock()
			return nil
		}
		l.mu.Unlock()
		if err := l.pc.addCandidate(c); err != nil {
			return errs.Wrap("rtc: candidate from "+remote.String()+": ", err, "")
		}
		return nil
	}
	return errors.New("rtc: empty signal")
}

func (l *Link) answer(sdp string) error {
	ans, err := l.pc.acceptOffer(sdp)
	if err != nil {
		l.fail(errs.Wrap("rtc: answer "+l.remote.String()+": ", err, ""))
		return l.err
	}
	l.sendDesc("answer", ans)
	return l.flushCandidates()
}

func (l *Link) flushCandidates() error {
	l.mu.Lock()
	l.haveDesc = true
	cands := l.cands
	l.cands = nil
	l.mu.Unlock()
	for _, c := range cands {
		if err := l.pc.addCandidate(c); err != nil {
			return errs.Wrap("rtc: candidate from "+l.remote.String()+": ", err, "")
		}
	}
	return nil
}

// Send queues msg on the data channel without blocking. Over HighWater it
// fails with peer.ErrBackpressure until the buffer drains to LowWater.
func (l *Link) Send(msg []byte) error {
	if !l.open.Load() {
		select {
		case <-l.done:
			return peer.ErrLinkClosed
		default:
			return ErrNotOpen
		}
	}
	if l.congested.Load() {
		return peer.ErrBackpressure
	}
	l.mu.Lock()
	dc := l.dc
	l.mu.Unlock()
	if dc.bufferedAmount()+len(msg) > l.t.cfg.HighWater {
		l.congested.Store(true)
		// The low-water event may have fired between the read and the
		// store; re-check so the flag cannot stick.
		if dc.bufferedAmount() <= l.t.cfg.LowWater {
			l.congested.Store(false)
		}
		return peer.ErrBackpressure
	}
	if err := dc.send(msg); err != nil {
		return errs.Wrap("rtc: send to "+l.remote.String()+": ", err, "")
	}
	return nil
}

// Buffered is the data channel's buffered amount.
func (l *Link) Buffered() int {
	l.mu.Lock()
	dc := l.dc
	l.mu.Unlock()
	if dc == nil {
		return 0
	}
	return dc.bufferedAmount()
}

// Path is peer.PathDirect or peer.PathTURN, or peer.PathUnknown where
// the browser does not tell which pair ICE selected.
func (l *Link) Path() string { return l.path.Load().(string) }

// Close ends the link; OnClose is called with ErrClosed.
func (l *Link) Close() error {
	l.fail(ErrClosed)
	return nil
}

// fail ends the link once: the PeerConnection is closed on a goroutine the
// Transport waits for (pion must not be closed from its own callbacks).
// Not inlined: its closures were copied into each of its dozen callers,
// 30 KB of the viewer's wasm.
//
//go:noinline
func (l *Link) fail(err error) {
	l.closeOnce.Do(func() {
		l.err = err
		l.open.Store(false)
		l.mu.Lock()
		if l.timer != nil {
			l.timer.Stop()
		}
		if l.answerT != nil {
			l.answerT.Stop()
		}
		l.mu.Unlock()
		close(l.done)
		t := l.t
		t.forget(l)
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			_ = t.cfg.Guard.Run("rtc close", func() {
				if l.pc != nil {
					_ = l.pc.close()
				}
			})
		}()
		if !errors.Is(err, ErrClosed) {
			t.log.Debug("rtc: link ended", "remote", l.remote, "err", err)
		}
		if f := t.cfg.OnClose; f != nil {
			f(l, err)
		}
	})
}

func (t *Transport) forget(l *Link) {
	t.mu.Lock()
	if t.links[l.remote] == l {
		delete(t.links, l.remote)
	}
	t.mu.Unlock()
}

// Link returns the live link to remote, if any.
func (t *Transport) Link(remote peer.PeerID) *Link {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.links[remote]
}

// Close ends every link and waits for their PeerConnections to close.
func (t *Transport) Close() error {
	t.mu.Lock()
	t.closed = true
	links := make([]*Link, 0, len(t.links))
	for _, l := range t.links {
		links = append(links, l)
	}
	t.mu.Unlock()
	for _, l := range links {
		l.fail(ErrClosed)
	}
	t.wg.Wait()
	return nil
}

var _ peer.Link = (*Link)(nil)
