package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/banyan-live/banyan/internal/e2e"
)

var adminRE = regexp.MustCompile(`Admin token \(shown once[^\n]*\n\s+(\S+)`)

// dashProbe is what the dashboard page exposes on window.banyanDash.
type dashProbe struct {
	Frames  int    `json:"frames"`
	Stream  string `json:"stream"`
	Peers   int    `json:"peers"`
	Streams []struct {
		Name    string `json:"name"`
		Live    bool   `json:"live"`
		Viewers int    `json:"viewers"`
		Ingest  struct {
			Protocol string  `json:"protocol"`
			Kbps     float64 `json:"kbps"`
			FPS      float64 `json:"fps"`
		} `json:"ingest"`
	} `json:"streams"`
	// What the page shows, read from the DOM.
	Rows   []string `json:"rows"`   // stream rows: "name live viewers"
	NewKey string   `json:"newKey"` // the key shown once after a create
	Server string   `json:"server"` // the RTMP server shown with it
	// Private are the streams whose private switch is on; Audit the
	// actions in the audit log table, newest first.
	Private []string `json:"private"`
	Audit   []string `json:"audit"`
}

const dashProbeJS = `(() => { const d = window.banyanDash; if (!d) return {};
	const rows = [...document.querySelectorAll('#streams tbody tr')].map((tr) => tr.dataset.stream + ' ' + tr.dataset.live + ' ' + tr.dataset.viewers);
	const key = document.querySelector('#new-key code.stream-key'), srv = document.querySelector('#new-key code.server');
	return {frames: d.frames, stream: d.stream, peers: d.peers, streams: d.streams, rows,
		newKey: key ? key.textContent : '', server: srv ? srv.textContent : '',
		private: [...document.querySelectorAll('#keys tbody tr')].filter((tr) => tr.querySelector('.private-toggle')?.checked).map((tr) => tr.dataset.stream),
		audit: [...document.querySelectorAll('#audit tbody tr')].map((tr) => tr.dataset.action)}; })()`

// TestDashboardInChromium drives the dashboard of a running `banyan up`
// with an ffmpeg broadcast and five native peers: after logging in with
// the admin token it shows one live stream and five peers, follows two
// peers being killed, and a stream key created in the page works for an
// ffmpeg publish (the stream turns live).
func TestDashboardInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end browser test")
	}
	ffmpeg := e2e.Require(t, "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	bctx := browser(t, ctx)

	p := startUp(t, filepath.Join(t.TempDir(), "data"), "--ice-loopback")
	m := adminRE.FindStringSubmatch(p.banner)
	if m == nil {
		t.Fatalf("no admin token in the banner:\n%s", p.banner)
	}
	token := m[1]
	rtmp, key := p.rtmpURL(t)
	pub := publish(ctx, ffmpeg, rtmp+"/"+key, 120)
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { pub.Process.Kill(); pub.Wait() }()
	var peers []*peerProc
	for range 5 {
		peers = append(peers, startPeer(t, p.base))
	}

	if err := chromedp.Do(bctx,
		chromedp.Navigate(p.base+"/dashboard"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#login button")),
	); err != nil {
		t.Fatal(err)
	}
	look := func() dashProbe {
		t.Helper()
		ectx, ecancel := context.WithTimeout(bctx, 5*time.Second)
		defer ecancel()
		d, err := chromedp.Run(ectx, chromedp.Evaluate[dashProbe](dashProbeJS))
		if err != nil {
			t.Fatalf("evaluate: %v", err)
		}
		return d
	}
	waitFor := func(what string, d time.Duration, ok func(dashProbe) bool) dashProbe {
		t.Helper()
		deadline := time.Now().Add(d)
		for {
			q := look()
			if ok(q) {
				return q
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s: %+v\nup stderr:\n%.3000s", what, q, p.stderr)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	rowsAre := func(want ...string) func(dashProbe) bool {
		return func(d dashProbe) bool { return strings.Join(d.Rows, ",") == strings.Join(want, ",") }
	}

	start := time.Now()
	d := waitFor("1 live stream with 5 peers", 30*time.Second, func(d dashProbe) bool {
		return rowsAre("demo true 5")(d) && d.Stream == "demo" && d.Peers == 5 && len(d.Streams) == 1 && d.Streams[0].Ingest.Kbps > 0 && d.Streams[0].Ingest.FPS > 25
	})
	in := d.Streams[0].Ingest
	if in.Protocol != "rtmp" || in.FPS > 35 {
		t.Errorf("ingest shown: %+v", in)
	}
	t.Logf("dashboard showed 1 live stream and 5 peers %v after login (ingest %s %.0f kb/s %.1f fps)", time.Since(start).Round(100*time.Millisecond), in.Protocol, in.Kbps, in.FPS)

	// Two peers die: the page follows.
	for _, pp := range peers[:2] {
		pp.cmd.Process.Signal(syscall.SIGKILL)
	}
	killed := time.Now()
	waitFor("3 peers after 2 were killed", 10*time.Second, func(d dashProbe) bool { return rowsAre("demo true 3")(d) && d.Peers == 3 })
	t.Logf("departures shown %v after the kill", time.Since(killed).Round(100*time.Millisecond))
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err == nil {
		e2e.SaveArtifact(t, "dashboard.png", shot)
	}

	// A stream key made in the page works for a publish.
	if err := chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.CSS("#new-name"), "fromdash"),
		chromedp.Click(chromedp.CSS("#create-key button")),
	); err != nil {
		t.Fatal(err)
	}
	d = waitFor("the new key shown once", 10*time.Second, func(d dashProbe) bool { return d.NewKey != "" && d.Server != "" })
	if !strings.HasPrefix(d.Server, "rtmp://") || !strings.HasSuffix(d.Server, "/live") || d.NewKey == key {
		t.Fatalf("OBS settings shown: server %q key %q", d.Server, d.NewKey)
	}
	server := strings.Replace(d.Server, "localhost", "127.0.0.1", 1)
	pub2 := publish(ctx, ffmpeg, server+"/"+d.NewKey, 60)
	if err := pub2.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { pub2.Process.Kill(); pub2.Wait() }()
	waitFor("the new stream live", 20*time.Second, rowsAre("demo true 3", "fromdash true 0"))
	shot, err = chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err == nil {
		e2e.SaveArtifact(t, "dashboard-two-streams.png", shot)
	}

	// Its private switch (issue 18 #9): clear LL-HLS stops at once, and
	// the audit log in the page shows the switch and the login (#11).
	if err := chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`#keys tr[data-stream="fromdash"] .private-toggle`))); err != nil {
		t.Fatal(err)
	}
	waitFor("fromdash private and audited", 10*time.Second, func(d dashProbe) bool {
		return strings.Join(d.Private, ",") == "fromdash" && len(d.Audit) == 3 && strings.Join(d.Audit, " ") == "private_on create login"
	})
	if code, _ := httpGet(t, p.base+"/hls/fromdash/index.m3u8"); code != http.StatusForbidden {
		t.Fatalf("LL-HLS of the private stream: %d", code)
	}
	if shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100)); err == nil {
		e2e.SaveArtifact(t, "dashboard-private-audit.png", shot)
	}
}

// TestDashboardRefusedWithoutToken: without the session cookie the page
// is the login form, and the dashboard's data and the admin API refuse.
func TestDashboardRefusedWithoutToken(t *testing.T) {
	p := startUp(t, filepath.Join(t.TempDir(), "data"))
	get := func(path string) (int, string) {
		resp, err := http.Get(p.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/dashboard")
	if code != http.StatusUnauthorized || !strings.Contains(body, `action="/dashboard/login"`) || strings.Contains(body, "dashboard.js") {
		t.Fatalf("GET /dashboard without a cookie: %d\n%s", code, body)
	}
	for _, path := range []string{"/dashboard/api/streams", "/dashboard/api/stream?name=demo", "/dashboard/events", "/api/streams"} {
		if code, body := get(path); code != http.StatusUnauthorized {
			t.Errorf("GET %s without a cookie: %d %s", path, code, body)
		}
	}
	// A wrong token logs nobody in.
	resp, err := http.PostForm(p.base+"/dashboard/login", map[string][]string{"token": {"guess"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Errorf("wrong token: %d %v", resp.StatusCode, resp.Cookies())
	}
}
