package tracker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/banyan-live/banyan/internal/e2e"
	"github.com/banyan-live/banyan/protocol"
	"github.com/banyan-live/banyan/web"
)

// renderProbe is what the page exposes on window.banyanDash.
type renderProbe struct {
	Frames     int    `json:"frames"`
	Stream     string `json:"stream"`
	Peers      int    `json:"peers"`
	Drawn      int    `json:"drawnNodes"` // glyphs, one per peer per stripe
	Nodes      int    `json:"nodes"`
	Aggregated bool   `json:"aggregated"`
	Connected  bool   `json:"connected"`
	Render     struct {
		Count     int     `json:"count"`
		Last      float64 `json:"last"`
		Max       float64 `json:"max"`
		Total     float64 `json:"total"`
		First     float64 `json:"first"`
		TopoLast  float64 `json:"topoLast"`
		ParseLast float64 `json:"parseLast"`
		BytesLast int     `json:"bytesLast"`
	} `json:"render"`
}

const probeDash = `(() => { const d = window.banyanDash; if (!d) return {};
	return {frames: d.frames, stream: d.stream, peers: d.peers, drawnNodes: d.drawnNodes, nodes: d.nodes, aggregated: d.aggregated,
		connected: d.connected, render: d.render}; })()`

// TestDashboardRendersSimulatedSwarm loads the real page in Chromium
// against a tracker holding a simulated swarm (in-memory sessions, stats
// changing every second) of 300, 1,000 and 10,000 peers, and measures
// time to first render and per-update time (parse + render of one frame),
// as the page itself measures them with performance.now(). It checks the
// page shows the right number of peers, that it follows departures and
// that the aggregated view keeps what it draws bounded.
func TestDashboardRendersSimulatedSwarm(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	bctx := e2e.Browser(t, ctx, chromedp.WindowSize(1400, 1000))
	for _, n := range []int{300, 1000, 10000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			tr := newSimTracker(t, 2)
			simSeeder(t, tr, "sim", 1)
			peers := simJoin(t, tr, "sim", n, protocol.KindNative)
			rng := rand.New(rand.NewPCG(uint64(n), 9))
			simReport(tr, "sim", rng, 0)
			// The page and its assets, as `banyan up` serves them.
			pages := web.Handler()
			srv, store, tok := dashServer(t, tr, false, pages)
			mux := srv.Config.Handler.(*http.ServeMux)
			mux.Handle("/static/", pages)
			mux.Handle("/api/", NewAdminAPI(AdminConfig{Store: store}))

			// Stats change every second, as they would.
			var mu sync.Mutex
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for round := 1; ; round++ {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					mu.Lock()
					simReport(tr, "sim", rng, round)
					mu.Unlock()
				}
			}()
			defer func() { close(stop); <-done }()

			tctx, tcancel := chromedp.NewContext(bctx)
			defer tcancel()
			var consoleMu sync.Mutex
			var console []string
			if err := chromedp.Do(tctx); err != nil {
				t.Fatal(err)
			}
			messages := chromedp.Console(tctx)
			go func() {
				for m, err := range messages {
					if err != nil {
						return
					}
					consoleMu.Lock()
					if len(console) < 200 {
						console = append(console, m.String()+" "+m.URL)
					}
					consoleMu.Unlock()
				}
			}()
			dump := func() {
				consoleMu.Lock()
				defer consoleMu.Unlock()
				loc, _ := chromedp.Run(tctx, chromedp.Evaluate[string](`location.href + " | " + document.title`))
				t.Logf("page %s; console:\n%s", loc, strings.Join(console, "\n"))
			}
			if err := chromedp.Do(tctx,
				chromedp.Navigate(srv.URL+"/dashboard"),
				chromedp.WaitVisible(chromedp.CSS("#token")),
				chromedp.SendKeys(chromedp.CSS("#token"), tok),
				chromedp.Click(chromedp.CSS("#login button")),
			); err != nil {
				t.Fatal(err)
			}
			look := func() renderProbe {
				ectx, ecancel := context.WithTimeout(tctx, 5*time.Second)
				defer ecancel()
				p, err := chromedp.Run(ectx, chromedp.Evaluate[renderProbe](probeDash))
				if err != nil {
					t.Fatalf("evaluate: %v", err)
				}
				return p
			}
			waitFor := func(what string, d time.Duration, ok func(renderProbe) bool) renderProbe {
				t.Helper()
				deadline := time.Now().Add(d)
				for {
					p := look()
					if ok(p) {
						return p
					}
					if time.Now().After(deadline) {
						dump()
						t.Fatalf("waiting for %s: %+v", what, p)
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
			p := waitFor("4 rendered frames", 30*time.Second, func(p renderProbe) bool { return p.Render.Count >= 4 && p.Peers > 0 })
			if p.Stream != "sim" || p.Peers != n || p.Aggregated != (n > DefaultMaxNodes) || p.Nodes == 0 || p.Nodes > DefaultMaxNodes || p.Drawn > 2*p.Nodes {
				t.Fatalf("page shows %+v", p)
			}
			first := p.Render.First
			// Departures: the page follows within a few frames.
			mu.Lock()
			st := tr.streamState("sim")
			for _, s := range peers[:50] {
				s.close("left")
				st.leave(s)
			}
			mu.Unlock()
			leftAt := time.Now()
			p = waitFor("departures shown", 5*time.Second, func(p renderProbe) bool { return p.Peers == n-50 })
			shown := time.Since(leftAt)
			p = waitFor("more frames", 10*time.Second, func(q renderProbe) bool { return q.Render.Count >= p.Render.Count+2 })
			snap, _ := tr.Snapshot("sim", DefaultMaxNodes)
			t.Logf("%5d peers: first render %.0f ms after navigation; per update (parse+render): last %.1f ms, mean %.1f ms, max %.1f ms (topology %.1f ms, parse %.1f ms); frame %d kB; %d peers drawn (%d glyphs); departure shown after %v; server snapshot %d µs",
				n, first, p.Render.Last, p.Render.Total/float64(p.Render.Count), p.Render.Max, p.Render.TopoLast, p.Render.ParseLast,
				p.Render.BytesLast/1000, p.Nodes, p.Drawn, shown.Round(10*time.Millisecond), snap.BuildMicros)
			// The render times are figures, not a verdict: on this shared
			// 2-core machine a loaded moment stretches any of them past a
			// second (issue 16's CI run under load: 1.1–2.8 s).
			// A peer from the drawing opens its detail panel.
			if _, err := chromedp.Run(tctx, chromedp.Evaluate[bool](`(window.banyanDash.selectPeer(0), true)`)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)
			text, err := chromedp.Run(tctx, chromedp.Evaluate[string](`document.querySelector('#peer-body').textContent`))
			if err != nil || !strings.Contains(text, "Seeder") || !strings.Contains(text, "Children") {
				t.Errorf("seeder panel: %q %v", text, err)
			}
			if n == 300 {
				checkReadable(t, tctx)
			}
			shot, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
			if err == nil {
				e2e.SaveArtifact(t, fmt.Sprintf("dashboard-sim-%d.png", n), shot)
			}
		})
	}
}

// checkReadable is issue 21's defect 6: what the page says an operator can
// read. The summary says buffers in words (no "health 0/0/3/0", no build
// time), the table says where bytes came from and the stalled share of
// watch time, and hovering a peer's glyph says what it is.
func checkReadable(t *testing.T, tctx context.Context) {
	t.Helper()
	type readable struct {
		Summary string   `json:"summary"`
		Heads   []string `json:"heads"`
		Tip     string   `json:"tip"`
		Groups  []string `json:"groups"`
	}
	r, err := chromedp.Run(tctx, chromedp.Evaluate[readable](`(() => {
		const c = document.querySelector('#topo'), b = c.getBoundingClientRect();
		const h = window.banyanDash.hits().find((h) => h.id > 0);
		if (h) c.dispatchEvent(new MouseEvent('mousemove', {clientX: b.left + h.x, clientY: b.top + h.y, bubbles: true}));
		return {summary: document.querySelector('#topo-summary').textContent,
			heads: [...document.querySelectorAll('#streams th')].map((th) => th.textContent),
			tip: window.banyanDash.tip,
			groups: [...document.querySelectorAll('#experience tbody tr')].map((tr) => tr.dataset.group)}; })()`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Summary, "buffers: ") || strings.Contains(r.Summary, "health ") || strings.Contains(r.Summary, "built in") {
		t.Errorf("topology summary %q", r.Summary)
	}
	heads := strings.Join(r.Heads, "|")
	for _, want := range []string{"From viewers", "From edges", "From seeder", "Origin HTTP", "Via TURN", "Stalled"} {
		if !strings.Contains(heads, want) {
			t.Errorf("streams table lacks %q: %s", want, heads)
		}
	}
	if !strings.Contains(r.Tip, "native peer") || !strings.Contains(r.Tip, "stripe ") {
		t.Errorf("hover on a peer says %q, want its kind and path", r.Tip)
	}
	// The viewer-experience table: the simulated peers are native ones.
	if !slices.Contains(r.Groups, "client/native") {
		t.Errorf("viewer experience groups %v, want client/native", r.Groups)
	}
}
