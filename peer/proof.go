package peer

import (
	"crypto/sha256"
	"math/bits"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/protocol"
)

// Delivery statements (issue 18 #2; the format and why in
// protocol/proof.go). A parent holding Config.ProofKey signs, for each
// chunk it verified and each child of the chunk's stripe, the SHA-256 of
// the sealed chunk: one signature per chunk per child, not per piece,
// since pieces are forwarded cut-through before the parent can check
// them. A child keeps the last statements its parents sent; when a chunk
// from a parent fails to verify and that parent's statement names exactly
// these bytes, the bad-chunk report carries it (Report.Proof) and the
// tracker can evict the parent. An honest parent signs only chunks that
// verified, so no child can frame it; a forger that signs nothing gives no
// proof and is demoted and moved away from as before.
//
// Message layout: 'D', version, then protocol.ProofSize bytes (epoch,
// seq, hash, signature): 110 bytes a chunk a child.

const msgProof = 'D'

// proofSize is a statement message's size.
const proofSize = 2 + protocol.ProofSize

// keptProofs is how many statements a child keeps of each parent: 8 s
// of a stripe's chunks at four chunks a second, far more than BadGrace and
// reassembly need.
const keptProofs = 32

type proofRec struct {
	k   key
	msg []byte // the whole statement message
}

// proofRing is one parent's last statements.
type proofRing struct {
	recs [keptProofs]proofRec
	n    int
}

// proofs holds a child's statements, apart for each parent, so that no
// parent's flood of statements pushes out another's.
type proofs struct {
	by map[PeerID]*proofRing
}

// sendProofs signs chunk k (sealed, verified) for every child that is fed
// it: the stripe's children, or every child for an init segment.
func (e *Engine) sendProofs(k key, sealed []byte) {
	if e.cfg.ProofKey == nil || e.cfg.Root {
		return
	}
	var (
		d    protocol.Delivery
		seen uint32
		done bool
	)
	for s := range e.stripes {
		if k.seq != 0 && s != e.stripeOf(k.seq) {
			continue
		}
		for _, c := range e.stripes[s].children {
			if c.childOf&seen != 0 {
				continue
			}
			if !done {
				d = protocol.Delivery{Epoch: k.epoch, Seq: k.seq, Hash: chunk.Sum256(sealed)}
				done = true
			}
			d.Child = protocol.PeerID(c.id)
			msg := append(make([]byte, 0, proofSize), msgProof, msgVersion)
			msg = protocol.AppendProof(msg, e.cfg.ProofKey, e.cfg.Stream, d)
			_ = c.link.Send(msg)
			e.ctr.ProofsSent++
		}
		seen |= 1 << s
	}
}

// onProof keeps a statement from a parent.
func (e *Engine) onProof(n *nbr, msg []byte) {
	if len(msg) != proofSize || msg[1] != msgVersion {
		e.ctr.Malformed++
		return
	}
	d, _, err := protocol.ParseProof(msg[2:], 0)
	if err != nil {
		e.ctr.Malformed++
		return
	}
	// Only for a chunk it feeds us, of the window: the rest is junk.
	k := key{d.Epoch, d.Seq}
	s := e.stripeOf(k.seq)
	if n.parentOf&(1<<s) == 0 && (k.seq != 0 || n.parentOf == 0) {
		e.ctr.Unsolicited++
		return
	}
	if !e.accepts(k) {
		e.ctr.Stale++
		return
	}
	p := &e.prf
	if p.by == nil {
		p.by = make(map[PeerID]*proofRing)
	}
	r := p.by[n.id]
	if r == nil {
		// Forget former parents' statements first: a map entry per
		// current parent, at most one per stripe.
		for id := range p.by {
			if m := e.nbrs[id]; m == nil || m.parentOf == 0 {
				delete(p.by, id)
			}
		}
		r = &proofRing{}
		p.by[n.id] = r
	}
	r.recs[r.n%keptProofs] = proofRec{k: k, msg: msg}
	r.n++
}

// finishReport readies a bad-chunk report about chunk k as BadGrace ends:
// false drops it, when the accused is no longer our parent (we moved
// meanwhile: the tracker counts a report about a peer that is not the
// reporter's parent as a strike against the reporter); else it names a
// stripe the accused is our parent in now and carries the accused's
// statement for exactly the bytes reported, if it sent one.
func (e *Engine) finishReport(r *protocol.Report, k key) bool {
	if r.Kind != protocol.ReportBadChunk {
		return true
	}
	if n := e.nbrs[r.Peer]; n == nil || n.parentOf == 0 {
		return false
	}
	r.Stripe = e.accusedStripe(r.Peer, k)
	e.attachProof(r, k)
	return true
}

// attachProof adds to a bad-chunk report the accused's statement for
// exactly the bytes reported, if it sent one.
func (e *Engine) attachProof(r *protocol.Report, k key) {
	if len(r.Chunk) == 0 {
		return
	}
	ring := e.prf.by[r.Peer]
	if ring == nil {
		return
	}
	var h [sha256.Size]byte
	hashed := false
	for i := range min(ring.n, keptProofs) {
		rec := &ring.recs[i]
		if rec.k != k {
			continue
		}
		if !hashed {
			h, hashed = sha256.Sum256(r.Chunk), true
		}
		if d, _, err := protocol.ParseProof(rec.msg[2:], 0); err == nil && d.Hash == h {
			r.Proof = rec.msg[2:]
			return
		}
	}
}

// accusedStripe is the stripe a bad-chunk report about culprit names: the
// chunk's stripe when culprit is its parent there, else a stripe it is our
// parent in. A chunk may come from the parent of another stripe answering
// a repair, and the tracker takes a bad-chunk report only about the
// reporter's parent in the stripe it names: naming the chunk's stripe
// would cost an honest child a strike (three evict it), so a hostile
// parent answering repairs with junk could have its siblings' children
// evicted.
func (e *Engine) accusedStripe(culprit PeerID, k key) int {
	s := e.stripeOf(k.seq)
	if n := e.nbrs[culprit]; n != nil && n.parentOf != 0 && n.parentOf&(1<<s) == 0 {
		return bits.TrailingZeros32(n.parentOf)
	}
	return s
}
