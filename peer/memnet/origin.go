package memnet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/peer"
)

// ErrNotFound is the simulated origin's 404.
var ErrNotFound = errors.New("memnet: origin: no such chunk")

type chunkKey struct {
	epoch uint32
	seq   uint64
}

// Origin is a simulated HTTP origin on the network's clock: it answers
// after Latency plus the chunk's transfer time at Bps. It implements
// peer.AsyncOrigin; its blocking methods fail, because blocking would stop
// the simulation.
type Origin struct {
	net     *Network
	Latency time.Duration
	Bps     float64 // per request (0: unlimited)
	chunks  map[chunkKey][]byte
	live    peer.LiveEdge
	// Requests and BytesServed count what peers fetched; RangeRequests
	// counts the requests for part of a chunk.
	Requests, RangeRequests, BytesServed uint64
}

// NewOrigin returns an empty origin answering after latency.
func NewOrigin(n *Network, latency time.Duration) *Origin {
	return &Origin{net: n, Latency: latency, chunks: make(map[chunkKey][]byte)}
}

// Put makes a sealed chunk available.
func (o *Origin) Put(sealed []byte) error {
	h, err := chunk.ParseHeader(sealed)
	if err != nil {
		return fmt.Errorf("memnet: origin put: %w", err)
	}
	o.chunks[chunkKey{h.Epoch, h.Seq}] = sealed
	if h.Epoch > o.live.Epoch {
		o.live = peer.LiveEdge{Epoch: h.Epoch}
	}
	if h.Seq > 0 && h.Epoch == o.live.Epoch && h.Seq > o.live.Seq {
		o.live.Seq = h.Seq
		if h.Flags&chunk.FlagKeyframe != 0 {
			o.live.Keyframe = h.Seq
		}
	}
	return nil
}

// FetchAsync answers after the origin's latency.
func (o *Origin) FetchAsync(epoch uint32, seq uint64, done func([]byte, error)) {
	o.answer(o.chunks[chunkKey{epoch, seq}], done)
}

// FetchRangeAsync answers part of a chunk, as an HTTP Range request.
func (o *Origin) FetchRangeAsync(epoch uint32, seq uint64, off, end int64, done func([]byte, error)) {
	b := o.chunks[chunkKey{epoch, seq}]
	if b == nil {
		o.answer(nil, done)
		return
	}
	part, err := chunk.SliceRange(b, off, end)
	if err != nil {
		o.net.After(o.Latency, func() { done(nil, err) })
		return
	}
	o.RangeRequests++
	o.answer(part, done)
}

// answer delivers b (nil: not found) after the latency and its transfer.
func (o *Origin) answer(b []byte, done func([]byte, error)) {
	o.Requests++
	d := o.Latency + time.Duration(txTime(len(b), o.Bps))
	o.net.After(d, func() {
		if b == nil {
			done(nil, ErrNotFound)
			return
		}
		o.BytesServed += uint64(len(b))
		done(b, nil)
	})
}

// LiveAsync answers the newest chunk after the origin's latency.
func (o *Origin) LiveAsync(done func(peer.LiveEdge, error)) {
	le := o.live
	o.net.After(o.Latency, func() {
		if le.Seq == 0 {
			done(le, ErrNotFound)
			return
		}
		done(le, nil)
	})
}

var errBlocking = errors.New("memnet: origin: blocking calls would stop the simulation; use the async interface")

// Fetch fails: use FetchAsync.
func (o *Origin) Fetch(context.Context, uint32, uint64) ([]byte, error) { return nil, errBlocking }

// Live fails: use LiveAsync.
func (o *Origin) Live(context.Context) (peer.LiveEdge, error) { return peer.LiveEdge{}, errBlocking }

var _ peer.AsyncOrigin = (*Origin)(nil)
var _ peer.AsyncRangeOrigin = (*Origin)(nil)
var _ peer.Origin = (*Origin)(nil)
