package seeder

import (
	"sync"
	"time"
)

// Entry is one chunk of a stream as the origin keeps it.
type Entry struct {
	Epoch     uint32
	Seq       uint64 // 0 is the epoch's init segment
	Keyframe  bool   // starts a segment (LL-HLS) and is a join point
	MediaTime time.Duration
	Duration  time.Duration
	// Sealed is the signed, encrypted chunk the mesh carries.
	Sealed []byte
	// Plain is the CMAF fragment (or init segment) in the clear, kept only
	// for public streams, for LL-HLS.
	Plain []byte
	Added time.Time
	// Segment numbers LL-HLS segments (keyframe to keyframe) across epochs:
	// it is the media sequence number of the segment this chunk is a part
	// of. Set by Window.Add; 0 for chunks before the first keyframe.
	Segment uint64
}

// EpochInfo describes one publishing epoch.
type EpochInfo struct {
	Epoch  uint32
	Codecs string // for MSE, e.g. `avc1.64001f,mp4a.40.2`
	Init   *Entry
	Ended  bool // the publish of this epoch stopped
	// Discontinuity counts the epochs before this one in the window's life
	// (EXT-X-DISCONTINUITY-SEQUENCE). Set by StartEpoch.
	Discontinuity uint64
}

// Window is the origin's memory of one stream: the init segment and the
// recent chunks of the current and previous epochs, bounded by age. It is
// safe for concurrent use; readers can block until a chunk exists.
type Window struct {
	keep time.Duration

	mu      sync.Mutex
	epochs  []*epochWindow // oldest first; the last is current
	changed chan struct{}  // closed and replaced on every change
	closed  bool
	started uint64 // epochs started so far
	segment uint64 // last segment number given out
}

type epochWindow struct {
	info    EpochInfo
	first   uint64 // seq of chunks[0]
	chunks  []*Entry
	lastKey uint64 // newest keyframe seq, 0 if none yet
}

// NewWindow keeps chunks for about keep (30 s when zero).
func NewWindow(keep time.Duration) *Window {
	if keep <= 0 {
		keep = 30 * time.Second
	}
	return &Window{keep: keep, changed: make(chan struct{})}
}

// maxEpochs bounds how many epochs a window remembers; older ones drop even
// if young (a flapping publisher must not grow memory).
const maxEpochs = 4

// StartEpoch begins a new epoch with its init segment; the previous epoch is
// marked ended.
func (w *Window) StartEpoch(info EpochInfo) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.epochs); n > 0 {
		w.epochs[n-1].info.Ended = true
	}
	info.Discontinuity = w.started
	w.started++
	w.epochs = append(w.epochs, &epochWindow{info: info, first: 1})
	if len(w.epochs) > maxEpochs {
		w.epochs = w.epochs[len(w.epochs)-maxEpochs:]
	}
	w.notifyLocked()
}

// EndEpoch marks the current epoch ended (the publisher went away).
func (w *Window) EndEpoch() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.epochs); n > 0 {
		w.epochs[n-1].info.Ended = true
	}
	w.notifyLocked()
}

// Add appends a media chunk to the current epoch. Chunks must come in
// sequence order; an entry for another epoch or out of order is dropped and
// reported false.
func (w *Window) Add(e *Entry) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(w.epochs)
	if n == 0 || w.epochs[n-1].info.Epoch != e.Epoch {
		return false
	}
	ew := w.epochs[n-1]
	if e.Seq != ew.first+uint64(len(ew.chunks)) {
		return false
	}
	if e.Keyframe {
		ew.lastKey = e.Seq
		w.segment++
	}
	if ew.lastKey != 0 {
		e.Segment = w.segment
	}
	ew.chunks = append(ew.chunks, e)
	w.evictLocked(e.Added)
	w.notifyLocked()
	return true
}

// evictLocked drops chunks older than keep, and empty old epochs.
func (w *Window) evictLocked(now time.Time) {
	cut := now.Add(-w.keep)
	for _, ew := range w.epochs {
		i := 0
		for i < len(ew.chunks) && ew.chunks[i].Added.Before(cut) {
			ew.chunks[i] = nil
			i++
		}
		if i > 0 {
			ew.chunks = ew.chunks[i:]
			ew.first += uint64(i)
		}
	}
	for len(w.epochs) > 1 && len(w.epochs[0].chunks) == 0 {
		w.epochs = w.epochs[1:]
	}
}

func (w *Window) notifyLocked() {
	if w.closed {
		return
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

// Close wakes every waiter; later waits return at once.
func (w *Window) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		close(w.changed)
	}
}

func (w *Window) epochLocked(epoch uint32) *epochWindow {
	for _, ew := range w.epochs {
		if ew.info.Epoch == epoch {
			return ew
		}
	}
	return nil
}

// lookup is the answer to a chunk request.
type lookup int

const (
	found   lookup = iota
	soon           // the chunk does not exist yet but will shortly
	missing        // evicted, unknown epoch, or too far ahead
)

// soonAhead is how far past the newest chunk a request may block: a peer
// asking for the next one or two chunks waits, one asking for a chunk
// seconds away gets a 404.
const soonAhead = 2

func (w *Window) getLocked(epoch uint32, seq uint64) (*Entry, lookup) {
	ew := w.epochLocked(epoch)
	if ew == nil {
		return nil, missing
	}
	if seq == 0 {
		return ew.info.Init, found
	}
	if seq < ew.first {
		return nil, missing
	}
	if i := seq - ew.first; i < uint64(len(ew.chunks)) {
		return ew.chunks[i], found
	}
	if !ew.info.Ended && !w.closed && seq < ew.first+uint64(len(ew.chunks))+soonAhead {
		return nil, soon
	}
	return nil, missing
}

// Get returns chunk (epoch, seq), waiting up to wait for one that is about
// to exist. ok is false for a chunk that does not exist (or not in time).
func (w *Window) Get(epoch uint32, seq uint64, wait time.Duration) (*Entry, bool) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		e, st := w.getLocked(epoch, seq)
		ch := w.changed
		w.mu.Unlock()
		switch st {
		case found:
			return e, e != nil
		case missing:
			return nil, false
		}
		select {
		case <-ch:
		case <-deadline.C:
			return nil, false
		}
	}
}

// Live is the newest state of the stream.
type Live struct {
	Epoch       uint32 `json:"epoch"`
	Seq         uint64 `json:"seq"`          // newest chunk, 0 if none yet
	KeyframeSeq uint64 `json:"keyframe_seq"` // newest join point
	FirstSeq    uint64 `json:"first_seq"`    // oldest chunk still held
	Codecs      string `json:"codecs"`
	Ended       bool   `json:"ended"`
}

// Live returns the newest epoch's state; ok is false before any publish.
func (w *Window) Live() (Live, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(w.epochs)
	if n == 0 {
		return Live{}, false
	}
	ew := w.epochs[n-1]
	l := Live{Epoch: ew.info.Epoch, KeyframeSeq: ew.lastKey, Codecs: ew.info.Codecs, Ended: ew.info.Ended, FirstSeq: ew.first}
	if len(ew.chunks) > 0 {
		l.Seq = ew.first + uint64(len(ew.chunks)) - 1
	}
	return l, true
}

// Current returns the current epoch's info and a snapshot of its chunks,
// oldest first. The slice is a copy; the entries are shared and immutable.
func (w *Window) Current() (EpochInfo, []*Entry, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(w.epochs)
	if n == 0 {
		return EpochInfo{}, nil, false
	}
	ew := w.epochs[n-1]
	return ew.info, append([]*Entry(nil), ew.chunks...), true
}

// Changed returns a channel closed at the next change, for blocking
// playlist reloads.
func (w *Window) Changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed
}
