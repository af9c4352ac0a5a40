package overlay

import (
	"errors"
	"fmt"
)

// Check verifies every invariant of the forest from scratch and returns the
// first violation found. It is O(N*K) plus one ancestor walk per origin-fed
// peer and per avoided parent; meant for tests, fuzzing and debug endpoints.
//
// Per stripe:
//   - every live non-root peer has exactly one parent, or is fed by the origin
//     (then it is in the origin list and at depth 1); none is left in transit;
//   - parent pointers and child lists agree; kids counts match;
//   - every peer is reachable from the seeder or an origin-fed peer (so there
//     are no cycles) and its stored depth is its distance from there;
//   - only the root and the peer's interior stripe have children (a peer is
//     interior in at most one stripe), and fan-out never exceeds capacity
//     except for peers on the pending-shed list, which get no new children;
//   - the free-slot and leaf buckets, the per-depth counts, the subtree free
//     sums and the stripe free total match the tree;
//   - no origin-fed peer could be attached to a free slot (origin fallback is
//     only used when the trees are full for that peer; an orphan of a quiet
//     parent waits there for a peer heard from since, findSlot).
//
// Globally: the id map, the spare list and the pending list are consistent,
// and a peer is interior exactly when it can forward (or is still shedding).
func (f *Forest) Check() error {
	if err := f.checkNodes(); err != nil {
		return err
	}
	for s := 0; s < f.k; s++ {
		if err := f.checkStripe(s); err != nil {
			return fmt.Errorf("overlay: check stripe %d: %w", s, err)
		}
	}
	return nil
}

func (f *Forest) checkNodes() error {
	if len(f.links) != len(f.nodes)*f.k {
		return errors.New("overlay: check: links/nodes size mismatch")
	}
	live := 0
	for i := range f.nodes {
		n := &f.nodes[i]
		if !n.live {
			continue
		}
		if i > 0 {
			live++
		}
		if j, ok := f.ids[n.id]; !ok || j != int32(i) {
			return fmt.Errorf("overlay: check: node %d (peer %d) not in id map", i, n.id)
		}
		if i == 0 {
			continue
		}
		if n.interior < -1 || int(n.interior) >= f.k {
			return fmt.Errorf("overlay: check: peer %d interior stripe %d", n.id, n.interior)
		}
		if n.noUpload && n.interior >= 0 && f.lk(int32(i), int(n.interior)).kids == 0 {
			return fmt.Errorf("overlay: check: no-upload peer %d is interior", n.id)
		}
		if f.capable(n) && n.interior < 0 {
			return fmt.Errorf("overlay: check: peer %d (capacity %d) forwards nowhere", n.id, n.cap)
		}
		if !f.capable(n) && n.interior >= 0 && f.lk(int32(i), int(n.interior)).kids == 0 {
			return fmt.Errorf("overlay: check: weak peer %d (capacity %d) is interior without children", n.id, n.cap)
		}
		pend := n.interior >= 0 && f.pendingIn(int32(i), int(n.interior))
		if pend != (n.ppos >= 0) {
			return fmt.Errorf("overlay: check: peer %d pending=%v but ppos=%d", n.id, pend, n.ppos)
		}
		if n.ppos >= 0 && (int(n.ppos) >= len(f.pending) || f.pending[n.ppos] != int32(i)) {
			return fmt.Errorf("overlay: check: peer %d pending position", n.id)
		}
	}
	if live != f.live || len(f.ids) != live+1 {
		return fmt.Errorf("overlay: check: live %d, counted %d, ids %d", f.live, live, len(f.ids))
	}
	for _, i := range f.spare {
		if f.nodes[i].live {
			return fmt.Errorf("overlay: check: spare node %d is live", i)
		}
	}
	if len(f.spare)+live+1 != len(f.nodes) {
		return fmt.Errorf("overlay: check: %d spare + %d live + root != %d nodes", len(f.spare), live, len(f.nodes))
	}
	return nil
}

func (f *Forest) checkStripe(s int) error {
	st := &f.st[s]
	nn := int32(len(f.nodes))
	kids := make([]int32, nn)
	for i := int32(0); i < nn; i++ {
		if !f.nodes[i].live {
			continue
		}
		l := f.lk(i, s)
		if i == 0 {
			if l.parent != none || l.depth != 0 || l.dpos != none {
				return errors.New("root has a parent")
			}
			continue
		}
		switch {
		case l.parent >= 0:
			if l.parent >= nn || !f.nodes[l.parent].live {
				return fmt.Errorf("peer %d has dead parent", f.nodes[i].id)
			}
			if l.dpos != none {
				return fmt.Errorf("peer %d attached and origin-fed", f.nodes[i].id)
			}
			kids[l.parent]++
		case l.dpos >= 0:
			if int(l.dpos) >= len(st.detached) || st.detached[l.dpos] != i {
				return fmt.Errorf("peer %d origin list position", f.nodes[i].id)
			}
		default:
			return fmt.Errorf("peer %d has no parent in stripe (left in transit)", f.nodes[i].id)
		}
	}
	// Child lists against parent pointers.
	for i := int32(0); i < nn; i++ {
		if !f.nodes[i].live {
			continue
		}
		l := f.lk(i, s)
		if l.kids != kids[i] {
			return fmt.Errorf("peer %d kids %d, counted %d", f.nodes[i].id, l.kids, kids[i])
		}
		cnt, prev := int32(0), none
		for c := l.first; c >= 0; c = f.lk(c, s).next {
			if cnt++; cnt > kids[i] {
				return fmt.Errorf("peer %d child list longer than its children", f.nodes[i].id)
			}
			cl := f.lk(c, s)
			if cl.parent != i || cl.prev != prev {
				return fmt.Errorf("peer %d child list corrupt at %d", f.nodes[i].id, f.nodes[c].id)
			}
			prev = c
		}
		if cnt != kids[i] {
			return fmt.Errorf("peer %d child list has %d of %d", f.nodes[i].id, cnt, kids[i])
		}
		if i != 0 && !f.interiorIn(i, s) && kids[i] > 0 {
			return fmt.Errorf("peer %d has children outside its interior stripe %d", f.nodes[i].id, f.nodes[i].interior)
		}
		if kids[i] > f.slots(i, s) && f.nodes[i].ppos < 0 {
			return fmt.Errorf("peer %d fan-out %d above capacity %d", f.nodes[i].id, kids[i], f.slots(i, s))
		}
	}
	// Reachability, depths and subtree sums, by a BFS from the roots.
	depth := make([]int32, nn)
	seen := make([]bool, nn)
	order := make([]int32, 0, f.live+1)
	roots := append([]int32{0}, st.detached...)
	for _, r := range roots {
		if seen[r] {
			return fmt.Errorf("peer %d listed twice as a root", f.nodes[r].id)
		}
		seen[r] = true
		depth[r] = 1
		if r == 0 {
			depth[r] = 0
		}
		order = append(order, r)
	}
	for q := 0; q < len(order); q++ {
		j := order[q]
		for c := f.lk(j, s).first; c >= 0; c = f.lk(c, s).next {
			if seen[c] {
				return fmt.Errorf("peer %d reached twice (cycle)", f.nodes[c].id)
			}
			seen[c] = true
			depth[c] = depth[j] + 1
			order = append(order, c)
		}
	}
	if len(order) != f.live+1 {
		return fmt.Errorf("%d peers reachable of %d (cycle or lost subtree)", len(order)-1, f.live)
	}
	below := make([]int64, nn)
	var total int64
	count := make([]int32, len(st.count))
	for q := len(order) - 1; q >= 0; q-- {
		j := order[q]
		l := f.lk(j, s)
		if l.depth != depth[j] {
			return fmt.Errorf("peer %d depth %d, actual %d", f.nodes[j].id, l.depth, depth[j])
		}
		if int(l.depth) >= len(count) {
			return fmt.Errorf("peer %d depth %d beyond counts", f.nodes[j].id, l.depth)
		}
		count[l.depth]++
		fr := int64(f.free(j, s))
		total += fr
		below[j] += fr
		if l.below != below[j] {
			return fmt.Errorf("peer %d subtree free %d, actual %d", f.nodes[j].id, l.below, below[j])
		}
		if l.parent >= 0 {
			below[l.parent] += below[j]
		}
		// Bucket membership.
		var want uint8
		switch {
		case f.interiorIn(j, s):
			want = inFree
			if fr == 0 {
				want = inFull
			}
		case l.parent >= 0:
			want = inLeaf
		}
		if l.where != want {
			return fmt.Errorf("peer %d in bucket %d, want %d", f.nodes[j].id, l.where, want)
		}
		if want != inNone {
			b := *st.buckets(want)
			if int(l.depth) >= len(b) || int(l.pos) >= len(b[l.depth]) || b[l.depth][l.pos] != j {
				return fmt.Errorf("peer %d bucket position", f.nodes[j].id)
			}
		}
	}
	if total != st.freeSlots {
		return fmt.Errorf("free slots %d, actual %d", st.freeSlots, total)
	}
	for d := range count {
		if count[d] != st.count[d] {
			return fmt.Errorf("depth %d count %d, actual %d", d, st.count[d], count[d])
		}
	}
	n := 0
	for _, kind := range []uint8{inFree, inFull, inLeaf} {
		for _, b := range *st.buckets(kind) {
			n += len(b)
		}
	}
	indexed := 0
	for _, j := range order {
		if f.lk(j, s).where != inNone {
			indexed++
		}
	}
	if n != indexed {
		return fmt.Errorf("buckets hold %d entries, %d nodes indexed", n, indexed)
	}
	for _, r := range st.detached {
		if f.lk(r, s).quiet != 0 {
			continue // an orphan of a quiet parent waits for a heard one
		}
		if f.attachable(s, r) {
			return fmt.Errorf("origin-fed peer %d could be attached to a free slot", f.nodes[r].id)
		}
	}
	return nil
}
