package baseurl

import (
	"net/netip"
	"net/url"
	"testing"
)

// viaNetURL is the check Usable replaces.
func viaNetURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func TestUsable(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"http://origin.example", true},
		{"https://origin.example:8443", true},
		{"HTTPS://Origin.Example", true},
		{"hTtP://127.0.0.1:8080", true},
		{"http://127.0.0.1:", true}, // an empty port is allowed
		{"http://[::1]:8080", true},
		{"http://[fe80::1%25en0]:80", true},
		{"http://[fe80::1%25en%200]", true}, // a space may be escaped in a zone
		{"http://[::ffff:1.2.3.4]", true},
		{"http://user:pa%20ss@host", true},
		{"http://user@pass@host", true},
		{"http://host/path%20x?q=%zz#frag", true}, // the query is not checked
		{"http://h%C3%A9te", true},
		{"http://hôte", true},
		{"http://a.b/c#%41", true},
		{"ftp://origin.example", false},
		{"httpſ://origin.example", false}, // U+017F folds to s in Unicode, not in a scheme
		{"http+x://origin.example", false},
		{"origin.example", false},
		{"/relative", false},
		{"", false},
		{"http:", false},
		{"http:origin.example", false},
		{"http:/origin.example", false},
		{"http://", false},
		{"http:///path", false},
		{"http://user@", false},
		{"http://host:1:2", false}, // strict colons for http
		{"http://::1", false},
		{"http://host:80x", false},
		{"http://[1.2.3.4]", false}, // brackets hold IPv6 only
		{"http://[::1", false},
		{"http://x[::1]", false},
		{"http://[::1]x", false},
		{"http://[::1%en0]", false},      // a zone starts with %25
		{"http://[fe80::1%25%41]", true}, // a zone may escape a host byte
		{"http://[fe80::1%25%2F]", false},
		{"http://[fe80::1%25%C3%A9]", false},
		{"http://h%41st", false}, // a host escapes only non-ASCII bytes
		{"http://h%2", false},
		{"http://ho st", false},
		{"http://ho{st", false},
		{"http://host/%zz", false},
		{"http://host#%zz", false},
		{"http://us er@host", false},
		{"http://u%zz@host", false},
		{"http://host/\x7f", false},
		{"http://ho\nst", false},
		{"http://host#\n", true}, // url.Parse checks control bytes before the fragment only
	} {
		if got := Usable(tc.in); got != tc.want {
			t.Errorf("Usable(%q) = %v, want %v", tc.in, got, tc.want)
		}
		if got := viaNetURL(tc.in); got != tc.want {
			t.Errorf("url.Parse(%q): usable %v, want %v (the table is wrong)", tc.in, got, tc.want)
		}
	}
}

func FuzzUsable(f *testing.F) {
	for _, s := range []string{
		"http://origin.example:8080/x?y#z", "https://[fe80::1%25en0]:1", "http://u:p@h",
		"HTTP://h%C3%A9", "http://[::ffff:1.2.3.4]", "http://h:1:2", "http:x", "http://%41",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Usable(s), viaNetURL(s); got != want {
			t.Errorf("Usable(%q) = %v, url.Parse says %v", s, got, want)
		}
	})
}

func TestIsIPv6(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"::", true},
		{"::1", true},
		{"1::", true},
		{"fe80::1%en0", true},
		{"1:2:3:4:5:6:7:8", true},
		{"1:2:3:4:5:6:1.2.3.4", true},
		{"::ffff:1.2.3.4", true},
		{"ABCD:ef01::", true},
		{"1.2.3.4", false}, // IPv4 is not an IP-literal here
		{"::%", false},
		{"%en0", false},
		{"1:2:3:4:5:6:7:8:9", false},
		{"1:2:3:4:5:6:7::8", false}, // :: must stand for a zero group
		{"1::2::3", false},
		{"12345::", false},
		{"1:2:3:4:5:1.2.3.4", false},
		{"1:2:3:4:5:6:7:1.2.3.4", false},
		{"::01.2.3.4", false},
		{"::1.2.3", false},
		{"::1.2.3.4.5", false},
		{"::1.2.3.256", false},
		{"::1..3.4", false},
		{"::1.2.3.4.", false},
		{"1:", false},
		{":1", false},
		{"1:2", false},
		{"g::", false},
	} {
		if got := isIPv6(tc.in); got != tc.want {
			t.Errorf("isIPv6(%q) = %v, want %v", tc.in, got, tc.want)
		}
		if got := viaNetip(tc.in); got != tc.want {
			t.Errorf("netip.ParseAddr(%q): IPv6 %v, want %v (the table is wrong)", tc.in, got, tc.want)
		}
	}
}

func viaNetip(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && !a.Is4()
}

func FuzzIsIPv6(f *testing.F) {
	for _, s := range []string{"::", "fe80::1%en0", "1:2:3:4:5:6:1.2.3.4", "::ffff:01.2.3.4", "1::2::3", "1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isIPv6(s), viaNetip(s); got != want {
			t.Errorf("isIPv6(%q) = %v, netip.ParseAddr says %v", s, got, want)
		}
	})
}
