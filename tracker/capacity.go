package tracker

import (
	"math"
	"time"

	"github.com/banyan-live/banyan/protocol"
)

// Capacity turns what a peer declares and measures into child slots (stripe
// streams it feeds). Browsers cannot know their uplink, and a declared
// figure is a promise, not a measurement, so a peer starts small and the
// slots follow what its engine measures: the drain rate of its links while
// they were backed up (protocol.Stats.UplinkKbps with UplinkBusy), less
// Headroom for the repairs, catch-up bursts and control traffic that share
// the uplink. A peer whose links never backed up reports a lower bound
// (how fast they ran dry): its slots rise to what that carries, and by one
// more per stats report while they are full, until a burst shows its rate.
// The tracker and the mem swarm benchmark use this one policy; the tracker
// also caps growth by what children confirm (Confirm), which the benchmark
// does not model yet (its peers are honest).
type Capacity struct {
	// StreamKbps and Stripes size one slot: StreamKbps/Stripes.
	StreamKbps, Stripes int
	// Headroom is the share of the measured uplink kept free (default
	// 0.25).
	Headroom float64
	// MaxProbe bounds the slots a peer reaches without a measurement
	// (default 4 × Stripes).
	MaxProbe int
	// MaxUnconfirmed bounds the slots a peer holds beyond those its
	// children confirm (default the larger of MaxProbe and 8; see
	// Confirm).
	MaxUnconfirmed int
	// Joins counts the stream's joins so far, Uploaders those that can
	// upload: Initial sizes a joiner by their share.
	Joins, Uploaders int
}

func (c Capacity) slotKbps() float64 {
	return float64(max(c.StreamKbps, 1)) / float64(max(c.Stripes, 1))
}

func (c Capacity) headroom() float64 {
	if c.Headroom <= 0 || c.Headroom >= 1 {
		return 0.25
	}
	return c.Headroom
}

// Slots is how many slots an uplink of kbps carries with headroom.
func (c Capacity) Slots(kbps int) int {
	return int(float64(kbps) * (1 - c.headroom()) / c.slotKbps())
}

// Initial is a joining peer's capacity: what it declares (operators'
// relays and native peers given --capacity-mbps); none when it will not
// upload; else enough that the stripe trees have room for the audience.
// Each uploading viewer is interior in one of K stripes, so a stripe tree
// holds everyone only if an uploader brings K / (share of viewers that
// upload) slots, 3 at K = 2 when one in five cannot upload: with fewer,
// the flash crowd at a stream's start spills onto the origin until stats
// raise the slots, one per 2 s. An uplink that cannot carry them shows as
// busy within a stats period and is cut back (Update). At least
// minInitial, so that it can relay at all.
func (c Capacity) Initial(j protocol.Join) int {
	switch {
	case j.NoUpload:
		return 0
	case j.UploadKbps > 0:
		return c.Slots(j.UploadKbps)
	}
	// (A twentieth of a slot is noise in the estimate, not a slot.)
	return max(int(math.Ceil(float64(max(c.Stripes, 1))/c.uploadShare()-0.05)), minInitial)
}

// uploadShare estimates the share of viewers that can upload from the
// stream's joins, starting from a prior of 0.8 worth ten joins, and
// never below one half (at most 2K slots each).
func (c Capacity) uploadShare() float64 {
	const prior, weight = 0.8, 10
	share := (float64(c.Uploaders) + prior*weight) / (float64(max(c.Joins, c.Uploaders)) + weight)
	return min(max(share, 0.5), 1)
}

// minInitial is the overlay's default MinInteriorCapacity: a peer with
// fewer slots is a leaf, feeds nobody, and so never measures an uplink
// that could raise its slots (with one stripe, one stream's worth is a
// single slot, and every viewer stayed a leaf on the origin).
const minInitial = 2

// Update is the capacity after a stats report, from the current one and
// the children the peer feeds now (stripe slots in use). raise false (a
// parent demoted after complaints) lets it only fall.
func (c Capacity) Update(cur, used int, st protocol.Stats, raise bool) int {
	next := cur
	switch {
	case st.UplinkBusy && st.UplinkKbps > 0:
		next = c.Slots(st.UplinkKbps)
	case cur > 0:
		next = max(cur, c.Slots(st.UplinkKbps))
		if used >= next && next < c.maxProbe() {
			next++
		}
	}
	if next > cur && !raise {
		return cur
	}
	return next
}

// Overloaded reports whether a parent's own last stats explain its
// children's complaints: its uplink was backed up, at a rate that carries
// fewer slots than the children it holds (used). Such a parent is honest
// but was given more than it carries (Initial is a guess, and a probe
// overshoots by design), so the complaint costs it only the slots its
// uplink does not carry: slots is what it keeps. Halving it per complaint
// (Demote) took a 4 Mbit/s viewer from five slots to none for DemoteHold
// within one stats period, and at 6 Mbit/s left a quarter of the interior
// viewers demoted and 9 % of the audience on the origin (bench/REPORT.md).
// A liar gains nothing by claiming a backed-up uplink: it keeps only the
// slots its own figure carries, fewer than the children it holds.
func (c Capacity) Overloaded(st protocol.Stats, used int) (slots int, ok bool) {
	if !st.UplinkBusy || st.UplinkKbps <= 0 {
		return 0, false
	}
	slots = c.Slots(st.UplinkKbps)
	return slots, slots < used
}

// Starved reports whether a parent's own last stats show it unfed in
// stripe: its parent there delivered under half a slot's rate (Confirms).
// Its children's silence then comes from above it: when a peer vanishes,
// its whole subtree goes quiet at once, and the children of every forwarder
// in it complained about parents that had nothing to send. Each such
// complaint halved an honest parent (two within GoneWindow took all its
// slots) for DemoteHold: at 6 Mbit/s a fifth of the strongest uplinks sat
// demoted at the end of a run, 600–800 slots, and a tenth of the audience
// watched from the origin (bench/analysis.md).
func (c Capacity) Starved(st protocol.Stats, stripe int) bool {
	for _, p := range st.Parents {
		if p.Stripe == stripe {
			return !c.Confirms(p.Kbps)
		}
	}
	return false // origin-fed, or no parent yet: nothing above it to blame
}

// Complaint is what a parent keeps after child from's complaint of kind
// about it in stripe: nothing changes (ok false) for a silent parent that
// was itself starved there (Starved: the child still moves, but the
// silence is not the parent's); the slots its uplink carries when its own
// last stats, st, show it overloaded while holding used children
// (Overloaded, for a silent parent); else Demote's verdict.
//
// A parent that lies about being starved keeps its slots but not the
// children: each complaint still moves the child away and suspects the
// parent until its next stats, and Confirm keeps the children it holds
// without serving them to MaxUnconfirmed.
func (c Capacity) Complaint(complaints map[protocol.PeerID]time.Time, from protocol.PeerID, kind string, stripe, cur, used int, st protocol.Stats, now time.Time) (next int, ok bool) {
	if kind == protocol.ReportSilent {
		if c.Starved(st, stripe) {
			return cur, false
		}
		if slots, over := c.Overloaded(st, used); over {
			return min(slots, cur), true
		}
	}
	return Demote(complaints, from, cur, now)
}

// DemoteHold is how long a parent its children complained about keeps its
// lowered capacity: self-reported stats cannot raise it in that time.
const DemoteHold = 2 * time.Minute

// GoneWindow: when a second child reports the same parent silent (or
// flooding) within this time of the first, the parent's uplink, or the
// parent, is gone. Its capacity drops to nothing, so every child moves at
// once instead of each waiting out its own silence (or the parent's
// missed stats, 4–7.5 s).
const GoneWindow = 2 * time.Second

// Demote records child from's complaint about a parent that has cur slots
// and says what the parent keeps: half per distinct complaining child
// within DemoteHold, none from the second complaint within GoneWindow. ok
// is false when from already complained within DemoteHold (a single false
// accuser costs an honest parent at most half its slots). complaints maps
// each complaining child to when; Demote expires old entries.
func Demote(complaints map[protocol.PeerID]time.Time, from protocol.PeerID, cur int, now time.Time) (next int, ok bool) {
	if at, seen := complaints[from]; seen && now.Sub(at) < DemoteHold {
		return cur, false
	}
	recent := 0
	for id, at := range complaints {
		switch {
		case now.Sub(at) >= DemoteHold:
			delete(complaints, id)
		case now.Sub(at) < GoneWindow:
			recent++
		}
	}
	complaints[from] = now
	if recent > 0 {
		return 0, true
	}
	return cur / 2, true
}

// Confirm caps next, the slots a peer's declared or measured uplink would
// earn it (Initial, Update), by what its children confirm (issue 18 #8):
// a peer may hold at most MaxUnconfirmed slots beyond the confirmed ones,
// those whose child reports receiving at least half a slot's rate from
// it. Both the declaration and the measurement come from the peer itself,
// and a modified one overstating them got up to the overlay's 256 child
// slots, and so the addresses of 256 children, without serving them.
// Children that are really served confirm and let it grow by
// MaxUnconfirmed a round; unserved ones never confirm, so a liar holds at
// most MaxUnconfirmed honest children it does not serve, whatever its
// sybil children confirm. A capacity already held is never cut here (the
// measurement and demotions lower it).
func (c Capacity) Confirm(cur, next, confirmed int) int {
	limit := confirmed + c.maxUnconfirmed()
	if next <= cur || next <= limit {
		return next
	}
	return max(cur, limit)
}

func (c Capacity) maxProbe() int {
	if c.MaxProbe > 0 {
		return c.MaxProbe
	}
	return 4 * max(c.Stripes, 1)
}

func (c Capacity) maxUnconfirmed() int {
	if c.MaxUnconfirmed > 0 {
		return c.MaxUnconfirmed
	}
	return max(c.maxProbe(), 8)
}

// Confirms reports whether a child's reported rate from its parent in one
// stripe, kbps, confirms the slot.
func (c Capacity) Confirms(kbps int) bool {
	return float64(kbps) >= c.slotKbps()/2
}
