package main

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/banyan-live/banyan/internal/e2e"
)

// enginePage is one browser tab that the engine tests drive the same way
// in Chromium, Firefox and WebKit.
type enginePage = e2e.Page

// chromiumPage is a chromedp tab as an enginePage.
type chromiumPage = e2e.ChromiumPage

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
