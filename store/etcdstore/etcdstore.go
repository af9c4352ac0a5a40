// Package etcdstore keeps Banyan's shared state in etcd, so trackers and
// seeders on several machines see one set of streams, keys and secrets.
// It implements store.Backend with the same meaning as the bbolt store;
// every change is one etcd transaction (concurrency.STM, serializable),
// so two trackers racing to create a stream or rotate a key cannot both
// win.
//
// Layout under Config.Prefix (default "/banyan/"):
//
//	streams/NAME          JSON store.Stream (the key's SHA-256, never the key)
//	keys/HEX(SHA256(key)) NAME
//	meta/admin_token_sha256, meta/starts
//	secrets/NAME          raw bytes (secrets/seeder-key/ID: a seeder's own)
//
// The seeders' etcd user needs read on streams/, keys/ and meta/, and
// its own secrets; a key's last use is recorded only where it may write
// streams/. Trackers read and write everything (docs/cluster.md shows
// the roles; TestRoles runs them).
package etcdstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/banyan-live/banyan/store"
)

// Config says which etcd to use.
type Config struct {
	// Endpoints are etcd client URLs, e.g. http://10.0.0.5:2379.
	Endpoints []string
	// Prefix keeps Banyan's keys apart from others' (default "/banyan/").
	Prefix string
	// Username and Password, when set, authenticate to etcd.
	Username, Password string
	// CAFile, when set, is the CA etcd's server certificate must chain to
	// (client URLs are then https://); CertFile and KeyFile are this
	// client's certificate, for an etcd that demands one.
	CAFile, CertFile, KeyFile string
	// Timeout bounds each operation, retries of a conflicted transaction
	// included (default 5 s).
	Timeout time.Duration
}

// Store is a store.Backend on etcd. Safe for concurrent use.
type Store struct {
	c       *clientv3.Client
	prefix  string
	timeout time.Duration
	now     func() time.Time
}

var _ store.Backend = (*Store)(nil)

// Open connects to etcd and checks that it answers.
func Open(cfg Config) (*Store, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "/banyan/"
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	var tlsCfg *tls.Config
	if cfg.CAFile != "" || cfg.CertFile != "" {
		var err error
		tlsCfg, err = transport.TLSInfo{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, TrustedCAFile: cfg.CAFile}.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("etcd TLS: %w", err)
		}
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints: cfg.Endpoints, DialTimeout: cfg.Timeout,
		Username: cfg.Username, Password: cfg.Password, TLS: tlsCfg,
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	s := &Store{c: c, prefix: cfg.Prefix, timeout: cfg.Timeout, now: time.Now}
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := c.Get(ctx, s.prefix+"meta/starts"); err != nil {
		c.Close()
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	return s, nil
}

// Client is the etcd client, for the cluster's leases and registry.
func (s *Store) Client() *clientv3.Client { return s.c }

// Prefix is where Banyan's keys live.
func (s *Store) Prefix() string { return s.prefix }

// Close closes the client.
func (s *Store) Close() error { return s.c.Close() }

func (s *Store) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.timeout)
}

func (s *Store) streamKey(name string) string { return s.prefix + "streams/" + name }
func (s *Store) hashKey(h []byte) string      { return s.prefix + "keys/" + hex.EncodeToString(h) }
func (s *Store) metaKey(name string) string   { return s.prefix + "meta/" + name }
func (s *Store) secretKey(name string) string { return s.prefix + "secrets/" + name }

func hashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

func newSecretString() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate random key: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// update runs apply as one serializable transaction, retried on conflict
// until the timeout.
func (s *Store) update(apply func(concurrency.STM) error) error {
	ctx, cancel := s.ctx()
	defer cancel()
	_, err := concurrency.NewSTM(s.c, apply, concurrency.WithAbortContext(ctx))
	return err
}

// getStream reads a stream in a transaction; a missing one is ErrNotFound.
func (s *Store) getStream(stm concurrency.STM, name string) (store.Stream, error) {
	var st store.Stream
	k := s.streamKey(name)
	if stm.Rev(k) == 0 {
		return st, store.ErrNotFound
	}
	if err := json.Unmarshal([]byte(stm.Get(k)), &st); err != nil {
		return st, fmt.Errorf("decode stream %q: %w", name, err)
	}
	return st, nil
}

func (s *Store) putStream(stm concurrency.STM, st store.Stream) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	stm.Put(s.streamKey(st.Name), string(b))
	return nil
}

// CreateStream implements store.Backend.
func (s *Store) CreateStream(name string) (store.Stream, string, error) {
	if !store.ValidName(name) {
		return store.Stream{}, "", store.ErrInvalidName
	}
	key, err := newSecretString()
	if err != nil {
		return store.Stream{}, "", err
	}
	var st store.Stream
	err = s.update(func(stm concurrency.STM) error {
		st = store.Stream{Name: name, CreatedAt: s.now().UTC(), KeyHash: hashKey(key), KeyGen: 1}
		prev, err := s.getStream(stm, name)
		switch {
		case err == nil && !prev.Revoked:
			return store.ErrExists
		case err == nil:
			st.KeyGen = prev.KeyGen + 1 // a grant under the revoked key stays stale
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		stm.Put(s.hashKey(st.KeyHash), name)
		return s.putStream(stm, st)
	})
	if err != nil {
		return store.Stream{}, "", fmt.Errorf("create stream %q: %w", name, err)
	}
	return st, key, nil
}

// RotateKey implements store.Backend.
func (s *Store) RotateKey(name string) (store.Stream, string, error) {
	key, err := newSecretString()
	if err != nil {
		return store.Stream{}, "", err
	}
	var st store.Stream
	err = s.update(func(stm concurrency.STM) error {
		if st, err = s.getStream(stm, name); err != nil {
			return err
		}
		if st.Revoked {
			return store.ErrNotFound
		}
		stm.Del(s.hashKey(st.KeyHash))
		st.KeyHash = hashKey(key)
		st.KeyGen++
		stm.Put(s.hashKey(st.KeyHash), name)
		return s.putStream(stm, st)
	})
	if err != nil {
		return store.Stream{}, "", fmt.Errorf("rotate key of %q: %w", name, err)
	}
	return st, key, nil
}

// Revoke implements store.Backend.
func (s *Store) Revoke(name string) (store.Stream, error) {
	var st store.Stream
	err := s.update(func(stm concurrency.STM) (err error) {
		if st, err = s.getStream(stm, name); err != nil || st.Revoked {
			return err
		}
		st.Revoked, st.RevokedAt = true, s.now().UTC()
		st.KeyGen++
		stm.Del(s.hashKey(st.KeyHash))
		return s.putStream(stm, st)
	})
	if err != nil {
		return store.Stream{}, fmt.Errorf("revoke %q: %w", name, err)
	}
	return st, nil
}

// SetPrivate implements store.Backend.
func (s *Store) SetPrivate(name string, private bool) error {
	err := s.update(func(stm concurrency.STM) error {
		st, err := s.getStream(stm, name)
		if err != nil {
			return err
		}
		st.Private = private
		return s.putStream(stm, st)
	})
	if err != nil {
		return fmt.Errorf("set private on %q: %w", name, err)
	}
	return nil
}

// Authorize implements store.Backend. Where etcd's roles keep the caller
// (a seeder) from writing stream records, the key is checked all the
// same and its last use is not recorded.
func (s *Store) Authorize(key string) (store.Stream, error) {
	h := hashKey(key)
	var st store.Stream
	check := func(stm concurrency.STM) (err error) {
		hk := s.hashKey(h)
		if stm.Rev(hk) == 0 {
			return store.ErrBadKey
		}
		if st, err = s.getStream(stm, stm.Get(hk)); err != nil {
			return err
		}
		// Defence in depth: the keys index and the record must agree.
		if st.Revoked || subtle.ConstantTimeCompare(st.KeyHash, h) != 1 {
			return store.ErrBadKey
		}
		return nil
	}
	err := s.update(func(stm concurrency.STM) error {
		if err := check(stm); err != nil {
			return err
		}
		st.LastUsed = s.now().UTC()
		return s.putStream(stm, st)
	})
	if errors.Is(err, rpctypes.ErrPermissionDenied) {
		err = s.update(check) // reads only
	}
	if err != nil {
		return store.Stream{}, fmt.Errorf("authorize stream key: %w", err)
	}
	return st, nil
}

// CheckKeyGen implements store.Backend.
func (s *Store) CheckKeyGen(name string, gen uint64) error {
	return store.CheckKeyGenOf(s, name, gen)
}

// Stream implements store.Backend.
func (s *Store) Stream(name string) (store.Stream, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.c.Get(ctx, s.streamKey(name))
	if err != nil {
		return store.Stream{}, fmt.Errorf("read stream %q: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return store.Stream{}, fmt.Errorf("read stream %q: %w", name, store.ErrNotFound)
	}
	var st store.Stream
	if err := json.Unmarshal(resp.Kvs[0].Value, &st); err != nil {
		return store.Stream{}, fmt.Errorf("decode stream %q: %w", name, err)
	}
	return st, nil
}

// Streams implements store.Backend.
func (s *Store) Streams() ([]store.Stream, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.c.Get(ctx, s.prefix+"streams/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	out := make([]store.Stream, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var st store.Stream
		if err := json.Unmarshal(kv.Value, &st); err != nil {
			return nil, fmt.Errorf("list streams: decode %q: %w", kv.Key, err)
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// EnsureAdminToken implements store.Backend. Unlike the bbolt store it
// writes no file: the first tracker to start prints the token once.
func (s *Store) EnsureAdminToken() (token string, created bool, err error) {
	t, err := newSecretString()
	if err != nil {
		return "", false, err
	}
	err = s.update(func(stm concurrency.STM) error {
		token, created = "", false
		if stm.Rev(s.metaKey("admin_token_sha256")) != 0 {
			return nil
		}
		token, created = t, true
		stm.Put(s.metaKey("admin_token_sha256"), string(hashKey(t)))
		return nil
	})
	if err != nil {
		return "", false, fmt.Errorf("ensure admin token: %w", err)
	}
	return token, created, nil
}

// CheckAdminToken implements store.Backend, in constant time.
func (s *Store) CheckAdminToken(token string) bool {
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.c.Get(ctx, s.metaKey("admin_token_sha256"))
	if err != nil || len(resp.Kvs) == 0 {
		return false
	}
	want := resp.Kvs[0].Value
	return len(want) == sha256.Size && subtle.ConstantTimeCompare(want, hashKey(token)) == 1
}

// Secret implements store.Backend: the first caller's random bytes win.
func (s *Store) Secret(name string, n int) ([]byte, error) {
	fresh := make([]byte, n)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	var out []byte
	err := s.update(func(stm concurrency.STM) error {
		k := s.secretKey(name)
		if stm.Rev(k) != 0 {
			out = []byte(stm.Get(k))
			return nil
		}
		out = fresh
		stm.Put(k, string(fresh))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("secret %q: %w", name, err)
	}
	return out, nil
}

// SeederKeyName is the Secret that holds seeder id's own secret (its
// hellos' MAC key): etcd roles let each seeder read only its own.
func SeederKeyName(id string) string { return "seeder-key/" + id }

// SeederKey reads seeder id's secret without making one: the tracker
// checks a seeder's hello with it. store.ErrNotFound when the seeder has
// none (it was never created, or it was revoked).
func (s *Store) SeederKey(id string) ([]byte, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.c.Get(ctx, s.secretKey(SeederKeyName(id)))
	if err != nil {
		return nil, fmt.Errorf("read the key of seeder %q: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("seeder %q: %w", id, store.ErrNotFound)
	}
	return resp.Kvs[0].Value, nil
}

// DeleteSeederKey revokes seeder id's secret: trackers refuse its hellos
// from then on (a new one is made by Secret(SeederKeyName(id))).
func (s *Store) DeleteSeederKey(id string) error {
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.c.Delete(ctx, s.secretKey(SeederKeyName(id)))
	if err != nil {
		return fmt.Errorf("delete the key of seeder %q: %w", id, err)
	}
	if resp.Deleted == 0 {
		return fmt.Errorf("seeder %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// NextStart implements store.Backend: one counter for the whole cluster,
// so peer ids never repeat across trackers either.
func (s *Store) NextStart() (uint64, error) {
	var n uint64
	err := s.update(func(stm concurrency.STM) error {
		n = 0
		if v := stm.Get(s.metaKey("starts")); v != "" {
			var err error
			if n, err = strconv.ParseUint(v, 10, 64); err != nil {
				return fmt.Errorf("decode start count: %w", err)
			}
		}
		n++
		stm.Put(s.metaKey("starts"), strconv.FormatUint(n, 10))
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count starts: %w", err)
	}
	return n, nil
}

// ViewerTokenSecret implements store.Backend.
func (s *Store) ViewerTokenSecret() ([]byte, error) {
	return s.Secret(store.SecretViewerToken, 32)
}

func (s *Store) sessionKey(token string) string {
	return s.prefix + "admin_sessions/" + hex.EncodeToString(hashKey(token))
}

// CreateAdminSession implements store.Backend: the session's key (the
// token's SHA-256) lives on an etcd lease of ttl, so etcd drops it when it
// expires.
func (s *Store) CreateAdminSession(ttl time.Duration) (string, time.Time, error) {
	if ttl <= 0 {
		return "", time.Time{}, errors.New("create admin session: ttl must be positive")
	}
	tok, err := newSecretString()
	if err != nil {
		return "", time.Time{}, err
	}
	now := s.now().UTC()
	sess := store.AdminSession{Created: now, Expires: now.Add(ttl)}
	b, err := json.Marshal(sess)
	if err != nil {
		return "", time.Time{}, err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	lease, err := s.c.Grant(ctx, int64((ttl+time.Second-1)/time.Second))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("create admin session: %w", err)
	}
	if _, err := s.c.Put(ctx, s.sessionKey(tok), string(b), clientv3.WithLease(lease.ID)); err != nil {
		return "", time.Time{}, fmt.Errorf("create admin session: %w", err)
	}
	return tok, sess.Expires, nil
}

// CheckAdminSession implements store.Backend.
func (s *Store) CheckAdminSession(token string) bool {
	if token == "" || len(token) > 256 {
		return false
	}
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.c.Get(ctx, s.sessionKey(token))
	if err != nil || len(resp.Kvs) == 0 {
		return false
	}
	var sess store.AdminSession
	return json.Unmarshal(resp.Kvs[0].Value, &sess) == nil && s.now().Before(sess.Expires)
}

// DeleteAdminSession implements store.Backend.
func (s *Store) DeleteAdminSession(token string) error {
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.c.Delete(ctx, s.sessionKey(token)); err != nil {
		return fmt.Errorf("delete admin session: %w", err)
	}
	return nil
}

// RotateAdminToken implements store.Backend: one transaction replaces the
// token's hash and ends every session. Unlike the bbolt store it writes no
// file; the caller prints the token.
func (s *Store) RotateAdminToken() (string, error) {
	t, err := newSecretString()
	if err != nil {
		return "", err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	_, err = s.c.Txn(ctx).Then(
		clientv3.OpPut(s.metaKey("admin_token_sha256"), string(hashKey(t))),
		clientv3.OpDelete(s.prefix+"admin_sessions/", clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return "", fmt.Errorf("rotate admin token: %w", err)
	}
	return t, nil
}

// auditKey orders entries by sequence (zero-padded, so keys sort as
// numbers).
func (s *Store) auditKey(seq uint64) string {
	return fmt.Sprintf("%saudit/%020d", s.prefix, seq)
}

// AppendAudit implements store.Backend: the sequence is a counter under
// meta/, taken in the same transaction as the entry; entries more than
// store.MaxAuditEntries behind are deleted as new ones come.
func (s *Store) AppendAudit(e store.AuditEntry) (store.AuditEntry, error) {
	if e.Time.IsZero() {
		e.Time = s.now().UTC()
	}
	err := s.update(func(stm concurrency.STM) error {
		var seq uint64
		if v := stm.Get(s.metaKey("audit_seq")); v != "" {
			var err error
			if seq, err = strconv.ParseUint(v, 10, 64); err != nil {
				return fmt.Errorf("decode audit sequence: %w", err)
			}
		}
		seq++
		e.Seq = seq
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		stm.Put(s.metaKey("audit_seq"), strconv.FormatUint(seq, 10))
		stm.Put(s.auditKey(seq), string(b))
		if seq > store.MaxAuditEntries {
			stm.Del(s.auditKey(seq - store.MaxAuditEntries))
		}
		return nil
	})
	if err != nil {
		return store.AuditEntry{}, fmt.Errorf("append audit entry %q: %w", e.Action, err)
	}
	return e, nil
}

// Audit implements store.Backend: up to limit entries, newest first.
func (s *Store) Audit(limit int) ([]store.AuditEntry, error) {
	if limit <= 0 {
		return nil, nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.c.Get(ctx, s.prefix+"audit/", clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	out := make([]store.AuditEntry, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var e store.AuditEntry
		if err := json.Unmarshal(kv.Value, &e); err != nil {
			return nil, fmt.Errorf("decode audit entry %s: %w", kv.Key, err)
		}
		out = append(out, e)
	}
	return out, nil
}
