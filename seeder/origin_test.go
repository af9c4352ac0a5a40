package seeder

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// feed adds n chunks of 250 ms to w's current epoch, a keyframe every kf.
func feed(w *Window, epoch uint32, from, n uint64, kf uint64, t0 time.Time) {
	for seq := from; seq < from+n; seq++ {
		w.Add(&Entry{
			Epoch: epoch, Seq: seq, Keyframe: (seq-1)%kf == 0,
			MediaTime: time.Duration(seq-1) * 250 * time.Millisecond, Duration: 250 * time.Millisecond,
			Sealed: []byte(fmt.Sprintf("sealed-%d-%d", epoch, seq)), Plain: []byte(fmt.Sprintf("plain-%d-%d|", epoch, seq)),
			Added: t0.Add(time.Duration(seq) * 250 * time.Millisecond),
		})
	}
}

func TestWindowEvictionAndOrder(t *testing.T) {
	w := NewWindow(5 * time.Second)
	t0 := time.Now()
	if w.Add(&Entry{Epoch: 1, Seq: 1}) {
		t.Fatal("chunk accepted before any epoch")
	}
	w.StartEpoch(EpochInfo{Epoch: 1, Init: &Entry{Epoch: 1, Sealed: []byte("init")}})
	feed(w, 1, 1, 40, 8, t0) // 10 s of chunks, keep 5 s
	if w.Add(&Entry{Epoch: 1, Seq: 99, Added: t0}) || w.Add(&Entry{Epoch: 2, Seq: 41, Added: t0}) {
		t.Fatal("out-of-order or wrong-epoch chunk accepted")
	}
	l, _ := w.Live()
	// Evicted by whole segments (2 s each) while at least 5 s remain.
	if l.Seq != 40 || l.KeyframeSeq != 33 || l.FirstSeq != 17 {
		t.Fatalf("live %+v", l)
	}
	if _, ok := w.Get(1, 5, 0); ok {
		t.Fatal("evicted chunk still served")
	}
	if e, ok := w.Get(1, 40, 0); !ok || string(e.Sealed) != "sealed-1-40" {
		t.Fatal("newest chunk missing")
	}
	if e, ok := w.Get(1, 0, 0); !ok || string(e.Sealed) != "init" {
		t.Fatal("init missing")
	}
	if _, ok := w.Get(7, 1, 0); ok {
		t.Fatal("unknown epoch served")
	}
	// Bounded memory across epochs.
	for ep := uint32(2); ep < 20; ep++ {
		w.StartEpoch(EpochInfo{Epoch: ep})
	}
	if n := len(w.epochs); n > maxEpochs {
		t.Fatalf("%d epochs kept", n)
	}
}

// TestWindowNoKeyframeBounded: an epoch that never gets a keyframe is not
// listed in LL-HLS and keeps a bounded number of chunks.
func TestWindowNoKeyframeBounded(t *testing.T) {
	w := NewWindow(5 * time.Second)
	w.StartEpoch(EpochInfo{Epoch: 1})
	feed(w, 1, 1, 1000, 1<<62, time.Now()) // (seq-1)%kf == 0 only for seq 1
	w.StartEpoch(EpochInfo{Epoch: 2})
	for seq := uint64(1); seq <= 1000; seq++ {
		w.Add(&Entry{Epoch: 2, Seq: seq, Duration: 250 * time.Millisecond, Added: time.Now()})
	}
	l, _ := w.Live()
	if n := l.Seq - l.FirstSeq + 1; l.Seq != 1000 || n > maxUnlisted {
		t.Fatalf("live %+v: %d chunks kept", l, n)
	}
	if v, _ := w.hlsView(); len(v.epochs) != 1 || v.epochs[0].info.Epoch != 1 {
		t.Fatalf("listed epochs %+v", v.epochs)
	}
}

func TestWindowBlockingGet(t *testing.T) {
	w := NewWindow(0)
	w.StartEpoch(EpochInfo{Epoch: 3})
	feed(w, 3, 1, 2, 1, time.Now())
	var wg sync.WaitGroup
	wg.Add(1)
	var got *Entry
	go func() {
		defer wg.Done()
		got, _ = w.Get(3, 3, 5*time.Second)
	}()
	time.Sleep(20 * time.Millisecond)
	feed(w, 3, 3, 1, 1, time.Now())
	wg.Wait()
	if got == nil || got.Seq != 3 {
		t.Fatalf("blocked get returned %+v", got)
	}
	// Far ahead: no wait at all.
	start := time.Now()
	if _, ok := w.Get(3, 50, 5*time.Second); ok || time.Since(start) > time.Second {
		t.Fatal("far-ahead request blocked or succeeded")
	}
	// Close releases a waiter.
	go func() { time.Sleep(20 * time.Millisecond); w.Close() }()
	if _, ok := w.Get(3, 4, 10*time.Second); ok {
		t.Fatal("got a chunk from a closed window")
	}
}

func TestPlaylist(t *testing.T) {
	w := NewWindow(time.Minute)
	w.StartEpoch(EpochInfo{Epoch: 9, Codecs: "avc1.64001f,mp4a.40.2"})
	w.StartEpoch(EpochInfo{Epoch: 10, Codecs: "avc1.64001f,mp4a.40.2"})
	feed(w, 10, 1, 21, 8, time.Now()) // segments start at 1, 9, 17 (open)
	v, _ := w.hlsView()
	pl, ok := v.playlist(DefaultEndGrace, false)
	if !ok {
		t.Fatal("no playlist")
	}
	for _, want := range []string{
		"#EXT-X-VERSION:9", "#EXT-X-TARGETDURATION:2", "#EXT-X-PART-INF:PART-TARGET=0.288",
		"CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.000,PART-HOLD-BACK=0.864", "#EXT-X-MEDIA-SEQUENCE:1",
		"#EXT-X-DISCONTINUITY-SEQUENCE:0", `#EXT-X-MAP:URI="init/10.mp4"`,
		"#EXTINF:2.000,\ns/10/1.m4s", "#EXTINF:2.000,\ns/10/9.m4s",
		`#EXT-X-PART:DURATION=0.250,URI="p/10/17.m4s",INDEPENDENT=YES`,
		`#EXT-X-PART:DURATION=0.250,URI="p/10/21.m4s"` + "\n",
		`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="p/10/22.m4s"`,
	} {
		if !strings.Contains(pl, want) {
			t.Errorf("playlist lacks %q:\n%s", want, pl)
		}
	}
	if strings.Contains(pl, "s/10/17.m4s") || strings.Contains(pl, "ENDLIST") {
		t.Errorf("open segment listed whole or ENDLIST on a live stream:\n%s", pl)
	}
	for _, c := range []struct {
		msn  uint64
		part int
		want bool
	}{{1, -1, true}, {2, 0, true}, {3, 4, true}, {3, 5, false}, {4, 0, false}} {
		if got := v.hasPart(DefaultEndGrace, c.msn, c.part); got != c.want {
			t.Errorf("hasPart(%d,%d)=%v", c.msn, c.part, got)
		}
	}
	b, ok, _ := v.segmentBytes(10, 9)
	if !ok || string(b) != "plain-10-9|plain-10-10|plain-10-11|plain-10-12|plain-10-13|plain-10-14|plain-10-15|plain-10-16|" {
		t.Fatalf("segment bytes %q", b)
	}
	if _, ok, _ := v.segmentBytes(10, 17); ok {
		t.Fatal("open segment served whole")
	}
	// Ended: the open segment is complete at once; EXT-X-ENDLIST only
	// after the grace period.
	w.EndEpoch()
	v, _ = w.hlsView()
	pl, _ = v.playlist(time.Hour, false)
	if !strings.HasSuffix(pl, "s/10/17.m4s\n") {
		t.Fatalf("ended playlist within grace:\n%s", pl)
	}
	pl, _ = v.playlist(0, false)
	if !strings.HasSuffix(pl, "s/10/17.m4s\n#EXT-X-ENDLIST\n") {
		t.Fatalf("ended playlist after grace:\n%s", pl)
	}
}

// TestPlaylistDelta: _HLS_skip replaces what is older than CAN-SKIP-UNTIL
// (six target durations) with EXT-X-SKIP, across an epoch boundary.
func TestPlaylistDelta(t *testing.T) {
	w := NewWindow(time.Minute)
	t0 := time.Now()
	w.StartEpoch(EpochInfo{Epoch: 1})
	feed(w, 1, 1, 40, 4, t0) // 10 segments of 1 s
	w.StartEpoch(EpochInfo{Epoch: 2})
	feed(w, 2, 1, 30, 4, t0.Add(10*time.Second)) // 7 closed, 1 open (2 parts)
	v, _ := w.hlsView()
	full, _ := v.playlist(DefaultEndGrace, false)
	delta, _ := v.playlist(DefaultEndGrace, true)
	// 17.5 s listed; skippable: segments ending before 17.5 - 6 = 11.5 s.
	for _, want := range []string{"CAN-SKIP-UNTIL=6.000", "#EXT-X-SKIP:SKIPPED-SEGMENTS=11\n", `#EXT-X-MAP:URI="init/2.mp4"`, "s/2/5.m4s"} {
		if !strings.Contains(delta, want) {
			t.Errorf("delta lacks %q:\n%s", want, delta)
		}
	}
	if strings.Contains(delta, "s/2/1.m4s") || strings.Contains(delta, "init/1.mp4") || strings.Contains(delta, "DISCONTINUITY\n") {
		t.Errorf("delta lists skipped segments:\n%s", delta)
	}
	if !strings.Contains(full, "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init/2.mp4\"") || !strings.Contains(full, "s/1/1.m4s") {
		t.Errorf("full playlist:\n%s", full)
	}
}

// TestMultivariant: the multivariant playlist names the variant's codecs
// in RFC 6381 form ("Opus" for Opus in MP4, which Safari requires) and its
// resolution.
func TestMultivariant(t *testing.T) {
	o := NewOrigin(nil)
	w := o.Stream("pub", time.Minute, true)
	w.StartEpoch(EpochInfo{Epoch: 5, Codecs: "avc1.42c01e,Opus", Width: 1280, Height: 720})
	feed(w, 5, 1, 12, 4, time.Now())
	rec := httptest.NewRecorder()
	o.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/hls/pub/main.m3u8", nil))
	body := rec.Body.String()
	// Chunks of about 11 bytes per 0.25 s: some 350 bit/s.
	want := regexp.MustCompile(`^#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-STREAM-INF:BANDWIDTH=3[0-9]{2},AVERAGE-BANDWIDTH=3[0-9]{2},CODECS="avc1.42c01e,Opus",RESOLUTION=1280x720\nindex.m3u8\n$`)
	if rec.Code != http.StatusOK || !want.MatchString(body) {
		t.Fatalf("multivariant: %d\n%s", rec.Code, body)
	}
	rec = httptest.NewRecorder()
	o.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/hls/none/main.m3u8", nil))
	if rec.Code != http.StatusNotFound || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("multivariant of an unknown stream: %d %q", rec.Code, rec.Header().Get("Cache-Control"))
	}
}

func TestOriginHTTP(t *testing.T) {
	o := NewOrigin(nil)
	o.Wait = 2 * time.Second
	pub := o.Stream("pub", time.Minute, true)
	priv := o.Stream("priv", time.Minute, false)
	for _, w := range []*Window{pub, priv} {
		w.StartEpoch(EpochInfo{Epoch: 5, Codecs: "avc1.64001f", Init: &Entry{Epoch: 5, Sealed: []byte("sealed-init"), Plain: []byte("plain-init")}})
		feed(w, 5, 1, 10, 4, time.Now())
	}
	srv := httptest.NewServer(o.Handler())
	defer srv.Close()
	get := func(path string) (int, string, http.Header) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	cases := []struct {
		path string
		code int
		body string
		cc   string
	}{
		{"/chunks/pub/5/3", 200, "sealed-5-3", immutable},
		{"/chunks/pub/5/0", 200, "sealed-init", immutable},
		{"/chunks/pub/init", 200, "sealed-init", "no-cache"},
		{"/chunks/pub/5/99", 404, "", "no-store"},
		{"/chunks/pub/4/1", 404, "", ""},
		{"/chunks/pub/x/1", 400, "", ""},
		{"/chunks/nope/5/1", 404, "", ""},
		{"/chunks/BAD/5/1", 400, "", ""},
		{"/hls/pub/init/5.mp4", 200, "plain-init", immutable},
		{"/hls/pub/p/5/2.m4s", 200, "plain-5-2|", immutable},
		{"/hls/pub/s/5/5.m4s", 200, "plain-5-5|plain-5-6|plain-5-7|plain-5-8|", immutable},
		{"/hls/pub/s/5/9.m4s", 404, "", "no-store"},
		{"/hls/pub/p/5/99.m4s", 404, "", "no-store"},
		{"/hls/pub/init/4.mp4", 404, "", "no-store"},
		{"/hls/nope/index.m3u8", 404, "", "no-store"},
		{"/hls/priv/index.m3u8", 403, "", ""},
		{"/hls/priv/p/5/2.m4s", 403, "", ""},
		{"/hls/pub/index.m3u8?_HLS_msn=99", 400, "", ""},
		{"/hls/pub/index.m3u8?_HLS_msn=1&_HLS_part=x", 400, "", ""},
		{"/hls/pub/index.m3u8?_HLS_part=1", 400, "", ""},
		{"/hls/pub/index.m3u8?_HLS_skip=maybe", 400, "", ""},
	}
	for _, c := range cases {
		code, body, h := get(c.path)
		if code != c.code || (c.body != "" && body != c.body) || (c.cc != "" && h.Get("Cache-Control") != c.cc) {
			t.Errorf("GET %s: %d %q cc=%q; want %d %q cc=%q", c.path, code, body, h.Get("Cache-Control"), c.code, c.body, c.cc)
		}
	}
	// Ranges of a chunk (a rescue's missing pieces), and their preflight.
	for _, rc := range []struct {
		rng  string
		code int
		body string
	}{
		{"bytes=2-5", http.StatusPartialContent, "aled"},
		{"bytes=7-", http.StatusPartialContent, "5-3"},
		{"bytes=99-", http.StatusRequestedRangeNotSatisfiable, ""},
	} {
		req, _ := http.NewRequest("GET", srv.URL+"/chunks/pub/5/3", nil)
		req.Header.Set("Range", rc.rng)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != rc.code || (rc.body != "" && string(b) != rc.body) {
			t.Errorf("Range %s: %d %q, want %d %q", rc.rng, resp.StatusCode, b, rc.code, rc.body)
		}
	}
	req, _ := http.NewRequest("OPTIONS", srv.URL+"/chunks/pub/5/3", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNoContent || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Range") {
		t.Errorf("chunk preflight: %v %v", resp, err)
	}

	// A blocking reload that times out is a 503, not the old playlist
	// (three target durations of 1 s).
	start := time.Now()
	if code, body, h := get("/hls/pub/index.m3u8?_HLS_msn=4&_HLS_part=0"); code != http.StatusServiceUnavailable || h.Get("Cache-Control") != "no-store" {
		t.Errorf("timed-out blocking reload: %d %q", code, body)
	}
	if d := time.Since(start); d < 2900*time.Millisecond || d > 5*time.Second {
		t.Errorf("timed-out blocking reload answered after %v, want 3 s", d)
	}
	code, body, _ := get("/chunks/pub/live")
	var l Live
	if code != 200 || json.Unmarshal([]byte(body), &l) != nil || l.Epoch != 5 || l.Seq != 10 || l.KeyframeSeq != 9 || l.Codecs != "avc1.64001f" {
		t.Fatalf("live: %d %s", code, body)
	}

	// A blocking chunk request and a blocking playlist reload are answered
	// as soon as the chunk arrives.
	done := make(chan string, 2)
	go func() { _, b, _ := get("/chunks/pub/5/11"); done <- b }()
	go func() { _, b, _ := get("/hls/pub/index.m3u8?_HLS_msn=3&_HLS_part=2"); done <- b }()
	time.Sleep(50 * time.Millisecond)
	feed(pub, 5, 11, 1, 4, time.Now())
	for i := 0; i < 2; i++ {
		select {
		case b := <-done:
			if b != "sealed-5-11" && !strings.Contains(b, `URI="p/5/11.m4s"`) {
				t.Errorf("blocking answer %q", b)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("blocked request not released")
		}
	}
}
