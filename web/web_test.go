package web_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/andybalholm/brotli"

	"github.com/banyan-live/banyan/web"
)

// builtFS is what the build helper writes, made by hand: the manifest and
// the gzip and brotli copies.
func builtFS(t testing.TB, files map[string][]byte) (fstest.MapFS, *web.Manifest) {
	return builtFSWith(t, files, true)
}

// builtFSWith makes the brotli copies only if withBrotli (builds before
// brotli had none).
func builtFSWith(t testing.TB, files map[string][]byte, withBrotli bool) (fstest.MapFS, *web.Manifest) {
	t.Helper()
	fsys := fstest.MapFS{}
	m := &web.Manifest{Version: web.ManifestVersion, Assets: map[string]web.Asset{}}
	for name, data := range files {
		sum := sha256.Sum256(data)
		hexSum := hex.EncodeToString(sum[:])
		file := web.HashedName(name, hexSum)
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		zw.Write(data)
		zw.Close()
		ctype := "application/wasm"
		if strings.HasSuffix(name, ".js") {
			ctype = "text/javascript; charset=utf-8"
		}
		a := web.Asset{File: file, Gzip: file + ".gz", Type: ctype, Size: int64(len(data)), GzipSize: int64(gz.Len()), SHA256: hexSum}
		fsys[file+".gz"] = &fstest.MapFile{Data: gz.Bytes()}
		if withBrotli {
			var br bytes.Buffer
			bw := brotli.NewWriterLevel(&br, brotli.BestCompression)
			bw.Write(data)
			bw.Close()
			a.Brotli, a.BrotliSize = file+".br", int64(br.Len())
			fsys[file+".br"] = &fstest.MapFile{Data: br.Bytes()}
		}
		m.Assets[name] = a
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	fsys[web.ManifestFile] = &fstest.MapFile{Data: b}
	return fsys, m
}

var (
	fakeWasm = append([]byte("\x00asm\x01\x00\x00\x00"), bytes.Repeat([]byte("banyan wasm "), 4000)...)
	fakeExec = []byte("\"use strict\";\nglobalThis.Go = class {};\n")
)

func get(t *testing.T, h http.Handler, method, path string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestServeBuiltAssets(t *testing.T) {
	fsys, m := builtFS(t, map[string][]byte{web.AssetWasm: fakeWasm, web.AssetExec: fakeExec})
	h := web.NewHandler(web.Config{Dist: fsys})
	wasm := m.Assets[web.AssetWasm]
	path := "/static/" + wasm.File

	// gzip to a client that takes it, with the immutable cache policy.
	w := get(t, h, "GET", path, "Accept-Encoding", "deflate, gzip;q=0.8")
	if w.Code != 200 {
		t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
	}
	hd := w.Header()
	if hd.Get("Content-Encoding") != "gzip" || hd.Get("Cache-Control") != "public, max-age=31536000, immutable" ||
		hd.Get("Content-Type") != "application/wasm" || !strings.Contains(hd.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("headers %v", hd)
	}
	if w.Body.Len() != int(wasm.GzipSize) || hd.Get("Content-Length") != strconv.FormatInt(wasm.GzipSize, 10) {
		t.Fatalf("gzip body %d bytes, manifest says %d", w.Body.Len(), wasm.GzipSize)
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(zr); !bytes.Equal(got, fakeWasm) {
		t.Fatal("gzip body does not inflate to the wasm")
	}
	etag := hd.Get("ETag")

	// Revalidation and HEAD.
	if w := get(t, h, "GET", path, "Accept-Encoding", "gzip", "If-None-Match", etag); w.Code != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d", w.Code)
	}
	if w := get(t, h, "HEAD", path, "Accept-Encoding", "gzip"); w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Length") != strconv.FormatInt(wasm.GzipSize, 10) {
		t.Fatalf("HEAD: %d %d %q", w.Code, w.Body.Len(), w.Header().Get("Content-Length"))
	}

	// Identity for clients without gzip, or refusing it.
	for _, ae := range []string{"", "identity", "gzip;q=0", "deflate, *;q=0", "br;q=0, gzip;q=0"} {
		w := get(t, h, "GET", path, "Accept-Encoding", ae)
		if w.Code != 200 || w.Header().Get("Content-Encoding") != "" || !bytes.Equal(w.Body.Bytes(), fakeWasm) {
			t.Fatalf("Accept-Encoding %q: %d %q, %d bytes", ae, w.Code, w.Header().Get("Content-Encoding"), w.Body.Len())
		}
	}

	// The unhashed name serves the current build, uncached.
	if w := get(t, h, "GET", "/static/peer.wasm", "Accept-Encoding", "gzip"); w.Code != 200 || w.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("/static/peer.wasm: %d %q", w.Code, w.Header().Get("Cache-Control"))
	}
	// A hash of another build is a clear 404.
	if w := get(t, h, "GET", "/static/peer.0123456789abcdef.wasm"); w.Code != 404 || !strings.Contains(w.Body.String(), "reload") {
		t.Fatalf("stale hash: %d %s", w.Code, w.Body)
	}

	// The embedding script names the build; the page preloads the wasm.
	w = get(t, h, "GET", "/static/banyan-player.js")
	js := w.Body.String()
	if w.Code != 200 || !strings.Contains(js, `"wasm":"`+wasm.File+`"`) || !strings.Contains(js, `"exec":"`+m.Assets[web.AssetExec].File+`"`) ||
		strings.Contains(js, "/*BANYAN_ASSETS*/") || w.Header().Get("Cache-Control") != "no-cache" || w.Header().Get("ETag") == "" {
		t.Fatalf("banyan-player.js: %d %v\n%.300s", w.Code, w.Header(), js)
	}
	w = get(t, h, "GET", "/watch/demo")
	page := w.Body.String()
	if w.Code != 200 || !strings.Contains(page, `<banyan-player stream="demo"`) || !strings.Contains(page, `href="/static/`+wasm.File+`"`) {
		t.Fatalf("watch page: %d\n%s", w.Code, page)
	}
	if strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Fatal("watch page names an external URL")
	}
}

// TestServeBrotli: a browser that accepts br gets the brotli copy, with
// the headers streaming compilation needs (WebAssembly.instantiateStreaming
// insists on Content-Type application/wasm) and caches must keep apart
// (Vary, an ETag per encoding); one that does not gets gzip; a build made
// before brotli is served as gzip to everyone.
func TestServeBrotli(t *testing.T) {
	fsys, m := builtFS(t, map[string][]byte{web.AssetWasm: fakeWasm, web.AssetExec: fakeExec})
	h := web.NewHandler(web.Config{Dist: fsys})
	wasm := m.Assets[web.AssetWasm]
	path := "/static/" + wasm.File
	decode := map[string]func(io.Reader) ([]byte, error){
		"br": func(r io.Reader) ([]byte, error) { return io.ReadAll(brotli.NewReader(r)) },
		"gzip": func(r io.Reader) ([]byte, error) {
			zr, err := gzip.NewReader(r)
			if err != nil {
				return nil, err
			}
			return io.ReadAll(zr)
		},
	}
	for _, tc := range []struct {
		accept, want string
		size         int64
	}{
		{"gzip, deflate, br, zstd", "br", wasm.BrotliSize}, // Chromium, Firefox over HTTPS
		{"br", "br", wasm.BrotliSize},
		{"gzip, deflate", "gzip", wasm.GzipSize}, // the same over plain HTTP
		{"br;q=0, gzip", "gzip", wasm.GzipSize},
		{"*", "br", wasm.BrotliSize},
	} {
		w := get(t, h, "GET", path, "Accept-Encoding", tc.accept)
		hd := w.Header()
		if w.Code != 200 || hd.Get("Content-Encoding") != tc.want || hd.Get("Content-Type") != "application/wasm" ||
			!strings.Contains(hd.Get("Vary"), "Accept-Encoding") || hd.Get("Content-Length") != strconv.FormatInt(tc.size, 10) {
			t.Fatalf("Accept-Encoding %q: %d %v", tc.accept, w.Code, hd)
		}
		etag := hd.Get("ETag")
		if !strings.HasSuffix(etag, map[string]string{"br": `-br"`, "gzip": `-gz"`}[tc.want]) {
			t.Fatalf("Accept-Encoding %q: ETag %s", tc.accept, etag)
		}
		got, err := decode[tc.want](w.Body)
		if err != nil || !bytes.Equal(got, fakeWasm) {
			t.Fatalf("Accept-Encoding %q: %s body does not decode to the wasm (%v)", tc.accept, tc.want, err)
		}
		if w := get(t, h, "GET", path, "Accept-Encoding", tc.accept, "If-None-Match", etag); w.Code != http.StatusNotModified {
			t.Fatalf("Accept-Encoding %q: If-None-Match: %d", tc.accept, w.Code)
		}
	}
	if wasm.BrotliSize >= wasm.GzipSize {
		t.Fatalf("brotli %d bytes, gzip %d", wasm.BrotliSize, wasm.GzipSize)
	}

	// A build without brotli copies: gzip even to a browser that takes br.
	fsys, m = builtFSWith(t, map[string][]byte{web.AssetWasm: fakeWasm, web.AssetExec: fakeExec}, false)
	h = web.NewHandler(web.Config{Dist: fsys})
	if w := get(t, h, "GET", "/static/"+m.Assets[web.AssetWasm].File, "Accept-Encoding", "gzip, br"); w.Code != 200 || w.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("gzip-only build: %d %v", w.Code, w.Header())
	}
	// A brotli copy the manifest names but the build lacks: not built.
	fsys, m = builtFS(t, map[string][]byte{web.AssetWasm: fakeWasm, web.AssetExec: fakeExec})
	delete(fsys, m.Assets[web.AssetWasm].Brotli)
	if w := get(t, web.NewHandler(web.Config{Dist: fsys}), "GET", "/static/peer.wasm"); w.Code != 404 || !strings.Contains(w.Body.String(), "make wasm") {
		t.Fatalf("missing .br: %d %s", w.Code, w.Body)
	}
}

func TestAcceptsBrotli(t *testing.T) {
	for _, tc := range []struct {
		h    []string
		want bool
	}{
		{nil, false},
		{[]string{"gzip, deflate"}, false},
		{[]string{"gzip, deflate, br, zstd"}, true},
		{[]string{"BR;q=0.5"}, true},
		{[]string{"br;q=0"}, false},
		{[]string{"*"}, true},
		{[]string{"br;q=0, *"}, false},
		{[]string{"brotli"}, false},
	} {
		if got := web.AcceptsBrotli(tc.h); got != tc.want {
			t.Errorf("AcceptsBrotli(%q) = %v, want %v", tc.h, got, tc.want)
		}
	}
}

func TestNotBuilt(t *testing.T) {
	h := web.NewHandler(web.Config{Dist: fstest.MapFS{"README.txt": &fstest.MapFile{Data: []byte("x")}}})
	for _, p := range []string{"/static/peer.wasm", "/static/wasm_exec.js", "/static/peer.0123456789abcdef.wasm"} {
		w := get(t, h, "GET", p)
		if w.Code != 404 || !strings.Contains(w.Body.String(), "not built") || !strings.Contains(w.Body.String(), "make wasm") {
			t.Fatalf("%s: %d %s", p, w.Code, w.Body)
		}
	}
	w := get(t, h, "GET", "/static/banyan-player.js")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `{"error":"the browser viewer (peer.wasm) is not built`) {
		t.Fatalf("banyan-player.js without a build: %d %.200s", w.Code, w.Body)
	}
	// Every page still works.
	for path, want := range map[string]int{"/": 200, "/watch/demo": 200, "/publish/demo": 200, "/dashboard": 200,
		"/watch/Not..Valid": 400, "/static/style.css": 200, "/static/nope.css": 404} {
		if w := get(t, h, "GET", path); w.Code != want {
			t.Fatalf("%s: %d, want %d", path, w.Code, want)
		}
	}
	if w := get(t, h, "GET", "/watch/demo"); strings.Contains(w.Body.String(), "preload") {
		t.Fatal("preload of a wasm that is not built")
	}
}

func TestBrokenBuild(t *testing.T) {
	fsys, m := builtFS(t, map[string][]byte{web.AssetWasm: fakeWasm, web.AssetExec: fakeExec})
	delete(fsys, m.Assets[web.AssetWasm].Gzip)
	h := web.NewHandler(web.Config{Dist: fsys})
	if w := get(t, h, "GET", "/static/"+m.Assets[web.AssetWasm].File); w.Code != 404 || !strings.Contains(w.Body.String(), "make wasm") {
		t.Fatalf("missing gzip file: %d %s", w.Code, w.Body)
	}
}

func TestDefaultHandler(t *testing.T) {
	// Whatever web/dist holds in this checkout, the pages work.
	h := web.Handler()
	for _, p := range []string{"/", "/watch/demo", "/static/banyan-player.js"} {
		if w := get(t, h, "GET", p); w.Code != 200 {
			t.Fatalf("%s: %d", p, w.Code)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		h    []string
		want bool
	}{
		{nil, false},
		{[]string{"gzip"}, true},
		{[]string{"GZIP"}, true},
		{[]string{"deflate, gzip;q=1.0, *;q=0.5"}, true},
		{[]string{"br"}, false},
		{[]string{"br", "gzip"}, true},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip; q=0.001"}, true},
		{[]string{"*"}, true},
		{[]string{"*;q=0"}, false},
		{[]string{"gzip;q=0, *"}, false},
		{[]string{"x-gzip"}, true},
		{[]string{"gzip;q=nonsense"}, false},
		{[]string{"gzip;q=2"}, false},
	} {
		if got := web.AcceptsGzip(tc.h); got != tc.want {
			t.Errorf("AcceptsGzip(%q) = %v, want %v", tc.h, got, tc.want)
		}
	}
}

func TestParseManifestRejects(t *testing.T) {
	_, good := builtFS(t, map[string][]byte{web.AssetWasm: fakeWasm, web.AssetExec: fakeExec})
	mutate := func(f func(m *web.Manifest)) []byte {
		b, _ := json.Marshal(good)
		var m web.Manifest
		json.Unmarshal(b, &m)
		f(&m)
		out, _ := json.Marshal(m)
		return out
	}
	b, _ := json.Marshal(good)
	if _, err := web.ParseManifest(b); err != nil {
		t.Fatalf("good manifest: %v", err)
	}
	asset := func(name string, f func(a *web.Asset)) []byte {
		return mutate(func(m *web.Manifest) {
			a := m.Assets[name]
			f(&a)
			m.Assets[name] = a
		})
	}
	for name, b := range map[string][]byte{
		"not json":    []byte("{"),
		"version":     mutate(func(m *web.Manifest) { m.Version = 2 }),
		"traversal":   asset(web.AssetWasm, func(a *web.Asset) { a.File = "../../etc/passwd" }),
		"wrong hash":  asset(web.AssetWasm, func(a *web.Asset) { a.SHA256 = strings.Repeat("0", 64) }),
		"upper hash":  asset(web.AssetWasm, func(a *web.Asset) { a.SHA256 = strings.ToUpper(a.SHA256) }),
		"gzip name":   asset(web.AssetWasm, func(a *web.Asset) { a.Gzip = "other.gz" }),
		"zero gzip":   asset(web.AssetWasm, func(a *web.Asset) { a.GzipSize = 0 }),
		"br name":     asset(web.AssetWasm, func(a *web.Asset) { a.Brotli = "../x.br" }),
		"zero br":     asset(web.AssetWasm, func(a *web.Asset) { a.BrotliSize = 0 }),
		"br no name":  asset(web.AssetExec, func(a *web.Asset) { a.Brotli = "" }),
		"no type":     asset(web.AssetExec, func(a *web.Asset) { a.Type = "" }),
		"no exec":     mutate(func(m *web.Manifest) { delete(m.Assets, web.AssetExec) }),
		"huge":        bytes.Repeat([]byte(" "), 1<<20),
		"empty":       []byte("{}"),
		"null assets": []byte(`{"version":1,"assets":null}`),
	} {
		if _, err := web.ParseManifest(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestHashedName(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	if got := web.HashedName("peer.wasm", sum); got != "peer.abababababababab.wasm" {
		t.Fatal(got)
	}
	if got := web.HashedName("wasm_exec.js", sum); got != "wasm_exec.abababababababab.js" {
		t.Fatal(got)
	}
}

func FuzzParseManifest(f *testing.F) {
	_, good := builtFS(f, map[string][]byte{web.AssetWasm: fakeWasm, web.AssetExec: fakeExec})
	b, _ := json.Marshal(good)
	f.Add(b)
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := web.ParseManifest(b)
		if err != nil {
			return
		}
		for name, a := range m.Assets {
			if a.File != web.HashedName(name, a.SHA256) || strings.ContainsAny(a.File, "/\\") {
				t.Fatalf("accepted asset %q → %q", name, a.File)
			}
		}
	})
}

func FuzzAcceptsGzip(f *testing.F) {
	f.Add("gzip, deflate, br;q=0.9, *;q=0")
	f.Fuzz(func(t *testing.T, s string) {
		_ = web.AcceptsGzip([]string{s})
		_ = web.AcceptsBrotli([]string{s})
	})
}
