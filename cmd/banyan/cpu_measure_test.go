package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/profiler"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/banyan-live/banyan/internal/e2e"
)

// TestMeasureViewerCPU splits the CPU of Chromium viewers watching a
// 3 Mbit/s 1280x720 broadcast, one relaying to the others (issue 17):
// by process (renderers, GPU, network, browser) and, in each renderer, by
// thread (CrRendererMain runs the page's JavaScript and the wasm peer; the
// WebRTC threads the data channels' SCTP/DTLS/ICE; the media threads
// demuxing and decoding). Then a V8 sample profile of the busiest
// renderer's page splits its main thread between the wasm, Go's
// wasm_exec.js glue, the player's JavaScript, GC and the browser's own
// work. Only this test's browser is counted (other chromiums on a shared
// machine are not). Figures are medians of three 10 s windows:
//
//	BANYAN_MEASURE=1 go test ./cmd/banyan -run MeasureViewerCPU -v
func TestMeasureViewerCPU(t *testing.T) {
	measuring(t)
	ffmpeg := e2e.Require(t, "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	up := liveMedia(t, ctx, ffmpeg, encodedMedia(t, ffmpeg, 120, "1280x720", "3M"), "--root-capacity", "1", "--stripes", "2")
	bctx := browser(t, ctx)
	time.Sleep(2 * time.Second)

	const n = 5
	var viewers []context.Context
	for i := range n {
		v := openViewer(t, bctx, up.base+"/watch/demo")
		viewers = append(viewers, v)
		waitLive(t, v, fmt.Sprintf("viewer %d", i))
	}
	time.Sleep(8 * time.Second)
	lines, all, _ := chromeCPU(bctx, 3, 10*time.Second)
	for i, v := range viewers {
		if p, err := tryProbe(v); err == nil && p.Stats != nil {
			t.Logf("viewer %d: children %.0f, parents %.0f, from viewers %.0f B, behind %.0f ms, stalls %.0f", i, p.Stats.Children, p.Stats.Parents, p.Stats.BytesViewers, p.Stats.BehindMs, p.Stats.Stalls)
		}
	}
	t.Logf("figures: chromium CPU by process and thread group, %% of a core (median of 3 × 10 s), %d viewers at 3 Mbit/s 1280x720:\n%s\n  total %.1f %% (%.1f %% per viewer)",
		n, strings.Join(lines, "\n"), 100*all, 100*all/n)

	// The busiest renderer's main thread, by V8's sampling profiler: the
	// viewer with the most children is profiled.
	busiest, most := 0, -1.0
	for i, v := range viewers {
		if p, err := tryProbe(v); err == nil && p.Stats != nil && p.Stats.Children > most {
			busiest, most = i, p.Stats.Children
		}
	}
	prof := profileTab(t, viewers[busiest], 10*time.Second)
	span, busy, parts := profileShares(prof)
	t.Logf("figures: viewer %d (children %.0f) main thread by V8 samples over %.1f s (busy %.1f s): %s", busiest, most, span, busy, parts)
	up.stop(t, syscall.SIGTERM)
}

// waitLive waits up to 60 s for a viewer to play. Not waitViewer: on a
// loaded machine one probe may time out.
func waitLive(t *testing.T, v context.Context, what string) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		if p, err := tryProbe(v); err == nil && p.State == "live" && p.Time > 0 {
			return
		}
	}
	t.Fatalf("%s not live in 60 s", what)
}

// chromeCPU reads the CPU of the browser of bctx (its processes only) over
// windows of d and returns one line per process and thread group with the
// median share of a core (and a line per renderer with its sum), the
// total of those medians, and the busiest renderer main thread's.
func chromeCPU(bctx context.Context, windows int, d time.Duration) (lines []string, all, mainThread float64) {
	root := chromedp.FromContext(bctx).Browser.Process().Pid
	type pkey struct{ proc, group string }
	samples := map[pkey][]float64{}
	for range windows {
		a, at := chromeThreads(root), time.Now()
		time.Sleep(d)
		b, bt := chromeThreads(root), time.Now()
		secs := bt.Sub(at).Seconds()
		sums := map[pkey]float64{}
		for id, th := range b {
			sums[pkey{th.proc, threadGroup(th.proc, th.name)}] += (th.ticks - a[id].ticks) / 100 / secs
		}
		for k, v := range sums {
			samples[k] = append(samples[k], v)
		}
	}
	keys := make([]pkey, 0, len(samples))
	for k := range samples {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b pkey) int { return strings.Compare(a.proc+a.group, b.proc+b.group) })
	procs := map[string]float64{}
	for _, k := range keys {
		s := samples[k]
		for len(s) < windows {
			s = append(s, 0) // a thread that did nothing in a window
		}
		slices.Sort(s)
		m := s[len(s)/2]
		all += m
		procs[k.proc] += m
		if k.group == threadGroup("renderer", "CrRendererMain") {
			mainThread = max(mainThread, m)
		}
		if m >= 0.001 {
			lines = append(lines, fmt.Sprintf("  %-22s %-26s %5.1f %%", k.proc, k.group, 100*m))
		}
	}
	for _, p := range slices.Sorted(maps.Keys(procs)) {
		if strings.HasPrefix(p, "renderer") && procs[p] >= 0.001 {
			lines = append(lines, fmt.Sprintf("  %-22s %-26s %5.1f %%", p, "whole process", 100*procs[p]))
		}
	}
	return lines, all, mainThread
}

// profileTab samples the page of vctx with V8's profiler (every 1 ms) for
// d.
func profileTab(t *testing.T, vctx context.Context, d time.Duration) *profiler.Profile {
	t.Helper()
	prof, err := chromedp.Run(vctx, func(ctx context.Context, tg *chromedp.Target) (*profiler.Profile, error) {
		if _, err := cdp.Call(ctx, tg, profiler.Enable, cdp.Empty{}); err != nil {
			return nil, err
		}
		if _, err := cdp.Call(ctx, tg, profiler.SetSamplingInterval, profiler.SetSamplingIntervalParams{Interval: 1000}); err != nil {
			return nil, err
		}
		if _, err := cdp.Call(ctx, tg, profiler.Start, cdp.Empty{}); err != nil {
			return nil, err
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		r, err := cdp.Call(ctx, tg, profiler.Stop, cdp.Empty{})
		return r.Profile, err
	})
	if err != nil || prof == nil {
		t.Fatalf("profile: %v", err)
	}
	return prof
}

// profileShares is a main-thread profile's span and busy time (seconds)
// and its busy time's split by what ran. The profiler's own sampling
// inflates the busy time: read the shares, and the main thread's CPU from
// chromeCPU.
func profileShares(prof *profiler.Profile) (span, busy float64, parts string) {
	by := profileSplit(prof)
	span = (prof.EndTime - prof.StartTime) / 1e6
	busy = span - by["idle"]
	var ps []string
	for _, g := range []string{"wasm (Go peer and player)", "wasm_exec.js (Go↔JS glue)", "banyan-player.js", "browser APIs (appendBuffer, send, …)", "GC", "browser work (program)", "other JS"} {
		ps = append(ps, fmt.Sprintf("%s %.1f %% of the busy time", g, 100*by[g]/busy))
	}
	return span, busy, strings.Join(ps, ", ")
}

// tryProbe is probe with a longer timeout and the error returned, for a
// machine so loaded that a page may answer late.
func tryProbe(v context.Context) (viewerProbe, error) {
	ctx, cancel := context.WithTimeout(v, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[viewerProbe](viewerProbeJS))
}

type chromeThread struct {
	proc, name string
	ticks      float64
}

// chromeThreads reads the CPU ticks of every thread of the browser whose
// process is root and of its descendants, keyed by "pid/tid"; proc names
// the process by its --type (and pid, for renderers).
func chromeThreads(root int) map[string]chromeThread {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := procStat(filepath.Join("/proc", e.Name(), "stat")); len(f) > 1 {
			pp, _ := strconv.Atoi(f[1])
			parent[pid] = pp
		}
	}
	out := map[string]chromeThread{}
	for pid := range parent {
		p, ours := pid, false
		for i := 0; i < 16 && p > 1; i++ {
			if p == root {
				ours = true
				break
			}
			p = parent[p]
		}
		if !ours {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		proc := "browser"
		// Split on spaces too: a forked child's title is rewritten as
		// one string ("chromium --type=renderer ...").
		for _, arg := range strings.FieldsFunc(string(cmd), func(r rune) bool { return r == 0 || r == ' ' }) {
			if typ, ok := strings.CutPrefix(arg, "--type="); ok {
				proc = typ
				if typ == "renderer" {
					proc = fmt.Sprintf("renderer %d", pid)
				}
			}
		}
		if proc == "zygote" {
			continue
		}
		tasks, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
		for _, tk := range tasks {
			base := filepath.Join("/proc", strconv.Itoa(pid), "task", tk.Name())
			f := procStat(filepath.Join(base, "stat"))
			if len(f) < 13 {
				continue
			}
			name, _ := os.ReadFile(filepath.Join(base, "comm"))
			if tk.Name() == strconv.Itoa(pid) {
				name = []byte("CrRendererMain") // the main thread (named after the binary here)
			}
			u, _ := strconv.ParseFloat(f[11], 64)
			s, _ := strconv.ParseFloat(f[12], 64)
			out[strconv.Itoa(pid)+"/"+tk.Name()] = chromeThread{proc: proc, name: strings.TrimSpace(string(name)), ticks: u + s}
		}
	}
	return out
}

// procStat is the fields of a /proc stat file after the command name:
// state, ppid, ... (utime and stime are the 12th and 13th).
func procStat(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return nil
	}
	return strings.Fields(s[i+2:])
}

// threadGroup names what a Chromium thread does, from its name.
func threadGroup(proc, name string) string {
	if !strings.HasPrefix(proc, "renderer") {
		return "all threads"
	}
	switch {
	case name == "CrRendererMain":
		return "main (JS + wasm peer)"
	case strings.Contains(strings.ToLower(name), "webrtc"):
		return "WebRTC (" + name + ")"
	case strings.Contains(name, "Media") || strings.Contains(name, "Audio") || strings.Contains(name, "Video"):
		return "media (" + name + ")"
	case strings.HasPrefix(name, "ThreadPool"):
		return "thread pool (decode, …)"
	case name == "Compositor" || strings.HasPrefix(name, "CompositorTile"):
		return "compositor"
	}
	return "other (" + name + ")"
}

// profileSplit sums a V8 CPU profile's sample time (seconds) by what ran.
func profileSplit(p *profiler.Profile) map[string]float64 {
	group := map[int64]string{}
	for _, n := range p.Nodes {
		cf := n.CallFrame
		g := "other JS"
		switch {
		case cf.FunctionName == "(idle)":
			g = "idle"
		case cf.FunctionName == "(garbage collector)":
			g = "GC"
		case cf.FunctionName == "(program)" || cf.FunctionName == "(root)":
			g = "browser work (program)"
		case strings.HasSuffix(cf.URL, ".wasm") || strings.HasPrefix(cf.FunctionName, "wasm-function") || strings.HasPrefix(cf.FunctionName, "$"):
			g = "wasm (Go peer and player)"
		case strings.Contains(cf.URL, "wasm_exec"):
			g = "wasm_exec.js (Go↔JS glue)"
		case strings.Contains(cf.URL, "banyan-player"):
			g = "banyan-player.js"
		case cf.URL == "":
			g = "browser APIs (appendBuffer, send, …)"
		}
		group[n.ID] = g
	}
	out := map[string]float64{}
	for i, id := range p.Samples {
		if i < len(p.TimeDeltas) {
			out[group[id]] += float64(p.TimeDeltas[i]) / 1e6
		}
	}
	return out
}

// profileTop sums a profile's self time (seconds) by function and, for the
// wasm's Go functions, by Go package, and lists the n largest of each with
// their share of the profile's busy time.
func profileTop(p *profiler.Profile, n int) (funcs, pkgs string) {
	name := map[int64]string{}
	wasm := map[int64]bool{}
	for _, nd := range p.Nodes {
		cf := nd.CallFrame
		name[nd.ID] = cf.FunctionName
		wasm[nd.ID] = strings.HasSuffix(cf.URL, ".wasm") || strings.HasPrefix(cf.FunctionName, "$") || strings.HasPrefix(cf.FunctionName, "wasm-function")
		if cf.FunctionName == "" {
			name[nd.ID] = "(anonymous) " + cf.URL
		}
	}
	byFunc, byPkg := map[string]float64{}, map[string]float64{}
	busy := 0.0
	for i, id := range p.Samples {
		if i >= len(p.TimeDeltas) || name[id] == "(idle)" {
			continue
		}
		d := float64(p.TimeDeltas[i]) / 1e6
		busy += d
		byFunc[name[id]] += d
		if wasm[id] {
			byPkg[goPackage(name[id])] += d
		}
	}
	top := func(m map[string]float64) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b string) int { return cmp.Compare(m[b], m[a]) })
		var b strings.Builder
		for _, k := range keys[:min(n, len(keys))] {
			fmt.Fprintf(&b, "\n  %5.1f %%  %s", 100*m[k]/busy, k)
		}
		return b.String()
	}
	return top(byFunc), top(byPkg)
}

// The owners profileOwners names.
const (
	ownerPlayer = "player (Go Player/mse, page script, appendBuffer)"
	ownerGo     = "Go program (peer, runtime, glue and the browser calls it makes)"
)

// profileOwners splits a profile's busy time (seconds) by who caused it,
// from each sample's whole stack: the player (the wasm's Player and mse
// code, the page's script, the appendBuffer calls they make), the Go
// program otherwise (the peer, the Go runtime and wasm_exec.js, with the
// browser calls it makes: send, WebCrypto, ...), and the browser's own
// work with no script on the stack ((program): event dispatch, MSE
// parsing, layout) and GC.
func profileOwners(p *profiler.Profile) map[string]float64 {
	parent := map[int64]int64{}
	frame := map[int64]*runtime.CallFrame{}
	for _, nd := range p.Nodes {
		frame[nd.ID] = nd.CallFrame
		for _, c := range nd.Children {
			parent[c] = nd.ID
		}
	}
	owner := func(id int64) string {
		switch frame[id].FunctionName {
		case "(idle)":
			return "idle"
		case "(program)":
			return "browser (program)"
		case "(garbage collector)":
			return "GC"
		}
		isGo := false
		for n, ok := id, true; ok; n, ok = parent[n] {
			cf := frame[n]
			fn := strings.TrimPrefix(cf.FunctionName, "$")
			if strings.Contains(fn, "__Player_") || strings.Contains(fn, "wasm_internal_mse") || strings.HasPrefix(fn, "main.__page_") ||
				strings.Contains(cf.URL, "banyan-player") || fn == "appendBuffer" {
				return ownerPlayer
			}
			if strings.HasSuffix(cf.URL, ".wasm") || strings.Contains(cf.URL, "wasm_exec") || strings.HasPrefix(cf.FunctionName, "$") {
				isGo = true
			}
		}
		if isGo {
			return ownerGo
		}
		return "other"
	}
	out := map[string]float64{}
	for i, id := range p.Samples {
		if i < len(p.TimeDeltas) {
			out[owner(id)] += float64(p.TimeDeltas[i]) / 1e6
		}
	}
	return out
}

// goPackage is the Go package of a wasm function's name as V8 shows it,
// with '/' turned into '_' ("crypto_internal_fips140_aes.encryptBlockGeneric"
// → "crypto_internal_fips140_aes", "github.com_banyan_live_banyan_peer.
// __Engine_.HandleMessage" → "github.com_banyan_live_banyan_peer"), or
// the name itself when it has none (a stripped build's "$func123").
func goPackage(fn string) string {
	fn = strings.TrimPrefix(fn, "$")
	skip := 0
	for _, host := range []string{"github.com_", "golang.org_", "gopkg.in_"} {
		if strings.HasPrefix(fn, host) {
			skip = len(host)
		}
	}
	if dot := strings.IndexByte(fn[skip:], '.'); dot >= 0 {
		return fn[:skip+dot]
	}
	return fn
}

// TestMeasureRelayCPU measures one Chromium viewer relaying a 3 Mbit/s
// 1280x720 broadcast to native peers (issue 17's "4 children"): the
// seeder feeds one child per stripe (--root-capacity 1), the viewer joins
// first and so holds those slots, and BANYAN_MEASURE_CHILDREN native
// `banyan peer`s (default 4) join as leaves (--no-upload), so every chunk
// they get from a peer comes through the browser. It reports the
// browser's CPU by process and thread group (medians of 3 × 10 s), the
// tab's main thread by V8 samples (20 s) split by what ran, the top
// functions and Go packages by self time, and what the children got from
// the viewer. Go function names appear in the profile only in a wasm
// built with its name section: BANYAN_WASM_NAMES=1 builds it without -s
// (and without the size gate).
//
//	BANYAN_MEASURE=1 BANYAN_WASM_NAMES=1 go test ./cmd/banyan -run MeasureRelayCPU -v
func TestMeasureRelayCPU(t *testing.T) {
	measuring(t)
	ffmpeg := e2e.Require(t, "ffmpeg")
	children := 4
	if v, err := strconv.Atoi(os.Getenv("BANYAN_MEASURE_CHILDREN")); err == nil && v >= 0 {
		children = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	up := liveMedia(t, ctx, ffmpeg, encodedMedia(t, ffmpeg, 300, "1280x720", "3M"), "--root-capacity", "1")
	bctx := browser(t, ctx)
	time.Sleep(2 * time.Second)
	v := openViewer(t, bctx, up.base+"/watch/demo")
	waitLive(t, v, "the viewer")
	var peers []*peerProc
	for range children {
		peers = append(peers, startPeer(t, up.base, "--no-upload", "--log-level", "warn"))
		time.Sleep(500 * time.Millisecond)
	}
	// The tracker raises the viewer's slots a step per stats report while
	// they are full: wait for every peer to be its child.
	var p viewerProbe
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		var err error
		if p, err = tryProbe(v); err == nil && p.Stats != nil && int(p.Stats.Children) >= children {
			break
		}
	}
	if p.Stats == nil {
		t.Fatalf("no stats from the viewer: %+v", p)
	}
	t.Logf("viewer: %s, children %.0f of %d, parents %.0f (load %s)", p.State, p.Stats.Children, children, p.Stats.Parents, loadAvg())
	time.Sleep(10 * time.Second)
	load0 := loadAvg()
	lines, all, mainThread := chromeCPU(bctx, 3, 10*time.Second)
	t.Logf("figures: chromium CPU by process and thread group, %% of a core (median of 3 × 10 s), one viewer at 3 Mbit/s 1280x720 relaying to %d native peers (load %s → %s):\n%s\n  total %.1f %%",
		children, load0, loadAvg(), strings.Join(lines, "\n"), 100*all)
	prof := profileTab(t, v, 20*time.Second)
	span, busy, parts := profileShares(prof)
	funcs, pkgs := profileTop(prof, 25)
	t.Logf("figures: the viewer's main thread by V8 samples over %.1f s (busy %.1f s): %s\ntop functions by self time (share of the busy time):%s\nwasm self time by Go package (share of the busy time):%s", span, busy, parts, funcs, pkgs)
	var owners []string
	own := profileOwners(prof)
	for k, v := range own {
		if k != "idle" {
			owners = append(owners, fmt.Sprintf("%s %.1f %%", k, 100*v/busy))
		}
	}
	slices.Sort(owners)
	// The peer's own part: the main thread's CPU times the Go program's
	// share of its sampled busy time (an estimate: the samples are wall
	// time, the windows CPU).
	t.Logf("figures: the main thread's busy time by who caused it (whole stacks): %s; the peer's own part ≈ %.1f %% × %.1f %% = %.1f %% of a core",
		strings.Join(owners, ", "), 100*mainThread, 100*own[ownerGo]/busy, 100*mainThread*own[ownerGo]/busy)
	if p, err := tryProbe(v); err == nil && p.Stats != nil {
		t.Logf("viewer at the end: %s, children %.0f, parents %.0f, from viewers %.0f B, origin %.0f B, behind %.0f ms, stalls %.0f",
			p.State, p.Stats.Children, p.Stats.Parents, p.Stats.BytesViewers, p.Stats.BytesOrigin, p.Stats.BehindMs, p.Stats.Stalls)
	}
	for i, pp := range peers {
		_ = pp.cmd.Process.Signal(os.Interrupt) // leave, printing the summary
		s := pp.summary(t)
		secs := float64(max(s.WatchedMS, 1)) / 1000
		t.Logf("child %d: from viewers %d B (%.2f Mbit/s over %.0f s watched), seeder %d B, origin %d B, stalls %d", i, s.From.Viewers, float64(s.From.Viewers)*8/1e6/secs, secs, s.From.Seeder, s.BytesOrigin, s.Stalls)
	}
	up.stop(t, syscall.SIGTERM)
}
