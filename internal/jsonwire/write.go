package jsonwire

import (
	"encoding/base64"
	"errors"
	"strconv"
	"unicode/utf8"
)

// Writer appends JSON to B. Members and elements are separated by commas
// on their own: a value sets the need for one, Open and OpenArray clear it.
// Its methods are not inlined: a message's writer calls them once per
// field, and inlined appends made those writers several times larger in
// the wasm for no measurable gain.
type Writer struct {
	B     []byte
	comma bool
}

// Continue makes the next member follow what B already holds (an object
// opened by the caller with members of its own).
//
//go:noinline
func (w *Writer) Continue() { w.comma = true }

// Open starts an object.
func (w *Writer) Open() { w.open('{') }

// Close ends an object.
//
//go:noinline
func (w *Writer) Close() {
	w.B = append(w.B, '}')
	w.comma = true
}

// OpenArray starts an array; its elements are written one after another.
func (w *Writer) OpenArray() { w.open('[') }

//go:noinline
func (w *Writer) open(c byte) {
	w.sep()
	w.B = append(w.B, c)
	w.comma = false
}

// CloseArray ends an array.
//
//go:noinline
func (w *Writer) CloseArray() {
	w.B = append(w.B, ']')
	w.comma = true
}

func (w *Writer) sep() {
	if w.comma {
		w.B = append(w.B, ',')
		w.comma = false
	}
}

// Key starts a member; its value follows. name is written as it is (the
// caller's names need no escaping).
//
//go:noinline
func (w *Writer) Key(name string) {
	w.sep()
	w.B = append(w.B, '"')
	w.B = append(w.B, name...)
	w.B = append(w.B, '"', ':')
}

// String writes s as encoding/json does (HTML-safe escapes, invalid UTF-8
// as U+FFFD).
//
//go:noinline
func (w *Writer) String(s string) {
	w.sep()
	w.B = AppendString(w.B, s)
	w.comma = true
}

// Strings writes a []string, nil as null.
func (w *Writer) Strings(v []string) {
	if v == nil {
		w.Null()
		return
	}
	w.OpenArray()
	for _, s := range v {
		w.String(s)
	}
	w.CloseArray()
}

// Int writes v.
//
//go:noinline
func (w *Writer) Int(v int64) {
	w.sep()
	w.B = strconv.AppendInt(w.B, v, 10)
	w.comma = true
}

// Uint writes v.
//
//go:noinline
func (w *Writer) Uint(v uint64) {
	w.sep()
	w.B = strconv.AppendUint(w.B, v, 10)
	w.comma = true
}

// Bool writes v.
//
//go:noinline
func (w *Writer) Bool(v bool) {
	w.sep()
	w.B = strconv.AppendBool(w.B, v)
	w.comma = true
}

// Null writes null.
//
//go:noinline
func (w *Writer) Null() {
	w.sep()
	w.B = append(w.B, "null"...)
	w.comma = true
}

// Bytes writes b as standard padded base64, nil as null.
//
//go:noinline
func (w *Writer) Bytes(b []byte) {
	if b == nil {
		w.Null()
		return
	}
	w.sep()
	w.B = append(w.B, '"')
	w.B = base64.StdEncoding.AppendEncode(w.B, b)
	w.B = append(w.B, '"')
	w.comma = true
}

// Raw writes raw JSON (nil as null) compacted and HTML-escaped as
// encoding/json writes a json.RawMessage; invalid JSON is an error and
// writes nothing.
//
//go:noinline
func (w *Writer) Raw(raw []byte) error {
	if raw == nil {
		w.Null()
		return nil
	}
	r := NewReader(raw)
	r.Skip()
	if err := r.Done(); err != nil {
		return errors.New("json: invalid raw value: " + err.Error())
	}
	w.sep()
	w.B = appendCompact(w.B, raw)
	w.comma = true
	return nil
}

// appendCompact appends valid JSON without its insignificant white space,
// with <, >, &, U+2028 and U+2029 escaped (encoding/json's compact).
func appendCompact(dst, src []byte) []byte {
	inString, esc := false, false
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '<' || c == '>' || c == '&':
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			continue
		case c == 0xE2 && i+2 < len(src) && src[i+1] == 0x80 && src[i+2]&^1 == 0xA8:
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[src[i+2]&0xF])
			i += 2
			continue
		}
		if inString {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inString = false
			}
		} else {
			switch c {
			case ' ', '\t', '\n', '\r':
				continue
			case '"':
				inString = true
			}
		}
		dst = append(dst, c)
	}
	return dst
}

const hex = "0123456789abcdef"

// htmlSafe is encoding/json's htmlSafeSet: the ASCII bytes written as
// they are.
func htmlSafe(b byte) bool {
	return b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&'
}

// AppendString appends s quoted as encoding/json's Marshal does.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if htmlSafe(b) {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
