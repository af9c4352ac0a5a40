// Package memnet is an in-memory network for peer engines: a discrete-event
// simulation on a virtual clock. Links have latency, jitter, loss, a per
// direction bandwidth cap and a high-water mark (Send fails with
// peer.ErrBackpressure like a WebRTC data channel over its buffered
// threshold); nodes have a shared upload capacity. Nothing runs by itself:
// Run and RunFor pop events in time order on the caller's goroutine, so a
// run is a pure function of its seed and inputs, and ten thousand peers
// cost no goroutines.
//
// A Network is not safe for concurrent use: create links, send and run from
// one goroutine (engines called from event handlers are fine).
package memnet

import (
	"math/rand/v2"
	"time"

	"github.com/banyan-live/banyan/peer"
)

// Config sets the defaults for nodes and links.
type Config struct {
	// Seed makes jitter and loss reproducible.
	Seed uint64
	// Start is the virtual time at which the network starts (default
	// 2025-01-01 UTC).
	Start time.Time
	// Latency is the one-way propagation delay, Jitter a uniform extra
	// delay in [0, Jitter).
	Latency, Jitter time.Duration
	// Loss is the probability that a message is dropped.
	Loss float64
	// UploadBps is a node's upload capacity in bits per second, shared by
	// all its links (0: unlimited).
	UploadBps float64
	// LinkBps caps each link direction in bits per second (0: unlimited).
	LinkBps float64
	// HighWater is the queued bytes above which Send refuses a message
	// (default 1 MiB).
	HighWater int
	// Unordered lets jitter reorder messages on a link; by default a link
	// delivers in send order, like a reliable ordered data channel.
	Unordered bool
}

// LinkOptions override Config for one link; zero fields take the network's
// values.
type LinkOptions struct {
	Latency, Jitter time.Duration
	Loss            float64
	Bps             float64
	HighWater       int
	// Path is what Link.Path reports (default peer.PathMem).
	Path string
}

// Network is the simulated network and its clock.
type Network struct {
	cfg   Config
	start time.Time
	rng   *rand.Rand
	now   int64 // nanoseconds since start
	seq   uint64
	q     []event
	nodes map[peer.PeerID]*Node

	// Delivered, Dropped and Bytes count messages since New.
	Delivered, Dropped, Bytes uint64
}

type event struct {
	at  int64
	seq uint64
	dst *Link // delivery to this endpoint, or
	msg []byte
	fn  func() // a timer
}

// New returns an empty network at cfg.Start.
func New(cfg Config) *Network {
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if cfg.HighWater <= 0 {
		cfg.HighWater = 1 << 20
	}
	return &Network{
		cfg:   cfg,
		start: cfg.Start,
		rng:   rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		nodes: make(map[peer.PeerID]*Node),
	}
}

// Now is the virtual time; use it as the engines' Clock.
func (n *Network) Now() time.Time { return n.start.Add(time.Duration(n.now)) }

// Rand is the network's seeded generator, for tests that want more
// reproducible randomness.
func (n *Network) Rand() *rand.Rand { return n.rng }

// At runs f at virtual time t (now, if t is past).
func (n *Network) At(t time.Time, f func()) {
	n.push(event{at: max(int64(t.Sub(n.start)), n.now), fn: f})
}

// After runs f after d.
func (n *Network) After(d time.Duration, f func()) {
	n.push(event{at: n.now + int64(max(d, 0)), fn: f})
}

// Every runs f every d, first after d, until the returned stop is called.
func (n *Network) Every(d time.Duration, f func(now time.Time)) (stop func()) {
	stopped := false
	var tick func()
	tick = func() {
		if stopped {
			return
		}
		f(n.Now())
		n.After(d, tick)
	}
	n.After(d, tick)
	return func() { stopped = true }
}

// RunFor runs events for d of virtual time and returns how many ran.
func (n *Network) RunFor(d time.Duration) int { return n.RunUntil(n.Now().Add(d)) }

// RunUntil runs every event up to and including t, then sets the clock to t.
func (n *Network) RunUntil(t time.Time) int {
	end := int64(t.Sub(n.start))
	count := 0
	for len(n.q) > 0 && n.q[0].at <= end {
		ev := n.pop()
		n.now = ev.at
		count++
		if ev.fn != nil {
			ev.fn()
			continue
		}
		d := ev.dst
		if d.closed || d.handler == nil {
			n.Dropped++
			continue
		}
		n.Delivered++
		d.handler(ev.msg)
	}
	if end > n.now {
		n.now = end
	}
	return count
}

// Pending is how many events are scheduled.
func (n *Network) Pending() int { return len(n.q) }

func (n *Network) push(ev event) {
	n.seq++
	ev.seq = n.seq
	n.q = append(n.q, ev)
	i := len(n.q) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !n.q[i].before(&n.q[p]) {
			break
		}
		n.q[i], n.q[p] = n.q[p], n.q[i]
		i = p
	}
}

func (a *event) before(b *event) bool { return a.at < b.at || (a.at == b.at && a.seq < b.seq) }

func (n *Network) pop() event {
	top := n.q[0]
	last := len(n.q) - 1
	n.q[0] = n.q[last]
	n.q[last] = event{}
	n.q = n.q[:last]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(n.q) && n.q[l].before(&n.q[m]) {
			m = l
		}
		if r < len(n.q) && n.q[r].before(&n.q[m]) {
			m = r
		}
		if m == i {
			break
		}
		n.q[i], n.q[m] = n.q[m], n.q[i]
		i = m
	}
	return top
}

// Node is a host: its links share its upload.
type Node struct {
	net    *Network
	id     peer.PeerID
	upload float64
	busy   int64 // uplink busy until
	links  []*Link
	dead   bool
}

// Node returns the node id, creating it with the network's defaults.
func (n *Network) Node(id peer.PeerID) *Node {
	nd := n.nodes[id]
	if nd == nil {
		nd = &Node{net: n, id: id, upload: n.cfg.UploadBps}
		n.nodes[id] = nd
	}
	return nd
}

// ID is the node's peer id.
func (nd *Node) ID() peer.PeerID { return nd.id }

// SetUpload sets the node's upload capacity in bits per second (0:
// unlimited).
func (nd *Node) SetUpload(bps float64) { nd.upload = bps }

// Kill closes every link of the node at once, as if its process vanished.
func (nd *Node) Kill() {
	nd.dead = true
	for _, l := range nd.links {
		l.Close()
	}
}

// Link is one endpoint of a connection: Send goes to the other end, whose
// handler receives it.
type Link struct {
	net    *Network
	node   *Node
	remote *Link
	opt    LinkOptions
	busy   int64 // bottleneck busy until
	last   int64 // last arrival scheduled (ordered delivery)
	// outq holds departure times and sizes of queued messages.
	outq    []queued
	head    int
	queued  int
	handler func(msg []byte)
	closed  bool
}

type queued struct {
	at   int64
	size int
}

// Connect links nodes a and b (created if needed) and returns a's endpoint
// and b's endpoint.
func (n *Network) Connect(a, b peer.PeerID, opt LinkOptions) (*Link, *Link) {
	if opt.Latency == 0 {
		opt.Latency = n.cfg.Latency
	}
	if opt.Jitter == 0 {
		opt.Jitter = n.cfg.Jitter
	}
	if opt.Loss == 0 {
		opt.Loss = n.cfg.Loss
	}
	if opt.Bps == 0 {
		opt.Bps = n.cfg.LinkBps
	}
	if opt.HighWater == 0 {
		opt.HighWater = n.cfg.HighWater
	}
	if opt.Path == "" {
		opt.Path = peer.PathMem
	}
	na, nb := n.Node(a), n.Node(b)
	la := &Link{net: n, node: na, opt: opt}
	lb := &Link{net: n, node: nb, opt: opt}
	la.remote, lb.remote = lb, la
	na.links = append(na.links, la)
	nb.links = append(nb.links, lb)
	return la, lb
}

// OnMessage sets what receives messages arriving at this endpoint.
func (l *Link) OnMessage(f func(msg []byte)) { l.handler = f }

// Remote is the peer id at the other end.
func (l *Link) Remote() peer.PeerID { return l.remote.node.id }

// SetBps changes this direction's bandwidth cap.
func (l *Link) SetBps(bps float64) { l.opt.Bps = bps }

func txTime(size int, bps float64) int64 {
	if bps <= 0 {
		return 0
	}
	return int64(float64(size) * 8 / bps * 1e9)
}

// Send queues msg to the other end. It models the sender's shared uplink,
// then the link's own bottleneck, then propagation.
func (l *Link) Send(msg []byte) error {
	if l.closed || l.remote.closed {
		return peer.ErrLinkClosed
	}
	n := l.net
	if l.Buffered()+len(msg) > l.opt.HighWater && l.queued > 0 {
		return peer.ErrBackpressure
	}
	up := max(n.now, l.node.busy) + txTime(len(msg), l.node.upload)
	l.node.busy = up
	depart := max(up, l.busy) + txTime(len(msg), l.opt.Bps)
	l.busy = depart
	if depart > n.now { // else it left at once: nothing is buffered
		l.outq = append(l.outq, queued{depart, len(msg)})
		l.queued += len(msg)
	}
	n.Bytes += uint64(len(msg))
	if l.opt.Loss > 0 && n.rng.Float64() < l.opt.Loss {
		n.Dropped++
		return nil
	}
	at := depart + int64(l.opt.Latency)
	if l.opt.Jitter > 0 {
		at += n.rng.Int64N(int64(l.opt.Jitter))
	}
	if !n.cfg.Unordered && at < l.last {
		at = l.last
	}
	l.last = at
	n.push(event{at: at, dst: l.remote, msg: msg})
	return nil
}

// Buffered is the bytes sent but not yet through the bottleneck.
func (l *Link) Buffered() int {
	if l.queued == 0 {
		return 0
	}
	now := l.net.now
	for l.head < len(l.outq) && l.outq[l.head].at <= now {
		l.queued -= l.outq[l.head].size
		l.head++
	}
	if l.head > 64 && l.head*2 > len(l.outq) {
		l.outq = append(l.outq[:0], l.outq[l.head:]...)
		l.head = 0
	}
	return l.queued
}

// Path reports LinkOptions.Path.
func (l *Link) Path() string { return l.opt.Path }

// Close closes both endpoints; messages in flight are dropped.
func (l *Link) Close() error {
	l.closed = true
	l.remote.closed = true
	return nil
}

var _ peer.Link = (*Link)(nil)
