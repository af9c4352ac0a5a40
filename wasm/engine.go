//go:build js && wasm

package main

import (
	"context"
	"errors"

	"github.com/banyan-live/banyan/internal/guard"
	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/protocol"
)

// The seams where the peer engine plugs in (peer, peer/node):
//
//   - *Player is the engine's peer.Player: Config.Player = the viewer's
//     player; the origin loop then stops (viewer.run).
//   - engineOrigin is the engine's peer.Origin over the browser's fetch:
//     node.Config.OriginFor = func(u string) peer.Origin { ... }.
//   - trackerClient.onMessage receives every tracker message (Welcome,
//     Assign, Signal, Keys, ...) for node.Node.Handle, and
//     trackerClient.send is node.Config.Send. The browser websocket (wsConn)
//     replaces peer/node.Run's coder/websocket, which would bring net/http
//     into the wasm.
var (
	_ peer.Player      = (*Player)(nil)
	_ peer.Origin      = engineOrigin{}
	_ peer.RangeOrigin = engineOrigin{}
)

// engineOrigin adapts originClient to peer.Origin. The engine calls it
// from goroutines of its own, which the viewer's guard does not start, so
// the calls run under the guard here.
type engineOrigin struct {
	o *originClient
	g *guard.Guard
}

func (e engineOrigin) Fetch(ctx context.Context, epoch uint32, seq uint64) (b []byte, err error) {
	if perr := e.g.Run("origin fetch", func() { b, err = e.o.Fetch(ctx, epoch, seq) }); perr != nil {
		return nil, perr
	}
	return b, err
}

func (e engineOrigin) FetchRange(ctx context.Context, epoch uint32, seq uint64, off, end int64) (b []byte, err error) {
	if perr := e.g.Run("origin range", func() { b, err = e.o.FetchRange(ctx, epoch, seq, off, end) }); perr != nil {
		return nil, perr
	}
	return b, err
}

func (e engineOrigin) Live(ctx context.Context) (le peer.LiveEdge, err error) {
	if perr := e.g.Run("origin live", func() {
		var l liveState
		if l, err = e.o.Live(ctx); err == nil {
			le = peer.LiveEdge{Epoch: l.Epoch, Seq: l.Seq, Keyframe: l.KeyframeSeq}
		}
	}); perr != nil {
		return peer.LiveEdge{}, perr
	}
	return le, err
}

// errNotConnected: a message to the tracker while no session is up.
var errNotConnected = errors.New("tracker: not connected")

// send writes a message on the current session (the engine's reports,
// stats and WebRTC signaling). It does not block on the network.
func (t *trackerClient) send(m protocol.Message) error {
	c := t.conn.Load()
	if c == nil {
		return errNotConnected
	}
	return t.write(context.Background(), c, m)
}
