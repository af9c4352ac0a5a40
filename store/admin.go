package store

// Operator state beyond stream keys: dashboard sessions, the admin
// token's rotation, the audit log of admin actions and the viewer-token
// secret. Each is a few small methods over its own bucket so a store
// interface (another backend) can take them over one by one.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketSessions = []byte("admin_sessions") // sha256(session token) -> AdminSession
	bucketAudit    = []byte("audit")          // big-endian sequence -> AuditEntry
)

// SecretViewerToken names the secret viewer tokens are minted with.
const SecretViewerToken = "viewer-token"

// ViewerTokenSecret is the HMAC secret of viewer tokens (generated on
// first use). An operator's site mints tokens with it.
func (s *Store) ViewerTokenSecret() ([]byte, error) { return s.Secret(SecretViewerToken, 32) }

// MaxAdminSessions bounds the stored sessions; creating one more drops
// the oldest (sessions need the admin token, so this is a guard against
// a script logging in in a loop, not against strangers).
const MaxAdminSessions = 256

// AdminSession is a dashboard login: a random token in the browser's
// cookie, only its hash here, valid until Expires.
type AdminSession struct {
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// CreateAdminSession starts a session valid for ttl and returns its
// token, which is not kept (only its SHA-256 is). Expired sessions are
// dropped on the way.
func (s *Store) CreateAdminSession(ttl time.Duration) (string, time.Time, error) {
	if ttl <= 0 {
		return "", time.Time{}, errors.New("create admin session: ttl must be positive")
	}
	tok, err := newSecretString()
	if err != nil {
		return "", time.Time{}, err
	}
	now := s.now().UTC()
	sess := AdminSession{Created: now, Expires: now.Add(ttl)}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketSessions)
		if err != nil {
			return err
		}
		if err := pruneSessions(b, now, MaxAdminSessions-1); err != nil {
			return err
		}
		data, err := json.Marshal(sess)
		if err != nil {
			return err
		}
		return b.Put(hashKey(tok), data)
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("create admin session: %w", err)
	}
	return tok, sess.Expires, nil
}

// pruneSessions deletes expired sessions, then the oldest until at most
// keep remain.
func pruneSessions(b *bolt.Bucket, now time.Time, keep int) error {
	type kv struct {
		k       []byte
		created time.Time
	}
	var live []kv
	var dead [][]byte
	err := b.ForEach(func(k, v []byte) error {
		var s AdminSession
		if json.Unmarshal(v, &s) != nil || !now.Before(s.Expires) {
			dead = append(dead, append([]byte(nil), k...))
			return nil
		}
		live = append(live, kv{append([]byte(nil), k...), s.Created})
		return nil
	})
	if err != nil {
		return err
	}
	for len(live) > keep {
		oldest := 0
		for i := range live {
			if live[i].created.Before(live[oldest].created) {
				oldest = i
			}
		}
		dead = append(dead, live[oldest].k)
		live = append(live[:oldest], live[oldest+1:]...)
	}
	for _, k := range dead {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// CheckAdminSession reports whether token names a live session.
func (s *Store) CheckAdminSession(token string) bool {
	if token == "" || len(token) > 256 {
		return false
	}
	var sess AdminSession
	found := false
	_ = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		if b == nil {
			return nil
		}
		// A map lookup by hash: the hash of a guess tells nothing about
		// the stored ones, so no constant-time compare is needed.
		if v := b.Get(hashKey(token)); v != nil && json.Unmarshal(v, &sess) == nil {
			found = true
		}
		return nil
	})
	return found && s.now().Before(sess.Expires)
}

// DeleteAdminSession ends a session (logout). An unknown token is not an
// error.
func (s *Store) DeleteAdminSession(token string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		if b == nil {
			return nil
		}
		return b.Delete(hashKey(token))
	})
	if err != nil {
		return fmt.Errorf("delete admin session: %w", err)
	}
	return nil
}

// RotateAdminToken replaces the admin token: the old one stops working
// at once, every dashboard session ends, and the new token is written to
// DIR/admin.token (0600) and returned.
func (s *Store) RotateAdminToken() (string, error) {
	t, err := newSecretString()
	if err != nil {
		return "", err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Put(metaAdminHash, hashKey(t)); err != nil {
			return err
		}
		if tx.Bucket(bucketSessions) != nil {
			if err := tx.DeleteBucket(bucketSessions); err != nil {
				return err
			}
		}
		// The file last: if writing it fails the transaction rolls back
		// and the old token still works.
		return writeFileAtomic(s.AdminTokenPath(), []byte(t+"\n"), 0o600)
	})
	if err != nil {
		return "", fmt.Errorf("rotate admin token: %w", err)
	}
	return t, nil
}

// MaxAuditEntries bounds the audit log; older entries are dropped.
const MaxAuditEntries = 10000

// AuditEntry is one admin action.
type AuditEntry struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Action string    `json:"action"` // create, revoke, rotate, private_on, private_off, token_mint, login, logout, rotate_admin_token
	Stream string    `json:"stream,omitempty"`
	// Via is where it came from: "api" (a Bearer token: the CLI or a
	// script), "dashboard" (a session) or "cli" (the data dir, offline).
	Via    string `json:"via"`
	Remote string `json:"remote,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// AppendAudit records e (its Seq and, when zero, Time are filled in) and
// returns it as stored.
func (s *Store) AppendAudit(e AuditEntry) (AuditEntry, error) {
	if e.Time.IsZero() {
		e.Time = s.now().UTC()
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketAudit)
		if err != nil {
			return err
		}
		if e.Seq, err = b.NextSequence(); err != nil {
			return err
		}
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := b.Put(binary.BigEndian.AppendUint64(nil, e.Seq), data); err != nil {
			return err
		}
		// Keys are in sequence order: drop from the front what is more
		// than MaxAuditEntries behind (at most one entry per append once
		// the log is full).
		c := b.Cursor()
		for k, _ := c.First(); k != nil && len(k) == 8 && binary.BigEndian.Uint64(k)+MaxAuditEntries <= e.Seq; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return AuditEntry{}, fmt.Errorf("append audit entry %q: %w", e.Action, err)
	}
	return e, nil
}

// Audit returns up to limit audit entries, newest first.
func (s *Store) Audit(limit int) ([]AuditEntry, error) {
	var out []AuditEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			var e AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode audit entry %x: %w", k, err)
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}
