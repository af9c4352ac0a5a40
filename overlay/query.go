package overlay

import "fmt"

// Len returns the number of peers, the root excluded.
func (f *Forest) Len() int { return f.live }

// Stripes returns K.
func (f *Forest) Stripes() int { return f.k }

func (f *Forest) stripeIndex(id PeerID, s int) (int32, error) {
	if s < 0 || s >= f.k {
		return none, fmt.Errorf("overlay: stripe %d: %w", s, ErrInvalid)
	}
	i, ok := f.ids[id]
	if !ok {
		return none, fmt.Errorf("overlay: peer %d: %w", id, ErrUnknownPeer)
	}
	return i, nil
}

// Parents appends the peer's parent in every stripe to dst (Origin where it
// is fed by the origin). Root has no parents.
func (f *Forest) Parents(dst []PeerID, id PeerID) ([]PeerID, error) {
	x, err := f.lookup(id)
	if err != nil {
		return dst, err
	}
	for s := 0; s < f.k; s++ {
		dst = append(dst, f.parentID(x, s))
	}
	return dst, nil
}

// Parent returns the peer's parent in stripe s (Origin: fed by the origin).
func (f *Forest) Parent(id PeerID, s int) (PeerID, error) {
	if id == Root {
		return Origin, fmt.Errorf("overlay: root has no parent: %w", ErrInvalid)
	}
	x, err := f.stripeIndex(id, s)
	if err != nil {
		return Origin, err
	}
	return f.parentID(x, s), nil
}

// Children appends the peer's children in stripe s to dst.
func (f *Forest) Children(dst []PeerID, id PeerID, s int) ([]PeerID, error) {
	x, err := f.stripeIndex(id, s)
	if err != nil {
		return dst, err
	}
	for c := f.lk(x, s).first; c >= 0; c = f.lk(c, s).next {
		dst = append(dst, f.nodes[c].id)
	}
	return dst, nil
}

// Depth returns the peer's hop count from the seeder in stripe s (1 for a
// peer fed by the origin).
func (f *Forest) Depth(id PeerID, s int) (int, error) {
	x, err := f.stripeIndex(id, s)
	if err != nil {
		return 0, err
	}
	return int(f.lk(x, s).depth), nil
}

// Interior returns the stripe the peer forwards in, or -1 if it is a leaf
// everywhere. The root is interior everywhere and reports -1.
func (f *Forest) Interior(id PeerID) (int, error) {
	i, ok := f.ids[id]
	if !ok {
		return -1, fmt.Errorf("overlay: peer %d: %w", id, ErrUnknownPeer)
	}
	return int(f.nodes[i].interior), nil
}

// Info returns what the forest knows about a peer (capacity as last set).
func (f *Forest) Info(id PeerID) (PeerInfo, error) {
	i, ok := f.ids[id]
	if !ok {
		return PeerInfo{}, fmt.Errorf("overlay: peer %d: %w", id, ErrUnknownPeer)
	}
	n := &f.nodes[i]
	info := PeerInfo{ID: n.id, Capacity: int(n.cap), NAT: n.nat, NoUpload: n.noUpload}
	if i == 0 {
		info.Capacity = int(f.rootCap)
	}
	if n.loc != 0 {
		info.Locality = f.locNames[n.loc-1]
	}
	return info, nil
}

// MaxDepth returns the deepest level in use in stripe s (0: only the root).
func (f *Forest) MaxDepth(s int) int {
	if s < 0 || s >= f.k {
		return 0
	}
	c := f.st[s].count
	for d := len(c) - 1; d > 0; d-- {
		if c[d] > 0 {
			return d
		}
	}
	return 0
}

// OriginFed is how many peers the origin feeds in stripe s (each at depth
// 1, with its subtree below it).
func (f *Forest) OriginFed(s int) int {
	if s < 0 || s >= f.k {
		return 0
	}
	return len(f.st[s].detached)
}

// DepthHistogram appends to dst, for depth 1..MaxDepth(s), how many peers
// sit at that depth in stripe s (index 0 is depth 1).
func (f *Forest) DepthHistogram(dst []int, s int) []int {
	m := f.MaxDepth(s)
	for d := 1; d <= m; d++ {
		dst = append(dst, int(f.st[s].count[d]))
	}
	return dst
}

// StripeStats summarises one stripe for metrics.
type StripeStats struct {
	Interior  int     `json:"interior"`   // peers forwarding in this stripe
	FreeSlots int64   `json:"free_slots"` // unused child slots (root included)
	Origin    int     `json:"origin"`     // peers fed by the origin fallback
	MaxDepth  int     `json:"max_depth"`
	MeanDepth float64 `json:"mean_depth"`
}

// Stats summarises the forest.
type Stats struct {
	Peers    int           `json:"peers"`
	Pending  int           `json:"pending"` // peers still shedding children
	Stripes  []StripeStats `json:"stripes"`
	MaxDepth int           `json:"max_depth"`
}

// Stats computes summary figures. O(K * depth) plus one pass over peers for
// the interior counts.
func (f *Forest) Stats() Stats {
	st := Stats{Peers: f.live, Pending: len(f.pending), Stripes: make([]StripeStats, f.k)}
	for i := 1; i < len(f.nodes); i++ {
		if n := &f.nodes[i]; n.live && n.interior >= 0 {
			st.Stripes[n.interior].Interior++
		}
	}
	for s := range st.Stripes {
		ss := &st.Stripes[s]
		ss.FreeSlots = f.st[s].freeSlots
		ss.Origin = len(f.st[s].detached)
		ss.MaxDepth = f.MaxDepth(s)
		st.MaxDepth = max(st.MaxDepth, ss.MaxDepth)
		var sum, cnt int64
		for d, c := range f.st[s].count {
			if d > 0 {
				sum += int64(d) * int64(c)
				cnt += int64(c)
			}
		}
		if cnt > 0 {
			ss.MeanDepth = float64(sum) / float64(cnt)
		}
	}
	return st
}

// Edge is one parent→child edge of a stripe tree, as seen by Walk.
type Edge struct {
	Stripe int
	Parent PeerID // Origin for a peer fed by the origin
	Child  PeerID
	Depth  int // the child's depth
}

// Walk calls fn for every edge of stripe s, parents before children (the
// seeder's tree first, then origin-fed subtrees), until fn returns false.
// The forest must not be modified during the walk.
func (f *Forest) Walk(s int, fn func(Edge) bool) {
	if s < 0 || s >= f.k {
		return
	}
	var stack []int32
	visit := func(r int32) bool {
		stack = append(stack[:0], r)
		for len(stack) > 0 {
			j := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for c := f.lk(j, s).first; c >= 0; c = f.lk(c, s).next {
				if !fn(Edge{Stripe: s, Parent: f.nodes[j].id, Child: f.nodes[c].id, Depth: int(f.lk(c, s).depth)}) {
					return false
				}
				stack = append(stack, c)
			}
		}
		return true
	}
	if !visit(0) {
		return
	}
	for _, r := range f.st[s].detached {
		if !fn(Edge{Stripe: s, Parent: Origin, Child: f.nodes[r].id, Depth: 1}) || !visit(r) {
			return
		}
	}
}

// Suspected reports whether id takes no new children because a child
// reported it gone and the tracker has not heard from it since (Suspect).
func (f *Forest) Suspected(id PeerID) bool {
	x, err := f.lookup(id)
	return err == nil && f.nodes[x].suspect
}
