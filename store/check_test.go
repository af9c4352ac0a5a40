package store

import (
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	for _, n := range []string{"a", "b", "c"} {
		if _, _, err := s.CreateStream(n); err != nil {
			t.Fatal(err)
		}
	}
	s.Revoke("b")
	s.RotateKey("c")
	if err := s.Check(); err != nil {
		t.Fatalf("healthy store: %v", err)
	}
	s.Close()

	// Read-only, as a test or an operator inspects a data dir.
	ro, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.Check(); err != nil {
		t.Fatalf("read-only: %v", err)
	}
	ro.Close()

	// Broken invariants are found: an index entry without its stream, a
	// stream whose key is not indexed.
	s = openT(t, dir)
	defer s.Close()
	a, _ := s.Stream("a")
	s.db.Update(func(tx *bolt.Tx) error {
		tx.Bucket(bucketKeys).Delete(a.KeyHash)
		return tx.Bucket(bucketKeys).Put([]byte("0123456789abcdef0123456789abcdef"), []byte("ghost"))
	})
	err = s.Check()
	if err == nil || !strings.Contains(err.Error(), `stream "a": its key is not indexed`) || !strings.Contains(err.Error(), `"ghost"`) {
		t.Fatalf("check: %v", err)
	}
}
