package overlay

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// PeerID names a peer inside one stream's overlay. The tracker maps its own
// (string) peer ids to these; integers keep the per-peer state small.
type PeerID uint64

const (
	// Root is the seeder: the root of every stripe tree. It is created by New
	// and can neither join nor leave.
	Root PeerID = 0
	// Origin is the parent reported for a peer that has no tree parent in a
	// stripe: it fetches that stripe from the origin over HTTP (fallback).
	Origin PeerID = math.MaxUint64
)

// NAT is what the peer learned about its NAT (from ICE candidates).
type NAT uint8

// NAT kinds. Unknown is treated as connectable.
const (
	NATUnknown NAT = iota
	NATOpen
	NATCone
	NATSymmetric
	natKinds
)

func (n NAT) String() string {
	switch n {
	case NATUnknown:
		return "unknown"
	case NATOpen:
		return "open"
	case NATCone:
		return "cone"
	case NATSymmetric:
		return "symmetric"
	}
	return fmt.Sprintf("nat(%d)", uint8(n))
}

// DefaultConnectable is the pairing rule used when Config.Connectable is nil:
// two peers both behind symmetric NATs cannot punch a hole to each other (a
// TURN relay can still carry the pair, so such a pair is avoided, not banned).
func DefaultConnectable(parent, child NAT) bool {
	return parent != NATSymmetric || child != NATSymmetric
}

// PeerInfo describes a joining peer.
type PeerInfo struct {
	ID PeerID
	// Capacity is how many children the peer can feed, in units of one stripe
	// stream (upload bitrate / (stream bitrate / K)), computed by the caller
	// from declared or, better, measured upload.
	Capacity int
	NAT      NAT
	// Locality is an opaque label (region, AS, address prefix); equal
	// non-empty labels are "near". Used only as a tie-breaker.
	Locality string
	// NoUpload marks a peer that opted out of relaying: a leaf everywhere.
	NoUpload bool
}

// Limits on inputs (they come from the network via the tracker).
const (
	MaxStripes     = 32
	MaxLocalityLen = 128
)

// Shipped shape of a stream's forest, shared by the tracker, `banyan up`,
// `banyan seeder` and the benchmarks so that what is measured is what runs.
const (
	// DefaultStripes is K. Four rather than two: a stripe is a quarter of
	// the stream, so a 3–4 Mbit/s home uplink can be interior (at two it
	// is a leaf), and a departure costs each viewer a quarter of its feed.
	// Measured with the shipped engine (bench/REPORT.md, 2026-12-04): at
	// 10k viewers under 10 %/min churn 98.1 % offload against 94.5 % at
	// K=2, at 6 Mbit/s 89.8 % against 69.4 %, with fewer stalls. What it
	// costs: a stripe's chunks come a second apart, so a hop and a
	// re-parent wait longer.
	DefaultStripes = 4
	// DefaultRootCapacity is the seeder's children per stripe: the seeder
	// uploads this many streams' worth (12 Mbit/s at 3 Mbit/s). Not 8:
	// with 8, thirty real pion viewers on loopback (`bench swarm
	// --transport webrtc --peers 30`, banyan up in the same process)
	// collapsed to 13–17 % offload with every viewer stalled, at K=2 and
	// K=4 alike, where 4 gives 85 % and no stall (2026-12-04; the cause,
	// the seeder's engine feeding 8 children per stripe over real data
	// channels on this 2-core machine, is not traced).
	DefaultRootCapacity = 4
)

// Config tunes a Forest. Zero fields take the documented defaults.
type Config struct {
	// Stripes is K, the number of stripe trees (1..MaxStripes). Required.
	Stripes int
	// RootCapacity is how many children the seeder feeds directly in each
	// stripe. Default DefaultRootCapacity. It is never exceeded.
	RootCapacity int
	// RootNAT and RootLocality describe the seeder (default NATOpen, "").
	RootNAT      NAT
	RootLocality string
	// MinInteriorCapacity is the capacity below which a peer is a leaf in
	// every stripe. Default 2 (a peer that can feed one child is not worth
	// the extra hop it would add for that child).
	MinInteriorCapacity int
	// MaxCapacity clamps declared or measured capacities. Default 256.
	MaxCapacity int
	// Sample is how many eligible candidates of the shallowest depth level are
	// compared on the tie-breakers (connectability, locality, free slots).
	// Default 8. Placement cost is O(depth + Sample).
	Sample int
	// NATSlack is how many levels deeper than the shallowest free slot a peer
	// may be placed to avoid a pair known not to connect. Default 1.
	NATSlack int
	// MaxMovesPerUpdate bounds the peers re-parented by one UpdateCapacity or
	// Tick call (promotion swaps and demotion shedding). Default 8.
	MaxMovesPerUpdate int
	// MovesPerSecond and MovesPerPeer (per live peer) refill the move
	// budget, driven by the clock the caller passes in. It is two token
	// buckets, one for UpdateCapacity and one for Tick, each refilled at
	// half the rate and holding up to max(MaxMovesPerUpdate,
	// MovesPerSecond), and a third for Tick's shedding of peers whose
	// capacity fell, refilled at the full rate and holding up to one
	// second's worth (at least the same). Defaults 100 and 0.01 (200
	// moves/s at 10k peers).
	MovesPerSecond float64
	MovesPerPeer   float64
	// StatsInterval is how often the tracker hears from every live peer
	// (its stats, Heard). Default 2 s. See ReportGoneParent.
	StatsInterval time.Duration
	// SwapMargin is the capacity advantage a peer needs over its parent to
	// swap places with it (hysteresis against measurement noise). Default 2.
	SwapMargin int
	// MaxLocalities bounds the interned locality labels; further labels are
	// treated as unknown. Default 4096.
	MaxLocalities int
	// Seed makes candidate sampling reproducible.
	Seed uint64
	// Connectable reports whether a child behind NAT child can receive from
	// a parent behind NAT parent. Default DefaultConnectable.
	Connectable func(parent, child NAT) bool
}

// Errors.
var (
	// ErrNoCapacity: no tree in the stripe had a free slot, the peer was sent
	// to the origin (Parent == Origin). Returned per stripe by Result.StripeErr.
	ErrNoCapacity    = errors.New("overlay: no free slot in stripe, origin fallback")
	ErrUnknownPeer   = errors.New("overlay: unknown peer")
	ErrDuplicatePeer = errors.New("overlay: peer already joined")
	ErrInvalid       = errors.New("overlay: invalid argument")
)

// Change is one edge added to or removed from a stripe tree. Parent is Origin
// for the HTTP fallback. The tracker turns changes into notifications for
// both ends.
type Change struct {
	Stripe int
	Parent PeerID
	Child  PeerID
	Added  bool
}

func (c Change) String() string {
	op := "-"
	if c.Added {
		op = "+"
	}
	return fmt.Sprintf("%s[%d] %d->%d", op, c.Stripe, c.Parent, c.Child)
}

// Result is what Join returns. Its slices belong to the Forest and are valid
// until the next mutating call; copy them to keep them.
type Result struct {
	// Parents holds the joiner's parent per stripe (Origin: fallback).
	Parents []PeerID
	// Changes lists every edge added or removed by the call, the joiner's own
	// edges included.
	Changes []Change
}

// StripeErr returns ErrNoCapacity when the peer was sent to the origin in
// stripe s.
func (r Result) StripeErr(s int) error {
	if s >= 0 && s < len(r.Parents) && r.Parents[s] == Origin {
		return fmt.Errorf("stripe %d: %w", s, ErrNoCapacity)
	}
	return nil
}

func (c *Config) withDefaults() (Config, error) {
	out := *c
	if out.Stripes < 1 || out.Stripes > MaxStripes {
		return out, fmt.Errorf("overlay: config: stripes %d not in 1..%d: %w", out.Stripes, MaxStripes, ErrInvalid)
	}
	if out.RootCapacity < 0 || out.MinInteriorCapacity < 0 || out.MaxCapacity < 0 || out.Sample < 0 ||
		out.NATSlack < 0 || out.MaxMovesPerUpdate < 0 || out.MovesPerSecond < 0 || out.MovesPerPeer < 0 || out.SwapMargin < 0 ||
		out.MaxLocalities < 0 {
		return out, fmt.Errorf("overlay: config: negative value: %w", ErrInvalid)
	}
	if out.RootNAT >= natKinds || len(out.RootLocality) > MaxLocalityLen {
		return out, fmt.Errorf("overlay: config: bad root description: %w", ErrInvalid)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&out.RootCapacity, DefaultRootCapacity)
	def(&out.MinInteriorCapacity, 2)
	def(&out.MaxCapacity, 256)
	def(&out.Sample, 8)
	def(&out.NATSlack, 1)
	def(&out.MaxMovesPerUpdate, 8)
	def(&out.SwapMargin, 2)
	def(&out.MaxLocalities, 4096)
	if out.MovesPerSecond == 0 {
		out.MovesPerSecond = 100
	}
	if out.StatsInterval <= 0 {
		out.StatsInterval = 2 * time.Second
	}
	if out.MovesPerPeer == 0 {
		out.MovesPerPeer = 0.01
	}
	if out.RootNAT == NATUnknown {
		out.RootNAT = NATOpen
	}
	if out.MaxCapacity > 1<<16 || out.RootCapacity > 1<<16 {
		return out, fmt.Errorf("overlay: config: capacity above %d: %w", 1<<16, ErrInvalid)
	}
	if out.MaxLocalities > math.MaxUint16 {
		out.MaxLocalities = math.MaxUint16
	}
	if out.Connectable == nil {
		out.Connectable = DefaultConnectable
	}
	return out, nil
}

// burst is the token bucket size.
func (c *Config) burst() float64 {
	return math.Max(float64(c.MaxMovesPerUpdate), c.MovesPerSecond)
}
