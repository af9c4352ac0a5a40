// Package storetest holds the table tests every store.Backend must pass:
// the bbolt store and the etcd store run the same cases.
package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/banyan-live/banyan/store"
)

// Opener opens a fresh, empty backend for one case; reopen opens the
// same storage again (after the first is closed) to show what persists.
type Opener func(t *testing.T) (b store.Backend, reopen func() store.Backend)

// Run runs every case against the backends open makes.
func Run(t *testing.T, open Opener) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, reopen := open(t)
			tc.run(t, b, reopen)
		})
	}
}

var cases = []struct {
	name string
	run  func(t *testing.T, b store.Backend, reopen func() store.Backend)
}{
	{"create authorize revoke persist", createAuthorizeRevoke},
	{"names", names},
	{"rotate and key generations", rotate},
	{"private", private},
	{"list sorted", list},
	{"admin token", adminToken},
	{"secrets", secrets},
	{"starts", starts},
	{"concurrent creates of one name", concurrentCreate},
	{"concurrent starts", concurrentStarts},
	{"operator state: sessions, rotation, audit", operator},
}

// must(f())(t) is f's value, or the test's end when f failed.
func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func createAuthorizeRevoke(t *testing.T, b store.Backend, reopen func() store.Backend) {
	st, key, err := b.CreateStream("demo")
	if err != nil || st.Name != "demo" || len(key) != 43 || st.KeyGen != 1 {
		t.Fatalf("create: %+v key len %d: %v", st, len(key), err)
	}
	if _, _, err := b.CreateStream("demo"); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	if got, err := b.Authorize(key); err != nil || got.Name != "demo" || got.LastUsed.IsZero() {
		t.Fatalf("authorize: %+v %v", got, err)
	}
	if _, err := b.Authorize(key + "x"); !errors.Is(err, store.ErrBadKey) {
		t.Fatalf("wrong key: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = reopen()
	defer b.Close()
	if got, err := b.Authorize(key); err != nil || got.Name != "demo" {
		t.Fatalf("authorize after reopen: %+v %v", got, err)
	}
	if _, err := b.Revoke("demo"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Revoke("demo"); err != nil {
		t.Fatalf("second revoke: %v", err)
	}
	if _, err := b.Authorize(key); !errors.Is(err, store.ErrBadKey) {
		t.Fatalf("revoked key accepted: %v", err)
	}
	if _, err := b.Revoke("nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}
	if got := must(b.Stream("demo"))(t); !got.Revoked || got.RevokedAt.IsZero() {
		t.Fatalf("revocation not kept: %+v", got)
	}
	_, key2, err := b.CreateStream("demo")
	if err != nil || key2 == key {
		t.Fatalf("re-create: %v", err)
	}
	if _, err := b.Authorize(key); !errors.Is(err, store.ErrBadKey) {
		t.Fatal("old key works again after re-create")
	}
	if got, err := b.Authorize(key2); err != nil || got.KeyGen != 3 {
		t.Fatalf("new key: %+v %v (want key generation 3: create, revoke, re-create)", got, err)
	}
}

func names(t *testing.T, b store.Backend, _ func() store.Backend) {
	defer b.Close()
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true}, {"live-1_x", true}, {"", false}, {"-x", false}, {"UPPER", false},
		{"../etc", false}, {"a/b", false}, {string(make([]byte, 65)), false},
	} {
		_, _, err := b.CreateStream(tc.name)
		if (err == nil) != tc.ok || (!tc.ok && !errors.Is(err, store.ErrInvalidName)) {
			t.Errorf("create %q: %v", tc.name, err)
		}
	}
	if _, err := b.Stream("missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing stream: %v", err)
	}
}

func rotate(t *testing.T, b store.Backend, _ func() store.Backend) {
	defer b.Close()
	_, k1 := must2(b.CreateStream("r"))(t)
	auth := must(b.Authorize(k1))(t)
	st, k2 := must2(b.RotateKey("r"))(t)
	if k2 == k1 || st.KeyGen != auth.KeyGen+1 {
		t.Fatalf("rotate: gen %d after %d", st.KeyGen, auth.KeyGen)
	}
	if _, err := b.Authorize(k1); !errors.Is(err, store.ErrBadKey) {
		t.Fatalf("old key after rotate: %v", err)
	}
	if err := b.CheckKeyGen("r", auth.KeyGen); !errors.Is(err, store.ErrBadKey) {
		t.Fatalf("a grant from before the rotation still holds: %v", err)
	}
	if err := b.CheckKeyGen("r", st.KeyGen); err != nil {
		t.Fatalf("current generation: %v", err)
	}
	if _, _, err := b.RotateKey("nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rotate unknown: %v", err)
	}
	must(b.Revoke("r"))(t)
	if _, _, err := b.RotateKey("r"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rotate revoked: %v", err)
	}
	if err := b.CheckKeyGen("r", st.KeyGen); !errors.Is(err, store.ErrBadKey) {
		t.Fatalf("revoked stream's generation holds: %v", err)
	}
}

func must2[A, B any](a A, bb B, err error) func(t *testing.T) (A, B) {
	return func(t *testing.T) (A, B) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a, bb
	}
}

func private(t *testing.T, b store.Backend, _ func() store.Backend) {
	defer b.Close()
	must2(b.CreateStream("p"))(t)
	if err := b.SetPrivate("p", true); err != nil {
		t.Fatal(err)
	}
	if !must(b.Stream("p"))(t).Private {
		t.Fatal("not private")
	}
	if err := b.SetPrivate("nope", true); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
}

func list(t *testing.T, b store.Backend, _ func() store.Backend) {
	defer b.Close()
	for _, n := range []string{"c", "a", "b"} {
		must2(b.CreateStream(n))(t)
	}
	must(b.Revoke("b"))(t)
	got := must(b.Streams())(t)
	if len(got) != 3 || got[0].Name != "a" || got[1].Name != "b" || got[2].Name != "c" || !got[1].Revoked {
		t.Fatalf("streams: %+v", got)
	}
	for _, st := range got {
		if len(st.KeyHash) != 32 {
			t.Errorf("%s: key hash of %d bytes", st.Name, len(st.KeyHash))
		}
	}
}

func adminToken(t *testing.T, b store.Backend, reopen func() store.Backend) {
	if b.CheckAdminToken("") || b.CheckAdminToken("x") {
		t.Fatal("a token checks before any exists")
	}
	tok, created, err := b.EnsureAdminToken()
	if err != nil || !created || len(tok) != 43 {
		t.Fatalf("ensure: %q %v %v", tok, created, err)
	}
	if again, created, err := b.EnsureAdminToken(); err != nil || created || again != "" {
		t.Fatalf("second ensure: %q %v %v (the token is shown once)", again, created, err)
	}
	b.Close()
	b = reopen()
	defer b.Close()
	if !b.CheckAdminToken(tok) || b.CheckAdminToken(tok+"x") || b.CheckAdminToken("") {
		t.Fatal("admin token check wrong after reopen")
	}
}

func secrets(t *testing.T, b store.Backend, reopen func() store.Backend) {
	a := must(b.Secret("one", 32))(t)
	if len(a) != 32 {
		t.Fatalf("secret of %d bytes", len(a))
	}
	other := must(b.Secret("two", 16))(t)
	if len(other) != 16 || string(other) == string(a[:16]) {
		t.Fatal("secrets not independent")
	}
	b.Close()
	b = reopen()
	defer b.Close()
	if again := must(b.Secret("one", 32))(t); string(again) != string(a) {
		t.Fatal("secret changed across reopen")
	}
}

func starts(t *testing.T, b store.Backend, reopen func() store.Backend) {
	if n := must(b.NextStart())(t); n != 1 {
		t.Fatalf("first start %d", n)
	}
	b.Close()
	b = reopen()
	defer b.Close()
	if n := must(b.NextStart())(t); n != 2 {
		t.Fatalf("second start %d", n)
	}
}

// concurrentCreate: of 8 creates of one name racing, one wins; the
// others are ErrExists and the winner's key is the one that works.
func concurrentCreate(t *testing.T, b store.Backend, _ func() store.Backend) {
	defer b.Close()
	var wg sync.WaitGroup
	keys := make([]string, 8)
	errs := make([]error, 8)
	for i := range keys {
		wg.Add(1)
		go func() { defer wg.Done(); _, keys[i], errs[i] = b.CreateStream("race") }()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
			if _, err := b.Authorize(keys[i]); err != nil {
				t.Errorf("winner's key: %v", err)
			}
		case !errors.Is(err, store.ErrExists):
			t.Errorf("create %d: %v", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d creates won", won)
	}
}

func concurrentStarts(t *testing.T, b store.Backend, _ func() store.Backend) {
	defer b.Close()
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := b.NextStart()
			mu.Lock()
			defer mu.Unlock()
			if err != nil || seen[n] {
				t.Errorf("start %d: %v", n, err)
			}
			seen[n] = true
		}()
	}
	wg.Wait()
	if len(seen) != 8 {
		t.Fatal(fmt.Sprint("distinct starts: ", len(seen)))
	}
}

// operator: dashboard sessions, the admin token's rotation (which ends
// them), the audit log (newest first, with sequence numbers) and the
// viewer-token secret, which persist.
func operator(t *testing.T, b store.Backend, reopen func() store.Backend) {
	tok := must(func() (string, error) { tok, _, err := b.EnsureAdminToken(); return tok, err }())(t)
	sess, exp, err := b.CreateAdminSession(time.Hour)
	if err != nil || sess == "" || time.Until(exp) < 59*time.Minute {
		t.Fatalf("create session: %q %v %v", sess, exp, err)
	}
	if _, _, err := b.CreateAdminSession(0); err == nil {
		t.Error("a session without a lifetime was made")
	}
	if !b.CheckAdminSession(sess) || b.CheckAdminSession(sess+"x") || b.CheckAdminSession("") {
		t.Fatal("session check wrong")
	}
	other := must2(b.CreateAdminSession(time.Hour))
	gone, _ := other(t)
	if err := b.DeleteAdminSession(gone); err != nil || b.CheckAdminSession(gone) || !b.CheckAdminSession(sess) {
		t.Fatalf("logout: %v; deleted one still checks or the other stopped", err)
	}
	for i, a := range []string{"create", "revoke", "login"} {
		e, err := b.AppendAudit(store.AuditEntry{Action: a, Stream: "s", Via: "api"})
		if err != nil || e.Seq != uint64(i+1) || e.Time.IsZero() {
			t.Fatalf("append %s: %+v %v", a, e, err)
		}
	}
	vs := must(b.ViewerTokenSecret())(t)
	b.Close()
	b = reopen()
	defer b.Close()
	log := must(b.Audit(2))(t)
	if len(log) != 2 || log[0].Action != "login" || log[1].Action != "revoke" || log[0].Seq != 3 {
		t.Fatalf("audit newest first, limit 2: %+v", log)
	}
	if again := must(b.ViewerTokenSecret())(t); string(again) != string(vs) || len(vs) != 32 {
		t.Fatal("viewer-token secret changed or wrong size")
	}
	if !b.CheckAdminSession(sess) {
		t.Fatal("session lost on reopen")
	}
	nt := must(b.RotateAdminToken())(t)
	if nt == tok || !b.CheckAdminToken(nt) || b.CheckAdminToken(tok) {
		t.Fatal("rotation: the new token must work and the old one not")
	}
	if b.CheckAdminSession(sess) {
		t.Fatal("a session survived the admin token's rotation")
	}
}
