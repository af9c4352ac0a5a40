package peer_test

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/peer/memnet"
	"github.com/banyan-live/banyan/protocol"
)

type countPlayer struct {
	played uint64
	last   uint64
	gaps   int
}

func (p *countPlayer) Init(uint32, []byte) {}
func (p *countPlayer) Chunk(h chunk.Header, _ []byte) {
	if p.last != 0 && h.Seq != p.last+1 {
		p.gaps++
	}
	p.last = h.Seq
	p.played++
}

// TestScaleSimulation runs a K=4 stripe forest of many peers on memnet (2000
// by default, BANYAN_SCALE_PEERS=10000 for the design's figure): every peer
// interior in one stripe, fanout 4, 20 ms links, 2 KB chunks every 250 ms.
// It then removes 30 % of the peers at once (no re-parenting: repair alone
// must cover) and reports stall-free survivors, origin offload and how fast
// the simulation ran.
func TestScaleSimulation(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("BANYAN_SCALE_PEERS")); err == nil && v > 0 {
		n = v
	}
	const k = 4
	start := time.Now()
	net := memnet.New(memnet.Config{Seed: 11, Latency: 20 * time.Millisecond, Jitter: 10 * time.Millisecond})
	src := newSource(t, 2000)
	origin := memnet.NewOrigin(net, 50*time.Millisecond)
	cache := peer.NewVerifyCache(src.pub, testStream, 256)
	engines := make([]*peer.Engine, n+2) // by id; 1 is the root
	players := make([]*countPlayer, n+2)
	reports := 0
	mk := func(id peer.PeerID) *peer.Engine {
		c := peer.Config{Stream: testStream, Stripes: k, Root: id == rootID, Clock: net.Now, Verify: cache.Verify, Window: 5 * time.Second}
		if id != rootID {
			players[id] = &countPlayer{}
			c.Player, c.Origin = players[id], origin
			c.Report = func(protocol.Report) { reports++ }
		}
		e, err := peer.New(c)
		if err != nil {
			t.Fatal(err)
		}
		engines[id] = e
		return e
	}
	mk(rootID)
	for id := peer.PeerID(2); id < peer.PeerID(n+2); id++ {
		mk(id)
	}
	links := map[[2]peer.PeerID]*memnet.Link{}
	link := func(a, b peer.PeerID) *memnet.Link {
		if l := links[[2]peer.PeerID{a, b}]; l != nil {
			return l
		}
		la, lb := net.Connect(a, b, memnet.LinkOptions{})
		links[[2]peer.PeerID{a, b}], links[[2]peer.PeerID{b, a}] = la, lb
		la.OnMessage(func(m []byte) {
			if e := engines[a]; e != nil {
				e.HandleMessage(b, la, m)
			}
		})
		lb.OnMessage(func(m []byte) {
			if e := engines[b]; e != nil {
				e.HandleMessage(a, lb, m)
			}
		})
		return la
	}
	depth := map[peer.PeerID]int{}
	maxDepth := 0
	for s := range k {
		var interior, leaves []peer.PeerID
		for id := peer.PeerID(2); id < peer.PeerID(n+2); id++ {
			if int(id)%k == s {
				interior = append(interior, id)
			} else {
				leaves = append(leaves, id)
			}
		}
		type slot struct {
			id   peer.PeerID
			room int
			d    int
		}
		q := []slot{{rootID, 8, 0}}
		for i, c := range append(interior, leaves...) {
			for q[0].room == 0 {
				q = q[1:]
			}
			p := &q[0]
			_ = engines[p.id].AddChild(s, c, link(p.id, c))
			_ = engines[c].SetParent(s, p.id, link(c, p.id))
			p.room--
			maxDepth = max(maxDepth, p.d+1)
			depth[c] = max(depth[c], p.d+1)
			if i < len(interior) {
				q = append(q, slot{c, 4, p.d + 1})
			}
		}
	}
	tick := net.Every(100*time.Millisecond, func(now time.Time) {
		for _, e := range engines {
			if e != nil {
				e.Tick(now)
			}
		}
	})
	defer tick()
	const last = 80 // 20 s
	src.eos = last
	next := uint64(0)
	pub := net.Every(src.dur, func(time.Time) {
		if next > last {
			return
		}
		b := src.chunk(t, next)
		_ = origin.Put(b)
		if err := engines[rootID].Publish(b); err != nil {
			t.Fatal(err)
		}
		next++
	})
	defer pub()
	built := time.Since(start)

	net.RunFor(10 * time.Second)
	phase1 := time.Since(start) - built
	var st1 []peer.Counters
	for _, e := range engines[2:] {
		st1 = append(st1, e.Counters())
	}
	// 30 % vanish at once.
	rng := net.Rand()
	killed := 0
	for id := 2; id < n+2; id++ {
		if rng.Float64() < 0.3 {
			net.Node(peer.PeerID(id)).Kill()
			engines[id].Close()
			engines[id] = nil
			killed++
		}
	}
	net.RunFor(12 * time.Second)
	wall := time.Since(start) - built

	var bytesP2P, bytesOrigin, stallFree, survivors, stallsBefore, complete int
	for id := 2; id < n+2; id++ {
		if engines[id] == nil {
			continue
		}
		survivors++
		c := engines[id].Counters()
		s := engines[id].Stats()
		bytesP2P += int(s.BytesP2P + s.BytesTURN)
		bytesOrigin += int(s.BytesOrigin)
		if c.Stalls == 0 {
			stallFree++
		}
		stallsBefore += int(st1[id-2].Stalls)
		if players[id].played == last && players[id].gaps == 0 {
			complete++
		}
	}
	offload := float64(bytesP2P) / float64(bytesP2P+bytesOrigin)
	t.Logf("%d peers, K=%d, depth %d; built in %v; 10 s simulated in %v, then %d peers (30%%) vanished, 12 s more in %v; %d events",
		n, k, maxDepth, built.Round(time.Millisecond), phase1.Round(time.Millisecond), killed, (wall - phase1).Round(time.Millisecond), net.Delivered)
	t.Logf("before the loss: %d stalls in total; survivors stall-free %d/%d (%.2f%%), played every chunk %d; origin offload %.2f%% (%d origin requests); %d reports",
		stallsBefore, stallFree, survivors, 100*float64(stallFree)/float64(survivors), complete, 100*offload, origin.Requests, reports)
	if stallsBefore != 0 {
		t.Errorf("%d stalls before any loss", stallsBefore)
	}
	if float64(stallFree) < 0.995*float64(survivors) {
		t.Errorf("only %d of %d survivors stall-free", stallFree, survivors)
	}
}
