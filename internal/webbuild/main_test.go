package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"

	"github.com/banyan-live/banyan/web"
)

func inflate(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWriteAssets(t *testing.T) {
	out := t.TempDir()
	wasm := bytes.Repeat([]byte("\x00asm wasm body "), 1000)
	execJS := []byte("globalThis.Go = class {};")
	// Leftovers: an older build (removed) and an unrelated file (kept).
	old := filepath.Join(out, "peer.0000000000000000.wasm.gz")
	oldBr := filepath.Join(out, "peer.0000000000000000.wasm.br")
	other := filepath.Join(out, "README.txt")
	for _, p := range []string{old, oldBr, other} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := writeAssets(out, "go1.26", map[string][]byte{web.AssetWasm: wasm, web.AssetExec: execJS})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{web.AssetWasm: wasm, web.AssetExec: execJS} {
		a := m.Assets[name]
		sum := sha256.Sum256(data)
		if a.SHA256 != hex.EncodeToString(sum[:]) || a.File != web.HashedName(name, a.SHA256) || a.Size != int64(len(data)) {
			t.Fatalf("%s: %+v", name, a)
		}
		gz, err := os.ReadFile(filepath.Join(out, a.Gzip))
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(gz)) != a.GzipSize || !bytes.Equal(inflate(t, gz), data) {
			t.Fatalf("%s: gzip copy does not round-trip", name)
		}
		br, err := os.ReadFile(filepath.Join(out, a.Brotli))
		if err != nil {
			t.Fatal(err)
		}
		if dec, err := io.ReadAll(brotli.NewReader(bytes.NewReader(br))); err != nil || int64(len(br)) != a.BrotliSize || !bytes.Equal(dec, data) {
			t.Fatalf("%s: brotli copy does not round-trip (%v)", name, err)
		}
	}
	if m.Assets[web.AssetWasm].GzipSize >= int64(len(wasm))/4 {
		t.Fatalf("level 9 gzip of a repetitive file is %d bytes of %d", m.Assets[web.AssetWasm].GzipSize, len(wasm))
	}
	if m.Assets[web.AssetExec].Type != "text/javascript; charset=utf-8" || m.Assets[web.AssetWasm].Type != "application/wasm" {
		t.Fatal("content types")
	}
	mb, err := os.ReadFile(filepath.Join(out, web.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	if back, err := web.ParseManifest(mb); err != nil || back.Assets[web.AssetWasm] != m.Assets[web.AssetWasm] {
		t.Fatalf("manifest read back: %v", err)
	}
	for _, p := range []string{old, oldBr} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("stale build %s not removed", p)
		}
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatal("unrelated file removed")
	}

	// Deterministic: the same input gives the same files, byte for byte.
	out2 := t.TempDir()
	m2, err := writeAssets(out2, "go1.26", map[string][]byte{web.AssetWasm: wasm, web.AssetExec: execJS})
	if err != nil {
		t.Fatal(err)
	}
	a1, _ := os.ReadFile(filepath.Join(out, m.Assets[web.AssetWasm].Gzip))
	a2, _ := os.ReadFile(filepath.Join(out2, m2.Assets[web.AssetWasm].Gzip))
	if !bytes.Equal(a1, a2) {
		t.Fatal("gzip output is not deterministic")
	}

	// The server serves what was written.
	h := web.NewHandler(web.Config{Dist: os.DirFS(out)})
	r := httptest.NewRequest("GET", "/static/"+m.Assets[web.AssetWasm].File, nil)
	r.Header.Set("Accept-Encoding", "gzip")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), a1) || w.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("served %d, %d bytes, %v", w.Code, w.Body.Len(), w.Header())
	}
}

// TestBudget: a wasm over the brotli budget fails the build with a clear
// error, one within it passes, 0 means no limit.
func TestBudget(t *testing.T) {
	m := &web.Manifest{Assets: map[string]web.Asset{web.AssetWasm: {Size: 4_000_000, BrotliSize: DefaultMaxBrotli + 1}}}
	err := checkBudget(m, DefaultMaxBrotli)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d bytes with brotli", DefaultMaxBrotli+1)) || !strings.Contains(err.Error(), "wasm-size.md") {
		t.Fatalf("over the budget: %v", err)
	}
	if err := checkBudget(m, 0); err != nil {
		t.Fatalf("no limit: %v", err)
	}
	m.Assets[web.AssetWasm] = web.Asset{BrotliSize: DefaultMaxBrotli}
	if err := checkBudget(m, DefaultMaxBrotli); err != nil {
		t.Fatalf("at the budget: %v", err)
	}
}

func TestFindWasmExec(t *testing.T) {
	p, err := findWasmExec(runtime.GOROOT())
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(filepath.Dir(p)) != "wasm" {
		t.Fatalf("found %s", p)
	}
	if _, err := findWasmExec(t.TempDir()); err == nil {
		t.Fatal("found wasm_exec.js in an empty GOROOT")
	}
}

// TestBuild runs the whole helper on a tiny js/wasm program.
func TestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a wasm binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := t.TempDir()
	m, err := build(ctx, options{out: out, pkg: "./testdata/hello", goCmd: "go", ldflags: "-s -w"})
	if err != nil {
		t.Fatal(err)
	}
	a := m.Assets[web.AssetWasm]
	gz, err := os.ReadFile(filepath.Join(out, a.Gzip))
	if err != nil {
		t.Fatal(err)
	}
	if raw := inflate(t, gz); !bytes.HasPrefix(raw, []byte("\x00asm")) {
		t.Fatal("not a wasm module")
	}
	exec := m.Assets[web.AssetExec]
	want, err := os.ReadFile(filepath.Join(runtime.GOROOT(), "lib", "wasm", "wasm_exec.js"))
	if err == nil {
		gz, _ := os.ReadFile(filepath.Join(out, exec.Gzip))
		if !bytes.Equal(inflate(t, gz), want) {
			t.Fatal("wasm_exec.js is not the toolchain's")
		}
	}
	if m.GoVersion != runtime.Version() {
		t.Logf("built with %s, test runs %s", m.GoVersion, runtime.Version())
	}
}
