package main

import (
	"context"
	"fmt"
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
		// Not waitViewer: on a loaded machine one probe may time out.
		live := false
		for deadline := time.Now().Add(60 * time.Second); !live && time.Now().Before(deadline); time.Sleep(time.Second) {
			p, err := tryProbe(v)
			live = err == nil && p.State == "live" && p.Time > 0
		}
		if !live {
			t.Fatalf("viewer %d not live in 60 s", i)
		}
	}
	time.Sleep(8 * time.Second)
	root := chromedp.FromContext(bctx).Browser.Process().Pid

	// Three windows; per renderer, per thread group, the median.
	type pkey struct{ proc, group string }
	samples := map[pkey][]float64{}
	for range 3 {
		a, at := chromeThreads(root), time.Now()
		time.Sleep(10 * time.Second)
		b, bt := chromeThreads(root), time.Now()
		secs := bt.Sub(at).Seconds()
		sums := map[pkey]float64{}
		for id, th := range b {
			d := th.ticks - a[id].ticks
			sums[pkey{th.proc, threadGroup(th.proc, th.name)}] += d / 100 / secs
		}
		for k, v := range sums {
			samples[k] = append(samples[k], v)
		}
	}
	med := func(s []float64) float64 {
		s = slices.Clone(s)
		for len(s) < 3 {
			s = append(s, 0) // a thread that did nothing in a window
		}
		slices.Sort(s)
		return s[len(s)/2]
	}
	keys := make([]pkey, 0, len(samples))
	for k := range samples {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b pkey) int { return strings.Compare(a.proc+a.group, b.proc+b.group) })
	totals := map[string]float64{}
	var lines []string
	for _, k := range keys {
		m := med(samples[k])
		totals[k.proc] += m
		if m >= 0.001 {
			lines = append(lines, fmt.Sprintf("  %-22s %-26s %5.1f %%", k.proc, k.group, 100*m))
		}
	}
	for i, v := range viewers {
		if p, err := tryProbe(v); err == nil && p.Stats != nil {
			t.Logf("viewer %d: children %.0f, parents %.0f, from viewers %.0f B, behind %.0f ms, stalls %.0f", i, p.Stats.Children, p.Stats.Parents, p.Stats.BytesViewers, p.Stats.BehindMs, p.Stats.Stalls)
		}
	}
	all := 0.0
	for _, v := range totals {
		all += v
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
	vctx := viewers[busiest]
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
		case <-time.After(10 * time.Second):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		r, err := cdp.Call(ctx, tg, profiler.Stop, cdp.Empty{})
		return r.Profile, err
	})
	if err != nil || prof == nil {
		t.Fatalf("profile: %v", err)
	}
	by := profileSplit(prof)
	span := (prof.EndTime - prof.StartTime) / 1e6
	var parts []string
	busy := span - by["idle"]
	for _, g := range []string{"wasm (Go peer and player)", "wasm_exec.js (Go↔JS glue)", "banyan-player.js", "browser APIs (appendBuffer, send, …)", "GC", "browser work (program)", "other JS"} {
		parts = append(parts, fmt.Sprintf("%s %.1f %% of the busy time", g, 100*by[g]/busy))
	}
	// The profiler's own sampling inflates the busy time: read the shares,
	// and the main thread's CPU from the windows above.
	t.Logf("figures: viewer %d (children %.0f) main thread by V8 samples over %.1f s (busy %.1f s): %s", busiest, most, span, busy, strings.Join(parts, ", "))
	up.stop(t, syscall.SIGTERM)
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
