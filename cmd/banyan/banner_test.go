package main

import (
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var newStreamRE = regexp.MustCompile(`New stream:\s+(.+)`)

// TestBannerTokenAndKeyCreate is issue 21's defects 3 and 4: a first start
// that fails after making the admin token says where it is, every later
// start says where it is and how to log in, and the banner's `key create`
// line works pasted as printed (the real binary, --server on the real
// port), with a hint to rotate when the stream exists.
func TestBannerTokenAndKeyCreate(t *testing.T) {
	data := filepath.Join(t.TempDir(), "my data") // a path that needs quoting
	tokenPath := filepath.Join(data, "admin.token")

	// The RTMP port is taken: the start fails after making the token.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, stderr, code := cli(t, "up", "--data", data, "--http", "127.0.0.1:0", "--rtmp", busy.Addr().String(), "--turn", "127.0.0.1:0")
	if code == 0 {
		t.Fatal("up started with its RTMP port taken")
	}
	if !strings.Contains(stderr, tokenPath) {
		t.Errorf("a failed start does not say where the admin token is:\n%s", stderr)
	}

	p := startUp(t, data)
	port := p.base[strings.LastIndexByte(p.base, ':'):]
	for _, want := range []string{"Admin token: kept in " + tokenPath, "Log in at http://localhost" + port + "/dashboard"} {
		if !strings.Contains(p.banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, p.banner)
		}
	}
	// The pages know the server's streams: no stream, 404.
	for path, want := range map[string]int{"/watch/demo": 200, "/watch/nosuch": 404, "/publish/nosuch": 404} {
		resp, err := http.Get(p.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	m := newStreamRE.FindStringSubmatch(p.banner)
	if m == nil {
		t.Fatalf("no New stream line:\n%s", p.banner)
	}
	line := strings.Replace(m[1], "NAME", "fresh", 1)
	if !strings.Contains(line, "--server "+p.base) {
		t.Errorf("key create line %q lacks --server %s", line, p.base)
	}
	run := func() (string, error) {
		cmd := exec.Command("sh", "-c", line)
		cmd.Env = cleanEnv()
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run()
	if err != nil || !strings.Contains(out, `Stream "fresh" key`) {
		t.Fatalf("the banner's command %q: %v\n%s", line, err, out)
	}
	out, err = run()
	if err == nil || !strings.Contains(out, "key rotate fresh") {
		t.Errorf("key create of an existing stream: %v\n%s (want a hint to key rotate)", err, out)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"./bin/banyan": "./bin/banyan",
		"/tmp/my data": "'/tmp/my data'",
		"it's":         `'it'\''s'`,
		"":             "''",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestReportCLIMistakes: `banyan report` refuses bad input with a clear
// message, before or without a server.
func TestReportCLIMistakes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"report"}, "give one STREAM"},
		{[]string{"report", "demo", "--json", "--csv"}, "exclude each other"},
		{[]string{"report", "demo", "--since", "-1h"}, "--since must be positive"},
		{[]string{"report", "demo", "--token", "x", "--server", "http://127.0.0.1:1"}, "no server answers at http://127.0.0.1:1"},
		{[]string{"report", "demo", "--data", "/nonexistent"}, "no admin token"},
	} {
		_, stderr, code := cli(t, tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("banyan %v: exit %d, stderr %q, want %q", tc.args, code, stderr, tc.want)
		}
	}
}
