package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestPackageOf(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"runtime.mallocgc", "runtime"},
		{"net_url.Parse", "net/url"},
		{"github.com_banyan_live_banyan_peer_rtc.__Link_.Send", "github.com/banyan/live/banyan/peer/rtc"},
		{"encoding_json.__decodeState_.object", "encoding/json"},
		{"type_.eq.main.Config", "(generated type functions)"},
		{"", "(unnamed)"},
		{"wasm_export_run", "wasm/export/run"},
	} {
		if got := packageOf(tc.in); got != tc.want {
			t.Errorf("packageOf(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestParseBuilt reads a real js/wasm build: every function has a body
// and a name, and the sizes add up.
func TestParseBuilt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a wasm binary")
	}
	out := filepath.Join(t.TempDir(), "hello.wasm")
	cmd := exec.Command("go", "build", "-o", out, "../webbuild/testdata/hello")
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	m, err := parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.bodies) == 0 || m.code == 0 || m.data == 0 || m.names == 0 || m.code+m.data+m.names > len(b) {
		t.Fatalf("parsed %+v of %d bytes", m, len(b))
	}
	total, found := 0, false
	for _, p := range m.byPackage() {
		total += p.size
		found = found || p.name == "runtime"
		if p.name == "(unnamed)" {
			t.Errorf("%d bytes of functions without a name", p.size)
		}
	}
	if !found || total > m.code {
		t.Fatalf("packages: runtime found %v, %d bytes of %d", found, total, m.code)
	}
	// -funcs: the functions of runtime and runtime/..., largest first.
	fs := m.largest("runtime")
	if len(fs) == 0 {
		t.Fatal("no runtime functions")
	}
	for i, f := range fs {
		if !strings.HasPrefix(packageOf(f.name), "runtime") || i > 0 && f.size > fs[i-1].size {
			t.Fatalf("largest: %v after %v", f, fs[max(i-1, 0)])
		}
	}
}

// FuzzParse: any input gives a module or an error, never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x0a\x05\x01\x03\x00\x01\x0b"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x00\x0a\x04name\x01\x03\x01\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := parse(b); err == nil {
			m.byPackage()
		}
	})
}
