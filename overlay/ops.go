package overlay

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"
)

func (f *Forest) begin() { f.changes = f.changes[:0] }

func (f *Forest) clampCap(c int) int32 {
	return int32(min(c, int(f.maxCap)))
}

func (f *Forest) validate(p PeerInfo) error {
	switch {
	case p.ID == Root || p.ID == Origin:
		return fmt.Errorf("overlay: join %d: reserved id: %w", p.ID, ErrInvalid)
	case p.Capacity < 0:
		return fmt.Errorf("overlay: join %d: negative capacity: %w", p.ID, ErrInvalid)
	case p.NAT >= natKinds:
		return fmt.Errorf("overlay: join %d: nat %d: %w", p.ID, p.NAT, ErrInvalid)
	case len(p.Locality) > MaxLocalityLen:
		return fmt.Errorf("overlay: join %d: locality longer than %d: %w", p.ID, MaxLocalityLen, ErrInvalid)
	}
	if _, dup := f.ids[p.ID]; dup {
		return fmt.Errorf("overlay: join %d: %w", p.ID, ErrDuplicatePeer)
	}
	return nil
}

// pickStripe chooses where a new interior peer forwards: the stripe where
// interior capacity is most needed, i.e. with the fewest free slots net of
// the peers waiting on the origin for one.
func (f *Forest) pickStripe() int {
	best, bestRoom := 0, int64(0)
	for s := 0; s < f.k; s++ {
		room := f.st[s].freeSlots - int64(len(f.st[s].detached))
		if s == 0 || room < bestRoom {
			best, bestRoom = s, room
		}
	}
	return best
}

// Join adds a peer and gives it one parent per stripe. A peer with capacity
// at least MinInteriorCapacity (and not NoUpload) becomes interior in one
// stripe. There it takes the shallowest free slot, or, when an attached leaf
// sits at a shallower level (or no slot is free), takes that leaf's place and
// adopts the leaf: strong peers go up, leaves go down, one extra move at most.
// In the other stripes it is a leaf at the shallowest free slot. Where no
// slot exists the parent is Origin (see Result.StripeErr).
func (f *Forest) Join(p PeerInfo) (Result, error) {
	if err := f.validate(p); err != nil {
		return Result{}, err
	}
	f.begin()
	x := f.alloc()
	n := &f.nodes[x]
	n.id, n.cap, n.nat, n.loc, n.noUpload = p.ID, f.clampCap(p.Capacity), p.NAT, f.intern(p.Locality), p.NoUpload
	f.ids[p.ID] = x
	f.live++
	home := -1
	if f.capable(n) {
		home = f.pickStripe()
		n.interior = int8(home)
		st := &f.st[home]
		st.freeSlots += int64(n.cap)
		f.lk(x, home).below = int64(n.cap)
	}
	for s := 0; s < f.k; s++ {
		slot := f.findSlot(s, x)
		if s == home {
			maxD := int32(math.MaxInt32)
			if slot >= 0 {
				maxD = f.lk(slot, s).depth // displacing L gives x depth(L) <= depth(slot)
			}
			L, lgood := f.findLeaf(s, x, maxD, none)
			if L >= 0 && (slot < 0 || lgood || !f.connOK(slot, x)) {
				q := f.lk(L, s).parent
				f.cut(s, L)
				f.hang(s, x, q)
				f.hang(s, L, x)
				f.emit(s, q, L, false)
				f.emit(s, q, x, true)
				f.emit(s, x, L, true)
				continue
			}
		}
		f.hang(s, x, slot)
		f.emit(s, slot, x, true)
	}
	f.settle()
	f.parents = f.parents[:0]
	for s := 0; s < f.k; s++ {
		f.parents = append(f.parents, f.parentID(x, s))
	}
	return Result{Parents: f.parents, Changes: f.changes}, nil
}

func (f *Forest) parentID(x int32, s int) PeerID {
	if p := f.lk(x, s).parent; p >= 0 {
		return f.nodes[p].id
	}
	return Origin
}

// Leave removes a peer (clean leave, lost websocket, missed heartbeats or
// eviction). In each stripe only its orphans are re-parented, each with its
// whole subtree: interior orphans first, strongest first, each to the
// shallowest eligible free slot (the departed peer's own slot included, so
// the strongest child usually takes its place and the subtree keeps its
// depth). An orphan with no slot anywhere is sent to the origin with its
// subtree. The only other edges that may change are origin-fed peers being
// attached to the slots the departure freed.
func (f *Forest) Leave(id PeerID) ([]Change, error) {
	x, err := f.lookup(id)
	if err != nil {
		return nil, fmt.Errorf("overlay: leave: %w", err)
	}
	f.begin()
	n := &f.nodes[x]
	for s := 0; s < f.k; s++ {
		f.emit(s, f.lk(x, s).parent, x, false)
		f.cut(s, x)
		orphans := f.orphans[:0]
		for c := f.lk(x, s).first; c >= 0; c = f.lk(c, s).next {
			orphans = append(orphans, c)
		}
		for _, c := range orphans {
			f.emit(s, x, c, false)
			f.cut(s, c)
		}
		f.drop(s, x)
		f.sortOrphans(s, orphans)
		for _, c := range orphans {
			p := f.findSlot(s, c)
			f.hang(s, c, p)
			f.emit(s, p, c, true)
		}
		f.orphans = orphans[:0]
	}
	f.syncPending(x) // no children left: leaves the pending list
	if n.suspect {
		f.unsuspect(x)
	}
	delete(f.ids, id)
	*n = node{ppos: none, interior: -1}
	f.spare = append(f.spare, x)
	f.live--
	f.settle()
	return f.changes, nil
}

// sortOrphans orders orphans interior (with subtree) first, by capacity.
func (f *Forest) sortOrphans(s int, o []int32) {
	if len(o) < 2 {
		return
	}
	slices.SortFunc(o, func(a, b int32) int {
		ia, ib := f.interiorIn(a, s), f.interiorIn(b, s)
		if ia != ib {
			if ia {
				return -1
			}
			return 1
		}
		return cmp.Compare(f.nodes[b].cap, f.nodes[a].cap)
	})
}

func (f *Forest) refill(now time.Time) {
	if now.IsZero() {
		return
	}
	if f.last.IsZero() {
		f.last = now
		return
	}
	if dt := now.Sub(f.last); dt > 0 {
		rate := f.moveRate()
		half := dt.Seconds() * rate / 2
		f.tokens = math.Min(f.burst, f.tokens+half)
		f.upkeep = math.Min(f.burst, f.upkeep+half)
		f.shedding = math.Min(math.Max(f.burst, rate), f.shedding+dt.Seconds()*rate)
		f.last = now
	}
}

// moveRate is the moves per second the two buckets share. Each gets half:
// at 10k viewers capacity updates (a few per peer per minute) spent the
// whole of a single bucket, 5,829 moves in 60 s, and Tick's shedding,
// rehoming and rebalancing got none. The rate grows with the forest
// (MovesPerPeer), since updates, departures and the depth they add do.
func (f *Forest) moveRate() float64 {
	return f.cfg.MovesPerSecond + f.cfg.MovesPerPeer*float64(f.live)
}

func (f *Forest) budget(perCall int) int {
	return min(perCall, int(f.tokens))
}

func (f *Forest) spend(moves int) { f.tokens -= float64(moves) }

// UpdateCapacity replaces a peer's capacity (typically with the one measured
// from its upload). now drives the move budget; pass the tracker's clock.
//
//   - A peer that becomes able to forward is made interior in the stripe
//     that needs capacity most.
//   - An interior peer is then moved up: it swaps with a shallower leaf if
//     one exists, or with its parent when it is stronger by SwapMargin; and
//     a strong child of a weakened peer is swapped above it.
//   - A peer whose capacity dropped below its fan-out sheds children to other
//     slots (or the origin). It gets no new children until it fits again.
//
// All moves count against MaxMovesPerUpdate and the MovesPerSecond bucket;
// what does not fit is finished by later calls or by Tick.
func (f *Forest) UpdateCapacity(id PeerID, capacity int, now time.Time) ([]Change, error) {
	x, err := f.lookup(id)
	if err != nil {
		return nil, fmt.Errorf("overlay: update capacity: %w", err)
	}
	if capacity < 0 {
		return nil, fmt.Errorf("overlay: update capacity %d: negative: %w", id, ErrInvalid)
	}
	f.begin()
	f.refill(now)
	budget := f.budget(f.cfg.MaxMovesPerUpdate)
	used := 0
	n := &f.nodes[x]
	c := f.clampCap(capacity)
	if s := int(n.interior); s >= 0 {
		oldCap := n.cap
		old := f.before(s, x)
		n.cap = c
		f.after(s, x, old)
		f.syncPending(x)
		used += f.shed(s, x, budget, false)
		if f.capable(n) && n.ppos < 0 {
			used += f.improve(s, x, budget-used, c < oldCap)
		}
	} else {
		n.cap = c
		if f.capable(n) {
			s := f.pickStripe()
			old := f.before(s, x)
			n.interior = int8(s)
			f.after(s, x, old)
			used += f.improve(s, x, budget, false)
		}
	}
	f.spend(used)
	f.settle()
	return f.changes, nil
}

// Tick spends its move budget (its own buckets, so capacity updates cannot
// starve it) refilled since the last call: first on peers
// still shedding children after a capacity drop, then on rebalancing (the
// deepest interior peers swap with shallower leaves, undoing the depth that
// departures add when orphan subtrees are re-hung lower). Call it
// periodically (every 100 ms to 1 s).
//
// Shedding spends the upkeep bucket first, as before, and then a bucket of
// its own at the full move rate, for moves to a free slot elsewhere only.
// A shedding peer's children are fed by an uplink measured too small for
// them: each one waits for its move with late chunks that the origin
// fills. With the half rate that rebalancing also drew on, the flash
// crowd's capacity cuts (every joiner guessed at K / uploading share
// slots, then measured) left 583 children over their parents' slots 2 s
// after a 6 Mbit/s ramp while every stripe had 150–270 free slots, and
// shedding took 14 s; late chunks from those parents were 10 % of the
// origin's bytes after the ramp (issue 16). Where no slot is free
// a child stays under its overloaded parent, which still delivers most
// of its chunks, rather than move to the origin for all of them: sending
// them there at the faster rate put 8,075 of a run's origin requests on
// origin-fed stripes (89.7 % offload against 93.6 %). The upkeep bucket
// pays first so that rebalancing gets what it did (more swaps measured
// worse at 3 Mbit/s: 98.12 % against 98.33 %).
func (f *Forest) Tick(now time.Time) []Change {
	f.begin()
	f.refill(now)
	budget := int(f.upkeep)
	used := 0
	work := append(f.work[:0], f.pending...)
	for _, x := range work {
		if used >= budget {
			break
		}
		if s := int(f.nodes[x].interior); s >= 0 {
			used += f.shed(s, x, budget-used, false)
		}
	}
	spare, extra := int(f.shedding), 0
	work = append(work[:0], f.pending...)
	for _, x := range work {
		if extra >= spare {
			break
		}
		if s := int(f.nodes[x].interior); s >= 0 {
			extra += f.shed(s, x, spare-extra, true)
		}
	}
	f.shedding -= float64(extra)
	f.work = work[:0]
	used += f.rehome(budget - used)
	used += f.rebalance(budget - used)
	f.upkeep -= float64(used)
	f.settle()
	return f.changes
}

// rehome moves interior peers from a stripe with spare slots to one whose
// peers wait on the origin for want of a slot. A peer's home is chosen when
// it joins, from a guessed capacity; the measured ones differ by a factor
// of ten (a 50 Mbit/s uplink next to a 4 Mbit/s one), so the stripes'
// supplies drift apart: at 6 Mbit/s one stripe ended a run with 103 free
// slots while the other three kept 344 viewers on the origin. SplitStream
// solves this with a spare capacity group that forwards any stripe; moving
// the home keeps each peer interior in one stripe, and so keeps a
// departure's cost at one subtree per viewer. A peer moves only when its
// whole capacity fits in the surplus, so the stripe it leaves keeps room
// for everyone (no oscillation); the cheapest peer moves (fewest children
// to re-place, each one move), the deepest first, as the shallow ones
// carry the most.
func (f *Forest) rehome(budget int) int {
	used := 0
	for tries := 0; tries < 4 && used < budget; tries++ {
		need, rich := -1, -1
		var deficit, surplus int64
		for s := range f.k {
			st := &f.st[s]
			d := int64(len(st.detached)) - st.freeSlots
			if d > deficit {
				need, deficit = s, d
			}
			if -d > surplus {
				rich, surplus = s, -d
			}
		}
		if need < 0 || rich < 0 {
			break
		}
		x := f.pickRehome(rich, surplus, budget-used-1)
		if x < 0 {
			break
		}
		// A leaf in rich first, so that its children's new places are
		// found elsewhere.
		n := &f.nodes[x]
		old := f.before(rich, x)
		n.interior = -1
		f.after(rich, x, old)
		for f.lk(x, rich).kids > 0 {
			f.shedOne(rich, x)
			used++
		}
		old = f.before(need, x)
		n.interior = int8(need)
		f.after(need, x, old)
		used++
	}
	return used
}

// pickRehome picks the interior peer of stripe s to move out: capable, not
// shedding or suspected, capacity within surplus, at most maxKids children;
// fewest children first, then the deepest. It looks at no more than
// rehomeInspect peers, so a Tick stays cheap at any audience.
func (f *Forest) pickRehome(s int, surplus int64, maxKids int) int32 {
	st := &f.st[s]
	best, bestKids := none, int32(maxKids)+1
	seen := 0
	for d := max(len(st.free), len(st.full)) - 1; d > 0 && bestKids > 0 && seen < rehomeInspect; d-- {
		for _, b := range [2][][]int32{st.free, st.full} {
			if d >= len(b) {
				continue
			}
			for _, x := range b[d] {
				if seen++; seen > rehomeInspect {
					break
				}
				n := &f.nodes[x]
				k := f.lk(x, s).kids
				if k >= bestKids || int64(n.cap) > surplus || n.ppos >= 0 || n.suspect || !f.capable(n) {
					continue
				}
				best, bestKids = x, k
				if k == 0 {
					return best
				}
			}
		}
	}
	return best
}

// rehomeInspect bounds pickRehome's search.
const rehomeInspect = 64

// rebalance lifts the deepest interior peers above shallower leaves, two
// moves per swap, in the stripe with the largest gap first.
func (f *Forest) rebalance(budget int) int {
	used := 0
	for tries := 0; used+2 <= budget && tries < 2*budget+8; tries++ {
		best, gap, at := -1, int32(0), int32(0)
		for s := 0; s < f.k; s++ {
			di, dl := f.deepestInterior(s), f.shallowestLeaf(s)
			if dl > 0 && di-dl > gap {
				best, gap, at = s, di-dl, di
			}
		}
		if best < 0 {
			break
		}
		st := &f.st[best]
		var b []int32
		if int(at) < len(st.full) && len(st.full[at]) > 0 {
			b = st.full[at]
		} else if int(at) < len(st.free) {
			b = st.free[at]
		}
		if len(b) == 0 {
			break
		}
		x := b[f.rand()%uint64(len(b))]
		if f.leafSwap(best, x) {
			used += 2
		}
	}
	return used
}

// deepestInterior returns the deepest level holding a non-root interior
// node of stripe s (0 if none).
func (f *Forest) deepestInterior(s int) int32 {
	st := &f.st[s]
	for d := max(len(st.full), len(st.free)) - 1; d > 0; d-- {
		if (d < len(st.full) && len(st.full[d]) > 0) || (d < len(st.free) && len(st.free[d]) > 0) {
			return int32(d)
		}
	}
	return 0
}

// shallowestLeaf returns the shallowest level holding an attached leaf of
// stripe s (0 if none).
func (f *Forest) shallowestLeaf(s int) int32 {
	for d, b := range f.st[s].leaves {
		if d > 0 && len(b) > 0 {
			return int32(d)
		}
	}
	return 0
}

// shed moves children of over-full x elsewhere, at most budget of them,
// leaves first; with slotOnly, only while a free slot outside the next
// one's subtree exists (findSlot may still pass over it, for a child that
// avoids its parent, and send the child to the origin). A peer that can no longer forward turns leaf
// once empty.
func (f *Forest) shed(s int, x int32, budget int, slotOnly bool) int {
	used := 0
	for used < budget && f.pendingIn(x, s) {
		if slotOnly && f.st[s].freeSlots-f.lk(f.pickShed(s, x), s).below <= 0 {
			break // every free slot is in that child's own subtree, or none is
		}
		f.shedOne(s, x)
		used++
	}
	f.relax(s, x)
	return used
}

// shedOne moves one child of x (pickShed's) to the best slot elsewhere, or
// to the origin.
func (f *Forest) shedOne(s int, x int32) {
	c := f.pickShed(s, x)
	f.cut(s, c)
	p := f.findSlot(s, c)
	f.hang(s, c, p)
	f.emit(s, x, c, false)
	f.emit(s, p, c, true)
}

// pickShed prefers a leaf child (cheap to move), else the smallest subtree
// root by fan-out.
func (f *Forest) pickShed(s int, x int32) int32 {
	best, bestKids := none, int32(math.MaxInt32)
	for c := f.lk(x, s).first; c >= 0; c = f.lk(c, s).next {
		k := f.lk(c, s).kids
		if !f.interiorIn(c, s) {
			return c
		}
		if k < bestKids {
			best, bestKids = c, k
		}
	}
	return best
}

// improve moves interior x up (strong up, weak down) with one swap, if the
// budget allows. It returns the moves made.
func (f *Forest) improve(s int, x int32, budget int, weakened bool) int {
	if budget >= 2 && f.leafSwap(s, x) {
		return 2
	}
	if budget >= 3 {
		if m := f.rotateUp(s, x); m > 0 {
			return m
		}
		if weakened {
			// The strongest interior child may now deserve x's place.
			best := none
			for c := f.lk(x, s).first; c >= 0; c = f.lk(c, s).next {
				if f.interiorIn(c, s) && (best < 0 || f.nodes[c].cap > f.nodes[best].cap) {
					best = c
				}
			}
			if best >= 0 {
				return f.rotateUp(s, best)
			}
		}
	}
	return 0
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// leafSwap exchanges interior x (and its subtree) with a leaf L at a
// shallower level: x takes L's slot, L takes x's. Two moves. Pairs must not
// get worse connectability-wise.
func (f *Forest) leafSwap(s int, x int32) bool {
	xl := f.lk(x, s)
	p := xl.parent
	if p < 0 || xl.depth <= 1 || f.pendingIn(p, s) {
		return false
	}
	L, _ := f.findLeaf(s, x, xl.depth-1, p)
	if L < 0 {
		return false
	}
	q := f.lk(L, s).parent
	oldBad := b2i(!f.connOK(p, x)) + b2i(!f.connOK(q, L))
	newBad := b2i(!f.connOK(q, x)) + b2i(!f.connOK(p, L))
	if newBad > oldBad {
		return false
	}
	f.cut(s, L)
	f.cut(s, x)
	f.hang(s, x, q)
	f.hang(s, L, p)
	f.emit(s, q, L, false)
	f.emit(s, p, x, false)
	f.emit(s, q, x, true)
	f.emit(s, p, L, true)
	return true
}

// rotateUp swaps interior y with its parent P when y is stronger by the
// margin: y takes P's slot and P becomes y's child. If y is full, one of its
// children moves to the slot y left under P, keeping its depth. 2–3 moves.
func (f *Forest) rotateUp(s int, y int32) int {
	yl := f.lk(y, s)
	P := yl.parent
	if P <= 0 || !f.interiorIn(y, s) || f.pendingIn(y, s) {
		return 0 // no parent, or parent is the root
	}
	g := f.lk(P, s).parent
	yn, pn := &f.nodes[y], &f.nodes[P]
	if g < 0 || yn.cap < pn.cap+f.margin || f.pendingIn(P, s) || f.pendingIn(g, s) ||
		f.avoids(yn, g) || f.avoids(pn, y) {
		return 0
	}
	c := none
	if f.free(y, s) == 0 {
		for k := yl.first; k >= 0; k = f.lk(k, s).next {
			if f.avoids(&f.nodes[k], P) {
				continue
			}
			if c < 0 || !f.interiorIn(k, s) {
				c = k
				if !f.interiorIn(k, s) {
					break
				}
			}
		}
		if c < 0 {
			return 0
		}
	}
	oldBad := b2i(!f.connOK(g, P)) + b2i(!f.connOK(P, y))
	newBad := b2i(!f.connOK(g, y)) + b2i(!f.connOK(y, P))
	if c >= 0 {
		oldBad += b2i(!f.connOK(y, c))
		newBad += b2i(!f.connOK(P, c))
	}
	if newBad > oldBad {
		return 0
	}
	f.cut(s, P)
	f.cut(s, y)
	moves := 2
	if c >= 0 {
		f.cut(s, c)
		f.hang(s, c, P)
		f.emit(s, y, c, false)
		f.emit(s, P, c, true)
		moves++
	}
	f.hang(s, y, g)
	f.hang(s, P, y)
	f.emit(s, g, P, false)
	f.emit(s, P, y, false)
	f.emit(s, g, y, true)
	f.emit(s, y, P, true)
	return moves
}

// ReportBadParent records that child could not connect to (or was fed bad
// data by) its parent in stripe s, and re-parents child, with its subtree,
// to a slot at another peer (or the origin). The reported parent is never
// chosen again for this child (the last few reports are remembered).
func (f *Forest) ReportBadParent(child PeerID, s int) ([]Change, error) {
	x, err := f.lookup(child)
	if err != nil {
		return nil, fmt.Errorf("overlay: report bad parent: %w", err)
	}
	if s < 0 || s >= f.k {
		return nil, fmt.Errorf("overlay: report bad parent %d: stripe %d: %w", child, s, ErrInvalid)
	}
	f.begin()
	p := f.lk(x, s).parent
	if p < 0 {
		return f.changes, nil // already on the origin
	}
	n := &f.nodes[x]
	n.avoid[n.avoidNext%avoidLen] = f.nodes[p].id
	n.avoidNext++
	f.relocate(s, x)
	f.settle()
	return f.changes, nil
}

// QuietWindow: the orphan of a parent that went quiet is re-hung under a
// peer heard from (Heard) within this window before the report, and below
// peers heard from within the tracker's suspicion delay (5/4
// StatsInterval). A peer that vanished with the parent was last heard
// before it went quiet; the report comes at least 0.75 s after its last
// delivery (the engine's liveness probe, peer/liveness.go), so such a
// peer was not heard in the window, while a live one's stats (every 2 s)
// fall in it three times in eight.
const QuietWindow = 750 * time.Millisecond

// ReportGoneParent is ReportBadParent for a parent that went quiet
// (silent, no connection), reported at now: it may have vanished with
// others (a mass departure) that nobody has reported yet, and each of
// those is a free slot where the orphan would wait out a connection that
// never comes, or, below one, a parent with nothing to send. So until
// child is hung under a peer again, in this stripe it takes only a peer
// heard from within QuietWindow before now whose ancestors were heard
// from within 5/4 StatsInterval (heardOK); with none it waits on the
// origin (settle tries again; Alive). Peers never Heard count as heard.
func (f *Forest) ReportGoneParent(child PeerID, s int, now time.Time) ([]Change, error) {
	x, err := f.lookup(child)
	if err != nil {
		return nil, fmt.Errorf("overlay: report gone parent: %w", err)
	}
	if s < 0 || s >= f.k {
		return nil, fmt.Errorf("overlay: report gone parent %d: stripe %d: %w", child, s, ErrInvalid)
	}
	if l := f.lk(x, s); l.parent >= 0 {
		l.quiet = now.UnixNano()
	}
	return f.ReportBadParent(child, s)
}

// Heard records that the tracker heard from id at t (its stats): see
// ReportGoneParent.
func (f *Forest) Heard(id PeerID, t time.Time) {
	if x, err := f.lookup(id); err == nil {
		f.nodes[x].heard = t.UnixNano()
	}
}

// LastHeard is when the tracker last heard from id (Heard); zero if never
// or unknown.
func (f *Forest) LastHeard(id PeerID) time.Time {
	x, err := f.lookup(id)
	if err != nil || f.nodes[x].heard == 0 {
		return time.Time{}
	}
	return time.Unix(0, f.nodes[x].heard)
}

// Suspect records that a child reported id's feed gone (silent, no
// connection): until the tracker hears from id again (Alive), no peer is
// placed under it, in any stripe. Its current children stay. Without this
// a vanished parent the tracker has not timed out yet is where every
// re-parented orphan lands: its children leaving free its slots, and it is
// high in the tree. The root is never suspect.
func (f *Forest) Suspect(id PeerID) error {
	if id == Root {
		return nil
	}
	x, err := f.lookup(id)
	if err != nil {
		return fmt.Errorf("overlay: suspect: %w", err)
	}
	if !f.nodes[x].suspect {
		f.nodes[x].suspect = true
		f.suspects = append(f.suspects, x)
	}
	return nil
}

// Alive records that the tracker heard from id (its stats): a suspect may
// take children again, and origin-fed peers may attach to it at once
// (orphans of a quiet parent wait on the origin for a peer heard from
// since, ReportGoneParent).
func (f *Forest) Alive(id PeerID) ([]Change, error) {
	f.begin()
	if id == Root {
		return f.changes, nil
	}
	x, err := f.lookup(id)
	if err != nil {
		return nil, fmt.Errorf("overlay: alive: %w", err)
	}
	wake := f.nodes[x].suspect
	if wake {
		f.unsuspect(x)
	}
	for s := 0; s < f.k && !wake; s++ {
		wake = f.free(x, s) > 0 // what a waiting orphan may take now
	}
	if wake {
		f.settle()
	}
	return f.changes, nil
}

func (f *Forest) unsuspect(x int32) {
	f.nodes[x].suspect = false
	if i := slices.Index(f.suspects, x); i >= 0 {
		f.suspects = slices.Delete(f.suspects, i, i+1)
	}
}

// SetNAT records a peer's NAT type once ICE has learned it, and moves the
// peer, and its children, off pairs that are now known not to connect when
// a connectable slot exists within NATSlack levels.
func (f *Forest) SetNAT(id PeerID, nat NAT) ([]Change, error) {
	x, err := f.lookup(id)
	if err != nil {
		return nil, fmt.Errorf("overlay: set nat: %w", err)
	}
	if nat >= natKinds {
		return nil, fmt.Errorf("overlay: set nat %d: kind %d: %w", id, nat, ErrInvalid)
	}
	f.begin()
	n := &f.nodes[x]
	n.nat = nat
	for s := 0; s < f.k; s++ {
		if p := f.lk(x, s).parent; p >= 0 && !f.connOK(p, x) {
			f.tryReconnect(s, x)
		}
	}
	if s := int(n.interior); s >= 0 {
		kids := f.orphans[:0]
		for c := f.lk(x, s).first; c >= 0; c = f.lk(c, s).next {
			if !f.connOK(x, c) {
				kids = append(kids, c)
			}
		}
		for _, c := range kids {
			f.tryReconnect(s, c)
		}
		f.orphans = kids[:0]
	}
	f.settle()
	return f.changes, nil
}

// tryReconnect moves x to a connectable parent if findSlot offers one;
// otherwise x stays where it is.
func (f *Forest) tryReconnect(s int, x int32) {
	old := f.lk(x, s).parent
	if f.nodes[old].ppos >= 0 {
		return // old is shedding children anyway
	}
	f.cut(s, x)
	p := f.findSlot(s, x)
	if p < 0 || p == old || !f.connOK(p, x) {
		f.hang(s, x, old) // old's slot is the one x just left
		return
	}
	f.hang(s, x, p)
	f.emit(s, old, x, false)
	f.emit(s, p, x, true)
}
