package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"
)

var bucketEpochs = []byte("epochs") // stream name -> next free epoch (uint32, big-endian)

// ErrEpochsExhausted is returned when a reservation would pass 2^32-1.
var ErrEpochsExhausted = errors.New("epoch numbers exhausted")

// ReserveEpochs reserves n consecutive epoch numbers of stream, the first
// at least atLeast and above every number reserved before, and returns
// the first. The reservation commits before it returns, so epochs never
// repeat or go back for a stream on this data dir, whatever the clock
// says after a restart (issue 18 #4).
func (s *Store) ReserveEpochs(stream string, atLeast, n uint32) (uint32, error) {
	if n == 0 {
		return 0, errors.New("reserve epochs: n must be positive")
	}
	var first uint32
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketEpochs)
		if err != nil {
			return err
		}
		first = atLeast
		if v := b.Get([]byte(stream)); len(v) == 4 {
			first = max(first, binary.BigEndian.Uint32(v))
		}
		if uint64(first)+uint64(n) > math.MaxUint32 {
			return ErrEpochsExhausted
		}
		return b.Put([]byte(stream), binary.BigEndian.AppendUint32(nil, first+n))
	})
	if err != nil {
		return 0, fmt.Errorf("reserve %d epochs of %q: %w", n, stream, err)
	}
	return first, nil
}
