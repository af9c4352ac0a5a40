package ipkey

import (
	"fmt"
	"sync"
	"testing"
)

func TestOf(t *testing.T) {
	for _, tc := range []struct {
		in       string
		key      Key
		loopback bool
	}{
		{"192.0.2.7:1234", "192.0.2.7", false},
		{"192.0.2.7", "192.0.2.7", false},
		{"127.0.0.1:80", "127.0.0.1", true},
		{"[::1]:80", "::/64", true},
		{"[2001:db8:1:2::1]:443", "2001:db8:1:2::/64", false},
		{"[2001:db8:1:2:ffff:ffff:ffff:ffff]:443", "2001:db8:1:2::/64", false},
		{"[2001:db8:1:3::1]:443", "2001:db8:1:3::/64", false},
		{"[fe80::1%eth0]:443", "fe80::/64", false},
		{"[::ffff:192.0.2.7]:9", "192.0.2.7", false},
		{"[::ffff:127.0.0.1]:9", "127.0.0.1", true},
		{"not an address", "not an address", false},
		{"", "", false},
	} {
		k, lo := Of(tc.in)
		if k != tc.key || lo != tc.loopback {
			t.Errorf("Of(%q) = %q, %v; want %q, %v", tc.in, k, lo, tc.key, tc.loopback)
		}
	}
}

// TestCounterGroupsIPv6 (issue 18 #7): one client rotating through the
// addresses of its /64 shares one budget; another /64 has its own.
func TestCounterGroupsIPv6(t *testing.T) {
	c := NewCounter(3, true)
	got := 0
	for i := range 100 {
		k, lo := Of(fmt.Sprintf("[2001:db8:1:2::%x]:1000", i+1))
		if c.Acquire(k, lo) {
			got++
		}
	}
	if got != 3 {
		t.Fatalf("one /64 got %d slots from 100 addresses, want 3", got)
	}
	if k, lo := Of("[2001:db8:1:3::1]:1"); !c.Acquire(k, lo) {
		t.Fatal("another /64 refused")
	}
	for range 10 {
		if k, lo := Of("[::1]:1"); !c.Acquire(k, lo) {
			t.Fatal("loopback refused with exemptLoopback")
		}
	}
	k, _ := Of("[2001:db8:1:2::99]:1")
	c.Release(k)
	if !c.Acquire(Of("[2001:db8:1:2::aa]:1")) {
		t.Fatal("a released slot was not reusable")
	}
	if n := c.Count(k); n != 3 {
		t.Fatalf("count %d", n)
	}
}

func TestCounterConcurrent(t *testing.T) {
	c := NewCounter(50, false)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c.Acquire("k", false) {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != 50 || c.Count("k") != 50 {
		t.Fatalf("%d acquired, count %d", ok, c.Count("k"))
	}
	for range 50 {
		c.Release("k")
	}
	if c.Keys() != 0 {
		t.Fatal("map not emptied")
	}
}
