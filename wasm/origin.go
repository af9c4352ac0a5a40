//go:build js && wasm

package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/internal/errs"
	"github.com/banyan-live/banyan/internal/jsonwire"
	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/wasm/internal/baseurl"
)

// liveState is the origin's /chunks/{stream}/live answer (seeder.Live).
type liveState struct {
	Epoch       uint32 `json:"epoch"`
	Seq         uint64 `json:"seq"`
	KeyframeSeq uint64 `json:"keyframe_seq"`
	FirstSeq    uint64 `json:"first_seq"`
	Codecs      string `json:"codecs"`
	Ended       bool   `json:"ended"`
}

// readJSON reads the fields as encoding/json would.
func (l *liveState) readJSON(r *jsonwire.Reader) {
	r.Object(func(key []byte) {
		switch string(key) {
		case "epoch":
			if v, ok := r.Uint(32); ok {
				l.Epoch = uint32(v)
			}
		case "seq":
			if v, ok := r.Uint(64); ok {
				l.Seq = v
			}
		case "keyframe_seq":
			if v, ok := r.Uint(64); ok {
				l.KeyframeSeq = v
			}
		case "first_seq":
			if v, ok := r.Uint(64); ok {
				l.FirstSeq = v
			}
		case "codecs":
			r.String(&l.Codecs)
		case "ended":
			if v, ok := r.Bool(); ok {
				l.Ended = v
			}
		default:
			r.Skip()
		}
	})
}

// errNotPublished: the origin has never seen a publish of the stream.
var errNotPublished = errors.New("origin: stream not published")

// originClient reads sealed chunks from the seeder's HTTP origin with the
// browser's fetch. Its Fetch and Live methods have the shape of the peer
// engine's Origin interface (peer.Origin), so the engine can use it for
// repair once it is plugged in. It tries its base URLs in order and moves
// to the next after a network error (the tracker's origin URL may not be
// reachable from this browser; the page's own origin then is).
type originClient struct {
	stream string
	bases  atomic.Pointer[[]string]
	cur    atomic.Int32
	// bytes counts sealed bytes received, for the stats' origin share.
	bytes atomic.Uint64
	// phases, when set, gets the first answers' times (join timeline).
	phases *phases
}

func newOriginClient(stream string, bases ...string) *originClient {
	o := &originClient{stream: stream}
	o.setBases(bases)
	return o
}

// setBases replaces the base URLs (the tracker may name a new origin),
// keeping the usable ones in order, without repeats.
func (o *originClient) setBases(bases []string) {
	var ok []string
	for _, b := range bases {
		b = strings.TrimRight(b, "/")
		if !baseurl.Usable(b) || slices.Contains(ok, b) {
			continue
		}
		ok = append(ok, b)
	}
	o.bases.Store(&ok)
	o.cur.Store(0)
}

func (o *originClient) url(path string) string {
	bases := *o.bases.Load()
	if len(bases) == 0 {
		return path // relative to the page
	}
	return bases[int(o.cur.Load())%len(bases)] + path
}

// failed moves to the next base after a network-level error.
func (o *originClient) failed(err error) {
	if statusOf(err) == 0 && !errors.Is(err, context.Canceled) && len(*o.bases.Load()) > 1 {
		o.cur.Add(1)
	}
}

// Live returns the newest state of the stream at the origin.
func (o *originClient) Live(ctx context.Context) (liveState, error) {
	var l liveState
	err := FetchJSON(ctx, o.url("/chunks/"+o.stream+"/live"), &l)
	if statusOf(err) == 404 {
		return l, errNotPublished
	}
	if err != nil {
		o.failed(err)
		return l, errs.Wrap("origin: live: ", err, "")
	}
	o.phases.mark("liveAnswer")
	return l, nil
}

// Fetch returns sealed chunk (epoch, seq); the origin holds the request up
// to a few seconds for a chunk that is about to exist.
func (o *originClient) Fetch(ctx context.Context, epoch uint32, seq uint64) ([]byte, error) {
	b, err := FetchBytes(ctx, o.url("/chunks/"+o.stream+"/"+strconv.FormatUint(uint64(epoch), 10)+"/"+strconv.FormatUint(seq, 10)))
	if err != nil {
		o.failed(err)
		return nil, errs.Wrap("origin: chunk "+strconv.FormatUint(uint64(epoch), 10)+"/"+strconv.FormatUint(seq, 10)+": ", err, "")
	}
	o.bytes.Add(uint64(len(b)))
	o.phases.mark("originChunk")
	return b, nil
}

// FetchRange returns bytes [off, end) of sealed chunk (epoch, seq), end -1
// meaning to its end, with a Range request (peer.RangeOrigin).
func (o *originClient) FetchRange(ctx context.Context, epoch uint32, seq uint64, off, end int64) ([]byte, error) {
	rng := "bytes=" + strconv.FormatInt(off, 10) + "-"
	if end >= 0 {
		rng += strconv.FormatInt(end-1, 10)
	}
	status := 0
	b, err := fetchBytes(ctx, o.url("/chunks/"+o.stream+"/"+strconv.FormatUint(uint64(epoch), 10)+"/"+strconv.FormatUint(seq, 10)),
		fetchOptions{rng: rng, status: &status})
	if err == nil && status == 200 { // a server or cache that ignored the range
		b, err = chunk.SliceRange(b, off, end)
	}
	if err == nil && end >= 0 && int64(len(b)) != end-off {
		err = errors.New("answer of " + strconv.Itoa(len(b)) + " bytes for a " + strconv.FormatInt(end-off, 10) + "-byte range")
	}
	if err != nil {
		o.failed(err)
		return nil, errs.Wrap("origin: chunk "+strconv.FormatUint(uint64(epoch), 10)+"/"+strconv.FormatUint(seq, 10)+" range "+rng+": ", err, "")
	}
	o.bytes.Add(uint64(len(b)))
	return b, nil
}

// sink receives the opened stream in playback order. It has the shape of
// the peer engine's Player interface (peer.Player): the origin loop below
// stands in for the engine until the mesh is plugged in.
type sink interface {
	Init(epoch uint32, init []byte)
	Chunk(h chunk.Header, payload []byte)
}

// keySource gives the current verification key and content keys; both can
// change while playing (a seeder restart, key rotation).
type keySource interface {
	keys() (ed25519.PublicKey, *chunk.Keyring)
}

// sourceState is what the origin loop knows about the broadcast.
type sourceState int32

const (
	sourceUnknown  sourceState = iota
	sourceWaiting              // nothing published yet, or no keyframe yet
	sourceFlowing              // chunks arriving
	sourceEnded                // the publish ended
	sourceFailing              // the origin does not answer
	sourceKeyError             // chunks do not open with the keys we have
	sourceLate                 // live, data late or the tab short of CPU (stall.go)
)

// originLoop plays a stream from the origin alone: it starts at the newest
// keyframe, follows the live edge with blocking chunk requests (two in
// flight at the edge, up to four while catching up), and jumps ahead when
// it falls far behind.
type originLoop struct {
	o      *originClient
	keys   keySource
	out    sink
	log    peer.Logger
	state  atomic.Int32 // sourceState
	lastEr atomic.Pointer[string]

	// Tuning; zero values take defaults in run.
	pollEvery  time.Duration // live state poll while following (5 s)
	behindMax  uint64        // chunks behind the live edge before a jump (16)
	retryDelay time.Duration // first delay after an error (250 ms)
}

func (l *originLoop) setState(s sourceState, err error) {
	l.state.Store(int32(s))
	if err != nil {
		msg := err.Error()
		l.lastEr.Store(&msg)
	}
}

// State returns the source state and the last error message.
func (l *originLoop) State() (sourceState, string) {
	msg := ""
	if p := l.lastEr.Load(); p != nil {
		msg = *p
	}
	return sourceState(l.state.Load()), msg
}

var (
	errNewEpoch = errors.New("origin: a new epoch started")
	errBehind   = errors.New("origin: fell behind the live edge")
	errEnded    = errors.New("origin: the broadcast ended")
)

// run plays until ctx ends.
func (l *originLoop) run(ctx context.Context) {
	if l.pollEvery <= 0 {
		l.pollEvery = 5 * time.Second
	}
	if l.behindMax == 0 {
		l.behindMax = 16
	}
	if l.retryDelay <= 0 {
		l.retryDelay = 250 * time.Millisecond
	}
	var (
		initEpoch uint32
		haveInit  bool
		failures  int
	)
	for ctx.Err() == nil {
		live, err := l.o.Live(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errNotPublished):
			l.setState(sourceWaiting, nil)
			sleep(ctx, time.Second)
			continue
		case err != nil:
			failures++
			l.setState(sourceFailing, err)
			sleep(ctx, backoff(l.retryDelay, failures))
			continue
		case live.Ended:
			// Poll briskly: a broadcaster who restarts (a new epoch) should
			// find viewers still playing out their buffer.
			l.setState(sourceEnded, nil)
			sleep(ctx, 500*time.Millisecond)
			continue
		case live.KeyframeSeq == 0:
			l.setState(sourceWaiting, nil) // published, no join point yet
			sleep(ctx, l.retryDelay)
			continue
		}
		failures = 0
		if !haveInit || initEpoch != live.Epoch {
			init, err := l.open(ctx, live.Epoch, 0)
			if err != nil {
				failures++
				sleep(ctx, backoff(l.retryDelay, failures))
				continue
			}
			l.out.Init(live.Epoch, init)
			haveInit, initEpoch = true, live.Epoch
		}
		l.setState(sourceFlowing, nil)
		err = l.follow(ctx, live)
		switch {
		case errors.Is(err, errEnded):
			l.setState(sourceEnded, nil)
		case errors.Is(err, errNewEpoch), errors.Is(err, errBehind):
		case err != nil && ctx.Err() == nil:
			failures++
			l.setState(sourceFailing, err)
			sleep(ctx, backoff(l.retryDelay, failures))
		}
	}
}

// open fetches and opens one chunk.
func (l *originLoop) open(ctx context.Context, epoch uint32, seq uint64) ([]byte, error) {
	sealed, err := l.o.Fetch(ctx, epoch, seq)
	if err != nil {
		return nil, err
	}
	h, payload, err := l.openSealed(ctx, sealed)
	if err != nil {
		return nil, err
	}
	if h.Epoch != epoch || h.Seq != seq {
		return nil, errors.New("origin: asked for chunk " + strconv.FormatUint(uint64(epoch), 10) + "/" + strconv.FormatUint(seq, 10) + ", got " + strconv.FormatUint(uint64(h.Epoch), 10) + "/" + strconv.FormatUint(h.Seq, 10))
	}
	return payload, nil
}

// openSealed verifies and decrypts. A chunk under a key we do not hold yet
// is retried briefly: the tracker announces a rotated key just before the
// seeder starts using it, and the websocket may be slower than HTTP.
func (l *originLoop) openSealed(ctx context.Context, sealed []byte) (chunk.Header, []byte, error) {
	for attempt := 0; ; attempt++ {
		pub, ring := l.keys.keys()
		h, payload, err := chunk.Open(pub, l.o.stream, ring, sealed)
		if err == nil {
			return h, payload, nil
		}
		if !errors.Is(err, chunk.ErrUnknownKey) || attempt >= 8 || ctx.Err() != nil {
			if errors.Is(err, chunk.ErrUnknownKey) || errors.Is(err, chunk.ErrBadSignature) || errors.Is(err, chunk.ErrDecrypt) {
				l.setState(sourceKeyError, err)
			}
			return chunk.Header{}, nil, err
		}
		sleep(ctx, 250*time.Millisecond)
	}
}

type fetched struct {
	seq    uint64
	sealed []byte
	err    error
}

// follow delivers the chunks of live.Epoch from live.KeyframeSeq on, in
// order, until the epoch changes, the broadcast ends, or it falls behind.
func (l *originLoop) follow(ctx context.Context, live liveState) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	epoch := live.Epoch
	next := live.KeyframeSeq // next seq to deliver
	known := live.Seq        // newest seq known to exist
	results := make(chan fetched, 8)
	inflight := map[uint64]bool{}
	done := map[uint64]fetched{}
	lastPoll := time.Now()
	errs := 0

	issue := func(seq uint64) {
		inflight[seq] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := l.o.Fetch(ctx, epoch, seq)
			results <- fetched{seq: seq, sealed: b, err: err}
		}()
	}
	for {
		// Up to four requests while behind, two at the edge: the origin
		// holds a request for the next one or two chunks until they exist.
		window := uint64(2)
		if known >= next+2 {
			window = 4
		}
		for s := next; s < next+window && s <= known+2; s++ {
			if !inflight[s] {
				if _, ok := done[s]; !ok {
					issue(s)
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case r := <-results:
			delete(inflight, r.seq)
			if r.seq >= next {
				done[r.seq] = r
			}
		}
		for {
			r, ok := done[next]
			if !ok {
				break
			}
			delete(done, next)
			if r.err != nil {
				if err := l.recover(ctx, r.err, epoch, &next, &known, &errs); err != nil {
					return err
				}
				break
			}
			errs = 0
			h, payload, err := l.openSealed(ctx, r.sealed)
			if err != nil || h.Epoch != epoch || h.Seq != next {
				// A chunk that does not verify is skipped; the player
				// resumes at the next keyframe.
				l.log.Warn("origin: bad chunk", "epoch", epoch, "seq", next, "err", err)
				next++
				continue
			}
			l.setState(sourceFlowing, nil)
			l.out.Chunk(h, payload)
			known = max(known, next)
			next++
			if h.Flags&chunk.FlagEndOfStream != 0 {
				return errEnded
			}
		}
		if time.Since(lastPoll) >= l.pollEvery {
			lastPoll = time.Now()
			if nl, err := l.o.Live(ctx); err == nil {
				if nl.Epoch != epoch {
					return errNewEpoch
				}
				known = max(known, nl.Seq)
				if nl.Seq > next+l.behindMax && nl.KeyframeSeq > next {
					return errBehind
				}
			}
		}
	}
}

// recover decides what a failed fetch of chunk next means.
func (l *originLoop) recover(ctx context.Context, ferr error, epoch uint32, next, known *uint64, errs *int) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if statusOf(ferr) != 404 {
		*errs++
		if *errs >= 3 {
			l.setState(sourceFailing, ferr)
		}
		sleep(ctx, backoff(l.retryDelay, *errs))
		return nil // retried by the next round
	}
	// Not there: not yet (the publisher paused), gone (we are behind the
	// window), or never (a new epoch or the end).
	live, err := l.o.Live(ctx)
	if err != nil {
		sleep(ctx, l.retryDelay)
		return nil
	}
	switch {
	case live.Epoch != epoch:
		return errNewEpoch
	case live.Ended && *next > live.Seq:
		return errEnded
	case *next < live.FirstSeq:
		return errBehind
	}
	*known = max(*known, live.Seq)
	sleep(ctx, l.retryDelay)
	return nil
}

// backoff grows exponentially from base to 8 s, with jitter.
func backoff(base time.Duration, failures int) time.Duration {
	d := base
	for i := 1; i < failures && d < 8*time.Second; i++ {
		d *= 2
	}
	d = min(d, 8*time.Second)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
