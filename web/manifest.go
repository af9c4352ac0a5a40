package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
)

// ManifestFile is the name of the build manifest in the assets directory.
const ManifestFile = "manifest.json"

// Logical names of the built assets.
const (
	AssetWasm = "peer.wasm"    // the viewer, GOOS=js GOARCH=wasm
	AssetExec = "wasm_exec.js" // Go's loader, from the toolchain that built the wasm
)

// ManifestVersion is the manifest format this package reads.
const ManifestVersion = 1

// Manifest describes the browser assets the build helper
// (internal/webbuild) wrote: each is stored only compressed (gzip, and
// brotli for browsers that accept it), under a name that carries a hash of
// its content, so it can be cached forever.
type Manifest struct {
	Version   int              `json:"version"`
	GoVersion string           `json:"go_version,omitempty"`
	Assets    map[string]Asset `json:"assets"` // by logical name
}

// Asset is one built file.
type Asset struct {
	// File is the content-hashed name served under /static/, for example
	// "peer.0123456789abcdef.wasm".
	File string `json:"file"`
	// Gzip is the stored file: File + ".gz", gzip level 9.
	Gzip string `json:"gzip"`
	// Brotli is the brotli copy, File + ".br" (quality 11), served to
	// browsers that accept br; empty in builds that made none.
	Brotli     string `json:"brotli,omitempty"`
	Type       string `json:"type"` // Content-Type
	Size       int64  `json:"size"` // uncompressed
	GzipSize   int64  `json:"gzip_size"`
	BrotliSize int64  `json:"brotli_size,omitempty"`
	SHA256     string `json:"sha256"` // hex, of the uncompressed bytes
}

// maxManifest bounds the manifest read.
const maxManifest = 64 << 10

var (
	hashedRE = regexp.MustCompile(`^[a-z0-9_]+\.[0-9a-f]{16}\.(wasm|js)$`)
	shaRE    = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// HashedName returns the content-hashed file name for a logical name and
// its SHA-256 (hex): "peer.wasm" → "peer.<first 16 hex digits>.wasm".
func HashedName(logical, sha256hex string) string {
	base, ext := logical, ""
	for i := len(logical) - 1; i >= 0; i-- {
		if logical[i] == '.' {
			base, ext = logical[:i], logical[i:]
			break
		}
	}
	return base + "." + sha256hex[:16] + ext
}

// ParseManifest decodes and checks a manifest: every asset must have a
// hashed name that matches its hash, so a bad manifest cannot point the
// server at other files.
func ParseManifest(b []byte) (*Manifest, error) {
	if len(b) > maxManifest {
		return nil, errors.New("web: manifest too large")
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("web: manifest: %w", err)
	}
	if m.Version != ManifestVersion {
		return nil, fmt.Errorf("web: manifest version %d, want %d", m.Version, ManifestVersion)
	}
	for name, a := range m.Assets {
		if !shaRE.MatchString(a.SHA256) || !hashedRE.MatchString(a.File) || a.File != HashedName(name, a.SHA256) {
			return nil, fmt.Errorf("web: manifest: asset %q: bad file name or hash", name)
		}
		if a.Gzip != a.File+".gz" || a.Size < 0 || a.GzipSize <= 0 || a.Type == "" {
			return nil, fmt.Errorf("web: manifest: asset %q: bad gzip entry, size or type", name)
		}
		if (a.Brotli != "" || a.BrotliSize != 0) && (a.Brotli != a.File+".br" || a.BrotliSize <= 0) {
			return nil, fmt.Errorf("web: manifest: asset %q: bad brotli entry", name)
		}
	}
	for _, need := range []string{AssetWasm, AssetExec} {
		if _, ok := m.Assets[need]; !ok {
			return nil, fmt.Errorf("web: manifest lacks %s", need)
		}
	}
	return &m, nil
}
