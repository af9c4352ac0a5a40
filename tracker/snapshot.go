package tracker

import (
	"errors"
	"slices"
	"time"

	"github.com/banyan-live/banyan/overlay"
	"github.com/banyan-live/banyan/protocol"
)

// Snapshot is one stream's topology for the dashboard: every stripe tree,
// or, past maxNodes peers, the top levels of each tree with the hidden
// part summarised (per depth level and per collapsed subtree).
//
// Node references in edges and subtrees are int64: 0 is the seeder (the
// root of every tree), -1 the origin fallback, anything else a peer id.
type Snapshot struct {
	Stream  string          `json:"stream"`
	Time    time.Time       `json:"time"`
	Live    bool            `json:"live"`
	Epoch   uint32          `json:"epoch"`
	Seeder  protocol.PeerID `json:"seeder"` // the seeder's session id, 0 when none is connected
	Stripes int             `json:"stripes"`
	Peers   int             `json:"peers"`
	// Aggregated says Nodes and Edges hold only part of the swarm: each
	// stripe down to ShownDepth, every frontier edge carrying the size of
	// the subtree hidden below it.
	Aggregated bool          `json:"aggregated"`
	ShownDepth []int         `json:"shown_depth"` // per stripe
	Nodes      []NodeInfo    `json:"nodes"`
	Edges      [][]EdgeInfo  `json:"edges"`    // per stripe, parents before children
	Levels     [][]Level     `json:"levels"`   // per stripe; index 0 is depth 1
	Subtrees   [][]Subtree   `json:"subtrees"` // per stripe, largest first (at most maxSubtrees)
	Health     HealthCounts  `json:"health"`   // every peer
	Forest     overlay.Stats `json:"forest"`
	// BuildMicros is how long building this snapshot held the stream.
	BuildMicros int64 `json:"build_us"`
}

// NodeInfo is one peer as the topology view draws it.
type NodeInfo struct {
	ID       protocol.PeerID     `json:"id"`
	Kind     protocol.ClientKind `json:"kind,omitempty"`
	Depth    []int               `json:"depth"`    // per stripe (1: fed by the seeder or the origin)
	Interior int                 `json:"interior"` // the stripe it forwards in, -1: a leaf everywhere
	Health   Health              `json:"health"`
	BufferMS int                 `json:"buffer_ms"`
	BehindMS int                 `json:"behind_ms"`
	Kbps     int                 `json:"kbps"`    // received from all parents, last period
	UpKbps   int                 `json:"up_kbps"` // sent to children, last period
	From     protocol.Sources    `json:"from"`    // received since join, by sender
	Locality string              `json:"locality,omitempty"`
	Stalls   int                 `json:"stalls"`
	Children int                 `json:"children"` // in every stripe together
}

// EdgeInfo is one parent→child edge of a stripe tree.
type EdgeInfo struct {
	P    int64           `json:"p"`
	C    protocol.PeerID `json:"c"`
	Kbps int             `json:"kbps"`
	Path Path            `json:"path"`
	// Hidden is how many peers sit below C and are not drawn.
	Hidden int `json:"hidden,omitempty"`
}

// Path is how a child receives a stripe.
type Path string

// Paths.
const (
	PathDirect     Path = "direct"
	PathTURN       Path = "turn"
	PathConnecting Path = "connecting"
	PathOrigin     Path = "origin" // HTTP fallback: no tree parent
	PathUnknown    Path = "unknown"
)

// Health classifies a peer by its playback buffer.
type Health string

// Health classes: good is at least goodBufferMS of buffer, low at least
// lowBufferMS, bad below that while media flows, unknown before the first
// report with media.
const (
	HealthGood    Health = "good"
	HealthLow     Health = "low"
	HealthBad     Health = "bad"
	HealthUnknown Health = "unknown"

	goodBufferMS = 600
	lowBufferMS  = 200
)

func healthOf(s *protocol.Stats) Health {
	switch {
	case s.BytesP2P+s.BytesTURN+s.BytesOrigin == 0 && s.BufferMS == 0:
		return HealthUnknown
	case s.BufferMS >= goodBufferMS:
		return HealthGood
	case s.BufferMS >= lowBufferMS:
		return HealthLow
	}
	return HealthBad
}

// HealthCounts counts peers by health.
type HealthCounts struct {
	Good    int `json:"good"`
	Low     int `json:"low"`
	Bad     int `json:"bad"`
	Unknown int `json:"unknown"`
}

func (h *HealthCounts) add(x Health) {
	switch x {
	case HealthGood:
		h.Good++
	case HealthLow:
		h.Low++
	case HealthBad:
		h.Bad++
	default:
		h.Unknown++
	}
}

// PathCounts counts edges by path.
type PathCounts struct {
	Direct     int `json:"direct"`
	TURN       int `json:"turn"`
	Connecting int `json:"connecting"`
	Origin     int `json:"origin"`
	Unknown    int `json:"unknown"`
}

func (p *PathCounts) add(x Path) {
	switch x {
	case PathDirect:
		p.Direct++
	case PathTURN:
		p.TURN++
	case PathConnecting:
		p.Connecting++
	case PathOrigin:
		p.Origin++
	default:
		p.Unknown++
	}
}

// Level summarises one depth of one stripe tree.
type Level struct {
	Depth  int          `json:"depth"`
	Peers  int          `json:"peers"`
	Health HealthCounts `json:"health"`
	Paths  PathCounts   `json:"paths"`
	// Kbps is the mean rate peers at this depth receive in this stripe.
	Kbps float64 `json:"kbps"`
}

// Subtree is one subtree hanging off the seeder (or the origin) in a
// stripe, collapsed.
type Subtree struct {
	Root     protocol.PeerID `json:"root"`
	Parent   int64           `json:"parent"` // 0 the seeder, -1 the origin
	Size     int             `json:"size"`   // peers, its root included
	MaxDepth int             `json:"max_depth"`
	Health   HealthCounts    `json:"health"`
}

// maxSubtrees bounds the collapsed subtrees listed per stripe.
const maxSubtrees = 64

// DefaultMaxNodes is the number of peers past which Snapshot aggregates.
const DefaultMaxNodes = 400

// ErrUnknownStream is returned for a stream the tracker has no state for.
var ErrUnknownStream = errors.New("no such stream in the tracker")

func (t *Tracker) streamState(name string) *streamState {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.streams[name]
}

// Snapshot builds stream's topology under its lock. maxNodes <= 0 means
// DefaultMaxNodes. The cost is O(peers × stripes) and no I/O.
func (t *Tracker) Snapshot(stream string, maxNodes int) (*Snapshot, error) {
	st := t.streamState(stream)
	if st == nil {
		return nil, ErrUnknownStream
	}
	if maxNodes <= 0 {
		maxNodes = DefaultMaxNodes
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	start := time.Now()
	snap := st.snapshotLocked(maxNodes)
	snap.BuildMicros = time.Since(start).Microseconds()
	return snap, nil
}

// walked is one edge in walk order, with what the walk learns about it.
type walked struct {
	parent, child overlay.PeerID
	depth         int
	pi            int32 // index of the parent's edge, -1 for the root or origin
	size          int32 // peers in the child's subtree
	top           int32 // index of the subtree's top edge
	sess          *session
}

func (st *streamState) snapshotLocked(maxNodes int) *Snapshot {
	f := st.forest
	k := f.Stripes()
	n := f.Len()
	snap := &Snapshot{
		Stream: st.name, Time: st.t.cfg.Now(), Live: st.live, Epoch: st.epoch, Stripes: k, Peers: n,
		Aggregated: n > maxNodes, ShownDepth: make([]int, k), Edges: make([][]EdgeInfo, k),
		Levels: make([][]Level, k), Subtrees: make([][]Subtree, k), Forest: f.Stats(),
	}
	if st.seeder != nil {
		snap.Seeder = st.seeder.id
	}
	for _, s := range st.sessions {
		if !s.isSeeder {
			snap.Health.add(healthOf(&s.stats))
		}
	}
	// Each stripe's nodes may be drawn to this budget; the union over
	// stripes stays within maxNodes.
	budget := max(maxNodes/k, 1)
	include := make(map[protocol.PeerID]struct{}, min(n, maxNodes))
	var edges []walked
	index := make(map[overlay.PeerID]int32, n)
	for s := 0; s < k; s++ {
		edges = edges[:0]
		clear(index)
		f.Walk(s, func(e overlay.Edge) bool {
			pi := int32(-1)
			if e.Parent != overlay.Root && e.Parent != overlay.Origin {
				pi = index[e.Parent]
			}
			index[e.Child] = int32(len(edges))
			edges = append(edges, walked{parent: e.Parent, child: e.Child, depth: e.Depth, pi: pi, size: 1,
				sess: st.sessions[protocol.PeerID(e.Child)]})
			return true
		})
		// Subtree sizes: children come after their parents in walk order.
		for i := len(edges) - 1; i >= 0; i-- {
			if p := edges[i].pi; p >= 0 {
				edges[p].size += edges[i].size
			}
		}
		var tops []Subtree
		topOf := make(map[int32]int, 16)
		levels := make([]Level, 0, 8)
		for i := range edges {
			e := &edges[i]
			if e.pi < 0 {
				e.top = int32(i)
				topOf[int32(i)] = len(tops)
				tops = append(tops, Subtree{Root: protocol.PeerID(e.child), Parent: nodeRef(e.parent), Size: int(e.size)})
			} else {
				e.top = edges[e.pi].top
			}
			h, path, kbps := HealthUnknown, PathUnknown, 0
			if e.sess != nil {
				h = healthOf(&e.sess.stats)
				path, kbps = edgePath(e.sess, s, e.parent, st.pid(e.parent))
			}
			sub := &tops[topOf[e.top]]
			sub.Health.add(h)
			sub.MaxDepth = max(sub.MaxDepth, e.depth)
			for len(levels) < e.depth {
				levels = append(levels, Level{Depth: len(levels) + 1})
			}
			lv := &levels[e.depth-1]
			lv.Peers++
			lv.Health.add(h)
			lv.Paths.add(path)
			lv.Kbps += float64(kbps)
		}
		for i := range levels {
			if levels[i].Peers > 0 {
				levels[i].Kbps /= float64(levels[i].Peers)
			}
		}
		slices.SortStableFunc(tops, func(a, b Subtree) int { return b.Size - a.Size })
		snap.Levels[s] = levels
		snap.Subtrees[s] = tops[:min(len(tops), maxSubtrees)]

		// The drawn part: whole levels while they fit the budget.
		shown := len(levels)
		if snap.Aggregated {
			shown, sum := 0, 0
			for shown < len(levels) && sum+levels[shown].Peers <= budget {
				sum += levels[shown].Peers
				shown++
			}
			snap.ShownDepth[s] = max(shown, 1)
		} else {
			snap.ShownDepth[s] = shown
		}
		out := make([]EdgeInfo, 0, min(len(edges), budget))
		for i := range edges {
			e := &edges[i]
			if e.depth > snap.ShownDepth[s] || (snap.Aggregated && len(out) >= budget) {
				continue
			}
			ei := EdgeInfo{P: nodeRef(e.parent), C: protocol.PeerID(e.child), Path: PathUnknown}
			if e.sess != nil {
				ei.Path, ei.Kbps = edgePath(e.sess, s, e.parent, st.pid(e.parent))
			}
			if e.depth == snap.ShownDepth[s] {
				ei.Hidden = int(e.size) - 1
			}
			out = append(out, ei)
			include[ei.C] = struct{}{}
		}
		snap.Edges[s] = out
	}
	snap.Nodes = make([]NodeInfo, 0, len(include))
	for id := range include {
		snap.Nodes = append(snap.Nodes, st.nodeInfoLocked(id))
	}
	slices.SortFunc(snap.Nodes, func(a, b NodeInfo) int { return cmpID(a.ID, b.ID) })
	return snap
}

func cmpID(a, b protocol.PeerID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// edgePath is how child receives stripe s from parent, by the child's
// last report.
func edgePath(child *session, s int, parent overlay.PeerID, parentPID protocol.PeerID) (Path, int) {
	if parent == overlay.Origin {
		return PathOrigin, 0
	}
	for _, ph := range child.stats.Parents {
		if ph.Stripe != s {
			continue
		}
		if ph.Parent != parentPID && parentPID != 0 {
			// The report predates the assignment.
			return PathConnecting, 0
		}
		switch ph.Path {
		case "direct":
			return PathDirect, ph.Kbps
		case "turn":
			return PathTURN, ph.Kbps
		case "connecting":
			return PathConnecting, ph.Kbps
		}
		return PathUnknown, ph.Kbps
	}
	return PathConnecting, 0
}

func (st *streamState) nodeInfoLocked(id protocol.PeerID) NodeInfo {
	f := st.forest
	k := f.Stripes()
	ni := NodeInfo{ID: id, Depth: make([]int, k), Interior: -1, Health: HealthUnknown}
	ov := overlay.PeerID(id)
	var kids []overlay.PeerID
	for s := 0; s < k; s++ {
		ni.Depth[s], _ = f.Depth(ov, s)
		kids, _ = f.Children(kids[:0], ov, s)
		ni.Children += len(kids)
	}
	ni.Interior, _ = f.Interior(ov)
	if info, err := f.Info(ov); err == nil {
		ni.Locality = info.Locality
	}
	if sess := st.sessions[id]; sess != nil {
		ss := &sess.stats
		ni.Kind = sess.kind
		ni.Health = healthOf(ss)
		ni.BufferMS, ni.BehindMS, ni.UpKbps, ni.Stalls = ss.BufferMS, ss.BehindLiveMS, ss.UploadKbps, ss.Stalls
		ni.From = protocol.SourcesOf(*ss)
		for _, p := range ss.Parents {
			ni.Kbps += p.Kbps
		}
	}
	return ni
}

// PeerDetail is everything the dashboard shows about one peer (or the
// seeder, id 0).
type PeerDetail struct {
	NodeInfo
	Seeder   bool      `json:"seeder"`
	Joined   time.Time `json:"joined,omitzero"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	Remote   string    `json:"remote,omitempty"`
	Capacity int       `json:"capacity"` // child slots
	NAT      string    `json:"nat"`
	Region   string    `json:"region,omitempty"`
	// Parents has one entry per stripe.
	Parents []ParentLink `json:"parents"`
	// Children has one entry per stripe (at most maxDetailChildren ids each).
	Children [][]protocol.PeerID `json:"children_by_stripe"`
	Stats    protocol.Stats      `json:"stats"`
}

// ParentLink is a peer's parent in one stripe, as it reports it.
type ParentLink struct {
	Stripe int                 `json:"stripe"`
	Parent int64               `json:"parent"` // 0 the seeder, -1 the origin
	Kind   protocol.ClientKind `json:"kind,omitempty"`
	Path   Path                `json:"path"`
	Kbps   int                 `json:"kbps"`
}

const maxDetailChildren = 256

// ErrUnknownPeer is returned for a peer not in the stream.
var ErrUnknownPeer = errors.New("no such peer in the stream")

// Peer describes one peer of stream; id 0 is the seeder.
func (t *Tracker) Peer(stream string, id protocol.PeerID) (*PeerDetail, error) {
	st := t.streamState(stream)
	if st == nil {
		return nil, ErrUnknownStream
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	f := st.forest
	k := f.Stripes()
	if id == 0 || (st.seeder != nil && id == st.seeder.id) {
		d := &PeerDetail{Seeder: true, Children: make([][]protocol.PeerID, k)}
		d.Depth, d.Interior, d.Health = make([]int, k), -1, HealthUnknown
		info, _ := f.Info(overlay.Root)
		d.Capacity = info.Capacity
		for s := 0; s < k; s++ {
			d.Children[s] = st.childrenLocked(overlay.Root, s)
			d.NodeInfo.Children += len(d.Children[s])
		}
		if sess := st.seeder; sess != nil {
			d.ID, d.Joined, d.LastSeen, d.Remote, d.Stats = sess.id, sess.joined, sess.lastSeen(), sess.remote, sess.stats
			d.UpKbps = sess.stats.UploadKbps
		}
		d.NAT = "open"
		return d, nil
	}
	sess := st.sessions[id]
	info, err := f.Info(overlay.PeerID(id))
	if sess == nil || err != nil {
		return nil, ErrUnknownPeer
	}
	d := &PeerDetail{
		NodeInfo: st.nodeInfoLocked(id), Joined: sess.joined, LastSeen: sess.lastSeen(), Remote: sess.remote,
		Capacity: info.Capacity, NAT: info.NAT.String(), Region: info.Locality, Stats: sess.stats,
		Children: make([][]protocol.PeerID, k),
	}
	for s := 0; s < k; s++ {
		p, _ := f.Parent(overlay.PeerID(id), s)
		pl := ParentLink{Stripe: s, Parent: nodeRef(p)}
		pl.Path, pl.Kbps = edgePath(sess, s, p, st.pid(p))
		if ps := st.sessions[st.pid(p)]; ps != nil && !ps.isSeeder {
			pl.Kind = ps.kind
		}
		d.Parents = append(d.Parents, pl)
		d.Children[s] = st.childrenLocked(overlay.PeerID(id), s)
	}
	return d, nil
}

func (st *streamState) childrenLocked(id overlay.PeerID, s int) []protocol.PeerID {
	kids, _ := st.forest.Children(nil, id, s)
	out := make([]protocol.PeerID, 0, min(len(kids), maxDetailChildren))
	for _, c := range kids[:min(len(kids), maxDetailChildren)] {
		out = append(out, protocol.PeerID(c))
	}
	return out
}
