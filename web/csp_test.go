package web_test

import (
	"strings"
	"testing"

	"github.com/banyan-live/banyan/web"
)

// TestConnectSrc: a cluster's trackers and seeder origins join the pages'
// connect-src as plain scheme://host[:port]; anything that could smuggle
// a directive or a path is left out.
func TestConnectSrc(t *testing.T) {
	h := web.NewHandler(web.Config{ConnectSrc: func() []string {
		return []string{
			"ws://t2.example.net:8080/ws", // a path: left out (give origins)
			"ws://t2.example.net:8080",
			"http://eu1.example.net:8081",
			"https://cdn.example.net",
			"http://x; script-src *", // injection
			"javascript://x",
			"http://user@host:1",
			"ftp://files.example.net",
			"",
		}
	}})
	w := get(t, h, "GET", "/watch/demo")
	csp := w.Header().Get("Content-Security-Policy")
	want := "connect-src 'self' ws://t2.example.net:8080 http://eu1.example.net:8081 https://cdn.example.net"
	if !strings.HasSuffix(csp, want) {
		t.Fatalf("CSP %q, want it to end with %q", csp, want)
	}
	if strings.Count(csp, "script-src") != 1 {
		t.Fatalf("CSP %q: a directive was injected", csp)
	}
}
