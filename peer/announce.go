package peer

import (
	"cmp"
	"slices"
	"time"
)

// Epochs the tracker announces (issue 18 #4, #5). A signed chunk proves
// the seeder made it, not that it is current: after a restart with the
// clock stepped back, or a wiped data dir, a relay could replay a genuine
// chunk of an older run whose epoch number is higher, and a peer that
// followed any higher epoch would switch its subtree to it and drop every
// real chunk as stale. So once the tracker has announced an epoch, a peer
// moves to a higher one only when the tracker announces that too; verified
// chunks of an epoch not announced yet are held (the mesh often brings a
// new epoch's init a moment before the tracker's message) and kept when
// it comes. For the same reason an unverified piece of an unannounced
// epoch does not show that a parent is alive (recent).
//
// An engine never told of an epoch (AnnounceEpoch not called: tests,
// benchmarks, a root) follows the chunks as before.

// announce is the engine's view of the tracker's epochs; guarded by mu.
type announce struct {
	epoch uint32   // newest epoch announced (0: none yet)
	held  []*entry // verified chunks of epochs above it, at most MaxAhead
}

// AnnounceEpoch tells the engine the stream's current epoch as the tracker
// announced it (welcome, keys). Lower or equal announcements change
// nothing; a higher one releases the held chunks of epochs up to it.
func (e *Engine) AnnounceEpoch(epoch uint32) {
	e.mu.Lock()
	defer e.unlockAndFlush()
	if e.closed || epoch <= e.ann.epoch {
		return
	}
	e.ann.epoch = epoch
	held := e.ann.held
	e.ann.held = nil
	slices.SortFunc(held, func(a, b *entry) int {
		return cmp.Or(cmp.Compare(a.k.epoch, b.k.epoch), cmp.Compare(a.k.seq, b.k.seq))
	})
	now := e.cfg.Clock()
	for _, en := range held {
		e.keep(now, en, nil) // holds again what is still above epoch
	}
}

// announced reports whether epoch may be followed: announced by the
// tracker, or no announcement has been made.
func (e *Engine) announced(epoch uint32) bool {
	return e.cfg.Root || e.ann.epoch == 0 || epoch <= e.ann.epoch
}

// holdUnannounced keeps en aside when its epoch is above the announced
// one and reports whether it did (or dropped it, past MaxAhead held).
func (e *Engine) holdUnannounced(now time.Time, en *entry) bool {
	if e.announced(en.k.epoch) {
		return false
	}
	delete(e.pend, en.k)
	e.asm.Forget(en.k.epoch, en.k.seq)
	if len(e.ann.held) >= e.cfg.MaxAhead || slices.ContainsFunc(e.ann.held, func(h *entry) bool { return h.k == en.k }) {
		e.ctr.Stale++
		return true
	}
	e.ann.held = append(e.ann.held, en)
	e.log.Debug("peer: holding a chunk of an epoch the tracker has not announced", "epoch", en.k.epoch, "seq", en.k.seq, "announced", e.ann.epoch, "at", now)
	return true
}

// AnnouncedEpoch is the newest epoch the tracker announced (0: none).
func (e *Engine) AnnouncedEpoch() uint32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ann.epoch
}
