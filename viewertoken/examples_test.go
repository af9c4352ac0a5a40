package viewertoken

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/banyan-live/banyan/internal/e2e"
)

// TestMintExamples runs the Go and Node examples of docs/viewer-tokens.md
// and checks that Check accepts what they mint (and nothing for another
// stream), and that the document shows exactly the examples' code.
func TestMintExamples(t *testing.T) {
	dir := filepath.Join("..", "docs", "examples", "mint-viewer-token")
	doc, err := os.ReadFile(filepath.Join("..", "docs", "viewer-tokens.md"))
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	s64 := base64.RawURLEncoding.EncodeToString(secret)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, tc := range []struct {
		name, file string
		cmd        func() []string
	}{
		{"go", "main.go", func() []string {
			return []string{filepath.Join(runtime.GOROOT(), "bin", "go"), "run", "./" + filepath.ToSlash(dir)}
		}},
		{"node", "mint.mjs", func() []string { return []string{e2e.Require(t, "node"), filepath.Join(dir, "mint.mjs")} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join(dir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(doc), strings.TrimRight(string(src), "\n")) {
				t.Errorf("docs/viewer-tokens.md does not show %s as it is", tc.file)
			}
			argv := append(tc.cmd(), s64, "show", "600")
			tok := strings.TrimSpace(string(e2e.Run(t, ctx, argv[0], argv[1:]...)))
			exp, err := Check(secret, "show", tok, time.Now())
			if err != nil {
				t.Fatalf("%s minted %q: %v", tc.name, tok, err)
			}
			if d := time.Until(exp); d < 500*time.Second || d > 601*time.Second {
				t.Errorf("expiry %v from now, want about 600 s", d)
			}
			if _, err := Check(secret, "other", tok, time.Now()); err != ErrStream {
				t.Errorf("token for another stream: %v", err)
			}
		})
	}
}
