// Package jsonwire reads and writes the JSON of Banyan's wire types
// (package protocol's messages, a content key, an ICE candidate, the
// origin's live state) without reflection. encoding/json costs the
// browser's wasm about 0.3 MB of code and its reflection-driven type
// tables (docs/wasm-size.md); the types write and read themselves through
// this package instead.
//
// It keeps encoding/json's rules, so a value reads and writes the same
// either way (each user tests that against encoding/json, and fuzzes it):
// keys match case-insensitively (bytes.EqualFold), the last of duplicate
// keys wins, unknown keys are skipped, null leaves a value as it was (and
// makes a slice or pointer nil), integers take no fraction or exponent and
// must fit, a []byte is base64 or an array of numbers, invalid UTF-8 in a
// string reads as U+FFFD, nesting is bounded at 10000, and written strings
// escape <, > and & as encoding/json's Marshal does.
package jsonwire

import (
	"encoding/base64"
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth is encoding/json's nesting bound.
const maxDepth = 10000

// Reader reads one JSON value from a byte slice. Its methods read the next
// value as the named kind; the first error sticks and every later read is
// a no-op, so a caller reads everything and asks Done once.
type Reader struct {
	data  []byte
	pos   int
	depth int
	err   error
	key   []byte // the folded key passed to Object's member func
}

// NewReader reads data.
func NewReader(data []byte) *Reader { return &Reader{data: data} }

// Done returns the first error, or one when anything but white space
// follows the value.
func (r *Reader) Done() error {
	if r.err == nil {
		r.ws()
		if r.pos < len(r.data) {
			r.fail("data after the top-level value")
		}
	}
	return r.err
}

// Err returns the first error.
func (r *Reader) Err() error { return r.err }

// Fail records err (a type's own check) unless an error is recorded.
func (r *Reader) Fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *Reader) fail(msg string) {
	if r.err == nil {
		r.err = errors.New("json: " + msg + " at offset " + strconv.Itoa(r.pos))
		r.pos = len(r.data)
	}
}

func (r *Reader) ws() {
	for r.pos < len(r.data) {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

// next skips white space and returns the next byte (0 at the end or after
// an error).
func (r *Reader) next() byte {
	if r.err != nil {
		return 0
	}
	r.ws()
	if r.pos >= len(r.data) {
		r.fail("unexpected end of JSON input")
		return 0
	}
	return r.data[r.pos]
}

// Null reads a null if one is next and reports whether it did.
func (r *Reader) Null() bool {
	if r.next() == 'n' {
		r.literal("null")
		return r.err == nil
	}
	return false
}

func (r *Reader) literal(lit string) {
	if len(r.data)-r.pos < len(lit) || string(r.data[r.pos:r.pos+len(lit)]) != lit {
		r.fail("invalid literal")
		return
	}
	r.pos += len(lit)
}

// mismatch skips the value that is not of the wanted kind and records the
// error (encoding/json also checks the rest of the input, and fails too).
func (r *Reader) mismatch(want string) {
	r.Skip()
	r.fail("cannot read value as " + want)
}

// Object reads an object, calling member with each key (folded: ASCII
// letters in lower case, U+017F as 's' and U+212A as 'k', which is how
// encoding/json matches a key to a lower-case field name) and leaving the
// value for member to read with one method call (Skip for an unknown key).
// The key is only valid during the call. A null is read and reported as
// false; any other kind is an error.
func (r *Reader) Object(member func(key []byte)) bool {
	if open, empty := r.begin('{', '}', "object"); !open || empty {
		return open
	}
	for r.err == nil {
		if r.next() != '"' {
			r.fail("object key must be a string")
			break
		}
		raw := r.rawString()
		if r.next() != ':' {
			r.fail("missing ':' after object key")
			break
		}
		r.pos++
		r.key = foldKey(r.key[:0], unquote(raw))
		member(r.key)
		switch r.next() {
		case ',':
			r.pos++
		case '}':
			r.pos++
			r.depth--
			return true
		default:
			r.fail("missing ',' or '}' in object")
		}
	}
	return false
}

// Array reads an array, calling elem for each element, which must read
// it with one method call. A null is read and reported as false; any other
// kind is an error.
func (r *Reader) Array(elem func(i int)) bool {
	if open, empty := r.begin('[', ']', "array"); !open || empty {
		return open
	}
	for i := 0; r.err == nil; i++ {
		elem(i)
		switch r.next() {
		case ',':
			r.pos++
		case ']':
			r.pos++
			r.depth--
			return true
		default:
			r.fail("missing ',' or ']' in array")
		}
	}
	return false
}

// begin reads the opening byte of an object or array (open is false on
// null, an error or another kind, which is an error) and, if the closing
// byte follows, that too (empty).
func (r *Reader) begin(openc, closec byte, kind string) (open, empty bool) {
	switch r.next() {
	case openc:
	case 'n':
		r.Null()
		return false, false
	case 0:
		return false, false
	default:
		r.mismatch(kind)
		return false, false
	}
	r.depth++
	if r.depth > maxDepth {
		r.fail("exceeded max depth")
		return false, false
	}
	r.pos++
	if r.next() == closec {
		r.pos++
		r.depth--
		return true, true
	}
	return r.err == nil, false
}

// Slice reads an array into *s as encoding/json does: null makes it nil,
// [] an empty slice, and elements are read into the slice's existing
// storage (read by elem, which must read one value into *T).
func Slice[T any](r *Reader, s *[]T, elem func(r *Reader, v *T)) {
	out := *s
	n := 0
	if !r.Array(func(i int) {
		if i < cap(out) {
			out = out[:i+1]
		} else {
			var zero T
			out = append(out, zero)
		}
		elem(r, &out[i])
		n = i + 1
	}) {
		if r.err == nil {
			*s = nil
		}
		return
	}
	if n == 0 {
		out = []T{}
	}
	*s = out[:n]
}

// String reads a string into *p; null leaves it.
func (r *Reader) String(p *string) {
	switch r.next() {
	case '"':
		*p = string(unquote(r.rawString()))
	case 'n':
		r.Null()
	case 0:
	default:
		r.mismatch("string")
	}
}

// Bool reads true or false; ok is false on null (or an error).
func (r *Reader) Bool() (v, ok bool) {
	switch r.next() {
	case 't':
		r.literal("true")
		return true, r.err == nil
	case 'f':
		r.literal("false")
		return false, r.err == nil
	case 'n':
		r.Null()
	case 0:
	default:
		r.mismatch("bool")
	}
	return false, false
}

// Int reads an integer that fits in bits; ok is false on null (or an
// error).
func (r *Reader) Int(bits int) (int64, bool) {
	lit, ok := r.numberOrNull("integer")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(lit, 10, 64)
	if err != nil || (bits < 64 && (v < -1<<(bits-1) || v >= 1<<(bits-1))) {
		r.fail("integer out of range or not an integer")
		return 0, false
	}
	return v, true
}

// Uint reads an unsigned integer that fits in bits; ok is false on null
// (or an error).
func (r *Reader) Uint(bits int) (uint64, bool) {
	lit, ok := r.numberOrNull("unsigned integer")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(lit, 10, 64)
	if err != nil || (bits < 64 && v >= 1<<bits) {
		r.fail("unsigned integer out of range or not an integer")
		return 0, false
	}
	return v, true
}

func (r *Reader) numberOrNull(want string) (string, bool) {
	switch c := r.next(); {
	case c == '-' || c >= '0' && c <= '9':
		start := r.pos
		r.number()
		return string(r.data[start:r.pos]), r.err == nil
	case c == 'n':
		r.Null()
	case c == 0:
	default:
		r.mismatch(want)
	}
	return "", false
}

// Bytes reads a []byte as encoding/json does: a base64 string (standard
// alphabet, padded), an array of numbers 0-255, or null (nil).
func (r *Reader) Bytes(p *[]byte) {
	switch r.next() {
	case '"':
		s := unquote(r.rawString())
		b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
		n, err := base64.StdEncoding.Decode(b, s)
		if err != nil {
			r.fail("invalid base64")
			return
		}
		*p = b[:n]
	case '[', 'n':
		Slice(r, p, func(r *Reader, b *byte) {
			if v, ok := r.Uint(8); ok {
				*b = byte(v)
			}
		})
	case 0:
	default:
		r.mismatch("base64 string")
	}
}

// Raw reads any value and stores a copy of its bytes as they are in the
// input (json.RawMessage; a null is stored as "null").
func (r *Reader) Raw(p *[]byte) {
	if r.next() == 0 {
		return
	}
	start := r.pos
	r.Skip()
	if r.err == nil {
		*p = append((*p)[:0], r.data[start:r.pos]...)
	}
}

// Skip reads and discards any value, checking its syntax.
func (r *Reader) Skip() {
	switch c := r.next(); {
	case c == '{':
		r.Object(func([]byte) { r.Skip() })
	case c == '[':
		r.Array(func(int) { r.Skip() })
	case c == '"':
		r.rawString()
	case c == 't':
		r.literal("true")
	case c == 'f':
		r.literal("false")
	case c == 'n':
		r.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		r.number()
	case c == 0:
	default:
		r.fail("invalid character looking for a value")
	}
}

// number reads a number as JSON's grammar has it:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (r *Reader) number() {
	d := r.data
	i := r.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		i = digits(d, i)
	default:
		r.pos = i
		r.fail("invalid number")
		return
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			r.pos = i
			r.fail("invalid number")
			return
		}
		i = digits(d, i)
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			r.pos = i
			r.fail("invalid number")
			return
		}
		i = digits(d, i)
	}
	r.pos = i
}

func digits(d []byte, i int) int {
	for i < len(d) && d[i] >= '0' && d[i] <= '9' {
		i++
	}
	return i
}

// rawString reads a string literal (r.pos at its opening quote) and
// returns it with its quotes, its syntax checked.
func (r *Reader) rawString() []byte {
	d := r.data
	start := r.pos
	for i := start + 1; i < len(d); i++ {
		switch c := d[i]; {
		case c == '"':
			r.pos = i + 1
			return d[start:r.pos]
		case c == '\\':
			i++
			if i >= len(d) {
				break
			}
			switch d[i] {
			case 'b', 'f', 'n', 'r', 't', '\\', '/', '"':
			case 'u':
				if i+4 >= len(d) || !isHex(d[i+1]) || !isHex(d[i+2]) || !isHex(d[i+3]) || !isHex(d[i+4]) {
					r.pos = i
					r.fail("invalid \\u escape in string")
					return nil
				}
				i += 4
			default:
				r.pos = i
				r.fail("invalid escape in string")
				return nil
			}
		case c < 0x20:
			r.pos = i
			r.fail("control character in string")
			return nil
		}
	}
	r.pos = len(d)
	r.fail("unexpected end of JSON input in string")
	return nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// unquote decodes a string literal whose syntax rawString checked, as
// encoding/json does: escapes decoded, a lone or broken surrogate and
// invalid UTF-8 each read as U+FFFD.
func unquote(s []byte) []byte {
	if len(s) < 2 {
		return nil
	}
	s = s[1 : len(s)-1]
	i := 0
	for i < len(s) {
		c := s[i]
		if c == '\\' || c < ' ' {
			break
		}
		if c < utf8.RuneSelf {
			i++
			continue
		}
		rr, size := utf8.DecodeRune(s[i:])
		if rr == utf8.RuneError && size == 1 {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	b := make([]byte, i, len(s)+2*utf8.UTFMax)
	copy(b, s[:i])
	for i < len(s) {
		c := s[i]
		switch {
		case c == '\\':
			i++
			switch s[i] {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := getu4(s[i-1:])
				i += 5
				if utf16.IsSurrogate(rr) {
					if dec := utf16.DecodeRune(rr, getu4(s[i:])); dec != utf8.RuneError {
						i += 6
						b = utf8.AppendRune(b, dec)
						continue
					}
					rr = utf8.RuneError
				}
				b = utf8.AppendRune(b, rr)
				continue
			default: // '"', '\\', '/'
				b = append(b, s[i])
			}
			i++
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			rr, size := utf8.DecodeRune(s[i:])
			i += size
			b = utf8.AppendRune(b, rr)
		}
	}
	return b
}

// getu4 decodes \uXXXX at the start of s, or returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// foldKey appends key folded for matching lower-case ASCII names: ASCII
// letters in lower case, and the two non-ASCII runes whose case folding
// (unicode.SimpleFold, which encoding/json uses) reaches an ASCII letter,
// U+017F (long s) and U+212A (Kelvin sign), as 's' and 'k'. Any other
// non-ASCII rune is kept, and so matches no name.
func foldKey(dst, key []byte) []byte {
	for i := 0; i < len(key); {
		c := key[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		rr, size := utf8.DecodeRune(key[i:])
		switch rr {
		case '\u017f':
			dst = append(dst, 's')
		case '\u212a':
			dst = append(dst, 'k')
		default:
			dst = append(dst, key[i:i+size]...)
		}
		i += size
	}
	return dst
}
