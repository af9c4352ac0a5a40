package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestWebKitDriver checks the WebDriver client against the real
// WebKitWebDriver and MiniBrowser: a page loads, expressions and promises
// evaluate, exceptions come back as errors, the error hook records
// uncaught exceptions and console errors, the window resizes, screenshots
// are PNGs; and this WebKit can decode H.264 and AAC through MSE (it needs
// gstreamer1.0-libav) and has ManagedMediaSource.
func TestWebKitDriver(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end browser test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	w := StartWebKit(t, ctx)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/html")
		fmt.Fprint(rw, `<!doctype html><meta name="viewport" content="width=device-width"><title>t</title><body style="background:#fff">`)
	}))
	defer srv.Close()
	if err := w.SetWindowSize(ctx, 390, 844); err != nil {
		t.Fatal(err)
	}
	if err := w.Navigate(ctx, srv.URL); err != nil {
		t.Fatal(err)
	}
	if err := w.InstallErrorHook(ctx); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Title string `json:"title"`
		Sum   int    `json:"sum"`
		Width int    `json:"width"`
	}
	if err := w.Eval(ctx, `new Promise(r => setTimeout(() => r({title: document.title, sum: 1 + 2, width: innerWidth}), 10))`, &got); err != nil {
		t.Fatal(err)
	}
	if got.Title != "t" || got.Sum != 3 || got.Width > 480 {
		t.Fatalf("evaluate: %+v", got)
	}
	if err := w.Eval(ctx, `(() => { throw new Error("thrown") })()`, nil); err == nil || !strings.Contains(err.Error(), "thrown") {
		t.Fatalf("a throwing expression: %v", err)
	}
	if err := w.Eval(ctx, `(console.error("from the page"), setTimeout(() => { throw new Error("uncaught here"); }, 0), true)`, nil); err != nil {
		t.Fatal(err)
	}
	var errs []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if errs, _ = w.Errors(ctx); len(errs) >= 2 {
			break
		}
	}
	all := strings.Join(errs, "\n")
	if !strings.Contains(all, "console.error: from the page") || !strings.Contains(all, "uncaught here") {
		t.Fatalf("recorded errors: %q", errs)
	}
	shot, err := w.Screenshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if frac := BrightFraction(t, shot); frac < 0.9 {
		t.Fatalf("white page screenshot is %.2f bright", frac)
	}
	var media struct {
		H264    bool     `json:"h264"`
		Managed bool     `json:"managed"`
		APIs    []string `json:"apis"`
	}
	if err := w.Eval(ctx, `({h264: MediaSource.isTypeSupported('video/mp4; codecs="avc1.4d401f,mp4a.40.2"'),
		managed: typeof ManagedMediaSource === "function" && ManagedMediaSource.isTypeSupported('video/mp4; codecs="avc1.4d401f,mp4a.40.2"'),
		apis: ["MediaSource", "ManagedMediaSource", "RTCPeerConnection", "WebAssembly"].filter(k => k in window)})`, &media); err != nil {
		t.Fatal(err)
	}
	if !media.H264 {
		t.Fatal("this WebKit cannot play H.264 with MSE: it needs GStreamer's decoders (apt-get install gstreamer1.0-libav gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)")
	}
	if !media.Managed || !slices.Contains(media.APIs, "WebAssembly") {
		t.Fatalf("media APIs: %+v", media)
	}
	t.Logf("%s; APIs %v; inner width %d", w.Version(ctx), media.APIs, got.Width)
}
