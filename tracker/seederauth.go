package tracker

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/banyan-live/banyan/protocol"
)

// nonceCache remembers the nonces of accepted seeder hellos for twice
// protocol.SeederAuthSkew, so a captured hello cannot be replayed while
// its time would still pass. Only hellos with a valid MAC reach it, so
// its size is bounded by what real seeders send.
type nonceCache struct {
	mu   sync.Mutex
	seen map[string]time.Time // nonce → when it may be forgotten
}

// checkSeederHello verifies a seeder's identity and freshness: the MAC
// under that seeder's own secret, the time within protocol.SeederAuthSkew
// of now, and a nonce not seen before.
func (t *Tracker) checkSeederHello(m protocol.SeederHello) error {
	if t.cfg.SeederKey == nil {
		return errors.New("no seeder keys configured")
	}
	if !protocol.ValidSeederID(m.SeederID) {
		return errors.New("bad seeder id")
	}
	key, err := t.cfg.SeederKey(m.SeederID)
	if err != nil {
		return fmt.Errorf("seeder key: %w", err)
	}
	if len(key) == 0 {
		return errors.New("seeder has no key")
	}
	want := protocol.SeederMAC(key, m.SeederID, m.Stream, m.Time, m.Nonce)
	if subtle.ConstantTimeCompare([]byte(want), []byte(m.Auth)) != 1 {
		return errors.New("bad MAC")
	}
	now := t.cfg.Now()
	at := time.UnixMilli(m.Time)
	if d := now.Sub(at); d > protocol.SeederAuthSkew || d < -protocol.SeederAuthSkew {
		return errors.New("hello time too far from the tracker's clock (check NTP)")
	}
	c := &t.nonces
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = make(map[string]time.Time)
	}
	for n, exp := range c.seen {
		if now.After(exp) {
			delete(c.seen, n)
		}
	}
	if _, dup := c.seen[m.Nonce]; dup {
		return errors.New("replayed hello")
	}
	c.seen[m.Nonce] = now.Add(2 * protocol.SeederAuthSkew)
	return nil
}
