package tracker

import (
	"math"
	"testing"
	"time"

	"github.com/banyan-live/banyan/protocol"
)

func TestClientEngine(t *testing.T) {
	for _, tc := range []struct {
		kind   protocol.ClientKind
		client string
		want   string
	}{
		{protocol.KindBrowser, "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "firefox"},
		{protocol.KindBrowser, "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36", "chromium"},
		{protocol.KindBrowser, "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", "safari"},
		{protocol.KindBrowser, "", "browser"},
		{protocol.KindNative, "banyan-peer", "native"},
		{protocol.KindRelay, "banyan-peer", "edge"},
	} {
		if got := clientEngine(tc.kind, tc.client); got != tc.want {
			t.Errorf("%s %q: %s, want %s", tc.kind, tc.client, got, tc.want)
		}
	}
}

// TestExperience checks the viewer-experience groups (issue 21): p50/p95
// of join time, behind-live, playout target and stalled share, by client
// and by path.
func TestExperience(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tr := newSimTracker(t, 2)
	tr.cfg.Now = func() time.Time { return now }
	simSeeder(t, tr, "ex", 1)
	peers := simJoin(t, tr, "ex", 4, protocol.KindNative)
	st := tr.streamState("ex")
	st.mu.Lock()
	direct := []protocol.ParentHealth{{Stripe: 0, Parent: 9, Path: "direct"}, {Stripe: 1, Parent: 8, Path: "direct"}}
	for i, p := range peers {
		p.joined = now.Add(-100 * time.Second)
		p.joinMS = int32(1000 * (i + 1))
		p.engine = "chromium"
		p.stats = protocol.Stats{BufferMS: 500, BehindLiveMS: 1000 * (i + 1), PlayoutMS: 500 * (i + 1), StalledMS: 990 * i, Parents: direct}
	}
	peers[3].engine = "native"
	peers[3].stats.Parents = []protocol.ParentHealth{{Stripe: 0, Parent: 9, Path: "turn"}, {Stripe: 1, Parent: 8, Path: "direct"}}
	peers[2].stats.Parents = nil // origin-fed
	ex := st.experienceLocked(now)
	st.mu.Unlock()
	got := map[string]Experience{}
	for _, e := range ex {
		got[e.By+"/"+e.Name] = e
	}
	if len(got) != 5 {
		t.Fatalf("groups %v", ex)
	}
	c := got["client/chromium"]
	if c.Viewers != 3 || *c.JoinMS.P50 != 2000 || *c.JoinMS.P95 != 3000 || *c.BehindMS.P50 != 2000 {
		t.Errorf("chromium %+v join %v/%v", c, *c.JoinMS.P50, *c.JoinMS.P95)
	}
	if p := c.PlayoutMS; p.N != 3 || *p.P50 != 1000 || *p.P95 != 1500 {
		t.Errorf("chromium playout target %+v", p)
	}
	// Peer i stalled 990·i ms over 100 s − (i+1) s of watching.
	if s := c.Stalled; s.N != 3 || math.Abs(*s.P95-1980.0/97000) > 1e-9 {
		t.Errorf("chromium stalled %+v", s)
	}
	for k, n := range map[string]int{"client/native": 1, "path/direct": 2, "path/turn": 1, "path/origin": 1} {
		if got[k].Viewers != n {
			t.Errorf("%s: %d viewers, want %d", k, got[k].Viewers, n)
		}
	}
}
