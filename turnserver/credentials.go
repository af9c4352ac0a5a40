package turnserver

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // the coturn REST convention mandates HMAC-SHA1; HMAC keeps it sound
	"encoding/base64"
	"errors"
	"strconv"
	"time"
)

// Credential limits. The username travels in every authenticated TURN request, so it is
// parsed on hostile input: the bounds keep the parse O(1) and the peer id printable.
const (
	// MaxPeerIDLen is the longest peer id a TURN username may carry.
	MaxPeerIDLen = 128
	// maxExpiryDigits fits any int64 number of seconds.
	maxExpiryDigits = 19
	// maxUsernameLen is the longest username ParseUsername accepts.
	maxUsernameLen = maxExpiryDigits + 1 + MaxPeerIDLen
)

var (
	// ErrMalformedUsername is returned for a username that is not "expiry:peerid".
	ErrMalformedUsername = errors.New("turnserver: malformed username (want \"<unix expiry>:<peer id>\")")
	// ErrExpired is returned for a credential whose expiry has passed.
	ErrExpired = errors.New("turnserver: credential expired")
)

// Credentials mints short-lived TURN credentials for one peer, following the coturn REST
// convention (draft-uberti-behave-turn-rest, coturn's use-auth-secret): the username is
// "<unix expiry>:<peerID>" and the password is base64(HMAC-SHA1(secret, username)).
// A coturn started with use-auth-secret and static-auth-secret=<secret> accepts them too.
//
// peerID must be 1..MaxPeerIDLen printable ASCII bytes without ':' (the tracker's ids are);
// otherwise the server refuses the resulting username as malformed.
func Credentials(secret []byte, peerID string, ttl time.Duration, now time.Time) (username, password string) {
	username = strconv.FormatInt(now.Add(ttl).Unix(), 10) + ":" + peerID

	return username, Password(secret, username)
}

// Password is base64(HMAC-SHA1(secret, username)), the coturn REST password of username.
func Password(secret []byte, username string) string {
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(username)) // hash.Hash.Write never fails

	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// ParseUsername splits a coturn REST username "<unix expiry>:<peer id>". It does not check
// the expiry against a clock: see CheckUsername.
func ParseUsername(username string) (expiry time.Time, peerID string, err error) {
	if len(username) > maxUsernameLen {
		return time.Time{}, "", ErrMalformedUsername
	}
	colon := -1
	for i := 0; i < len(username); i++ {
		if username[i] == ':' {
			colon = i

			break
		}
	}
	if colon < 1 || colon > maxExpiryDigits {
		return time.Time{}, "", ErrMalformedUsername
	}
	digits, id := username[:colon], username[colon+1:]
	for i := 0; i < len(digits); i++ {
		// Digits only: strconv would also take a sign, and "+1" or "-0" are not what the
		// tracker mints.
		if digits[i] < '0' || digits[i] > '9' {
			return time.Time{}, "", ErrMalformedUsername
		}
	}
	secs, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return time.Time{}, "", ErrMalformedUsername
	}
	if !validPeerID(id) {
		return time.Time{}, "", ErrMalformedUsername
	}

	return time.Unix(secs, 0), id, nil
}

// CheckUsername parses username and refuses it once its expiry (whole seconds) is before now.
func CheckUsername(username string, now time.Time) (peerID string, err error) {
	expiry, peerID, err := ParseUsername(username)
	if err != nil {
		return "", err
	}
	if now.Unix() > expiry.Unix() {
		return "", ErrExpired
	}

	return peerID, nil
}

// validPeerID reports whether id is 1..MaxPeerIDLen printable ASCII bytes other than ':'.
func validPeerID(id string) bool {
	if len(id) == 0 || len(id) > MaxPeerIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c <= ' ' || c > '~' || c == ':' {
			return false
		}
	}

	return true
}
