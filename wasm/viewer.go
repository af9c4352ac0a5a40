//go:build js && wasm

package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"slices"
	"sync"
	"syscall/js"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/internal/guard"
	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/peer/node"
	"github.com/banyan-live/banyan/protocol"
)

// Config is what the page tells the viewer.
type Config struct {
	Stream     string
	TrackerURL string // ws(s)://host/ws
	OriginURL  string // the page's origin, the fallback for chunks
	Token      string // viewer token of a private stream
	Client     string // user agent, for the dashboard
	// EarlyWS is the websocket to TrackerURL the page opened while the
	// wasm loaded (undefined: none); the first session adopts it.
	EarlyWS js.Value
}

// Page states, as the page shows them.
const (
	StateConnecting   = "connecting"
	StateWaiting      = "waiting"
	StateLive         = "live"
	StateBuffering    = "buffering"
	StatePaused       = "paused"
	StateReconnecting = "reconnecting"
	StateEnded        = "ended"
	StateError        = "error"
)

// viewer ties the tracker session, the peer engine and the player
// together. Each tracker session (each welcome) gets a fresh node: the
// engine takes chunks from its parents, repairs from the origin through
// the browser's fetch, and plays through the MSE Player.
type viewer struct {
	cfg     Config
	log     peer.Logger
	player  *Player
	origin  *originClient
	tracker *trackerClient
	// guard runs every goroutine and callback of the viewer; a panic it
	// recovers restarts the whole peer (see main).
	guard *guard.Guard

	mu       sync.Mutex
	pub      ed25519.PublicKey
	ring     *chunk.Keyring
	peer     protocol.PeerID
	welcomed chan struct{} // closed at the first welcome
	wOnce    sync.Once
	live     bool   // per the tracker: a broadcaster is on
	isEnded  bool   // the tracker said the broadcast ended
	refusal  string // the tracker's last refusal, cleared by a welcome
	fatal    string // playback cannot go on

	node       *node.Node // the current session's, nil before a welcome
	played     uint64     // engine's played count at the last look
	lastPlayAt time.Time  // when it last grew
	stall      stallWatch // why playback stands still (stall.go)
	// proofKey signs delivery statements for children (peer/proof.go).
	proofKey ed25519.PrivateKey
	phases   *phases
}

func newViewer(cfg Config, player *Player, log peer.Logger, g *guard.Guard, ph *phases) *viewer {
	v := &viewer{cfg: cfg, log: log, player: player, guard: g, welcomed: make(chan struct{}), phases: ph}
	v.origin = newOriginClient(cfg.Stream, cfg.OriginURL)
	v.origin.phases = ph
	// The key the engine signs delivery statements with (peer/proof.go);
	// the tracker learns its public half with the join.
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	proofKey := ""
	if err == nil {
		proofKey, v.proofKey = protocol.EncodeProofKey(pub), priv
	}
	v.tracker = &trackerClient{
		url: cfg.TrackerURL,
		join: protocol.Join{
			Stream: cfg.Stream, Token: cfg.Token, Kind: protocol.KindBrowser,
			Client: truncate(cfg.Client, 200), ProofKey: proofKey,
			// A browser without WebRTC cannot relay: as a leaf it is
			// never made anyone's parent (whose children would wait on
			// links that cannot open); its own parents' links fail and
			// the engine takes chunks from the origin.
			NoUpload: !hasWebRTC(),
		},
		h:      v,
		log:    log,
		guard:  g,
		phases: ph,
		early:  cfg.EarlyWS,
	}
	v.tracker.onMessage = v.onTrackerMessage
	v.tracker.nodeStats = true
	return v
}

// onTrackerMessage hands every tracker message to the session's node; a
// welcome starts a new node (a new session has a new peer id).
func (v *viewer) onTrackerMessage(m protocol.Message) {
	if _, ok := m.(protocol.Welcome); ok {
		n, err := node.New(node.Config{
			Stream: v.cfg.Stream,
			Send: func(m protocol.Message) {
				if err := v.tracker.send(m); err != nil {
					v.log.Debug("to tracker", "type", m.Type(), "err", err)
				}
			},
			OriginFor: func(string) peer.Origin { return engineOrigin{v.origin, v.guard} },
			Player:    v.player,
			ProofKey:  v.proofKey,
			Decorate:  v.decorate,
			Logger:    v.log,
			Guard:     v.guard,
		})
		if err != nil {
			v.fail(err)
			return
		}
		v.mu.Lock()
		old := v.node
		v.node = n
		v.mu.Unlock()
		if old != nil {
			old.Close()
		}
	}
	v.mu.Lock()
	n := v.node
	v.mu.Unlock()
	if n == nil {
		return
	}
	v.handle(n, m)
}

// handle gives m to the session's node. An offer's answer is made here,
// on the tracker's goroutine (the browser's RTCPeerConnection,
// descriptions, answer): the join timeline has the first one's span.
func (v *viewer) handle(n *node.Node, m protocol.Message) {
	offer := false
	if s, ok := m.(protocol.Signal); ok && s.SDP != nil && s.SDP.Type == "offer" {
		offer = true
		v.phases.mark("offerIn")
	}
	n.Handle(m)
	if offer {
		v.phases.mark("answered")
	}
}

// notePhases adds the node's and the engine's steps of the join to the
// timeline; they keep their own times, so a late look loses nothing.
func (v *viewer) notePhases() {
	v.mu.Lock()
	n := v.node
	v.mu.Unlock()
	if n == nil {
		return
	}
	t := n.Times()
	v.phases.markAt("parentAssigned", t.ParentAssigned)
	v.phases.markAt("parentOpen", t.ParentOpen)
	v.phases.markAt("dialStart", t.DialStart)
	v.phases.markAt("dialEnd", t.DialEnd)
	eng := n.Engine()
	if eng == nil {
		return
	}
	c := eng.Counters()
	v.phases.markAt("firstPiece", c.FirstPieceAt)
	v.phases.markAt("originLive", c.OriginLiveAt)
	first := "firstChunkPeer"
	if c.FirstFromOrigin {
		first = "firstChunkOrigin"
	}
	v.phases.markAt(first, c.FirstChunkAt)
	v.phases.markAt("playStart", c.StartedAt)
}

// decorate adds the player's view to the engine's stats report.
func (v *viewer) decorate(st *protocol.Stats) {
	ps := v.player.Stats()
	st.BufferMS = max(0, ps.BufferMS)
	st.BehindLiveMS = max(0, ps.BehindMS)
	st.Stalls, st.StalledMS = ps.Stalls, ps.StalledMS
}

// tick drives the current node's timers.
func (v *viewer) tick(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			v.mu.Lock()
			n := v.node
			v.node = nil
			v.mu.Unlock()
			if n != nil {
				n.Close()
			}
			return
		case now := <-t.C:
			v.mu.Lock()
			n := v.node
			v.stall.noteTick(now)
			v.mu.Unlock()
			if n != nil {
				n.Tick(now)
			}
		}
	}
}

// source is what the engine knows of the broadcast, for the page state.
func (v *viewer) source() (sourceState, string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.isEnded {
		return sourceEnded, ""
	}
	if v.node == nil {
		return sourceUnknown, ""
	}
	eng := v.node.Engine()
	if eng == nil {
		return sourceWaiting, ""
	}
	c := eng.Counters()
	now := time.Now()
	if c.Played != v.played {
		v.played, v.lastPlayAt = c.Played, now
	}
	if c.Undecryptable > 0 && c.Played == 0 {
		return sourceKeyError, "no content key opens the stream"
	}
	switch {
	case !v.live:
		// Off air (not yet, or the broadcaster went away): playing out
		// the buffer is not a stall.
		return sourceWaiting, ""
	case !v.lastPlayAt.IsZero() && now.Sub(v.lastPlayAt) < 3*time.Second:
		return sourceFlowing, ""
	case v.lastPlayAt.IsZero():
		return sourceUnknown, "" // live, first chunks on their way
	}
	return v.stall.stalledLocked(now, v.node, eng)
}

// meshStats is what the page's stats panel shows of the mesh: bytes by
// sender (protocol.Sources, the definition the dashboard and /metrics
// use); paths has each peer parent's path ("direct", "turn", "unknown"
// where the browser does not tell, "connecting").
func (v *viewer) meshStats() (src protocol.Sources, parents, children int, paths []string) {
	v.mu.Lock()
	n := v.node
	v.mu.Unlock()
	if n == nil {
		return protocol.Sources{Origin: v.origin.bytes.Load()}, 0, 0, nil
	}
	st := n.LastStats()
	for _, p := range st.Parents {
		if p.Parent != 0 {
			parents++
			paths = append(paths, p.Path)
		}
	}
	return protocol.SourcesOf(st), parents, st.Children, paths
}

// depth is the viewer's deepest position in the stripe trees (1: a child
// of the seeder's root peer; 0 when origin-fed everywhere or not joined),
// for the stats panel and the glass-to-glass measurement.
func (v *viewer) depth() int {
	v.mu.Lock()
	n := v.node
	v.mu.Unlock()
	if n == nil {
		return 0
	}
	return slices.Max(append(n.Depths(), 0))
}

// playout is the engine's adaptive playout delay (0 before a session).
func (v *viewer) playout() time.Duration {
	v.mu.Lock()
	n := v.node
	v.mu.Unlock()
	if n == nil {
		return 0
	}
	return time.Duration(n.LastStats().PlayoutMS) * time.Millisecond
}

// hasWebRTC reports whether the browser has RTCPeerConnection: WebKitGTK
// as Debian builds it (no ENABLE_WEB_RTC) has none, nor has a browser with
// WebRTC turned off.
func hasWebRTC() bool {
	return js.Global().Get("RTCPeerConnection").Type() == js.TypeFunction
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// run plays until ctx ends.
func (v *viewer) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(2)
	v.guard.Go("tracker", func() {
		defer wg.Done()
		v.tracker.run(ctx)
	})
	v.guard.Go("tick", func() {
		defer wg.Done()
		v.tick(ctx)
	})
	<-ctx.Done()
}

// keys implements keySource for the origin loop.
func (v *viewer) keys() (ed25519.PublicKey, *chunk.Keyring) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.pub, v.ring
}

// welcome implements trackerHandler.
func (v *viewer) welcome(w protocol.Welcome) error {
	pub, err := parsePublicKey(w.PublicKey)
	if err != nil && w.PublicKey != "" {
		return err
	}
	ring, err := keyringOf(w.Keys)
	if err != nil {
		return err
	}
	v.mu.Lock()
	if pub != nil {
		v.pub = pub
	}
	v.ring, v.peer, v.live, v.isEnded, v.refusal = ring, w.Peer, w.Live, false, ""
	v.mu.Unlock()
	v.setOrigin(w.OriginURL)
	v.phases.mark("welcome")
	v.wOnce.Do(func() { close(v.welcomed) })
	v.log.Info("welcomed", "peer", w.Peer, "live", w.Live, "epoch", w.Epoch, "keys", len(w.Keys), "origin", w.OriginURL)
	return nil
}

// setOrigin prefers the tracker's origin URL and keeps the page's own as
// the fallback.
func (v *viewer) setOrigin(u string) {
	if u == "" {
		return
	}
	v.origin.setBases([]string{u, v.cfg.OriginURL})
}

// keysMsg implements trackerHandler: rotation or a seeder (re)registering.
func (v *viewer) keysMsg(k protocol.Keys) error {
	var pub ed25519.PublicKey
	if k.PublicKey != "" {
		p, err := parsePublicKey(k.PublicKey)
		if err != nil {
			return err
		}
		pub = p
	}
	var ring *chunk.Keyring
	if len(k.Keys) > 0 {
		r, err := keyringOf(k.Keys)
		if err != nil {
			return err
		}
		ring = r
	}
	v.mu.Lock()
	if pub != nil {
		v.pub = pub
	}
	if ring != nil {
		v.ring = ring
	}
	v.live = k.Live
	if k.Live {
		v.isEnded = false
	}
	v.mu.Unlock()
	v.setOrigin(k.OriginURL)
	return nil
}

func (v *viewer) ended() {
	v.mu.Lock()
	v.isEnded, v.live = true, false
	v.mu.Unlock()
}

func (v *viewer) refused(e protocol.Error, fatal bool) {
	v.log.Warn("tracker refused", "code", e.Code, "message", e.Message, "fatal", fatal)
	v.mu.Lock()
	v.refusal = refusalText(e)
	v.mu.Unlock()
}

// refusalText words a tracker refusal for a viewer.
func refusalText(e protocol.Error) string {
	switch e.Code {
	case protocol.CodeUnauthorized:
		return "this stream is private: a viewer token is needed"
	case protocol.CodeNoStream:
		return "there is no stream with this name"
	case protocol.CodeFull:
		return "this stream is full right now"
	case protocol.CodeEvicted:
		return "this viewer was removed from the stream"
	}
	if e.Message != "" {
		return e.Message
	}
	return e.Code
}

// fail records an error that stops playback (from the player).
func (v *viewer) fail(err error) {
	v.mu.Lock()
	if v.fatal == "" {
		v.fatal = err.Error()
	}
	v.mu.Unlock()
}

// stats implements trackerHandler.
func (v *viewer) stats() protocol.Stats {
	ps := v.player.Stats()
	return protocol.Stats{
		BytesOrigin:  v.origin.bytes.Load(),
		BufferMS:     max(0, ps.BufferMS),
		BehindLiveMS: max(0, ps.BehindMS),
		Stalls:       ps.Stalls,
		StalledMS:    ps.StalledMS,
		Epoch:        ps.Epoch,
		LastSeq:      ps.Seq,
	}
}

// state works out what the page shows.
func (v *viewer) state() (state, reason string) {
	v.mu.Lock()
	fatal, refusal, ended, live := v.fatal, v.refusal, v.isEnded, v.live
	v.mu.Unlock()
	ps := v.player.Stats()
	src, srcErr := v.source()
	ts := v.tracker.State()
	// Media is expected while chunks flow and nobody said the broadcast
	// ended: only then does standing still count as a stall.
	v.player.SetLive(src == sourceFlowing && !ended)
	switch {
	case fatal != "":
		return StateError, fatal
	case refusal != "" && ts != trackerConnected:
		// Fatal refusals stop the tracker client; the others (no such
		// stream yet) are retried and clear with the next welcome.
		return StateError, refusal
	case ps.Playing && !ps.Stalled:
		return StateLive, ""
	case ps.Paused && !ps.Blocked:
		return StatePaused, ""
	case ended || src == sourceEnded:
		return StateEnded, ""
	case ts == trackerConnecting:
		return StateConnecting, ""
	case src == sourceKeyError:
		return StateError, "cannot open the stream: " + srcErr
	case ts == trackerReconnecting && !ps.Playing:
		return StateReconnecting, "lost the connection to the tracker"
	case src == sourceFailing:
		return StateReconnecting, srcErr
	case src == sourceLate:
		return StateBuffering, srcErr
	case src == sourceWaiting || (!live && !ps.Started):
		return StateWaiting, ""
	case ps.Started && ps.Stalled:
		v.mu.Lock()
		why := v.stall.starvedLocked()
		v.mu.Unlock()
		return StateBuffering, why
	case ps.Blocked:
		return StatePaused, "autoplay was blocked"
	}
	return StateConnecting, ""
}
