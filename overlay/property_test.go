package overlay

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// sim drives a Forest with random operations and mirrors which peers are
// live, so that operations target existing peers most of the time.
type sim struct {
	t     testing.TB
	f     *Forest
	r     *rand.Rand
	live  []PeerID
	next  PeerID
	now   time.Time
	ops   int
	check func() bool // whether to run Check after this op

	mirror map[edgeKey]PeerID // parents as known from the reported changes
}

func newSim(t testing.TB, cfg Config, seed uint64) *sim {
	t.Helper()
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &sim{t: t, f: f, r: rand.New(rand.NewPCG(seed, 7)), next: 1, now: time.Unix(1000, 0),
		mirror: make(map[edgeKey]PeerID)}
}

func (m *sim) pick() (PeerID, int) {
	k := m.r.IntN(len(m.live))
	return m.live[k], k
}

// verifyChanges replays the reported changes on the mirror (the tracker's
// view) and checks they are well formed: an edge is removed only if it
// exists, added only where the child has no parent.
func (m *sim) verifyChanges(ch []Change) {
	m.t.Helper()
	for _, c := range ch {
		key := edgeKey{c.Stripe, c.Child}
		p, ok := m.mirror[key]
		if c.Added {
			if ok {
				m.t.Fatalf("op %d: %v but child already has parent %d", m.ops, c, p)
			}
			m.mirror[key] = c.Parent
			continue
		}
		if !ok || p != c.Parent {
			m.t.Fatalf("op %d: %v but mirror has %d (%v)", m.ops, c, p, ok)
		}
		delete(m.mirror, key)
	}
}

// verifyMirror checks that the changes reported so far add up to the forest:
// the tracker, applying only changes, knows every peer's parents.
func (m *sim) verifyMirror() {
	m.t.Helper()
	if len(m.mirror) != len(m.live)*m.f.k {
		m.t.Fatalf("op %d: mirror has %d edges, want %d", m.ops, len(m.mirror), len(m.live)*m.f.k)
	}
	for _, id := range m.live {
		for s := 0; s < m.f.k; s++ {
			p, err := m.f.Parent(id, s)
			if err != nil || m.mirror[edgeKey{s, id}] != p {
				m.t.Fatalf("op %d: peer %d stripe %d parent %d, mirror %d (%v)", m.ops, id, s, p, m.mirror[edgeKey{s, id}], err)
			}
		}
	}
}

type edgeKey struct {
	s  int
	id PeerID
}

func (m *sim) step() string {
	m.ops++
	m.now = m.now.Add(time.Duration(m.r.IntN(200)) * time.Millisecond)
	op := m.r.IntN(100)
	var desc string
	switch {
	case len(m.live) == 0 || op < 40:
		p := RandomPeer(m.r, m.next)
		if m.r.IntN(4) == 0 {
			p.Capacity = m.r.IntN(12)
		}
		m.next++
		res, err := m.f.Join(p)
		if err != nil {
			m.t.Fatalf("op %d: join %+v: %v", m.ops, p, err)
		}
		if len(res.Parents) != m.f.k {
			m.t.Fatalf("op %d: join returned %d parents", m.ops, len(res.Parents))
		}
		m.live = append(m.live, p.ID)
		m.verifyChanges(res.Changes)
		desc = fmt.Sprintf("join %+v", p)
	case op < 70:
		id, k := m.pick()
		ch, err := m.f.Leave(id)
		if err != nil {
			m.t.Fatalf("op %d: leave %d: %v", m.ops, id, err)
		}
		m.live[k] = m.live[len(m.live)-1]
		m.live = m.live[:len(m.live)-1]
		m.verifyChanges(ch)
		desc = fmt.Sprintf("leave %d", id)
	case op < 85:
		id, _ := m.pick()
		c := SampleCapacity(m.r)
		ch, err := m.f.UpdateCapacity(id, c, m.now)
		if err != nil {
			m.t.Fatalf("op %d: update %d: %v", m.ops, id, err)
		}
		m.verifyChanges(ch)
		desc = fmt.Sprintf("update %d cap %d", id, c)
	case op < 92:
		id, _ := m.pick()
		s := m.r.IntN(m.f.k)
		ch, err := m.f.ReportBadParent(id, s)
		if err != nil {
			m.t.Fatalf("op %d: report %d: %v", m.ops, id, err)
		}
		m.verifyChanges(ch)
		desc = fmt.Sprintf("report %d stripe %d", id, s)
	case op < 97:
		id, _ := m.pick()
		n := NAT(m.r.IntN(int(natKinds)))
		ch, err := m.f.SetNAT(id, n)
		if err != nil {
			m.t.Fatalf("op %d: setnat %d: %v", m.ops, id, err)
		}
		m.verifyChanges(ch)
		desc = fmt.Sprintf("setnat %d %v", id, n)
	default:
		m.verifyChanges(m.f.Tick(m.now))
		desc = "tick"
	}
	if m.check == nil || m.check() {
		if err := m.f.Check(); err != nil {
			m.t.Fatalf("op %d (%s): %v", m.ops, desc, err)
		}
		if m.ops%16 == 0 {
			m.verifyMirror() // O(N*K) map lookups: sampled
		}
	}
	return desc
}

func TestPropertyRandomOps(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		ops  int
	}{
		{"k1-tight-root", Config{Stripes: 1, RootCapacity: 2}, 10000},
		{"k2", Config{Stripes: 2, RootCapacity: 4}, 10000},
		{"k4", Config{Stripes: 4, RootCapacity: 6, NATSlack: 2}, 10000},
		{"k8-scarce", Config{Stripes: 8, RootCapacity: 3, MinInteriorCapacity: 3}, 10000},
		{"k3-slow-moves", Config{Stripes: 3, RootCapacity: 5, MaxMovesPerUpdate: 1, MovesPerSecond: 2}, 10000},
	}
	for _, tc := range cases {
		for seed := uint64(1); seed <= 3; seed++ {
			t.Run(fmt.Sprintf("%s/seed%d", tc.name, seed), func(t *testing.T) {
				t.Parallel()
				cfg := tc.cfg
				cfg.Seed = seed
				m := newSim(t, cfg, seed)
				for i := 0; i < tc.ops; i++ {
					m.step()
				}
				m.verifyMirror()
				t.Logf("peers %d, stats %+v", m.f.Len(), m.f.Stats())
			})
		}
	}
}
