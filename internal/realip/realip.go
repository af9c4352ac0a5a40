// Package realip finds who a request really comes from when Banyan runs
// behind reverse proxies (Caddy, nginx, a load balancer): the client's
// address and whether it spoke HTTPS. Forwarding headers are believed only
// from the proxies the operator names (--trusted-proxy); from anyone else
// they are ignored, since any client can send them.
//
// The chain of hops is walked from the nearest (the connection's peer)
// outwards, past every trusted proxy: the first address that is not a
// trusted proxy is the client. A client that prepends a forged
// X-Forwarded-For entry only adds hops beyond itself, which are never
// reached. A malformed entry stops the walk at the last trusted hop.
package realip

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Trusted is the set of proxies whose forwarding headers are believed.
// The zero value trusts no one.
type Trusted struct {
	prefixes []netip.Prefix
}

// ParseTrusted reads "CIDR[,CIDR]…"; a bare address is a single host.
func ParseTrusted(s string) (Trusted, error) {
	var t Trusted
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return Trusted{}, fmt.Errorf("trusted proxy %q: not an address or CIDR", f)
			}
			a = a.Unmap()
			t.prefixes = append(t.prefixes, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return Trusted{}, fmt.Errorf("trusted proxy %q: %w", f, err)
		}
		if p.Addr().Is4In6() {
			return Trusted{}, fmt.Errorf("trusted proxy %q: write IPv4 ranges as IPv4", f)
		}
		t.prefixes = append(t.prefixes, p.Masked())
	}
	return t, nil
}

// Empty reports whether no proxy is trusted.
func (t Trusted) Empty() bool { return len(t.prefixes) == 0 }

// Contains reports whether a is a trusted proxy.
func (t Trusted) Contains(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range t.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Client is who a request comes from.
type Client struct {
	Addr netip.Addr
	// HTTPS: the client's own connection is TLS, to this server or to
	// the trusted proxy in front of it.
	HTTPS bool
	// Forwarded: Addr came from a trusted proxy's header.
	Forwarded bool
}

// maxHops bounds the work a long header costs: real chains are a few hops.
const maxHops = 32

// Resolve finds the client of a request that arrived from remote
// ("ip:port", as http.Request.RemoteAddr) with headers h, over TLS or not.
func (t Trusted) Resolve(remote string, h http.Header, directTLS bool) (Client, bool) {
	peer, ok := parseHost(remote)
	if !ok {
		return Client{}, false
	}
	c := Client{Addr: peer, HTTPS: directTLS}
	if !t.Contains(peer) {
		return c, true
	}
	hops, protos := forwardedHops(h)
	// Walk outwards from the nearest hop while it is a trusted proxy.
	for i := len(hops) - 1; i >= 0 && i >= len(hops)-maxHops; i-- {
		a, ok := parseHost(hops[i])
		if !ok {
			break // malformed or hidden ("unknown", "_obf"): trust stops here
		}
		c.Addr, c.Forwarded = a, true
		if i < len(protos) && protos[i] != "" {
			c.HTTPS = strings.EqualFold(protos[i], "https")
		}
		if !t.Contains(a) {
			break
		}
	}
	if len(protos) == 0 {
		// X-Forwarded-Proto is one value per proxy chain in practice (the
		// edge sets it, the others pass it on): the nearest value counts.
		if p := lastListValue(h.Values("X-Forwarded-Proto")); p != "" {
			c.HTTPS = strings.EqualFold(p, "https")
		}
	}
	return c, true
}

// forwardedHops returns the client addresses the proxies reported, nearest
// last, from Forwarded (RFC 7239) when present, else X-Forwarded-For; with
// Forwarded, protos[i] is hop i's proto= (may be empty).
func forwardedHops(h http.Header) (hops, protos []string) {
	if fw := h.Values("Forwarded"); len(fw) > 0 {
		for _, line := range fw {
			for _, elem := range splitQuoted(line, ',') {
				var forAddr, proto string
				for _, pair := range splitQuoted(elem, ';') {
					k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
					if !ok {
						continue
					}
					v = unquote(strings.TrimSpace(v))
					switch strings.ToLower(strings.TrimSpace(k)) {
					case "for":
						forAddr = v
					case "proto":
						proto = v
					}
				}
				hops = append(hops, forAddr) // empty: malformed, stops the walk
				protos = append(protos, proto)
				if len(hops) > 4*maxHops {
					return hops, protos
				}
			}
		}
		return hops, protos
	}
	for _, line := range h.Values("X-Forwarded-For") {
		for _, f := range strings.Split(line, ",") {
			hops = append(hops, strings.TrimSpace(f))
			if len(hops) > 4*maxHops {
				return hops, nil
			}
		}
	}
	return hops, nil
}

// parseHost reads "1.2.3.4", "1.2.3.4:5", "[2001:db8::1]:5", "2001:db8::1".
func parseHost(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Addr{}, false
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// splitQuoted splits s at sep outside double quotes.
func splitQuoted(s string, sep byte) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && quoted:
			i++
		case s[i] == '"':
			quoted = !quoted
		case s[i] == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
		v = strings.ReplaceAll(v, `\"`, `"`)
		v = strings.ReplaceAll(v, `\\`, `\`)
	}
	return v
}

func lastListValue(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		fs := strings.Split(lines[i], ",")
		if v := strings.TrimSpace(fs[len(fs)-1]); v != "" {
			return v
		}
	}
	return ""
}

type ctxKey struct{}

// Handler rewrites r.RemoteAddr to the real client (port 0 when it came
// from a header: the proxy does not say) so that every per-address limit
// and log line downstream sees the client, and records whether the client
// spoke HTTPS (see HTTPS). With no trusted proxy it only records TLS.
func (t Trusted) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := t.Resolve(r.RemoteAddr, r.Header, r.TLS != nil)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		ctx := context.WithValue(r.Context(), ctxKey{}, c)
		r = r.WithContext(ctx)
		if c.Forwarded {
			r.RemoteAddr = netip.AddrPortFrom(c.Addr, 0).String()
		}
		next.ServeHTTP(w, r)
	})
}

// HTTPS reports whether r's client spoke HTTPS: directly, or to a trusted
// proxy that said so (needs Handler in front).
func HTTPS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	c, ok := r.Context().Value(ctxKey{}).(Client)
	return ok && c.HTTPS
}
