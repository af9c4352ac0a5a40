// Package etcdtest starts real etcd servers for tests, each as its own
// process on loopback: the embedded server of the client's version
// (./embedetcd, built with the go tool on first use) and Debian's
// etcd-server (/usr/bin/etcd, 3.4), when installed.
package etcdtest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banyan-live/banyan/internal/e2e"
)

// Kind names an etcd server build.
type Kind string

const (
	// Embedded is go.etcd.io/etcd/server/v3/embed at the version go.mod
	// pins (the client's).
	Embedded Kind = "embedded"
	// Debian is the distribution's etcd-server package.
	Debian Kind = "debian"
)

// Server is a running etcd.
type Server struct {
	// Endpoint is the client URL, http://127.0.0.1:PORT.
	Endpoint string
	kind     Kind
	argv     []string // its command line, to start it again
	stderr   *lockedWriter
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	done     chan struct{}
	ready    chan struct{}
}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// embedBinary builds ./embedetcd once per test process.
func embedBinary() (string, error) {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "embedetcd-")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(dir, "embedetcd")
		out, err := exec.Command("go", "build", "-o", buildBin, "github.com/banyan-live/banyan/internal/etcdtest/embedetcd").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build embedetcd: %v: %s", err, out)
		}
	})
	return buildBin, buildErr
}

// FreePort is e2e.FreePort.
func FreePort(t testing.TB) int { return e2e.FreePort(t) }

// StartTLS runs the embedded etcd serving clients over mutual TLS with
// the certificates of f; Endpoint is https://127.0.0.1:PORT.
func StartTLS(t testing.TB, f TLSFiles) *Server {
	t.Helper()
	return start(t, Embedded, "https", "--cert", f.ServerCert, "--key", f.ServerKey, "--ca", f.CA)
}

// Start runs an etcd of kind in its own process with a fresh data dir
// and stops it when the test ends. Debian's is skipped when not
// installed (it fails under BANYAN_E2E=1, where CI installs it).
func Start(t testing.TB, kind Kind) *Server {
	t.Helper()
	return start(t, kind, "http")
}

// StartCluster runs n etcd servers of kind as one cluster on loopback,
// each in its own process with a fresh data dir, and stops them when the
// test ends. Kill or Stop some and a quorum goes; Restart brings them
// back on their data. Debian's is skipped as Start says.
func StartCluster(t testing.TB, kind Kind, n int) []*Server {
	t.Helper()
	servers := make([]*Server, n)
	names, peers := make([]string, n), make([]string, n)
	for i := range servers {
		names[i], peers[i] = fmt.Sprintf("m%d", i), fmt.Sprintf("http://127.0.0.1:%d", FreePort(t))
	}
	initial := make([]string, n)
	for i := range initial {
		initial[i] = names[i] + "=" + peers[i]
	}
	// All launched before any is waited for: a member serves only once a
	// quorum is up.
	for i := range servers {
		client := fmt.Sprintf("http://127.0.0.1:%d", FreePort(t))
		servers[i] = newServer(t, kind, names[i], client, peers[i], strings.Join(initial, ","))
		servers[i].launch(t)
	}
	for _, s := range servers {
		s.waitReady(t)
	}
	return servers
}

func start(t testing.TB, kind Kind, scheme string, extra ...string) *Server {
	t.Helper()
	client := fmt.Sprintf("%s://127.0.0.1:%d", scheme, FreePort(t))
	peer := fmt.Sprintf("http://127.0.0.1:%d", FreePort(t))
	s := newServer(t, kind, "test", client, peer, "test="+peer, extra...)
	s.launch(t)
	s.waitReady(t)
	return s
}

// newServer makes the command line of a member name of the cluster
// initial (NAME=PEER_URL,...) on a fresh data dir; launch runs it.
func newServer(t testing.TB, kind Kind, name, client, peer, initial string, extra ...string) *Server {
	t.Helper()
	data := t.TempDir()
	var argv []string
	switch kind {
	case Embedded:
		bin, err := embedBinary()
		if err != nil {
			t.Fatal(err)
		}
		argv = append([]string{bin, "--data", data, "--client", client, "--peer", peer,
			"--name", name, "--initial-cluster", initial}, extra...)
	case Debian:
		bin := e2e.Require(t, "etcd")
		argv = []string{bin, "--name", name, "--data-dir", data,
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", initial, "--log-level", "error"}
	default:
		t.Fatalf("etcdtest: unknown kind %q", kind)
	}
	s := &Server{Endpoint: client, kind: kind, argv: argv, stderr: &lockedWriter{w: &strings.Builder{}}, done: make(chan struct{})}
	close(s.done) // not running yet
	t.Cleanup(s.Stop)
	return s
}

// launch starts the server's process.
func (s *Server) launch(t testing.TB) {
	t.Helper()
	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done, ready := make(chan struct{}), make(chan struct{})
	s.cmd, s.stdin, s.done, s.ready = cmd, stdin, done, ready
	go func() {
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ready ") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	go func() { cmd.Wait(); close(done) }()
}

// waitReady waits until the server serves, for at most 30 s.
func (s *Server) waitReady(t testing.TB) {
	t.Helper()
	if s.kind == Embedded {
		select {
		case <-s.ready:
		case <-s.done:
			t.Fatalf("embedded etcd exited: %s", s.stderr.String())
		case <-time.After(30 * time.Second):
			t.Fatal("embedded etcd not ready in 30 s")
		}
		return
	}
	// Debian's etcd prints nothing on stdout: wait for its health URL.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", strings.TrimPrefix(s.Endpoint, "http://"), time.Second); err == nil {
			c.Close()
			if healthy(s.Endpoint) {
				return
			}
		}
		select {
		case <-s.done:
			t.Fatalf("etcd exited: %s", s.stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("etcd not healthy in 30 s")
		}
	}
}

// Restart starts a stopped or killed server again on its data dir and
// waits until it serves (a cluster member: until a quorum is up again).
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	select {
	case <-s.done:
	default:
		t.Fatal("etcdtest: Restart of a running server")
	}
	s.launch(t)
	s.waitReady(t)
}

// Kill ends the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() {
	s.cmd.Process.Kill()
	<-s.done
}

// Stop ends the server if it still runs.
func (s *Server) Stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.stdin.Close()
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.Kill()
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w.Len() > 64<<10 {
		return len(p), nil // keep the head: the cause is there
	}
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

// healthy asks etcd's /health endpoint.
func healthy(endpoint string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(endpoint + "/health")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode == http.StatusOK && strings.Contains(string(b), `"true"`)
}
