package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// enginePage is one browser tab that the engine tests drive the same way
// in Chromium (CDP), Firefox (WebDriver BiDi) and WebKit (WebDriver).
type enginePage interface {
	// Eval evaluates an expression (awaiting a promise) and decodes its
	// JSON form into out (nil: discard).
	Eval(ctx context.Context, expr string, out any) error
	Screenshot(ctx context.Context) ([]byte, error)
}

// chromiumPage is a chromedp tab as an enginePage.
type chromiumPage struct{ tab context.Context }

func (c chromiumPage) Eval(ctx context.Context, expr string, out any) error {
	tctx, cancel := c.bounded(ctx)
	defer cancel()
	s, err := chromedp.Run(tctx, chromedp.Evaluate[string]("(async () => JSON.stringify(await ("+expr+")) ?? 'null')()", chromedp.EvalAwaitPromise))
	if err != nil || out == nil {
		return err
	}
	return json.Unmarshal([]byte(s), out)
}

func (c chromiumPage) Screenshot(ctx context.Context) ([]byte, error) {
	tctx, cancel := c.bounded(ctx)
	defer cancel()
	return chromedp.Run(tctx, chromedp.CaptureScreenshot())
}

// bounded is the tab's context with ctx's deadline.
func (c chromiumPage) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok {
		return context.WithDeadline(c.tab, d)
	}
	return context.WithCancel(c.tab)
}

// probePage reads the <banyan-player> selected by sel.
func probePage(t *testing.T, ctx context.Context, pg enginePage, sel string) firefoxProbe {
	t.Helper()
	fp, err := probeEngine(ctx, pg, sel)
	if err != nil {
		t.Fatalf("probe %s: %v", sel, err)
	}
	return fp
}

func probeEngine(ctx context.Context, pg enginePage, sel string) (firefoxProbe, error) {
	ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var fp firefoxProbe
	err := pg.Eval(ectx, fmt.Sprintf(firefoxProbeJS, sel), &fp)
	return fp, err
}

// waitPage polls the player sel until ok, or fails the test after d. A
// probe that times out is tried again until then: on a loaded machine
// (CI at load 10) one WebKit script call took more than 10 s.
func waitPage(t *testing.T, ctx context.Context, pg enginePage, sel, what string, d time.Duration, ok func(firefoxProbe) bool) firefoxProbe {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		fp, err := probeEngine(ctx, pg, sel)
		if err == nil && ok(fp) {
			return fp
		}
		if err != nil && ctx.Err() != nil {
			t.Fatalf("waiting for %s: probe %s: %v", what, sel, err)
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("waiting for %s: probe %s: %v", what, sel, err)
			}
			t.Fatalf("waiting for %s: last %+v (media: %s) stats %+v extra %+v", what, fp.viewerProbe, fp.Media, fp.Stats, fp.Extra)
		}
		if err != nil {
			t.Logf("probe %s: %v (trying again)", sel, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// broadcast publishes a pre-encoded file (encodedMedia) over RTMP in
// real time with -c copy until stop; each call is a new broadcast (a new
// epoch for the viewers).
func broadcast(t *testing.T, ctx context.Context, ffmpeg, media, url string) (stop func()) {
	t.Helper()
	cmd := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-loglevel", "error", "-re", "-i", media, "-c", "copy", "-f", "flv", url)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop = func() {
		_ = cmd.Process.Kill()
		<-done
	}
	t.Cleanup(stop)
	return stop
}
