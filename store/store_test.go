package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func openT(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func TestCreateAuthorizeRevokePersist(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := openT(t, dir)
	st, key, err := s.CreateStream("demo")
	if err != nil {
		t.Fatal(err)
	}
	if st.Name != "demo" || len(key) != 43 { // 32 bytes base64url, no padding
		t.Fatalf("got %+v key len %d", st, len(key))
	}
	if _, _, err := s.CreateStream("demo"); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	if got, err := s.Authorize(key); err != nil || got.Name != "demo" || got.LastUsed.IsZero() {
		t.Fatalf("authorize: %+v %v", got, err)
	}
	if _, err := s.Authorize(key + "x"); !errors.Is(err, ErrBadKey) {
		t.Fatalf("wrong key: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen keeps everything.
	s = openT(t, dir)
	if got, err := s.Authorize(key); err != nil || got.Name != "demo" {
		t.Fatalf("authorize after reopen: %+v %v", got, err)
	}
	if _, err := s.Revoke("demo"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authorize(key); !errors.Is(err, ErrBadKey) {
		t.Fatalf("revoked key accepted: %v", err)
	}
	if _, err := s.Revoke("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}
	s.Close()

	s = openT(t, dir)
	defer s.Close()
	got, err := s.Stream("demo")
	if err != nil || !got.Revoked || got.RevokedAt.IsZero() {
		t.Fatalf("revocation not persisted: %+v %v", got, err)
	}
	// A revoked name can be re-created with a new key; the old one stays dead.
	_, key2, err := s.CreateStream("demo")
	if err != nil || key2 == key {
		t.Fatalf("re-create: %v", err)
	}
	if _, err := s.Authorize(key); !errors.Is(err, ErrBadKey) {
		t.Fatal("old key works again after re-create")
	}
	if _, err := s.Authorize(key2); err != nil {
		t.Fatal(err)
	}
}

func TestRawKeyNeverStored(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	var keys []string
	for _, n := range []string{"a", "b-1", "c_2"} {
		_, k, err := s.CreateStream(n)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if _, k, err := s.RotateKey("a"); err != nil {
		t.Fatal(err)
	} else {
		keys = append(keys, k)
	}
	tok, created, err := s.EnsureAdminToken()
	if err != nil || !created {
		t.Fatalf("admin token: %v %v", created, err)
	}
	s.Close()
	db, err := os.ReadFile(filepath.Join(dir, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range append(keys, tok) {
		if bytes.Contains(db, []byte(k)) {
			t.Fatalf("raw secret %q found in the database file", k)
		}
	}
}

func TestRotateKey(t *testing.T) {
	s := openT(t, t.TempDir())
	defer s.Close()
	_, k1, _ := s.CreateStream("live")
	_, k2, err := s.RotateKey("live")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authorize(k1); !errors.Is(err, ErrBadKey) {
		t.Fatal("old key still valid after rotation")
	}
	if _, err := s.Authorize(k2); err != nil {
		t.Fatal(err)
	}
}

func TestNames(t *testing.T) {
	s := openT(t, t.TempDir())
	defer s.Close()
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"demo", true}, {"a", true}, {"0", true}, {"my_stream-2", true},
		{string(bytes.Repeat([]byte("a"), 64)), true},
		{string(bytes.Repeat([]byte("a"), 65)), false},
		{"", false}, {"Demo", false}, {"-x", false}, {"_x", false}, {"a/b", false},
		{"a b", false}, {"ä", false}, {"../etc", false},
	} {
		_, _, err := s.CreateStream(tc.name)
		if tc.ok != (err == nil) {
			t.Errorf("CreateStream(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if !tc.ok && !errors.Is(err, ErrInvalidName) {
			t.Errorf("CreateStream(%q) = %v, want ErrInvalidName", tc.name, err)
		}
	}
}

func TestAdminToken(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	tok, created, err := s.EnsureAdminToken()
	if err != nil || !created || tok == "" {
		t.Fatalf("%q %v %v", tok, created, err)
	}
	fi, err := os.Stat(s.AdminTokenPath())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode: %v %v", fi.Mode(), err)
	}
	if !s.CheckAdminToken(tok) || s.CheckAdminToken(tok+"x") || s.CheckAdminToken("") {
		t.Fatal("CheckAdminToken")
	}
	s.Close()
	s = openT(t, dir)
	defer s.Close()
	tok2, created, err := s.EnsureAdminToken()
	if err != nil || created || tok2 != "" {
		t.Fatalf("second ensure must not create: %q %v %v", tok2, created, err)
	}
	if got, _ := ReadAdminTokenFile(dir); got != tok || !s.CheckAdminToken(got) {
		t.Fatalf("token file %q", got)
	}
	// Open creates a missing data dir private to the user.
	fresh := filepath.Join(dir, "sub")
	s2 := openT(t, fresh)
	s2.Close()
	if fi, _ := os.Stat(fresh); fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode %v", fi.Mode())
	}
}

func TestSecretStable(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	a, err := s.Secret("turn", 32)
	if err != nil || len(a) != 32 {
		t.Fatal(err)
	}
	s.Close()
	s = openT(t, dir)
	defer s.Close()
	b, _ := s.Secret("turn", 32)
	if !bytes.Equal(a, b) {
		t.Fatal("secret changed across reopen")
	}
}

func TestLockedAndCorrupt(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	defer s.Close()
	start := time.Now()
	_, err := Open(dir, Options{LockTimeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("lock wait not bounded")
	}

	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, dbFile), bytes.Repeat([]byte("garbage!"), 1024), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(bad, Options{}); err == nil {
		t.Fatal("corrupt database opened without error")
	}
}

// TestNextStart: the start counter grows by one per call and survives a
// close and reopen (peer ids, and the TURN users named after them, must
// not repeat across restarts: issue 18 #6).
func TestNextStart(t *testing.T) {
	dir := t.TempDir()
	var got []uint64
	for range 2 {
		st, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			n, err := st.NextStart()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, n)
		}
		st.Close()
	}
	if fmt.Sprint(got) != "[1 2 3 4]" {
		t.Fatalf("starts %v", got)
	}
}

// TestKeyGenBumps: creating, rotating, revoking and re-creating a stream
// each move its key generation on, and CheckKeyGen accepts only the
// current one of an active stream (issue 18 #1).
func TestKeyGenBumps(t *testing.T) {
	st, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seen := map[uint64]bool{}
	step := func(what string, s Stream) {
		t.Helper()
		if seen[s.KeyGen] {
			t.Fatalf("%s: generation %d repeated", what, s.KeyGen)
		}
		seen[s.KeyGen] = true
	}
	s, _, err := st.CreateStream("cam")
	if err != nil {
		t.Fatal(err)
	}
	step("create", s)
	old := s.KeyGen
	if s, _, err = st.RotateKey("cam"); err != nil {
		t.Fatal(err)
	}
	step("rotate", s)
	if err := st.CheckKeyGen("cam", old); !errors.Is(err, ErrBadKey) {
		t.Fatalf("rotated-out generation: %v", err)
	}
	if err := st.CheckKeyGen("cam", s.KeyGen); err != nil {
		t.Fatalf("current generation: %v", err)
	}
	cur := s.KeyGen
	if s, err = st.Revoke("cam"); err != nil {
		t.Fatal(err)
	}
	step("revoke", s)
	if err := st.CheckKeyGen("cam", cur); !errors.Is(err, ErrBadKey) {
		t.Fatalf("revoked: %v", err)
	}
	if s, _, err = st.CreateStream("cam"); err != nil {
		t.Fatal(err)
	}
	step("re-create", s)
	if err := st.CheckKeyGen("nope", 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown stream: %v", err)
	}
}
