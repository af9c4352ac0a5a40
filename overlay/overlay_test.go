package overlay

import (
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func newForest(t testing.TB, cfg Config) *Forest {
	t.Helper()
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// join joins p and returns copies of the result slices.
func join(t testing.TB, f *Forest, p PeerInfo) ([]PeerID, []Change) {
	t.Helper()
	res, err := f.Join(p)
	if err != nil {
		t.Fatalf("join %+v: %v", p, err)
	}
	if err := f.Check(); err != nil {
		t.Fatalf("after join %d: %v", p.ID, err)
	}
	return slices.Clone(res.Parents), slices.Clone(res.Changes)
}

func parent(t testing.TB, f *Forest, id PeerID, s int) PeerID {
	t.Helper()
	p, err := f.Parent(id, s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func depth(t testing.TB, f *Forest, id PeerID, s int) int {
	t.Helper()
	d, err := f.Depth(id, s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// sameChanges compares change lists as sets.
func sameChanges(t testing.TB, got, want []Change) {
	t.Helper()
	key := func(c Change) string { return c.String() }
	g := make([]string, len(got))
	for i, c := range got {
		g[i] = key(c)
	}
	w := make([]string, len(want))
	for i, c := range want {
		w[i] = key(c)
	}
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Fatalf("changes\n got  %v\n want %v", g, w)
	}
}

func add(s int, p, c PeerID) Change { return Change{Stripe: s, Parent: p, Child: c, Added: true} }
func rm(s int, p, c PeerID) Change  { return Change{Stripe: s, Parent: p, Child: c} }

func TestNewConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero stripes", Config{}, false},
		{"too many stripes", Config{Stripes: MaxStripes + 1}, false},
		{"negative root", Config{Stripes: 2, RootCapacity: -1}, false},
		{"negative rate", Config{Stripes: 2, MovesPerSecond: -1}, false},
		{"bad root nat", Config{Stripes: 2, RootNAT: 9}, false},
		{"huge capacity", Config{Stripes: 2, MaxCapacity: 1 << 20}, false},
		{"long root locality", Config{Stripes: 2, RootLocality: strings.Repeat("x", MaxLocalityLen+1)}, false},
		{"defaults", Config{Stripes: 2}, true},
		{"one stripe", Config{Stripes: 1}, true},
		{"max stripes", Config{Stripes: MaxStripes}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := New(tc.cfg)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if f.Len() != 0 || f.Stripes() != tc.cfg.Stripes {
				t.Fatalf("Len %d Stripes %d", f.Len(), f.Stripes())
			}
			if err := f.Check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestJoinValidation(t *testing.T) {
	f := newForest(t, Config{Stripes: 2})
	join(t, f, PeerInfo{ID: 7, Capacity: 3})
	cases := []struct {
		name string
		p    PeerInfo
		want error
	}{
		{"root id", PeerInfo{ID: Root}, ErrInvalid},
		{"origin id", PeerInfo{ID: Origin}, ErrInvalid},
		{"negative capacity", PeerInfo{ID: 1, Capacity: -1}, ErrInvalid},
		{"bad nat", PeerInfo{ID: 1, NAT: natKinds}, ErrInvalid},
		{"long locality", PeerInfo{ID: 1, Locality: strings.Repeat("a", MaxLocalityLen+1)}, ErrInvalid},
		{"duplicate", PeerInfo{ID: 7}, ErrDuplicatePeer},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.Join(tc.p); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if f.Len() != 1 {
				t.Fatalf("Len %d after refused join", f.Len())
			}
		})
	}
	// A huge declared capacity is clamped, not refused.
	join(t, f, PeerInfo{ID: 8, Capacity: math.MaxInt32})
	if info, _ := f.Info(8); info.Capacity != 256 {
		t.Fatalf("capacity %d, want clamp to 256", info.Capacity)
	}
	if err := f.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownAndInvalid(t *testing.T) {
	f := newForest(t, Config{Stripes: 2})
	join(t, f, PeerInfo{ID: 1})
	now := time.Unix(1, 0)
	unknown := []func() error{
		func() error { _, err := f.Leave(99); return err },
		func() error { _, err := f.UpdateCapacity(99, 3, now); return err },
		func() error { _, err := f.ReportBadParent(99, 0); return err },
		func() error { _, err := f.SetNAT(99, NATOpen); return err },
		func() error { _, err := f.Parent(99, 0); return err },
		func() error { _, err := f.Children(nil, 99, 0); return err },
		func() error { _, err := f.Depth(99, 0); return err },
		func() error { _, err := f.Parents(nil, 99); return err },
		func() error { _, err := f.Info(99); return err },
	}
	for i, fn := range unknown {
		if err := fn(); !errors.Is(err, ErrUnknownPeer) {
			t.Errorf("call %d: err = %v, want ErrUnknownPeer", i, err)
		}
	}
	invalid := []func() error{
		func() error { _, err := f.Leave(Root); return err },
		func() error { _, err := f.UpdateCapacity(1, -1, now); return err },
		func() error { _, err := f.ReportBadParent(1, 2); return err },
		func() error { _, err := f.ReportBadParent(1, -1); return err },
		func() error { _, err := f.SetNAT(1, 77); return err },
		func() error { _, err := f.Parent(1, 2); return err },
		func() error { _, err := f.Parent(Root, 0); return err },
		func() error { _, err := f.Depth(1, -1); return err },
	}
	for i, fn := range invalid {
		if err := fn(); !errors.Is(err, ErrInvalid) {
			t.Errorf("call %d: err = %v, want ErrInvalid", i, err)
		}
	}
	if err := f.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestJoinScenario walks a small forest through origin fallback, promotion
// (a strong joiner takes a leaf's place and adopts it) and re-attachment.
func TestJoinScenario(t *testing.T) {
	f := newForest(t, Config{Stripes: 2, RootCapacity: 2})
	const A, B, C, D = 1, 2, 3, 4
	par, ch := join(t, f, PeerInfo{ID: A})
	if !slices.Equal(par, []PeerID{Root, Root}) {
		t.Fatalf("A parents %v", par)
	}
	sameChanges(t, ch, []Change{add(0, Root, A), add(1, Root, A)})

	// B can forward: interior in stripe 0 (tie), the root still has room.
	par, _ = join(t, f, PeerInfo{ID: B, Capacity: 4})
	if !slices.Equal(par, []PeerID{Root, Root}) {
		t.Fatalf("B parents %v", par)
	}
	if s, _ := f.Interior(B); s != 0 {
		t.Fatalf("B interior in %d", s)
	}

	// C is a leaf: under B in stripe 0; stripe 1 is full -> origin.
	res, err := f.Join(PeerInfo{ID: C})
	if err != nil {
		t.Fatal(err)
	}
	if res.Parents[0] != B || res.Parents[1] != Origin {
		t.Fatalf("C parents %v", res.Parents)
	}
	if err := res.StripeErr(1); !errors.Is(err, ErrNoCapacity) {
		t.Fatalf("StripeErr(1) = %v", err)
	}
	if res.StripeErr(0) != nil {
		t.Fatal("StripeErr(0) != nil")
	}
	if err := f.Check(); err != nil {
		t.Fatal(err)
	}

	// D can forward and stripe 1 needs it most. No slot is free there, so D
	// takes a leaf's place under the root and adopts it; then C leaves the
	// origin for D's spare slot.
	if _, ch = join(t, f, PeerInfo{ID: D, Capacity: 3}); true {
		if s, _ := f.Interior(D); s != 1 {
			t.Fatalf("D interior in %d", s)
		}
	}
	if parent(t, f, D, 1) != Root {
		t.Fatalf("D not under root in stripe 1")
	}
	kids, _ := f.Children(nil, D, 1)
	slices.Sort(kids)
	if len(kids) != 2 || kids[1] != C || (kids[0] != A && kids[0] != B) {
		t.Fatalf("D children %v", kids)
	}
	L := kids[0]
	sameChanges(t, ch, []Change{
		add(0, B, D),
		rm(1, Root, L), add(1, Root, D), add(1, D, L),
		rm(1, Origin, C), add(1, D, C),
	})
	if st := f.Stats(); st.Stripes[1].Origin != 0 || st.Stripes[0].Interior != 1 || st.Stripes[1].Interior != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// realistic builds a forest of n peers drawn by RandomPeer.
func realistic(t testing.TB, cfg Config, n int, seed uint64) (*Forest, []PeerID, *rand.Rand) {
	t.Helper()
	f := newForest(t, cfg)
	r := rand.New(rand.NewPCG(seed, 11))
	ids := make([]PeerID, 0, n)
	for i := 1; i <= n; i++ {
		p := RandomPeer(r, PeerID(i))
		if _, err := f.Join(p); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.ID)
	}
	return f, ids, r
}

// TestLeaveTouchesOnlyOrphans: a departure changes the departed peer's edges
// and its children's parent edges, nothing else, and keeps the orphans'
// subtrees intact.
func TestLeaveTouchesOnlyOrphans(t *testing.T) {
	f, ids, r := realistic(t, Config{Stripes: 4, Seed: 3}, 5000, 3)
	if err := f.Check(); err != nil {
		t.Fatal(err)
	}
	left := 0
	for tries := 0; left < 40 && tries < 5000; tries++ {
		x := ids[r.IntN(len(ids))]
		s, _ := f.Interior(x)
		if s < 0 {
			continue
		}
		orphans, _ := f.Children(nil, x, s)
		if len(orphans) == 0 {
			continue
		}
		if st := f.Stats(); st.Stripes[s].Origin > 0 {
			t.Fatalf("origin-fed peers in a roomy forest: %+v", st)
		}
		sub := map[PeerID][]PeerID{}
		for _, c := range orphans {
			k, _ := f.Children(nil, c, s)
			slices.Sort(k)
			sub[c] = k
		}
		ch, err := f.Leave(x)
		if err != nil {
			t.Fatal(err)
		}
		ch = slices.Clone(ch)
		if err := f.Check(); err != nil {
			t.Fatal(err)
		}
		var removed, added int
		for _, c := range ch {
			switch {
			case !c.Added && c.Child == x:
				removed++
			case !c.Added && c.Parent == x && c.Stripe == s && slices.Contains(orphans, c.Child):
				removed++
			case c.Added && c.Stripe == s && slices.Contains(orphans, c.Child) && c.Parent != x:
				added++
			default:
				t.Fatalf("leave of %d made unrelated change %v", x, c)
			}
		}
		if removed != f.k+len(orphans) || added != len(orphans) {
			t.Fatalf("leave of %d: %d removed, %d added, %d orphans", x, removed, added, len(orphans))
		}
		for c, had := range sub {
			// An orphan keeps all its children; it may adopt siblings.
			k, _ := f.Children(nil, c, s)
			for _, g := range had {
				if !slices.Contains(k, g) {
					t.Fatalf("orphan %d lost child %d: %v -> %v", c, g, had, k)
				}
			}
		}
		ids = slices.DeleteFunc(ids, func(v PeerID) bool { return v == x })
		left++
	}
	if left < 40 {
		t.Fatalf("only %d interior departures tested", left)
	}
}

// TestLeavesStayLeaves: weak and opted-out peers never forward.
func TestLeavesStayLeaves(t *testing.T) {
	f, ids, _ := realistic(t, Config{Stripes: 3, MinInteriorCapacity: 3}, 3000, 5)
	checked := 0
	for _, id := range ids {
		info, _ := f.Info(id)
		if info.Capacity >= 3 && !info.NoUpload {
			continue
		}
		checked++
		if s, _ := f.Interior(id); s != -1 {
			t.Fatalf("peer %+v interior in %d", info, s)
		}
		for s := 0; s < 3; s++ {
			if k, _ := f.Children(nil, id, s); len(k) != 0 {
				t.Fatalf("peer %+v has children %v in stripe %d", info, k, s)
			}
		}
	}
	if checked < 1000 {
		t.Fatalf("only %d weak peers", checked)
	}
}

func TestSymmetricPairsAvoided(t *testing.T) {
	t.Run("constructed", func(t *testing.T) {
		f := newForest(t, Config{Stripes: 1, RootCapacity: 1})
		join(t, f, PeerInfo{ID: 1, Capacity: 2, NAT: NATSymmetric}) // under root
		join(t, f, PeerInfo{ID: 2, Capacity: 2, NAT: NATCone})      // under 1, depth 2
		// Shallowest free slot is at 1 (symmetric): one level deeper is fine.
		join(t, f, PeerInfo{ID: 3, NAT: NATSymmetric})
		if p := parent(t, f, 3, 0); p != 2 {
			t.Fatalf("symmetric joiner under %d, want 2", p)
		}
		join(t, f, PeerInfo{ID: 4, NAT: NATCone}) // takes 2's last slot... or 1's
		join(t, f, PeerInfo{ID: 5, NAT: NATCone})
		// Now only symmetric 1 may have room, or nothing: a symmetric joiner
		// still gets a parent if one exists (TURN carries the pair).
		_, _ = join(t, f, PeerInfo{ID: 6, NAT: NATSymmetric})
		p := parent(t, f, 6, 0)
		if f.Stats().Stripes[0].FreeSlots > 0 && p == Origin {
			t.Fatalf("symmetric joiner sent to origin while slots exist")
		}
	})
	t.Run("realistic", func(t *testing.T) {
		f, _, _ := realistic(t, Config{Stripes: 4}, 20000, 9)
		var symChildren, symSym int
		for s := 0; s < 4; s++ {
			f.Walk(s, func(e Edge) bool {
				if e.Parent == Origin {
					return true
				}
				if f.nodes[f.ids[e.Child]].nat == NATSymmetric {
					symChildren++
					if f.nodes[f.ids[e.Parent]].nat == NATSymmetric {
						symSym++
					}
				}
				return true
			})
		}
		// Random placement would give about 15% of symmetric children a
		// symmetric parent.
		if frac := float64(symSym) / float64(symChildren); frac > 0.01 {
			t.Fatalf("%d of %d symmetric children have symmetric parents (%.2f%%)", symSym, symChildren, 100*frac)
		}
		t.Logf("sym-sym edges: %d of %d symmetric children", symSym, symChildren)
	})
}

func TestLocalityTieBreak(t *testing.T) {
	f := newForest(t, Config{Stripes: 1, RootCapacity: 2})
	join(t, f, PeerInfo{ID: 1, Capacity: 6, Locality: "eu"})
	join(t, f, PeerInfo{ID: 2, Capacity: 6, Locality: "us"})
	for i := PeerID(10); i < 18; i++ {
		loc, want := "us", PeerID(2)
		if i%2 == 0 {
			loc, want = "eu", 1
		}
		join(t, f, PeerInfo{ID: i, Locality: loc})
		if p := parent(t, f, i, 0); p != want {
			t.Fatalf("peer %d (%s) under %d, want %d", i, loc, p, want)
		}
	}
	if info, _ := f.Info(1); info.Locality != "eu" {
		t.Fatalf("Info locality %q", info.Locality)
	}
}

// TestCapacityUpdateMovesStrongUp covers both promotion paths.
func TestCapacityUpdateMovesStrongUp(t *testing.T) {
	now := time.Unix(100, 0)
	t.Run("swap with shallower leaf", func(t *testing.T) {
		f := newForest(t, Config{Stripes: 1, RootCapacity: 2})
		const A, L, C, D, E = 1, 2, 3, 4, 5
		join(t, f, PeerInfo{ID: A, Capacity: 2}) // root
		join(t, f, PeerInfo{ID: L})              // root (full now)
		join(t, f, PeerInfo{ID: C})              // under A
		join(t, f, PeerInfo{ID: D})              // under A (full now)
		if p, _ := join(t, f, PeerInfo{ID: E}); p[0] != Origin {
			t.Fatalf("E parent %v, want origin", p)
		}
		ch, err := f.UpdateCapacity(C, 5, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Check(); err != nil {
			t.Fatal(err)
		}
		sameChanges(t, ch, []Change{
			rm(0, Root, L), rm(0, A, C), add(0, Root, C), add(0, A, L),
			rm(0, Origin, E), add(0, C, E),
		})
		if depth(t, f, C, 0) != 1 || depth(t, f, L, 0) != 2 || depth(t, f, E, 0) != 2 {
			t.Fatal("depths after swap")
		}
	})
	t.Run("rotate above weaker parent", func(t *testing.T) {
		f := newForest(t, Config{Stripes: 1, RootCapacity: 1})
		const P, Y, K = 1, 2, 3
		join(t, f, PeerInfo{ID: P, Capacity: 2}) // root
		join(t, f, PeerInfo{ID: Y, Capacity: 2}) // under P
		join(t, f, PeerInfo{ID: K, Capacity: 2}) // under P or Y
		ch, err := f.UpdateCapacity(Y, 20, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Check(); err != nil {
			t.Fatal(err)
		}
		if parent(t, f, Y, 0) != Root || parent(t, f, P, 0) != Y {
			t.Fatalf("Y under %d, P under %d; changes %v", parent(t, f, Y, 0), parent(t, f, P, 0), ch)
		}
		// A weakened peer lets its strong child rise above it again.
		if _, err := f.UpdateCapacity(P, 30, now); err != nil {
			t.Fatal(err)
		}
		if parent(t, f, P, 0) != Root {
			t.Fatalf("P did not rise back")
		}
		if _, err := f.UpdateCapacity(P, 2, now.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := f.Check(); err != nil {
			t.Fatal(err)
		}
		if parent(t, f, Y, 0) != Root {
			t.Fatalf("weakened P stayed above strong Y")
		}
	})
}

// TestDemotionBoundedChurn: a peer whose capacity collapses sheds its
// children at most MaxMovesPerUpdate per call and its buckets' moves
// overall, and gets no new children meanwhile.
func TestDemotionBoundedChurn(t *testing.T) {
	// The update and upkeep buckets refill at 1 move/s (the per-peer share
	// made negligible), the shedding bucket at 2; each holds up to 3.
	f := newForest(t, Config{Stripes: 1, RootCapacity: 20, MaxMovesPerUpdate: 3, MovesPerSecond: 2, MovesPerPeer: 1e-9})
	const H, G = 1, 2
	join(t, f, PeerInfo{ID: H, Capacity: 10})
	for i := PeerID(100); i < 119; i++ {
		join(t, f, PeerInfo{ID: i})
	}
	for i := PeerID(200); i < 210; i++ {
		join(t, f, PeerInfo{ID: i})
		if p := parent(t, f, i, 0); p != H {
			t.Fatalf("leaf %d under %d", i, p)
		}
	}
	join(t, f, PeerInfo{ID: G, Capacity: 20}) // takes a leaf's root slot
	now := time.Unix(1000, 0)
	kids := func() int { k, _ := f.Children(nil, H, 0); return len(k) }

	ch, err := f.UpdateCapacity(H, 0, now) // at most MaxMovesPerUpdate = 3
	if err != nil {
		t.Fatal(err)
	}
	if len(ch) != 6 || kids() != 7 || f.Stats().Pending != 1 {
		t.Fatalf("first update: %d changes, %d kids, stats %+v", len(ch), kids(), f.Stats())
	}
	if err := f.Check(); err != nil {
		t.Fatal(err)
	}
	// A shedding peer gets no new children.
	join(t, f, PeerInfo{ID: 300})
	if parent(t, f, 300, 0) == H {
		t.Fatal("shedding peer got a child")
	}
	// The update spent its own bucket, not Tick's: Tick sheds at once, as
	// far as its shedding and upkeep buckets go (3 + 3). With one bucket
	// for both, capacity updates at 10k viewers spent all of it and Tick
	// never ran.
	if ch := f.Tick(now); len(ch) != 12 || kids() != 1 {
		t.Fatalf("tick after the update: %d changes, %d kids: %v", len(ch), kids(), ch)
	}
	if ch := f.Tick(now); len(ch) != 0 {
		t.Fatalf("tick without budget moved: %v", ch)
	}
	for sec := 1; kids() > 0; sec++ {
		before := kids()
		if sec > 10 {
			t.Fatal("shedding never finished")
		}
		ch := f.Tick(now.Add(time.Duration(sec) * time.Second))
		if err := f.Check(); err != nil {
			t.Fatal(err)
		}
		if moved := before - kids(); moved != min(3, before) || len(ch) < 2*moved {
			t.Fatalf("second %d: moved %d of %d (changes %v)", sec, moved, before, ch)
		}
	}
	if s, _ := f.Interior(H); s != -1 || f.Stats().Pending != 0 {
		t.Fatalf("H interior %d after shedding, stats %+v", s, f.Stats())
	}
}

// TestShedAtMoveRate: after many peers' capacities fall at once (the
// flash crowd's guessed slots, then measured), Tick sheds their children at
// the full move rate, not at the half that rebalancing shares: those
// children are fed by uplinks too small for them until they move. At
// 6 Mbit/s the shedding took 14 s after the ramp while every stripe had
// free slots (bench/analysis.md).
func TestShedAtMoveRate(t *testing.T) {
	const rate = 10 // moves/s; the per-peer share made negligible
	f := newForest(t, Config{Stripes: 1, RootCapacity: 5, MaxMovesPerUpdate: 1, MovesPerSecond: rate, MovesPerPeer: 1e-9})
	hosts := []PeerID{1, 2, 3, 4}
	for _, h := range hosts {
		join(t, f, PeerInfo{ID: h, Capacity: 10})
	}
	for i := PeerID(100); i < 141; i++ {
		join(t, f, PeerInfo{ID: i})
	}
	join(t, f, PeerInfo{ID: 50, Capacity: 60}) // the spare slots
	now := time.Unix(1000, 0)
	excess := 0
	for _, h := range hosts {
		if _, err := f.UpdateCapacity(h, 0, now); err != nil {
			t.Fatal(err)
		}
		k, _ := f.Children(nil, h, 0)
		excess += len(k)
	}
	if excess < 3*rate {
		t.Fatalf("only %d children to shed", excess)
	}
	// The buckets start full (rate moves each): at the full rate the
	// shedding is done within excess/rate seconds after the first Tick.
	limit := (excess + rate - 1) / rate
	for sec := 0; f.Stats().Pending > 0; sec++ {
		if sec > limit {
			t.Fatalf("%d peers still shedding after %d s (%d children at first, %d moves/s)", f.Stats().Pending, sec, excess, rate)
		}
		f.Tick(now.Add(time.Duration(sec) * time.Second))
		if err := f.Check(); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range hosts {
		if k, _ := f.Children(nil, h, 0); len(k) != 0 {
			t.Fatalf("host %d kept %d children", h, len(k))
		}
	}
}

// TestShedNotToOrigin: the shedding bucket moves children only to free
// slots; with none, a child stays under its overloaded parent (which still
// delivers most chunks) beyond what the upkeep bucket moves, instead of
// going to the origin for all of them.
func TestShedNotToOrigin(t *testing.T) {
	f := newForest(t, Config{Stripes: 1, RootCapacity: 1, MaxMovesPerUpdate: 1, MovesPerSecond: 2, MovesPerPeer: 1e-9})
	const H = 1
	join(t, f, PeerInfo{ID: H, Capacity: 10})
	for i := PeerID(100); i < 110; i++ {
		join(t, f, PeerInfo{ID: i})
	}
	now := time.Unix(1000, 0)
	if _, err := f.UpdateCapacity(H, 2, now); err != nil { // one move: to the origin
		t.Fatal(err)
	}
	f.Tick(now) // the upkeep bucket: two more
	if err := f.Check(); err != nil {
		t.Fatal(err)
	}
	if k, _ := f.Children(nil, H, 0); len(k) != 7 || f.OriginFed(0) != 3 {
		t.Fatalf("H kept %d children, %d origin-fed; want 7 and 3", len(k), f.OriginFed(0))
	}
}

func TestReportBadParent(t *testing.T) {
	f := newForest(t, Config{Stripes: 1, RootCapacity: 2})
	const P1, P2, X, P3 = 1, 2, 3, 4
	join(t, f, PeerInfo{ID: P1, Capacity: 4})
	join(t, f, PeerInfo{ID: P2, Capacity: 4})
	join(t, f, PeerInfo{ID: X})
	first := parent(t, f, X, 0)
	other := PeerID(P1 + P2 - first)
	ch, err := f.ReportBadParent(X, 0)
	if err != nil {
		t.Fatal(err)
	}
	sameChanges(t, ch, []Change{rm(0, first, X), add(0, other, X)})
	if _, err := f.ReportBadParent(X, 0); err != nil {
		t.Fatal(err)
	}
	if p := parent(t, f, X, 0); p != Origin {
		t.Fatalf("X under %d after reporting both parents, want origin", p)
	}
	if err := f.Check(); err != nil {
		t.Fatal(err) // X is not attachable: the only free slots are avoided
	}
	// Leaves of both parents do not bring X back to them; a new parent does.
	for i := PeerID(10); i < 14; i++ {
		join(t, f, PeerInfo{ID: i})
	}
	if p := parent(t, f, X, 0); p != Origin {
		t.Fatalf("X moved back to %d", p)
	}
	join(t, f, PeerInfo{ID: P3, Capacity: 4})
	if p := parent(t, f, X, 0); p != P3 {
		t.Fatalf("X under %d, want new parent %d", p, P3)
	}
}

func TestSetNAT(t *testing.T) {
	f := newForest(t, Config{Stripes: 1, RootCapacity: 1})
	join(t, f, PeerInfo{ID: 1, Capacity: 3, NAT: NATSymmetric})
	join(t, f, PeerInfo{ID: 2, Capacity: 3, NAT: NATCone})
	join(t, f, PeerInfo{ID: 3, NAT: NATUnknown})
	if p := parent(t, f, 3, 0); p != 1 {
		t.Fatalf("3 under %d, want the shallowest (1)", p)
	}
	ch, err := f.SetNAT(3, NATSymmetric)
	if err != nil {
		t.Fatal(err)
	}
	sameChanges(t, ch, []Change{rm(0, 1, 3), add(0, 2, 3)})
	if err := f.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestQueries(t *testing.T) {
	f, ids, r := realistic(t, Config{Stripes: 3}, 2000, 21)
	for s := 0; s < 3; s++ {
		edges := 0
		maxD := 0
		f.Walk(s, func(e Edge) bool {
			edges++
			maxD = max(maxD, e.Depth)
			if e.Parent != Origin && depth(t, f, e.Child, s) != depth(t, f, e.Parent, s)+1 && e.Parent != Root {
				t.Fatalf("walk edge %+v depth", e)
			}
			return true
		})
		if edges != f.Len() {
			t.Fatalf("stripe %d: walk saw %d edges for %d peers", s, edges, f.Len())
		}
		h := f.DepthHistogram(nil, s)
		sum := 0
		for _, c := range h {
			sum += c
		}
		if sum != f.Len() || len(h) != f.MaxDepth(s) || maxD != f.MaxDepth(s) {
			t.Fatalf("histogram %v (sum %d), max depth %d, walk max %d", h, sum, f.MaxDepth(s), maxD)
		}
		stop := 0
		f.Walk(s, func(Edge) bool { stop++; return stop < 5 })
		if stop != 5 {
			t.Fatalf("walk did not stop: %d", stop)
		}
	}
	for range 50 {
		id := ids[r.IntN(len(ids))]
		ps, err := f.Parents(nil, id)
		if err != nil || len(ps) != 3 {
			t.Fatal(ps, err)
		}
		for s, p := range ps {
			if p == Origin {
				continue
			}
			kids, _ := f.Children(nil, p, s)
			if !slices.Contains(kids, id) {
				t.Fatalf("peer %d not among children of its parent %d", id, p)
			}
		}
	}
	if info, err := f.Info(Root); err != nil || info.Capacity != DefaultRootCapacity {
		t.Fatalf("root info %+v %v", info, err)
	}
}

// logF is log base (mean capacity of forwarding peers) of n for RandomPeer's mix.
func logF(n int) float64 {
	r := rand.New(rand.NewPCG(99, 1))
	var sum, cnt float64
	for range 200000 {
		if c := SampleCapacity(r); c >= 2 {
			sum += float64(c)
			cnt++
		}
	}
	return math.Log(float64(n)) / math.Log(sum/cnt)
}

// TestDepthAtScale: 100k peers with the realistic capacity mix stay close to
// log_F(N) deep, after building and after 20% churn with Tick rebalancing;
// and the forest holds far less than 8 KiB per peer.
func TestDepthAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("100k peers: skipped in -short")
	}
	const n = 100000
	want := logF(n)
	for _, k := range []int{2, 4} {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		f, ids, r := realistic(t, Config{Stripes: k, Seed: 5}, n, uint64(k))
		runtime.GC()
		runtime.ReadMemStats(&m1)
		perPeer := float64(m1.HeapAlloc-m0.HeapAlloc) / n
		build := f.Stats()
		if float64(build.MaxDepth) > math.Ceil(want)+1 {
			t.Errorf("K=%d: build max depth %d, log_F(N) = %.2f", k, build.MaxDepth, want)
		}
		now := time.Unix(0, 0)
		next := PeerID(n + 1)
		for i := 0; i < n/5; i++ {
			now = now.Add(5 * time.Millisecond)
			if i%20 == 0 {
				f.Tick(now)
			}
			j := r.IntN(len(ids))
			if _, err := f.Leave(ids[j]); err != nil {
				t.Fatal(err)
			}
			p := RandomPeer(r, next)
			next++
			if _, err := f.Join(p); err != nil {
				t.Fatal(err)
			}
			ids[j] = p.ID
		}
		if err := f.Check(); err != nil {
			t.Fatal(err)
		}
		st := f.Stats()
		var mean float64
		for _, ss := range st.Stripes {
			mean += ss.MeanDepth / float64(k)
			if ss.Origin != 0 {
				t.Errorf("K=%d: %d origin-fed peers with spare capacity", k, ss.Origin)
			}
		}
		if float64(st.MaxDepth) > math.Ceil(want)+4 || mean > want+0.5 {
			t.Errorf("K=%d after churn: max depth %d, mean %.2f, log_F(N) = %.2f", k, st.MaxDepth, mean, want)
		}
		if perPeer > 8192 {
			t.Errorf("K=%d: %.0f bytes per peer", k, perPeer)
		}
		t.Logf("K=%d: log_F(N)=%.2f build max %d; after churn max %d mean %.2f; %.0f bytes/peer",
			k, want, build.MaxDepth, st.MaxDepth, mean, perPeer)
		runtime.KeepAlive(f)
	}
}

// TestSuspectTakesNoChildren: a parent its children reported gone gets no
// new child, whatever places peers (joins, orphans of departures, the
// rebalancer), until the tracker hears from it again.
func TestSuspectTakesNoChildren(t *testing.T) {
	f, ids, r := realistic(t, Config{Stripes: 2, Seed: 5}, 2000, 5)
	// A strong interior peer whose children all report it silent.
	var P PeerID
	var s int
	for _, id := range ids {
		if st, _ := f.Interior(id); st >= 0 {
			if k, _ := f.Children(nil, id, st); len(k) >= 3 {
				P, s = id, st
				break
			}
		}
	}
	if P == 0 {
		t.Fatal("no interior peer with children")
	}
	if err := f.Suspect(P); err != nil {
		t.Fatal(err)
	}
	kids, _ := f.Children(nil, P, s)
	for _, c := range kids {
		if _, err := f.ReportBadParent(c, s); err != nil {
			t.Fatal(err)
		}
	}
	childrenOf := func() int {
		n := 0
		for st := range 2 {
			k, _ := f.Children(nil, P, st)
			n += len(k)
		}
		return n
	}
	next := PeerID(len(ids) + 1)
	for round := range 20 {
		for range 25 {
			join(t, f, RandomPeer(r, next))
			ids = append(ids, next)
			next++
		}
		for range 10 {
			i := r.IntN(len(ids))
			if ids[i] == P {
				continue
			}
			if _, err := f.Leave(ids[i]); err != nil {
				t.Fatal(err)
			}
			ids = slices.Delete(ids, i, i+1)
		}
		f.Tick(time.Unix(int64(round), 0))
		if n := childrenOf(); n != 0 {
			t.Fatalf("round %d: the suspect has %d children", round, n)
		}
	}
	if err := f.Check(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Alive(P); err != nil {
		t.Fatal(err)
	}
	for range 200 {
		join(t, f, RandomPeer(r, next))
		next++
	}
	if childrenOf() == 0 {
		t.Fatal("heard from again, the peer still gets no children")
	}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"root suspect", f.Suspect(Root)},
		{"root alive", func() error { _, err := f.Alive(Root); return err }()},
	} {
		if tc.err != nil {
			t.Fatalf("%s: %v", tc.name, tc.err)
		}
	}
	if err := f.Suspect(999999); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("unknown peer: %v", err)
	}
}

// A stripe whose peers wait on the origin while another has spare slots
// gets an interior peer from it: the homes follow the measured
// capacities, not the guesses they were chosen by at join.
func TestRehomeSpareSlots(t *testing.T) {
	f := newForest(t, Config{Stripes: 2, RootCapacity: 2})
	for id := PeerID(1); id <= 6; id++ {
		join(t, f, PeerInfo{ID: id, Capacity: 3})
	}
	for i := PeerID(100); i < 108; i++ {
		join(t, f, PeerInfo{ID: i, NoUpload: true})
	}
	home := map[int][]PeerID{}
	for id := PeerID(1); id <= 6; id++ {
		s, err := f.Interior(id)
		if err != nil {
			t.Fatal(err)
		}
		home[s] = append(home[s], id)
	}
	rich, need := 0, 1
	if len(home[rich]) < 2 || len(home[need]) == 0 {
		t.Fatalf("homes %v: want at least two in stripe 0 and one in 1", home)
	}
	// Measured: one peer of stripe 0 carries far more than guessed, the
	// peers of stripe 1 nothing.
	now := time.Unix(1000, 0)
	if _, err := f.UpdateCapacity(home[rich][0], 16, now); err != nil {
		t.Fatal(err)
	}
	for _, id := range home[need] {
		if _, err := f.UpdateCapacity(id, 0, now); err != nil {
			t.Fatal(err)
		}
	}
	// Shedding first (Tick finishes it, and may already rehome).
	for sec := 1; f.Stats().Pending > 0; sec++ {
		if sec > 30 {
			t.Fatal("shedding never finished")
		}
		f.Tick(now.Add(time.Duration(sec) * time.Second))
		if err := f.Check(); err != nil {
			t.Fatal(err)
		}
	}
	f.Tick(now.Add(time.Minute))
	if err := f.Check(); err != nil {
		t.Fatal(err)
	}
	st := f.Stats().Stripes
	moved := 0
	for _, id := range home[rich] {
		s, _ := f.Interior(id)
		switch {
		case s == need:
			moved++
		case s == rich && int64(f.nodes[f.ids[id]].cap) <= st[rich].FreeSlots-int64(st[rich].Origin) && int64(st[need].Origin) > st[need].FreeSlots:
			t.Fatalf("peer %d (capacity %d) could still move: %+v", id, f.nodes[f.ids[id]].cap, st)
		}
	}
	// Without rehoming, stripe 1 has the root's two slots for 14 peers.
	if moved == 0 || st[need].Origin >= 12 {
		t.Fatalf("%d peers moved home, stripe %d keeps %d on the origin: %+v", moved, need, st[need].Origin, st)
	}
	if st[rich].Origin > 0 || st[rich].FreeSlots < 0 {
		t.Fatalf("rehoming left stripe %d short: %+v", rich, st)
	}
	// Settled: later ticks move no home back.
	homes := func() []int {
		var h []int
		for id := PeerID(1); id <= 6; id++ {
			s, _ := f.Interior(id)
			h = append(h, s)
		}
		return h
	}
	was := homes()
	for sec := 2; sec < 10; sec++ {
		f.Tick(now.Add(time.Duration(sec) * time.Minute))
	}
	if now := homes(); !slices.Equal(now, was) {
		t.Fatalf("homes moved again: %v, then %v", was, now)
	}
}

// TestNoSlotUnderSuspect: a peer reported gone still has its children in
// place until the tracker times it out, and their free slots are starved
// too: a joiner put there is fed by nobody. Joins go to slots whose path to
// the root has no suspect while one is as shallow or within NATSlack.
func TestNoSlotUnderSuspect(t *testing.T) {
	f, ids, r := realistic(t, Config{Stripes: 2, Seed: 7}, 2000, 7)
	under := func(id, anc PeerID, s int) bool {
		for range 64 {
			p, err := f.Parent(id, s)
			if err != nil || p == Root || p == 0 {
				return false
			}
			if p == anc {
				return true
			}
			id = p
		}
		return false
	}
	// The shallowest interior peers with children: their children's free
	// slots are among the first a joiner is offered.
	var suspects []PeerID
	for _, id := range ids {
		if s, _ := f.Interior(id); s >= 0 {
			if d, _ := f.Depth(id, s); d <= 2 {
				if k, _ := f.Children(nil, id, s); len(k) >= 2 {
					suspects = append(suspects, id)
				}
			}
		}
	}
	if len(suspects) < 4 {
		t.Fatalf("%d shallow interior peers", len(suspects))
	}
	suspects = suspects[:4]
	for _, id := range suspects {
		if err := f.Suspect(id); err != nil {
			t.Fatal(err)
		}
	}
	next := PeerID(len(ids) + 1)
	bad := 0
	for range 200 {
		p := RandomPeer(r, next)
		join(t, f, p)
		for s := range 2 {
			if slices.ContainsFunc(suspects, func(sp PeerID) bool { return under(p.ID, sp, s) }) {
				bad++
				break
			}
		}
		next++
	}
	if bad > 0 {
		t.Errorf("%d of 200 joiners were placed below a suspect (%d suspects)", bad, len(suspects))
	}
}

func TestMoveRate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		live int
		want float64
	}{
		{Config{Stripes: 1}, 0, 100},
		{Config{Stripes: 1}, 10_000, 200},
		{Config{Stripes: 1, MovesPerSecond: 10, MovesPerPeer: 0.1}, 50, 15},
	} {
		f := newForest(t, tc.cfg)
		f.live = tc.live
		if got := f.moveRate(); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%+v with %d peers: %v moves/s, want %v", tc.cfg, tc.live, got, tc.want)
		}
	}
	if _, err := New(Config{Stripes: 1, MovesPerPeer: -1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative MovesPerPeer: %v", err)
	}
}

// TestGoneParentNotUnderUnheard: after 30 % vanish at once, the orphans
// that report their parents gone are not re-hung under other victims the
// tracker has not heard from since (nobody has reported those yet), while
// the live peers' stats keep arriving.
func TestGoneParentNotUnderUnheard(t *testing.T) {
	const k = 4
	f, ids, r := realistic(t, Config{Stripes: k, Seed: 5}, 2000, 5)
	t0 := time.Unix(1000, 0)
	victim := make(map[PeerID]bool)
	for _, id := range ids {
		// Stats spread over an interval before the departure.
		f.Heard(id, t0.Add(-time.Duration(r.IntN(2000))*time.Millisecond))
		if r.IntN(10) < 3 {
			victim[id] = true
		}
	}
	// The survivors' next stats; the victims stay quiet.
	for _, id := range ids {
		if !victim[id] {
			f.Heard(id, t0.Add(time.Duration(r.IntN(2000))*time.Millisecond))
		}
	}
	now := t0.Add(2 * time.Second)
	reports, under := 0, 0
	for _, id := range ids {
		if victim[id] {
			continue
		}
		for s := range k {
			p := parent(t, f, id, s)
			if !victim[p] {
				continue
			}
			if err := f.Suspect(p); err != nil {
				t.Fatal(err)
			}
			if _, err := f.ReportGoneParent(id, s, now); err != nil {
				t.Fatal(err)
			}
			reports++
			if victim[parent(t, f, id, s)] {
				under++
			}
		}
	}
	if err := f.Check(); err != nil {
		t.Fatal(err)
	}
	if reports < 100 {
		t.Fatalf("only %d orphans", reports)
	}
	if under > 0 {
		t.Errorf("%d of %d orphans re-hung under a peer not heard from since the departure", under, reports)
	}
}
