package rtc

import "time"

// AnswerClock sizes how long a dialer waits for the answer to its offer.
// The answer is one signaling round trip plus the remote's
// createAnswer, which a loaded browser takes a second or more for: a
// fixed timeout tight enough to drop a vanished parent quickly also drops
// every slow live one (each drop re-parents a child and leaves it on the
// origin). So the wait follows what answers took: twice the slowest of
// the last few, never under the configured floor, doubled after an
// offer that went unanswered (this machine or the swarm may be
// slower than it has seen: once, since a mass departure misses too, where
// a long wait only delays the re-parenting), and never past the connect
// timeout. The Transport keeps one; the swarm model keeps one per
// simulated peer.
type AnswerClock struct {
	floor, ceiling time.Duration
	recent         [8]time.Duration // the last answer delays, a ring
	n              int              // answers recorded (not capped)
	misses         int              // unanswered offers since the last answer
}

// NewAnswerClock returns a clock that waits at least floor and at most
// ceiling.
func NewAnswerClock(floor, ceiling time.Duration) AnswerClock {
	return AnswerClock{floor: floor, ceiling: ceiling}
}

// Wait is the answer timeout for the next offer.
func (a *AnswerClock) Wait() time.Duration {
	w := a.floor
	for _, d := range a.recent[:min(a.n, len(a.recent))] {
		w = max(w, 2*d)
	}
	w <<= min(a.misses, 1)
	return min(w, a.ceiling)
}

// Answered records how long an answer took.
func (a *AnswerClock) Answered(d time.Duration) {
	a.recent[a.n%len(a.recent)] = d
	a.n++
	a.misses = 0
}

// Missed records an offer whose answer never came in time.
func (a *AnswerClock) Missed() { a.misses++ }
