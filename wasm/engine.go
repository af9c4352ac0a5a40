//go:build js && wasm

package main

import (
	"context"
	"errors"

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
	_ peer.Player = (*Player)(nil)
	_ peer.Origin = engineOrigin{}
)

// engineOrigin adapts originClient to peer.Origin.
type engineOrigin struct{ o *originClient }

func (e engineOrigin) Fetch(ctx context.Context, epoch uint32, seq uint64) ([]byte, error) {
	return e.o.Fetch(ctx, epoch, seq)
}

func (e engineOrigin) Live(ctx context.Context) (peer.LiveEdge, error) {
	l, err := e.o.Live(ctx)
	if err != nil {
		return peer.LiveEdge{}, err
	}
	return peer.LiveEdge{Epoch: l.Epoch, Seq: l.Seq, Keyframe: l.KeyframeSeq}, nil
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
