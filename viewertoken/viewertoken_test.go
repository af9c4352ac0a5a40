package viewertoken

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	now := time.Unix(1_800_000_000, 0)
	good := Mint(secret, "show", now.Add(time.Hour))
	cases := []struct {
		name, stream, token string
		secret              []byte
		want                error
	}{
		{"valid", "show", good, secret, nil},
		{"other stream", "other", good, secret, ErrStream},
		{"expired", "show", Mint(secret, "show", now.Add(-time.Second)), secret, ErrExpired},
		{"expires now", "show", Mint(secret, "show", now), secret, ErrExpired},
		{"wrong secret", "show", good, []byte("nope"), ErrSignature},
		{"tampered payload", "show", enc.EncodeToString([]byte("show:9999999999")) + good[strings.IndexByte(good, '.'):], secret, ErrSignature},
		{"no dot", "show", "abc", secret, ErrMalformed},
		{"bad base64", "show", "!!.??", secret, ErrMalformed},
		{"short sig", "show", "c2hvdzox.AAAA", secret, ErrMalformed},
		{"empty", "show", "", secret, ErrMalformed},
		{"huge", "show", strings.Repeat("a", MaxLen+1), secret, ErrMalformed},
		{"signed garbage payload", "show", enc.EncodeToString([]byte("no-colon")) + "." + enc.EncodeToString(sign(secret, "no-colon")), secret, ErrMalformed},
	}
	for _, c := range cases {
		_, err := Check(c.secret, c.stream, c.token, now)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func FuzzCheck(f *testing.F) {
	secret := []byte("k")
	f.Add(Mint(secret, "s", time.Unix(2_000_000_000, 0)))
	f.Add("a.b")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		exp, err := Check(secret, "s", tok, time.Unix(1_900_000_000, 0))
		if err == nil && !exp.After(time.Unix(1_900_000_000, 0)) {
			t.Fatalf("accepted an expired token %q", tok)
		}
	})
}
