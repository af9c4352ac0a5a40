// Package e2e holds what end-to-end tests share: finding the real tools
// they drive (ffmpeg, ffprobe, chromium) and the BANYAN_E2E rule.
package e2e

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Require returns the path of tool, or skips the test with a one-line
// notice naming it. Under BANYAN_E2E=1 (CI) a missing tool fails instead.
func Require(t testing.TB, tool string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err == nil {
		return path
	}
	if os.Getenv("BANYAN_E2E") == "1" {
		pkg := tool
		if p, ok := debianPackage[tool]; ok {
			pkg = p
		}
		t.Fatalf("%s not found but BANYAN_E2E=1: install it (apt-get install %s)", tool, pkg)
	}
	t.Skipf("skipping: %s not installed", tool)
	return ""
}

// debianPackage names the package of a tool whose name differs from it.
var debianPackage = map[string]string{
	"ffprobe":         "ffmpeg",
	"WebKitWebDriver": "webkit2gtk-driver",
	"Xvfb":            "xvfb",
	"etcd":            "etcd-server",
	"node":            "nodejs",
}

// Run runs a tool to completion and returns its standard output; a failure
// fails the test with the command line and what the tool printed.
func Run(t testing.TB, ctx context.Context, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// Lines splits tool output into its non-empty, trimmed lines.
func Lines(out []byte) []string {
	var ls []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			ls = append(ls, l)
		}
	}
	return ls
}

// SplitAnnexB cuts a whole Annex-B stream (as ffmpeg writes it) at its start
// codes; mediacommon's AnnexB.Unmarshal is for one access unit and caps the
// NALU count.
func SplitAnnexB(b []byte) [][]byte {
	var out [][]byte
	start := -1
	for i := 0; i+3 <= len(b); i++ {
		if b[i] != 0 || b[i+1] != 0 || b[i+2] != 1 {
			continue
		}
		if start >= 0 {
			end := i
			for end > start && b[end-1] == 0 {
				end--
			}
			out = append(out, b[start:end])
		}
		start = i + 3
		i += 2
	}
	if start >= 0 && start < len(b) {
		out = append(out, b[start:])
	}
	return out
}

// FreePort returns a loopback TCP port nothing listened on a moment ago,
// for a tool the test starts with a fixed port.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
