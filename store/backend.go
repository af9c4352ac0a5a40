package store

import "time"

// Backend is the durable state every tracker and seeder shares: stream
// records, hashed stream keys, the hashed admin token, generated secrets
// and the start counter that peer ids come from. *Store (bbolt, one
// process: `banyan up`) and etcdstore.Store (a cluster) implement it;
// package storetest holds the table tests both pass.
//
// Every method has the meaning *Store documents; errors wrap the same
// sentinels (ErrInvalidName, ErrExists, ErrNotFound, ErrBadKey).
type Backend interface {
	// CreateStream makes a stream with a fresh key, returned once.
	CreateStream(name string) (Stream, string, error)
	RotateKey(name string) (Stream, string, error)
	Revoke(name string) (Stream, error)
	SetPrivate(name string, private bool) error
	// Authorize checks a publisher's key and records its use.
	Authorize(key string) (Stream, error)
	CheckKeyGen(name string, gen uint64) error
	Stream(name string) (Stream, error)
	Streams() ([]Stream, error)
	// EnsureAdminToken makes the admin token on first use and returns it
	// with created=true, that once.
	EnsureAdminToken() (token string, created bool, err error)
	CheckAdminToken(token string) bool
	// Secret returns the named secret, generating n random bytes once.
	Secret(name string, n int) ([]byte, error)
	// NextStart counts server starts; it never repeats.
	NextStart() (uint64, error)

	// Operator state (admin.go): dashboard sessions, the admin token's
	// rotation, the audit log and the viewer-token secret.
	ViewerTokenSecret() ([]byte, error)
	CreateAdminSession(ttl time.Duration) (token string, expires time.Time, err error)
	CheckAdminSession(token string) bool
	DeleteAdminSession(token string) error
	RotateAdminToken() (string, error)
	AppendAudit(e AuditEntry) (AuditEntry, error)
	Audit(limit int) ([]AuditEntry, error)

	Close() error
}

var _ Backend = (*Store)(nil)
