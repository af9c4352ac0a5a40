package peer

import (
	"bytes"
	"slices"
	"time"

	"github.com/banyan-live/banyan/chunk"
)

// A parent is alive, for the silence check (checkSilent), only while it
// delivers: an unverified piece proves nothing, since anyone can label
// eight junk bytes with a chunk the child is waiting for (issue 18 #5).
// So liveness comes from verified progress only:
//
//   - a chunk that verifies with pieces from the stripe's parent among its
//     sources (creditVerified, at completion): every accepted piece of a
//     chunk that verifies is genuine, the parent's included;
//   - a duplicate piece of a chunk already verified whose bytes are that
//     chunk's (heldGenuine): a parent that is a little behind the repair
//     still feeds.
//
// Both count only for chunks near the live edge (Engine.recent), so old
// genuine chunks replayed do not count either.

// heldGenuine reports whether piece p of chunk k repeats bytes of a chunk
// already verified. No allocation: the piece's place in the sealed chunk
// follows from its size (every piece but the last has the common size).
func (e *Engine) heldGenuine(k key, p chunk.Piece) bool {
	en := e.win[k]
	if en == nil {
		return false
	}
	n, sealed := len(p.Data), en.sealed
	off := len(sealed) - n // the last piece
	if p.Index < p.Count-1 {
		off = int(p.Index) * n
	}
	return off >= 0 && off+n <= len(sealed) && bytes.Equal(sealed[off:off+n], p.Data)
}

// creditVerified marks the parents that sent pieces of chunk k, which just
// verified, as alive in the stripes k belongs to (every stripe for an init
// segment).
func (e *Engine) creditVerified(now time.Time, k key, pd *pending) {
	if pd == nil || len(pd.src) == 0 || !e.recent(k) {
		return
	}
	for s := range e.stripes {
		if k.seq != 0 && s != e.stripeOf(k.seq) {
			continue
		}
		if p := e.stripes[s].parent; p != nil && slices.Contains(pd.src, p.id) {
			e.stripes[s].lastPiece = now
		}
	}
}
