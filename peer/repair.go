package peer

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/internal/errs"
	"github.com/banyan-live/banyan/protocol"
)

// Tick runs the engine's timers: deadlines and stalls, repair, reports,
// pings and window expiry. The owner calls it every ~50 ms with the engine's
// clock; everything time-driven happens here, so a test with a virtual clock
// is deterministic.
func (e *Engine) Tick(now time.Time) {
	e.mu.Lock()
	defer e.unlockAndFlush()
	if e.closed {
		return
	}
	e.expire(now)
	if !e.cfg.Root {
		e.play.tick(now)
		e.followClock(now)
		e.checkStart(now)
		e.deadlines(now)
		e.repairAll(now)
		e.pendingReports(now)
		e.checkSilent(now)
	}
	e.pings(now)
	if !now.Before(e.slowReset) {
		e.slowReset = now.Add(e.cfg.SlowPeriod)
		for _, n := range e.nbrs {
			n.skips, n.notices = 0, 0
		}
	}
}

// expire drops window entries older than Window and pending state below the
// floor.
func (e *Engine) expire(now time.Time) {
	limit := now.Add(-e.cfg.Window)
	maxKeep := int(e.windowChunks()) + 8
	i := 0
	for ; i < len(e.fifo); i++ {
		f := e.fifo[i]
		if f.at.After(limit) && len(e.fifo)-i <= maxKeep && !(e.hasEpoch && f.k.epoch < e.epoch && f.at.Before(now.Add(-5*time.Second))) {
			break
		}
		if en := e.win[f.k]; en != nil && en != e.init {
			delete(e.win, f.k)
		}
	}
	if i > 0 {
		e.fifo = slices.Delete(e.fifo, 0, i)
	}
	if now.Before(e.sweepAt) {
		return
	}
	e.sweepAt = now.Add(time.Second)
	for k, pd := range e.pend {
		if (e.hasEpoch && (k.epoch < e.epoch || k.seq < e.floor)) ||
			(e.started && k.seq < e.playhead && !pd.originBusy && now.Sub(pd.first) > e.cfg.Window) {
			delete(e.pend, k)
		}
	}
}

// checkStart starts from the origin when the parents sent nothing in time,
// or when every stripe is origin-fed.
func (e *Engine) checkStart(now time.Time) {
	if e.cfg.Origin == nil || e.liveBusy {
		return
	}
	if e.hasEpoch && e.started {
		// Playing. Look at the origin's live edge again only when starved:
		// a broadcaster that restarted shows up there as a new epoch,
		// which a peer fed by the origin (no parent to push the new init)
		// must find. Spaced by StartTimeout so a swarm waiting out a
		// broken broadcast does not hammer the origin.
		n := e.newestEnt
		if n == nil || now.Sub(n.at) < e.cfg.StartTimeout || now.Sub(e.liveAt) < e.cfg.StartTimeout {
			return
		}
		e.startLive(now)
		return
	}
	all := true
	for i := range e.stripes {
		all = all && e.stripes[i].originFed
	}
	waited := now.Sub(e.created) >= e.cfg.StartTimeout
	if !all && !waited {
		return
	}
	if !e.liveAt.IsZero() && now.Sub(e.liveAt) < liveRetry {
		return
	}
	if e.hasEpoch && e.init != nil && e.lastKey != 0 {
		return
	}
	e.startLive(now)
}

// startLive asks the origin for its live edge; liveDone takes the answer.
func (e *Engine) startLive(now time.Time) {
	e.liveBusy, e.liveAt = true, now
	if e.ctr.OriginLiveAt.IsZero() && !e.started {
		e.ctr.OriginLiveAt = now
	}
	o := e.cfg.Origin
	if ao, ok := o.(AsyncOrigin); ok {
		e.queue(func() { ao.LiveAsync(e.liveDone) })
		return
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		ctx, cancel := context.WithTimeout(e.ctx, e.cfg.StartTimeout)
		defer cancel()
		le, err := o.Live(ctx)
		e.liveDone(le, err)
	}()
}

// MaxStartBack is how many chunks before the live edge an origin start
// goes back for the keyframe (16 s of 250 ms chunks); a longer GOP starts
// at the live edge and waits for the next keyframe.
const MaxStartBack = 64

// liveRetry spaces live-edge requests to the origin.
const liveRetry = 500 * time.Millisecond

func (e *Engine) liveDone(le LiveEdge, err error) {
	e.mu.Lock()
	defer e.unlockAndFlush()
	if e.closed {
		return
	}
	e.liveBusy = false
	if err != nil {
		e.log.Debug("peer: origin live edge", "err", err)
		return
	}
	if e.hasEpoch && le.Epoch == e.epoch && e.started {
		e.reseed(le)
		return
	}
	if e.hasEpoch && le.Epoch < e.epoch {
		return
	}
	start := le.Keyframe
	if start == 0 || start > le.Seq || le.Seq-start > MaxStartBack {
		start = le.Seq
	}
	e.ctr.OriginStarts++
	now := e.cfg.Clock()
	for _, seq := range append([]uint64{0}, seqRange(start, le.Seq)...) {
		k := key{le.Epoch, seq}
		if _, ok := e.win[k]; ok {
			continue
		}
		pd := e.pendOf(k)
		if seq == le.Seq {
			// The newest chunk existed when the origin answered: that is
			// a live-edge sample even if no parent ever sends anything.
			pd.feed, pd.first = true, now
		}
		e.fetchOrigin(now, pd, originStart)
	}
}

// reseed gives a playing peer without any live-edge estimate one from the
// origin's newest chunk, which exists now. Such a peer (every chunk its
// parent fed failed to verify, then the stripe went to the origin) has no
// expected arrivals and no deadlines: it would fetch nothing and freeze
// without a stall. The sample errs late (the origin had the chunk before
// it answered), which only delays deadlines.
func (e *Engine) reseed(le LiveEdge) {
	if _, ok := e.liveEstimate(); ok {
		return
	}
	mt, ok := e.mediaTime(le.Seq)
	if !ok {
		return
	}
	now := e.cfg.Clock()
	e.stripes[e.stripeOf(le.Seq)].addBase(now.Add(-mt), now, 0)
	e.followClock(now)
	e.log.Debug("peer: live edge from the origin", "epoch", le.Epoch, "seq", le.Seq)
}

func seqRange(a, b uint64) []uint64 {
	var s []uint64
	for ; a <= b && a > 0; a++ {
		s = append(s, a)
	}
	return s
}

// mediaTime estimates the media time of seq in the current epoch from the
// nearest verified chunk.
func (e *Engine) mediaTime(seq uint64) (time.Duration, bool) {
	us := func(v uint64) time.Duration { return time.Duration(v) * time.Microsecond }
	if n := e.newestEnt; n != nil && n.k.epoch == e.epoch && seq > n.k.seq {
		// The common case: a chunk after the newest one.
		return us(n.h.MediaTime) + us(uint64(n.h.Duration)) + time.Duration(seq-n.k.seq-1)*e.avgDur, true
	}
	for d := uint64(1); d <= 64 && d < seq; d++ {
		if en := e.win[key{e.epoch, seq - d}]; en != nil {
			return us(en.h.MediaTime) + us(uint64(en.h.Duration)) + time.Duration(d-1)*e.avgDur, true
		}
	}
	for d := uint64(1); d <= 64; d++ {
		if en := e.win[key{e.epoch, seq + d}]; en != nil {
			return us(en.h.MediaTime) - time.Duration(d)*e.avgDur, true
		}
	}
	return 0, false
}

// expected estimates when seq should arrive from its parent: the stripe's
// live-edge estimate (or the best of all stripes) plus its media time.
func (e *Engine) expected(seq uint64) (time.Time, bool) {
	mt, ok := e.mediaTime(seq)
	if !ok {
		return time.Time{}, false
	}
	base, ok := e.stripes[e.stripeOf(seq)].liveBase()
	if !ok {
		for i := range e.stripes {
			if b, ok2 := e.stripes[i].liveBase(); ok2 && (!ok || b.Before(base)) {
				base, ok = b, true
			}
		}
	}
	if !ok && e.hasFallback {
		base, ok = e.fallbackBase, true
	}
	if !ok {
		return time.Time{}, false
	}
	return base.Add(mt), true
}

// liveEstimate is the playout clock's target: the latest stripe's
// live-edge estimate, else the fallback kept from a lost parent.
func (e *Engine) liveEstimate() (time.Time, bool) {
	var est time.Time
	ok := false
	for i := range e.stripes {
		if b, ok2 := e.stripes[i].liveBase(); ok2 && (!ok || b.After(est)) {
			est, ok = b, true
		}
	}
	if !ok && e.hasFallback {
		est, ok = e.fallbackBase, true
	}
	return est, ok
}

// followClock moves the playout clock toward the live-edge estimate plus
// the playout target.
func (e *Engine) followClock(now time.Time) {
	if est, ok := e.liveEstimate(); ok {
		e.clock.follow(now, est.Add(e.play.target))
	}
}

// deadline is when playback gives up on seq: its media time on the
// playout clock plus the playout target.
func (e *Engine) deadline(seq uint64) (time.Time, bool) {
	if !e.clock.set {
		return time.Time{}, false
	}
	mt, ok := e.mediaTime(seq)
	if !ok {
		return time.Time{}, false
	}
	return e.clock.base.Add(mt), true
}

// deadlines gives up on the chunk at the playhead once it is due.
func (e *Engine) deadlines(now time.Time) {
	for e.started && !e.ended {
		k := key{e.epoch, e.playhead}
		if _, ok := e.win[k]; ok {
			e.advance(now)
			if _, ok := e.win[key{e.epoch, e.playhead}]; ok {
				return
			}
			continue
		}
		if e.eos != 0 && e.playhead > e.eos {
			return
		}
		due, ok := e.deadline(e.playhead)
		if !ok || now.Before(due) {
			return
		}
		pd := e.pendOf(k)
		pd.lost = true
		lateBy, target := now.Sub(due), e.play.target
		e.clock.delay(e.play.stalled(now))
		e.sendHave(k, pd, originPeer)
		e.ctr.Stalls++
		e.ctr.MissWhy[missWhy(now, pd)]++
		e.st.stalledMS += e.avgDur.Milliseconds()
		// Say where its repair stood: the cause of a stall is otherwise
		// invisible after the fact.
		e.log.Debug("peer: chunk missed its deadline", "epoch", k.epoch, "seq", k.seq,
			"late_by", lateBy, "target", target,
			"pieces_from", errs.List(pd.src), "first", since(now, pd.first), "last", since(now, pd.last),
			"tried", errs.List(pd.tried), "asked", pd.asked, "origin_busy", pd.originBusy, "repairing", pd.repairing)
		e.advance(now)
	}
}

// since is how long ago t was (0 for a zero t), for logs.
func since(now, t time.Time) time.Duration {
	if t.IsZero() {
		return 0
	}
	return now.Sub(t)
}

// horizon is the newest sequence that should have arrived by now.
func (e *Engine) horizon(now time.Time) uint64 {
	h := e.newest
	for i := 0; i < e.cfg.MaxAhead; i++ {
		if e.eos != 0 && h+1 > e.eos {
			break
		}
		// Arrived by now on the stripe's estimate, or near its deadline
		// on the playout clock (data running later than the schedule
		// must still be repaired in time).
		exp, ok := e.expected(h + 1)
		due, ok2 := e.deadline(h + 1)
		if (!ok || exp.After(now)) && (!ok2 || due.Add(-e.originLead()).After(now)) {
			break
		}
		h++
	}
	return h
}

func (e *Engine) repairAll(now time.Time) {
	if !e.hasEpoch {
		return
	}
	if e.init == nil && !e.firstAt.IsZero() && now.Sub(e.firstAt) >= e.cfg.RepairDelay {
		e.repairChunk(now, e.pendOf(key{e.epoch, 0}))
	}
	if !e.started {
		// Not playing yet: repair the chunks we know exist because some
		// of their pieces came (a lost piece of the first keyframe must
		// not hold the start until the next one).
		var ks []key
		for k, pd := range e.pend {
			if k.epoch == e.epoch && k.seq > 0 && !pd.first.IsZero() {
				ks = append(ks, k)
			}
		}
		slices.SortFunc(ks, func(a, b key) int { return cmpSeq(a.seq, b.seq) })
		for _, k := range ks {
			e.repairChunk(now, e.pend[k])
		}
		return
	}
	for seq := e.playhead; seq <= e.horizon(now); seq++ {
		k := key{e.epoch, seq}
		if _, ok := e.win[k]; ok {
			continue
		}
		e.repairChunk(now, e.pendOf(k))
	}
}

// repairChunk moves one missing chunk along its repair schedule: wait for
// the parent until RepairDelay past its expected arrival, then ask the other
// parents one at a time (PeerTimeout each), then the origin, which is asked
// no later than OriginLead before the deadline.
//
// The deadline comes first: a chunk still trickling from a slow parent, or
// waiting on a want, goes to the origin at OriginLead all the same (the
// first complete copy wins).
func (e *Engine) repairChunk(now time.Time, pd *pending) {
	if pd.lost || pd.originBusy || e.cfg.Root {
		return
	}
	if _, ok := e.win[pd.k]; ok {
		return
	}
	s := e.stripeOf(pd.k.seq)
	st := &e.stripes[s]
	var exp time.Time
	if pd.k.seq != 0 { // the init segment has no deadline
		var ok bool
		if exp, ok = e.expected(pd.k.seq); !ok {
			return
		}
		due, hasDue := e.deadline(pd.k.seq)
		near := hasDue && !now.Before(due.Add(-e.originLead()))
		if st.parent == nil && st.originFed {
			if near || !now.Before(exp) {
				e.fetchOrigin(now, pd, originFed)
			}
			return
		}
		if near {
			// The peers could not make it: as a near miss, this is
			// what the playout target learns from (a deeper tree or
			// loaded parents need more delay, or the origin carries
			// the difference). The clock follows the target by
			// slowing down, not by a jump.
			if !pd.originBusy && !now.Before(pd.originAfter) {
				e.play.grow(now, playoutLate)
			}
			e.fetchOrigin(now, pd, originLate)
			return
		}
	}
	if pd.asked != 0 {
		switch {
		case pd.askHi > 0 && e.answered(pd):
			// The holes we listed came: what is still missing is new
			// (a lost tail), not a timeout.
			pd.asked, pd.askHi = 0, 0
		case now.Before(pd.askUntil):
			return
		default:
			pd.tried = append(pd.tried, pd.asked)
			pd.asked, pd.askHi = 0, 0
			e.ctr.WantTimeouts++
		}
	}
	if pd.k.seq != 0 {
		newer := st.hasFeed && st.newestFeed > pd.k.seq
		urgent := pd.urgent || st.parent == nil || newer
		// Late is about the first piece (what the estimate samples): a
		// chunk whose pieces are still flowing from the parent is not
		// late, and the gap rule covers one that stops flowing.
		late := !pd.feed && !now.Before(exp.Add(e.cfg.RepairDelay))
		gk := e.gap(now, pd)
		gapped := gk != noGap
		if !urgent && !late && !gapped {
			return
		}
		if !pd.repairing {
			pd.repairing = true
			switch {
			case pd.urgent || st.parent == nil:
				e.ctr.RepairWhy[repairOther]++
			case gk == gapHole:
				e.ctr.RepairWhy[repairHole]++
			case gapped:
				e.ctr.RepairWhy[repairGap]++
			case newer:
				e.ctr.RepairWhy[repairSkipped]++
			default:
				e.ctr.RepairWhy[repairLate]++
			}
		}
	}
	gk := e.gap(now, pd)
	c, busy := e.candidate(pd, s, gk != noGap)
	if c != nil {
		w := want{Epoch: pd.k.epoch, Seq: pd.k.seq}
		askHi := uint16(0)
		if !pd.bad {
			if missing, ok := e.asm.Missing(pd.k.epoch, pd.k.seq); ok {
				w.Pieces = missing
				if gk == gapHole && !e.movedOn(now, pd) {
					// The parent is still sending the chunk: ask only
					// for what it lost, whoever is asked (asking the
					// parent itself for all of it measured worse: 2.2 %
					// duplicate bytes instead of 1.7 %, and a higher
					// publish-to-play p95).
					w.Pieces, askHi = lostPieces(missing, pd.feedHi)
				}
			}
		}
		if err := c.link.Send(appendWant(nil, w)); err != nil {
			pd.tried = append(pd.tried, c.id)
			return // next tick tries the next candidate
		}
		e.ctr.WantsSent++
		pd.asked, pd.askUntil, pd.askHi = c.id, now.Add(e.cfg.PeerTimeout), askHi
		return
	}
	if busy {
		// A parent that has not been asked yet is busy with our other
		// repairs: wait for it; the origin is for when peers cannot make
		// the deadline (OriginLead above), not a reflex.
		return
	}
	if len(pd.tried) > pd.round && !pd.bad && pd.k.seq != 0 {
		// Every parent said no or timed out. One that did not hold the
		// chunk may get it soon (it sits deeper in that stripe's tree):
		// ask again after a pause, until OriginLead sends it to the
		// origin.
		if pd.roundEnd.IsZero() {
			pd.roundEnd = now
		}
		if now.Sub(pd.roundEnd) >= e.cfg.PeerTimeout {
			pd.round, pd.roundEnd = len(pd.tried), time.Time{}
		}
		return
	}
	e.fetchOrigin(now, pd, originNoPeer)
}

// repairSources lists the neighbours asked for pd's chunk, in the order
// asked: their answers may still be on the way.
func repairSources(pd *pending) []PeerID {
	ids := pd.tried
	if pd.asked != 0 && !slices.Contains(ids, pd.asked) {
		ids = append(slices.Clip(ids), pd.asked)
	}
	return ids
}

// askSpan bounds the repair requests outstanding at one neighbour, in
// media time: its spare upload is limited, and a request it cannot serve
// soon is better sent elsewhere. Counted in chunks (two), halving the
// chunk duration halved what a joiner's catch-up and every repair could
// have in flight, and K = 2 fell from 98.1 to 97.6 % offload
// (bench/analysis.md, "chunk duration").
const askSpan = 500 * time.Millisecond

// maxAsks is askSpan in chunks of duration avg: at least two, at most
// eight.
func maxAsks(avg time.Duration) int {
	if avg <= 0 {
		return 2
	}
	return min(max(2, int((askSpan+avg-1)/avg)), 8)
}

// asking counts the chunks we are waiting for from n.
func (e *Engine) asking(n *nbr) int {
	c := 0
	for _, pd := range e.pend {
		if pd.asked == n.id {
			c++
		}
	}
	return c
}

// candidate picks the next peer to ask for a chunk of stripe s: the parents
// of the other stripes in order, then the stripe's own parent (it may have
// skipped us, or lost pieces).
//
// A chunk that lost pieces on the way (gapped) asks its own parent first:
// it sent the rest, so it holds the chunk.
//
// busy says a parent that could still be asked has maxAsks requests of
// ours outstanding.
func (e *Engine) candidate(pd *pending, s int, gapped bool) (c *nbr, busy bool) {
	k := len(e.stripes)
	for j := 1; j <= k; j++ {
		i := (s + j) % k
		if gapped {
			i = (s + j - 1) % k
		}
		p := e.stripes[i].parent
		if p == nil || slices.Contains(pd.tried[pd.round:], p.id) {
			continue
		}
		if pd.bad && (slices.Contains(pd.notices, p.id) || pd.accused == p.id) {
			continue
		}
		if e.asking(p) >= maxAsks(e.avgDur) {
			busy = true
			continue
		}
		return p, false
	}
	return nil, busy
}

// gapped reports a chunk whose pieces came from its parent but stopped
// short: a piece was lost on the link.
//
// A parent sends a child's chunks oldest first and each chunk's pieces in
// order (sched.go), so a hole below the highest piece it sent, or any
// missing piece once it sent a piece of a later chunk, is a loss once
// reordering had its time (as QUIC declares a packet lost when later ones
// were acknowledged). A chunk whose pieces stopped coming altogether is
// gapped after the stripe's learned gap limit: a parent with many children
// serves them one after the other, so long pauses are normal there and the
// floor is generous.
func (e *Engine) gapped(now time.Time, pd *pending) bool {
	return e.gap(now, pd) != noGap
}

// Gap kinds (gapped).
const (
	noGap   = iota
	gapIdle // no piece for the stripe's gap limit
	gapHole // a hole below a later piece
)

func (e *Engine) gap(now time.Time, pd *pending) int {
	if !pd.feed || pd.bad || pd.last.IsZero() {
		return noGap
	}
	if now.Sub(pd.last) >= e.stripes[e.stripeOf(pd.k.seq)].gap.limit(e.cfg.PieceGap) {
		return gapIdle
	}
	// The parent moved on to a later chunk: it has sent all of this one.
	if e.movedOn(now, pd) {
		return gapHole
	}
	if now.Sub(pd.feedHiAt) < reorderWait {
		return noGap
	}
	if missing, ok := e.asm.Missing(pd.k.epoch, pd.k.seq); ok && len(missing) > 0 && missing[0] < pd.feedHi {
		return gapHole
	}
	return noGap
}

// movedOn reports that the stripe's parent sent a later chunk long enough
// ago: it has sent all of pd's chunk, so every piece still missing is lost.
func (e *Engine) movedOn(now time.Time, pd *pending) bool {
	p := e.stripes[e.stripeOf(pd.k.seq)].parent
	return p != nil && pd.k.less(p.fedUpTo) && now.Sub(p.fedAt) >= reorderWait
}

// lostPieces picks, of a chunk's missing pieces, those its parent is known
// to have sent: the holes below hi, one past the highest piece it sent (it
// sends a chunk's pieces in order). The pieces above may still be queued at
// the parent or on the way: asking for them again would have them sent
// twice. With no hole below hi, every missing piece is asked for. askHi
// is what answered checks: one past the highest piece asked (0: all).
func lostPieces(missing []uint16, hi uint16) (ask []uint16, askHi uint16) {
	for _, i := range missing {
		if i < hi {
			ask = append(ask, i)
		}
	}
	if len(ask) == 0 {
		return missing, 0
	}
	return ask, ask[len(ask)-1] + 1
}

// answered reports that every piece a partial want asked for came.
func (e *Engine) answered(pd *pending) bool {
	missing, ok := e.asm.Missing(pd.k.epoch, pd.k.seq)
	return ok && (len(missing) == 0 || missing[0] >= pd.askHi)
}

// reorderWait is how long a hole below a later piece may be reordering
// (unordered data channels, jitter) before it counts as lost.
const reorderWait = 40 * time.Millisecond

func (e *Engine) onNope(now time.Time, n *nbr, msg []byte) {
	k, err := parseRef(msg, msgNope)
	if err != nil {
		e.ctr.Malformed++
		return
	}
	pd := e.pend[k]
	if pd == nil || pd.asked != n.id {
		return
	}
	e.ctr.Nopes++
	pd.tried = append(pd.tried, n.id)
	pd.asked = 0
	e.repairChunk(now, pd)
}

// onWant serves a repair request from a verified chunk in the window, within
// the neighbour's serving budget.
func (e *Engine) onWant(now time.Time, n *nbr, msg []byte) {
	w, err := parseWant(msg)
	if err != nil {
		e.ctr.Malformed++
		return
	}
	k := key{w.Epoch, w.Seq}
	en := e.win[k]
	if en == nil {
		_ = n.link.Send(appendRef(nil, msgNope, k))
		return
	}
	// A want supersedes an earlier have (or a skip) of the chunk.
	n.uncancel(k)
	// Our child in the chunk's stripe asking for pieces it lacks is owed
	// them as feed (it lost them on the way, or joined mid-chunk), at its
	// feed priority. Pieces of the chunk still queued for it go out in
	// their turn, and pieces still on their way to it arrive: sending
	// them again would send them twice.
	class := classRepair
	var queued []bool
	if n.childOf&(1<<e.stripeOf(k.seq)) != 0 && k.seq != 0 {
		class = classFeed
		queued = e.up.queuedPieces(n, k, len(en.pieces()))
	} else if e.up.backlog() > wantBacklog {
		// Repair is served from spare upload only: with the feed already
		// queued for longer than wantBacklog, say no at once so the
		// requester asks someone else instead of waiting behind our
		// children.
		e.ctr.WantsRefused++
		_ = n.link.Send(appendRef(nil, msgNope, k))
		return
	}
	msgs := en.pieces()
	idx := w.Pieces
	if len(idx) == 0 {
		idx = make([]uint16, len(msgs))
		for i := range idx {
			idx[i] = uint16(i)
		}
	}
	rate := 2 * e.rate
	served := false
	for _, i := range idx {
		if int(i) >= len(msgs) {
			continue
		}
		m := msgs[i]
		// What it asked for counts against its budget even when it is
		// already coming: a child asking for everything again and again
		// gets no more than it did when its feed was cancelled and
		// resent.
		if !n.serve.take(now, len(m), rate, 8*e.rate+4*chunk.MaxMessageSize) {
			e.ctr.WantsRefused++
			if !served {
				_ = n.link.Send(appendRef(nil, msgNope, k))
			}
			return
		}
		if queued != nil && (queued[i] || n.sent.onTheWay(k, i, now)) {
			served = true
			continue
		}
		e.up.push(outMsg{class: class, k: k, rank: sendRank(n, e.stripeOf(k.seq)), idx: i, to: n, link: n.link, msg: m, at: now})
		served = true
	}
	e.ctr.WantsServed++
}

// wantBacklog is the queued upload above which repair requests are refused.
const wantBacklog = 100 * time.Millisecond

// Counters.RepairWhy indexes: why a chunk's repair started.
const (
	repairLate    = iota // nothing from the parent RepairDelay past its expected arrival
	repairGap            // its pieces stopped coming (PieceGap)
	repairSkipped        // the parent already sent a later chunk of the stripe
	repairOther          // no parent, a forged copy, pieces that did not fit
	repairHole           // a hole below a later piece from the parent
)

// Counters.MissWhy indexes: where a missed chunk's repair stood.
const (
	missOriginBusy   = iota // the origin's answer was on its way
	missOriginFailed        // the origin failed (or sent a bad copy)
	missPartial             // never asked of the origin; some pieces came
	missNone                // never asked of the origin; nothing came
)

func missWhy(now time.Time, pd *pending) int {
	switch {
	case pd.originBusy:
		return missOriginBusy
	case now.Before(pd.originAfter):
		return missOriginFailed
	case !pd.first.IsZero():
		return missPartial
	}
	return missNone
}

// originWhy says why a chunk was fetched from the origin.
type originWhy uint8

// Counters.OriginWhy indexes.
const (
	originStart  originWhy = iota // starting from the origin's live edge
	originFed                     // the stripe has no parent with room
	originLate                    // peers could not make the deadline (OriginLead)
	originNoPeer                  // no parent left to ask
)

// fetchOrigin asks the origin for a whole chunk, at most MaxOriginFetches at
// a time; the rest wait in order.
func (e *Engine) fetchOrigin(now time.Time, pd *pending, why originWhy) {
	if e.cfg.Origin == nil || pd.originBusy || now.Before(pd.originAfter) {
		return
	}
	pd.timeFetch = why == originLate || why == originNoPeer
	e.ctr.OriginWhy[why]++
	e.startFetch(pd)
}

// startFetch launches pd's origin request, or queues it behind
// MaxOriginFetches others.
func (e *Engine) startFetch(pd *pending) {
	pd.originBusy = true
	if e.originBusy >= e.cfg.MaxOriginFetches {
		e.originQ = append(e.originQ, pd.k)
		return
	}
	e.launchFetch(pd.k)
}

func (e *Engine) launchFetch(k key) {
	var g *chunk.Gap
	if pd := e.pend[k]; pd != nil {
		pd.fetchAt = e.cfg.Clock()
		g = e.originGap(pd)
	}
	e.originBusy++
	e.ctr.OriginFetches++
	o := e.cfg.Origin
	done := func(b []byte, err error) { e.originDone(k, g, b, err) }
	if ao, ok := o.(AsyncOrigin); ok {
		e.queue(func() {
			if g != nil {
				o.(AsyncRangeOrigin).FetchRangeAsync(k.epoch, k.seq, g.Off, g.End, done)
				return
			}
			ao.FetchAsync(k.epoch, k.seq, done)
		})
		return
	}
	timeout := e.play.ceil + e.cfg.StartTimeout
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		ctx, cancel := context.WithTimeout(e.ctx, timeout)
		defer cancel()
		if g != nil {
			done(o.(RangeOrigin).FetchRange(ctx, k.epoch, k.seq, g.Off, g.End))
			return
		}
		done(o.Fetch(ctx, k.epoch, k.seq))
	}()
}

// originGap is the byte range a rescue of pd asks the origin for when the
// mesh delivered part of the chunk and the origin answers ranges; nil: the
// whole chunk.
func (e *Engine) originGap(pd *pending) *chunk.Gap {
	if pd.bad || pd.asmDone || pd.wholeFetch {
		return nil
	}
	switch e.cfg.Origin.(type) {
	case AsyncOrigin:
		if _, ok := e.cfg.Origin.(AsyncRangeOrigin); !ok {
			return nil
		}
	default:
		if _, ok := e.cfg.Origin.(RangeOrigin); !ok {
			return nil
		}
	}
	g, ok := e.asm.Gap(pd.k.epoch, pd.k.seq)
	if !ok {
		return nil
	}
	return &g
}

// originRange adds the pieces of a range answer as if a peer had sent
// them. An answer that does not fit, or that leaves the chunk incomplete
// (its partial was dropped meanwhile), sends the chunk to a whole fetch.
func (e *Engine) originRange(now time.Time, pd *pending, g chunk.Gap, b []byte) {
	k := pd.k
	e.st.bytesOrigin += uint64(len(b))
	ps, err := g.Pieces(k.epoch, k.seq, b)
	var sealed []byte
	for _, p := range ps {
		s, fresh, aerr := e.asm.Add(p)
		if aerr != nil {
			err = aerr
			e.asm.Forget(k.epoch, k.seq)
			break
		}
		if fresh && !pd.bad {
			e.forward(now, k, chunk.AppendPiece(nil, p))
		}
		if s != nil {
			sealed = s
		}
	}
	if err != nil || sealed == nil {
		e.ctr.OriginErrors++
		e.log.Debug("peer: origin range", "epoch", k.epoch, "seq", k.seq, "err", err, "complete", sealed != nil)
		pd.wholeFetch = true
		e.startFetch(pd)
		return
	}
	pd.asmDone = true
	pd.addSrc(originPeer)
	e.ctr.RepairedOrigin++
	e.complete(now, k, sealed, pd, originPeer)
	if pd.bad && !pd.originBusy {
		// The mesh's part was forged. The chunk was due (that is why it
		// was rescued), and with no live-edge estimate (a peer whose
		// parent forged every chunk) repair would not ask again: fetch
		// it whole now.
		e.startFetch(pd)
	}
}

func (e *Engine) originDone(k key, g *chunk.Gap, sealed []byte, err error) {
	e.mu.Lock()
	defer e.unlockAndFlush()
	if e.closed {
		return
	}
	now := e.cfg.Clock()
	e.originBusy--
	for len(e.originQ) > 0 && e.originBusy < e.cfg.MaxOriginFetches {
		next := e.originQ[0]
		e.originQ = e.originQ[1:]
		if pd := e.pend[next]; pd != nil && pd.originBusy && !pd.lost {
			if _, ok := e.win[next]; !ok {
				e.launchFetch(next)
				continue
			}
		}
		if pd := e.pend[next]; pd != nil {
			pd.originBusy = false
		}
	}
	pd := e.pend[k]
	if pd != nil {
		pd.originBusy = false
		if err == nil && pd.timeFetch && !pd.fetchAt.IsZero() {
			e.originTime.add(now.Sub(pd.fetchAt))
		}
		pd.fetchAt = time.Time{}
	}
	if _, ok := e.win[k]; ok {
		return
	}
	if err == nil && len(sealed) > chunk.MaxChunkSize {
		err = errors.New("oversized chunk")
	}
	if err != nil {
		e.ctr.OriginErrors++
		if pd != nil {
			pd.originAfter = now.Add(e.cfg.PeerTimeout)
		}
		e.log.Debug("peer: origin fetch", "epoch", k.epoch, "seq", k.seq, "err", err)
		return
	}
	if pd == nil {
		if !e.accepts(k) {
			return
		}
		pd = e.pendOf(k)
	}
	if g != nil {
		e.originRange(now, pd, *g, sealed)
		return
	}
	e.st.bytesOrigin += uint64(len(sealed))
	h, verr := e.cfg.Verify(sealed)
	if verr == nil && (h.Epoch != k.epoch || h.Seq != k.seq) {
		verr = errs.Wrap("", chunk.ErrMalformed, ": origin answered epoch "+strconv.FormatUint(uint64(h.Epoch), 10)+" seq "+strconv.FormatUint(h.Seq, 10))
	}
	if verr != nil {
		// The origin is not a peer: nobody to report. Retry later.
		e.ctr.OriginErrors++
		pd.originAfter = now.Add(e.cfg.PeerTimeout)
		e.log.Warn("peer: origin sent a bad chunk", "epoch", k.epoch, "seq", k.seq, "err", verr)
		return
	}
	e.ctr.RepairedOrigin++
	// Verified: forward to our children whatever they did not get from us.
	if !pd.bad && (k.seq == 0 || len(e.stripes[e.stripeOf(k.seq)].children) > 0) {
		if ps, err := chunk.Split(sealed, chunk.MaxMessageSize); err == nil {
			missing, partial := e.asm.Missing(k.epoch, k.seq)
			for i, p := range ps {
				if partial && !slices.Contains(missing, uint16(i)) {
					continue
				}
				e.forward(now, k, chunk.AppendPiece(nil, p))
			}
		}
	}
	pd.src = []PeerID{originPeer}
	if e.wouldPlay(k) {
		e.complete(now, k, sealed, pd, originPeer) // Open verifies again; origin chunks are the exception
		return
	}
	e.sendHave(k, pd, originPeer)
	e.keep(now, &entry{k: k, h: h, sealed: sealed, at: now}, pd)
}

// ---- reports ----

// reportLocked queues a report unless the same kind about the same peer was
// sent within ReportCooldown.
func (e *Engine) reportLocked(now time.Time, r protocol.Report, about *nbr) {
	if about == nil {
		about = e.nbrs[r.Peer]
	}
	if about != nil {
		if t, ok := about.lastReport[r.Kind]; ok && now.Sub(t) < e.cfg.ReportCooldown {
			return
		}
		about.lastReport[r.Kind] = now
	}
	e.ctr.Reports++
	e.log.Info("peer: report", "kind", r.Kind, "peer", r.Peer, "stripe", r.Stripe)
	if f := e.cfg.Report; f != nil {
		e.queue(func() { f(r) })
	}
}

func (e *Engine) pendingReports(now time.Time) {
	keep := e.delayed[:0]
	for _, d := range e.delayed {
		if now.Before(d.at) {
			keep = append(keep, d)
			continue
		}
		if e.finishReport(&d.r, d.k) {
			e.reportLocked(now, d.r, nil)
		}
	}
	clear(e.delayed[len(keep):])
	e.delayed = keep
}

// checkSilent reports parents that sent nothing for SilentAfter, or that
// went quiet and answer no ping (liveness.go).
func (e *Engine) checkSilent(now time.Time) {
	if !e.started || e.eos != 0 {
		return
	}
	for s := range e.stripes {
		st := &e.stripes[s]
		if st.parent == nil {
			continue
		}
		last := st.lastPiece
		if st.since.After(last) {
			last = st.since
		}
		silent := now.Sub(last) >= e.cfg.SilentAfter
		if !silent {
			rtt, known := st.parent.medianRTT()
			switch st.probe.step(now, last, st.parent.answered, probeAfter(&st.credits, e.cfg.SilentAfter), probeWait(rtt, known)) {
			case probePing:
				_ = st.parent.link.Send(appendPing(nil, msgPing, uint64(now.UnixNano())))
			case probeDead:
				silent = true
			}
		}
		if silent {
			e.reportLocked(now, protocol.Report{Kind: protocol.ReportSilent, Peer: st.parent.id, Stripe: s}, st.parent)
		}
	}
}

// pings probes every neighbour's RTT once per PingInterval.
func (e *Engine) pings(now time.Time) {
	if now.Before(e.pingAt) {
		return
	}
	e.pingAt = now.Add(e.cfg.PingInterval)
	msg := appendPing(nil, msgPing, uint64(now.UnixNano()))
	for _, n := range e.sortedNbrs() {
		_ = n.link.Send(msg)
	}
	// Relay notices can be lost on an unreliable channel: repeat them.
	for s := range e.stripes {
		e.tellRelay(s)
	}
}

// sortedNbrs lists neighbours by id, so that what the engine sends does not
// depend on map order (memnet runs are reproducible).
func (e *Engine) sortedNbrs() []*nbr {
	ns := make([]*nbr, 0, len(e.nbrs))
	for _, n := range e.nbrs {
		ns = append(ns, n)
	}
	slices.SortFunc(ns, func(a, b *nbr) int { return cmpID(a.id, b.id) })
	return ns
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// originLead is how long before a chunk's deadline the origin is asked.
func (e *Engine) originLead() time.Duration { return originLead(&e.originTime, e.cfg.OriginLead) }
