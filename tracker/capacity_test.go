package tracker

import (
	"slices"
	"testing"
	"time"

	"github.com/banyan-live/banyan/internal/ipkey"
	"github.com/banyan-live/banyan/overlay"
	"github.com/banyan-live/banyan/protocol"
)

func TestCapacityPolicy(t *testing.T) {
	c := Capacity{StreamKbps: 3000, Stripes: 2} // slots of 1500 kbit/s, 25 % headroom
	initial := []struct {
		j    protocol.Join
		want int
	}{
		{protocol.Join{Kind: protocol.KindBrowser}, 3},                     // K / 0.8 (the prior)
		{protocol.Join{Kind: protocol.KindBrowser, NoUpload: true}, 0},     // opted out
		{protocol.Join{Kind: protocol.KindRelay, UploadKbps: 100_000}, 50}, // declared
		{protocol.Join{Kind: protocol.KindNative, UploadKbps: 2_000}, 1},   // declared, small
		{protocol.Join{Kind: protocol.KindNative, UploadKbps: 1_000}, 0},   // below one slot
	}
	for _, tc := range initial {
		if got := c.Initial(tc.j); got != tc.want {
			t.Errorf("Initial(%+v) = %d, want %d", tc.j, got, tc.want)
		}
	}
	// The stripe trees have room for the audience whatever its share of
	// uploaders.
	shares := []struct {
		name               string
		k, joins, uploader int
		want               int
	}{
		{"K=2, the prior", 2, 0, 0, 3},
		{"K=2, everyone uploads", 2, 1000, 1000, 2},
		{"K=2, 80 % upload", 2, 1000, 800, 3},
		{"K=2, 60 % upload", 2, 1000, 600, 4},
		{"K=2, nobody uploads: capped at 2K", 2, 1000, 0, 4},
		{"K=4, 80 % upload", 4, 1000, 800, 5},
		{"K=1: the interior minimum", 1, 1000, 1000, 2},
	}
	for _, tc := range shares {
		c := Capacity{StreamKbps: 3000, Stripes: tc.k, Joins: tc.joins, Uploaders: tc.uploader}
		if got := c.Initial(protocol.Join{Kind: protocol.KindBrowser}); got != tc.want {
			t.Errorf("%s: Initial = %d, want %d", tc.name, got, tc.want)
		}
	}
	// One stripe: one stream's worth is one slot, below the overlay's
	// interior minimum; a viewer must still start able to relay.
	if got := (Capacity{StreamKbps: 3000, Stripes: 1}).Initial(protocol.Join{Kind: protocol.KindBrowser}); got < 2 {
		t.Errorf("K=1 browser starts with %d slots: a leaf forever", got)
	}
	updates := []struct {
		name      string
		cur, used int
		st        protocol.Stats
		raise     bool
		want      int
	}{
		{"measured uplink sets it", 2, 2, protocol.Stats{UplinkKbps: 12_000, UplinkBusy: true}, true, 6},
		{"measured below the slots held lowers it", 6, 6, protocol.Stats{UplinkKbps: 2_500, UplinkBusy: true}, true, 1},
		{"a demoted parent cannot rise", 2, 2, protocol.Stats{UplinkKbps: 12_000, UplinkBusy: true}, false, 2},
		{"a demoted parent still falls", 6, 2, protocol.Stats{UplinkKbps: 2_500, UplinkBusy: true}, false, 1},
		{"a lower bound raises it, not lowers", 2, 1, protocol.Stats{UplinkKbps: 12_000}, true, 6},
		{"a lower bound below the slots keeps them", 6, 3, protocol.Stats{UplinkKbps: 2_500}, true, 6},
		{"a lower bound and full: one more", 6, 6, protocol.Stats{UplinkKbps: 12_000}, true, 7},
		{"unmeasured and full: probe one up", 2, 2, protocol.Stats{UploadKbps: 3_000}, true, 3},
		{"unmeasured with free slots: keep", 3, 1, protocol.Stats{}, true, 3},
		{"probing stops at MaxProbe", 8, 8, protocol.Stats{}, true, 8},
		{"zero stays zero", 0, 0, protocol.Stats{}, true, 0},
	}
	for _, tc := range updates {
		if got := c.Update(tc.cur, tc.used, tc.st, tc.raise); got != tc.want {
			t.Errorf("%s: Update(%d, %d, %+v, %v) = %d, want %d", tc.name, tc.cur, tc.used, tc.st, tc.raise, got, tc.want)
		}
	}
	confirms := []struct {
		name                       string
		cur, next, confirmed, want int
	}{
		{"a join declaring 10 Gbit/s", 0, 5000, 0, 8},
		{"a small declaration is kept", 0, 3, 0, 3},
		{"growth by what is confirmed", 8, 5000, 8, 16},
		{"growth within the unconfirmed allowance", 4, 7, 0, 7},
		{"a capacity held is not cut", 20, 5000, 2, 20},
		{"a fall is never capped", 20, 3, 0, 3},
	}
	for _, tc := range confirms {
		if got := c.Confirm(tc.cur, tc.next, tc.confirmed); got != tc.want {
			t.Errorf("%s: Confirm(%d, %d, %d) = %d, want %d", tc.name, tc.cur, tc.next, tc.confirmed, got, tc.want)
		}
	}
	if !c.Confirms(750) || c.Confirms(749) {
		t.Error("a slot of 1500 kbit/s is confirmed from half its rate")
	}
}

// TestMeasuredUplinkShedsChildren: a peer that declared more than its
// engine then measures keeps only the children its measured uplink
// carries (before, stats could only raise a capacity).
func TestMeasuredUplinkShedsChildren(t *testing.T) {
	tt := newTestTracker(t, Config{Stripes: 1, RootCapacity: 1})
	joinSeeder(t, tt, "mu")
	p, _ := joinViewer(t, tt, protocol.Join{Stream: "mu", UploadKbps: 32_000}) // 8 slots
	for range 6 {
		joinViewer(t, tt, protocol.Join{Stream: "mu", NoUpload: true})
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(tt.children("mu", p.id, 0)); n != 6 {
		t.Fatalf("parent feeds %d children, want 6", n)
	}
	p.send(protocol.Stats{UploadKbps: 8_000, UplinkKbps: 8_000, UplinkBusy: true}) // 2 slots
	for i := 0; len(tt.children("mu", p.id, 0)) > 2; i++ {
		if i == 200 {
			t.Fatalf("parent still feeds %d children after measuring 8 Mbit/s (2 slots)", len(tt.children("mu", p.id, 0)))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOverloaded(t *testing.T) {
	c := Capacity{StreamKbps: 3000, Stripes: 1} // a slot is 3 Mbit/s, 0.25 headroom
	tests := []struct {
		name      string
		st        protocol.Stats
		used      int
		wantSlots int
		wantOK    bool
	}{
		{"backed up below its children", protocol.Stats{UplinkKbps: 8_000, UplinkBusy: true}, 6, 2, true},
		{"backed up, carries them all", protocol.Stats{UplinkKbps: 8_000, UplinkBusy: true}, 2, 2, false},
		{"not backed up: a lower bound explains nothing", protocol.Stats{UplinkKbps: 8_000}, 6, 0, false},
		{"no rate", protocol.Stats{UplinkBusy: true}, 6, 0, false},
		{"no stats yet", protocol.Stats{}, 3, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			slots, ok := c.Overloaded(tt.st, tt.used)
			if slots != tt.wantSlots || ok != tt.wantOK {
				t.Errorf("Overloaded = %d %v, want %d %v", slots, ok, tt.wantSlots, tt.wantOK)
			}
		})
	}
}

// TestOverloadedParentKeepsWhatItCarries: a child's silent report about a
// parent whose own stats show a backed-up uplink, holding more children
// than it carries, costs the parent only the slots it cannot carry. Before,
// the complaint halved it (two slots to one, held for DemoteHold), as for
// a parent that claimed room it did not have.
func TestOverloadedParentKeepsWhatItCarries(t *testing.T) {
	// Shedding one child per stats report keeps the parent over its slots
	// while the complaint arrives.
	tt := newTestTracker(t, Config{Stripes: 1, RootCapacity: 1, Overlay: overlay.Config{MaxMovesPerUpdate: 1, MovesPerSecond: 0.001}})
	joinSeeder(t, tt, "ol")
	p, _ := joinViewer(t, tt, protocol.Join{Stream: "ol", UploadKbps: 32_000}) // 8 slots
	var kids []*client
	for range 6 {
		c, _ := joinViewer(t, tt, protocol.Join{Stream: "ol", NoUpload: true})
		kids = append(kids, c)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(tt.children("ol", p.id, 0)); n != 6 {
		t.Fatalf("parent feeds %d children, want 6", n)
	}
	capOf := func() int {
		st := tt.t.streamState("ol")
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.sessions[p.id].capacity
	}
	p.send(protocol.Stats{UploadKbps: 8_000, UplinkKbps: 8_000, UplinkBusy: true}) // 2 slots
	for i := 0; capOf() != 2; i++ {
		if i == 200 {
			t.Fatalf("capacity %d after measuring 8 Mbit/s busy, want 2", capOf())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var child *client
	for _, k := range kids {
		if slices.Contains(tt.children("ol", p.id, 0), overlay.PeerID(k.id)) {
			child = k
			break
		}
	}
	if child == nil || len(tt.children("ol", p.id, 0)) <= 2 {
		t.Fatalf("parent already shed to %d children", len(tt.children("ol", p.id, 0)))
	}
	child.send(protocol.Report{Kind: protocol.ReportSilent, Peer: p.id, Stripe: 0})
	child.next("moved off P", func(m protocol.Message) bool {
		as, ok := m.(protocol.Assign)
		return ok && !as.Remove && as.Parent != p.id
	})
	if c := capOf(); c != 2 {
		t.Fatalf("an overloaded parent has %d slots after a complaint, want the 2 its uplink carries", c)
	}
}

// TestComplaint: what a parent keeps after a child's complaint, from its
// own last stats. A starved parent (its own parent in the stripe sent it
// nothing) used to be halved like a liar.
func TestComplaint(t *testing.T) {
	c := Capacity{StreamKbps: 3000, Stripes: 4} // slots of 750 kbit/s
	fed := []protocol.ParentHealth{{Stripe: 0, Parent: 9, Kbps: 800}, {Stripe: 1, Parent: 9, Kbps: 0}}
	now := time.Unix(1_000_000, 0)
	for _, tc := range []struct {
		name   string
		kind   string
		stripe int
		st     protocol.Stats
		want   int
		wantOK bool
	}{
		{"silent, fed: halved", protocol.ReportSilent, 0, protocol.Stats{Parents: fed}, 4, true},
		{"silent, starved in that stripe: kept", protocol.ReportSilent, 1, protocol.Stats{Parents: fed}, 8, false},
		{"silent, starved in another stripe: halved", protocol.ReportSilent, 0, protocol.Stats{Parents: []protocol.ParentHealth{{Stripe: 1, Kbps: 0}}}, 4, true},
		{"silent, under half a slot: starved", protocol.ReportSilent, 0, protocol.Stats{Parents: []protocol.ParentHealth{{Stripe: 0, Kbps: 300}}}, 8, false},
		{"silent, origin-fed (no parent listed): halved", protocol.ReportSilent, 2, protocol.Stats{Parents: fed}, 4, true},
		{"silent, overloaded: what its uplink carries", protocol.ReportSilent, 0, protocol.Stats{Parents: fed, UplinkBusy: true, UplinkKbps: 3000}, 3, true},
		{"flood, starved: halved all the same", protocol.ReportFlood, 1, protocol.Stats{Parents: fed}, 4, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := c.Complaint(map[protocol.PeerID]time.Time{}, 7, tc.kind, tc.stripe, 8, 8, tc.st, now)
			if got != tc.want || ok != tc.wantOK {
				t.Fatalf("Complaint = %d %v, want %d %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestDemote(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	c := map[protocol.PeerID]time.Time{}
	steps := []struct {
		name   string
		from   protocol.PeerID
		cur    int
		now    time.Time
		want   int
		wantOK bool
	}{
		{"first complaint halves", 7, 8, at(0), 4, true},
		{"same child again: ignored", 7, 4, at(1), 4, false},
		{"a second child 10 s later halves again", 8, 4, at(10), 2, true},
		{"a third child within 2 s of the second: gone", 9, 2, at(11), 0, true},
		{"the first child after the hold counts again", 7, 6, at(200), 3, true},
	}
	for _, s := range steps {
		got, ok := Demote(c, s.from, s.cur, s.now)
		if got != s.want || ok != s.wantOK {
			t.Fatalf("%s: %d %v, want %d %v", s.name, got, ok, s.want, s.wantOK)
		}
	}
	if len(c) != 1 {
		t.Errorf("complaints older than the hold kept: %v", c)
	}
}

// TestUplinkNeedsConfirmation (issue 18 #8): a peer's declared or
// measured uplink earns it child slots only as its children confirm
// receiving from it (Capacity.Confirm). Before, a modified peer declaring
// 10 Gbit/s and reporting a busy uplink as large got every joiner up to
// the overlay's cap (256) and learned all their addresses: here all 12;
// now it holds MaxUnconfirmed (8) until children confirm, and then at
// most 8 more than the confirmed ones.
func TestUplinkNeedsConfirmation(t *testing.T) {
	tt := newTestTracker(t, Config{Stripes: 1, RootCapacity: 1})
	joinSeeder(t, tt, "cf")
	p, _ := joinViewer(t, tt, protocol.Join{Stream: "cf", UploadKbps: 10_000_000})
	var kids []*client
	for range 12 {
		c, _ := joinViewer(t, tt, protocol.Join{Stream: "cf", NoUpload: true})
		kids = append(kids, c)
	}
	capOf := func() int {
		st := tt.t.streamState("cf")
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.sessions[p.id].capacity
	}
	// Its stats claim a busy 10 Gbit/s uplink; nothing confirms it. The
	// stats of one connection are handled in order: the second's effect
	// (none) shows the first was handled too.
	liar := protocol.Stats{UploadKbps: 10_000_000, UplinkKbps: 10_000_000, UplinkBusy: true}
	p.send(liar)
	p.send(liar)
	time.Sleep(200 * time.Millisecond)
	if c, n := capOf(), len(tt.children("cf", p.id, 0)); c != 8 || n != 8 {
		t.Fatalf("the overstated peer has %d slots and feeds %d children, want 8 (unconfirmed)", c, n)
	}
	// Its children confirm: each reports a slot's rate from it.
	sent := 0
	for _, k := range kids {
		for _, id := range tt.children("cf", p.id, 0) {
			if protocol.PeerID(id) == k.id {
				k.send(protocol.Stats{Parents: []protocol.ParentHealth{{Stripe: 0, Parent: p.id, Kbps: 3000}}})
				sent++
			}
		}
	}
	time.Sleep(200 * time.Millisecond)
	p.send(liar)
	for i := 0; capOf() <= 8; i++ {
		if i == 300 {
			t.Fatalf("%d confirmations did not raise its slots", sent)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c := capOf(); c > sent+8 {
		t.Fatalf("%d slots after %d confirmations, want at most %d", c, sent, sent+8)
	}
}

// TestConfirmationsFromOwnAddressIgnored (issue 18 #8, limits per
// address): children at the parent's own address (IPv6: its /64) do not
// confirm its uplink, so a liar's sybil children on its own machine or
// network buy it no slots. Loopback is exempt, as everywhere. Before,
// every child's stats counted.
func TestConfirmationsFromOwnAddressIgnored(t *testing.T) {
	for _, tc := range []struct {
		name       string
		parentAddr string
		childAddr  string
		want       int
	}{
		{"same IPv4", "198.51.100.7:1000", "198.51.100.7:2000", 0},
		{"same IPv6 /64", "[2001:db8:1:2::1]:1000", "[2001:db8:1:2:ffff::9]:2000", 0},
		{"other address", "198.51.100.7:1000", "203.0.113.9:2000", 4},
		{"loopback", "127.0.0.1:1000", "127.0.0.1:2000", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tt := newTestTracker(t, Config{Stripes: 1, RootCapacity: 1})
			joinSeeder(t, tt, "ip")
			p, _ := joinViewer(t, tt, protocol.Join{Stream: "ip", UploadKbps: 20_000})
			var kids []*client
			for range 4 {
				c, _ := joinViewer(t, tt, protocol.Join{Stream: "ip", NoUpload: true})
				kids = append(kids, c)
			}
			for _, k := range kids {
				k.send(protocol.Stats{Parents: []protocol.ParentHealth{{Stripe: 0, Parent: p.id, Kbps: 3000}}})
			}
			time.Sleep(200 * time.Millisecond)
			st := tt.t.streamState("ip")
			st.mu.Lock()
			defer st.mu.Unlock()
			if c, _ := st.forest.Children(nil, overlay.PeerID(p.id), 0); len(c) != 4 {
				t.Fatalf("parent feeds %d children, want 4", len(c))
			}
			set := func(s *session, addr string) { s.ipKey, s.ipLoop = ipkey.Of(addr) }
			set(st.sessions[p.id], tc.parentAddr)
			for _, k := range kids {
				set(st.sessions[k.id], tc.childAddr)
			}
			if got := st.confirmedLocked(p.id); got != tc.want {
				t.Fatalf("%d slots confirmed, want %d", got, tc.want)
			}
		})
	}
}
