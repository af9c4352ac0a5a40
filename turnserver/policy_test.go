package turnserver

import (
	"net"
	"net/netip"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		addr string
		want AddrClass
	}{
		{"8.8.8.8", Public},
		{"1.1.1.1", Public},
		{"2606:4700:4700::1111", Public},
		{"64:ff9b::808:808", Public}, // NAT64 of 8.8.8.8
		{"127.0.0.1", Loopback},
		{"127.255.255.254", Loopback},
		{"::1", Loopback},
		{"::ffff:127.0.0.1", Loopback}, // IPv4-mapped
		{"64:ff9b::7f00:1", Loopback},  // NAT64 of 127.0.0.1
		{"10.0.0.1", Private},
		{"172.16.0.1", Private},
		{"172.31.255.255", Private},
		{"172.32.0.1", Public},
		{"192.168.1.1", Private},
		{"::ffff:192.168.1.1", Private},
		{"100.64.0.1", Private}, // CGNAT
		{"fc00::1", Private},
		{"fd12:3456::1", Private},
		{"64:ff9b:1::1", Private},
		{"64:ff9b::a00:1", Private}, // NAT64 of 10.0.0.1
		{"169.254.169.254", LinkLocal},
		{"169.254.0.1", LinkLocal},
		{"fe80::1", LinkLocal},
		{"fe80::1%eth0", LinkLocal},
		{"0.0.0.0", Unspecified},
		{"::", Unspecified},
		{"224.0.0.1", Multicast},
		{"239.255.255.250", Multicast},
		{"ff02::1", Multicast},
		{"255.255.255.255", Reserved},
		{"240.0.0.1", Reserved},
		{"0.1.2.3", Reserved},
		{"192.0.2.1", Reserved},
		{"198.18.0.1", Reserved},
		{"2001:db8::1", Reserved},
		{"::7f00:1", Reserved}, // IPv4-compatible ::127.0.0.1
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := Classify(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Fatalf("Classify(%s) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
	if got := Classify(netip.Addr{}); got != Reserved {
		t.Fatalf("Classify(invalid) = %v, want reserved", got)
	}
}

func TestPeerPolicy(t *testing.T) {
	type verdicts struct{ public, loopback, private, linkLocal, multicast, unspecified bool }
	tests := []struct {
		name   string
		policy peerPolicy
		want   verdicts
	}{
		{"strict", peerPolicy{}, verdicts{public: true}},
		{"loopback", peerPolicy{allowLoopback: true}, verdicts{public: true, loopback: true}},
		{"private", peerPolicy{allowPrivate: true}, verdicts{public: true, private: true}},
		{"both", peerPolicy{allowLoopback: true, allowPrivate: true}, verdicts{public: true, loopback: true, private: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(ip string, want bool) {
				t.Helper()
				if _, got := tt.policy.allowIP(net.ParseIP(ip)); got != want {
					t.Errorf("allow(%s) = %v, want %v", ip, got, want)
				}
			}
			check("203.0.114.7", tt.want.public)
			check("127.0.0.1", tt.want.loopback)
			check("::1", tt.want.loopback)
			check("192.168.0.10", tt.want.private)
			check("fd00::5", tt.want.private)
			check("169.254.169.254", tt.want.linkLocal)
			check("224.0.0.251", tt.want.multicast)
			check("0.0.0.0", tt.want.unspecified)
		})
	}
	if _, ok := (peerPolicy{allowLoopback: true, allowPrivate: true}).allowIP(nil); ok {
		t.Fatal("nil IP allowed")
	}
	if _, ok := (peerPolicy{allowLoopback: true, allowPrivate: true}).allowIP(net.IP{1, 2, 3}); ok {
		t.Fatal("3-byte IP allowed")
	}
}

func FuzzClassify(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1})
	f.Add(netip.MustParseAddr("::ffff:10.1.2.3").AsSlice())
	f.Add(netip.MustParseAddr("64:ff9b::7f00:1").AsSlice())
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := netip.AddrFromSlice(b)
		c := Classify(a)
		if !ok {
			if c != Reserved {
				t.Fatalf("invalid address classified %v", c)
			}

			return
		}
		// The IPv4-mapped and NAT64 spellings of an IPv4 address classify like it.
		if a.Is4() {
			v4 := a.As4()
			mapped := netip.AddrFrom16(netip.AddrFrom4(v4).As16())
			var nat [16]byte
			copy(nat[:], netip.MustParseAddr("64:ff9b::").AsSlice())
			copy(nat[12:], v4[:])
			if Classify(mapped) != c || Classify(netip.AddrFrom16(nat)) != c {
				t.Fatalf("%v is %v but its mapped/NAT64 forms are %v/%v", a, c, Classify(mapped), Classify(netip.AddrFrom16(nat)))
			}
		}
		if _, allowed := (peerPolicy{}).allow(a); allowed != (c == Public) {
			t.Fatalf("strict policy on %v (%v) = %v", a, c, allowed)
		}
	})
}
