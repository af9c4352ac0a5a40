// Package e2e holds what end-to-end tests share: finding the real tools
// they drive (ffmpeg, ffprobe, chromium) and the BANYAN_E2E rule.
package e2e

import (
	"os"
	"os/exec"
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
		t.Fatalf("%s not found but BANYAN_E2E=1: install it (apt-get install %s)", tool, tool)
	}
	t.Skipf("skipping: %s not installed", tool)
	return ""
}
