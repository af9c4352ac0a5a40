package web_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/banyan-live/banyan/web"
)

// TestPagesKnowStreams is issue 21's defect 7: a watch page for a stream
// the server does not know answers 404 with the same friendly page (which
// then says so instead of describing the mesh), and the publish page says
// when the stream is already live and where its key came from.
func TestPagesKnowStreams(t *testing.T) {
	known := map[string]web.StreamInfo{
		"demo":  {Known: true, Live: true, Via: "rtmp", Demo: true},
		"quiet": {Known: true},
		"obs":   {Known: true, Live: true, Via: "rtmp", Advice: "keyframe interval 8.3 s: set Keyframe Interval 1 s"},
	}
	h := web.NewHandler(web.Config{Stream: func(n string) web.StreamInfo { return known[n] }})
	for _, tc := range []struct {
		path         string
		code         int
		want, absent []string
	}{
		{"/watch/demo", http.StatusOK, []string{"<banyan-player", "Banyan mesh"}, []string{"no stream named"}},
		{"/watch/nosuch", http.StatusNotFound, []string{`id="missing"`, "nosuch"}, []string{"<banyan-player", "Banyan mesh"}},
		{"/publish/demo", http.StatusOK, []string{`id="already-live"`, "over RTMP", "the Stream Key banyan up printed"}, []string{`id="missing"`}},
		{"/publish/quiet", http.StatusOK, []string{"banyan key create quiet printed"}, []string{`id="already-live"`, `id="gop-advice"`}},
		// A long GOP: the advice the seeder measured (issue 22 #4).
		{"/publish/obs", http.StatusOK, []string{`id="gop-advice"`, "keyframe interval 8.3 s: set Keyframe Interval 1 s"}, nil},
		{"/publish/nosuch", http.StatusNotFound, []string{`id="missing"`}, nil},
		{"/watch/Bad%20Name", http.StatusBadRequest, nil, nil},
	} {
		w := get(t, h, "GET", tc.path)
		body := w.Body.String()
		if w.Code != tc.code {
			t.Errorf("%s: %d, want %d", tc.path, w.Code, tc.code)
		}
		for _, s := range tc.want {
			if !strings.Contains(body, s) {
				t.Errorf("%s lacks %q", tc.path, s)
			}
		}
		for _, s := range tc.absent {
			if strings.Contains(strings.ToLower(body), strings.ToLower(s)) {
				t.Errorf("%s has %q", tc.path, s)
			}
		}
	}
	// Without a Stream func (an embedder's server) every valid name is a page.
	if w := get(t, web.Handler(), "GET", "/watch/nosuch"); w.Code != http.StatusOK {
		t.Errorf("default handler: %d", w.Code)
	}
}
