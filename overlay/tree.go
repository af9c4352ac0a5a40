package overlay

import (
	"fmt"
	"time"
)

// none marks an absent index.
const none = int32(-1)

// avoidLen is how many parents a peer remembers as "reported bad".
const avoidLen = 4

// Bucket membership of a (node, stripe).
const (
	inNone uint8 = iota
	inFree       // interior in the stripe with a free slot: st.free[depth]
	inFull       // interior in the stripe without a free slot: st.full[depth]
	inLeaf       // leaf in the stripe and attached: st.leaves[depth]
)

// link is one node's place in one stripe tree. Children are an intrusive
// doubly linked list (first/prev/next) so that adding and removing a child is
// O(1) without a per-node slice.
//
// A non-root node is in one of three states per stripe:
//   - attached: parent >= 0;
//   - detached: parent == none, dpos >= 0 — it is fed by the origin (depth 1)
//     and may still feed its own subtree;
//   - in transit: parent == none, dpos == none — only inside one call, while
//     being re-placed.
type link struct {
	below  int64 // free slots in the subtree rooted here, this node included
	parent int32
	first  int32
	prev   int32
	next   int32
	kids   int32
	depth  int32
	pos    int32 // position in the bucket named by where
	dpos   int32 // position in stripe.detached
	where  uint8
	// quiet (Unix ns, 0 none): when its parent here was reported quiet
	// (ReportGoneParent); cleared when it is hung under a peer. Until then
	// only peers heard from since (heardOK) may take it.
	quiet int64
}

// node is the per-peer state shared by all stripes.
type node struct {
	id        PeerID
	avoid     [avoidLen]PeerID // parents this peer reported bad (Origin = empty)
	cap       int32            // capacity (children) in the interior stripe
	ppos      int32            // position in Forest.pending, or none
	loc       uint16           // interned locality, 0 = unknown
	interior  int8             // stripe where interior, -1 if leaf everywhere
	nat       NAT
	noUpload  bool
	live      bool
	suspect   bool  // reported gone by a child and not heard from since
	heard     int64 // when the tracker last heard from it (Heard), Unix ns; 0 unknown
	avoidNext uint8
}

// stripe holds one tree's indexes.
type stripe struct {
	free      [][]int32 // by depth: interior nodes with a free slot
	full      [][]int32 // by depth: interior nodes without one (rebalancing)
	leaves    [][]int32 // by depth: attached non-interior nodes (displaceable)
	count     []int32   // by depth: nodes (root included, at 0)
	detached  []int32   // nodes fed by the origin in this stripe
	freeSlots int64     // sum of free slots over all nodes
}

// Forest is the overlay of one stream: K stripe trees over the same peers.
// It is not safe for concurrent use; the tracker serialises calls per stream.
type Forest struct {
	cfg      Config
	k        int
	rootCap  int32
	minCap   int32
	maxCap   int32
	sample   int
	inspect  int
	natSlack int
	margin   int32
	conn     func(parent, child NAT) bool

	nodes []node
	links []link // len(nodes)*k, node-major
	ids   map[PeerID]int32
	spare []int32 // free node indexes
	// suspects are the nodes no peer may be placed under (Suspect); few.
	suspects []int32
	live     int // peers, root excluded

	st []stripe

	locs     map[string]uint16
	locNames []string // by interned value - 1

	pending []int32 // interior nodes with more children than capacity

	// The move budget is three token buckets: tokens for UpdateCapacity,
	// upkeep for Tick, shedding for Tick's shedding (see refill).
	tokens, upkeep, shedding float64
	burst                    float64
	last                     time.Time

	rng uint64

	// Scratch buffers reused between calls (no allocation per op).
	changes []Change
	parents []PeerID
	stack   []int32
	orphans []int32
	work    []int32
}

// New creates a forest holding only the root (the seeder).
func New(cfg Config) (*Forest, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	f := &Forest{
		cfg:      c,
		k:        c.Stripes,
		rootCap:  int32(c.RootCapacity),
		minCap:   int32(max(c.MinInteriorCapacity, 1)),
		maxCap:   int32(c.MaxCapacity),
		sample:   c.Sample,
		inspect:  max(8*c.Sample, 64),
		natSlack: c.NATSlack,
		margin:   int32(c.SwapMargin),
		conn:     c.Connectable,
		ids:      make(map[PeerID]int32),
		st:       make([]stripe, c.Stripes),
		locs:     make(map[string]uint16),
		burst:    c.burst(),
		rng:      c.Seed ^ 0x9e3779b97f4a7c15,
	}
	f.tokens, f.upkeep, f.shedding = f.burst, f.burst, f.burst
	r := f.alloc()
	n := &f.nodes[r]
	n.id, n.nat, n.loc, n.interior = Root, c.RootNAT, f.intern(c.RootLocality), -1
	f.ids[Root] = r
	for s := 0; s < f.k; s++ {
		st := &f.st[s]
		st.count = []int32{1}
		st.freeSlots = int64(f.rootCap)
		f.lk(r, s).below = int64(f.rootCap)
		f.index(s, r)
	}
	return f, nil
}

// alloc returns a fresh node index with reset links (depth 0, counted).
func (f *Forest) alloc() int32 {
	var i int32
	if n := len(f.spare); n > 0 {
		i = f.spare[n-1]
		f.spare = f.spare[:n-1]
	} else {
		i = int32(len(f.nodes))
		f.nodes = append(f.nodes, node{})
		for s := 0; s < f.k; s++ {
			f.links = append(f.links, link{})
		}
	}
	f.nodes[i] = node{live: true, ppos: none, interior: -1}
	for a := range f.nodes[i].avoid {
		f.nodes[i].avoid[a] = Origin
	}
	for s := 0; s < f.k; s++ {
		*f.lk(i, s) = link{parent: none, first: none, prev: none, next: none, pos: none, dpos: none}
		if i != 0 {
			f.st[s].count[0]++
		}
	}
	return i
}

func (f *Forest) lk(i int32, s int) *link { return &f.links[int(i)*f.k+s] }

func (f *Forest) rand() uint64 {
	// splitmix64: deterministic, no shared state.
	f.rng += 0x9e3779b97f4a7c15
	z := f.rng
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (f *Forest) intern(loc string) uint16 {
	if loc == "" {
		return 0
	}
	if v, ok := f.locs[loc]; ok {
		return v
	}
	if len(f.locs) >= f.cfg.MaxLocalities {
		return 0
	}
	v := uint16(len(f.locs) + 1)
	f.locs[loc] = v
	f.locNames = append(f.locNames, loc)
	return v
}

func (f *Forest) capable(n *node) bool { return !n.noUpload && n.cap >= f.minCap }

// slots is how many children node i may have in stripe s.
func (f *Forest) slots(i int32, s int) int32 {
	if i == 0 {
		return f.rootCap
	}
	n := &f.nodes[i]
	if int(n.interior) != s || !f.capable(n) {
		return 0
	}
	return n.cap
}

func (f *Forest) free(i int32, s int) int32 {
	if v := f.slots(i, s) - f.lk(i, s).kids; v > 0 {
		return v
	}
	return 0
}

func (f *Forest) interiorIn(i int32, s int) bool { return i == 0 || int(f.nodes[i].interior) == s }

// pendingIn reports a node that has more children than slots (capacity
// dropped, shedding is rate limited).
func (f *Forest) pendingIn(i int32, s int) bool { return f.lk(i, s).kids > f.slots(i, s) }

func (f *Forest) connOK(p, c int32) bool { return f.conn(f.nodes[p].nat, f.nodes[c].nat) }

func (f *Forest) near(a, b int32) bool {
	la := f.nodes[a].loc
	return la != 0 && la == f.nodes[b].loc
}

// avoids reports whether the peer described by n may not get c as a new
// parent: n reported c bad, or c is suspected gone (Forest.Suspect).
func (f *Forest) avoids(n *node, c int32) bool {
	if f.nodes[c].suspect {
		return true // nobody gets a parent that may be gone
	}
	id := f.nodes[c].id
	for _, a := range n.avoid {
		if a == id {
			return true
		}
	}
	return false
}

func (st *stripe) buckets(kind uint8) *[][]int32 {
	switch kind {
	case inFree:
		return &st.free
	case inFull:
		return &st.full
	}
	return &st.leaves
}

func (st *stripe) bucket(kind uint8, d int32) *[]int32 {
	bs := st.buckets(kind)
	for int(d) >= len(*bs) {
		*bs = append(*bs, nil)
	}
	return &(*bs)[d]
}

func (f *Forest) unindex(s int, i int32) {
	l := f.lk(i, s)
	if l.where == inNone {
		return
	}
	b := f.st[s].bucket(l.where, l.depth)
	last := len(*b) - 1
	moved := (*b)[last]
	(*b)[l.pos] = moved
	f.lk(moved, s).pos = l.pos
	*b = (*b)[:last]
	l.where, l.pos = inNone, none
}

// index puts a placed node into the bucket its role and free slots call for.
func (f *Forest) index(s int, i int32) {
	l := f.lk(i, s)
	if l.where != inNone || (i != 0 && l.parent < 0 && l.dpos < 0) {
		return // already indexed, or in transit
	}
	var kind uint8
	switch {
	case f.interiorIn(i, s):
		kind = inFree
		if f.free(i, s) == 0 {
			kind = inFull
		}
	case l.parent >= 0:
		kind = inLeaf
	default:
		return // detached leaves cannot be displaced
	}
	b := f.st[s].bucket(kind, l.depth)
	l.where, l.pos = kind, int32(len(*b))
	*b = append(*b, i)
}

// before and after bracket any change to a node's kids, capacity or role:
// they keep the bucket, the stripe's free count and the subtree free sums
// (below) of all ancestors in step.
func (f *Forest) before(s int, i int32) int32 {
	f.unindex(s, i)
	return f.free(i, s)
}

func (f *Forest) after(s int, i int32, old int32) {
	if d := f.free(i, s) - old; d != 0 {
		f.st[s].freeSlots += int64(d)
		f.addUp(s, i, int64(d))
	}
	f.index(s, i)
}

func (f *Forest) addUp(s int, i int32, d int64) {
	for i >= 0 {
		l := f.lk(i, s)
		l.below += d
		i = l.parent
	}
}

func (f *Forest) setDepth(s int, i int32, d int32) {
	st := &f.st[s]
	l := f.lk(i, s)
	st.count[l.depth]--
	for int(d) >= len(st.count) {
		st.count = append(st.count, 0)
	}
	st.count[d]++
	l.depth = d
}

// cut takes i (with its subtree) out of its parent or the detached list; i is
// then in transit and unindexed. The subtree keeps its (now stale but
// self-consistent) depths until hang.
func (f *Forest) cut(s int, i int32) {
	l := f.lk(i, s)
	st := &f.st[s]
	if p := l.parent; p >= 0 {
		old := f.before(s, p)
		pl := f.lk(p, s)
		if l.prev >= 0 {
			f.lk(l.prev, s).next = l.next
		} else {
			pl.first = l.next
		}
		if l.next >= 0 {
			f.lk(l.next, s).prev = l.prev
		}
		l.prev, l.next, l.parent = none, none, none
		pl.kids--
		d := int64(f.free(p, s) - old)
		st.freeSlots += d
		f.addUp(s, p, d-l.below)
		f.index(s, p)
		if f.nodes[p].ppos >= 0 {
			f.relax(s, p)
		}
	} else if l.dpos >= 0 {
		last := len(st.detached) - 1
		moved := st.detached[last]
		st.detached[l.dpos] = moved
		f.lk(moved, s).dpos = l.dpos
		st.detached = st.detached[:last]
		l.dpos = none
	}
	f.unindex(s, i)
}

// hang attaches in-transit i under p, or makes it detached (origin-fed) when
// p is none. The caller guarantees p has a free slot and is not in i's subtree.
func (f *Forest) hang(s int, i, p int32) {
	l := f.lk(i, s)
	st := &f.st[s]
	var nd int32
	if p >= 0 {
		l.quiet = 0
		old := f.before(s, p)
		pl := f.lk(p, s)
		l.parent, l.prev, l.next = p, none, pl.first
		if pl.first >= 0 {
			f.lk(pl.first, s).prev = i
		}
		pl.first = i
		pl.kids++
		d := int64(f.free(p, s) - old)
		st.freeSlots += d
		f.addUp(s, p, d+l.below)
		f.index(s, p)
		nd = pl.depth + 1
	} else {
		l.dpos = int32(len(st.detached))
		st.detached = append(st.detached, i)
		nd = 1
	}
	if nd != l.depth {
		f.redepth(s, i, nd)
	}
	f.index(s, i)
}

// redepth sets i's depth to nd and shifts its whole subtree, moving every
// node to the bucket of its new depth. O(subtree).
func (f *Forest) redepth(s int, i int32, nd int32) {
	delta := nd - f.lk(i, s).depth
	f.setDepth(s, i, nd)
	stack := f.stack[:0]
	for c := f.lk(i, s).first; c >= 0; c = f.lk(c, s).next {
		stack = append(stack, c)
	}
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		f.unindex(s, c)
		cl := f.lk(c, s)
		f.setDepth(s, c, cl.depth+delta)
		f.index(s, c)
		for g := cl.first; g >= 0; g = f.lk(g, s).next {
			stack = append(stack, g)
		}
	}
	f.stack = stack[:0]
}

// drop removes a childless in-transit node from stripe s for good.
func (f *Forest) drop(s int, i int32) {
	l := f.lk(i, s)
	st := &f.st[s]
	st.freeSlots -= int64(f.free(i, s))
	st.count[l.depth]--
	*l = link{parent: none, first: none, prev: none, next: none, pos: none, dpos: none}
}

// inSubtree reports whether c lies in the subtree of x (x itself included
// only when c == x). It walks up from c no further than x's depth:
// O(depth(c) - depth(x)).
func (f *Forest) inSubtree(s int, c, x int32) bool {
	l := f.lk(c, s)
	steps := l.depth - f.lk(x, s).depth
	if steps < 0 {
		return false
	}
	for ; steps > 0; steps-- {
		c = l.parent
		if c < 0 {
			return false
		}
		l = f.lk(c, s)
	}
	return c == x
}

// syncPending keeps Forest.pending equal to the set of over-full nodes.
func (f *Forest) syncPending(i int32) {
	n := &f.nodes[i]
	want := n.interior >= 0 && f.pendingIn(i, int(n.interior))
	switch {
	case want && n.ppos < 0:
		n.ppos = int32(len(f.pending))
		f.pending = append(f.pending, i)
	case !want && n.ppos >= 0:
		last := len(f.pending) - 1
		moved := f.pending[last]
		f.pending[n.ppos] = moved
		f.nodes[moved].ppos = n.ppos
		f.pending = f.pending[:last]
		n.ppos = none
	}
}

// relax updates a shedding node after it lost a child: it may fit its
// capacity again, or, if it can no longer forward, turn leaf once empty.
func (f *Forest) relax(s int, i int32) {
	f.syncPending(i)
	n := &f.nodes[i]
	if int(n.interior) == s && !f.capable(n) && f.lk(i, s).kids == 0 {
		old := f.before(s, i)
		n.interior = -1
		f.after(s, i, old)
	}
}

func (f *Forest) emit(s int, p, c int32, added bool) {
	pid := Origin
	if p >= 0 {
		pid = f.nodes[p].id
	}
	f.changes = append(f.changes, Change{Stripe: s, Parent: pid, Child: f.nodes[c].id, Added: added})
}

func (f *Forest) lookup(id PeerID) (int32, error) {
	if id == Root {
		return none, fmt.Errorf("overlay: peer %d is the root: %w", id, ErrInvalid)
	}
	i, ok := f.ids[id]
	if !ok {
		return none, fmt.Errorf("overlay: peer %d: %w", id, ErrUnknownPeer)
	}
	return i, nil
}
