// Command webbuild builds the browser viewer's assets for package web:
// the viewer compiled to WebAssembly and Go's wasm_exec.js from the same
// toolchain, each stored compressed under a content-hashed name, gzip
// (level 9) for every browser and brotli (quality 11, about 27 % smaller
// on the wasm) for those that accept br, plus the manifest.json the server
// reads. `make wasm` runs it:
//
//	go run ./internal/webbuild [-out web/dist] [-pkg ./wasm] [-max-brotli N]
//
// The wasm is built with GOOS=js GOARCH=wasm, -trimpath and -ldflags
// "-s -w". The build fails when the brotli wasm is over -max-brotli bytes
// (the download every new viewer waits for; docs/wasm-size.md). Files of
// earlier builds in the output directory are removed.
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/andybalholm/brotli"

	"github.com/banyan-live/banyan/web"
)

// DefaultMaxBrotli is the budget of the viewer's wasm as browsers
// download it, in bytes of brotli. Issue 17's target is 1.0 MB; the build
// is 0.96 MB (961,637 bytes) since the wasm links neither fmt nor net/url
// (1.048 MB before, 1.16 MB with encoding/json and log/slog, 1.55 MB with
// pion's js build), and what is left is the Go runtime, the chunk crypto
// and the viewer itself (docs/wasm-size.md). The budget sits 2.4 % above
// that and under the target, room for small changes, and fails the build
// on a regression the size of a dependency (fmt and net/url back would
// add about 0.08 MB, net/netip alone 0.02 MB).
const DefaultMaxBrotli = 985_000

func main() {
	var o options
	flag.StringVar(&o.out, "out", "web/dist", "output directory (embedded by package web)")
	flag.StringVar(&o.pkg, "pkg", "./wasm", "package of the viewer")
	flag.StringVar(&o.goCmd, "go", "go", "go command")
	flag.StringVar(&o.ldflags, "ldflags", "-s -w", "linker flags of the wasm build")
	flag.Int64Var(&o.maxBrotli, "max-brotli", DefaultMaxBrotli, "fail when the brotli wasm is larger (bytes; 0: no limit)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("webbuild: ")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	m, err := build(ctx, o)
	if err != nil {
		log.Fatal(err)
	}
	for _, name := range []string{web.AssetWasm, web.AssetExec} {
		a := m.Assets[name]
		log.Printf("%s → %s: %d bytes, gzip %d bytes, brotli %d bytes", name, filepath.Join(o.out, a.File), a.Size, a.GzipSize, a.BrotliSize)
	}
}

type options struct {
	out, pkg, goCmd, ldflags string
	dir                      string // working directory of the go commands ("" = current)
	maxBrotli                int64  // 0: no limit
}

// build compiles the viewer, copies wasm_exec.js and writes both with the
// manifest into o.out.
func build(ctx context.Context, o options) (*web.Manifest, error) {
	goroot, err := goEnv(ctx, o, "GOROOT")
	if err != nil {
		return nil, err
	}
	execJS, err := findWasmExec(goroot)
	if err != nil {
		return nil, err
	}
	execData, err := os.ReadFile(execJS)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", execJS, err)
	}
	goVersion, _ := goEnv(ctx, o, "GOVERSION")

	tmp, err := os.MkdirTemp("", "webbuild-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	wasmPath := filepath.Join(tmp, "peer.wasm")
	cmd := exec.CommandContext(ctx, o.goCmd, "build", "-trimpath", "-ldflags", o.ldflags, "-o", wasmPath, o.pkg)
	cmd.Dir = o.dir
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("GOOS=js GOARCH=wasm go build %s: %w\n%s", o.pkg, err, stderr.String())
	}
	wasmData, err := os.ReadFile(wasmPath)
	if err != nil {
		return nil, err
	}
	m, err := writeAssets(o.out, goVersion, map[string][]byte{
		web.AssetWasm: wasmData,
		web.AssetExec: execData,
	})
	if err != nil {
		return nil, err
	}
	if err := checkBudget(m, o.maxBrotli); err != nil {
		return m, err
	}
	return m, nil
}

// checkBudget fails when the brotli wasm is over max bytes (0: no limit).
func checkBudget(m *web.Manifest, max int64) error {
	a := m.Assets[web.AssetWasm]
	if max > 0 && a.BrotliSize > max {
		return fmt.Errorf("peer.wasm is %d bytes with brotli, over the budget of %d (%d raw): see docs/wasm-size.md for what takes the bytes", a.BrotliSize, max, a.Size)
	}
	return nil
}

// goEnv runs `go env NAME`.
func goEnv(ctx context.Context, o options, name string) (string, error) {
	cmd := exec.CommandContext(ctx, o.goCmd, "env", name)
	cmd.Dir = o.dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go env %s: %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// findWasmExec locates wasm_exec.js: lib/wasm since Go 1.24, misc/wasm
// before.
func findWasmExec(goroot string) (string, error) {
	for _, dir := range []string{"lib/wasm", "misc/wasm"} {
		p := filepath.Join(goroot, dir, "wasm_exec.js")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("wasm_exec.js not found under %s (lib/wasm or misc/wasm)", goroot)
}

// contentTypes of the assets, by extension.
var contentTypes = map[string]string{
	".wasm": "application/wasm",
	".js":   "text/javascript; charset=utf-8",
}

// writeAssets stores each file gzip- and brotli-compressed under its
// hashed name, writes the manifest last (so a reader never sees a manifest naming files
// that are not there yet), and removes files of earlier builds.
func writeAssets(out, goVersion string, files map[string][]byte) (*web.Manifest, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	m := &web.Manifest{Version: web.ManifestVersion, GoVersion: goVersion, Assets: map[string]web.Asset{}}
	keep := map[string]bool{web.ManifestFile: true}
	for name, data := range files {
		ctype := contentTypes[filepath.Ext(name)]
		if ctype == "" {
			return nil, fmt.Errorf("no content type for %s", name)
		}
		sum := sha256.Sum256(data)
		hexSum := hex.EncodeToString(sum[:])
		file := web.HashedName(name, hexSum)
		gz, err := gzipBytes(data)
		if err != nil {
			return nil, err
		}
		br, err := brotliBytes(data)
		if err != nil {
			return nil, err
		}
		if err := writeFile(filepath.Join(out, file+".gz"), gz); err != nil {
			return nil, err
		}
		if err := writeFile(filepath.Join(out, file+".br"), br); err != nil {
			return nil, err
		}
		keep[file+".gz"], keep[file+".br"] = true, true
		m.Assets[name] = web.Asset{
			File: file, Gzip: file + ".gz", Brotli: file + ".br", Type: ctype,
			Size: int64(len(data)), GzipSize: int64(len(gz)), BrotliSize: int64(len(br)), SHA256: hexSum,
		}
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if _, err := web.ParseManifest(b); err != nil {
		return nil, fmt.Errorf("the manifest we wrote does not parse: %w", err)
	}
	if err := writeFile(filepath.Join(out, web.ManifestFile), append(b, '\n')); err != nil {
		return nil, err
	}
	if err := removeStale(out, keep); err != nil {
		return nil, err
	}
	return m, nil
}

// staleRE matches the files a build writes, so nothing else is removed.
var staleRE = regexp.MustCompile(`^[a-z0-9_]+\.[0-9a-f]{16}\.(wasm|js)\.(gz|br)$`)

func removeStale(dir string, keep map[string]bool) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || keep[e.Name()] || !staleRE.MatchString(e.Name()) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// gzipBytes compresses at level 9. The header carries no name or time, so
// the same input always gives the same bytes.
func gzipBytes(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// brotliBytes compresses at quality 11 with the largest window browsers
// decode (16 MiB, lgwin 24): the output is the same for the same input.
func brotliBytes(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	bw := brotli.NewWriterOptions(&buf, brotli.WriterOptions{Quality: brotli.BestCompression, LGWin: 24})
	if _, err := bw.Write(data); err != nil {
		return nil, err
	}
	if err := bw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeFile writes atomically: a temporary file renamed into place.
func writeFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, werr := io.Copy(f, bytes.NewReader(data))
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), path)
}
