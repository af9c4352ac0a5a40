// Command wasmsize breaks a Go js/wasm binary down by what takes the
// bytes: the size of each section, and the code of each package (from the
// function bodies and the names in the "name" section, so build without
// -s for the package table). docs/wasm-size.md was made with it:
//
//	GOOS=js GOARCH=wasm go build -trimpath -o /tmp/peer.wasm ./wasm
//	go run ./internal/wasmsize [-top 40] /tmp/peer.wasm
package main

import (
	"cmp"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"slices"
	"strings"
)

func main() {
	top := flag.Int("top", 40, "packages to list")
	funcs := flag.Int("funcs", 0, "also list this many largest functions")
	pkg := flag.String("pkg", "", "with -funcs: only functions of packages starting with this")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("wasmsize: ")
	if flag.NArg() != 1 {
		log.Fatal("usage: wasmsize [-top N] FILE.wasm")
	}
	b, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		log.Fatal(err)
	}
	m, err := parse(b)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d bytes: code %d (%d functions), data %d, names %d, other %d\n",
		len(b), m.code, len(m.bodies), m.data, m.names, len(b)-m.code-m.data-m.names)
	pk := m.byPackage()
	if len(m.funcNames) == 0 {
		fmt.Println("no name section (built with -s): no package table")
		return
	}
	fmt.Println("code by package:")
	for i, p := range pk {
		if i == *top {
			break
		}
		fmt.Printf("  %8d  %5.1f %%  %s\n", p.size, 100*float64(p.size)/float64(m.code), p.name)
	}
	if *funcs > 0 {
		fmt.Println("largest functions:")
		for i, f := range m.largest(*pkg) {
			if i == *funcs {
				break
			}
			fmt.Printf("  %8d  %s\n", f.size, f.name)
		}
	}
}

// module is what parse reads from a wasm binary.
type module struct {
	code, data, names int
	imports           int      // imported functions come first in the index space
	bodies            []int    // size of each function body
	funcNames         []string // by function index, where named
}

var errShort = errors.New("truncated")

// reader reads LEB128 numbers and byte strings, failing on truncation.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uint() int {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > uint64(len(r.b)+1<<31) {
		r.err = errShort
		return 0
	}
	r.b = r.b[n:]
	return int(v)
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.err = errShort
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) byte() byte {
	if b := r.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

// parse reads the sections of a wasm binary.
func parse(b []byte) (*module, error) {
	if len(b) < 8 || string(b[:4]) != "\x00asm" {
		return nil, errors.New("not a wasm binary")
	}
	m := &module{}
	r := &reader{b: b[8:]}
	for len(r.b) > 0 && r.err == nil {
		id := r.byte()
		sec := &reader{b: r.bytes(r.uint())}
		size := len(sec.b)
		switch id {
		case 2: // imports
			for n := sec.uint(); n > 0 && sec.err == nil; n-- {
				sec.bytes(sec.uint()) // module
				sec.bytes(sec.uint()) // name
				switch sec.byte() {
				case 0: // function: type index
					sec.uint()
					m.imports++
				case 1: // table: reftype, limits
					sec.byte()
					limits(sec)
				case 2: // memory
					limits(sec)
				case 3: // global: type, mutability
					sec.byte()
					sec.byte()
				default:
					sec.err = errors.New("unknown import kind")
				}
			}
		case 10: // code
			m.code = size
			for n := sec.uint(); n > 0 && sec.err == nil; n-- {
				l := sec.uint()
				sec.bytes(l)
				m.bodies = append(m.bodies, l)
			}
		case 11:
			m.data = size
		case 0: // custom
			if string(sec.bytes(sec.uint())) == "name" {
				m.names = size
				m.readNames(sec)
			}
		}
		if sec.err != nil {
			return nil, fmt.Errorf("section %d: %w", id, sec.err)
		}
	}
	return m, r.err
}

func limits(r *reader) {
	if r.byte()&1 != 0 {
		r.uint()
	}
	r.uint()
}

// readNames reads the function names subsection of a "name" section.
func (m *module) readNames(r *reader) {
	for len(r.b) > 0 && r.err == nil {
		id := r.byte()
		sub := &reader{b: r.bytes(r.uint())}
		if id != 1 {
			continue
		}
		for n := sub.uint(); n > 0 && sub.err == nil; n-- {
			idx := sub.uint()
			name := string(sub.bytes(sub.uint()))
			if sub.err == nil && idx < 1<<24 {
				if idx >= len(m.funcNames) {
					m.funcNames = append(m.funcNames, make([]string, idx+1-len(m.funcNames))...)
				}
				m.funcNames[idx] = name
			}
		}
		r.err = sub.err
	}
}

type pkgSize struct {
	name string
	size int
}

// byPackage sums the function bodies by package, largest first.
func (m *module) byPackage() []pkgSize {
	sum := map[string]int{}
	for i, size := range m.bodies {
		name := ""
		if j := m.imports + i; j < len(m.funcNames) {
			name = m.funcNames[j]
		}
		sum[packageOf(name)] += size
	}
	out := make([]pkgSize, 0, len(sum))
	for k, v := range sum {
		out = append(out, pkgSize{k, v})
	}
	slices.SortFunc(out, func(a, b pkgSize) int { return cmp.Or(b.size-a.size, strings.Compare(a.name, b.name)) })
	return out
}

// largest lists the functions of the packages starting with prefix (all
// when empty), largest first: what to read when a package is large.
func (m *module) largest(prefix string) []pkgSize {
	var out []pkgSize
	for i, size := range m.bodies {
		name := ""
		if j := m.imports + i; j < len(m.funcNames) {
			name = m.funcNames[j]
		}
		if strings.HasPrefix(packageOf(name), prefix) {
			out = append(out, pkgSize{name, size})
		}
	}
	slices.SortFunc(out, func(a, b pkgSize) int { return cmp.Or(b.size-a.size, strings.Compare(a.name, b.name)) })
	return out
}

// packageOf is the package of a function as the Go linker names it in
// the wasm name section: "/" is written "_", so "net/url.Parse" is
// "net_url.Parse" and "github.com/a/b.F" is "github.com_a_b.F" (a "-" too
// becomes "_", and reads back as "/" here); generated
// equality functions are "type_.eq.…".
func packageOf(name string) string {
	if name == "" {
		return "(unnamed)"
	}
	if strings.HasPrefix(name, "type_.") {
		return "(generated type functions)"
	}
	skip := 0
	for _, d := range []string{"github.com_", "golang.org_", "google.golang.org_", "gopkg.in_"} {
		if strings.HasPrefix(name, d) {
			skip = len(d)
		}
	}
	if dot := strings.IndexByte(name[skip:], '.'); dot >= 0 {
		name = name[:skip+dot]
	}
	return strings.ReplaceAll(name, "_", "/")
}
