package turnserver

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reason names why the server refused something. Each has a refusal counter
// (banyan_turn_refusals_total{reason}) and a rate-limited log line.
type Reason string

// Refusal reasons.
const (
	// ReasonAuth: malformed username, wrong realm or wrong password (MESSAGE-INTEGRITY).
	ReasonAuth Reason = "auth"
	// ReasonExpired: a well-formed credential past its expiry.
	ReasonExpired Reason = "expired"
	// ReasonPeerAddress: a CreatePermission, ChannelBind or relayed packet towards a
	// loopback, private, link-local or otherwise refused address.
	ReasonPeerAddress Reason = "peer-address"
	// ReasonQuota: an Allocate beyond MaxAllocationsPerUser or MaxAllocationsPerIP.
	ReasonQuota Reason = "quota"
	// ReasonBandwidth: a relayed packet dropped by a bandwidth token bucket (the user's, its
	// client address's or the server's total).
	ReasonBandwidth Reason = "bandwidth"
	// ReasonTransport: an RFC 6062 TCP relay (Allocate with REQUESTED-TRANSPORT TCP or
	// Connect); Banyan relays UDP only.
	ReasonTransport Reason = "transport"
	// ReasonCapacity: a TCP/TLS connection beyond MaxConns, closed on accept.
	ReasonCapacity Reason = "capacity"
)

// reasons lists every Reason; an array, so that len(reasons) sizes counters.refusals.
var reasons = [...]Reason{
	ReasonAuth, ReasonExpired, ReasonPeerAddress, ReasonQuota,
	ReasonBandwidth, ReasonTransport, ReasonCapacity,
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	// Allocations is the number of allocations created since New.
	Allocations uint64
	// ActiveAllocations is the number of relay sockets open now.
	ActiveAllocations int64
	// Refusals counts refusals by reason since New (every Reason is present).
	Refusals map[Reason]uint64
	// RelayedBytesToPeer and RelayedBytesToClient count payload bytes relayed from clients
	// to peers and from peers to clients.
	RelayedBytesToPeer, RelayedBytesToClient uint64
}

// counters are the server's counters. Prometheus reads them through CounterFuncs, so the hot
// path pays one atomic add and nothing is counted twice.
type counters struct {
	allocations atomic.Uint64
	active      atomic.Int64
	refusals    [len(reasons)]atomic.Uint64
	bytesToPeer atomic.Uint64
	bytesToClnt atomic.Uint64
}

func reasonIndex(r Reason) int {
	for i, x := range reasons {
		if x == r {
			return i
		}
	}

	return -1
}

func (c *counters) snapshot() Stats {
	st := Stats{
		Allocations:          c.allocations.Load(),
		ActiveAllocations:    c.active.Load(),
		Refusals:             make(map[Reason]uint64, len(reasons)),
		RelayedBytesToPeer:   c.bytesToPeer.Load(),
		RelayedBytesToClient: c.bytesToClnt.Load(),
	}
	for i, r := range reasons {
		st.Refusals[r] = c.refusals[i].Load()
	}

	return st
}

// register exposes the counters on reg.
func (c *counters) register(reg prometheus.Registerer) error {
	cs := []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "banyan_turn_allocations_total",
			Help: "TURN allocations created.",
		}, func() float64 { return float64(c.allocations.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "banyan_turn_allocations_active",
			Help: "TURN relay sockets open now.",
		}, func() float64 { return float64(c.active.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "banyan_turn_relayed_bytes_total",
			Help:        "Payload bytes relayed, by direction.",
			ConstLabels: prometheus.Labels{"direction": "to_peer"},
		}, func() float64 { return float64(c.bytesToPeer.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "banyan_turn_relayed_bytes_total",
			Help:        "Payload bytes relayed, by direction.",
			ConstLabels: prometheus.Labels{"direction": "to_client"},
		}, func() float64 { return float64(c.bytesToClnt.Load()) }),
	}
	for i, r := range reasons {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "banyan_turn_refusals_total",
			Help:        "TURN refusals by reason (auth, expired, peer-address, quota, bandwidth, transport, capacity).",
			ConstLabels: prometheus.Labels{"reason": string(r)},
		}, func() float64 { return float64(c.refusals[i].Load()) }))
	}
	for i, col := range cs {
		if err := reg.Register(col); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}

			return fmt.Errorf("turnserver: register metrics: %w", err)
		}
	}

	return nil
}

// rateLog logs at most one line per key per interval and says how many it held back, so that
// hostile input (a flood of bad credentials, say) cannot flood the logs.
type rateLog struct {
	log   *slog.Logger
	every time.Duration

	mu   sync.Mutex
	keys map[string]*rateLogKey
}

type rateLogKey struct {
	last       time.Time
	suppressed uint64
}

// maxRateLogKeys bounds the key map; keys past it share one slot.
const maxRateLogKeys = 256

func newRateLog(log *slog.Logger, every time.Duration) *rateLog {
	return &rateLog{log: log, every: every, keys: make(map[string]*rateLogKey)}
}

func (r *rateLog) logf(key string, level slog.Level, msg string, args ...any) {
	if !r.log.Enabled(context.Background(), level) {
		return
	}
	now := time.Now()
	r.mu.Lock()
	k := r.keys[key]
	if k == nil {
		if len(r.keys) >= maxRateLogKeys {
			key = "(other)"
			k = r.keys[key]
		}
		if k == nil {
			k = &rateLogKey{}
			r.keys[key] = k
		}
	}
	if !k.last.IsZero() && now.Sub(k.last) < r.every {
		k.suppressed++
		r.mu.Unlock()

		return
	}
	held := k.suppressed
	k.suppressed = 0
	k.last = now
	r.mu.Unlock()
	if held > 0 {
		args = append(args, slog.Uint64("suppressed", held))
	}
	r.log.Log(context.Background(), level, msg, args...)
}
