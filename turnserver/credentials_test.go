package turnserver

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v5"
)

func TestCredentials(t *testing.T) {
	secret := []byte("0123456789abcdef-secret")
	now := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name   string
		peerID string
		ttl    time.Duration
		user   string
	}{
		{"hour", "p1", time.Hour, "1700003600:p1"},
		{"sub-second ttl truncates", "peer-xyz", 1500 * time.Millisecond, "1700000001:peer-xyz"},
		{"max length id", strings.Repeat("a", MaxPeerIDLen), time.Minute, "1700000060:" + strings.Repeat("a", MaxPeerIDLen)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, pass := Credentials(secret, tt.peerID, tt.ttl, now)
			if user != tt.user {
				t.Fatalf("username = %q, want %q", user, tt.user)
			}
			if want := Password(secret, user); pass != want {
				t.Fatalf("password = %q, want %q", pass, want)
			}
			exp, id, err := ParseUsername(user)
			if err != nil || id != tt.peerID || !exp.Equal(now.Add(tt.ttl).Truncate(time.Second)) {
				t.Fatalf("ParseUsername(%q) = %v, %q, %v", user, exp, id, err)
			}
		})
	}
}

// TestPasswordKnownVector pins the HMAC-SHA1/base64 construction to a vector computed
// independently (python3 hmac.new(b"secret", b"1700000000:alice", "sha1"), base64).
func TestPasswordKnownVector(t *testing.T) {
	if got, want := Password([]byte("secret"), "1700000000:alice"), "d8soP47RbdIKLDUOpnJPVQyq5Ts="; got != want {
		t.Fatalf("Password = %q, want %q", got, want)
	}
}

// TestCoturnCompatible checks our credentials against pion's own implementation of the
// TURN REST convention (the one coturn's use-auth-secret implements): both must derive the
// same long-term key.
func TestCoturnCompatible(t *testing.T) {
	secret := "shared-secret-for-test"
	user, pass := Credentials([]byte(secret), "peer42", time.Hour, time.Now())
	handler := turn.LongTermTURNRESTAuthHandler(secret, nil)
	id, key, ok := handler(&turn.RequestAttributes{Username: user, Realm: "banyan", SrcAddr: &net.UDPAddr{}})
	if !ok || id != "peer42" {
		t.Fatalf("pion REST handler refused our username %q: id=%q ok=%v", user, id, ok)
	}
	if want := turn.GenerateAuthKey(user, "banyan", pass); string(key) != string(want) {
		t.Fatal("pion REST handler derives a different key from our password")
	}
	// And the other way: pion-minted REST credentials pass our parser and password.
	puser, ppass, err := turn.GenerateLongTermTURNRESTCredentials(secret, "peer7", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CheckUsername(puser, time.Now()); err != nil {
		t.Fatalf("CheckUsername(%q): %v", puser, err)
	}
	if Password([]byte(secret), puser) != ppass {
		t.Fatal("password differs from pion's REST password")
	}
}

func TestParseUsername(t *testing.T) {
	tests := []struct {
		in     string
		expiry int64
		id     string
		ok     bool
	}{
		{"1700000000:abc", 1700000000, "abc", true},
		{"0:x", 0, "x", true},
		{"9223372036854775807:x", 9223372036854775807, "x", true},
		{"1:a-b_c.d~e+f/g=", 1, "a-b_c.d~e+f/g=", true},
		{"", 0, "", false},
		{"1700000000", 0, "", false},             // no peer id (coturn accepts it; we do not)
		{":abc", 0, "", false},                   // no expiry
		{"1700000000:", 0, "", false},            // empty peer id
		{"+1700000000:abc", 0, "", false},        // sign
		{"-1:abc", 0, "", false},                 // negative
		{"17000x0000:abc", 0, "", false},         // not digits
		{"9223372036854775808:x", 0, "", false},  // int64 overflow
		{"12345678901234567890:x", 0, "", false}, // 20 digits
		{"1:a:b", 0, "", false},                  // ':' in peer id
		{"1:a b", 0, "", false},                  // space
		{"1:a\x00", 0, "", false},                // control byte
		{"1:a\x7f", 0, "", false},                // DEL
		{"1:é", 0, "", false},                    // non-ASCII
		{"1:" + strings.Repeat("a", MaxPeerIDLen+1), 0, "", false},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.in), func(t *testing.T) {
			exp, id, err := ParseUsername(tt.in)
			if !tt.ok {
				if !errors.Is(err, ErrMalformedUsername) {
					t.Fatalf("ParseUsername(%q) err = %v, want ErrMalformedUsername", tt.in, err)
				}

				return
			}
			if err != nil || exp.Unix() != tt.expiry || id != tt.id {
				t.Fatalf("ParseUsername(%q) = %d, %q, %v; want %d, %q", tt.in, exp.Unix(), id, err, tt.expiry, tt.id)
			}
		})
	}
}

func TestCheckUsername(t *testing.T) {
	now := time.Unix(1_700_000_000, 500_000_000)
	tests := []struct {
		in   string
		want error
	}{
		{"1700000001:p", nil},
		{"1700000000:p", nil}, // the expiry second itself is still valid
		{"1699999999:p", ErrExpired},
		{"0:p", ErrExpired},
		{"garbage", ErrMalformedUsername},
	}
	for _, tt := range tests {
		id, err := CheckUsername(tt.in, now)
		if !errors.Is(err, tt.want) || (err == nil && id != "p") {
			t.Errorf("CheckUsername(%q) = %q, %v; want %v", tt.in, id, err, tt.want)
		}
	}
}

func FuzzParseUsername(f *testing.F) {
	for _, s := range []string{"1700000000:abc", "0:x", "", ":", "1:", "-1:x", "99999999999999999999:x", "1:a:b", "1:\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		exp, id, err := ParseUsername(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedUsername) {
				t.Fatalf("unexpected error type %v", err)
			}

			return
		}
		if !validPeerID(id) || exp.Unix() < 0 {
			t.Fatalf("accepted %q with bad parts %d %q", s, exp.Unix(), id)
		}
		// A parsed username must be exactly what Credentials would mint for its parts
		// (no leading zeros are minted, so compare numerically on the expiry part).
		i := strings.IndexByte(s, ':')
		if n, _ := strconv.ParseInt(s[:i], 10, 64); n != exp.Unix() || s[i+1:] != id {
			t.Fatalf("round trip of %q gave %d:%q", s, exp.Unix(), id)
		}
	})
}
