package peer

import (
	"context"
	"crypto/ed25519"
	"errors"
	"strconv"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/protocol"
)

// Origin is the HTTP fallback: the seeder (or a CDN in front of it) serving
// the same sealed chunks the mesh carries. The wasm build implements it with
// the browser's fetch, the native build with net/http; the engine itself
// does no I/O.
type Origin interface {
	// Fetch returns the sealed chunk (epoch, seq). It may wait (long-poll)
	// until the chunk exists, and must return when ctx is done. The engine
	// verifies what it gets.
	Fetch(ctx context.Context, epoch uint32, seq uint64) ([]byte, error)
	// Live reports the newest chunk the origin holds.
	Live(ctx context.Context) (LiveEdge, error)
}

// AsyncOrigin is an Origin that answers through callbacks instead of
// blocking a goroutine. When Config.Origin implements it the engine uses it
// and starts no goroutine of its own: simulations (memnet) use this to keep
// origin answers on their virtual clock. done may be called from any
// goroutine, even before FetchAsync returns, exactly once.
type AsyncOrigin interface {
	FetchAsync(epoch uint32, seq uint64, done func(sealed []byte, err error))
	LiveAsync(done func(LiveEdge, error))
}

// RangeOrigin is an Origin that also answers part of a chunk (an HTTP
// Range request): a rescue of a chunk the mesh has mostly delivered then
// fetches only the bytes of its missing pieces (chunk.Gap), and a CDN
// serves a fraction of the bytes. FetchRange returns bytes [off, end) of
// the sealed chunk, end -1 meaning to its end, and nothing else: an origin
// that ignores the range must fail, not answer the whole chunk.
type RangeOrigin interface {
	FetchRange(ctx context.Context, epoch uint32, seq uint64, off, end int64) ([]byte, error)
}

// AsyncRangeOrigin is RangeOrigin's form for an AsyncOrigin.
type AsyncRangeOrigin interface {
	FetchRangeAsync(epoch uint32, seq uint64, off, end int64, done func(b []byte, err error))
}

// LiveEdge is the newest chunk at the origin.
type LiveEdge struct {
	Epoch uint32
	Seq   uint64
	// Keyframe is the newest chunk at or before Seq that starts with a
	// keyframe (0 when unknown: the engine then starts at Seq).
	Keyframe uint64
}

// Player receives opened chunks in playback order: Init once per epoch
// before that epoch's chunks, then Chunk with strictly increasing sequence
// numbers. A gap in the sequence means chunks missed their deadline (a
// stall); the player decides how to bridge it (MSE: skip to the next
// keyframe). Calls are made one at a time, in order, outside the engine's
// lock; a Player may call the engine's query methods (Stats, Counters) and
// configuration methods, but must not block for long: it delays delivery.
//
// When Config.Keys is nil the engine cannot decrypt: payload is nil and the
// header alone is delivered (headless relays, simulations).
type Player interface {
	Init(epoch uint32, init []byte)
	Chunk(h chunk.Header, payload []byte)
}

// Config configures an Engine. Zero durations and counts take the defaults
// shown.
type Config struct {
	// Stream, PublicKey: what chunks must be signed for (chunk.Verify).
	Stream    string
	PublicKey ed25519.PublicKey
	// Stripes is K: a chunk travels in stripe seq mod K.
	Stripes int
	// Keys opens chunks for the Player; nil means no decryption.
	Keys *chunk.Keyring
	// Root makes this engine the source of every stripe (the seeder): it
	// takes chunks only from Publish, never plays, repairs or reports.
	Root bool
	// Origin is the HTTP fallback; nil means none (tests, the root).
	Origin Origin
	// Player gets the stream in order; nil for relays.
	Player Player
	// Report sends a report to the tracker; nil drops them. It is called
	// outside the engine's lock, in order, and must not block for long.
	Report func(protocol.Report)
	// Clock is the time source for arrivals (default time.Now). Tick's
	// argument must come from the same clock.
	Clock func() time.Time
	// Logger: none by default (peer.Logger, a *slog.Logger natively).
	Logger Logger
	// ProofKey, when set, is this peer's own key (its public half went to
	// the tracker in Join.ProofKey): with it the engine signs, for each
	// chunk it verified and each child, the hash of the bytes it fed it
	// (proof.go), which lets the tracker evict a parent caught forging.
	// Nil: no statements (simulations, the root).
	ProofKey ed25519.PrivateKey
	// Verify checks a sealed chunk; default chunk.Verify with PublicKey and
	// Stream. Simulations share a VerifyCache across engines.
	Verify func(sealed []byte) (chunk.Header, error)
	// Intern, when set, is given every verified chunk the engine keeps and
	// returns the bytes to keep instead, with the chunk's encoded piece
	// messages if it has them (nil: encoded on first need). Simulations
	// of thousands of engines in one process return one shared copy per
	// chunk, so the audience's windows cost one window; benchmarks also
	// time completions with it. What it returns must equal sealed and is
	// never modified. It runs under the engine's lock: it must not call
	// the engine.
	Intern func(h chunk.Header, sealed []byte) (kept []byte, pieces [][]byte)
	// Join, when set, builds a chunk from the pieces it arrived in
	// (chunk.ReassemblerConfig.Join): simulations hand back their shared
	// copy instead of a new one per engine. It runs under the engine's
	// lock and must not call the engine.
	Join func(parts [][]byte) []byte
	// MaxUplinkKbps is an operator's ceiling on the uplink this peer
	// offers, in kbit/s (0: none; `banyan peer --max-upload-mbps`).
	// Stats never reports an UplinkKbps above it, and reports UplinkBusy
	// once the measure (even a mere lower bound) reaches it: the ceiling
	// is then the uplink's capacity as far as the tracker is concerned.
	// The tracker sizes child slots from those figures
	// (tracker.Capacity), so it gives the peer no more slots than the
	// ceiling carries. The engine does not pace what it sends: the
	// ceiling caps what the tracker is told, and so how many children it
	// assigns.
	MaxUplinkKbps int

	// Window is how long verified chunks are kept for repair requests and
	// catch-up bursts (default 30 s).
	Window time.Duration
	// PlayoutDelay is the floor of the adaptive playout delay: a chunk is
	// due the playout delay after it was expected to arrive. The delay
	// starts at PlayoutDelay (default 1 s), grows when chunks miss or
	// nearly miss their deadline and shrinks back slowly, never past
	// MaxPlayoutDelay (default 3 s). On a quiet path (chunks coming whole
	// from the parents, unrepaired, well before their deadlines) it may go
	// below PlayoutDelay, down to QuietPlayoutDelay (default 500 ms; equal
	// to PlayoutDelay: never): see playout in timing.go.
	PlayoutDelay      time.Duration
	MaxPlayoutDelay   time.Duration
	QuietPlayoutDelay time.Duration
	// RepairDelay is how late a chunk may be before repair starts
	// (default 200 ms). A chunk whose later stripe-mate has already come
	// from the parent is repaired at once.
	RepairDelay time.Duration
	// PieceGap is the floor of how long a partly received chunk may go
	// without a new piece before its missing pieces are asked for, first
	// from the parent that sent the rest (default 500 ms; the engine
	// learns the parent's gaps and waits longer when they are long). A
	// hole below a later piece is found sooner (see gapped): with
	// unreliable data channels a lost packet loses its piece.
	PieceGap time.Duration
	// PeerTimeout is how long one repair request to a peer may take
	// before the next source is tried (default 200 ms).
	PeerTimeout time.Duration
	// OriginLead is how long before the deadline repair gives up on peers
	// and goes to the origin until the engine has timed the origin's
	// answers (default 400 ms); from then on the lead is the measured
	// fetch time (mean + 4 deviations) plus 50 ms, within 100 ms – 1.5 s.
	OriginLead time.Duration
	// StartTimeout is how long a peer waits for media from its parents
	// before it starts from the origin (default 1.2 s: in the mem
	// benchmark's 1k run, 2 s put join p95 at 2.1 s; 1.2 s gives 1.5 s
	// and no more origin bytes, since parents that are that slow to start
	// would also miss the first deadlines).
	StartTimeout time.Duration
	// SlowSkips is how many chunks a child may have skipped (link over its
	// high-water mark) within SlowPeriod before it is reported (default 8;
	// SlowPeriod 10 s).
	SlowSkips  int
	SlowPeriod time.Duration
	// FloodFactor bounds what one neighbour may send, as a multiple of the
	// measured stream rate (default 4); InitialRate is the stream rate
	// assumed until one is measured (default 8 Mbit/s as bytes/s).
	FloodFactor float64
	InitialRate float64
	// MaxAhead bounds how far past the newest verified chunk a piece's
	// sequence may be (default MaxStartBack chunks).
	MaxAhead int
	// MaxOriginFetches bounds concurrent origin requests (default 4).
	MaxOriginFetches int
	// PingInterval is how often neighbours' RTT is probed (default 2 s);
	// SilentAfter is how long a parent may send nothing before it is
	// reported silent (default 3 s: silence runs down the tree, and at
	// 1.5 s the children of a starved parent reported it too, which cost
	// 7 points of offload after a mass kill in the mem benchmark; a
	// parent that answers no ping is reported sooner, liveness.go);
	// ReportCooldown spaces repeated reports about one peer (default
	// 10 s); BadGrace is how long a bad chunk's report waits for the
	// parent's own "bad upstream" notice (default 500 ms).
	PingInterval   time.Duration
	SilentAfter    time.Duration
	ReportCooldown time.Duration
	BadGrace       time.Duration
}

func (c *Config) setDefaults() error {
	if c.Stripes < 1 || c.Stripes > protocol.MaxStripes {
		return errors.New("stripes " + strconv.Itoa(c.Stripes) + " not in 1.." + strconv.Itoa(protocol.MaxStripes))
	}
	if c.Stream == "" || len(c.Stream) > chunk.MaxStreamName {
		return errors.New("invalid stream name")
	}
	if c.Verify == nil {
		if len(c.PublicKey) != ed25519.PublicKeySize {
			return errors.New("public key missing or wrong size")
		}
		pub, stream := c.PublicKey, c.Stream
		c.Verify = func(b []byte) (chunk.Header, error) { return chunk.Verify(pub, stream, b) }
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = Discard
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Window, 30*time.Second)
	def(&c.PlayoutDelay, time.Second)
	def(&c.MaxPlayoutDelay, 3*time.Second)
	def(&c.QuietPlayoutDelay, min(500*time.Millisecond, c.PlayoutDelay))
	def(&c.RepairDelay, 200*time.Millisecond)
	def(&c.PeerTimeout, 200*time.Millisecond)
	def(&c.PieceGap, 500*time.Millisecond)
	def(&c.OriginLead, 400*time.Millisecond)
	def(&c.StartTimeout, 1200*time.Millisecond)
	def(&c.SlowPeriod, 10*time.Second)
	def(&c.PingInterval, 2*time.Second)
	def(&c.SilentAfter, 3*time.Second)
	def(&c.ReportCooldown, 10*time.Second)
	def(&c.BadGrace, 500*time.Millisecond)
	if c.SlowSkips <= 0 {
		c.SlowSkips = 8
	}
	if c.FloodFactor <= 0 {
		c.FloodFactor = 4
	}
	if c.InitialRate <= 0 {
		c.InitialRate = 1e6 // 8 Mbit/s
	}
	if c.MaxAhead <= 0 {
		c.MaxAhead = MaxStartBack
	}
	if c.MaxOriginFetches <= 0 {
		c.MaxOriginFetches = 4
	}
	return nil
}
