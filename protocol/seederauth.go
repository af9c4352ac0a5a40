package protocol

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"time"
)

// SeederAuthSkew is how far a SeederHello's Time may be from the
// tracker's clock; a tracker remembers nonces for twice as long.
const SeederAuthSkew = 30 * time.Second

// ValidSeederID reports whether id can name a seeder: the rule of stream
// names (1-64 of a-z, 0-9, '_' and '-', not starting with a separator).
func ValidSeederID(id string) bool { return ValidStream(id) }

// SeederMAC is the Auth of a SeederHello: HMAC-SHA256 under the seeder
// secret of the seeder's id, the stream, the time and the nonce, each
// field length-delimited so no two hellos share an input.
func SeederMAC(secret []byte, id, stream string, unixMilli int64, nonce string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("banyan seeder v2\n"))
	for _, f := range []string{id, stream, strconv.FormatInt(unixMilli, 10), nonce} {
		m.Write([]byte(strconv.Itoa(len(f)) + ":" + f + "\n"))
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Sign fills the hello's SeederID, Time, Nonce and Auth for a seeder
// called id sharing secret with the tracker; nonce must be fresh random
// text (at most 64 characters).
func (h *SeederHello) Sign(secret []byte, id string, now time.Time, nonce string) {
	h.SeederID, h.Time, h.Nonce = id, now.UnixMilli(), nonce
	h.Auth = SeederMAC(secret, id, h.Stream, h.Time, nonce)
}
