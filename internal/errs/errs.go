// Package errs builds the errors and texts that fmt.Errorf and fmt.Sprint
// would, without fmt: the viewer's wasm leaves fmt out for its size (fmt,
// internal/fmtsort and most of reflect are about 40 KB of its brotli
// bytes; docs/wasm-size.md), so every package the wasm links writes its
// messages with strconv and these helpers instead.
package errs

import "strconv"

// Wrap returns the error fmt.Errorf(before+"%w"+after, err) would: its text
// is before + err's text + after, and errors.Is and errors.As see err
// through it. Not inlined: it is called on some 180 error paths, and its
// body at each of them cost the wasm 20 KB of code.
//
//go:noinline
func Wrap(before string, err error, after string) error {
	return &wrapped{text: before + Text(err) + after, err: err}
}

type wrapped struct {
	text string
	err  error
}

func (e *wrapped) Error() string { return e.text }
func (e *wrapped) Unwrap() error { return e.err }

// Text is fmt.Sprint(v) for the values that reach an error text or a log
// line: nil, strings, errors, Stringers, booleans, integers, floats and
// byte, string or any slices. Any other value is written as "<?>":
// without reflect its type cannot be named (give it a String method, or
// pass a slice through List).
func Text(v any) string {
	switch v := v.(type) {
	case nil:
		return "<nil>"
	case string:
		return v
	case error:
		return v.Error()
	case interface{ String() string }:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	case int:
		return strconv.Itoa(v)
	case int8:
		return strconv.FormatInt(int64(v), 10)
	case int16:
		return strconv.FormatInt(int64(v), 10)
	case int32:
		return strconv.FormatInt(int64(v), 10)
	case int64:
		return strconv.FormatInt(v, 10)
	case uint:
		return strconv.FormatUint(uint64(v), 10)
	case uint8:
		return strconv.FormatUint(uint64(v), 10)
	case uint16:
		return strconv.FormatUint(uint64(v), 10)
	case uint32:
		return strconv.FormatUint(uint64(v), 10)
	case uint64:
		return strconv.FormatUint(v, 10)
	case uintptr:
		return strconv.FormatUint(uint64(v), 10)
	case float32:
		return strconv.FormatFloat(float64(v), 'g', -1, 32)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case []byte:
		return List(v)
	case []string:
		return List(v)
	case []any:
		return List(v)
	}
	return "<?>"
}

// List is fmt.Sprint(s) for a slice of values Text writes: [a b c]. A
// log line passes it a slice of another type (of IDs, say), which Text
// cannot look into without reflect.
func List[T any](s []T) string {
	b := []byte{'['}
	for i, v := range s {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, Text(v)...)
	}
	return string(append(b, ']'))
}
