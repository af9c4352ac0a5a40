package store

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func openTest(t *testing.T) (*Store, *time.Time) {
	t.Helper()
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s.now = func() time.Time { return now }
	return s, &now
}

// TestAdminSessions: a session works until it expires, logout ends it,
// a rotated admin token ends every session and the old token (issue 18
// #11: before, the dashboard cookie was the permanent admin token).
func TestAdminSessions(t *testing.T) {
	s, now := openTest(t)
	old, _, err := s.EnsureAdminToken()
	if err != nil {
		t.Fatal(err)
	}
	a, exp, err := s.CreateAdminSession(time.Hour)
	if err != nil || !exp.Equal(now.Add(time.Hour)) {
		t.Fatalf("create: %v %v", exp, err)
	}
	b, _, _ := s.CreateAdminSession(time.Hour)
	if a == b || a == old {
		t.Fatal("session tokens repeat or equal the admin token")
	}
	for _, tc := range []struct {
		tok  string
		want bool
	}{{a, true}, {b, true}, {"", false}, {"x", false}, {old, false}} {
		if got := s.CheckAdminSession(tc.tok); got != tc.want {
			t.Errorf("CheckAdminSession(%q) = %v", tc.tok, got)
		}
	}
	if err := s.DeleteAdminSession(a); err != nil || s.CheckAdminSession(a) {
		t.Fatalf("logout: %v", err)
	}
	*now = now.Add(time.Hour)
	if s.CheckAdminSession(b) {
		t.Fatal("session valid at its expiry")
	}
	c, _, _ := s.CreateAdminSession(time.Hour)
	nt, err := s.RotateAdminToken()
	if err != nil {
		t.Fatal(err)
	}
	if s.CheckAdminToken(old) || !s.CheckAdminToken(nt) || s.CheckAdminSession(c) {
		t.Fatal("rotation kept the old token or a session")
	}
	if f, _ := ReadAdminTokenFile(s.Dir()); f != nt {
		t.Fatalf("admin.token holds %q, want the new token", f)
	}
	if d, _, _ := s.CreateAdminSession(time.Hour); !s.CheckAdminSession(d) {
		t.Fatal("no session after a rotation")
	}
}

func TestAdminSessionsBounded(t *testing.T) {
	s, now := openTest(t)
	s.db.NoSync = true
	var toks []string
	for i := 0; i < MaxAdminSessions+5; i++ {
		*now = now.Add(time.Second)
		tok, _, err := s.CreateAdminSession(time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	live := 0
	for _, tok := range toks {
		if s.CheckAdminSession(tok) {
			live++
		}
	}
	if live != MaxAdminSessions || s.CheckAdminSession(toks[0]) || !s.CheckAdminSession(toks[len(toks)-1]) {
		t.Fatalf("%d live sessions, first %v", live, s.CheckAdminSession(toks[0]))
	}
}

func TestAuditLog(t *testing.T) {
	s, _ := openTest(t)
	s.db.NoSync = true // ten thousand commits: no fsync each
	if got, err := s.Audit(10); err != nil || len(got) != 0 {
		t.Fatalf("empty log: %v %v", got, err)
	}
	for i := 0; i < MaxAuditEntries+3; i++ {
		if _, err := s.AppendAudit(AuditEntry{Action: "create", Stream: fmt.Sprint("s", i), Via: "api"}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.Audit(MaxAuditEntries * 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != MaxAuditEntries {
		t.Fatalf("%d entries kept, want %d", len(all), MaxAuditEntries)
	}
	if all[0].Seq != MaxAuditEntries+3 || all[0].Stream != fmt.Sprint("s", MaxAuditEntries+2) || all[len(all)-1].Seq != 4 || all[0].Time.IsZero() {
		t.Fatalf("newest %+v oldest %+v", all[0], all[len(all)-1])
	}
	if got, _ := s.Audit(2); len(got) != 2 || got[1].Seq != all[1].Seq {
		t.Fatalf("limit: %+v", got)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestReserveEpochs: reservations never overlap or go back, across a
// reopen, whatever atLeast (the clock) says.
func TestReserveEpochs(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		atLeast, n, want uint32
	}{
		{1000, 16, 1000},
		{1000, 16, 1016}, // the same clock: after the last block
		{500, 1, 1032},   // a clock stepped back
		{5000, 4, 5000},  // the clock ahead of the reservations
	}
	for i, st := range steps {
		if i == 3 { // a restart
			s.Close()
			if s, err = Open(dir, Options{}); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.ReserveEpochs("cam", st.atLeast, st.n)
		if err != nil || got != st.want {
			t.Fatalf("step %d: ReserveEpochs(%d, %d) = %d, %v; want %d", i, st.atLeast, st.n, got, err, st.want)
		}
	}
	if got, _ := s.ReserveEpochs("other", 7, 1); got != 7 {
		t.Fatalf("another stream: %d", got)
	}
	if _, err := s.ReserveEpochs("cam", 1<<32-2, 4); !errors.Is(err, ErrEpochsExhausted) {
		t.Fatalf("overflow: %v", err)
	}
	s.Close()
}
