//go:build js

package chunk

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

// These run under Node (GOOS=js GOARCH=wasm go test ./chunk/ with
// $(go env GOROOT)/lib/wasm on PATH), whose crypto.subtle is WebCrypto as
// browsers have it.

// TestWebCryptoMatchesGo: the WebCrypto paths give the standard library's
// results, and a tampered chunk fails in both.
func TestWebCryptoMatchesGo(t *testing.T) {
	if web.off.Load() {
		t.Fatal("no usable crypto.subtle in this JavaScript engine")
	}
	f := newFixture(t)
	for _, n := range []int{0, webMin - 17, webMin, 64 << 10, 94 << 10, 1 << 20} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			sealed := f.seal(t, mediaHeader(3, uint64(n)+1), testPayload(n))
			if got, want := Sum256(sealed), sha256.Sum256(sealed); got != want {
				t.Fatalf("Sum256 %x, want %x", got, want)
			}
			body := len(sealed) - SignatureSize
			if got, want := prehash(testStream, sealed[:body]), digest(testStream, sealed[:body]); !bytes.Equal(got, want) {
				t.Fatalf("prehash %x, want %x", got, want)
			}
			_, pt, err := Open(f.pub, testStream, f.keys, sealed)
			if err != nil || !bytes.Equal(pt, testPayload(n)) {
				t.Fatalf("Open: %v (%d bytes, want %d)", err, len(pt), n)
			}
			// A flipped ciphertext bit under a good signature: only a
			// seeder bug gets here, and it must not open.
			sk, err := f.keys.session(testStream, 3, 1)
			if err != nil {
				t.Fatal(err)
			}
			h, _ := ParseHeader(sealed)
			ct := bytes.Clone(sealed[HeaderSize:body])
			ct[len(ct)/2] ^= 1
			if _, err := sk.open(nil, sk.nonce(h.Epoch, h.Seq), ct, sealed[:HeaderSize]); err == nil {
				t.Fatal("a tampered ciphertext opened")
			}
			if n >= webMin && web.off.Load() {
				t.Fatal("a bad tag turned WebCrypto off")
			}
			sealed[body-1] ^= 1
			if _, _, err := Open(f.pub, testStream, f.keys, sealed); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("tampered chunk: %v, want ErrBadSignature", err)
			}
		})
	}
	if web.off.Load() {
		t.Fatal("WebCrypto was turned off")
	}
}

// BenchmarkOpen94K compares a 3 Mbit/s chunk (250 ms, 94 KiB) opened by
// WebCrypto and by the pure-Go code in wasm.
func BenchmarkOpen94K(b *testing.B) {
	f := newFixture(b)
	sealed := f.seal(b, mediaHeader(1, 1), testPayload(94<<10))
	for _, useWeb := range []bool{true, false} {
		b.Run("webcrypto="+strconv.FormatBool(useWeb), func(b *testing.B) {
			was := web.off.Load()
			web.off.Store(!useWeb)
			defer web.off.Store(was)
			b.SetBytes(int64(len(sealed)))
			for b.Loop() {
				if _, _, err := Open(f.pub, testStream, f.keys, sealed); err != nil {
					b.Fatal(err)
				}
				Sum256(sealed)
			}
		})
	}
}

// TestMeasureWebCryptoCPU compares the main thread's CPU per 3 Mbit/s
// chunk (94 KiB: Open, which verifies and decrypts, and the Sum256 of a
// delivery statement) with WebCrypto and with the pure-Go code, and the
// whole process's (WebCrypto works on other threads). It reads Linux's
// /proc through Node's fs, so it runs only under Node on Linux, with
// BANYAN_MEASURE=1:
//
//	BANYAN_MEASURE=1 GOOS=js GOARCH=wasm go test ./chunk/ -run MeasureWebCryptoCPU -v
func TestMeasureWebCryptoCPU(t *testing.T) {
	if os.Getenv("BANYAN_MEASURE") != "1" {
		t.Skip("measurement: set BANYAN_MEASURE=1")
	}
	self, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	pid := strings.Fields(string(self))[0]
	ticks := func(path string) float64 {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		u, _ := strconv.ParseFloat(f[11], 64)
		s, _ := strconv.ParseFloat(f[12], 64)
		return (u + s) * 10 // ms at 100 Hz
	}
	main, proc := "/proc/self/task/"+pid+"/stat", "/proc/self/stat"
	f := newFixture(t)
	sealed := f.seal(t, mediaHeader(1, 1), testPayload(94<<10))
	const n = 300
	for round := range 3 {
		for _, useWeb := range []bool{true, false} {
			web.off.Store(!useWeb)
			m0, p0 := ticks(main), ticks(proc)
			for range n {
				if _, _, err := Open(f.pub, testStream, f.keys, sealed); err != nil {
					t.Fatal(err)
				}
				Sum256(sealed)
			}
			t.Logf("round %d, webcrypto %v: main thread %.2f ms a chunk, process %.2f ms", round, useWeb, (ticks(main)-m0)/n, (ticks(proc)-p0)/n)
		}
	}
	web.off.Store(false)
}
