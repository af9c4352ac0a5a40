//go:build !js

package rtc

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/transport/v4/vnet"
	"github.com/pion/webrtc/v4"

	"github.com/banyan-live/banyan/peer"
)

// relResult is one reliability mode's figures.
type relResult struct {
	mode          Reliability
	p50, p95, max time.Duration // piece latency at 3 Mbit/s in chunk bursts
	lost, sent    int
	mbps          float64 // unpaced throughput
}

// vnetAPIs returns two APIs on a virtual network (no real sockets): one
// router with the given one-way delay dropping packets with probability
// loss.
func vnetAPIs(tb testing.TB, delay time.Duration, loss float64) (*webrtc.API, *webrtc.API) {
	tb.Helper()
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelError
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "10.99.0.0/24", MinDelay: delay, LoggerFactory: lf})
	if err != nil {
		tb.Fatal(err)
	}
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	wan.AddChunkFilter(func(vnet.Chunk) bool {
		mu.Lock()
		defer mu.Unlock()
		return rng.Float64() >= loss
	})
	api := func(ip string) *webrtc.API {
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
		if err != nil {
			tb.Fatal(err)
		}
		if err := wan.AddNet(n); err != nil {
			tb.Fatal(err)
		}
		var se webrtc.SettingEngine
		se.SetNet(n)
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		return webrtc.NewAPI(webrtc.WithSettingEngine(se))
	}
	a, b := api("10.99.0.1"), api("10.99.0.2")
	if err := wan.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = wan.Stop() })
	return a, b
}

func measureMode(tb testing.TB, mode Reliability, apiA, apiB *webrtc.API, paced time.Duration) relResult {
	b := newBus(tb)
	var (
		mu      sync.Mutex
		lat     []time.Duration
		recv    int
		bytes   int
		first   time.Time
		last    time.Time
		phase   = 0 // 0 paced, 1 throughput
		opened  = make(chan *Link, 2)
		msgSize = 16 << 10
	)
	onMsg := func(l *Link, m []byte) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if phase == 0 {
			lat = append(lat, now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(m)))))
			recv++
			return
		}
		if first.IsZero() {
			first = now
		}
		last = now
		bytes += len(m)
	}
	cfgA := Config{Reliability: mode, OnOpen: func(l *Link) { opened <- l }, OnMessage: onMsg, HighWater: 1 << 20}
	cfgB := cfgA
	ta := b.transport(tb, 1, cfgA)
	tbb := b.transport(tb, 2, cfgB)
	// transport() installs the loopback API; swap in the measured network.
	ta.api, tbb.api = apiA, apiB
	la, err := ta.Dial(2)
	if err != nil {
		tb.Fatal(err)
	}
	for range 2 {
		select {
		case <-opened:
		case <-time.After(10 * time.Second):
			tb.Fatal("no open")
		}
	}
	msg := make([]byte, msgSize)
	r := relResult{mode: mode}
	// Warm up: the first burst on a new association pays for SCTP slow
	// start; it is measured by TestEnginesOverDataChannels' first chunk.
	for range 6 {
		binary.BigEndian.PutUint64(msg, uint64(time.Now().UnixNano()))
		_ = la.Send(msg)
	}
	time.Sleep(time.Second)
	mu.Lock()
	lat, recv = nil, 0
	mu.Unlock()
	// Paced: a 94 KB chunk (6 pieces) every 250 ms, 3 Mbit/s.
	end := time.Now().Add(paced)
	for time.Now().Before(end) {
		for range 6 {
			binary.BigEndian.PutUint64(msg, uint64(time.Now().UnixNano()))
			if err := la.Send(msg); err != nil {
				tb.Fatalf("paced send: %v", err)
			}
			r.sent++
		}
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(time.Second)
	mu.Lock()
	r.lost = r.sent - recv
	r.p50, r.p95, r.max = pct(lat, .5), pct(lat, .95), pct(lat, 1)
	phase = 1
	mu.Unlock()
	// Unpaced: as fast as backpressure allows, for 1.5 s.
	end = time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(end) {
		if err := la.Send(msg); errors.Is(err, peer.ErrBackpressure) {
			time.Sleep(time.Millisecond)
		} else if err != nil {
			tb.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	if d := last.Sub(first).Seconds(); d > 0 {
		r.mbps = float64(bytes) * 8 / d / 1e6
	}
	mu.Unlock()
	return r
}

// TestReliabilityModes measures the three data channel modes on loopback
// and, unless -short, on a virtual network with 20 ms one-way delay and 1 %
// loss. It checks only that every mode works; the figures feed the choice
// documented in doc.go. BANYAN_RTC_MEASURE=1 runs longer.
func TestReliabilityModes(t *testing.T) {
	paced, all := 1500*time.Millisecond, false
	if os.Getenv("BANYAN_RTC_MEASURE") != "" {
		paced, all = 6*time.Second, true
	}
	type scenario struct {
		name string
		apis func() (*webrtc.API, *webrtc.API)
	}
	scenarios := []scenario{{"loopback", func() (*webrtc.API, *webrtc.API) { return LoopbackAPI(), LoopbackAPI() }}}
	if !testing.Short() {
		scenarios = append(scenarios, scenario{"vnet 20ms 1% loss", func() (*webrtc.API, *webrtc.API) { return vnetAPIs(t, 20*time.Millisecond, 0.01) }})
	}
	for _, sc := range scenarios {
		for _, mode := range []Reliability{ReliableOrdered, ReliableUnordered, Unreliable} {
			if sc.name != "loopback" && mode != Unreliable && !all {
				continue // slow; the figures are in doc.go
			}
			a, b := sc.apis()
			r := measureMode(t, mode, a, b, paced)
			t.Logf("%-18s %-28s piece latency p50 %7v p95 %7v max %7v  lost %3d/%d  unpaced %6.1f Mbit/s",
				sc.name, mode, r.p50.Round(10*time.Microsecond), r.p95.Round(10*time.Microsecond), r.max.Round(10*time.Microsecond), r.lost, r.sent, r.mbps)
			lossless := sc.name == "loopback"
			if lossless && r.lost != 0 {
				t.Errorf("%s %v lost %d messages", sc.name, mode, r.lost)
			}
			// The stream rate must fit where it matters: everywhere on
			// loopback, and under loss for the mode Banyan uses.
			if (lossless || mode == Unreliable) && r.mbps < 3 {
				t.Errorf("%s %v: %.1f Mbit/s", sc.name, mode, r.mbps)
			}
			if !lossless && mode == Unreliable && r.p95 > 200*time.Millisecond {
				t.Errorf("%s %v: p95 %v", sc.name, mode, r.p95)
			}
		}
	}
}
