package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestFirefoxBiDi checks the BiDi client against the real browser: a page
// loads, expressions and promises evaluate, console errors and uncaught
// exceptions reach the log, screenshots are PNGs; and that this Firefox
// can decode H.264 through MSE (it takes the decoder from the system's
// libavcodec, which firefox-esr only recommends).
func TestFirefoxBiDi(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end browser test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := StartFirefox(t, ctx)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<!doctype html><title>t</title><body style="background:#fff">
<script>console.error("from the page"); setTimeout(() => { throw new Error("uncaught here"); }, 0);</script>`)
	}))
	defer srv.Close()
	if err := f.SetViewport(ctx, 640, 480); err != nil {
		t.Fatal(err)
	}
	if err := f.Navigate(ctx, srv.URL); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Title string `json:"title"`
		Sum   int    `json:"sum"`
		Width int    `json:"width"`
	}
	if err := f.Eval(ctx, `new Promise(r => setTimeout(() => r({title: document.title, sum: 1 + 2, width: innerWidth}), 10))`, &got); err != nil {
		t.Fatal(err)
	}
	if got.Title != "t" || got.Sum != 3 || got.Width != 640 {
		t.Fatalf("evaluate: %+v", got)
	}
	if err := f.Eval(ctx, `(() => { throw new Error("thrown") })()`, nil); err == nil || !strings.Contains(err.Error(), "thrown") {
		t.Fatalf("a throwing expression: %v", err)
	}
	var seen []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		seen = seen[:0]
		for _, l := range f.Logs() {
			seen = append(seen, l.String())
		}
		all := strings.Join(seen, "\n")
		if strings.Contains(all, "console/error: from the page") && strings.Contains(all, "javascript/error: Error: uncaught here") {
			break
		}
	}
	if all := strings.Join(seen, "\n"); !strings.Contains(all, "from the page") || !strings.Contains(all, "uncaught here") {
		t.Fatalf("log entries: %q", seen)
	}
	shot, err := f.Screenshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if frac := BrightFraction(t, shot); frac < 0.9 {
		t.Fatalf("white page screenshot is %.2f bright", frac)
	}
	var h264 bool
	if err := f.Eval(ctx, `MediaSource.isTypeSupported('video/mp4; codecs="avc1.4d401f,mp4a.40.2"')`, &h264); err != nil {
		t.Fatal(err)
	}
	if !h264 {
		t.Fatal("this Firefox cannot play H.264 with MSE: it needs the system's libavcodec (apt-get install ffmpeg, or libavcodec59 on Debian 12)")
	}
	t.Logf("%s", f.Version(ctx))
}
