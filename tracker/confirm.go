package tracker

import (
	"github.com/banyan-live/banyan/overlay"
	"github.com/banyan-live/banyan/protocol"
)

// confirmedLocked counts the child slots of peer id its children confirm
// in their last stats: each child of id (in the stripe id is interior in)
// whose Stats.Parents names id in that stripe with at least half a slot's
// rate (Capacity.Confirms). A child's word is only its own slot's, so
// sybil children confirm only the slots they take themselves; and a child
// from the parent's own address (IPv6: its /64) confirms nothing, so
// sybils on the liar's own machine or network buy it nothing (loopback
// is exempt, as from every per-address limit: a proxy's clients share it).
func (st *streamState) confirmedLocked(id protocol.PeerID) int {
	s, err := st.forest.Interior(overlay.PeerID(id))
	parent := st.sessions[id]
	if err != nil || s < 0 || parent == nil {
		return 0
	}
	kids, _ := st.forest.Children(nil, overlay.PeerID(id), s)
	c, n := st.capacity(), 0
	for _, k := range kids {
		child := st.sessions[protocol.PeerID(k)]
		if child == nil || (!parent.ipLoop && child.ipKey == parent.ipKey) {
			continue
		}
		for _, ph := range child.stats.Parents {
			if ph.Stripe == s && ph.Parent == id && c.Confirms(ph.Kbps) {
				n++
				break
			}
		}
	}
	return n
}
