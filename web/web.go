// Package web holds the pages Banyan serves (viewer, browser publisher,
// dashboard) and their assets, embedded into the binary, and serves the
// browser viewer's built WebAssembly.
//
// The viewer's wasm and Go's wasm_exec.js are built by `make wasm` (go run
// ./internal/webbuild) into web/dist, compressed with gzip and brotli, under
// content-hashed names listed in dist/manifest.json; they are served with a
// one-year immutable cache lifetime, as br to browsers that accept it (all
// current ones do over HTTPS and on localhost), else gzip, else inflated. A binary built without them (a clean clone
// built with plain `go build`) still serves every page; the viewer then
// says the wasm is not built, and /static/peer.wasm answers 404 with the
// same message.
//
// Embedding the viewer in any page:
//
//	<script src="https://HOST/static/banyan-player.js"></script>
//	<banyan-player stream="demo"></banyan-player>
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/banyan-live/banyan/protocol"
)

//go:embed static
var static embed.FS

//go:embed dist
var dist embed.FS

var pages = template.Must(template.ParseFS(static, "static/*.html"))

// immutable is the cache policy of content-hashed files.
const immutable = "public, max-age=31536000, immutable"

// playerScript is the embedding script; the server fills in the asset
// names where it says assetsMarker.
const (
	playerScript = "banyan-player.js"
	assetsMarker = "/*BANYAN_ASSETS*/null"
)

// NotBuilt is the message for a binary built without the viewer's wasm.
const NotBuilt = "the browser viewer (peer.wasm) is not built into this binary: run `make wasm` (or `make build`) and rebuild banyan"

// Config configures NewHandler.
type Config struct {
	// Dist holds the built assets (manifest.json and the .gz files); nil
	// means the ones embedded at build time.
	Dist fs.FS
	// ConnectSrc, when set, lists more origins the pages may connect to
	// (content security policy connect-src), e.g. ws://t2.example.net:8080
	// and http://eu1.example.net:8081: a cluster's other trackers, which
	// the viewer is moved to, and its seeders' origins. Origins that are
	// not a plain scheme://host[:port] are left out.
	ConnectSrc func() []string
	// Stream, when set, says what the server knows of a stream: the watch
	// and publish pages of a stream it does not know answer 404 (the same
	// page, saying so), and the publish page says when the stream is
	// already live. Nil: every valid name is served as if it existed.
	Stream func(name string) StreamInfo
}

// StreamInfo is what the pages show of a stream.
type StreamInfo struct {
	Known bool   // it has an active key
	Live  bool   // a broadcaster publishes now
	Via   string // over what: "rtmp", "whip" (when Live)
	Demo  bool   // the demo stream `banyan up` made, its key in the banner
	// Advice is what the live broadcaster should change (a keyframe
	// interval that is too long), "" when nothing.
	Advice string
}

// Handler serves the pages, /static/ assets and the built viewer from the
// embedded files.
func Handler() http.Handler { return NewHandler(Config{}) }

// NewHandler serves the pages, /static/ assets and the built viewer.
func NewHandler(cfg Config) http.Handler {
	if cfg.Dist == nil {
		sub, _ := fs.Sub(dist, "dist")
		cfg.Dist = sub
	}
	h := &handler{files: loadAssets(cfg.Dist), connectSrc: cfg.ConnectSrc, stream: cfg.Stream}
	h.script, h.scriptETag = h.playerScript()
	sub, _ := fs.Sub(static, "static")
	h.staticFS = http.StripPrefix("/static/", http.FileServerFS(sub))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /static/{file...}", h.serveStatic)
	mux.HandleFunc("GET /{$}", h.page("index.html", false))
	mux.HandleFunc("GET /watch/{stream}", h.page("watch.html", true))
	mux.HandleFunc("GET /publish/{stream}", h.page("publish.html", true))
	mux.HandleFunc("GET /dashboard", h.page("dashboard.html", false))
	return mux
}

type handler struct {
	connectSrc func() []string
	stream     func(string) StreamInfo
	files      *assets
	staticFS   http.Handler
	script     []byte
	scriptETag string
}

// pageData is what the page templates see.
type pageData struct {
	Stream string
	// Ready says the viewer is built; Wasm is its URL, for a preload.
	Ready bool
	Wasm  string
	// Info is what the server knows of the stream; Missing says it knows
	// it does not exist.
	Info    StreamInfo
	Missing bool
}

func (h *handler) page(name string, needStream bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		stream := r.PathValue("stream")
		if needStream && !protocol.ValidStream(stream) {
			http.Error(w, "invalid stream name", http.StatusBadRequest)
			return
		}
		data := pageData{Stream: stream, Ready: h.files.ok()}
		if data.Ready {
			data.Wasm = "/static/" + h.files.m.Assets[AssetWasm].File
		}
		status := http.StatusOK
		if needStream && h.stream != nil {
			data.Info = h.stream(stream)
			if !data.Info.Known {
				data.Missing, status = true, http.StatusNotFound
			}
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; media-src 'self' blob:; connect-src 'self'"+h.extraConnect())
		w.WriteHeader(status)
		_ = pages.ExecuteTemplate(w, name, data)
	}
}

func (h *handler) serveStatic(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	switch {
	case file == playerScript:
		h.servePlayerScript(w, r)
		return
	case h.files.ok():
		if a, ok := h.files.byFile[file]; ok {
			h.files.serve(w, r, a, immutable)
			return
		}
		if a, ok := h.files.m.Assets[file]; ok {
			// The unhashed name, for tools and curl: current, not cached.
			h.files.serve(w, r, a, "no-cache")
			return
		}
	}
	if file == AssetWasm || file == AssetExec || hashedRE.MatchString(file) {
		msg := NotBuilt
		if h.files.ok() {
			msg = "no such build of " + file + " (the page is older than this server: reload it)"
		} else if h.files.err != nil {
			msg = h.files.err.Error()
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, msg, http.StatusNotFound)
		return
	}
	h.staticFS.ServeHTTP(w, r)
}

// playerScript renders banyan-player.js with the asset names (relative to
// the script's own URL, so a page on another site can embed it).
func (h *handler) playerScript() ([]byte, string) {
	src, err := static.ReadFile("static/" + playerScript)
	if err != nil {
		panic("web: " + playerScript + " missing from the embedded files")
	}
	var assets any
	if h.files.ok() {
		assets = map[string]string{
			"wasm": h.files.m.Assets[AssetWasm].File,
			"exec": h.files.m.Assets[AssetExec].File,
		}
	} else {
		reason := NotBuilt
		if h.files.err != nil && !errors.Is(h.files.err, fs.ErrNotExist) {
			reason = h.files.err.Error()
		}
		assets = map[string]string{"error": reason}
	}
	js, _ := json.Marshal(assets)
	out := bytes.Replace(src, []byte(assetsMarker), js, 1)
	sum := sha256.Sum256(out)
	return out, `"` + hex.EncodeToString(sum[:8]) + `"`
}

func (h *handler) servePlayerScript(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Type", "text/javascript; charset=utf-8")
	// Small and it names the current build: revalidate every time.
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", h.scriptETag)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Access-Control-Allow-Origin", "*")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(h.script))
}

// assets is the loaded build.
type assets struct {
	m      *Manifest
	byFile map[string]Asset
	gz     map[string][]byte // by hashed file name
	br     map[string][]byte // by hashed file name, where the build made one
	err    error             // why there is no build

	rawMu sync.Mutex
	raw   map[string][]byte // decompressed on demand, for clients without gzip
}

func (a *assets) ok() bool { return a.err == nil }

func loadAssets(fsys fs.FS) *assets {
	a := &assets{byFile: map[string]Asset{}, gz: map[string][]byte{}, br: map[string][]byte{}, raw: map[string][]byte{}}
	b, err := fs.ReadFile(fsys, ManifestFile)
	if err != nil {
		a.err = fmt.Errorf("%s (%w)", NotBuilt, err)
		if errors.Is(err, fs.ErrNotExist) {
			a.err = fmt.Errorf("%s: %w", NotBuilt, fs.ErrNotExist)
		}
		return a
	}
	m, err := ParseManifest(b)
	if err != nil {
		a.err = err
		return a
	}
	for _, as := range m.Assets {
		data, err := fs.ReadFile(fsys, as.Gzip)
		if err != nil || int64(len(data)) != as.GzipSize {
			a.err = fmt.Errorf("web: built asset %s missing or truncated; run `make wasm`", as.Gzip)
			return a
		}
		a.byFile[as.File] = as
		a.gz[as.File] = data
		if as.Brotli != "" {
			data, err := fs.ReadFile(fsys, as.Brotli)
			if err != nil || int64(len(data)) != as.BrotliSize {
				a.err = fmt.Errorf("web: built asset %s missing or truncated; run `make wasm`", as.Brotli)
				return a
			}
			a.br[as.File] = data
		}
	}
	a.m = m
	return a
}

func (a *assets) serve(w http.ResponseWriter, r *http.Request, as Asset, cache string) {
	hd := w.Header()
	hd.Set("Content-Type", as.Type)
	hd.Set("Cache-Control", cache)
	hd.Set("Vary", "Accept-Encoding")
	hd.Set("X-Content-Type-Options", "nosniff")
	// Other sites may embed the player, which fetches the wasm with CORS.
	hd.Set("Access-Control-Allow-Origin", "*")
	// The smallest copy the browser accepts: brotli, else gzip. Each
	// encoding has its own ETag, as the bytes differ.
	accept := r.Header.Values("Accept-Encoding")
	for _, enc := range []struct {
		name, tag string
		data      []byte
		ok        func([]string) bool
	}{
		{"br", "-br", a.br[as.File], AcceptsBrotli},
		{"gzip", "-gz", a.gz[as.File], AcceptsGzip},
	} {
		if enc.data == nil || !enc.ok(accept) {
			continue
		}
		hd.Set("Content-Encoding", enc.name)
		hd.Set("ETag", `"`+as.SHA256[:16]+enc.tag+`"`)
		if r.Header.Get("Range") == "" {
			// ServeContent leaves the length out for encoded content.
			hd.Set("Content-Length", strconv.Itoa(len(enc.data)))
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(enc.data))
		return
	}
	raw, err := a.uncompressed(as)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	hd.Set("ETag", `"`+as.SHA256[:16]+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(raw))
}

// uncompressed inflates an asset once and checks it against its hash.
func (a *assets) uncompressed(as Asset) ([]byte, error) {
	a.rawMu.Lock()
	defer a.rawMu.Unlock()
	if b, ok := a.raw[as.File]; ok {
		return b, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(a.gz[as.File]))
	if err != nil {
		return nil, fmt.Errorf("web: %s: %w", as.Gzip, err)
	}
	b, err := io.ReadAll(io.LimitReader(zr, as.Size+1))
	if err != nil {
		return nil, fmt.Errorf("web: %s: %w", as.Gzip, err)
	}
	sum := sha256.Sum256(b)
	if int64(len(b)) != as.Size || hex.EncodeToString(sum[:]) != as.SHA256 {
		return nil, fmt.Errorf("web: %s does not match its hash", as.Gzip)
	}
	a.raw[as.File] = b
	return b, nil
}

// AcceptsGzip reports whether Accept-Encoding header values allow gzip:
// named with a q above 0, or covered by "*" with a q above 0.
func AcceptsGzip(values []string) bool { return accepts(values, "gzip", "x-gzip") }

// AcceptsBrotli reports whether Accept-Encoding header values allow br,
// by the same rules as AcceptsGzip.
func AcceptsBrotli(values []string) bool { return accepts(values, "br") }

// accepts reports whether Accept-Encoding header values allow the coding
// known by names.
func accepts(values []string, names ...string) bool {
	named, star := -1.0, -1.0
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(part, ";")
			q := 1.0
			for p := range strings.SplitSeq(params, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
					if err != nil || f < 0 || f > 1 {
						f = 0
					}
					q = f
				}
			}
			name = strings.ToLower(strings.TrimSpace(name))
			switch {
			case slices.Contains(names, name):
				named = max(named, q)
			case name == "*":
				star = max(star, q)
			}
		}
	}
	if named >= 0 {
		return named > 0
	}
	return star > 0
}

// extraConnect is Config.ConnectSrc as CSP sources, each a plain
// scheme://host[:port] (anything else could inject a directive).
func (h *handler) extraConnect() string {
	if h.connectSrc == nil {
		return ""
	}
	var b strings.Builder
	for _, src := range h.connectSrc() {
		u, err := url.Parse(src)
		if err != nil || u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" ||
			!slices.Contains([]string{"ws", "wss", "http", "https"}, u.Scheme) || strings.ContainsAny(src, " ;,'\"\t\r\n") {
			continue
		}
		b.WriteString(" " + u.Scheme + "://" + u.Host)
	}
	return b.String()
}
