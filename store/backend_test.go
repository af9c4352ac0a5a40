package store_test

import (
	"path/filepath"
	"testing"

	"github.com/banyan-live/banyan/store"
	"github.com/banyan-live/banyan/store/storetest"
)

// TestBackendBolt runs the shared backend cases on the bbolt store.
func TestBackendBolt(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Backend, func() store.Backend) {
		dir := filepath.Join(t.TempDir(), "data")
		open := func() store.Backend {
			s, err := store.Open(dir, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		return open(), open
	})
}
