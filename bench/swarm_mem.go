package bench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/media/cmaf"
	"github.com/banyan-live/banyan/overlay"
	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/peer/memnet"
	"github.com/banyan-live/banyan/peer/rtc"
	"github.com/banyan-live/banyan/protocol"
	"github.com/banyan-live/banyan/tracker"
)

// MemModel is the mem transport's model of the Internet, the viewers and
// the tracker. Zero fields take the defaults shown; DESIGN notes on each
// choice are in the field comments and in bench/REPORT.md.
type MemModel struct {
	// LatencyMin/LatencyMax bound a peer-to-peer link's one-way latency
	// (default 10–40 ms): peers in the same region draw from the lower
	// half, others from the upper half, once per pair. Jitter adds a
	// uniform [0, Jitter) per message (default 5 ms) without letting one
	// overtake another: peer/rtc's data channels are unordered, but
	// without retransmissions (maxRetransmits 0) nothing is delivered
	// out of the order its packets arrive in, and the packets of one
	// association share one UDP path, which rarely reorders. (Reordering
	// every message within the jitter, as this model did before, made
	// every relay forward pieces out of order.)
	LatencyMin, LatencyMax, Jitter time.Duration
	// Loss is the probability that one data channel message (a piece of
	// up to 16 KiB) is lost: the channels do not retransmit (default
	// 0.005).
	Loss float64
	// SignalMin/SignalMax bound a viewer's one-way latency to the tracker
	// (default 10–40 ms).
	SignalMin, SignalMax time.Duration
	// ConnectRTTs is how many round trips of the pair a new WebRTC link
	// takes once offer and answer have crossed the tracker: ICE check,
	// DTLS (2), SCTP (default 4). A TURN pair adds 2 more and TURNExtra
	// one-way latency (default 10 ms).
	ConnectRTTs float64
	TURNExtra   time.Duration
	// ConnectTimeout is how long a link to a vanished peer tries before
	// it fails (peer/rtc's default, 5 s); AnswerTimeout the least a new
	// link waits for the answer to its offer (peer/rtc's default, 1.5 s),
	// which a vanished peer never sends; past it each peer's wait follows
	// its rtc.AnswerClock, as its Transport's does.
	ConnectTimeout, AnswerTimeout time.Duration
	// Headroom is the share of a viewer's measured uplink the tracker
	// keeps out of its child slots (0: the tracker's default,
	// tracker.Capacity). The model's tracker sizes slots exactly as the
	// real one does: one stream's worth of upload at join (browsers
	// declare nothing), then from the uplink each engine measures and
	// reports every StatsInterval; it never sees the upload the model drew.
	Headroom float64
	// RootCapacity is the seeder's children per stripe (default
	// overlay.DefaultRootCapacity, as `banyan up`); the seeder's upload
	// is RootCapacity × bitrate × 1.25.
	RootCapacity int
	// StatsInterval is how often viewers report (default 2 s, the
	// tracker's); the tracker drops a viewer silent for 3 intervals,
	// checking every half interval, as tracker.reap does.
	StatsInterval time.Duration
	// TrackerTick is how often the tracker runs the forest's Tick
	// (rebalancing; default 1 s).
	TrackerTick time.Duration
	// EngineTick is how often every engine's Tick runs (default 50 ms).
	EngineTick time.Duration
	// GOP is the simulated stream's keyframe interval (default 1 s: a
	// keyframe every 4th chunk), a multiple of the 250 ms chunk duration
	// up to 16 s (ValidGOP). A joiner starts playing at the newest
	// keyframe, so the longer the GOP, the more a joiner fetches before
	// it plays and the further behind live it starts.
	GOP time.Duration
	// Window is the engines' chunk window (default max(3 s, GOP + 1 s)).
	// Each engine holds its own copy of every chunk in it, so the window
	// bounds the simulation: about 0.75 MB per viewer at 3 Mbit/s (the
	// engine's default 30 s would be 11 MB). Shorter hurts: repair
	// requests reach parents that no longer hold the chunk (1.5 s cut the
	// offload of a 1k run from 95 % to 72 %).
	//
	// Why it grows with the GOP: a joiner starts at the newest keyframe,
	// and everything it needs comes from its parents' windows (the
	// catch-up burst sends the stripe's chunks from the parent's newest
	// keyframe on, peer.Engine.burst, out of what its window still holds)
	// and is accepted only above the joiner's own floor (newest chunk −
	// Window, peer.Engine.accepts). A window shorter than the GOP has
	// dropped the keyframe a joiner needs: the burst starts mid-GOP and
	// the joiner waits for the next keyframe or fetches the GOP from the
	// origin. One second on top of the GOP covers the chunks published
	// while the keyframe travels down the tree and the joiner's repair
	// requests for the oldest chunks of its burst.
	Window time.Duration
	// OriginLatency and OriginBps model the HTTP origin (or a CDN in front
	// of it): every request answers after OriginLatency plus the transfer
	// at OriginBps (defaults 40 ms, 20 Mbit/s); its total capacity is not
	// limited.
	OriginLatency time.Duration
	OriginBps     float64
	// CheckEvery: every CheckEvery-th viewer holds the content keys,
	// decrypts what it plays and compares it with what was published
	// (default 50; the others check played headers only).
	CheckEvery int
	// HighWater is each link's buffered bytes above which Send refuses
	// (peer/rtc's default, 1 MiB).
	HighWater int
	// UploadScale multiplies every upload (viewers, seeder) and OriginBps
	// (default 1). A run at bitrate B/x with UploadScale 1/x is a scale
	// model of one at B: the same slots per viewer and the same transfer
	// times per chunk, with 1/x of the memory (but fewer pieces per chunk).
	UploadScale float64
	// NoUploadPct is the percentage of viewers that cannot upload
	// (default DefaultNoUploadPct; 40 is the harsher mix).
	NoUploadPct int
	// RepairDelay, PlayoutDelay and PieceGap override the viewer engines' defaults
	// (peer.Config; zero keeps them). Engine, when set, adjusts each
	// viewer engine's configuration last.
	RepairDelay, PlayoutDelay, PieceGap time.Duration
	Engine                              func(*peer.Config)
	// KeyframeRatio is the size of a keyframe chunk relative to the others,
	// the mean staying at the bitrate (default DefaultKeyframeRatio).
	KeyframeRatio float64
}

// Tune sets the engine timings the simulation found stable with realistic
// uploads (bench/REPORT.md). The engine's defaults assume pieces flow at
// link speed; a parent feeding several children over one shared uplink
// interleaves them, so a child sees gaps of children × piece / upload
// between pieces, and chunks later than the fastest one by up to the
// parent's whole round.
func (m *MemModel) Tune() {
	m.PieceGap, m.RepairDelay, m.PlayoutDelay = 300*time.Millisecond, time.Second, 2500*time.Millisecond
}

func (m *MemModel) engineName() string {
	var parts []string
	for _, t := range []struct {
		name string
		d    time.Duration
	}{{"gap", m.PieceGap}, {"repair", m.RepairDelay}, {"playout", m.PlayoutDelay}} {
		if t.d > 0 {
			parts = append(parts, t.name+"="+t.d.String())
		}
	}
	if m.Engine != nil {
		parts = append(parts, "custom")
	}
	if len(parts) == 0 {
		return "default"
	}
	return strings.Join(parts, " ")
}

func (m *MemModel) setDefaults() error {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&m.LatencyMin, 10*time.Millisecond)
	def(&m.LatencyMax, 40*time.Millisecond)
	def(&m.Jitter, 5*time.Millisecond)
	def(&m.SignalMin, 10*time.Millisecond)
	def(&m.SignalMax, 40*time.Millisecond)
	def(&m.TURNExtra, 10*time.Millisecond)
	def(&m.ConnectTimeout, 5*time.Second)
	def(&m.AnswerTimeout, 1500*time.Millisecond)
	def(&m.StatsInterval, 2*time.Second)
	def(&m.TrackerTick, time.Second)
	def(&m.EngineTick, 50*time.Millisecond)
	def(&m.GOP, time.Second)
	if err := ValidGOP(m.GOP); err != nil {
		return fmt.Errorf("mem model: %w", err)
	}
	def(&m.Window, DefaultWindow(m.GOP))
	def(&m.OriginLatency, 40*time.Millisecond)
	if m.Loss == 0 {
		m.Loss = 0.005
	}
	if m.ConnectRTTs == 0 {
		m.ConnectRTTs = 4
	}
	if m.RootCapacity == 0 {
		m.RootCapacity = overlay.DefaultRootCapacity
	}
	if m.OriginBps == 0 {
		m.OriginBps = 20e6
	}
	if m.CheckEvery == 0 {
		m.CheckEvery = 50
	}
	if m.UploadScale == 0 {
		m.UploadScale = 1
	}
	if m.NoUploadPct == 0 {
		m.NoUploadPct = DefaultNoUploadPct
	}
	if m.NoUploadPct < 0 || m.NoUploadPct > 95 {
		return fmt.Errorf("bench: %d %% of viewers without upload: want 0–95", m.NoUploadPct)
	}
	if m.HighWater == 0 {
		m.HighWater = 1 << 20
	}
	if m.KeyframeRatio == 0 {
		m.KeyframeRatio = DefaultKeyframeRatio
	}
	switch {
	case m.LatencyMin < 0 || m.LatencyMax < m.LatencyMin || m.Jitter < 0 || m.SignalMin < 0 || m.SignalMax < m.SignalMin:
		return errors.New("mem model: latencies must be ≥ 0 with min ≤ max")
	case m.Loss < 0 || m.Loss >= 1 || m.Headroom < 0 || m.Headroom >= 1:
		return errors.New("mem model: loss and headroom must be in [0, 1)")
	case m.UploadScale < 0:
		return errors.New("mem model: negative upload scale")
	case m.ConnectRTTs < 0 || m.RootCapacity < 1 || m.CheckEvery < 1 || m.KeyframeRatio < 1:
		return errors.New("mem model: bad connect RTTs, root capacity, check interval or keyframe ratio")
	case m.EngineTick < time.Millisecond || m.TrackerTick < time.Millisecond || m.StatsInterval < time.Millisecond || m.Window < time.Second:
		return errors.New("mem model: ticks ≥ 1 ms, window ≥ 1 s")
	}
	return nil
}

// ChunkDuration is the simulated stream's chunk duration: the seeder's.
const ChunkDuration = chunkDur

// DefaultKeyframeRatio is a keyframe chunk's size over the others'. The
// model's 1.5 at 250 ms chunks is an I-frame of 4.75 P-frames at 30 fps
// (1.5 × 7.5 − 6.5); the same frames make (4.75 + 2.75) / 3.75 = 2.0 at
// 125 ms. Derived, so that a shorter chunk also carries the keyframe's
// burst.
var DefaultKeyframeRatio = keyframeRatio(4.75, 30, chunkDur)

// keyframeRatio is the size of a chunk that starts with an I-frame of
// iFrame P-frames over a chunk of P-frames only, at fps frames a second.
func keyframeRatio(iFrame, fps float64, d time.Duration) float64 {
	frames := fps * d.Seconds()
	return (iFrame + frames - 1) / frames
}

// MaxGOP is the longest keyframe interval the mem model takes: the
// engine's origin start looks at most peer.MaxStartBack chunks back for
// the keyframe.
const MaxGOP = peer.MaxStartBack * chunkDur

// ValidGOP checks a keyframe interval for the mem model: positive, a
// multiple of ChunkDuration, at most MaxGOP.
func ValidGOP(d time.Duration) error {
	if d <= 0 || d%chunkDur != 0 || d > MaxGOP {
		return fmt.Errorf("GOP %v: want a positive multiple of the %v chunk duration, at most %v", d, chunkDur, MaxGOP)
	}
	return nil
}

// DefaultWindow is the mem model's chunk window for a keyframe interval:
// max(3 s, GOP + 1 s) (see MemModel.Window).
func DefaultWindow(gop time.Duration) time.Duration {
	return max(3*time.Second, gop+time.Second)
}

// sampleUpload draws a viewer's upload in bit/s: 20 % cannot upload (blocked,
// opted out or metered), 30 % 2–5 Mbit/s, 40 % 5–12 Mbit/s, 10 % 20–100
// Mbit/s. The mix is in bits, not slots, so K and the bitrate do not change
// the audience; at the defaults (K=2, 3 Mbit/s, 20 % headroom) it gives the
// overlay's SampleCapacity mix (0 / 1–2 / 3–6 / 10–50 slots).
// sampleUpload draws one viewer's uplink: noUploadPct % cannot upload; the
// rest split 30:40:10 into 2–5, 5–12 and 20–100 Mbit/s (at the default 20 %,
// the draws are those of the model's original fixed mix).
func sampleUpload(r *rand.Rand, noUploadPct int) float64 {
	u := r.IntN(100)
	if u < noUploadPct {
		return 0
	}
	switch v := (u - noUploadPct) * 80 / (100 - noUploadPct); {
	case v < 30:
		return (2 + 3*r.Float64()) * 1e6
	case v < 70:
		return (5 + 7*r.Float64()) * 1e6
	default:
		return (20 + 80*r.Float64()) * 1e6
	}
}

// DefaultNoUploadPct is the share of viewers that cannot upload in the
// model's uplink mix.
const DefaultNoUploadPct = 20

var memRegions = []string{"eu-west", "eu-central", "us-east", "us-west", "ap-south", "ap-east", "sa-east"}

const (
	rootID    peer.PeerID = 1              // the seeder's root peer (overlay.Root)
	srcOrigin peer.PeerID = 0              // the HTTP origin, as the engine names it
	srcNone   peer.PeerID = math.MaxUint64 // outside any delivery
	noParent  peer.PeerID = math.MaxUint64 // stripe without a parent in the engine
	simStream             = "bench"
	simEpoch              = 1
	chunkDur              = cmaf.DefaultChunkDuration
	upControl             = 256e3 // upload of a viewer that cannot relay: control messages only
	doneRing              = 16
)

type peerState uint8

const (
	stJoining peerState = iota // join in flight, no engine yet
	stLive                     // welcomed: engine running
	stGone
)

// simStripe is one viewer's stripe as the harness sees it.
type simStripe struct {
	assigned peer.PeerID // the tracker's choice (0: origin)
	gen      uint32      // assignments so far; stale scheduled actions compare it
	applied  peer.PeerID // what the engine was told (noParent: none)
	// An orphan of a departed parent: since the tracker acted; await says
	// the new parent was applied and its first piece is awaited.
	orphan    bool
	await     bool
	since     time.Time
	awaitFrom peer.PeerID
}

type doneRec struct {
	seq uint64
	at  time.Time
}

type simPeer struct {
	sim      *memSim
	id       peer.PeerID
	e        *peer.Engine
	node     *memnet.Node
	state    peerState
	inForest bool
	upload   float64
	capacity int
	nat      overlay.NAT
	region   int // index in memRegions, -1 none
	sig      time.Duration
	startAt  time.Time // join started (websocket dial)
	welcome  time.Time
	departAt time.Time
	first    time.Time // first chunk played
	caught   bool      // played a chunk published after first (joinCost.caughtUp)
	st       []simStripe
	done     [doneRing]doneRec
	check    bool
	idx      int // in memSim.alive
	// inKill: alive right after the kill; killStalls its stalls then.
	inKill     bool
	killStalls uint64
	complaints map[peer.PeerID]time.Time // children's reports (demote)
	// demotedUntil: complaints lowered its capacity; stats cannot raise
	// it before then (tracker.DemoteHold).
	demotedUntil time.Time
	// stats is the last stats report that reached the tracker.
	stats protocol.Stats
	// answers is its transport's answer timeout (rtc.AnswerClock), made
	// lazily.
	answers *rtc.AnswerClock
}

// answerClock is p's rtc.AnswerClock, as its Transport would keep it.
func (p *simPeer) answerClock() *rtc.AnswerClock {
	if p.answers == nil {
		c := rtc.NewAnswerClock(p.sim.m.AnswerTimeout, p.sim.m.ConnectTimeout)
		p.answers = &c
	}
	return p.answers
}

func (p *simPeer) live() bool { return p.state == stLive }

func (p *simPeer) doneAt(seq uint64) (time.Time, bool) {
	d := p.done[seq%doneRing]
	return d.at, d.seq == seq && !d.at.IsZero()
}

type pairKey struct{ lo, hi peer.PeerID }

// pair is the one WebRTC link between two peers, whatever their roles.
type pair struct {
	a, b    *simPeer // a.id < b.id
	la, lb  *memnet.Link
	ready   bool
	failed  bool
	start   time.Time
	waiters []func(ok bool)
}

func (pr *pair) end(p *simPeer) *memnet.Link {
	if p == pr.a {
		return pr.la
	}
	return pr.lb
}

type memSim struct {
	// joins and uploaders count joins and those that can upload, as the
	// tracker does (tracker.Capacity.Initial).
	joins, uploaders int
	ctx              context.Context
	cfg              SwarmConfig
	m                MemModel
	k                int
	mesh             bool
	net              *memnet.Network
	rng              *rand.Rand
	forest           *overlay.Forest
	src              *synthSource
	col              *collector
	root             *simPeer
	peers            []*simPeer // by id
	alive            []*simPeer // live viewers, tick order
	pairs            map[pairKey]*pair
	edges            map[pairKey]int32 // tree edges (either direction, any stripe) per pair
	cur              peer.PeerID       // sender of the message being handled
	orig             simOrigin

	joined, left, killed int
	killDone             bool
	peakHeap             uint64
	// atRamp holds the byte counters when the ramp ended, for the offload
	// after it (the flash crowd's ramp costs the origin most).
	atRamp collector
	chg    []overlay.Change
	t0     time.Time
}

func swarmMem(ctx context.Context, cfg SwarmConfig) (SwarmResult, error) {
	if cfg.Source != SourceSynthetic {
		return SwarmResult{}, fmt.Errorf("bench swarm: --source %s with the mem transport: %w (mem replays synthetic sealed chunks; ffmpeg feeds the real seeder with --transport webrtc)", cfg.Source, ErrNotAvailable)
	}
	if err := cfg.Mem.setDefaults(); err != nil {
		return SwarmResult{}, fmt.Errorf("bench swarm: %w", err)
	}
	s, err := newMemSim(ctx, cfg)
	if err != nil {
		return SwarmResult{}, fmt.Errorf("bench swarm: %w", err)
	}
	return s.run()
}

func newMemSim(ctx context.Context, cfg SwarmConfig) (*memSim, error) {
	m := cfg.Mem
	s := &memSim{
		ctx: ctx, cfg: cfg, m: m, k: cfg.Stripes, mesh: cfg.Mode == ModeMesh,
		net: memnet.New(memnet.Config{Seed: cfg.Seed, Jitter: m.Jitter, Loss: m.Loss, HighWater: m.HighWater}),
		rng: rand.New(rand.NewPCG(cfg.Seed, 0x5a4d)),
		col: newCollector(), pairs: make(map[pairKey]*pair), edges: make(map[pairKey]int32), cur: srcNone,
	}
	s.t0 = s.net.Now()
	src, err := newSynthSource(cfg.Seed, cfg.Bitrate, m.KeyframeRatio, uint64(m.GOP/chunkDur))
	if err != nil {
		return nil, err
	}
	s.src = src
	s.orig = simOrigin{s: s}
	if s.mesh {
		s.forest, err = overlay.New(overlay.Config{Stripes: s.k, RootCapacity: m.RootCapacity, StatsInterval: m.StatsInterval, Seed: cfg.Seed})
		if err != nil {
			return nil, err
		}
	}
	s.peers = make([]*simPeer, 2, cfg.Peers+int(cfg.ChurnPerMin*cfg.Duration.Minutes())+64)
	s.root = &simPeer{sim: s, id: rootID, state: stLive, sig: time.Millisecond, region: -1}
	s.peers[rootID] = s.root
	s.root.node = s.net.Node(rootID)
	s.root.node.SetUpload(float64(m.RootCapacity) * cfg.Bitrate * 1.25)
	s.root.e, err = peer.New(peer.Config{
		Stream: simStream, PublicKey: src.pub, Stripes: s.k, Root: true,
		Clock: s.net.Now, Verify: src.verify, Window: m.Window, Intern: src.intern, Join: src.join,
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (s *memSim) run() (SwarmResult, error) {
	cfg := s.cfg
	wall := time.Now()
	defer s.close()

	// The broadcaster: init and the first keyframe now, a chunk every 250 ms.
	s.publish()
	s.publish()
	stopPub := s.net.Every(chunkDur, func(time.Time) { s.publish() })
	defer stopPub()
	stopTick := s.net.Every(s.m.EngineTick, func(now time.Time) {
		s.root.e.Tick(now)
		for _, p := range s.alive {
			p.e.Tick(now)
		}
	})
	defer stopTick()
	if s.mesh {
		stopTracker := s.net.Every(s.m.TrackerTick, func(now time.Time) {
			s.apply(s.forest.Tick(now), now, nil)
			s.sampleDepth()
		})
		defer stopTracker()
	}
	// The audience arrives during the ramp, spread evenly with jitter.
	for i := range cfg.Peers {
		at := time.Duration((float64(i) + s.rng.Float64()) / float64(cfg.Peers) * float64(cfg.Ramp))
		s.net.At(s.t0.Add(at), s.startJoin)
	}
	s.net.At(s.t0.Add(cfg.Ramp), func() { s.atRamp = s.countersNow() })
	if cfg.ChurnPerMin > 0 {
		s.scheduleChurn(s.t0.Add(cfg.Ramp), true)
		s.scheduleChurn(s.t0.Add(cfg.Ramp), false)
	}
	if cfg.Kill > 0 {
		s.net.At(s.t0.Add(cfg.KillAt), s.massKill)
	}

	end := s.t0.Add(cfg.Duration)
	lastProgress, lastHeap := time.Now(), time.Time{}
	var runErr error
	for s.net.Now().Before(end) {
		if err := s.ctx.Err(); err != nil {
			runErr = err
			break
		}
		s.net.RunUntil(minTime(s.net.Now().Add(100*time.Millisecond), end))
		if time.Since(lastHeap) >= time.Second {
			s.sampleHeap()
			lastHeap = time.Now()
		}
		if cfg.Progress != nil && time.Since(lastProgress) >= cfg.ProgressEvery {
			lastProgress = time.Now()
			sim := s.net.Now().Sub(s.t0)
			fmt.Fprintf(cfg.Progress, "bench swarm: %s %s K=%d: %v/%v simulated, %d viewers (%d joined), offload %.2f%%, heap %.0f MB, wall %v (%.2fx)\n",
				cfg.Transport, cfg.Mode, s.k, sim.Round(100*time.Millisecond), cfg.Duration, len(s.alive), s.joined,
				100*s.offloadNow(), float64(s.peakHeap)/1e6, time.Since(wall).Round(time.Second), sim.Seconds()/time.Since(wall).Seconds())
		}
	}
	s.sampleHeap()
	res := s.result(time.Since(wall))
	if cfg.OnEnd != nil {
		cfg.OnEnd()
	}
	return res, runErr
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (s *memSim) close() {
	for _, p := range s.alive {
		p.e.Close()
	}
	s.root.e.Close()
}

func (s *memSim) sampleHeap() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.peakHeap = max(s.peakHeap, ms.HeapAlloc)
}

func (s *memSim) sampleDepth() {
	for st := range s.k {
		s.col.maxDepth = max(s.col.maxDepth, s.forest.MaxDepth(st))
	}
}

// countersNow is the collector as if every live viewer left now (the
// collector itself is not changed).
func (s *memSim) countersNow() collector {
	c := *s.col
	now := s.net.Now()
	for _, p := range s.alive {
		c.engine(p.e.Traffic(), p.e.Counters(), now, !p.first.IsZero())
	}
	c.seederBytes = s.root.e.Traffic().Up
	c.originBytes = s.orig.served
	return c
}

// offloadNow is the running offload, for progress lines.
func (s *memSim) offloadNow() float64 {
	c := s.countersNow()
	return c.offload()
}

// ---- broadcaster ----

func (s *memSim) publish() {
	seq := uint64(len(s.src.sealed))
	if _, err := s.src.seal(seq); err != nil {
		panic(err) // the source's own inputs; cannot fail
	}
	s.src.pubAt = append(s.src.pubAt, s.net.Now())
	if err := s.root.e.Publish(s.src.sealed[seq]); err != nil {
		panic(err)
	}
}

// ---- viewers joining and leaving ----

func (s *memSim) newPeer() *simPeer {
	id := peer.PeerID(len(s.peers))
	r := s.rng
	up := sampleUpload(r, s.m.NoUploadPct) * s.m.UploadScale
	p := &simPeer{
		sim: s, id: id, upload: up, nat: overlay.SampleNAT(r), region: r.IntN(len(memRegions)+1) - 1,
		sig:   s.m.SignalMin + time.Duration(r.Float64()*float64(s.m.SignalMax-s.m.SignalMin)),
		st:    make([]simStripe, s.k),
		check: int(id)%s.m.CheckEvery == 0,
	}
	s.joins++
	if up > 0 {
		s.uploaders++
	}
	p.capacity = s.slots().Initial(protocol.Join{Kind: protocol.KindBrowser, NoUpload: up == 0})
	for i := range p.st {
		p.st[i].applied = noParent
	}
	p.node = s.net.Node(id)
	p.node.SetUpload(max(up, upControl*s.m.UploadScale))
	s.peers = append(s.peers, p)
	return p
}

// startJoin: a viewer opens the page. Its websocket (TCP and upgrade, two
// round trips) and join message reach the tracker after 5 one-way delays.
func (s *memSim) startJoin() {
	p := s.newPeer()
	p.startAt = s.net.Now()
	s.joined++
	s.net.After(5*p.sig, func() { s.trackerJoin(p) })
}

func (s *memSim) trackerJoin(p *simPeer) {
	if p.state == stGone {
		return
	}
	now := s.net.Now()
	var changes []overlay.Change
	if s.mesh {
		info := overlay.PeerInfo{ID: overlay.PeerID(p.id), Capacity: p.capacity, NAT: p.nat, NoUpload: p.upload == 0}
		if p.region >= 0 {
			info.Locality = memRegions[p.region]
		}
		res, err := s.forest.Join(info)
		if err != nil {
			panic(fmt.Sprintf("bench swarm: forest join %d: %v", p.id, err)) // ids are fresh and valid
		}
		p.inForest = true
		changes = append(s.chg[:0], res.Changes...)
		s.chg = changes[:0]
	}
	// The welcome goes out first, then the assignments; both arrive after
	// one signaling delay, the welcome first.
	s.net.After(p.sig, func() { s.welcome(p) })
	if s.mesh {
		s.apply(changes, now, nil)
	} else {
		for st := range p.st {
			p.st[st].assigned = srcOrigin
			p.st[st].gen++
		}
		s.net.After(p.sig, func() {
			for st := range p.st {
				s.setOrigin(p, st, p.st[st].gen)
			}
		})
	}
}

func (s *memSim) welcome(p *simPeer) {
	if p.state != stJoining {
		return
	}
	c := peer.Config{
		Stream: simStream, PublicKey: s.src.pub, Stripes: s.k,
		Origin: &s.orig, Player: (*simPlayer)(p), Clock: s.net.Now, Window: s.m.Window,
		Intern: s.src.intern, Join: s.src.join,
		Verify: func(b []byte) (chunk.Header, error) {
			h, err := s.src.verify(b)
			if err == nil {
				s.completed(p, h)
			}
			return h, err
		},
		Report: func(r protocol.Report) {
			s.col.reports++
			s.net.After(p.sig, func() { s.trackerReport(p, r) })
		},
	}
	if p.check {
		c.Keys = s.src.keys
	}
	c.RepairDelay, c.PlayoutDelay, c.PieceGap = s.m.RepairDelay, s.m.PlayoutDelay, s.m.PieceGap
	if s.m.Engine != nil {
		s.m.Engine(&c)
	}
	e, err := peer.New(c)
	if err != nil {
		panic(fmt.Sprintf("bench swarm: engine: %v", err)) // static, valid config
	}
	p.e, p.state, p.welcome = e, stLive, s.net.Now()
	p.idx = len(s.alive)
	s.alive = append(s.alive, p)
	s.net.After(s.m.StatsInterval, func() { s.stats(p) })
}

// slots is the tracker's capacity policy at the stream's bitrate (the
// real tracker learns it from the seeder's stats).
func (s *memSim) slots() tracker.Capacity {
	return tracker.Capacity{StreamKbps: int(s.cfg.Bitrate / 1000), Stripes: s.k, Headroom: s.m.Headroom,
		Joins: s.joins, Uploaders: s.uploaders}
}

// stats sends p's periodic stats, which reach the tracker one signaling
// delay later and size its capacity there (tracker.streamState.stats).
func (s *memSim) stats(p *simPeer) {
	if !p.live() {
		return
	}
	st := p.e.Stats()
	s.net.After(s.m.StatsInterval, func() { s.stats(p) })
	if base, ok := p.e.PlayoutBase(); ok && len(s.src.pubAt) > 1 {
		// Media time 0 left the broadcaster at pubAt[1] less chunk 1's
		// media time.
		pub0 := s.src.pubAt[1].Add(-time.Duration(s.src.hdr[1].MediaTime) * time.Microsecond)
		s.col.behind.add(base.Sub(pub0))
	}
	if !s.mesh || p.upload == 0 {
		return
	}
	s.net.After(p.sig, func() {
		if !p.inForest {
			return
		}
		now := s.net.Now()
		p.stats = st
		// As tracker/stream.go's stats: heard, alive (origin-fed peers may
		// attach to it), then capacity.
		s.forest.Heard(overlay.PeerID(p.id), now)
		if changes, err := s.forest.Alive(overlay.PeerID(p.id)); err == nil {
			s.apply(append(s.chg[:0], changes...), now, nil)
		}
		c := s.slots().Update(p.capacity, s.slotsUsed(p), st, !now.Before(p.demotedUntil))
		if c == p.capacity {
			return
		}
		p.capacity = c
		if changes, err := s.forest.UpdateCapacity(overlay.PeerID(p.id), c, now); err == nil {
			s.apply(append(s.chg[:0], changes...), now, nil)
		}
	})
}

// depart makes a live or joining viewer go. abrupt: it vanishes and the
// tracker finds out from missed stats (or children's reports); clean: it
// says goodbye and the tracker re-parents its children at once.
func (s *memSim) depart(p *simPeer, abrupt bool) {
	now := s.net.Now()
	wasLive := p.live()
	if wasLive {
		s.account(p, now)
		p.e.Close()
		last := len(s.alive) - 1
		s.alive[p.idx] = s.alive[last]
		s.alive[p.idx].idx = p.idx
		s.alive = s.alive[:last]
	}
	p.node.Kill()
	p.state, p.departAt = stGone, now
	for i := range p.st {
		p.st[i].orphan, p.st[i].await = false, false
	}
	if !p.inForest {
		return
	}
	detect := now.Add(p.sig)
	if abrupt {
		detect = s.deadline(p, now)
		// Its stats stop: the reaper suspects it once they are a quarter
		// interval overdue (tracker.reap), before it drops it.
		s.net.At(s.reaperAfter(p, now, s.m.StatsInterval*5/4), func() {
			if p.inForest {
				_ = s.forest.Suspect(overlay.PeerID(p.id))
			}
		})
	}
	s.net.At(detect, func() { s.trackerLeave(p) })
}

// deadline is when the tracker drops a viewer that vanished at t: its last
// stats left at the latest multiple of StatsInterval since its welcome
// before t, and the reaper, running every half interval, drops a session
// unseen for 3 intervals (tracker.reap).
func (s *memSim) deadline(p *simPeer, t time.Time) time.Time {
	return s.reaperAfter(p, t, 3*s.m.StatsInterval)
}

// reaperAfter is the reaper's first tick (every half interval) at which
// the stats of a viewer that vanished at t are more than late overdue.
func (s *memSim) reaperAfter(p *simPeer, t time.Time, late time.Duration) time.Time {
	lastSeen := s.lastStats(p, t).Add(p.sig).Sub(s.t0)
	half := s.m.StatsInterval / 2
	return s.t0.Add(((lastSeen+late)/half + 1) * half)
}

// lastStats is when p's latest stats at or before t left it: a viewer
// sends them every StatsInterval since its welcome (t itself if none yet).
func (s *memSim) lastStats(p *simPeer, t time.Time) time.Time {
	iv := s.m.StatsInterval
	base := p.welcome
	if base.IsZero() {
		base = t
	}
	return base.Add(t.Sub(base) / iv * iv)
}

// nextStats is when p's next stats after t reach the tracker.
func (s *memSim) nextStats(p *simPeer, t time.Time) time.Time {
	return s.lastStats(p, t).Add(s.m.StatsInterval + p.sig)
}

func (s *memSim) trackerLeave(p *simPeer) {
	if !p.inForest {
		return
	}
	now := s.net.Now()
	changes, err := s.forest.Leave(overlay.PeerID(p.id))
	if err != nil {
		panic(fmt.Sprintf("bench swarm: forest leave %d: %v", p.id, err))
	}
	p.inForest = false
	s.apply(append(s.chg[:0], changes...), now, p)
}

func (s *memSim) scheduleChurn(after time.Time, leave bool) {
	rate := s.cfg.ChurnPerMin / 60
	gap := time.Duration(s.rng.ExpFloat64() / rate * float64(time.Second))
	s.net.At(after.Add(gap), func() {
		if leave {
			if len(s.alive) > 0 {
				p := s.alive[s.rng.IntN(len(s.alive))]
				s.left++
				s.depart(p, s.cfg.ChurnMode == ChurnAbrupt)
			}
		} else {
			s.startJoin()
		}
		s.scheduleChurn(s.net.Now(), leave)
	})
}

func (s *memSim) massKill() {
	n := int(math.Round(s.cfg.Kill * float64(len(s.alive))))
	for range n {
		p := s.alive[s.rng.IntN(len(s.alive))]
		s.depart(p, true)
		s.killed++
	}
	for _, p := range s.alive {
		p.inKill, p.killStalls = true, p.e.Counters().Stalls
	}
	s.killDone = true
}

// ---- the tracker's assignments ----

func (s *memSim) enID(o overlay.PeerID) peer.PeerID {
	switch o {
	case overlay.Root:
		return rootID
	case overlay.Origin:
		return srcOrigin
	}
	return peer.PeerID(o)
}

// apply carries the forest's changes to both ends, each after its
// signaling delay; new links connect first. departed is the peer whose
// departure caused them (its orphans are timed), nil otherwise.
func (s *memSim) apply(changes []overlay.Change, now time.Time, departed *simPeer) {
	for _, c := range changes {
		child := s.peers[s.enID(c.Child)]
		par := s.enID(c.Parent)
		st := &child.st[c.Stripe]
		if c.Added {
			st.gen++
			st.assigned = par
			gen := st.gen
			if par == srcOrigin {
				s.net.After(child.sig, func() { s.setOrigin(child, c.Stripe, gen) })
				continue
			}
			pp := s.peers[par]
			pr := s.pairFor(child, pp, now)
			s.edges[key(child.id, par)]++
			at := now.Add(max(child.sig, pp.sig))
			s.whenReady(pr, at, func(ok bool) { s.linked(pr, child, pp, c.Stripe, gen, ok) })
			continue
		}
		if departed != nil && par == departed.id && child.live() && !st.orphan {
			st.orphan, st.await, st.since = true, false, now
			s.col.detect.add(now.Sub(departed.departAt))
		}
		if par == srcOrigin {
			continue
		}
		pp := s.peers[par]
		stripe := c.Stripe
		s.net.After(pp.sig, func() {
			if pp.live() {
				_ = pp.e.RemoveChild(stripe, child.id)
			}
		})
		s.net.After(child.sig, func() {
			if child.live() && child.st[stripe].applied == par {
				_ = child.e.ClearParent(stripe)
				child.st[stripe].applied = noParent
			}
		})
		k := key(child.id, par)
		if s.edges[k]--; s.edges[k] <= 0 {
			delete(s.edges, k)
			s.net.After(max(child.sig, pp.sig)+time.Millisecond, func() { s.release(k) })
		}
	}
}

func key(a, b peer.PeerID) pairKey { return pairKey{min(a, b), max(a, b)} }

func (s *memSim) setOrigin(p *simPeer, stripe int, gen uint32) {
	st := &p.st[stripe]
	if !p.live() || st.gen != gen {
		return
	}
	_ = p.e.SetParent(stripe, 0, nil)
	st.applied = srcOrigin
	if st.orphan {
		if !st.await {
			s.col.reparentLink.add(s.net.Now().Sub(st.since))
		}
		st.await, st.awaitFrom = true, srcOrigin
	}
}

// linked runs once the pair's link is up (ok) or failed to come up.
func (s *memSim) linked(pr *pair, child, par *simPeer, stripe int, gen uint32, ok bool) {
	st := &child.st[stripe]
	if !child.live() || st.gen != gen {
		return
	}
	if !ok || !par.live() || s.pairs[key(child.id, par.id)] != pr {
		// The engine reports no_connection; the tracker moves us.
		child.e.ParentFailed(stripe, par.id)
		return
	}
	_ = par.e.AddChild(stripe, child.id, pr.end(par))
	_ = child.e.SetParent(stripe, par.id, pr.end(child))
	st.applied = par.id
	if st.orphan {
		if !st.await {
			s.col.reparentLink.add(s.net.Now().Sub(st.since))
		}
		st.await, st.awaitFrom = true, par.id
	}
}

// pairFor returns the link between a and b, starting to connect it if
// there is none: offer and answer cross the tracker (both signaling
// delays, twice), then ICE, DTLS and SCTP take ConnectRTTs round trips.
func (s *memSim) pairFor(a, b *simPeer, now time.Time) *pair {
	k := key(a.id, b.id)
	if pr := s.pairs[k]; pr != nil && !pr.failed {
		return pr
	}
	if a.id > b.id {
		a, b = b, a
	}
	pr := &pair{a: a, b: b, start: now}
	s.pairs[k] = pr
	lat, turn := s.pairLatency(a, b)
	setup := 2*(a.sig+b.sig) + time.Duration(s.m.ConnectRTTs*float64(2*lat))
	if turn {
		setup += 4 * lat
	}
	s.net.After(setup, func() {
		if s.pairs[k] != pr {
			return
		}
		// The lower id dials (peer/rtc's convention).
		dialer := a
		if !a.live() || !b.live() {
			// Nobody answers the offer: the dialer gives up after its
			// answer clock's wait (the live end's; either, if both are gone).
			if !a.live() && b.live() {
				dialer = b
			}
			c := dialer.answerClock()
			wait := c.Wait()
			c.Missed()
			s.net.At(pr.start.Add(max(min(wait, s.m.ConnectTimeout), setup)), func() { s.failPair(pr) })
			return
		}
		dialer.answerClock().Answered(2 * (a.sig + b.sig))
		path := peer.PathDirect
		if turn {
			path = peer.PathTURN
		}
		pr.la, pr.lb = s.net.Connect(a.id, b.id, memnet.LinkOptions{Latency: lat, Path: path})
		la, lb := pr.la, pr.lb
		la.OnMessage(func(m []byte) { s.deliver(a, b.id, la, m) })
		lb.OnMessage(func(m []byte) { s.deliver(b, a.id, lb, m) })
		pr.ready = true
		ws := pr.waiters
		pr.waiters = nil
		for _, f := range ws {
			f(true)
		}
	})
	return pr
}

func (s *memSim) failPair(pr *pair) {
	pr.failed = true
	if k := key(pr.a.id, pr.b.id); s.pairs[k] == pr {
		delete(s.pairs, k)
	}
	ws := pr.waiters
	pr.waiters = nil
	for _, f := range ws {
		f(false)
	}
}

// whenReady runs f no earlier than at, once pr is up (or failed).
func (s *memSim) whenReady(pr *pair, at time.Time, f func(ok bool)) {
	s.net.At(at, func() {
		switch {
		case pr.failed:
			f(false)
		case pr.ready && (!pr.a.live() || !pr.b.live()):
			// Up once, but the other end has vanished since: the new
			// child's connection attempt times out.
			s.net.After(s.m.ConnectTimeout, func() { f(false) })
		case pr.ready:
			f(true)
		default:
			pr.waiters = append(pr.waiters, f)
		}
	})
}

// release closes a link nobody uses any more.
func (s *memSim) release(k pairKey) {
	pr := s.pairs[k]
	if pr == nil || s.edges[k] > 0 {
		return
	}
	delete(s.pairs, k)
	if pr.ready {
		pr.la.Close()
	} else {
		pr.failed = true // a late connect is dropped
	}
}

// pairLatency is the pair's one-way latency, stable per pair: the lower
// half of the range within a region, the upper half across; symmetric NAT
// pairs go through TURN.
func (s *memSim) pairLatency(a, b *simPeer) (time.Duration, bool) {
	h := splitmix(s.cfg.Seed ^ uint64(a.id)*0x9e3779b97f4a7c15 ^ uint64(b.id)*0xc2b2ae3d27d4eb4f)
	u := float64(h>>11) / (1 << 53)
	lo, hi := s.m.LatencyMin, s.m.LatencyMax
	mid := (lo + hi) / 2
	if a.region >= 0 && a.region == b.region || a == s.root || b == s.root {
		hi = mid // the seeder is well connected: near everyone
	} else {
		lo = mid
	}
	lat := lo + time.Duration(u*float64(hi-lo))
	turn := !overlay.DefaultConnectable(a.nat, b.nat)
	if turn {
		lat += s.m.TURNExtra
	}
	return lat, turn
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// trackerReport does what tracker.streamState.report does with a report
// that reached it: a slow child is moved; any complaint about a parent
// (silent, no connection, flood) moves the complaining child.
func (s *memSim) trackerReport(from *simPeer, r protocol.Report) {
	if !s.mesh || !from.inForest || r.Stripe < 0 || r.Stripe >= s.k {
		return
	}
	accused := s.peerAt(r.Peer)
	if accused == nil || !(accused == s.root || accused.inForest) || !s.paired(from, accused) {
		return
	}
	now := s.net.Now()
	var (
		changes []overlay.Change
		err     error
	)
	if r.Kind == protocol.ReportSlow {
		if accused == s.root {
			return
		}
		changes, err = s.forest.ReportBadParent(overlay.PeerID(accused.id), r.Stripe)
	} else {
		if accused != s.root {
			if r.Kind == protocol.ReportSilent || r.Kind == protocol.ReportFlood {
				s.demote(accused, from, r.Kind, r.Stripe, now)
			}
			if r.Kind == protocol.ReportSilent || r.Kind == protocol.ReportNoConn {
				s.suspect(accused, now)
			}
		}
		if accused != s.root && (r.Kind == protocol.ReportSilent || r.Kind == protocol.ReportNoConn) {
			// As tracker/stream.go: to a parent heard from since.
			changes, err = s.forest.ReportGoneParent(overlay.PeerID(from.id), r.Stripe, now)
		} else {
			changes, err = s.forest.ReportBadParent(overlay.PeerID(from.id), r.Stripe)
		}
		// A child that reports its vanished parent is an orphan now.
		st := &from.st[r.Stripe]
		if err == nil && accused.state == stGone && !st.orphan {
			st.orphan, st.await, st.since = true, false, now
			s.col.detect.add(now.Sub(accused.departAt))
		}
	}
	if err == nil {
		s.apply(append(s.chg[:0], changes...), now, nil)
	}
}

// slotsUsed is how many children p feeds in its home stripe.
func (s *memSim) slotsUsed(p *simPeer) int {
	if in, err := s.forest.Interior(overlay.PeerID(p.id)); err == nil && in >= 0 {
		c, _ := s.forest.Children(nil, overlay.PeerID(p.id), in)
		return len(c)
	}
	return 0
}

// demote lowers the capacity of a parent a child reported silent or
// flooding by the tracker's policy (Capacity.Complaint: tracker.Demote,
// only to what its uplink carries when its stats show it overloaded,
// nothing when they show it unfed in that stripe).
func (s *memSim) demote(accused, from *simPeer, kind string, stripe int, now time.Time) {
	if accused.complaints == nil {
		accused.complaints = make(map[peer.PeerID]time.Time)
	}
	c, ok := s.slots().Complaint(accused.complaints, from.id, kind, stripe, accused.capacity, s.slotsUsed(accused), accused.stats, now)
	if !ok {
		return
	}
	accused.demotedUntil = now.Add(tracker.DemoteHold)
	accused.capacity = c
	if changes, err := s.forest.UpdateCapacity(overlay.PeerID(accused.id), accused.capacity, now); err == nil {
		s.apply(append(s.chg[:0], changes...), now, nil)
	}
}

// suspect keeps new children off a parent reported gone until its next
// stats reach the tracker (a vanished one never sends them).
func (s *memSim) suspect(accused *simPeer, now time.Time) {
	if s.forest.Suspected(overlay.PeerID(accused.id)) {
		return // its next stats are already due
	}
	_ = s.forest.Suspect(overlay.PeerID(accused.id))
	if !accused.live() {
		return
	}
	s.net.At(s.nextStats(accused, now), func() {
		if accused.live() && accused.inForest {
			if changes, err := s.forest.Alive(overlay.PeerID(accused.id)); err == nil {
				s.apply(append(s.chg[:0], changes...), s.net.Now(), nil)
			}
		}
	})
}

func (s *memSim) peerAt(id peer.PeerID) *simPeer {
	if id == 0 || id >= peer.PeerID(len(s.peers)) {
		return nil
	}
	return s.peers[id]
}

func (s *memSim) paired(a, b *simPeer) bool {
	oa, ob := s.ovID(a), s.ovID(b)
	for st := range s.k {
		if p, err := s.forest.Parent(oa, st); err == nil && p == ob {
			return true
		}
		if p, err := s.forest.Parent(ob, st); err == nil && p == oa {
			return true
		}
	}
	return false
}

func (s *memSim) ovID(p *simPeer) overlay.PeerID {
	if p == s.root {
		return overlay.Root
	}
	return overlay.PeerID(p.id)
}

// ---- measurements ----

// deliver hands a message that arrived at dst from the pair's other end to
// dst's engine, noting a re-parented orphan's first piece.
func (s *memSim) deliver(dst *simPeer, from peer.PeerID, l *memnet.Link, m []byte) {
	if !dst.live() {
		return
	}
	if dst.st != nil && len(m) >= chunk.PieceHeaderSize && m[0] == chunk.PieceType {
		if seq := binary.BigEndian.Uint64(m[6:]); seq > 0 {
			st := &dst.st[seq%uint64(s.k)]
			if st.await && st.awaitFrom == from {
				s.col.reparent.add(s.net.Now().Sub(st.since))
				st.orphan, st.await = false, false
			}
		}
	}
	s.cur = from
	dst.e.HandleMessage(from, l, m)
	s.cur = srcNone
}

// completed runs when p's engine verified a chunk (the Verify hook fires at
// completion): per-hop latency against the parent's own completion.
func (s *memSim) completed(p *simPeer, h chunk.Header) {
	if h.Seq == 0 {
		return
	}
	now := s.net.Now()
	p.done[h.Seq%doneRing] = doneRec{h.Seq, now}
	st := &p.st[h.Seq%uint64(s.k)]
	switch from := s.cur; {
	case from == srcOrigin:
		if st.await && st.awaitFrom == srcOrigin {
			s.col.reparent.add(now.Sub(st.since))
			st.orphan, st.await = false, false
		}
	case from == st.applied && from == rootID:
		if h.Seq < uint64(len(s.src.pubAt)) {
			s.col.hop.add(now.Sub(s.src.pubAt[h.Seq]))
		}
	case from == st.applied && from != srcNone:
		if at, ok := s.peers[from].doneAt(h.Seq); ok {
			s.col.hop.add(now.Sub(at))
		}
	}
}

// simPlayer is a viewer's Player: it checks what is played against what was
// published and times it.
type simPlayer simPeer

func (pl *simPlayer) Init(epoch uint32, init []byte) {
	p := (*simPeer)(pl)
	if p.check && (epoch != simEpoch || !bytes.Equal(init, p.sim.src.initPayload)) {
		p.sim.col.badPlayed++
	}
}

func (pl *simPlayer) Chunk(h chunk.Header, payload []byte) {
	p := (*simPeer)(pl)
	s := p.sim
	now := s.net.Now()
	if h.Seq == 0 || h.Seq >= uint64(len(s.src.hdr)) || h != s.src.hdr[h.Seq] {
		s.col.badPlayed++
		return
	}
	if p.check && !s.src.payloadOK(h.Seq, payload) {
		s.col.badPlayed++
	}
	pub := s.src.pubAt[h.Seq]
	if p.first.IsZero() {
		p.first = now
		s.col.join.add(now.Sub(p.startAt))
		if p.startAt.Sub(s.t0) >= s.cfg.Ramp {
			s.col.joinLate.add(now.Sub(p.startAt))
		}
		// Player calls run outside the engine's lock: Traffic is safe.
		s.col.joinCost.started(p.e.Traffic(), now.Sub(pub))
	}
	if pub.Before(p.first) {
		return // the catch-up burst a joiner starts with is not live delivery
	}
	if !p.caught {
		p.caught = true
		s.col.joinCost.caughtUp(p.e.Traffic())
	}
	depth := "origin"
	if s.forest != nil {
		depth = s.col.viewerDepthKey(s.k, func(st int) (int, bool) {
			d, err := s.forest.Depth(overlay.PeerID(p.id), st)
			return d, p.st[st].assigned != srcOrigin && err == nil
		})
	}
	s.col.playAt(depth, now.Sub(pub))
}

// account adds a viewer's totals to the collector (at departure or end).
func (s *memSim) account(p *simPeer, now time.Time) {
	s.col.engine(p.e.Traffic(), p.e.Counters(), now, !p.first.IsZero())
}

func (s *memSim) result(wall time.Duration) SwarmResult {
	cfg := s.cfg
	now := s.net.Now()
	res := SwarmResult{
		Transport: cfg.Transport, Mode: cfg.Mode, Source: cfg.Source, Peers: cfg.Peers, Stripes: s.k,
		BitrateBps: cfg.Bitrate, DurationS: now.Sub(s.t0).Seconds(), ChurnPerMin: cfg.ChurnPerMin,
		ChurnMode: cfg.ChurnMode, Kill: cfg.Kill, Seed: cfg.Seed,
		Joined: s.joined, Left: s.left, Killed: s.killed, Engine: s.m.engineName(), UploadScale: s.m.UploadScale, Headroom: s.m.Headroom,
		NoUploadPct: s.m.NoUploadPct, RootCapacity: s.m.RootCapacity,
		WallS: math.Round(wall.Seconds()*100) / 100, PeakHeapMB: math.Round(float64(s.peakHeap)/1e5) / 10,
		Events: s.net.Delivered, GOPms: s.m.GOP.Milliseconds(), WindowMs: s.m.Window.Milliseconds(),
	}
	if wall > 0 {
		res.SimSpeed = math.Round(res.DurationS/wall.Seconds()*100) / 100
	}
	free := 0
	for _, p := range s.alive {
		s.account(p, now)
		if p.inKill {
			res.KillSurvivors++
			if p.e.Counters().Stalls == p.killStalls {
				free++
			}
		}
		for i := range p.st {
			if p.st[i].await || p.st[i].orphan {
				res.ReparentsPending++
			}
		}
	}
	if res.KillSurvivors > 0 {
		res.KillStallFree = round6(float64(free) / float64(res.KillSurvivors))
	}
	s.col.seederBytes = s.root.e.Traffic().Up
	s.col.originBytes = s.orig.served
	if s.mesh {
		s.sampleDepth()
		st := s.forest.Stats()
		origin := 0
		for _, x := range st.Stripes {
			origin += x.Origin
		}
		if n := s.forest.Len() * s.k; n > 0 {
			res.OriginFedShare = round4(float64(origin) / float64(n))
		}
	}
	s.col.fill(&res)
	if cfg.Ramp < cfg.Duration {
		after := collector{
			seederBytes: s.col.seederBytes - s.atRamp.seederBytes,
			originBytes: s.col.originBytes - s.atRamp.originBytes,
			peerBytes:   s.col.peerBytes - s.atRamp.peerBytes,
		}
		res.OffloadAfterRamp = round4(after.offload())
		why := s.col.originWhy
		for i := range why {
			why[i] -= s.atRamp.originWhy[i]
		}
		res.OriginWhyAfterRamp = originWhyMap(why)
	}
	return res
}

// ---- the origin (HTTP fallback) ----

// simOrigin is the seeder's HTTP origin on the virtual clock: every request
// answers after OriginLatency plus its transfer at OriginBps.
type simOrigin struct {
	s      *memSim
	served uint64
}

func (o *simOrigin) FetchAsync(epoch uint32, seq uint64, done func([]byte, error)) {
	o.answer(o.sealed(epoch, seq), done)
}

// FetchRangeAsync answers part of a chunk, as the seeder's origin answers
// an HTTP Range request.
func (o *simOrigin) FetchRangeAsync(epoch uint32, seq uint64, off, end int64, done func([]byte, error)) {
	b := o.sealed(epoch, seq)
	if b != nil {
		var err error
		if b, err = chunk.SliceRange(b, off, end); err != nil {
			o.s.net.After(o.s.m.OriginLatency, func() { done(nil, err) })
			return
		}
	}
	o.answer(b, done)
}

func (o *simOrigin) sealed(epoch uint32, seq uint64) []byte {
	if epoch == simEpoch && seq < uint64(len(o.s.src.sealed)) {
		return o.s.src.sealed[seq]
	}
	return nil
}

// answer delivers b (nil: not found) after the origin's latency and its
// transfer.
func (o *simOrigin) answer(b []byte, done func([]byte, error)) {
	s := o.s
	d := s.m.OriginLatency + time.Duration(float64(len(b))*8/(s.m.OriginBps*s.m.UploadScale)*float64(time.Second))
	s.net.After(d, func() {
		s.cur = srcOrigin
		defer func() { s.cur = srcNone }()
		if b == nil {
			done(nil, memnet.ErrNotFound)
			return
		}
		o.served += uint64(len(b))
		done(b, nil)
	})
}

func (o *simOrigin) LiveAsync(done func(peer.LiveEdge, error)) {
	s := o.s
	n := uint64(len(s.src.sealed))
	le := peer.LiveEdge{Epoch: simEpoch, Seq: n - 1, Keyframe: (n-2)/s.src.gop*s.src.gop + 1}
	s.net.After(s.m.OriginLatency, func() {
		s.cur = srcOrigin
		defer func() { s.cur = srcNone }()
		done(le, nil)
	})
}

var errBlocking = errors.New("bench: simulated origin: blocking calls would stop the simulation")

func (o *simOrigin) Fetch(context.Context, uint32, uint64) ([]byte, error) { return nil, errBlocking }
func (o *simOrigin) Live(context.Context) (peer.LiveEdge, error) {
	return peer.LiveEdge{}, errBlocking
}

// ---- the synthetic source ----

// synthSource seals chunks of a fixed bitrate with the real chunk.Sealer
// (AES-GCM, Ed25519): ChunkDuration each, a keyframe every gop-th (chunk 1 is
// one), keyframes KeyframeRatio times the others.
type synthSource struct {
	gop         uint64 // chunks per GOP
	pub         ed25519.PublicKey
	keys        *chunk.Keyring
	sealer      *chunk.Sealer
	slow        *peer.VerifyCache
	size, kfLen int
	initPayload []byte
	sealed      [][]byte   // by seq; verified with chunk.Verify when made
	msgs        [][][]byte // by seq: piece messages, made on first need
	hdr         []chunk.Header
	pubAt       []time.Time
}

type seededReader struct{ r *rand.Rand }

func (s seededReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(s.r.Uint32())
	}
	return len(p), nil
}

func newSynthSource(seed uint64, bitrate, kfRatio float64, gop uint64) (*synthSource, error) {
	if gop < 1 {
		return nil, fmt.Errorf("source: %d chunks per GOP", gop)
	}
	r := seededReader{rand.New(rand.NewPCG(seed, 0x6b657973))}
	ks := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("banyan bench signing key"), seed))
	priv := ed25519.NewKeyFromSeed(ks[:])
	mk, err := chunk.NewMasterKey(1, r)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	keys, err := chunk.NewKeyring(mk)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	sealer, err := chunk.NewSealer(chunk.SealerConfig{Stream: simStream, PrivateKey: priv, Keys: keys, KeyID: 1})
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	mean := bitrate / 8 * chunkDur.Seconds()
	g := float64(gop)
	base := mean * g / (kfRatio + g - 1)
	src := &synthSource{
		gop: gop,
		pub: sealer.PublicKey(), keys: keys, sealer: sealer,
		slow:  peer.NewVerifyCache(sealer.PublicKey(), simStream, 64),
		size:  max(int(base)-chunk.Overhead, 64),
		kfLen: max(int(base*kfRatio)-chunk.Overhead, 64),
	}
	src.initPayload = src.payload(0, 900)
	return src, nil
}

// payload is the deterministic plaintext of chunk seq.
func (src *synthSource) payload(seq uint64, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(uint64(i)*13 + seq*101)
	}
	return p
}

func (src *synthSource) payloadOK(seq uint64, got []byte) bool {
	n := src.size
	if (seq-1)%src.gop == 0 {
		n = src.kfLen
	}
	if len(got) != n {
		return false
	}
	for i, b := range got {
		if b != byte(uint64(i)*13+seq*101) {
			return false
		}
	}
	return true
}

// seal makes chunk seq (which must be the next one) and verifies it once
// with chunk.Verify.
func (src *synthSource) seal(seq uint64) ([]byte, error) {
	h := chunk.Header{Epoch: simEpoch, Seq: seq}
	p := src.initPayload
	if seq == 0 {
		h.Flags = chunk.FlagInit
	} else {
		h.MediaTime = uint64((time.Duration(seq-1) * chunkDur).Microseconds())
		h.Duration = uint32(chunkDur.Microseconds())
		n := src.size
		if (seq-1)%src.gop == 0 {
			h.Flags |= chunk.FlagKeyframe
			n = src.kfLen
		}
		p = src.payload(seq, n)
	}
	b, err := src.sealer.Seal(h, p)
	if err != nil {
		return nil, fmt.Errorf("source: seal %d: %w", seq, err)
	}
	vh, err := chunk.Verify(src.pub, simStream, b)
	if err != nil {
		return nil, fmt.Errorf("source: verify %d: %w", seq, err)
	}
	src.sealed = append(src.sealed, b)
	src.hdr = append(src.hdr, vh)
	return b, nil
}

// intern is every engine's Config.Intern: the audience shares the source's
// copy of each chunk (and its piece messages), so 100k windows cost one.
func (src *synthSource) intern(h chunk.Header, b []byte) ([]byte, [][]byte) {
	if h.Epoch != simEpoch || h.Seq >= uint64(len(src.sealed)) || !bytes.Equal(b, src.sealed[h.Seq]) {
		return b, nil
	}
	for uint64(len(src.msgs)) <= h.Seq {
		src.msgs = append(src.msgs, nil)
	}
	if src.msgs[h.Seq] == nil {
		src.msgs[h.Seq], _ = peer.PieceMessages(src.sealed[h.Seq])
	}
	return src.sealed[h.Seq], src.msgs[h.Seq]
}

// join is every engine's Config.Join: pieces that spell a sealed chunk
// give back the source's copy, so completing a chunk allocates nothing.
// The pieces are usually the source's own piece messages, passed on
// unchanged, and comparing a slice with itself costs a pointer compare.
func (src *synthSource) join(parts [][]byte) []byte {
	if h, err := chunk.ParseHeader(parts[0]); err == nil && h.Epoch == simEpoch && h.Seq < uint64(len(src.msgs)) {
		if msgs := src.msgs[h.Seq]; len(msgs) == len(parts) {
			same := true
			for i, p := range parts {
				same = same && bytes.Equal(p, msgs[i][chunk.PieceHeaderSize:])
			}
			if same {
				return src.sealed[h.Seq]
			}
		}
	}
	return bytes.Join(parts, nil)
}

// verify is every engine's Config.Verify: a copy byte-equal to the chunk
// that passed chunk.Verify when it was sealed is exactly as authentic, and
// comparing costs a memcmp where hashing or verifying each of a million
// copies would dominate the run. Anything else gets the real check.
func (src *synthSource) verify(b []byte) (chunk.Header, error) {
	if len(b) >= chunk.HeaderSize {
		if h, err := chunk.ParseHeader(b); err == nil && h.Epoch == simEpoch && h.Seq < uint64(len(src.sealed)) &&
			bytes.Equal(b, src.sealed[h.Seq]) {
			return src.hdr[h.Seq], nil
		}
	}
	return src.slow.Verify(b)
}
