package peer

import (
	"bytes"

	"github.com/banyan-live/banyan/chunk"
)

// genuineIfHeld reports whether piece p (message msg) of chunk k may count
// as a sign that the parent sending it is alive (issue 18 #5). A piece of
// a chunk not verified yet may: if it is junk the chunk fails to verify
// and the parent is reported for it. A piece of a chunk already verified
// is a duplicate that is never checked otherwise, so a withholder could
// keep its children from reporting it silent by sending junk labelled with
// chunks they have; it counts only if its bytes are that chunk's. No
// allocation: the piece's place in the sealed chunk follows from its size
// (every piece but the last has the common size).
func (e *Engine) genuineIfHeld(k key, p chunk.Piece) bool {
	en := e.win[k]
	if en == nil {
		return true
	}
	n, sealed := len(p.Data), en.sealed
	off := len(sealed) - n // the last piece
	if p.Index < p.Count-1 {
		off = int(p.Index) * n
	}
	return off >= 0 && off+n <= len(sealed) && bytes.Equal(sealed[off:off+n], p.Data)
}
