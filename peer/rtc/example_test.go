//go:build !js

package rtc_test

import (
	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/peer/rtc"
	"github.com/banyan-live/banyan/protocol"
)

// Example shows the glue between the tracker's messages, a Transport and an
// Engine: links open into parent/child roles, messages go to the engine, a
// parent link that never opens (ConnectTimeout) or dies is reported and the
// origin covers its stripe until the tracker assigns another parent.
func Example() {
	var (
		self     peer.PeerID                    = 7
		eng      *peer.Engine                   // peer.New(...)
		send     func(protocol.Signal)          // writes to the tracker's websocket
		parentIn = map[peer.PeerID][]int{}      // stripes where the neighbour is our parent
		childIn  = map[peer.PeerID][]int{}      // stripes where it is our child
		welcome  = protocol.Welcome{Peer: self} // ICE servers come from here
	)
	tr, err := rtc.New(rtc.Config{
		Self:       self,
		ICEServers: welcome.ICEServers,
		Signal:     send,
		Accept:     func(p peer.PeerID) bool { return len(parentIn[p])+len(childIn[p]) > 0 },
		OnOpen: func(l *rtc.Link) {
			for _, s := range parentIn[l.Remote()] {
				_ = eng.SetParent(s, l.Remote(), l)
			}
			for _, s := range childIn[l.Remote()] {
				_ = eng.AddChild(s, l.Remote(), l)
			}
		},
		OnMessage: func(l *rtc.Link, m []byte) { eng.HandleMessage(l.Remote(), l, m) },
		OnClose: func(l *rtc.Link, err error) {
			for _, s := range parentIn[l.Remote()] {
				eng.ParentFailed(s, l.Remote()) // reports no_connection; the origin covers
			}
			eng.RemovePeer(l.Remote())
		},
	})
	if err != nil {
		return
	}
	defer tr.Close()
	// On protocol.Assign{Stripe: s, Parent: p}: parentIn[p] = append(parentIn[p], s),
	// and the lower id of the pair dials: if self < p { tr.Dial(p) }.
	// On protocol.Signal from the tracker: tr.HandleSignal(sig).
}
