// Package baseurl checks the origin base URLs the viewer may fetch chunks
// from, as net/url would, without net/url: url.Parse links fmt (its
// errors) and net/url's tables into the wasm, about 12 KB of brotli for
// one check (docs/wasm-size.md). Its tests hold it to url.Parse.
package baseurl

import "strings"

// Usable reports whether url.Parse(s) succeeds with the scheme http or
// https (in any case) and a non-empty host: the rules of Go 1.26's
// url.Parse for such URLs, with strict colons (urlstrictcolons=1).
func Usable(s string) bool {
	s, frag, _ := strings.Cut(s, "#")
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return false
		}
	}
	colon := strings.IndexByte(s, ':')
	if colon < 0 || !isHTTP(s[:colon]) {
		return false
	}
	rest, _, _ := strings.Cut(s[colon+1:], "?") // the query is not checked
	rest, ok := strings.CutPrefix(rest, "//")
	if !ok {
		return false // opaque ("http:x") or no host ("http:/x")
	}
	authority, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	host := authority
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		host = authority[i+1:]
		if !validUserinfo(authority[:i]) || !validEscapes(authority[:i], other) {
			return false
		}
	}
	return host != "" && validHost(host) && validEscapes(path, other) && validEscapes(frag, other)
}

// isHTTP reports whether scheme is http or https, in ASCII letters of
// any case (url.Parse lowers them; b|0x20 maps only 'H' and 'h' to 'h').
func isHTTP(scheme string) bool {
	const want = "https"
	if len(scheme) != 4 && len(scheme) != 5 {
		return false
	}
	for i := 0; i < len(scheme); i++ {
		if scheme[i]|0x20 != want[i] {
			return false
		}
	}
	return true
}

// validHost is url.Parse's parseHost for an http(s) URL: a bracketed IPv6
// literal (with an optional zone) and port, or a name with at most one
// colon, before a port of digits.
func validHost(host string) bool {
	open := strings.LastIndexByte(host, '[')
	if open > 0 {
		return false
	}
	if open < 0 {
		if i := strings.IndexByte(host, ':'); i >= 0 && !validPort(host[i:]) {
			return false
		}
		return validEscapes(host, hostPart)
	}
	end := strings.LastIndexByte(host, ']')
	if end < 0 || !validPort(host[end+1:]) {
		return false
	}
	name, zone := host[1:end], ""
	if i := strings.Index(name, "%25"); i >= 0 {
		name, zone = name[:i], name[i:]
		if !validEscapes(zone, zonePart) {
			return false
		}
	}
	if !validEscapes(name, hostPart) {
		return false
	}
	return isIPv6(unescape(name) + unescape(zone))
}

// isIPv6 reports whether netip.ParseAddr(s) succeeds with an IPv6
// address, with an optional zone: net/netip would bring the unique
// package and its runtime support, about 19 KB of the wasm's brotli.
// Groups of 1–4 hex digits, one "::" for at least one zero group, and
// an IPv4 address in place of the last two groups.
func isIPv6(s string) bool {
	// ParseAddr goes by the first '.', ':' or '%': only ':' is IPv6.
	if i := strings.IndexAny(s, ".:%"); i < 0 || s[i] != ':' {
		return false
	}
	if i := strings.IndexByte(s, '%'); i >= 0 {
		if i == len(s)-1 {
			return false // an empty zone
		}
		s = s[:i]
	}
	groups, ellipsis := 0, false
	if rest, ok := strings.CutPrefix(s, "::"); ok {
		if rest == "" {
			return true
		}
		s, ellipsis = rest, true
	}
	for groups < 8 {
		n := 0
		for n < len(s) && isHex(s[n]) {
			if n++; n > 4 {
				return false
			}
		}
		if n == 0 {
			return false
		}
		if n < len(s) && s[n] == '.' {
			if !ellipsis && groups != 6 || groups > 6 || !isIPv4(s) {
				return false
			}
			groups, s = groups+2, ""
			break
		}
		groups++
		if s = s[n:]; s == "" {
			break
		}
		if s[0] != ':' || len(s) == 1 {
			return false
		}
		if s = s[1:]; s[0] == ':' {
			if ellipsis {
				return false
			}
			ellipsis = true
			if s = s[1:]; s == "" {
				break
			}
		}
	}
	return s == "" && (groups == 8) != ellipsis
}

// isIPv4 is netip's dotted quad: four decimal fields of at most 255,
// without leading zeros.
func isIPv4(s string) bool {
	fields, val, digits := 1, 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case '0' <= c && c <= '9':
			if digits == 1 && val == 0 {
				return false
			}
			val, digits = val*10+int(c-'0'), digits+1
			if val > 255 {
				return false
			}
		case c == '.' && digits > 0 && i < len(s)-1 && fields < 4:
			fields, val, digits = fields+1, 0, 0
		default:
			return false
		}
	}
	return fields == 4
}

// validPort: empty, or a colon and digits (maybe none).
func validPort(p string) bool {
	if p == "" {
		return true
	}
	if p[0] != ':' {
		return false
	}
	for i := 1; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

func validUserinfo(s string) bool {
	for _, r := range s {
		if 'A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' ||
			strings.ContainsRune("-._:~!$&'()*+,;=%@", r) {
			continue
		}
		return false
	}
	return true
}

// part is where escapes are read: net/url's encodeHost and encodeZone
// have rules of their own; in every other part only the form is checked.
type part int

const (
	other part = iota
	hostPart
	zonePart
)

// validEscapes is the check of net/url's unescape: every '%' starts a
// %XX; a host may escape only bytes ≥ 0x80 (and %25), a zone only what a
// host may hold unescaped, a space or %25; neither may hold, unescaped,
// an ASCII byte that a host name cannot.
func validEscapes(s string, p part) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			if p != other && c < 0x80 && !hostByte(c) {
				return false
			}
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return false
		}
		v := unhex(s[i+1])<<4 | unhex(s[i+2])
		switch {
		case s[i:i+3] == "%25":
		case p == hostPart && v < 0x80:
			return false
		case p == zonePart && v != ' ' && (v >= 0x80 || !hostByte(v)):
			return false
		}
		i += 2
	}
	return true
}

// hostByte reports whether an ASCII byte may stand unescaped in a host.
func hostByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte(`!"$&'()*+,-.:;<=>[]_~`, c) >= 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// unescape decodes %XX, already checked by validEscapes.
func unescape(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}
