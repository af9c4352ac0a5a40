package main

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/banyan-live/banyan/internal/e2e"
)

// TestBrowserTrackSetChange: the broadcaster starts audio only, then comes
// back with audio and video (a camera switched on). The new epoch has
// another set of tracks, which SourceBuffer.changeType cannot take; the
// player must make a new MediaSource and play on without a failure and
// rebuild (issue 22 #6). With changeType Chromium failed the init segment
// with a decode error and the player recovered only by a rebuild.
func TestBrowserTrackSetChange(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the browser test in -short mode")
	}
	ffmpeg := e2e.Require(t, "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bctx := browser(t, ctx)
	p := startUp(t, t.TempDir(), "--ice-loopback", "--stripes", "1")
	url, key := p.rtmpURL(t)
	run := func(cmd *exec.Cmd) chan error {
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Closed after the one value: the cleanup's receive never blocks
		// when the test has already waited.
		done := make(chan error, 1)
		go func() { done <- cmd.Wait(); close(done) }()
		t.Cleanup(func() { cmd.Process.Kill(); <-done })
		return done
	}
	audio := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "60",
		"-c:a", "aac", "-b:a", "128k", "-f", "flv", url+"/"+key)
	audioDone := run(audio)

	v := openViewer(t, bctx, p.base+"/watch/demo")
	first := waitViewer(t, v, "audio-only playback", 60*time.Second, func(p viewerProbe) bool { return p.State == "live" && p.Time > 0 })
	first = waitViewer(t, v, "2 s of audio-only playback", 30*time.Second, func(p viewerProbe) bool { return p.Time >= first.Time+2 })

	audio.Process.Kill()
	<-audioDone
	time.Sleep(2 * time.Second)
	run(publish(ctx, ffmpeg, url+"/"+key, 60))
	got := waitViewer(t, v, "audio and video playback in the new epoch", 60*time.Second, func(p viewerProbe) bool {
		return p.State == "live" && p.Stats != nil && p.Stats.Epoch != first.Stats.Epoch && p.Time > 0
	})
	got = waitViewer(t, v, "3 s of audio and video", 30*time.Second, func(p viewerProbe) bool { return p.Time >= got.Time+3 })
	if got.Stats.Rebuilds != 0 {
		t.Fatalf("the player rebuilt its media source %.0f times across the track change", got.Stats.Rebuilds)
	}
	// Video, not only audio: the picture is on screen.
	w, err := chromedpVideoWidth(v)
	if err != nil || w == 0 {
		t.Fatalf("no video after the change: width %d %v", w, err)
	}
	t.Logf("epoch %.0f → %.0f, played to %.1f s, %.0f rebuilds, video %d px wide", first.Stats.Epoch, got.Stats.Epoch, got.Time, got.Stats.Rebuilds, w)
	p.stop(t, os.Interrupt)
}

// chromedpVideoWidth is the viewer's <video> intrinsic width (0 without a
// video track).
func chromedpVideoWidth(vctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(vctx, 5*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelector('banyan-player').shadowRoot.querySelector('video').videoWidth`))
}
