package chunk

import (
	"crypto"
	"crypto/ed25519"
	"errors"
	"slices"
	"strconv"
	"sync"

	"github.com/banyan-live/banyan/internal/errs"
)

// signContext is the Ed25519ph context string: domain separation from every
// other use of the stream's signing key.
const signContext = "banyan chunk v1"

var signOpts = &ed25519.Options{Hash: crypto.SHA512, Context: signContext}

// Seal encrypts payload under keys' session key for (stream, h.Epoch,
// h.KeyID), signs the result with priv and appends the sealed chunk to dst.
// h.PayloadLen is set from payload. Seal keeps no state: the caller must
// never seal two chunks with the same (epoch, sequence) under one key, or
// the GCM nonce repeats; Sealer enforces that.
func Seal(dst []byte, h Header, payload []byte, keys *Keyring, priv ed25519.PrivateKey, stream string) ([]byte, error) {
	if err := checkStream(stream); err != nil {
		return dst, errs.Wrap("chunk: seal: ", err, "")
	}
	if len(priv) != ed25519.PrivateKeySize {
		return dst, errors.New("chunk: seal: private key has " + strconv.Itoa(len(priv)) + " bytes, want " + strconv.Itoa(ed25519.PrivateKeySize))
	}
	if keys == nil {
		return dst, errs.Wrap("chunk: seal: ", ErrUnknownKey, " "+strconv.FormatUint(uint64(h.KeyID), 10)+" (no keyring)")
	}
	if len(payload) > MaxPayload {
		return dst, errs.Wrap("chunk: seal: ", ErrMalformed, ": payload of "+strconv.Itoa(len(payload))+" bytes exceeds "+strconv.Itoa(MaxPayload))
	}
	h.PayloadLen = uint32(len(payload))
	if err := h.validate(); err != nil {
		return dst, errs.Wrap("chunk: seal: ", err, "")
	}
	sk, err := keys.session(stream, h.Epoch, h.KeyID)
	if err != nil {
		return dst, errs.Wrap("chunk: seal: ", err, "")
	}

	start := len(dst)
	out := slices.Grow(dst, h.SealedLen())
	out = h.appendTo(out)
	// The AEAD contract forbids dst and additional data overlapping, so the
	// AAD is a copy of the header rather than a view of out.
	aad := make([]byte, HeaderSize)
	copy(aad, out[start:])
	out = sk.aead.Seal(out, sk.nonce(h.Epoch, h.Seq), payload, aad)

	sig, err := priv.Sign(nil, digest(stream, out[start:]), signOpts)
	if err != nil {
		return dst, errs.Wrap("chunk: seal: sign: ", err, "")
	}
	return append(out, sig...), nil
}

// Verify checks that sealed is a well-formed chunk of stream signed by pub
// and returns its header. It does not decrypt, so relays and the tracker
// need no content key.
func Verify(pub ed25519.PublicKey, stream string, sealed []byte) (Header, error) {
	h, err := verify(pub, stream, sealed)
	if err != nil {
		return Header{}, errs.Wrap("chunk: verify: ", err, "")
	}
	return h, nil
}

func verify(pub ed25519.PublicKey, stream string, sealed []byte) (Header, error) {
	if err := checkStream(stream); err != nil {
		return Header{}, err
	}
	if len(pub) != ed25519.PublicKeySize {
		// VerifyWithOptions would panic.
		return Header{}, errs.Wrap("", ErrBadSignature, ": public key has "+strconv.Itoa(len(pub))+" bytes, want "+strconv.Itoa(ed25519.PublicKeySize))
	}
	h, err := parseHeader(sealed)
	if err != nil {
		return Header{}, err
	}
	if len(sealed) != h.SealedLen() {
		return Header{}, errs.Wrap("", ErrMalformed, ": "+strconv.Itoa(len(sealed))+" bytes, header says "+strconv.Itoa(h.SealedLen()))
	}
	body := len(sealed) - SignatureSize
	if err := ed25519.VerifyWithOptions(pub, prehash(stream, sealed[:body]), sealed[body:], signOpts); err != nil {
		return Header{}, errs.Wrap("", ErrBadSignature, ": stream "+strconv.Quote(stream)+" epoch "+strconv.FormatUint(uint64(h.Epoch), 10)+" seq "+strconv.FormatUint(h.Seq, 10))
	}
	return h, nil
}

// Open verifies sealed like Verify and then decrypts its payload with the
// matching key from keys. The returned payload is newly allocated.
func Open(pub ed25519.PublicKey, stream string, keys *Keyring, sealed []byte) (Header, []byte, error) {
	h, err := verify(pub, stream, sealed)
	if err != nil {
		return Header{}, nil, errs.Wrap("chunk: open: ", err, "")
	}
	if keys == nil {
		return Header{}, nil, errs.Wrap("chunk: open: ", ErrUnknownKey, " "+strconv.FormatUint(uint64(h.KeyID), 10)+" (no keyring)")
	}
	sk, err := keys.session(stream, h.Epoch, h.KeyID)
	if err != nil {
		return Header{}, nil, errs.Wrap("chunk: open: ", err, "")
	}
	ct := sealed[HeaderSize : len(sealed)-SignatureSize]
	pt, err := sk.open(make([]byte, 0, h.PayloadLen), sk.nonce(h.Epoch, h.Seq), ct, sealed[:HeaderSize])
	if err != nil {
		// Only a seeder bug or a wrong key with a valid signature gets here.
		return Header{}, nil, errs.Wrap("chunk: open: ", ErrDecrypt, ": epoch "+strconv.FormatUint(uint64(h.Epoch), 10)+" seq "+strconv.FormatUint(h.Seq, 10)+" key "+strconv.FormatUint(uint64(h.KeyID), 10))
	}
	return h, pt, nil
}

// SealerConfig configures a Sealer.
type SealerConfig struct {
	Stream     string
	PrivateKey ed25519.PrivateKey
	// Keys holds the stream's master keys; the Sealer shares it, so keys
	// added to it later (rotation) become usable by SetActiveKey.
	Keys *Keyring
	// KeyID is the key to seal with until SetActiveKey changes it; it must
	// be in Keys.
	KeyID uint32
}

// Sealer seals the chunks of one stream on the seeder's hot path. It sets
// each header's key id to the active key and refuses an (epoch, sequence)
// that is not strictly after the previous one, so a bug upstream cannot
// reuse a GCM nonce. That memory lives only as long as the Sealer: a new
// Sealer for the same master keys (a seeder restart, a republish) must start
// a new, higher epoch, or use fresh master keys. It is safe for concurrent
// use.
type Sealer struct {
	stream string
	priv   ed25519.PrivateKey
	keys   *Keyring

	mu      sync.Mutex
	keyID   uint32
	started bool
	epoch   uint32
	seq     uint64
}

// NewSealer checks cfg and returns a Sealer.
func NewSealer(cfg SealerConfig) (*Sealer, error) {
	if err := checkStream(cfg.Stream); err != nil {
		return nil, errs.Wrap("chunk: new sealer: ", err, "")
	}
	if len(cfg.PrivateKey) != ed25519.PrivateKeySize {
		return nil, errors.New("chunk: new sealer: private key has " + strconv.Itoa(len(cfg.PrivateKey)) + " bytes, want " + strconv.Itoa(ed25519.PrivateKeySize))
	}
	if cfg.Keys == nil {
		return nil, errors.New("chunk: new sealer: no keyring")
	}
	if _, ok := cfg.Keys.Get(cfg.KeyID); !ok {
		return nil, errs.Wrap("chunk: new sealer: ", ErrUnknownKey, " "+strconv.FormatUint(uint64(cfg.KeyID), 10))
	}
	return &Sealer{stream: cfg.Stream, priv: cfg.PrivateKey, keys: cfg.Keys, keyID: cfg.KeyID}, nil
}

// PublicKey returns the key viewers verify with.
func (s *Sealer) PublicKey() ed25519.PublicKey {
	return s.priv.Public().(ed25519.PublicKey)
}

// Stream returns the stream name chunks are bound to.
func (s *Sealer) Stream() string { return s.stream }

// ActiveKey returns the id of the key new chunks are sealed with.
func (s *Sealer) ActiveKey() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keyID
}

// SetActiveKey switches sealing to key id, which must be in the keyring.
// Rotate by adding the new key, handing it to viewers, and only then
// activating it; remove the old key once no chunk in flight needs it.
func (s *Sealer) SetActiveKey(id uint32) error {
	if _, ok := s.keys.Get(id); !ok {
		return errs.Wrap("chunk: set active key: ", ErrUnknownKey, " "+strconv.FormatUint(uint64(id), 10))
	}
	s.mu.Lock()
	s.keyID = id
	s.mu.Unlock()
	return nil
}

// Seal seals payload into a new exactly-sized buffer; see AppendSeal.
func (s *Sealer) Seal(h Header, payload []byte) ([]byte, error) {
	return s.AppendSeal(make([]byte, 0, Overhead+len(payload)), h, payload)
}

// AppendSeal appends the sealed chunk to dst. h.KeyID and h.PayloadLen are
// filled in. (h.Epoch, h.Seq) must be after the previous call's: a later
// epoch, or the same epoch and a higher sequence.
func (s *Sealer) AppendSeal(dst []byte, h Header, payload []byte) ([]byte, error) {
	s.mu.Lock()
	if s.started && (h.Epoch < s.epoch || (h.Epoch == s.epoch && h.Seq <= s.seq)) {
		last := s.seq
		s.mu.Unlock()
		return dst, errs.Wrap("chunk: seal epoch "+strconv.FormatUint(uint64(h.Epoch), 10)+" seq "+strconv.FormatUint(h.Seq, 10)+": ", ErrSeqOrder, " (last sealed epoch "+strconv.FormatUint(uint64(s.epoch), 10)+" seq "+strconv.FormatUint(last, 10)+")")
	}
	// Validate before consuming the sequence so a rejected header does not
	// burn it.
	if len(payload) > MaxPayload {
		s.mu.Unlock()
		return dst, errs.Wrap("chunk: seal: ", ErrMalformed, ": payload of "+strconv.Itoa(len(payload))+" bytes exceeds "+strconv.Itoa(MaxPayload))
	}
	h.PayloadLen = uint32(len(payload))
	if err := h.validate(); err != nil {
		s.mu.Unlock()
		return dst, errs.Wrap("chunk: seal: ", err, "")
	}
	s.started, s.epoch, s.seq = true, h.Epoch, h.Seq
	h.KeyID = s.keyID
	s.mu.Unlock()
	return Seal(dst, h, payload, s.keys, s.priv, s.stream)
}
