package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/banyan-live/banyan/overlay"
	"github.com/banyan-live/banyan/peer"
)

// Swarm transports, modes, sources and churn modes (SwarmConfig fields).
const (
	TransportMem    = "mem"    // peer/memnet: discrete-event simulation on a virtual clock
	TransportWebRTC = "webrtc" // real nodes, tracker and seeder over loopback WebRTC
	TransportNetns  = "netns"  // native `banyan peer` processes in network namespaces (swarm_netns.go)

	ModeMesh   = "mesh"   // viewers feed each other along the stripe forest
	ModeOrigin = "origin" // baseline: every viewer fetches every chunk from the origin over HTTP

	SourceSynthetic = "synthetic" // sealed chunks of the requested bitrate, made in process
	SourceFFmpeg    = "ffmpeg"    // a real encoder feeding the seeder

	ChurnAbrupt = "abrupt" // leavers vanish: the tracker learns it from missed stats or a child's report
	ChurnClean  = "clean"  // leavers say goodbye: the tracker re-parents at once
)

// ErrNotAvailable is returned for a transport or source this build cannot
// run yet.
var ErrNotAvailable = errors.New("not available yet")

// SwarmConfig configures Swarm. Zero fields take the defaults shown.
// Durations are simulated time for the mem transport and wall time for
// webrtc.
type SwarmConfig struct {
	Transport string // TransportMem (default) or TransportWebRTC
	Mode      string // ModeMesh (default) or ModeOrigin
	Source    string // SourceSynthetic (default) or SourceFFmpeg

	// Peers is the audience: that many viewers join during Ramp and churn
	// keeps the count (default 1000).
	Peers int
	// Duration is the whole run, ramp included (default 60 s).
	Duration time.Duration
	// Ramp spreads the initial joins (default min(10 s, Duration/4)).
	Ramp time.Duration
	// Stripes is K (default overlay.DefaultStripes, the tracker's).
	Stripes int
	// Bitrate of the stream in bit/s (default 3e6). Chunks are 250 ms, a
	// keyframe every Mem.GOP (default 1 s: every 4th chunk).
	Bitrate float64
	// ChurnPerMin is how many viewers leave per minute, and as many new
	// ones join (Poisson arrivals), after the ramp. ChurnMode says how they
	// leave (default ChurnAbrupt).
	ChurnPerMin float64
	ChurnMode   string
	// Kill is the share of viewers that vanish at once (abruptly) at
	// KillAt (default Duration/2); 0 kills nobody.
	Kill   float64
	KillAt time.Duration
	Seed   uint64

	// Progress gets a line every ProgressEvery of wall time (default 5 s);
	// nil prints nothing.
	Progress      io.Writer
	ProgressEvery time.Duration

	// OnEnd, if set, runs when the run ends, before its state is released
	// (heap profiles).
	OnEnd func()

	// Netns configures the netns transport (swarm_netns.go).
	Netns NetnsModel
	// Mem tunes the mem transport's network and tracker model.
	Mem MemModel
	// WebRTC configures the webrtc transport (its broadcast above all).
	WebRTC WebRTCModel
}

// SwarmResult is what `banyan bench swarm --json` prints. Byte counts are
// what was sent; latencies are in milliseconds.
type SwarmResult struct {
	Transport   string  `json:"transport"`
	Mode        string  `json:"mode"`
	Source      string  `json:"source"`
	Peers       int     `json:"peers"`
	Stripes     int     `json:"stripes"`
	BitrateBps  float64 `json:"bitrate_bps"`
	DurationS   float64 `json:"duration_s"`
	ChurnPerMin float64 `json:"churn_per_min"`
	ChurnMode   string  `json:"churn_mode"`
	Kill        float64 `json:"kill"`
	Seed        uint64  `json:"seed"`
	// Engine names the viewer engines' timings: "default", or the
	// overridden ones ("gap=300ms repair=1s playout=2.5s").
	Engine      string  `json:"engine"`
	UploadScale float64 `json:"upload_scale,omitempty"` // mem scale model (1: real uploads)
	Headroom    float64 `json:"headroom,omitempty"`     // mem: share of upload the tracker leaves unassigned
	// NoUploadPct is the mem model's share of viewers that cannot upload
	// (%); RootCapacity the seeder's children per stripe.
	NoUploadPct  int `json:"no_upload_pct,omitempty"`
	RootCapacity int `json:"root_capacity,omitempty"`
	// Revision is the VCS revision the benchmark binary was built from
	// ("+dirty" when its tree had changes): the engine that ran.
	Revision string `json:"revision,omitempty"`

	Joined int `json:"joined"` // viewers that joined over the run
	Left   int `json:"left"`   // churned out
	Killed int `json:"killed"` // vanished in the mass kill

	// Offload is the share of the bytes delivered to viewers that the
	// seeder did not send: peer / (seeder + origin + peer).
	Offload float64 `json:"offload"`
	// OffloadAfterRamp is the offload of the bytes delivered after the
	// ramp (the initial flash crowd), mem transport only.
	OffloadAfterRamp float64 `json:"offload_after_ramp,omitempty"`
	SeederBytes      uint64  `json:"seeder_bytes"` // sent by the seeder's root peer into the trees
	PeerBytes        uint64  `json:"peer_bytes"`   // sent by viewers to viewers (TURN included)
	OriginBytes      uint64  `json:"origin_bytes"` // served by the origin over HTTP
	TURNBytes        uint64  `json:"turn_bytes"`   // received over TURN-relayed links (part of peer_bytes)

	JoinP50ms   float64 `json:"join_p50_ms"` // join started → first chunk played
	JoinP95ms   float64 `json:"join_p95_ms"`
	NeverPlayed int     `json:"never_played"` // viewers that left or ended before playing

	// GOPms is the stream's keyframe interval and WindowMs the engines'
	// chunk window (mem transport only).
	GOPms    int64 `json:"gop_ms,omitempty"`
	WindowMs int64 `json:"window_ms,omitempty"`
	// What a join costs, per viewer that played (mem transport only):
	// JoinBytes* is what it received (peers, TURN and origin; duplicates
	// included) from its join until it played its first chunk, the
	// newest keyframe it could get; JoinOriginBytes* the origin's part of
	// that, and JoinOriginShare the origin's share of all viewers' join
	// bytes together. CatchupBytes* is what it received from its join
	// until it played its first chunk published after its playback
	// started: everything it played before that chunk was its catch-up
	// from the keyframe to the live edge, so this is the cost of getting
	// to its steady position (viewers that left before are left out).
	// StartBehind* is how long before the start of playback the first
	// chunk played left the broadcaster: how far behind live a viewer
	// starts, the keyframe's age.
	JoinBytesP50       uint64  `json:"join_bytes_p50"`
	JoinBytesP95       uint64  `json:"join_bytes_p95"`
	JoinOriginBytesP50 uint64  `json:"join_origin_bytes_p50"`
	JoinOriginBytesP95 uint64  `json:"join_origin_bytes_p95"`
	JoinOriginShare    float64 `json:"join_origin_share"`
	CatchupBytesP50    uint64  `json:"catchup_bytes_p50"`
	CatchupBytesP95    uint64  `json:"catchup_bytes_p95"`
	StartBehindP50ms   float64 `json:"start_behind_p50_ms"`
	StartBehindP95ms   float64 `json:"start_behind_p95_ms"`
	// JoinLate*: viewers that joined after the ramp (churn), into a
	// running stream and a settled forest.
	JoinLateP50ms float64 `json:"join_late_p50_ms"`
	JoinLateP95ms float64 `json:"join_late_p95_ms"`

	HopLatencyP50ms float64 `json:"hop_latency_p50_ms"` // chunk complete at parent → complete at child
	HopLatencyP95ms float64 `json:"hop_latency_p95_ms"`
	LatencyP50ms    float64 `json:"latency_p50_ms"` // publish → delivered to the player, chunks published after the viewer started playing
	LatencyP95ms    float64 `json:"latency_p95_ms"`
	// BehindLive*: how far behind the broadcaster viewers watch (the
	// playout clock: delivery plus the playout buffer), sampled at every
	// stats report. Mem transport only.
	BehindLiveP50ms float64 `json:"behind_live_p50_ms,omitempty"`
	BehindLiveP95ms float64 `json:"behind_live_p95_ms,omitempty"`
	// LatencyP95msByDepth maps the viewer's depth, its deepest stripe's
	// ("1" = a child of the seeder in every stripe; "origin" = a stripe
	// fed over HTTP), to the p95 publish → play latency.
	LatencyP95msByDepth map[string]float64 `json:"latency_p95_ms_by_depth"`
	LatencyP50msByDepth map[string]float64 `json:"latency_p50_ms_by_depth"`
	MaxDepth            int                `json:"max_depth"`
	OriginFedShare      float64            `json:"origin_fed_share"` // peer-stripes on the origin at the end

	StallRatio   float64 `json:"stall_ratio"`   // stalled time / watched time, all viewers
	StalledPeers int     `json:"stalled_peers"` // viewers with at least one stall
	ChunksMissed uint64  `json:"chunks_missed"` // chunks skipped at their deadline, all viewers
	ChunksPlayed uint64  `json:"chunks_played"`
	// KillSurvivors are viewers alive before the kill and at the end;
	// KillStallFree the share of them with no stall after the kill.
	KillSurvivors int     `json:"kill_survivors"`
	KillStallFree float64 `json:"kill_stall_free"`

	// Re-parenting: orphans of departed viewers, from the tracker acting
	// on the departure (detection) to the orphan receiving from its new
	// parent; Detect* is departure → detection.
	Reparents        int       `json:"reparents"`
	ReparentP50ms    float64   `json:"reparent_p50_ms"`
	ReparentP95ms    float64   `json:"reparent_p95_ms"`
	ReparentMaxms    float64   `json:"reparent_max_ms"`
	ReparentCDFms    []float64 `json:"reparent_cdf_ms"` // quantiles 0, 5, …, 100 %
	ReparentsPending int       `json:"reparents_pending"`
	// ReparentLink*: detection → the new parent applied in the engine
	// (assignment delivered, link connected); the rest of a re-parent time
	// is the new parent's first piece reaching the orphan.
	ReparentLinkP50ms float64 `json:"reparent_link_p50_ms"`
	ReparentLinkP95ms float64 `json:"reparent_link_p95_ms"`
	DetectP50ms       float64 `json:"detect_p50_ms"`
	DetectP95ms       float64 `json:"detect_p95_ms"`

	BadChunksPlayed   uint64 `json:"bad_chunks_played"`   // must be 0
	BadChunksDetected uint64 `json:"bad_chunks_detected"` // chunks that failed verification
	RepairedPeer      uint64 `json:"repaired_peer"`       // chunks completed from another parent
	RepairedOrigin    uint64 `json:"repaired_origin"`     // chunks fetched from the origin
	Reports           uint64 `json:"reports"`             // reports peers sent the tracker
	// Where upload goes besides the trees: repair requests sent (and
	// timed out), pieces that arrived twice, chunks skipped for a child
	// over its link's high-water mark.
	WantsSent         uint64 `json:"wants_sent"`
	WantTimeouts      uint64 `json:"want_timeouts"`
	DuplicatePieces   uint64 `json:"duplicate_pieces"`
	BackpressureSkips uint64 `json:"backpressure_skips"`
	// DuplicateBytes is what viewers received twice (the senders' wasted
	// upload), DuplicateShare its share of peer bytes; UnsentBytes is what
	// viewers queued and then dropped unsent (never cost upload).
	DuplicateBytes uint64  `json:"duplicate_bytes"`
	DuplicateShare float64 `json:"duplicate_share"`
	UnsentBytes    uint64  `json:"unsent_bytes"`
	// UnsentWhy splits UnsentBytes: the receiver left or changed role,
	// said it has the chunk, the bytes waited past their use, the link
	// refused them.
	UnsentWhy map[string]uint64 `json:"unsent_why,omitempty"`
	// OriginWhy counts viewers' origin requests by cause: start (live
	// edge at join), origin_fed (no parent had room), deadline (peers
	// could not make it), no_peer (every parent was tried).
	OriginWhy map[string]uint64 `json:"origin_why,omitempty"`
	// RepairWhy counts chunks whose repair started, by cause: late
	// (nothing RepairDelay past the expected arrival), gap (pieces stopped
	// coming), skipped (the parent sent a later chunk), other.
	RepairWhy map[string]uint64 `json:"repair_why,omitempty"`
	// MissWhy counts missed chunks by where their repair stood at the
	// deadline: origin answer in flight, origin failed, never sent to the
	// origin with some or with no pieces.
	MissWhy map[string]uint64 `json:"miss_why,omitempty"`
	// OriginWhyAfterRamp is OriginWhy for the requests after the ramp
	// (mem transport only).
	OriginWhyAfterRamp map[string]uint64 `json:"origin_why_after_ramp,omitempty"`

	WallS      float64 `json:"wall_s"`
	SimSpeed   float64 `json:"sim_speed"` // simulated seconds per wall second (1 for webrtc)
	PeakHeapMB float64 `json:"peak_heap_mb"`
	// MediaBps is the bitrate the seeder actually packaged (webrtc: what
	// ffmpeg produced, CMAF overhead included).
	MediaBps float64 `json:"media_bps,omitempty"`
	Events   uint64  `json:"events,omitempty"` // memnet messages delivered
}

// Swarm runs the swarm benchmark. It returns the partial result and
// ctx.Err() when ctx ends first.
func Swarm(ctx context.Context, cfg SwarmConfig) (SwarmResult, error) {
	if err := cfg.setDefaults(); err != nil {
		return SwarmResult{}, fmt.Errorf("bench swarm: %w", err)
	}
	var res SwarmResult
	var err error
	switch cfg.Transport {
	case TransportMem:
		res, err = swarmMem(ctx, cfg)
	case TransportWebRTC:
		res, err = swarmWebRTC(ctx, cfg)
	case TransportNetns:
		res, err = swarmNetns(ctx, cfg)
	default:
		return SwarmResult{}, fmt.Errorf("bench swarm: unknown transport %q", cfg.Transport)
	}
	res.Revision = revision()
	return res, err
}

// revision is the binary's VCS revision, short, with "+dirty" when it
// was built from a modified tree; "" when the build has no VCS stamp
// (go test, go run outside a checkout).
func revision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return ""
	}
	return rev + dirty
}

func (c *SwarmConfig) setDefaults() error {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Transport, TransportMem)
	def(&c.Mode, ModeMesh)
	if c.Transport == TransportWebRTC {
		def(&c.Source, SourceFFmpeg) // the real thing end to end
	}
	def(&c.Source, SourceSynthetic)
	def(&c.ChurnMode, ChurnAbrupt)
	if c.Peers == 0 {
		c.Peers = 1000
	}
	if c.Duration == 0 {
		c.Duration = time.Minute
	}
	if c.Ramp == 0 {
		c.Ramp = min(10*time.Second, c.Duration/4)
	}
	if c.Stripes == 0 {
		c.Stripes = overlay.DefaultStripes
	}
	if c.Bitrate == 0 {
		c.Bitrate = 3e6
	}
	if c.KillAt == 0 {
		c.KillAt = c.Duration / 2
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = 5 * time.Second
	}
	switch {
	case c.Transport != TransportMem && c.Transport != TransportWebRTC && c.Transport != TransportNetns:
		return fmt.Errorf("transport %q: mem, webrtc or netns", c.Transport)
	case c.Mode != ModeMesh && c.Mode != ModeOrigin:
		return fmt.Errorf("mode %q: mesh or origin", c.Mode)
	case c.Source != SourceSynthetic && c.Source != SourceFFmpeg:
		return fmt.Errorf("source %q: synthetic or ffmpeg", c.Source)
	case c.ChurnMode != ChurnAbrupt && c.ChurnMode != ChurnClean:
		return fmt.Errorf("churn mode %q: abrupt or clean", c.ChurnMode)
	case c.Peers < 1 || c.Peers > 1_000_000:
		return fmt.Errorf("peers %d not in 1..1000000", c.Peers)
	case c.Duration < time.Second || c.Ramp < 0 || c.Ramp > c.Duration:
		return fmt.Errorf("duration %v / ramp %v: need duration ≥ 1 s and 0 ≤ ramp ≤ duration", c.Duration, c.Ramp)
	case c.Stripes < 1 || c.Stripes > 32:
		return fmt.Errorf("stripes %d not in 1..32", c.Stripes)
	case c.Bitrate < 64e3 || c.Bitrate > 100e6:
		return fmt.Errorf("bitrate %.0f bit/s not in 64k..100M", c.Bitrate)
	case c.ChurnPerMin < 0 || math.IsNaN(c.ChurnPerMin):
		return fmt.Errorf("churn %v per minute is negative", c.ChurnPerMin)
	case c.Kill < 0 || c.Kill > 1 || math.IsNaN(c.Kill):
		return fmt.Errorf("kill share %v not in 0..1", c.Kill)
	case c.KillAt < 0 || c.KillAt > c.Duration:
		return fmt.Errorf("kill at %v outside the run", c.KillAt)
	case c.Transport != TransportMem && c.Mem.GOP != 0:
		return fmt.Errorf("GOP %v with the %s transport: the keyframe interval is a mem model setting (webrtc and netns stream what their encoder or seeder makes)", c.Mem.GOP, c.Transport)
	}
	return nil
}

// ParseBitrate reads a bitrate such as "3M", "2.5m", "800k" or "1500000"
// (bits per second).
func ParseBitrate(s string) (float64, error) {
	t := strings.TrimSpace(strings.ToLower(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "bps"), "bit/s")
	mul := 1.0
	switch {
	case strings.HasSuffix(t, "k"):
		mul, t = 1e3, t[:len(t)-1]
	case strings.HasSuffix(t, "m"):
		mul, t = 1e6, t[:len(t)-1]
	case strings.HasSuffix(t, "g"):
		mul, t = 1e9, t[:len(t)-1]
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("bitrate %q: want a positive number with an optional k, M or G suffix", s)
	}
	return v * mul, nil
}

// ParseChurn reads a churn rate: peers per minute ("600") or a share of the
// audience per minute ("10%").
func ParseChurn(s string, peers int) (float64, error) {
	t := strings.TrimSpace(s)
	pct := strings.HasSuffix(t, "%")
	v, err := strconv.ParseFloat(strings.TrimSuffix(t, "%"), 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("churn %q: want peers per minute (600) or a share of the audience per minute (10%%)", s)
	}
	if pct {
		return v / 100 * float64(peers), nil
	}
	return v, nil
}

// ---- measurements shared by the transports ----

// hist is a log-linear histogram of durations in microseconds: exact below
// 1024 µs, then 512 buckets per power of two (relative error < 0.2 %).
type hist struct {
	n      uint64
	counts []uint64
	max    int64
}

func histIndex(us int64) int {
	if us < 1024 {
		return int(max(us, 0))
	}
	e := bits.Len64(uint64(us)) - 10 // us>>e is in [512, 1024)
	return 1024 + (e-1)*512 + int(us>>e) - 512
}

func histValue(i int) int64 {
	if i < 1024 {
		return int64(i)
	}
	e := (i-1024)/512 + 1
	m := int64((i-1024)%512 + 512)
	return m<<e + (int64(1)<<e)/2 // bucket middle
}

func (h *hist) add(d time.Duration) {
	us := d.Microseconds()
	i := histIndex(us)
	if i >= len(h.counts) {
		h.counts = append(h.counts, make([]uint64, i+1-len(h.counts))...)
	}
	h.counts[i]++
	h.n++
	h.max = max(h.max, us)
}

// quantile returns the q-quantile (0..1) in milliseconds (0 when empty).
func (h *hist) quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	if q >= 1 {
		return float64(h.max) / 1000
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var c uint64
	for i, k := range h.counts {
		c += k
		if c >= rank {
			return math.Round(float64(min(histValue(i), h.max))) / 1000
		}
	}
	return float64(h.max) / 1000
}

// quantileU64 is the q-quantile (0..1) of v by the rank hist.quantile
// uses (the ceil(q·n)-th smallest; 0 when empty). v is not modified.
func quantileU64(v []uint64, q float64) uint64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	rank := int(math.Ceil(q * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// joinCost gathers what each viewer received before it played and before
// it caught up (SwarmResult.JoinBytes* and CatchupBytes*).
type joinCost struct {
	bytes, origin, catchup []uint64
	behind                 hist
}

// started records a viewer's start of playback: t is its engine's traffic
// then, behind the age of the first chunk it played.
func (j *joinCost) started(t peer.Traffic, behind time.Duration) {
	j.bytes = append(j.bytes, t.P2P+t.TURN+t.Origin)
	j.origin = append(j.origin, t.Origin)
	j.behind.add(behind)
}

// caughtUp records a viewer's traffic when it played its first chunk
// published after its playback started.
func (j *joinCost) caughtUp(t peer.Traffic) {
	j.catchup = append(j.catchup, t.P2P+t.TURN+t.Origin)
}

func (j *joinCost) fill(r *SwarmResult) {
	r.JoinBytesP50, r.JoinBytesP95 = quantileU64(j.bytes, 0.5), quantileU64(j.bytes, 0.95)
	r.JoinOriginBytesP50, r.JoinOriginBytesP95 = quantileU64(j.origin, 0.5), quantileU64(j.origin, 0.95)
	var all, origin uint64
	for i, b := range j.bytes {
		all += b
		origin += j.origin[i]
	}
	if all > 0 {
		r.JoinOriginShare = round4(float64(origin) / float64(all))
	}
	r.CatchupBytesP50, r.CatchupBytesP95 = quantileU64(j.catchup, 0.5), quantileU64(j.catchup, 0.95)
	r.StartBehindP50ms, r.StartBehindP95ms = j.behind.quantile(0.5), j.behind.quantile(0.95)
}

// collector gathers a run's figures; every transport fills one and turns it
// into a SwarmResult with fill.
type collector struct {
	joinCost                            joinCost
	join, hop, play, reparent, detect   hist
	reparentLink, joinLate, behind      hist
	byDepth                             map[string]*hist
	depthS                              []string // depthKey's names
	stalledMS, watchedMS                float64
	stalledPeers, neverPlayed           int
	missed, played, badPlayed           uint64
	badDetected, repPeer, repOrigin     uint64
	reports, wants, wantTO, dups, skips uint64
	dupBytes, unsentBytes               uint64
	originWhy                           [4]uint64
	repairWhy                           [5]uint64
	missWhy                             [4]uint64
	unsentWhy                           [4]uint64
	seederBytes, peerBytes              uint64
	originBytes, turnBytes              uint64
	maxDepth                            int
}

// depthKey names depth d in byDepth ("1", "2", …) without a string per
// chunk played.
func (c *collector) depthKey(d int) string {
	for len(c.depthS) <= d {
		c.depthS = append(c.depthS, strconv.Itoa(len(c.depthS)))
	}
	return c.depthS[d]
}

// viewerDepthKey keys a played chunk by its viewer's deepest stripe (depth
// reports stripe s's depth, false when the origin feeds it): chunks play
// in sequence, so each waits for the slowest of the viewer's K feeds, and
// a viewer at depth 1 in one stripe and 6 in another plays as one at depth
// 6. Keyed by the chunk's own stripe, as before, depth 1 read 1.2 s
// behind at 10k: its viewers' other stripes were deep. Any stripe on the
// origin keys it "origin".
func (c *collector) viewerDepthKey(k int, depth func(s int) (int, bool)) string {
	deepest := 0
	for s := range k {
		d, ok := depth(s)
		if !ok {
			return "origin"
		}
		deepest = max(deepest, d)
	}
	return c.depthKey(deepest)
}

func newCollector() *collector { return &collector{byDepth: make(map[string]*hist)} }

func (c *collector) playAt(depth string, d time.Duration) {
	h := c.byDepth[depth]
	if h == nil {
		h = &hist{}
		c.byDepth[depth] = h
	}
	h.add(d)
	c.play.add(d)
}

// engine adds a viewer engine's totals (at its departure or the end of the
// run); played says whether the viewer ever played a chunk.
func (c *collector) engine(t peer.Traffic, n peer.Counters, now time.Time, played bool) {
	c.peerBytes += t.Up
	c.turnBytes += t.TURN
	c.stalledMS += float64(t.StalledMS)
	if !n.StartedAt.IsZero() {
		c.watchedMS += float64(now.Sub(n.StartedAt).Milliseconds())
	}
	if n.Stalls > 0 {
		c.stalledPeers++
	}
	if !played {
		c.neverPlayed++
	}
	c.missed += n.Stalls
	c.played += n.Played
	c.badDetected += n.BadChunks
	c.repPeer += n.RepairedPeer
	c.repOrigin += n.RepairedOrigin
	c.wants += n.WantsSent
	c.wantTO += n.WantTimeouts
	c.dups += n.Duplicate
	c.dupBytes += t.Dup
	c.unsentBytes += t.Unsent
	for i, v := range t.UnsentWhy {
		c.unsentWhy[i] += v
	}
	for i, v := range n.OriginWhy {
		c.originWhy[i] += v
	}
	for i, v := range n.RepairWhy {
		c.repairWhy[i] += v
	}
	for i, v := range n.MissWhy {
		c.missWhy[i] += v
	}
	c.skips += n.Skips
}

// offload is the share of delivered bytes that did not come from the
// seeder (root peer or origin).
func (c *collector) offload() float64 {
	total := c.seederBytes + c.originBytes + c.peerBytes
	if total == 0 {
		return 0
	}
	return float64(c.peerBytes) / float64(total)
}

func (c *collector) fill(r *SwarmResult) {
	r.Offload = round4(c.offload())
	r.SeederBytes, r.PeerBytes, r.OriginBytes, r.TURNBytes = c.seederBytes, c.peerBytes, c.originBytes, c.turnBytes
	r.JoinP50ms, r.JoinP95ms = c.join.quantile(0.5), c.join.quantile(0.95)
	r.NeverPlayed = c.neverPlayed
	c.joinCost.fill(r)
	r.JoinLateP50ms, r.JoinLateP95ms = c.joinLate.quantile(0.5), c.joinLate.quantile(0.95)
	r.HopLatencyP50ms, r.HopLatencyP95ms = c.hop.quantile(0.5), c.hop.quantile(0.95)
	r.LatencyP50ms, r.LatencyP95ms = c.play.quantile(0.5), c.play.quantile(0.95)
	r.BehindLiveP50ms, r.BehindLiveP95ms = c.behind.quantile(0.5), c.behind.quantile(0.95)
	r.LatencyP95msByDepth = make(map[string]float64, len(c.byDepth))
	r.LatencyP50msByDepth = make(map[string]float64, len(c.byDepth))
	for d, h := range c.byDepth {
		r.LatencyP95msByDepth[d] = h.quantile(0.95)
		r.LatencyP50msByDepth[d] = h.quantile(0.5)
	}
	r.MaxDepth = c.maxDepth
	if c.watchedMS > 0 {
		r.StallRatio = round6(c.stalledMS / c.watchedMS)
	}
	r.StalledPeers, r.ChunksMissed, r.ChunksPlayed = c.stalledPeers, c.missed, c.played
	r.Reparents = int(c.reparent.n)
	r.ReparentP50ms, r.ReparentP95ms = c.reparent.quantile(0.5), c.reparent.quantile(0.95)
	r.ReparentMaxms = c.reparent.quantile(1)
	if c.reparent.n > 0 {
		r.ReparentCDFms = make([]float64, 21)
		for i := range r.ReparentCDFms {
			r.ReparentCDFms[i] = c.reparent.quantile(float64(i) / 20)
		}
		r.ReparentCDFms[0] = c.reparent.quantile(1 / float64(c.reparent.n))
	}
	r.DetectP50ms, r.DetectP95ms = c.detect.quantile(0.5), c.detect.quantile(0.95)
	r.ReparentLinkP50ms, r.ReparentLinkP95ms = c.reparentLink.quantile(0.5), c.reparentLink.quantile(0.95)
	r.BadChunksPlayed, r.BadChunksDetected = c.badPlayed, c.badDetected
	r.RepairedPeer, r.RepairedOrigin, r.Reports = c.repPeer, c.repOrigin, c.reports
	r.WantsSent, r.WantTimeouts, r.DuplicatePieces, r.BackpressureSkips = c.wants, c.wantTO, c.dups, c.skips
	r.DuplicateBytes, r.UnsentBytes = c.dupBytes, c.unsentBytes
	r.UnsentWhy = map[string]uint64{"gone": c.unsentWhy[0], "have": c.unsentWhy[1], "late": c.unsentWhy[2], "backpressure": c.unsentWhy[3]}
	r.RepairWhy = map[string]uint64{"late": c.repairWhy[0], "gap": c.repairWhy[1], "skipped": c.repairWhy[2], "other": c.repairWhy[3], "hole": c.repairWhy[4]}
	r.MissWhy = map[string]uint64{"origin_busy": c.missWhy[0], "origin_failed": c.missWhy[1], "partial": c.missWhy[2], "none": c.missWhy[3]}
	r.OriginWhy = originWhyMap(c.originWhy)
	if c.peerBytes > 0 {
		r.DuplicateShare = round4(float64(c.dupBytes) / float64(c.peerBytes))
	}
}

func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }
func round6(v float64) float64 { return math.Round(v*1e6) / 1e6 }

func originWhyMap(w [4]uint64) map[string]uint64 {
	return map[string]uint64{"start": w[0], "origin_fed": w[1], "deadline": w[2], "no_peer": w[3]}
}
