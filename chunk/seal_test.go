package chunk

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestSealOpenRoundTrip(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name    string
		h       Header
		payload []byte
	}{
		{"init", mediaHeader(1, 0), testPayload(700)},
		{"empty payload", Header{Flags: FlagEndOfStream, Epoch: 1, Seq: 9, KeyID: 1}, nil},
		{"one byte", mediaHeader(1, 1), []byte{42}},
		{"keyframe 64k", Header{Flags: FlagKeyframe, Epoch: 1, Seq: 2, KeyID: 1, MediaTime: 1 << 40, Duration: 250_000}, testPayload(64 << 10)},
		{"discontinuity", Header{Flags: FlagDiscontinuity, Epoch: 1 << 31, Seq: 1 << 62, KeyID: 1}, testPayload(16366)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("prefix")
			sealed, err := Seal(bytes.Clone(prefix), tc.h, tc.payload, f.keys, f.priv, testStream)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(sealed, prefix) {
				t.Fatal("Seal did not append to dst")
			}
			sealed = sealed[len(prefix):]
			want := tc.h
			want.PayloadLen = uint32(len(tc.payload))
			if len(sealed) != Overhead+len(tc.payload) {
				t.Fatalf("sealed %d bytes, want %d", len(sealed), Overhead+len(tc.payload))
			}
			if len(tc.payload) > 16 && bytes.Contains(sealed, tc.payload[:16]) {
				t.Fatal("plaintext visible in sealed chunk")
			}
			hv, err := Verify(f.pub, testStream, sealed)
			if err != nil || hv != want {
				t.Fatalf("Verify: %v %v, want %v", hv, err, want)
			}
			ho, pt, err := Open(f.pub, testStream, f.keys, sealed)
			if err != nil || ho != want {
				t.Fatalf("Open: %v %v, want %v", ho, err, want)
			}
			if !bytes.Equal(pt, tc.payload) {
				t.Fatal("payload differs after round trip")
			}
			// A peer routes by the first piece only.
			if hp, err := ParseHeader(sealed[:HeaderSize]); err != nil || hp != want {
				t.Fatalf("ParseHeader: %v %v", hp, err)
			}
		})
	}
}

// TestKnownAnswer pins the whole construction (header, HKDF labels, nonce,
// AAD, Ed25519ph context and prehash) so that an accidental change to the
// wire format fails here. Ed25519 is deterministic, so the bytes are fixed.
// testdata/xcheck.py checks the same bytes against an independent
// implementation of doc.go (Python cryptography + RFC 8032 arithmetic).
func TestKnownAnswer(t *testing.T) {
	f := newFixture(t)
	sealed := f.seal(t, Header{Flags: FlagKeyframe, Epoch: 1700000000, Seq: 3, KeyID: 1, MediaTime: 750_000, Duration: 250_000}, []byte("banyan"))
	const wantHex = "ba010200000000016553f100000000000000000300000000000b71b00003d09000000006ede057646f322348f20c46b1cb4759a34fa07c74b8309a7e4016f9aa83e9280bc9adbf06c45da35f53f9c6243fa227831e4935bb839b8227bb49acf3f1199dfb664c2474c42a0e1fd9a9f4529d74b90495f937c0dd08"
	if got := hex.EncodeToString(sealed); got != wantHex {
		t.Fatalf("sealed chunk changed:\n got %s\nwant %s", got, wantHex)
	}
}

func TestTamperEveryByte(t *testing.T) {
	f := newFixture(t)
	for _, sealed := range [][]byte{
		f.seal(t, mediaHeader(3, 0), testPayload(40)),
		f.seal(t, Header{Flags: FlagKeyframe, Epoch: 3, Seq: 1, KeyID: 1}, testPayload(300)),
	} {
		for i := range sealed {
			for _, mask := range []byte{0x01, 0x80, 0xFF} {
				b := bytes.Clone(sealed)
				b[i] ^= mask
				if _, err := Verify(f.pub, testStream, b); err == nil {
					t.Fatalf("Verify accepted byte %d ^ %#x", i, mask)
				} else if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadSignature) {
					t.Fatalf("byte %d: unexpected error class %v", i, err)
				}
				if _, _, err := Open(f.pub, testStream, f.keys, b); err == nil {
					t.Fatalf("Open accepted byte %d ^ %#x", i, mask)
				}
			}
		}
		// Truncation and extension.
		for n := 0; n < len(sealed); n++ {
			if _, err := Verify(f.pub, testStream, sealed[:n]); err == nil {
				t.Fatalf("Verify accepted %d of %d bytes", n, len(sealed))
			}
		}
		if _, err := Verify(f.pub, testStream, append(bytes.Clone(sealed), 0)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("trailing byte: %v", err)
		}
	}
}

func TestWrongStreamAndSigner(t *testing.T) {
	f := newFixture(t)
	sealed := f.seal(t, mediaHeader(1, 1), testPayload(100))
	other := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
	for _, tc := range []struct {
		name   string
		pub    ed25519.PublicKey
		stream string
		want   error
	}{
		{"other stream", f.pub, testStream + "x", ErrBadSignature},
		{"stream prefix", f.pub, testStream[:4], ErrBadSignature},
		{"other signer", other, testStream, ErrBadSignature},
		{"short public key", f.pub[:31], testStream, ErrBadSignature},
		{"nil public key", nil, testStream, ErrBadSignature},
		{"empty stream", f.pub, "", ErrBadStream},
		{"long stream", f.pub, strings.Repeat("s", 256), ErrBadStream},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Verify(tc.pub, tc.stream, sealed); !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
			if _, _, err := Open(tc.pub, tc.stream, f.keys, sealed); !errors.Is(err, tc.want) {
				t.Fatalf("Open: %v, want %v", err, tc.want)
			}
		})
	}
	// A maximal stream name works.
	long := strings.Repeat("n", MaxStreamName)
	b, err := Seal(nil, mediaHeader(1, 1), []byte("x"), f.keys, f.priv, long)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(f.pub, long, f.keys, b); err != nil {
		t.Fatal(err)
	}
}

// TestStreamBoundInKey: even with a valid signature for stream B, a payload
// encrypted for stream A does not decrypt as B, although both streams use
// the same master key.
func TestStreamBoundInKey(t *testing.T) {
	f := newFixture(t)
	h := mediaHeader(1, 1)
	h.PayloadLen = 5
	skA, err := f.keys.session("a", h.Epoch, h.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	out := h.appendTo(nil)
	out = skA.aead.Seal(out, skA.nonce(h.Epoch, h.Seq), []byte("hello"), bytes.Clone(out))
	sig, _ := f.priv.Sign(nil, digest("b", out), signOpts)
	out = append(out, sig...)
	if _, err := Verify(f.pub, "b", out); err != nil {
		t.Fatalf("signature for b should verify: %v", err)
	}
	if _, _, err := Open(f.pub, "b", f.keys, out); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Open as b: %v, want ErrDecrypt", err)
	}
}

func TestKeysWrongAndRotated(t *testing.T) {
	f := newFixture(t)
	k2, err := NewMasterKey(2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.keys.Add(k2); err != nil {
		t.Fatal(err)
	}
	s, err := NewSealer(SealerConfig{Stream: testStream, PrivateKey: f.priv, Keys: f.keys, KeyID: 1})
	if err != nil {
		t.Fatal(err)
	}
	old, err := s.Seal(mediaHeader(5, 1), []byte("old key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetActiveKey(3); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("SetActiveKey(3): %v", err)
	}
	if err := s.SetActiveKey(2); err != nil {
		t.Fatal(err)
	}
	h := mediaHeader(5, 2)
	h.KeyID = 77 // the Sealer overrides it
	rotated, err := s.Seal(h, []byte("new key"))
	if err != nil {
		t.Fatal(err)
	}

	// A viewer holding both keys opens both chunks.
	viewer, _ := NewKeyring(f.mk, k2)
	for _, c := range []struct {
		b     []byte
		keyID uint32
		want  string
	}{{old, 1, "old key"}, {rotated, 2, "new key"}} {
		h, pt, err := Open(f.pub, testStream, viewer, c.b)
		if err != nil || h.KeyID != c.keyID || string(pt) != c.want {
			t.Fatalf("Open: %v %q %v", h, pt, err)
		}
	}
	// A viewer that only got the new key cannot open old chunks, and the
	// error says why.
	onlyNew, _ := NewKeyring(k2)
	if _, _, err := Open(f.pub, testStream, onlyNew, old); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("old chunk, new keyring: %v", err)
	}
	// Removing a key drops its cached sessions too.
	viewer.Remove(1)
	if _, _, err := Open(f.pub, testStream, viewer, old); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("after Remove: %v", err)
	}
	// Verify needs no key.
	if _, err := Verify(f.pub, testStream, old); err != nil {
		t.Fatal(err)
	}
	// Same id, different material: refused by Add, and if a viewer got the
	// wrong material anyway, Open reports ErrDecrypt.
	bad, _ := NewMasterKey(1, nil)
	if err := f.keys.Add(bad); !errors.Is(err, ErrKeyConflict) {
		t.Fatalf("conflicting Add: %v", err)
	}
	wrong, _ := NewKeyring(bad)
	if _, _, err := Open(f.pub, testStream, wrong, old); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrong key material: %v", err)
	}
	if _, _, err := Open(f.pub, testStream, nil, old); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("nil keyring: %v", err)
	}
}

func TestKeyringBounds(t *testing.T) {
	var r Keyring // zero value is usable
	for id := uint32(0); id < MaxKeys+3; id++ {
		k, _ := NewMasterKey(id, nil)
		if err := r.Add(k); err != nil {
			t.Fatal(err)
		}
		if err := r.Add(k); err != nil { // idempotent
			t.Fatal(err)
		}
	}
	ids := r.IDs()
	if len(ids) != MaxKeys || ids[0] != 3 || ids[MaxKeys-1] != MaxKeys+2 {
		t.Fatalf("ids %v", ids)
	}
	if _, ok := r.Get(0); ok {
		t.Fatal("oldest key not evicted")
	}
	// Session cache stays bounded.
	for e := uint32(0); e < 3*maxSessions; e++ {
		if _, err := r.session(testStream, e, 5); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.sessions) != maxSessions || len(r.order) != maxSessions {
		t.Fatalf("cache holds %d/%d sessions", len(r.sessions), len(r.order))
	}
	if _, err := r.session(testStream, 1, 99); !errors.Is(err, ErrUnknownKey) {
		t.Fatal(err)
	}
}

func TestNonceUnique(t *testing.T) {
	f := newFixture(t)
	seenNonce := make(map[string]string)
	seenKeyStream := make(map[string]string)
	for _, epoch := range []uint32{0, 1, 2, 1 << 31, 1<<32 - 1} {
		sk, err := f.keys.session(testStream, epoch, 1)
		if err != nil {
			t.Fatal(err)
		}
		// Same plaintext at (epoch, seq) must give a distinct key stream.
		for _, seq := range []uint64{0, 1, 2, 255, 256, 1 << 32, 1<<64 - 1} {
			where := fmt.Sprintf("epoch %d seq %d", epoch, seq)
			n := string(sk.nonce(epoch, seq))
			if prev, dup := seenNonce[string(sk.salt[:])+n]; dup {
				t.Fatalf("nonce of %s repeats %s", where, prev)
			}
			seenNonce[string(sk.salt[:])+n] = where
			ks := sk.aead.Seal(nil, []byte(n), make([]byte, 32), nil)
			if prev, dup := seenKeyStream[string(ks[:32])]; dup {
				t.Fatalf("key stream of %s repeats %s", where, prev)
			}
			seenKeyStream[string(ks[:32])] = where
		}
	}
	// Different epochs derive different session keys, not just nonces.
	a, _ := f.keys.session(testStream, 1, 1)
	b, _ := f.keys.session(testStream, 2, 1)
	c, _ := f.keys.session("other", 1, 1)
	if a.salt == b.salt || a.salt == c.salt {
		t.Fatal("session salts collide across epochs or streams")
	}
}

func TestSealerOrder(t *testing.T) {
	f := newFixture(t)
	s, err := NewSealer(SealerConfig{Stream: testStream, PrivateKey: f.priv, Keys: f.keys, KeyID: 1})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		epoch uint32
		seq   uint64
		ok    bool
	}{
		{10, 0, true},
		{10, 0, false}, // the init again would reuse a nonce
		{10, 1, true},
		{10, 5, true},
		{10, 3, false},
		{9, 100, false}, // epochs do not go back
		{11, 0, true},
		{11, 1, true},
	}
	for _, st := range steps {
		_, err := s.Seal(mediaHeader(st.epoch, st.seq), []byte("x"))
		if st.ok != (err == nil) {
			t.Fatalf("epoch %d seq %d: %v", st.epoch, st.seq, err)
		}
		if !st.ok && !errors.Is(err, ErrSeqOrder) {
			t.Fatalf("epoch %d seq %d: %v, want ErrSeqOrder", st.epoch, st.seq, err)
		}
	}
	// A malformed header does not consume the sequence.
	if _, err := s.Seal(Header{Epoch: 11, Seq: 2, Flags: FlagInit}, nil); !errors.Is(err, ErrMalformed) {
		t.Fatal(err)
	}
	if _, err := s.Seal(mediaHeader(11, 2), nil); err != nil {
		t.Fatal(err)
	}
	if !s.PublicKey().Equal(f.pub) || s.Stream() != testStream || s.ActiveKey() != 1 {
		t.Fatal("accessors")
	}
	for _, cfg := range []SealerConfig{
		{Stream: "", PrivateKey: f.priv, Keys: f.keys, KeyID: 1},
		{Stream: "s", PrivateKey: f.priv[:10], Keys: f.keys, KeyID: 1},
		{Stream: "s", PrivateKey: f.priv, KeyID: 1},
		{Stream: "s", PrivateKey: f.priv, Keys: f.keys, KeyID: 9},
	} {
		if _, err := NewSealer(cfg); err == nil {
			t.Fatalf("NewSealer accepted %+v", cfg.KeyID)
		}
	}
}

func TestSealRejects(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name    string
		h       Header
		payload []byte
		priv    ed25519.PrivateKey
		stream  string
		want    error
	}{
		{"unknown key", Header{Epoch: 1, Seq: 1, KeyID: 9}, nil, f.priv, testStream, ErrUnknownKey},
		{"init flag on seq 1", Header{Epoch: 1, Seq: 1, KeyID: 1, Flags: FlagInit}, nil, f.priv, testStream, ErrMalformed},
		{"too large", Header{Epoch: 1, Seq: 1, KeyID: 1}, make([]byte, MaxPayload+1), f.priv, testStream, ErrMalformed},
		{"no stream", Header{Epoch: 1, Seq: 1, KeyID: 1}, nil, f.priv, "", ErrBadStream},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("keep")
			out, err := Seal(dst, tc.h, tc.payload, f.keys, tc.priv, tc.stream)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v want %v", err, tc.want)
			}
			if string(out) != "keep" {
				t.Fatal("dst changed on error")
			}
		})
	}
	if _, err := Seal(nil, mediaHeader(1, 1), nil, f.keys, f.priv[:3], testStream); err == nil {
		t.Fatal("short private key accepted")
	}
	if _, err := Seal(nil, mediaHeader(1, 1), nil, nil, f.priv, testStream); !errors.Is(err, ErrUnknownKey) {
		t.Fatal(err)
	}
}

func TestMasterKeyJSON(t *testing.T) {
	k, err := NewMasterKey(42, &detReader{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{"keys": []MasterKey{k}})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"keys":[{"id":42,"key":"AAECAwQFBgcICQoLDA0ODw==","salt":"EBESExQVFhcYGRob"}]}`
	if string(b) != want {
		t.Fatalf("json %s\nwant %s", b, want)
	}
	var back struct{ Keys []MasterKey }
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Keys) != 1 || !back.Keys[0].Equal(k) {
		t.Fatal("round trip lost the key")
	}
	for _, bad := range []string{
		`{"id":1,"key":"AAECAwQFBgcICQoLDA0O","salt":"EBESExQVFhcYGRob"}`,              // 15-byte key
		`{"id":1,"key":"AAECAwQFBgcICQoLDA0ODw==","salt":"EBESExQVFhcYGRo="}`,          // 11-byte salt
		`{"id":1,"key":"not base64!","salt":"EBESExQVFhcYGRob"}`,                       // bad alphabet
		`{"id":1,"key":"` + strings.Repeat("A", 1000) + `","salt":"EBESExQVFhcYGRob"}`, // long
		`{"id":-1,"key":"AAECAwQFBgcICQoLDA0ODw==","salt":"EBESExQVFhcYGRob"}`,         // negative id
		`[]`,
	} {
		var m MasterKey
		if err := json.Unmarshal([]byte(bad), &m); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	// Logs never show the secret.
	for _, s := range []string{k.String(), fmt.Sprintf("%v %+v %#v", k, k, k)} {
		if strings.Contains(s, "AAEC") || strings.Contains(s, "[0 1 2") {
			t.Fatalf("secret in %q", s)
		}
	}
	if _, err := NewMasterKey(1, strings.NewReader("short")); err == nil {
		t.Fatal("short random source accepted")
	}
}

func TestOpenConcurrent(t *testing.T) {
	f := newFixture(t)
	var chunks [][]byte
	for seq := uint64(1); seq <= 16; seq++ {
		chunks = append(chunks, f.seal(t, mediaHeader(uint32(seq%3), seq), testPayload(int(seq)*100)))
	}
	viewer, _ := NewKeyring(f.mk) // fresh cache, so sessions are derived concurrently
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, c := range chunks {
				if _, pt, err := Open(f.pub, testStream, viewer, c); err != nil || len(pt) != (i+1)*100 {
					errs <- fmt.Errorf("chunk %d: %v", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestSealDeterministicDigestDiffers(t *testing.T) {
	// Identical payloads in different chunks never give identical ciphertext.
	f := newFixture(t)
	seen := map[[32]byte]bool{}
	for _, h := range []Header{mediaHeader(1, 1), mediaHeader(1, 2), mediaHeader(2, 1)} {
		b := f.seal(t, h, make([]byte, 64))
		d := sha256.Sum256(b[HeaderSize : HeaderSize+64])
		if seen[d] {
			t.Fatalf("ciphertext repeats at %v", h)
		}
		seen[d] = true
	}
}

// TestMasterKeyJSONLikeEncodingJSON: the hand-written UnmarshalJSON reads
// as encoding/json read the {"id","key","salt"} struct before it (keys
// without case, null and unknown keys, wrong types refused), and
// ParseMasterKey is what protocol.ContentKey goes through.
func TestMasterKeyJSONLikeEncodingJSON(t *testing.T) {
	const key, salt = "AAECAwQFBgcICQoLDA0ODw==", "EBESExQVFhcYGRob"
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{"id":42,"key":"` + key + `","salt":"` + salt + `"}`, true},
		{`{"ID":42,"Key":"` + key + `","SALT":"` + salt + `","other":[1,{}]}`, true},
		{`{"id":null,"key":"` + key + `","salt":"` + salt + `"}`, true},
		{`{"id":4294967296,"key":"` + key + `","salt":"` + salt + `"}`, false},
		{`{"id":"1","key":"` + key + `","salt":"` + salt + `"}`, false},
		{`{"id":1,"key":"` + key + `","salt":"` + salt + `"} x`, false},
		{`null`, false},
	} {
		var m MasterKey
		err := json.Unmarshal([]byte(tc.in), &m)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.in, err)
		}
		if err == nil {
			want, perr := ParseMasterKey(m.ID, key, salt)
			if perr != nil || !want.Equal(m) {
				t.Errorf("%s: %+v, ParseMasterKey %v", tc.in, m, perr)
			}
		}
	}
	if _, err := ParseMasterKey(1, key, "EBESExQVFhcYGRo="); err == nil {
		t.Error("ParseMasterKey took an 11-byte salt")
	}
}
