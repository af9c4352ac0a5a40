package peer_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/peer/memnet"
	"github.com/banyan-live/banyan/protocol"
)

// Hostile peers in a 50-peer, two-stripe memnet swarm (the tree of
// twoStripeTree: peer 2 is the root's child in stripe 0 with a subtree
// below it, and a leaf in stripe 1). Each case makes peer 2 misbehave from
// a given moment and measures, deterministically on the virtual clock:
//
//   - detect: misbehaviour start → the first report about it by an honest
//     peer;
//   - contained: start → the last honest peer moved off it (or it evicted);
//   - affected: honest peers that had it as a parent (its stripe subtree
//     is downstream of them);
//   - lost: media bytes honest peers never played (stalled chunks), and
//     the extra bytes they fetched from the origin to repair;
//   - junk: bytes it sent that honest peers had to drop;
//   - stall ratio: stalled / (played + stalled) over honest peers, against
//     the design target (≥ 99.5 % of peers stall-free under heavy loss, so
//     a stall ratio under 0.5 %).
//
// The tracker's part is played by miniTracker with the real tracker's
// rules: a report moves the reporter off the reported parent (ReportSlow:
// the reported child off the reporter) after a 50 ms round trip; two
// distinct bad-chunk accusers evict the accused, whose remaining children
// are re-parented. New parents are the root. Reports made by the hostile
// peer's own engine are ignored: a malicious peer does not help.

const hostileID = peer.PeerID(2)

// stallTarget is the design's bound on the honest stall ratio.
const stallTarget = 0.005

type miniTracker struct {
	sw      *swarm
	evil    peer.PeerID
	start   time.Time
	parents [2]map[peer.PeerID]peer.PeerID // stripe -> child -> parent

	firstReport time.Time
	firstKind   string
	reportKinds map[string]int
	affected    map[peer.PeerID]bool
	lastMove    time.Time
	accusers    map[peer.PeerID]bool
	evicted     time.Time
}

func newMiniTracker(sw *swarm, evil peer.PeerID, p0, p1 map[peer.PeerID]peer.PeerID) *miniTracker {
	m := &miniTracker{sw: sw, evil: evil, reportKinds: map[string]int{}, affected: map[peer.PeerID]bool{}, accusers: map[peer.PeerID]bool{}}
	m.parents[0], m.parents[1] = maps(p0), maps(p1)
	for s := range m.parents {
		for c, p := range m.parents[s] {
			if p == evil {
				m.affected[c] = true
			}
		}
	}
	sw.onReport = m.report
	return m
}

func maps(m map[peer.PeerID]peer.PeerID) map[peer.PeerID]peer.PeerID {
	out := make(map[peer.PeerID]peer.PeerID, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (m *miniTracker) report(by peer.PeerID, r protocol.Report) {
	if by == m.evil {
		return
	}
	child, parent := by, r.Peer
	if r.Kind == protocol.ReportSlow {
		child, parent = r.Peer, by
	}
	if r.Stripe < 0 || r.Stripe >= len(m.parents) || m.parents[r.Stripe][child] != parent {
		return // not paired any more: the tracker ignores it
	}
	if parent == m.evil {
		m.reportKinds[r.Kind]++
		if m.firstReport.IsZero() {
			m.firstReport, m.firstKind = m.sw.net.Now(), r.Kind
		}
	}
	s := r.Stripe
	m.sw.net.After(50*time.Millisecond, func() {
		if r.Kind == protocol.ReportBadChunk && parent == m.evil {
			m.accusers[child] = true
			if len(m.accusers) >= 2 && m.evicted.IsZero() {
				m.evict()
				return
			}
		}
		m.move(s, child, parent)
	})
}

// move re-parents child in stripe s from parent to the root.
func (m *miniTracker) move(s int, child, parent peer.PeerID) {
	if m.parents[s][child] != parent || m.sw.get(child) == nil {
		return
	}
	if e := m.sw.get(parent); e != nil {
		e.RemoveChild(s, child)
	}
	m.sw.edge(s, rootID, child)
	m.parents[s][child] = rootID
	if parent == m.evil {
		m.lastMove = m.sw.net.Now()
	}
}

// evict removes the hostile peer and re-parents its children, as the
// tracker does when a session ends.
func (m *miniTracker) evict() {
	m.evicted = m.sw.net.Now()
	m.sw.kill(m.evil)
	for s := range m.parents {
		ids := make([]peer.PeerID, 0)
		for c, p := range m.parents[s] {
			if p == m.evil {
				ids = append(ids, c)
			}
		}
		slices.Sort(ids)
		for _, c := range ids {
			m.move(s, c, m.evil)
		}
	}
}

// stillFed counts honest peers whose parent is still the hostile one.
func (m *miniTracker) stillFed() int {
	n := 0
	for s := range m.parents {
		for c, p := range m.parents[s] {
			if p == m.evil && c != m.evil {
				n++
			}
		}
	}
	return n
}

// hostileFigures is what one case measured.
type hostileFigures struct {
	detect, contain     time.Duration
	affected, subtree   int
	stalls, played      uint64
	lostBytes, origin   uint64
	junk                int
	kinds               map[string]int
	wrong               int
	stallRatio          float64
	stalledPeers, peers int
}

func (f hostileFigures) String() string {
	return fmt.Sprintf("detect %v (%v), contained %v, affected %d direct (%d in subtree), stall ratio %.4f%% (%d of %d chunks, %d of %d peers), lost %d B unplayed, %d B extra from the origin, junk %d B",
		f.detect, f.kinds, f.contain, f.affected, f.subtree, 100*f.stallRatio, f.stalls, f.played+f.stalls, f.stalledPeers, f.peers, f.lostBytes, f.origin, f.junk)
}

// hostileCase is one kind of misbehaviour of peer 2.
type hostileCase struct {
	name string
	// from is when it starts misbehaving (virtual time since the start).
	from time.Duration
	// link wraps peer 2's endpoint towards b; junk counts dropped bytes.
	link func(sw *swarm, b peer.PeerID, l *memnet.Link, active func() bool, junk *int) peer.Link
	// setup runs once the swarm is built.
	setup func(sw *swarm)
	// kinds are the report kinds that may detect it.
	kinds []string
}

func runHostile(t *testing.T, c hostileCase) hostileFigures {
	t.Helper()
	sw := newSwarm(t, memnet.Config{Seed: 21, Latency: 10 * time.Millisecond, Jitter: 5 * time.Millisecond}, 2, 60_000, nil)
	defer sw.close()
	start := sw.net.Now().Add(c.from)
	active := func() bool { return !sw.net.Now().Before(start) }
	junk := 0
	sw.wrap = func(a, b peer.PeerID, l *memnet.Link) peer.Link {
		if a == hostileID && c.link != nil {
			return c.link(sw, b, l, active, &junk)
		}
		return l
	}
	p0, p1 := twoStripeTree(sw)
	subtree := map[peer.PeerID]bool{hostileID: true}
	for changed := true; changed; {
		changed = false
		for ch, p := range p0 {
			if subtree[p] && !subtree[ch] {
				subtree[ch], changed = true, true
			}
		}
	}
	mt := newMiniTracker(sw, hostileID, p0, p1)
	if c.setup != nil {
		c.setup(sw)
	}
	const last = 120 // 30 s of stream
	sw.publish(last)
	sw.net.RunFor(last*250*time.Millisecond + 3*time.Second)

	f := hostileFigures{affected: len(mt.affected), subtree: len(subtree) - 1, junk: junk, kinds: mt.reportKinds}
	if !mt.firstReport.IsZero() {
		f.detect = mt.firstReport.Sub(start)
	}
	end := mt.lastMove
	if mt.evicted.After(end) {
		end = mt.evicted
	}
	if !end.IsZero() {
		f.contain = end.Sub(start)
	}
	chunkBytes := uint64(len(sw.src.chunk(t, 5)))
	for id, e := range sw.engines {
		if id == hostileID {
			continue
		}
		cn := e.Counters()
		f.stalls += cn.Stalls
		f.played += cn.Played
		f.origin += e.Stats().BytesOrigin
		f.wrong += sw.players[id].wrong
		f.peers++
		if cn.Stalls > 0 {
			f.stalledPeers++
		}
	}
	f.lostBytes = f.stalls * chunkBytes
	if f.played+f.stalls > 0 {
		f.stallRatio = float64(f.stalls) / float64(f.played+f.stalls)
	}
	t.Logf("figures: %s: %s", c.name, f)

	if f.wrong != 0 {
		t.Errorf("honest peers played %d wrong payloads", f.wrong)
	}
	if mt.firstReport.IsZero() || !slices.Contains(c.kinds, mt.firstKind) {
		t.Errorf("not detected as %v: reports %v", c.kinds, mt.reportKinds)
	}
	if n := mt.stillFed(); n != 0 && mt.evicted.IsZero() {
		t.Errorf("%d honest peers still fed by the hostile peer at the end", n)
	}
	if f.stallRatio > stallTarget {
		t.Errorf("honest stall ratio %.3f%% over the %.1f%% target", 100*f.stallRatio, 100*stallTarget)
	}
	if f.played < uint64(f.peers)*(last-10) {
		t.Errorf("honest peers played %d chunks, want about %d", f.played, f.peers*last)
	}
	return f
}

// pieceLink rewrites or drops the pieces peer 2 sends while active.
type pieceLink struct {
	*memnet.Link
	active func() bool
	junk   *int
	edit   func(p chunk.Piece, m []byte) [][]byte // what to send instead (nil: nothing)
}

func (l *pieceLink) Send(m []byte) error {
	if !l.active() || len(m) == 0 || m[0] != 'P' {
		return l.Link.Send(m)
	}
	p, err := chunk.ParsePiece(m)
	if err != nil {
		return l.Link.Send(m)
	}
	for _, out := range l.edit(p, m) {
		if !bytes.Equal(out, m) {
			*l.junk += len(out)
		}
		if err := l.Link.Send(out); err != nil {
			return err
		}
	}
	return nil
}

func pieces(l *memnet.Link, active func() bool, junk *int, edit func(chunk.Piece, []byte) [][]byte) peer.Link {
	return &pieceLink{Link: l, active: active, junk: junk, edit: edit}
}

// flipping is a forger's link: it flips a byte of every piece it relays
// and, with disclaim, follows each chunk's last piece with a "bad" notice
// for it ("I was fooled too").
func flipping(disclaim bool) func(sw *swarm, b peer.PeerID, l *memnet.Link, active func() bool, junk *int) peer.Link {
	return func(sw *swarm, b peer.PeerID, l *memnet.Link, active func() bool, junk *int) peer.Link {
		return pieces(l, active, junk, func(p chunk.Piece, m []byte) [][]byte {
			bad := bytes.Clone(m)
			bad[len(bad)-1] ^= 0x55
			if !disclaim || p.Index != p.Count-1 {
				return [][]byte{bad}
			}
			notice := []byte{'B', 1, byte(p.Epoch >> 24), byte(p.Epoch >> 16), byte(p.Epoch >> 8), byte(p.Epoch)}
			for i := 7; i >= 0; i-- {
				notice = append(notice, byte(p.Seq>>(8*i)))
			}
			return [][]byte{bad, notice}
		})
	}
}

func TestHostileForger(t *testing.T) {
	runHostile(t, hostileCase{
		name: "forger (flips a byte of every piece it relays)", from: 5 * time.Second,
		kinds: []string{protocol.ReportBadChunk},
		link:  flipping(false),
	})
}

func TestHostileReplayer(t *testing.T) {
	runHostile(t, hostileCase{
		name: "replayer (sends the genuine, signed chunk from 6 s earlier instead of each new one)", from: 8 * time.Second,
		kinds: []string{protocol.ReportSilent},
		link: func(sw *swarm, b peer.PeerID, l *memnet.Link, active func() bool, junk *int) peer.Link {
			return pieces(l, active, junk, func(p chunk.Piece, m []byte) [][]byte {
				if p.Seq <= 24 {
					return nil
				}
				old, err := chunk.Split(sw.src.chunk(sw.tb, p.Seq-24), chunk.MaxMessageSize)
				if err != nil || int(p.Index) >= len(old) {
					return nil
				}
				return [][]byte{chunk.AppendPiece(nil, old[p.Index])}
			})
		},
	})
}

func TestHostileWithholder(t *testing.T) {
	runHostile(t, hostileCase{
		name: "withholder (takes children, sends no piece, answers pings)", from: 0,
		kinds: []string{protocol.ReportSilent},
		link: func(sw *swarm, b peer.PeerID, l *memnet.Link, active func() bool, junk *int) peer.Link {
			return pieces(l, active, junk, func(chunk.Piece, []byte) [][]byte { return nil })
		},
	})
}

func TestHostileFlooder(t *testing.T) {
	runHostile(t, hostileCase{
		name: "flooder (20 junk pieces with every piece it relays)", from: 5 * time.Second,
		kinds: []string{protocol.ReportFlood},
		link: func(sw *swarm, b peer.PeerID, l *memnet.Link, active func() bool, junk *int) peer.Link {
			return pieces(l, active, junk, func(p chunk.Piece, m []byte) [][]byte {
				out := [][]byte{m}
				for i := range 20 {
					out = append(out, chunk.AppendPiece(nil, chunk.Piece{Epoch: p.Epoch, Seq: p.Seq + 2, Index: uint16(1 + i%4), Count: 6, Data: make([]byte, chunk.DefaultPieceData)}))
				}
				return out
			})
		},
	})
}

func TestHostileCapacityLiar(t *testing.T) {
	runHostile(t, hostileCase{
		name: "capacity liar (interior with 3 children and a 150 kbit/s uplink for a 1.9 Mbit/s stream)", from: 0,
		kinds: []string{protocol.ReportSilent},
		setup: func(sw *swarm) { sw.net.Node(hostileID).SetUpload(150e3) },
	})
}

// TestHostileWantFlooder: a child asks its parent for every piece of every
// recent chunk, 100 times a second. The parent serves it at most twice the
// stream rate (plus a burst) and refuses the rest; its other children do
// not notice.
func TestHostileWantFlooder(t *testing.T) {
	const parent, evil = peer.PeerID(2), peer.PeerID(3)
	sw := newSwarm(t, memnet.Config{Seed: 22, Latency: 10 * time.Millisecond, UploadBps: 20e6}, 1, 60_000, nil)
	defer sw.close()
	sw.addPeers(2, 5)
	sw.edge(0, rootID, parent)
	for c := peer.PeerID(3); c <= 6; c++ {
		sw.edge(0, parent, c)
	}
	const last = 80
	sw.publish(last)
	sw.net.RunFor(3 * time.Second)
	l := sw.links[[2]peer.PeerID{evil, parent}]
	sent := 0
	stop := sw.net.Every(10*time.Millisecond, func(time.Time) {
		seq := sw.next - 1
		for d := uint64(0); d < 8 && d < seq; d++ {
			m := []byte{'W', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
			m[2], m[3], m[4], m[5] = byte(sw.src.epoch>>24), byte(sw.src.epoch>>16), byte(sw.src.epoch>>8), byte(sw.src.epoch)
			s := seq - d
			for i := 0; i < 8; i++ {
				m[6+i] = byte(s >> (56 - 8*i))
			}
			_ = l.Send(m)
			sent++
		}
	})
	sw.net.RunFor((last-12)*250*time.Millisecond + 2*time.Second)
	stop()
	pc := sw.engines[parent].Counters()
	var toEvil uint64
	for _, c := range sw.engines[parent].Children() {
		if c.Peer == evil {
			toEvil = c.BytesUp
		}
	}
	streamBytes := uint64(last) * uint64(len(sw.src.chunk(t, 5)))
	for c := peer.PeerID(4); c <= 6; c++ {
		sw.checkPlayed(c, 1, last)
		if s := sw.engines[c].Counters().Stalls; s != 0 {
			t.Errorf("honest sibling %d stalled %d times", c, s)
		}
	}
	if pc.WantsRefused == 0 {
		t.Fatalf("the parent refused nothing: %+v", pc)
	}
	// Feed plus repair budget: at most about 1× + 2× the stream, plus bursts.
	if float64(toEvil) > 3.6*float64(streamBytes) {
		t.Errorf("the want flooder got %d B, %.1f× the stream", toEvil, float64(toEvil)/float64(streamBytes))
	}
	t.Logf("figures: want flooder: %d wants sent, parent served %d and refused %d; the flooder got %.2f× the stream (%d B); siblings stalled 0",
		sent, pc.WantsServed, pc.WantsRefused, float64(toEvil)/float64(streamBytes), toEvil)
}
