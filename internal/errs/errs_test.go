package errs

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
	"time"
)

var errBase = errors.New("chunk: malformed")

// TestWrapLikeErrorf holds Wrap to the fmt.Errorf it replaces: the same
// text, and errors.Is and errors.As see the wrapped error.
func TestWrapLikeErrorf(t *testing.T) {
	pathErr := &fs.PathError{Op: "open", Path: "x", Err: fs.ErrNotExist}
	for _, tc := range []struct {
		name  string
		got   error
		want  error
		match error
	}{
		{"prefix", Wrap("chunk: seal: ", errBase, ""), fmt.Errorf("chunk: seal: %w", errBase), errBase},
		{"detail", Wrap("", errBase, ": piece count 0"), fmt.Errorf("%w: piece count 0", errBase), errBase},
		{"both", Wrap("chunk: open: ", errBase, " 7 (no keyring)"), fmt.Errorf("chunk: open: %w %d (no keyring)", errBase, 7), errBase},
		{"twice", Wrap("peer: ", Wrap("", errBase, ": x"), ""), fmt.Errorf("peer: %w", fmt.Errorf("%w: x", errBase)), errBase},
		{"chain", Wrap("read: ", pathErr, ""), fmt.Errorf("read: %w", pathErr), fs.ErrNotExist},
	} {
		if tc.got.Error() != tc.want.Error() {
			t.Errorf("%s: %q, fmt.Errorf says %q", tc.name, tc.got, tc.want)
		}
		if !errors.Is(tc.got, tc.match) {
			t.Errorf("%s: errors.Is(%q, %q) is false", tc.name, tc.got, tc.match)
		}
	}
	var pe *fs.PathError
	if err := Wrap("read: ", pathErr, ""); !errors.As(err, &pe) || pe != pathErr {
		t.Errorf("errors.As(%q) did not find the *fs.PathError", err)
	}
	if errors.Is(Wrap("x: ", errBase, ""), fs.ErrNotExist) {
		t.Error("errors.Is found an error that was not wrapped")
	}
}

type stringer struct{}

func (stringer) String() string { return "stringer" }

func TestTextLikeSprint(t *testing.T) {
	var nilErr error
	for _, v := range []any{
		nil, nilErr, "text", errBase, stringer{}, 90 * time.Millisecond, true,
		-3, int8(-8), int16(16), int32(-32), int64(1 << 40), uint(7), uint8(8), uint16(16), uint32(32), uint64(1 << 63), uintptr(9),
		float32(0.1), 2.5, 1e21, []byte("ab"), []string{"a", "b c"}, []any{1, "x", errBase}, []string{},
	} {
		if got, want := Text(v), fmt.Sprint(v); got != want {
			t.Errorf("Text(%#v) = %q, fmt.Sprint says %q", v, got, want)
		}
	}
	for _, v := range []any{[]stringer{{}, {}}, []time.Duration{time.Second}, []int64{-1, 2}, []error{errBase, nil}} {
		var got string
		switch v := v.(type) {
		case []stringer:
			got = List(v)
		case []time.Duration:
			got = List(v)
		case []int64:
			got = List(v)
		case []error:
			got = List(v)
		}
		if want := fmt.Sprint(v); got != want {
			t.Errorf("List(%#v) = %q, fmt.Sprint says %q", v, got, want)
		}
	}
	if got := Text(struct{ A int }{1}); got != "<?>" {
		t.Errorf("Text(struct) = %q, want <?>", got)
	}
}
