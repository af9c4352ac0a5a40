package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/banyan-live/banyan/store"
)

var banyanBin string

func TestMain(m *testing.M) {
	flag.Parse() // for testing.Short in needWASM
	dir, err := os.MkdirTemp("", "banyan-bin-")
	if err != nil {
		panic(err)
	}
	banyanBin = filepath.Join(dir, "banyan")
	if needWASM() {
		// The browser tests play the real wasm peer, which the binary
		// embeds: build it first, as `make wasm` does.
		args := []string{"run", "./internal/webbuild", "-out", "web/dist", "-pkg", "./wasm", "-ldflags", "-s -w"}
		if os.Getenv("BANYAN_WASM_NAMES") == "1" {
			// With its name section (no -s), so that profiles name the
			// Go functions (TestMeasureRelayCPU); over the size gate.
			args = append(args[:len(args)-1], "-w", "-max-brotli", "0")
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Stderr.Write(out)
			os.Exit(1)
		}
	}
	out, err := exec.Command("go", "build", "-o", banyanBin, ".").CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needWASM: the browser tests will run (chromium, firefox-esr or
// WebKitWebDriver is here,
// or CI demands it).
func needWASM() bool {
	if testing.Short() {
		return false
	}
	for _, b := range []string{"chromium", "firefox-esr", "WebKitWebDriver"} {
		if _, err := exec.LookPath(b); err == nil {
			return true
		}
	}
	return os.Getenv("BANYAN_E2E") == "1"
}

// cli runs banyan to completion and returns stdout, stderr and exit code.
func cli(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(banyanBin, args...)
	cmd.Env = cleanEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("banyan %v did not finish", args)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

func cleanEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "BANYAN_") {
			env = append(env, e)
		}
	}
	return env
}

type upProc struct {
	data   string // --data
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:PORT
	banner string
	stderr *bytes.Buffer
	done   chan error
}

var dashRE = regexp.MustCompile(`Dashboard:\s+(https?)://[^/\s]+:(\d+)/dashboard`)

// startUp runs `banyan up` on ephemeral loopback ports and waits for its banner.
func startUp(t *testing.T, data string, extra ...string) *upProc {
	t.Helper()
	return startUpEnv(t, data, nil, extra...)
}

// startUpEnv is startUp with BANYAN_* variables (KEY=VALUE) in the environment.
func startUpEnv(t *testing.T, data string, env []string, extra ...string) *upProc {
	t.Helper()
	args := append([]string{"up", "--data", data, "--http", "127.0.0.1:0", "--rtmp", "127.0.0.1:0", "--turn", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(banyanBin, args...)
	cmd.Env = append(cleanEnv(), env...)
	stdout, _ := cmd.StdoutPipe()
	p := &upProc{data: data, cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.done
		}
	})
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		p.done <- cmd.Wait()
	}()
	var banner strings.Builder
	deadline := time.After(20 * time.Second)
	for done := false; !done; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("banyan up exited early: %s", p.stderr)
			}
			banner.WriteString(l + "\n")
			if m := dashRE.FindStringSubmatch(l); m != nil {
				p.base = m[1] + "://127.0.0.1:" + m[2]
			}
			// The banner's last line.
			done = p.base != "" && strings.Contains(l, "New stream:")
		case <-deadline:
			t.Fatalf("no banner from banyan up; stderr: %s", p.stderr)
		}
	}
	// Drain the rest of the banner without blocking the process.
	go func() {
		for range lines {
		}
	}()
	p.banner = banner.String()
	return p
}

// adminToken is the admin token the server wrote into its data dir.
func (p *upProc) adminToken(t *testing.T) string {
	t.Helper()
	tok, err := store.ReadAdminTokenFile(p.data)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (p *upProc) stop(t *testing.T, sig os.Signal) int {
	t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("banyan up did not stop on %v", sig)
	}
	return p.cmd.ProcessState.ExitCode()
}

func TestUpServesAndStopsCleanly(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	p := startUp(t, data)
	for _, want := range []string{"Admin token (shown once", "rtmp://localhost:", "/live", "Stream Key", "/watch/demo", "/dashboard"} {
		if !strings.Contains(p.banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, p.banner)
		}
	}
	get := func(path string) (int, string) {
		resp, err := http.Get(p.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Fatalf("healthz %d %q", code, body)
	}
	if body := string(metrics(t, p.base, p.adminToken(t))); !strings.Contains(body, "banyan_streams 1") || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics:\n%.400s", body)
	}
	if code, body := get("/watch/demo"); code != 200 || !strings.Contains(body, "<title>demo") {
		t.Fatalf("watch page %d", code)
	}
	if code, _ := get("/api/streams"); code != 401 {
		t.Fatalf("admin API without token: %d", code)
	}
	for _, sig := range []os.Signal{syscall.SIGTERM} {
		if code := p.stop(t, sig); code != 0 {
			t.Fatalf("exit %d after %v; stderr:\n%s", code, sig, p.stderr)
		}
	}
	if !strings.Contains(p.stderr.String(), "stopped") {
		t.Errorf("no clean stop logged:\n%s", p.stderr)
	}
	// The store was closed: the data dir opens offline at once, and the second
	// start prints no admin token but the same demo key.
	if _, stderr, code := cli(t, "key", "list", "--data", data, "--server", "http://127.0.0.1:1"); code != 0 {
		t.Fatalf("offline list after stop: %d %s", code, stderr)
	}
	p2 := startUp(t, data)
	if strings.Contains(p2.banner, "Admin token (shown once") {
		t.Error("admin token printed on second start")
	}
	key := regexp.MustCompile(`Stream Key\s+(\S+)`)
	k1, k2 := key.FindStringSubmatch(p.banner), key.FindStringSubmatch(p2.banner)
	if k1 == nil || k2 == nil || k1[1] != k2[1] {
		t.Errorf("demo key differs across restarts: %v %v", k1, k2)
	}
	if code := p2.stop(t, os.Interrupt); code != 0 {
		t.Fatalf("exit %d after SIGINT", code)
	}
}

func TestKeyCLIAgainstServerAndOffline(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	p := startUp(t, data)

	out, stderr, code := cli(t, "key", "create", "show1", "--json", "--data", data, "--server", p.base)
	if code != 0 {
		t.Fatalf("create via server: %d %s", code, stderr)
	}
	var created struct{ Name, Key string }
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Name != "show1" || len(created.Key) != 43 {
		t.Fatalf("create --json printed %q (%v)", out, err)
	}
	if strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("--json must print exactly one line of JSON, got %q", out)
	}
	if !strings.Contains(p.stderr.String(), `stream created" stream=show1`) {
		t.Fatal("the server did not handle the create")
	}
	if _, stderr, code = cli(t, "key", "create", "show1", "--data", data, "--server", p.base); code != 1 || !strings.Contains(stderr, "already exists") {
		t.Fatalf("duplicate: %d %s", code, stderr)
	}
	if _, stderr, code = cli(t, "key", "create", "Bad Name", "--data", data, "--server", p.base); code != 1 || !strings.Contains(stderr, "invalid stream name") {
		t.Fatalf("bad name: %d %s", code, stderr)
	}
	if _, stderr, code = cli(t, "key", "list", "--data", data, "--server", p.base, "--token", "wrong"); code != 1 || !strings.Contains(stderr, "admin token required") {
		t.Fatalf("wrong token: %d %s", code, stderr)
	}
	// Held data dir and no server at the given address: a plain answer, fast.
	start := time.Now()
	_, stderr, code = cli(t, "key", "list", "--data", data, "--server", "http://127.0.0.1:1")
	if code != 1 || !strings.Contains(stderr, "held by a running banyan") || time.Since(start) > 10*time.Second {
		t.Fatalf("locked data dir: %d %q after %v", code, stderr, time.Since(start))
	}
	if _, stderr, code = cli(t, "key", "revoke", "show1", "--data", data, "--server", p.base); code != 0 {
		t.Fatalf("revoke via server: %d %s", code, stderr)
	}
	p.stop(t, os.Interrupt)

	// Offline: straight to the data dir.
	out, stderr, code = cli(t, "key", "list", "--json", "--data", data, "--server", "http://127.0.0.1:1")
	if code != 0 {
		t.Fatalf("offline list: %d %s", code, stderr)
	}
	var list struct {
		Streams []struct {
			Name    string
			Revoked bool
		}
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Streams) != 2 {
		t.Fatalf("offline list %q %v", out, err)
	}
	if list.Streams[1].Name != "show1" || !list.Streams[1].Revoked || list.Streams[0].Name != "demo" {
		t.Fatalf("offline list content %+v", list.Streams)
	}
	out, _, code = cli(t, "key", "create", "offline1", "--data", data, "--server", "http://127.0.0.1:1")
	if code != 0 || !strings.Contains(out, "OBS: Server rtmp://") {
		t.Fatalf("offline create: %d %q", code, out)
	}
	if _, _, code = cli(t, "key", "revoke", "nope", "--data", data, "--server", "http://127.0.0.1:1"); code != 1 {
		t.Fatalf("revoke unknown offline: exit %d", code)
	}
}

func TestOperatorMistakes(t *testing.T) {
	tmp := t.TempDir()
	corrupt := filepath.Join(tmp, "corrupt")
	os.MkdirAll(corrupt, 0o700)
	os.WriteFile(filepath.Join(corrupt, "banyan.db"), bytes.Repeat([]byte{0xAB}, 8192), 0o600)
	notDir := filepath.Join(tmp, "file")
	os.WriteFile(notDir, []byte("x"), 0o600)

	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown command", []string{"fly"}, 2, `unknown command "fly"`},
		{"unknown flag", []string{"up", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{"bad duration", []string{"peer", "--duration", "soon"}, 2, "invalid value"},
		{"peer negative upload ceiling", []string{"peer", "--stream", "demo", "--max-upload-mbps", "-1"}, 2, "--max-upload-mbps must be"},
		{"corrupt data dir", []string{"up", "--data", corrupt, "--http", "127.0.0.1:0"}, 1, "cannot use data dir"},
		{"data dir is a file", []string{"up", "--data", notDir, "--http", "127.0.0.1:0"}, 1, "cannot use data dir"},
		{"key without action", []string{"key"}, 2, "missing action"},
		{"key unknown action", []string{"key", "burn", "x"}, 2, "unknown action"},
		{"ingest without a name", []string{"ingest"}, 2, "one stream NAME is required"},
		{"ingest nobody answers", []string{"ingest", "demo", "--server", "http://127.0.0.1:1"}, 1, "ask http://127.0.0.1:1"},
		{"tracker without etcd", []string{"tracker", "--http", "127.0.0.1:0"}, 2, "--etcd is required"},
		{"tracker turn without secret", []string{"tracker", "--turn-url", "127.0.0.1:3478"}, 2, "needs --turn-secret"},
		{"seeder without id", []string{"seeder", "--tracker", "ws://127.0.0.1:1/ws"}, 2, "--id is required"},
		{"seeder bad tracker", []string{"seeder", "--id", "s1", "--tracker", "http://x/ws"}, 2, "--tracker must be"},
		{"seeder missing CA file", []string{"seeder", "--id", "s1", "--tracker", "wss://127.0.0.1:1/ws", "--ca", "/nonexistent/ca.pem"}, 2, "--ca:"},
		{"seeder etcd unreachable", []string{"seeder", "--id", "s1", "--tracker", "ws://127.0.0.1:1/ws", "--etcd", "http://127.0.0.1:1"}, 1, "open the store"},
		{"seeder rtmps without certificate", []string{"seeder", "--id", "s1", "--tracker", "ws://127.0.0.1:1/ws", "--rtmps", ":1936"}, 2, "--rtmps needs a certificate"},
		{"tracker missing certificate file", []string{"tracker", "--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"}, 1, "--tls-cert"},
		{"seeder-key without action", []string{"seeder-key", "eu1"}, 2, "want create ID or revoke ID"},
		{"seeder-key bad id", []string{"seeder-key", "create", "Bad Id"}, 2, "ID: 1-64"},
		{"seeder-key without etcd", []string{"seeder-key", "create", "eu1"}, 2, "--etcd is required"},
		{"etcd-role unknown role", []string{"etcd-role", "viewer"}, 2, "want tracker, or seeder ID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, code := cli(t, c.args...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d stderr %q; want exit %d containing %q", code, stderr, c.code, c.want)
			}
			if strings.Contains(stderr, "goroutine ") || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
				t.Fatalf("want a one-line error, got:\n%s", stderr)
			}
		})
	}

	t.Run("port in use", func(t *testing.T) {
		p := startUp(t, filepath.Join(tmp, "a"))
		port := strings.TrimPrefix(p.base, "http://")
		_, stderr, code := cli(t, "up", "--data", filepath.Join(tmp, "b"), "--http", port)
		if code != 1 || !strings.Contains(stderr, "address already in use") {
			t.Fatalf("exit %d %q", code, stderr)
		}
		p.stop(t, os.Interrupt)
	})

	t.Run("env twin", func(t *testing.T) {
		cmd := exec.Command(banyanBin, "up", "--http", "127.0.0.1:0")
		cmd.Env = append(cleanEnv(), "BANYAN_DATA="+notDir)
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), "cannot use data dir "+notDir) {
			t.Fatalf("BANYAN_DATA not honoured: %s", out)
		}
	})

	for _, sub := range []string{"up", "key", "ingest", "tracker", "seeder", "turn", "peer", "bench"} {
		out, _, code := cli(t, sub, "--help")
		if code != 0 || !strings.Contains(out, "Usage: banyan "+sub) {
			t.Errorf("%s --help: exit %d\n%s", sub, code, out)
		}
		if sub != "bench" && !strings.Contains(out, "env BANYAN_") {
			t.Errorf("%s --help does not document environment variables", sub)
		}
		if sub == "peer" && !strings.Contains(out, "--max-upload-mbps") {
			t.Errorf("peer --help does not show the upload ceiling")
		}
	}
}
