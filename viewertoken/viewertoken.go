// Package viewertoken mints and checks the tokens that admit viewers to a
// private stream. An operator's own site mints them with the shared secret
// (any language can: it is HMAC-SHA256 over a short string); the tracker
// checks them at join and hands content keys only to holders.
//
// Format: base64url(stream ":" expiry-unix-seconds) "." base64url(HMAC-SHA256(secret, that payload)),
// both without padding.
package viewertoken

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Errors, for logs; a viewer is told only that the token was refused.
var (
	ErrMalformed = errors.New("viewer token: malformed")
	ErrSignature = errors.New("viewer token: bad signature")
	ErrExpired   = errors.New("viewer token: expired")
	ErrStream    = errors.New("viewer token: for another stream")
)

// MaxLen bounds a token; longer input is refused before any work.
const MaxLen = 512

var enc = base64.RawURLEncoding

// Mint returns a token for stream valid until expiry.
func Mint(secret []byte, stream string, expiry time.Time) string {
	payload := stream + ":" + strconv.FormatInt(expiry.Unix(), 10)
	return enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(sign(secret, payload))
}

func sign(secret []byte, payload string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// Check verifies token for stream at time now and returns its expiry.
func Check(secret []byte, stream, token string, now time.Time) (time.Time, error) {
	if len(token) > MaxLen {
		return time.Time{}, ErrMalformed
	}
	p64, s64, ok := strings.Cut(token, ".")
	if !ok {
		return time.Time{}, ErrMalformed
	}
	payload, err1 := enc.DecodeString(p64)
	sig, err2 := enc.DecodeString(s64)
	if err1 != nil || err2 != nil || len(sig) != sha256.Size {
		return time.Time{}, ErrMalformed
	}
	// Signature first, so nothing about an unsigned payload is believed.
	if !hmac.Equal(sig, sign(secret, string(payload))) {
		return time.Time{}, ErrSignature
	}
	name, exp, ok := strings.Cut(string(payload), ":")
	if !ok {
		return time.Time{}, ErrMalformed
	}
	secs, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return time.Time{}, ErrMalformed
	}
	expiry := time.Unix(secs, 0)
	if name != stream {
		return time.Time{}, ErrStream
	}
	if !now.Before(expiry) {
		return time.Time{}, ErrExpired
	}
	return expiry, nil
}
