package rtc

import "time"

// answerClock sizes how long a dialer waits for the answer to its offer.
// The answer is one signaling round trip plus the remote's
// createAnswer, which a loaded browser takes a second or more for: a
// fixed timeout tight enough to drop a vanished parent quickly also drops
// every slow live one (each drop re-parents a child and leaves it on the
// origin). So the wait follows what answers took: twice the slowest of
// the last few, never under the configured floor, doubled after each
// offer in a row that went unanswered (this machine or the swarm may be
// slower than it has seen), and never past the connect timeout.
type answerClock struct {
	floor, ceiling time.Duration
	recent         [8]time.Duration // the last answer delays, a ring
	n              int              // answers recorded (not capped)
	misses         int              // unanswered offers since the last answer
}

// wait is the answer timeout for the next offer.
func (a *answerClock) wait() time.Duration {
	w := a.floor
	for _, d := range a.recent[:min(a.n, len(a.recent))] {
		w = max(w, 2*d)
	}
	w <<= min(a.misses, 3)
	return min(w, a.ceiling)
}

// answered records how long an answer took.
func (a *answerClock) answered(d time.Duration) {
	a.recent[a.n%len(a.recent)] = d
	a.n++
	a.misses = 0
}

// missed records an offer whose answer never came in time.
func (a *answerClock) missed() { a.misses++ }
