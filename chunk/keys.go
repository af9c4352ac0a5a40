package chunk

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"sync"

	"github.com/banyan-live/banyan/internal/errs"
	"github.com/banyan-live/banyan/internal/jsonwire"
)

// Key sizes.
const (
	MasterKeySize  = 16 // AES-128
	MasterSaltSize = 12 // GCM nonce size
	sessionLabel   = "banyan chunk v1 session key"
	sessionSecret  = MasterKeySize + MasterSaltSize
)

// MasterKey is one content key of a stream. The tracker sends it (as JSON)
// only to admitted viewers; the seeder encrypts with it. Its String method
// does not reveal the secret, so it can be logged.
type MasterKey struct {
	ID   uint32
	Key  [MasterKeySize]byte
	Salt [MasterSaltSize]byte
}

// NewMasterKey returns a fresh random key with the given id, read from r
// (crypto/rand when r is nil).
func NewMasterKey(id uint32, r io.Reader) (MasterKey, error) {
	if r == nil {
		r = rand.Reader
	}
	k := MasterKey{ID: id}
	if _, err := io.ReadFull(r, k.Key[:]); err != nil {
		return MasterKey{}, errs.Wrap("chunk: new master key: ", err, "")
	}
	if _, err := io.ReadFull(r, k.Salt[:]); err != nil {
		return MasterKey{}, errs.Wrap("chunk: new master key: ", err, "")
	}
	return k, nil
}

func (k MasterKey) String() string {
	return "chunk.MasterKey{ID:" + strconv.FormatUint(uint64(k.ID), 10) + "}"
}
func (k MasterKey) GoString() string { return k.String() }

// Equal compares two keys in constant time.
func (k MasterKey) Equal(o MasterKey) bool {
	return k.ID == o.ID &&
		subtle.ConstantTimeCompare(k.Key[:], o.Key[:]) == 1 &&
		subtle.ConstantTimeCompare(k.Salt[:], o.Salt[:]) == 1
}

// Base64 returns the key and the salt in standard base64, as the JSON
// form and protocol.ContentKey carry them.
func (k MasterKey) Base64() (key, salt string) {
	return base64.StdEncoding.EncodeToString(k.Key[:]), base64.StdEncoding.EncodeToString(k.Salt[:])
}

// ParseMasterKey builds key id from its base64 key and salt (protocol's
// ContentKey) and rejects wrong lengths.
func ParseMasterKey(id uint32, key, salt string) (MasterKey, error) {
	out := MasterKey{ID: id}
	if err := decodeFixed(out.Key[:], key); err != nil {
		return MasterKey{}, errs.Wrap("chunk: master key: key: ", err, "")
	}
	if err := decodeFixed(out.Salt[:], salt); err != nil {
		return MasterKey{}, errs.Wrap("chunk: master key: salt: ", err, "")
	}
	return out, nil
}

// MarshalJSON encodes {"id":N,"key":"<base64>","salt":"<base64>"}
// (internal/jsonwire: no encoding/json in the browser's wasm).
func (k MasterKey) MarshalJSON() ([]byte, error) {
	key, salt := k.Base64()
	w := jsonwire.Writer{B: make([]byte, 0, 80)}
	w.Open()
	w.Key("id")
	w.Uint(uint64(k.ID))
	w.Key("key")
	w.String(key)
	w.Key("salt")
	w.String(salt)
	w.Close()
	return w.B, nil
}

// UnmarshalJSON decodes what MarshalJSON produces (as encoding/json would
// into a struct of those three fields) and rejects wrong lengths.
func (k *MasterKey) UnmarshalJSON(b []byte) error {
	var id uint32
	var key, salt string
	r := jsonwire.NewReader(b)
	r.Object(func(name []byte) {
		switch string(name) {
		case "id":
			if v, ok := r.Uint(32); ok {
				id = uint32(v)
			}
		case "key":
			r.String(&key)
		case "salt":
			r.String(&salt)
		default:
			r.Skip()
		}
	})
	if err := r.Done(); err != nil {
		return errs.Wrap("chunk: master key json: ", err, "")
	}
	out, err := ParseMasterKey(id, key, salt)
	if err != nil {
		return err
	}
	*k = out
	return nil
}

func decodeFixed(dst []byte, s string) error {
	if base64.StdEncoding.DecodedLen(len(s)) > len(dst)+2 {
		return errors.New(strconv.Itoa(len(s)) + " base64 characters, want " + strconv.Itoa(len(dst)) + " bytes")
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	if len(b) != len(dst) {
		return errors.New(strconv.Itoa(len(b)) + " bytes, want " + strconv.Itoa(len(dst)))
	}
	copy(dst, b)
	return nil
}

// sessionKey is the AEAD and nonce salt of one (stream, epoch, key id).
type sessionKey struct {
	aead cipher.AEAD
	salt [MasterSaltSize]byte
	// raw is the AES key, and web its WebCrypto copy in the browser
	// (webcrypto_js.go).
	raw [MasterKeySize]byte
	web webKey
}

func sessionInfo(stream string, epoch, keyID uint32) string {
	b := make([]byte, 0, len(sessionLabel)+2+len(stream)+8)
	b = append(b, sessionLabel...)
	b = append(b, 0, byte(len(stream)))
	b = append(b, stream...)
	b = binary.BigEndian.AppendUint32(b, epoch)
	b = binary.BigEndian.AppendUint32(b, keyID)
	return string(b)
}

func deriveSession(mk *MasterKey, stream string, epoch uint32) (*sessionKey, error) {
	okm, err := hkdf.Key(sha256.New, mk.Key[:], mk.Salt[:], sessionInfo(stream, epoch, mk.ID), sessionSecret)
	if err != nil {
		return nil, errs.Wrap("derive session key: ", err, "")
	}
	block, err := aes.NewCipher(okm[:MasterKeySize])
	if err != nil {
		return nil, errs.Wrap("derive session key: ", err, "")
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, errs.Wrap("derive session key: ", err, "")
	}
	s := &sessionKey{aead: aead}
	copy(s.salt[:], okm[MasterKeySize:])
	copy(s.raw[:], okm[:MasterKeySize])
	return s, nil
}

// nonce is the session salt XOR (epoch ‖ seq): unique per chunk of a
// session as long as (epoch, seq) is.
func (s *sessionKey) nonce(epoch uint32, seq uint64) []byte {
	n := make([]byte, MasterSaltSize)
	binary.BigEndian.PutUint32(n[0:], epoch)
	binary.BigEndian.PutUint64(n[4:], seq)
	subtle.XORBytes(n, n, s.salt[:])
	return n
}

// Keyring limits.
const (
	// MaxKeys is how many master keys a Keyring holds; adding another drops
	// the oldest. Rotation needs two (old and new), a few more absorb
	// delivery delays.
	MaxKeys = 8
	// maxSessions bounds the derived-key cache. Derivation happens only
	// for chunks whose signature verified, so a hostile peer cannot make us
	// churn it.
	maxSessions = 32
)

type sessionID struct {
	stream string
	epoch  uint32
	keyID  uint32
}

// Keyring holds the master keys of a stream by id and caches the session
// keys derived from them. It is safe for concurrent use. The zero value is
// an empty keyring.
type Keyring struct {
	mu       sync.RWMutex
	keys     []MasterKey // oldest first, len <= MaxKeys
	sessions map[sessionID]*sessionKey
	order    []sessionID // insertion order of sessions, for eviction
}

// NewKeyring returns a keyring holding keys (at most the last MaxKeys).
func NewKeyring(keys ...MasterKey) (*Keyring, error) {
	r := &Keyring{}
	for _, k := range keys {
		if err := r.Add(k); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Add inserts k. Adding a key that is already present is a no-op; adding a
// different key under a present id fails with ErrKeyConflict, because
// chunks already sealed under that id would silently stop opening. When the
// ring is full the oldest key is dropped.
func (r *Keyring) Add(k MasterKey) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, have := range r.keys {
		if have.ID == k.ID {
			if have.Equal(k) {
				return nil
			}
			return errs.Wrap("chunk: keyring add "+strconv.FormatUint(uint64(k.ID), 10)+": ", ErrKeyConflict, "")
		}
	}
	if len(r.keys) >= MaxKeys {
		r.removeLocked(r.keys[0].ID)
	}
	r.keys = append(r.keys, k)
	return nil
}

// Remove drops the key with id and everything derived from it.
func (r *Keyring) Remove(id uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removeLocked(id)
}

func (r *Keyring) removeLocked(id uint32) {
	for i, k := range r.keys {
		if k.ID == id {
			r.keys = append(r.keys[:i], r.keys[i+1:]...)
			break
		}
	}
	kept := r.order[:0]
	for _, sid := range r.order {
		if sid.keyID == id {
			delete(r.sessions, sid)
			continue
		}
		kept = append(kept, sid)
	}
	r.order = kept
}

// Get returns the key with id.
func (r *Keyring) Get(id uint32) (MasterKey, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, k := range r.keys {
		if k.ID == id {
			return k, true
		}
	}
	return MasterKey{}, false
}

// IDs lists the key ids held, oldest first.
func (r *Keyring) IDs() []uint32 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ids := make([]uint32, len(r.keys))
	for i, k := range r.keys {
		ids[i] = k.ID
	}
	return ids
}

// session returns the cached session key, deriving it on first use.
func (r *Keyring) session(stream string, epoch, keyID uint32) (*sessionKey, error) {
	sid := sessionID{stream: stream, epoch: epoch, keyID: keyID}
	r.mu.RLock()
	s, ok := r.sessions[sid]
	r.mu.RUnlock()
	if ok {
		return s, nil
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.sessions[sid]; ok {
		return s, nil
	}
	var mk *MasterKey
	for i := range r.keys {
		if r.keys[i].ID == keyID {
			mk = &r.keys[i]
			break
		}
	}
	if mk == nil {
		return nil, errs.Wrap("", ErrUnknownKey, " "+strconv.FormatUint(uint64(keyID), 10))
	}
	s, err := deriveSession(mk, stream, epoch)
	if err != nil {
		return nil, err
	}
	if r.sessions == nil {
		r.sessions = make(map[sessionID]*sessionKey)
	}
	if len(r.order) >= maxSessions {
		delete(r.sessions, r.order[0])
		r.order = append(r.order[:0], r.order[1:]...)
	}
	r.sessions[sid] = s
	r.order = append(r.order, sid)
	return s, nil
}
