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
}

// EpochInfo describes one publishing epoch.
type EpochInfo struct {
	Epoch  uint32
	Codecs string // RFC 6381, for MSE and HLS CODECS, e.g. `avc1.64001f,mp4a.40.2`
	// Width and Height of the video (0 without video).
	Width, Height int
	Init          *Entry
	Ended         bool // the publish of this epoch stopped (or a newer epoch began)
	// EndedAt is when Ended was set, on the window's clock.
	EndedAt time.Time
	// Discontinuity counts the epochs before this one in the window's life
	// (EXT-X-DISCONTINUITY-SEQUENCE). Set by StartEpoch.
	Discontinuity uint64
}

// Window is the origin's memory of one stream: the init segment and the
// recent chunks of the current and previous epochs, and the LL-HLS
// segmentation of them (hls.go). It keeps about keep of media, never less
// than three LL-HLS target durations, across epochs, so that a player
// still holds the previous epoch's segments after a reconnect. It is safe
// for concurrent use; readers can block until a chunk exists.
type Window struct {
	keep time.Duration

	mu      sync.Mutex
	epochs  []*epochWindow // oldest first; the last is current
	changed chan struct{}  // closed and replaced on every change
	closed  bool
	started uint64 // epochs started so far
	segment uint64 // last LL-HLS media sequence number given out
	listed  uint64 // epochs that got an LL-HLS segment so far
	// timelineEnd is where the newest listed LL-HLS segment ends on the
	// stream's timeline (hlsEpoch.shift).
	timelineEnd time.Duration
	now         func() time.Time
}

type epochWindow struct {
	info    EpochInfo
	first   uint64 // seq of chunks[0]
	chunks  []*Entry
	lastKey uint64 // newest keyframe seq, 0 if none yet
	hls     hlsEpoch
}

// NewWindow keeps chunks for about keep (30 s when zero).
func NewWindow(keep time.Duration) *Window {
	if keep <= 0 {
		keep = 30 * time.Second
	}
	return &Window{keep: keep, changed: make(chan struct{}), now: time.Now}
}

// SetClock replaces the clock (time.Now) used for EndedAt and stale epochs.
func (w *Window) SetClock(now func() time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.now = now
}

// maxEpochs bounds how many epochs a window remembers; older ones drop even
// if young (a flapping publisher must not grow memory).
const maxEpochs = 4

// StartEpoch begins a new epoch with its init segment; the previous epoch is
// marked ended. Previous epochs whose newest chunk is older than keep are
// forgotten: a publish long after the last one does not list stale media.
func (w *Window) StartEpoch(info EpochInfo) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	w.endLocked(now)
	kept := w.epochs[:0]
	for _, ew := range w.epochs {
		if n := len(ew.chunks); n > 0 && now.Sub(ew.chunks[n-1].Added) <= w.keep {
			kept = append(kept, ew)
		}
	}
	clear(w.epochs[len(kept):])
	w.epochs = kept
	info.Discontinuity = w.started
	info.Ended, info.EndedAt = false, time.Time{}
	w.started++
	ew := &epochWindow{info: info, first: 1}
	ew.hls.inherit(w.epochs)
	w.epochs = append(w.epochs, ew)
	if len(w.epochs) > maxEpochs {
		w.epochs = w.epochs[len(w.epochs)-maxEpochs:]
	}
	w.notifyLocked()
}

// EndEpoch marks the current epoch ended (the publisher went away).
func (w *Window) EndEpoch() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.endLocked(w.now())
	w.notifyLocked()
}

func (w *Window) endLocked(now time.Time) {
	n := len(w.epochs)
	if n == 0 || w.epochs[n-1].info.Ended {
		return
	}
	ew := w.epochs[n-1]
	ew.info.Ended, ew.info.EndedAt = true, now
	w.segmentEndLocked(ew)
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
	}
	ew.chunks = append(ew.chunks, e)
	w.segmentLocked(ew, e)
	w.evictLocked()
	w.notifyLocked()
	return true
}

// evictLocked drops the oldest LL-HLS segments (and their chunks) while
// what remains still covers keep and three target durations, and then
// empty old epochs. Chunks that belong to no segment (before an epoch's
// first keyframe) go with the segment after them.
func (w *Window) evictLocked() {
	keep := w.keep
	if td := w.targetLocked(); 3*td > keep {
		keep = 3 * td
	}
	var total time.Duration
	for _, ew := range w.epochs {
		for _, s := range ew.hls.segs {
			total += s.dur
		}
	}
	for i, ew := range w.epochs {
		if i < len(w.epochs)-1 && len(ew.hls.segs) == 0 {
			// An older epoch with nothing listed: nothing to keep it for.
			ew.drop(len(ew.chunks))
			continue
		}
		for len(ew.hls.segs) > 0 && total-ew.hls.segs[0].dur >= keep {
			s := ew.hls.segs[0]
			total -= s.dur
			ew.hls.segs = ew.hls.segs[1:]
			ew.drop(int(s.first + uint64(s.n) - ew.first))
		}
		if len(ew.hls.segs) > 0 {
			break
		}
		if i < len(w.epochs)-1 {
			ew.drop(len(ew.chunks))
		}
	}
	for len(w.epochs) > 1 && len(w.epochs[0].chunks) == 0 {
		w.epochs[0] = nil
		w.epochs = w.epochs[1:]
	}
}

// drop forgets the oldest n chunks.
func (ew *epochWindow) drop(n int) {
	n = min(n, len(ew.chunks))
	clear(ew.chunks[:n])
	ew.chunks = ew.chunks[n:]
	ew.first += uint64(n)
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
