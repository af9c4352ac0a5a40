package web_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/banyan-live/banyan/web"
)

// The publisher page works under the pages' CSP (scripts from 'self'
// only): no inline script or handler, nothing from another site, and its
// assets are served. The browser test (cmd/banyan TestBrowserPublisherWHIP)
// drives it for real.
func TestPublishPage(t *testing.T) {
	h := web.Handler()
	w := get(t, h, "GET", "/publish/demo")
	if w.Code != 200 {
		t.Fatalf("/publish/demo: %d", w.Code)
	}
	csp := w.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Fatalf("CSP %q", csp)
	}
	page := w.Body.String()
	for _, want := range []string{`data-stream="demo"`, `<script src="/static/publish.js" defer></script>`,
		`href="/static/publish.css"`, `id="key" type="password"`, `id="golive"`, `id="stop"`, `<title>Publish demo`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Error("page names an external URL")
	}
	if m := regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]`).FindString(page); m != "" || !regexp.MustCompile(`<script[^>]*\ssrc=`).MatchString(page) {
		t.Errorf("inline script (blocked by the CSP): %q", m)
	}
	if m := regexp.MustCompile(`\son[a-z]+=`).FindString(page); m != "" {
		t.Errorf("inline event handler (blocked by the CSP): %q", m)
	}
	// The key field is not submitted with the form, even without script.
	if regexp.MustCompile(`<input[^>]*id="key"[^>]*\sname=`).MatchString(page) {
		t.Error("the key input has a name: a form submission would carry it")
	}

	for _, tc := range []struct{ path, ctype, want string }{
		{"/static/publish.js", "javascript", "setCodecPreferences"},
		{"/static/publish.css", "text/css", ".pub-layout"},
	} {
		w := get(t, h, "GET", tc.path)
		if w.Code != 200 || !strings.Contains(w.Header().Get("Content-Type"), tc.ctype) || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("%s: %d %q", tc.path, w.Code, w.Header().Get("Content-Type"))
		}
	}
	js := get(t, h, "GET", "/static/publish.js").Body.String()
	if strings.Contains(js, "localStorage") || strings.Contains(js, "http://") || strings.Contains(js, "https://") {
		t.Error("publish.js keeps the key beyond the tab, or names an external URL")
	}

	for _, bad := range []string{"/publish/Not..Valid", "/publish/%22%3E%3Cscript%3E", "/publish/" + strings.Repeat("a", 65)} {
		if w := get(t, h, "GET", bad); w.Code != 400 {
			t.Errorf("%s: %d, want 400", bad, w.Code)
		}
	}
}
