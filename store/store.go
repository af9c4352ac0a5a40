// Package store keeps Banyan's durable state in one bbolt file inside the
// data directory: stream records, hashed stream keys, the hashed admin token
// and generated secrets. Raw stream keys are never written: a key is shown
// once when it is created and only its SHA-256 is kept.
package store

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/banyan-live/banyan/protocol"
)

// Errors callers map to user-facing answers (HTTP status, CLI message).
var (
	ErrInvalidName = errors.New("invalid stream name: use 1-64 of a-z, 0-9, '_' and '-', starting with a letter or digit")
	ErrExists      = errors.New("stream already exists")
	ErrNotFound    = errors.New("stream not found")
	ErrBadKey      = errors.New("unknown or revoked stream key")
	ErrLocked      = errors.New("data dir is locked by another running banyan process")
)

// ValidName reports whether name is an acceptable stream name (the
// protocol's rule).
func ValidName(name string) bool { return protocol.ValidStream(name) }

const (
	dbFile         = "banyan.db"
	adminTokenFile = "admin.token"
	keyBytes       = 32
)

var (
	bucketStreams = []byte("streams")
	bucketKeys    = []byte("keys") // sha256(key) -> stream name
	bucketMeta    = []byte("meta")
	bucketSecrets = []byte("secrets")
	metaAdminHash = []byte("admin_token_sha256")
	metaStarts    = []byte("starts")
)

// Stream is the durable record of one stream.
type Stream struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	// KeyHash is the SHA-256 of the current stream key (never the key).
	KeyHash  []byte    `json:"key_hash"`
	LastUsed time.Time `json:"last_used,omitzero"`
	Revoked  bool      `json:"revoked"`
	// RevokedAt is set when Revoked is.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	// Private streams need a viewer token to join.
	Private bool `json:"private,omitempty"`
	// KeyGen counts the stream's keys: creating, rotating and revoking
	// bump it. An ingest remembers the generation its key was checked
	// against and the seeder re-checks it (CheckKeyGen) when the publish
	// starts, so a key revoked between the check and the start of
	// publishing cannot publish (SECURITY.md, issue 18 #1).
	KeyGen uint64 `json:"key_gen,omitempty"`
}

// Store is an open data directory. Its zero value is not usable; call Open.
// A Store is safe for concurrent use.
type Store struct {
	dir string
	db  *bolt.DB
	now func() time.Time
}

// Options tunes Open.
type Options struct {
	// LockTimeout bounds the wait for bbolt's file lock; zero means 1 s.
	// A running server holds the lock, so a CLI gives up quickly and says so.
	LockTimeout time.Duration
	// ReadOnly opens the file with a shared lock.
	ReadOnly bool
}

// Open opens (creating when missing, mode 0700) the data directory dir.
func Open(dir string, opt Options) (*Store, error) {
	if opt.LockTimeout == 0 {
		opt.LockTimeout = time.Second
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, dbFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opt.LockTimeout, ReadOnly: opt.ReadOnly})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s := &Store{dir: dir, db: db, now: time.Now}
	if !opt.ReadOnly {
		err = db.Update(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bucketStreams, bucketKeys, bucketMeta, bucketSecrets} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("initialise %s: %w", path, err)
		}
	}
	return s, nil
}

// Dir is the data directory.
func (s *Store) Dir() string { return s.dir }

// Close releases the file lock.
func (s *Store) Close() error { return s.db.Close() }

func hashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

func newSecretString() (string, error) {
	b := make([]byte, keyBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate random key: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// CreateStream creates stream name with a fresh key and returns the key. The
// key is not kept: show it to the user now. Re-creating a revoked stream is
// allowed and issues a new key; an active one is ErrExists.
func (s *Store) CreateStream(name string) (Stream, string, error) {
	if !ValidName(name) {
		return Stream{}, "", ErrInvalidName
	}
	key, err := newSecretString()
	if err != nil {
		return Stream{}, "", err
	}
	st := Stream{Name: name, CreatedAt: s.now().UTC(), KeyHash: hashKey(key), KeyGen: 1}
	err = s.db.Update(func(tx *bolt.Tx) error {
		streams := tx.Bucket(bucketStreams)
		if old := streams.Get([]byte(name)); old != nil {
			var prev Stream
			if err := json.Unmarshal(old, &prev); err != nil {
				return fmt.Errorf("decode stream %q: %w", name, err)
			}
			if !prev.Revoked {
				return ErrExists
			}
			// A grant taken under the revoked key must stay stale.
			st.KeyGen = prev.KeyGen + 1
		}
		if err := tx.Bucket(bucketKeys).Put(st.KeyHash, []byte(name)); err != nil {
			return err
		}
		return putJSON(streams, name, st)
	})
	if err != nil {
		return Stream{}, "", fmt.Errorf("create stream %q: %w", name, err)
	}
	return st, key, nil
}

// RotateKey issues a new key for an existing, active stream; the old key stops
// working at once.
func (s *Store) RotateKey(name string) (Stream, string, error) {
	key, err := newSecretString()
	if err != nil {
		return Stream{}, "", err
	}
	var st Stream
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := getJSON(tx.Bucket(bucketStreams), name, &st); err != nil {
			return err
		}
		if st.Revoked {
			return ErrNotFound
		}
		keys := tx.Bucket(bucketKeys)
		if err := keys.Delete(st.KeyHash); err != nil {
			return err
		}
		st.KeyHash = hashKey(key)
		st.KeyGen++
		if err := keys.Put(st.KeyHash, []byte(name)); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bucketStreams), name, st)
	})
	if err != nil {
		return Stream{}, "", fmt.Errorf("rotate key of %q: %w", name, err)
	}
	return st, key, nil
}

// Revoke revokes stream name: its key stops working. Revoking twice is not an
// error.
func (s *Store) Revoke(name string) (Stream, error) {
	var st Stream
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := getJSON(tx.Bucket(bucketStreams), name, &st); err != nil {
			return err
		}
		if st.Revoked {
			return nil
		}
		st.Revoked, st.RevokedAt = true, s.now().UTC()
		st.KeyGen++
		if err := tx.Bucket(bucketKeys).Delete(st.KeyHash); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bucketStreams), name, st)
	})
	if err != nil {
		return Stream{}, fmt.Errorf("revoke %q: %w", name, err)
	}
	return st, nil
}

// SetPrivate marks whether viewers of stream name need a viewer token.
func (s *Store) SetPrivate(name string, private bool) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		var st Stream
		if err := getJSON(tx.Bucket(bucketStreams), name, &st); err != nil {
			return err
		}
		st.Private = private
		return putJSON(tx.Bucket(bucketStreams), name, st)
	})
	if err != nil {
		return fmt.Errorf("set private on %q: %w", name, err)
	}
	return nil
}

// Authorize checks a publisher's stream key and returns its stream. It
// records the use. A wrong or revoked key is ErrBadKey.
func (s *Store) Authorize(key string) (Stream, error) {
	h := hashKey(key)
	var st Stream
	err := s.db.Update(func(tx *bolt.Tx) error {
		name := tx.Bucket(bucketKeys).Get(h)
		if name == nil {
			return ErrBadKey
		}
		if err := getJSON(tx.Bucket(bucketStreams), string(name), &st); err != nil {
			return err
		}
		// Defence in depth: the keys index and the record must agree.
		if st.Revoked || subtle.ConstantTimeCompare(st.KeyHash, h) != 1 {
			return ErrBadKey
		}
		st.LastUsed = s.now().UTC()
		return putJSON(tx.Bucket(bucketStreams), st.Name, st)
	})
	if err != nil {
		return Stream{}, fmt.Errorf("authorize stream key: %w", err)
	}
	return st, nil
}

// CheckKeyGen reports whether a key checked at generation gen still
// holds: the stream exists, is not revoked and its key has not been
// rotated since. Anything else is ErrBadKey (wrapped).
func (s *Store) CheckKeyGen(name string, gen uint64) error {
	return CheckKeyGenOf(s, name, gen)
}

// CheckKeyGenOf is CheckKeyGen on any Backend's stream records.
func CheckKeyGenOf(b interface{ Stream(string) (Stream, error) }, name string, gen uint64) error {
	st, err := b.Stream(name)
	if err != nil {
		return fmt.Errorf("check key of %q: %w", name, err)
	}
	if st.Revoked || st.KeyGen != gen {
		return fmt.Errorf("check key of %q: revoked or rotated since it was checked: %w", name, ErrBadKey)
	}
	return nil
}

// Stream returns one stream record.
func (s *Store) Stream(name string) (Stream, error) {
	var st Stream
	err := s.db.View(func(tx *bolt.Tx) error { return getJSON(tx.Bucket(bucketStreams), name, &st) })
	if err != nil {
		return Stream{}, fmt.Errorf("read stream %q: %w", name, err)
	}
	return st, nil
}

// Streams lists every stream, revoked ones included, sorted by name.
func (s *Store) Streams() ([]Stream, error) {
	var out []Stream
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketStreams).ForEach(func(k, v []byte) error {
			var st Stream
			if err := json.Unmarshal(v, &st); err != nil {
				return fmt.Errorf("decode stream %q: %w", k, err)
			}
			out = append(out, st)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// EnsureAdminToken makes sure an admin token exists. On first call it
// generates one, writes it to DIR/admin.token (0600) for local CLI use and
// returns it with created=true so the caller can print it once.
func (s *Store) EnsureAdminToken() (token string, created bool, err error) {
	path := s.AdminTokenPath()
	err = s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta.Get(metaAdminHash) != nil {
			return nil
		}
		t, err := newSecretString()
		if err != nil {
			return err
		}
		// The file is written first: if it fails, the transaction rolls back
		// and the next start tries again, so the token is never lost.
		if err := writeFileAtomic(path, []byte(t+"\n"), 0o600); err != nil {
			return err
		}
		token, created = t, true
		return meta.Put(metaAdminHash, hashKey(t))
	})
	if err != nil {
		return "", false, fmt.Errorf("ensure admin token: %w", err)
	}
	return token, created, nil
}

// NextStart counts the starts of a server on this data dir and returns
// the new count (1 on the first). It grows in a committed transaction, so
// it never repeats, even across a crash, whatever the clock says: a tracker
// derives its peer ids from it.
func (s *Store) NextStart() (uint64, error) {
	var n uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(metaStarts); len(v) == 8 {
			n = binary.BigEndian.Uint64(v)
		}
		n++
		return meta.Put(metaStarts, binary.BigEndian.AppendUint64(nil, n))
	})
	if err != nil {
		return 0, fmt.Errorf("count starts: %w", err)
	}
	return n, nil
}

// AdminTokenPath is where the admin token is kept for local CLI use.
func (s *Store) AdminTokenPath() string { return filepath.Join(s.dir, adminTokenFile) }

// CheckAdminToken reports whether token is the admin token, in constant time.
func (s *Store) CheckAdminToken(token string) bool {
	var want []byte
	_ = s.db.View(func(tx *bolt.Tx) error {
		want = append(want, tx.Bucket(bucketMeta).Get(metaAdminHash)...)
		return nil
	})
	return len(want) == sha256.Size && subtle.ConstantTimeCompare(want, hashKey(token)) == 1
}

// Secret returns the secret called name, generating n random bytes the first
// time. Seeder signing seeds and the TURN secret live here.
func (s *Store) Secret(name string, n int) ([]byte, error) {
	var out []byte
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSecrets)
		if v := b.Get([]byte(name)); v != nil {
			out = append(out, v...)
			return nil
		}
		out = make([]byte, n)
		if _, err := rand.Read(out); err != nil {
			return err
		}
		return b.Put([]byte(name), out)
	})
	if err != nil {
		return nil, fmt.Errorf("secret %q: %w", name, err)
	}
	return out, nil
}

// Check verifies the data file: bbolt's own consistency check (every page
// reachable once, no page both free and in use, keys ordered), then the
// store's invariants (every key hash indexes an active stream whose record
// carries that hash; every active stream's hash is indexed). It reads in
// one transaction, so it can run on a live store or one opened ReadOnly.
// The first few problems are returned joined.
func (s *Store) Check() error {
	var errs []error
	err := s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			if len(errs) < 10 {
				errs = append(errs, fmt.Errorf("bbolt: %w", err))
			}
		}
		streams, keys := tx.Bucket(bucketStreams), tx.Bucket(bucketKeys)
		if streams == nil || keys == nil {
			errs = append(errs, errors.New("missing bucket"))
			return nil
		}
		_ = keys.ForEach(func(h, name []byte) error {
			var st Stream
			if err := getJSON(streams, string(name), &st); err != nil {
				errs = append(errs, fmt.Errorf("key %x: stream %q: %w", h[:min(4, len(h))], name, err))
			} else if st.Revoked || subtle.ConstantTimeCompare(st.KeyHash, h) != 1 {
				errs = append(errs, fmt.Errorf("key %x indexes stream %q, which does not use it", h[:min(4, len(h))], name))
			}
			return nil
		})
		return streams.ForEach(func(k, v []byte) error {
			var st Stream
			if err := json.Unmarshal(v, &st); err != nil {
				errs = append(errs, fmt.Errorf("stream %q: %w", k, err))
				return nil
			}
			if st.Name != string(k) {
				errs = append(errs, fmt.Errorf("stream %q: record names %q", k, st.Name))
			}
			if !st.Revoked && string(keys.Get(st.KeyHash)) != st.Name {
				errs = append(errs, fmt.Errorf("stream %q: its key is not indexed", k))
			}
			return nil
		})
	})
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("store: check %s: %w", filepath.Join(s.dir, dbFile), errors.Join(errs...))
	}
	return nil
}

// ReadAdminTokenFile reads the admin token a server wrote into dir, for CLIs.
func ReadAdminTokenFile(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, adminTokenFile))
	if err != nil {
		return "", err
	}
	return string(trimSpace(b)), nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

func getJSON(b *bolt.Bucket, key string, v any) error {
	data := b.Get([]byte(key))
	if data == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %q: %w", key, err)
	}
	return nil
}

// writeFileAtomic writes via a temporary file and rename so a crash never
// leaves a half-written token.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
