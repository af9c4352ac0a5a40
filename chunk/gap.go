package chunk

import (
	"strconv"

	"github.com/banyan-live/banyan/internal/errs"
)

// Gap is the byte range of a partly reassembled chunk that covers all its
// missing pieces: what a rescue asks an HTTP origin for (a Range request),
// instead of the whole chunk the mesh has mostly delivered.
type Gap struct {
	// First and Last are the first and last missing piece indexes.
	First, Last int
	// Count is the chunk's piece count and Size the length S of every
	// piece but the last.
	Count, Size int
	// Off and End bound the bytes [Off, End) of the sealed chunk; End is
	// -1 when the range runs to the chunk's end (the last piece, whose
	// length is not known, is missing).
	Off, End int64
}

// text is the gap as fmt's %+v writes it.
func (g Gap) text() string {
	return "{First:" + strconv.Itoa(g.First) + " Last:" + strconv.Itoa(g.Last) + " Count:" + strconv.Itoa(g.Count) +
		" Size:" + strconv.Itoa(g.Size) + " Off:" + strconv.FormatInt(g.Off, 10) + " End:" + strconv.FormatInt(g.End, 10) + "}"
}

// Gap returns the range covering the missing pieces of a chunk being
// reassembled. ok is false when no piece of it is held, when its piece
// length is not known yet (only the last piece came), or when nothing is
// missing.
func (r *Reassembler) Gap(epoch uint32, seq uint64) (g Gap, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.partials[chunkID{epoch, seq}]
	if e == nil || e.size == 0 || e.got >= e.count {
		return Gap{}, false
	}
	g = Gap{First: -1, Count: e.count, Size: e.size}
	for i := 0; i < e.count; i++ {
		if !e.has(i) {
			if g.First < 0 {
				g.First = i
			}
			g.Last = i
		}
	}
	g.Off = int64(g.First) * int64(e.size)
	g.End = -1
	if g.Last < e.count-1 {
		g.End = int64(g.Last+1) * int64(e.size)
	}
	return g, true
}

// Pieces cuts b, the origin's answer for the range (bytes from Off), into
// the pieces First..Last of chunk (epoch, seq). The answer must be exactly
// the range: a short or long one is an error, never a guess.
func (g Gap) Pieces(epoch uint32, seq uint64, b []byte) ([]Piece, error) {
	size := int64(g.Size)
	if g.Size < 1 || g.First < 0 || g.Last < g.First || g.Last >= g.Count || g.Count > MaxPieces ||
		g.Off != int64(g.First)*size || (g.End < 0) != (g.Last == g.Count-1) ||
		(g.End >= 0 && g.End != int64(g.Last+1)*size) {
		return nil, errs.Wrap("chunk: gap "+g.text()+": ", ErrMalformed, "")
	}
	n := int64(len(b))
	full := int64(g.Last-g.First+1) * int64(g.Size)
	switch {
	case g.End >= 0 && n != g.End-g.Off:
		return nil, errs.Wrap("chunk: range of "+strconv.FormatInt(n, 10)+" bytes for pieces "+strconv.Itoa(g.First)+"–"+strconv.Itoa(g.Last)+", want "+strconv.FormatInt(g.End-g.Off, 10)+": ", ErrMalformed, "")
	case g.End < 0 && (n <= full-int64(g.Size) || n > full):
		return nil, errs.Wrap("chunk: range of "+strconv.FormatInt(n, 10)+" bytes for pieces "+strconv.Itoa(g.First)+"–"+strconv.Itoa(g.Last)+" of "+strconv.Itoa(g.Count)+": ", ErrMalformed, "")
	}
	ps := make([]Piece, 0, g.Last-g.First+1)
	for i := g.First; i <= g.Last; i++ {
		lo := int64(i-g.First) * int64(g.Size)
		hi := min(lo+int64(g.Size), n)
		ps = append(ps, Piece{Epoch: epoch, Seq: seq, Index: uint16(i), Count: uint16(g.Count), Data: b[lo:hi]})
	}
	return ps, nil
}

// SliceRange returns bytes [off, end) of sealed, end -1 meaning to its end:
// an origin's answer to a Gap. A range outside the chunk is an error.
func SliceRange(sealed []byte, off, end int64) ([]byte, error) {
	n := int64(len(sealed))
	if end < 0 {
		end = n
	}
	if off < 0 || off >= end || end > n {
		return nil, errs.Wrap("chunk: range "+strconv.FormatInt(off, 10)+"–"+strconv.FormatInt(end, 10)+" of a "+strconv.FormatInt(n, 10)+"-byte chunk: ", ErrMalformed, "")
	}
	return sealed[off:end], nil
}
