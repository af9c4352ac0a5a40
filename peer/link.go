package peer

import (
	"errors"

	"github.com/banyan-live/banyan/protocol"
)

// PeerID names a neighbour; it is the tracker's peer id.
type PeerID = protocol.PeerID

// Link paths, as Link.Path reports them.
const (
	PathDirect = "direct" // a direct (host, srflx or prflx) ICE pair
	PathTURN   = "turn"   // relayed through a TURN server
	PathMem    = "mem"    // memnet, the in-process simulation
	// PathUnknown: the transport cannot tell (a browser without the API
	// that names the selected ICE pair). Its bytes count as peer bytes.
	PathUnknown = "unknown"
)

var (
	// ErrBackpressure is returned by Link.Send when the link already
	// buffers more than its high-water mark. The message was not sent. The
	// engine never waits for a link: it skips that neighbour for the rest
	// of the chunk and lets repair cover it.
	ErrBackpressure = errors.New("peer: link backpressure")
	// ErrLinkClosed is returned by Link.Send after Close.
	ErrLinkClosed = errors.New("peer: link closed")
)

// Link is one open connection to a neighbour (a parent, a child, or both in
// different stripes: neighbours share one link). The transport delivers
// what arrives on it by calling Engine.HandleMessage.
//
// Send must not block: it queues msg (at most chunk.MaxMessageSize bytes)
// or fails with ErrBackpressure or ErrLinkClosed. Neither side modifies msg
// after the call, so a transport may keep it until it is written and the
// engine may forward one received buffer to many links.
type Link interface {
	Send(msg []byte) error
	// Buffered is how many bytes are queued and not yet handed to the
	// network.
	Buffered() int
	// Path is PathDirect, PathTURN, PathMem or PathUnknown. It may change
	// once, when ICE selects a pair.
	Path() string
	Close() error
}
