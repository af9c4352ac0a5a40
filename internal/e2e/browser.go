package e2e

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// Browser starts headless Chromium with the flags that work on this
// machine (no sandbox, GPU, QUIC or background traffic, a fresh profile),
// then extra, and returns its context; the test's cleanup stops it. The
// browser is started here, before anything else can race to allocate it.
func Browser(t testing.TB, ctx context.Context, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	path := Require(t, "chromium")
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}, extra...)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// SaveArtifact keeps a file (a screenshot) under $BANYAN_ARTIFACTS, or the
// test's artifact directory, and logs where.
func SaveArtifact(t testing.TB, name string, data []byte) {
	t.Helper()
	dir := os.Getenv("BANYAN_ARTIFACTS")
	if dir == "" {
		dir = t.ArtifactDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("saved %s", path)
}

// BrightFraction is the share of a PNG's pixels that are not near black:
// a screenshot of playing video is mostly bright, a stalled one black.
func BrightFraction(t testing.TB, b []byte) float64 {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	r := img.Bounds()
	lit, total := 0, 0
	for y := r.Min.Y; y < r.Max.Y; y += 2 {
		for x := r.Min.X; x < r.Max.X; x += 2 {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			if (cr>>8)+(cg>>8)+(cb>>8) > 120 {
				lit++
			}
			total++
		}
	}
	return float64(lit) / float64(total)
}

// HideTab hides the page of vctx the way a user does: it opens another
// tab in the same window in front of it (Chromium, headless too, then
// reports the page hidden and throttles its timers to once a second). The
// returned show brings the page back to the front.
func HideTab(t testing.TB, vctx context.Context) (show func()) {
	t.Helper()
	octx, cancel := chromedp.NewContext(vctx, chromedp.WithNewWindow(false))
	t.Cleanup(cancel)
	if err := chromedp.Do(octx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("open a tab in front: %v", err)
	}
	return func() {
		t.Helper()
		err := chromedp.Do(vctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, page.BringToFront, cdp.Empty{})
			return err
		}))
		if err != nil {
			t.Fatalf("bring the tab to the front: %v", err)
		}
		cancel()
	}
}
