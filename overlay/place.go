package overlay

// cand is a placement candidate with its tie-breakers.
type cand struct {
	i     int32
	good  bool  // pair known to connect
	fresh bool  // may take an orphan of a quiet parent (heardOK)
	local bool  // same locality
	free  int32 // free slots (more is better: spreads load, keeps room)
}

// better orders candidates of the same depth: liveness, connectability,
// locality, room.
func better(a, b cand) bool {
	if b.i < 0 {
		return true
	}
	if a.fresh != b.fresh {
		return a.fresh
	}
	if a.good != b.good {
		return a.good
	}
	if a.local != b.local {
		return a.local
	}
	return a.free > b.free
}

// findSlot picks the parent for in-transit (or new) x in stripe s: the
// shallowest node with a free slot that is not in x's subtree and that x did
// not report bad. Among the shallowest level, Sample eligible candidates are
// compared; a pair known not to connect is taken only when no good pair
// exists within NATSlack further levels. It returns none when no eligible
// slot exists anywhere (the caller then sends x to the origin).
//
// For the orphan of a parent that went quiet (ReportGoneParent, link.quiet
// set) a slot that may have vanished with that parent (!heardOK) is never
// taken, and a good one at any depth beats a shallower bad one: after a
// mass departure a wrong guess costs the answer timeout (1.5 s, then 3 s)
// and the origin feeds at once.
//
// Cost: O(levels + Sample) normally; the fallback search is O(depth *
// fan-out) and only runs when sampling found nothing.
func (f *Forest) findSlot(s int, x int32) int32 {
	st := &f.st[s]
	xl := f.lk(x, s)
	if st.freeSlots-xl.below <= 0 {
		return none // every free slot is in x's own subtree
	}
	gone := xl.quiet != 0
	bad, badDepth := none, 0
	for d := 0; d < len(st.free); d++ {
		b := st.free[d]
		if len(b) == 0 {
			continue
		}
		if bad >= 0 && d > badDepth+f.natSlack && !gone {
			break
		}
		c := f.scanFree(s, b, x)
		if c.i < 0 || !c.fresh {
			continue
		}
		if c.good {
			return c.i
		}
		if bad < 0 {
			bad, badDepth = c.i, d
		}
	}
	if bad >= 0 {
		return bad
	}
	if gone {
		return none // sampled only: the origin until a heard slot turns up
	}
	return f.searchDirected(s, x)
}

// scanFree compares up to Sample eligible entries of one depth bucket,
// starting at a random offset (so load spreads over the level). It keeps
// looking, up to inspect entries, while it has found no connectable one.
func (f *Forest) scanFree(s int, b []int32, x int32) cand {
	xn := &f.nodes[x]
	hasSub := f.lk(x, s).kids > 0
	n := len(b)
	j := int(f.rand() % uint64(n))
	best := cand{i: none}
	seen := 0
	quiet := f.lk(x, s).quiet
	for k := 0; k < n && k < f.inspect; k++ {
		c := b[j]
		if j++; j == n {
			j = 0
		}
		if c == x || f.avoids(xn, c) || (hasSub && f.inSubtree(s, c, x)) {
			continue
		}
		cd := cand{i: c, good: f.connOK(c, x) && !f.starved(s, c), fresh: f.heardOK(s, c, quiet), local: f.near(c, x), free: f.free(c, s)}
		if better(cd, best) {
			best = cd
		}
		if seen++; seen >= f.sample && best.good && best.fresh {
			break
		}
	}
	return best
}

// starved reports whether c is fed in stripe s through a suspect (a peer a
// child reported gone, Forest.Suspect): its children stay in place until
// the tracker times it out, and their free slots are fed by nobody, so such
// a slot counts as a pair that does not connect: taken only when nothing
// better is within NATSlack levels. Suspects are few; a walk to the root
// is O(depth).
func (f *Forest) starved(s int, c int32) bool {
	if len(f.suspects) == 0 {
		return false
	}
	for p := c; p > 0; p = f.lk(p, s).parent {
		if f.nodes[p].suspect {
			return true
		}
	}
	return false
}

// heardOK reports whether c may take a node whose parent was reported
// quiet at quiet (link.quiet; 0: any may): c was heard from within
// QuietWindow before that, and every peer above it within 5/4
// StatsInterval (the tracker's suspicion delay): either may have vanished
// with the quiet parent, and below a vanished one c has nothing to send.
// O(depth).
func (f *Forest) heardOK(s int, c int32, quiet int64) bool {
	if quiet == 0 || c == 0 {
		return true
	}
	if h := f.nodes[c].heard; h != 0 && h < quiet-int64(QuietWindow) {
		return false
	}
	stale := quiet - int64(f.cfg.StatsInterval*5/4)
	for p := f.lk(c, s).parent; p > 0; p = f.lk(p, s).parent {
		if h := f.nodes[p].heard; h != 0 && h < stale {
			return false
		}
	}
	return true
}

// searchDirected finds any eligible free slot by descending from the roots
// (the seeder and the detached nodes) only into subtrees whose free-slot sum
// is positive. x is in transit, so its own subtree is unreachable.
func (f *Forest) searchDirected(s int, x int32) int32 {
	if c := f.dfsFree(s, 0, x); c >= 0 {
		return c
	}
	for _, r := range f.st[s].detached {
		if c := f.dfsFree(s, r, x); c >= 0 {
			return c
		}
	}
	return none
}

func (f *Forest) dfsFree(s int, r, x int32) int32 {
	if f.lk(r, s).below <= 0 {
		return none
	}
	xn := &f.nodes[x]
	stack := append(f.stack[:0], r)
	defer func() { f.stack = stack[:0] }()
	for len(stack) > 0 {
		j := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if j != x && f.free(j, s) > 0 && !f.avoids(xn, j) {
			return j
		}
		for c := f.lk(j, s).first; c >= 0; c = f.lk(c, s).next {
			if c != x && f.lk(c, s).below > 0 {
				stack = append(stack, c)
			}
		}
	}
	return none
}

// findLeaf looks, from depth 1 down to maxDepth, for the shallowest attached
// leaf L (in stripe s) whose place x can take, with L moving under np (np ==
// none means under x). Leaves of a shedding parent are skipped: their slot is
// not one to hand on. It returns L and whether both new pairs connect.
func (f *Forest) findLeaf(s int, x int32, maxDepth int32, np int32) (int32, bool) {
	st := &f.st[s]
	xn := &f.nodes[x]
	lim := min(int(maxDepth), len(st.leaves)-1)
	for d := 1; d <= lim; d++ {
		b := st.leaves[d]
		n := len(b)
		if n == 0 {
			continue
		}
		j := int(f.rand() % uint64(n))
		best := cand{i: none}
		seen := 0
		for k := 0; k < n && k < f.inspect; k++ {
			L := b[j]
			if j++; j == n {
				j = 0
			}
			q := f.lk(L, s).parent
			to := np
			if to < 0 {
				to = x
			}
			if L == x || q == x || f.nodes[q].ppos >= 0 || f.avoids(xn, q) || f.avoids(&f.nodes[L], to) {
				continue
			}
			cd := cand{i: L, good: f.connOK(q, x) && f.connOK(to, L), local: f.near(q, x)}
			if better(cd, best) {
				best = cd
			}
			if seen++; seen >= f.sample && best.good {
				break
			}
		}
		if best.i >= 0 {
			return best.i, best.good
		}
	}
	return none, false
}

// attachable reports whether detached r could be attached somewhere: some
// free slot lies outside its subtree at a node it did not report bad.
func (f *Forest) attachable(s int, r int32) bool {
	out := f.st[s].freeSlots - f.lk(r, s).below
	if out <= 0 {
		return false
	}
	for _, a := range f.nodes[r].avoid {
		if a == Origin {
			continue
		}
		ai, ok := f.ids[a]
		if !ok || f.nodes[ai].suspect {
			continue // suspects are counted once, below
		}
		if fr := f.free(ai, s); fr > 0 && !f.inSubtree(s, ai, r) {
			out -= int64(fr)
		}
	}
	for _, x := range f.suspects {
		if fr := f.free(x, s); fr > 0 && !f.inSubtree(s, x, r) {
			out -= int64(fr)
		}
	}
	return out > 0
}

// settle attaches origin-fed (detached) nodes wherever a slot is free. After
// it, no detached node is attachable: origin fallback is used only when the
// trees are truly full. Cheap when nothing is detached or nothing is free.
func (f *Forest) settle() {
	for s := 0; s < f.k; s++ {
		st := &f.st[s]
		if len(st.detached) == 0 || st.freeSlots <= 0 {
			continue
		}
		roots := append(f.work[:0], st.detached...)
		waits := 0 // orphans of a quiet parent tried (each sampled: O(levels × inspect × depth))
		for _, r := range roots {
			if st.freeSlots <= 0 {
				break
			}
			if !f.attachable(s, r) {
				continue
			}
			if f.lk(r, s).quiet != 0 {
				// A few per call: one that finds no heard slot goes to the
				// back of the detached list, so the calls take turns.
				if waits >= f.sample {
					continue
				}
				waits++
			}
			f.cut(s, r)
			p := f.findSlot(s, r)
			f.hang(s, r, p)
			if p >= 0 {
				f.emit(s, none, r, false)
				f.emit(s, p, r, true)
			}
		}
		f.work = roots[:0]
	}
}

// relocate moves x (with its subtree) to the best slot findSlot offers, or
// to the origin, and records the change.
func (f *Forest) relocate(s int, x int32) int32 {
	old := f.lk(x, s).parent
	f.cut(s, x)
	p := f.findSlot(s, x)
	f.hang(s, x, p)
	if p != old {
		f.emit(s, old, x, false)
		f.emit(s, p, x, true)
	}
	return p
}
