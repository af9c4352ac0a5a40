// Package seeder is Banyan's ingest and origin: it takes a broadcast in
// (RTMP, WHIP), packages it into CMAF chunks, seals every chunk once (signed
// and encrypted end to end), feeds the chunks to the root of the stream's
// overlay, and serves them and LL-HLS over HTTP as the origin fallback.
package seeder

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/cmaf"
)

// Config configures a Seeder. SigningKey is required.
type Config struct {
	// SigningKey signs every chunk; viewers verify with its public half.
	SigningKey ed25519.PrivateKey
	// ChunkDuration is the target chunk length (cmaf.DefaultChunkDuration
	// when zero).
	ChunkDuration time.Duration
	// Window is how long the origin keeps chunks (30 s when zero).
	Window time.Duration
	// KeyRotation is how often a stream's content key changes (10 min when
	// zero; negative disables rotation).
	KeyRotation time.Duration
	// KeyGrace is how long a new key is handed out before chunks use it,
	// so viewers have it in time (5 s when zero).
	KeyGrace time.Duration
	// MaxLive bounds how many streams may be live on this seeder at once
	// (DefaultMaxLive when zero; negative: no limit). A publish of one more
	// stream is refused with ErrTooManyStreams; taking over a stream that is
	// already live does not count. Every stream needs a key, so this guards
	// the packager and sealer CPU against a leaked set of keys, not against
	// strangers.
	MaxLive int
	// KeyCheck, when set, re-checks a publish's key as it starts: it gets
	// the stream and the key generation the ingest checked the key at and
	// refuses with an error when the key was revoked or rotated since.
	// StartPublish calls it under the seeder's lock, which Kick takes too:
	// a revoke commits (bumping the generation) before it kicks, so a
	// publish is either refused here or live when Kick looks for it. A
	// WHIP offer trickled for 30 s or an RTMP publish waiting out a
	// take-over cannot start on a key revoked meanwhile.
	KeyCheck func(stream string, keyGen uint64) error
	// EpochFloor, when set, returns the last epoch any seeder of a cluster
	// used for a stream (kept in etcd): a publish starts above it, so
	// epochs, and the chunk URLs they name, never repeat across seeders,
	// even behind one CDN hostname and within one second. Called under
	// the seeder's lock, like KeyCheck; 0 when unknown.
	EpochFloor func(stream string) uint32
	// ReserveEpochs, when set, reserves n epoch numbers of a stream, the
	// first at least atLeast, durably (store.ReserveEpochs): a publish
	// takes a block of EpochBlock when it starts and another when it
	// runs past it, so epoch numbers never repeat or go back across
	// restarts, even with the clock stepped back (issue 18 #4). Without
	// it epochs start at the clock's Unix seconds.
	ReserveEpochs func(stream string, atLeast, n uint32) (uint32, error)
	// Events receives publish lifecycle events (the tracker listens). It is
	// called synchronously from the publish; it must not block.
	Events func(Event)
	// Root receives every sealed chunk for distribution into the mesh
	// (the stream's root peer). Called synchronously; must not block.
	Root   func(stream string, e *Entry)
	Logger *slog.Logger
	// Registerer takes the seeder's metrics (none when nil).
	Registerer prometheus.Registerer
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// EventKind tells what happened to a stream.
type EventKind int

const (
	PublishStarted EventKind = iota + 1
	EpochStarted
	PublishEnded
	KeysChanged
)

func (k EventKind) String() string {
	return [...]string{"", "publish-started", "epoch-started", "publish-ended", "keys-changed"}[k]
}

// Event is a change in a stream's publishing state.
type Event struct {
	Kind     EventKind
	Stream   string
	Protocol string // "rtmp", "whip"
	Epoch    uint32
	Codecs   string
	// Keys are the stream's current master keys (every event carries them).
	Keys []chunk.MasterKey
	// Err is why a publish ended, nil for a clean end.
	Err error
	// KeyGen is the key generation the publish was granted at
	// (PublishStarted only): a cluster member watches the stream's record
	// and ends the publish when the generation moves on.
	KeyGen uint64
}

// Seeder is a running seeder. Create it with New; Close ends every publish.
type Seeder struct {
	cfg     Config
	log     *slog.Logger
	origin  *Origin
	metrics *metrics

	mu      sync.Mutex
	streams map[string]*stream
	closed  bool
}

// stream is what the seeder keeps of one stream across publishes.
type stream struct {
	name   string
	window *Window
	keys   *chunk.Keyring
	sealer *chunk.Sealer

	lastEpoch uint32
	pub       *Publish // the live publish, nil when none

	// Key rotation state, touched only by the live publish's goroutine.
	keyID        uint32
	keySince     time.Time
	pendingKey   uint32 // handed out, not yet active
	pendingSince time.Time
}

// New makes a Seeder.
func New(cfg Config) (*Seeder, error) {
	if len(cfg.SigningKey) != ed25519.PrivateKeySize {
		return nil, errors.New("seeder: a signing key is required")
	}
	if cfg.ChunkDuration == 0 {
		cfg.ChunkDuration = cmaf.DefaultChunkDuration
	}
	if cfg.KeyRotation == 0 {
		cfg.KeyRotation = 10 * time.Minute
	}
	if cfg.KeyGrace == 0 {
		cfg.KeyGrace = 5 * time.Second
	}
	if cfg.MaxLive == 0 {
		cfg.MaxLive = DefaultMaxLive
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Seeder{cfg: cfg, log: cfg.Logger, origin: NewOrigin(cfg.Logger), streams: make(map[string]*stream)}
	s.origin.Now = cfg.Now
	s.metrics = newMetrics(cfg.Registerer)
	return s, nil
}

// Origin is the HTTP side of the seeder.
func (s *Seeder) Origin() *Origin { return s.origin }

// PublicKey is what viewers verify chunks with.
func (s *Seeder) PublicKey() ed25519.PublicKey {
	return s.cfg.SigningKey.Public().(ed25519.PublicKey)
}

// Keys returns the current master keys of a stream (nil if never
// published).
func (s *Seeder) Keys(name string) []chunk.MasterKey {
	s.mu.Lock()
	st := s.streams[name]
	s.mu.Unlock()
	if st == nil {
		return nil
	}
	return keysOf(st.keys)
}

func keysOf(r *chunk.Keyring) []chunk.MasterKey {
	var out []chunk.MasterKey
	for _, id := range r.IDs() {
		if k, ok := r.Get(id); ok {
			out = append(out, k)
		}
	}
	return out
}

// Live reports whether stream name is being published.
func (s *Seeder) Live(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[name]
	return st != nil && st.pub != nil
}

// SetPublic applies a stream's private flag at once: LL-HLS in the clear
// stops (or starts) with the next request, whether or not the stream is
// live. The next publish takes the flag from its caller as before.
func (s *Seeder) SetPublic(name string, public bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.origin.SetPublic(name, public)
}

// publishOf returns a stream's live publish and its stream (nil, nil
// for an unknown stream; a nil publish when none is live).
func (s *Seeder) publishOf(name string) (*Publish, *stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[name]
	if st == nil {
		return nil, nil
	}
	return st.pub, st
}

// Kick ends the live publish of a stream (its key was revoked).
func (s *Seeder) Kick(name string) {
	if p, _ := s.publishOf(name); p != nil {
		s.log.Info("ending publish: key revoked", "stream", name)
		p.stop()
	}
}

// ErrClosed is returned by StartPublish after Close.
var ErrClosed = errors.New("seeder: closed")

// ErrKeyRevoked is returned by StartPublish when Config.KeyCheck refuses
// the publish's key generation.
var ErrKeyRevoked = errors.New("seeder: stream key revoked or rotated")

// ErrTooManyStreams is returned by StartPublish when MaxLive streams are
// live already.
var ErrTooManyStreams = errors.New("seeder: too many live streams")

// DefaultMaxLive is Config.MaxLive's default.
const DefaultMaxLive = 64

// StartPublish begins a publish of stream name. A live publish of the same
// stream is taken over: it is stopped through its stop function and the new
// one starts a new epoch. stop must make the ingest end its connection and
// call End; it may be called from any goroutine. public says whether the
// stream may be served as clear LL-HLS. keyGen is the key generation the
// ingest checked the key at (see Config.KeyCheck).
func (s *Seeder) StartPublish(name, protocol string, public bool, keyGen uint64, stop func()) (*Publish, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if s.cfg.KeyCheck != nil {
		if err := s.cfg.KeyCheck(name, keyGen); err != nil {
			s.mu.Unlock()
			s.metrics.refusals.WithLabelValues(protocol, "key_revoked").Inc()
			return nil, fmt.Errorf("seeder: start publish of %s: %w: %w", name, ErrKeyRevoked, err)
		}
	}
	if s.cfg.MaxLive > 0 && s.liveOthersLocked(name) >= s.cfg.MaxLive {
		s.mu.Unlock()
		s.metrics.refusals.WithLabelValues(protocol, "too_many_streams").Inc()
		return nil, fmt.Errorf("seeder: start publish of %s: %w (limit %d)", name, ErrTooManyStreams, s.cfg.MaxLive)
	}
	st, err := s.streamLocked(name, public)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	old := st.pub
	first := max(uint32(s.cfg.Now().Unix()), st.lastEpoch+1)
	if s.cfg.EpochFloor != nil {
		first = max(first, s.cfg.EpochFloor(name)+1)
	}
	var reservedEnd uint32
	if s.cfg.ReserveEpochs != nil {
		// Under the lock: a take-over racing this one reserves after us.
		f, err := s.cfg.ReserveEpochs(name, first, EpochBlock)
		if err != nil {
			s.mu.Unlock()
			s.metrics.refusals.WithLabelValues(protocol, "epochs").Inc()
			return nil, fmt.Errorf("seeder: start publish of %s: %w", name, err)
		}
		first, reservedEnd = f, f+EpochBlock
	}
	p := &Publish{s: s, st: st, protocol: protocol, stop: stop, started: s.cfg.Now(), reservedEnd: reservedEnd}
	st.pub = p
	s.mu.Unlock()

	if old != nil {
		s.log.Info("publish taken over by a new connection", "stream", name, "protocol", protocol)
		old.stop()
	}
	p.pkg, err = cmaf.New(cmaf.Config{
		ChunkDuration: s.cfg.ChunkDuration,
		FirstEpoch:    first,
		OnInit:        p.onInit,
		OnChunk:       p.onChunk,
		Logger:        s.log.With("stream", name),
	})
	if err != nil {
		p.End(err)
		return nil, fmt.Errorf("seeder: start publish of %s: %w", name, err)
	}
	s.metrics.publishes.WithLabelValues(protocol).Inc()
	s.log.Info("publish started", "stream", name, "protocol", protocol, "first_epoch", first)
	s.emit(Event{Kind: PublishStarted, Stream: name, Protocol: protocol, KeyGen: keyGen, Keys: keysOf(st.keys)})
	return p, nil
}

// liveOthersLocked counts the live streams other than name.
func (s *Seeder) liveOthersLocked(name string) int {
	n := 0
	for other, st := range s.streams {
		if other != name && st.pub != nil {
			n++
		}
	}
	return n
}

func (s *Seeder) streamLocked(name string, public bool) (*stream, error) {
	if st := s.streams[name]; st != nil {
		s.origin.Stream(name, s.cfg.Window, public)
		return st, nil
	}
	mk, err := chunk.NewMasterKey(1, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("seeder: content key for %s: %w", name, err)
	}
	keys, err := chunk.NewKeyring(mk)
	if err != nil {
		return nil, err
	}
	sealer, err := chunk.NewSealer(chunk.SealerConfig{Stream: name, PrivateKey: s.cfg.SigningKey, Keys: keys, KeyID: 1})
	if err != nil {
		return nil, err
	}
	st := &stream{name: name, window: s.origin.Stream(name, s.cfg.Window, public), keys: keys, sealer: sealer, keyID: 1, keySince: s.cfg.Now()}
	s.streams[name] = st
	return st, nil
}

func (s *Seeder) emit(e Event) {
	if s.cfg.Events != nil {
		s.cfg.Events(e)
	}
}

// Close ends every publish and wakes blocked origin requests.
func (s *Seeder) Close() error {
	s.mu.Lock()
	s.closed = true
	var pubs []*Publish
	for _, st := range s.streams {
		if st.pub != nil {
			pubs = append(pubs, st.pub)
		}
	}
	s.mu.Unlock()
	for _, p := range pubs {
		p.stop()
	}
	s.origin.Close()
	return nil
}

// Publish is one ingest connection's publish. It is a media.Sink: the
// ingest feeds it access units from one goroutine, then calls End.
type Publish struct {
	s        *Seeder
	st       *stream
	protocol string
	stop     func()
	started  time.Time
	pkg      *cmaf.Packager

	endOnce sync.Once
	gop     gopWatch // keyframe interval (gop.go)
	// reservedEnd is one past the last epoch reserved for this publish
	// (Config.ReserveEpochs); 0 without reservations. Touched by the
	// publish's goroutine only, after StartPublish.
	reservedEnd uint32

	// arrivals remembers when recent access units came in, by DTS, so each
	// chunk's ingest-to-chunk latency (first sample in → chunk sealed) can
	// be measured. A small ring: chunks are sealed within a second.
	arrivals [256]arrival
	next     int

	rate infoRate // Info's frame-rate estimate (info.go)

	// codecAdvice is what the broadcaster should change about a track the
	// ingest drops for its codec (Unsupported), nil when none.
	codecAdvice atomic.Pointer[string]
}

type arrival struct {
	dts time.Duration
	at  time.Time
}

var _ media.Sink = (*Publish)(nil)

// VideoConfig implements media.Sink.
func (p *Publish) VideoConfig(c media.VideoConfig) error { return p.pkg.VideoConfig(c) }

// AudioConfig implements media.Sink.
func (p *Publish) AudioConfig(c media.AudioConfig) error { return p.pkg.AudioConfig(c) }

// Unsupported is told by the ingest that it drops a track for its codec
// (flv.UnsupportedSink): the publish goes on without it, and the
// broadcaster reads why where the keyframe advice shows (dashboard,
// publish page), instead of an encoder reconnecting in a loop.
func (p *Publish) Unsupported(kind media.Kind, codec string) {
	fix := "set an H.264 encoder (OBS: Settings → Output → Video Encoder: x264, or an H.264 hardware encoder; HEVC and AV1 are carried too, for the browsers that decode them)"
	if kind == media.Audio {
		fix = "set AAC (OBS: Settings → Output → Audio Encoder: AAC)"
	}
	adv := fmt.Sprintf("%s codec %s is not supported: the stream goes on without %s, viewers get no %s; %s",
		kind, codec, kind, kind, fix)
	p.codecAdvice.Store(&adv)
	p.s.metrics.refusals.WithLabelValues(p.protocol, "unsupported_"+kind.String()).Inc()
}

// WriteAU implements media.Sink.
func (p *Publish) WriteAU(au media.AccessUnit) error {
	if p.superseded() {
		return errors.New("seeder: publish taken over")
	}
	n := len(au.Frame)
	for _, nalu := range au.NALUs {
		n += len(nalu)
	}
	if au.Kind == media.Video {
		p.rate.videoFrames.Add(1)
	}
	p.arrivals[p.next%len(p.arrivals)] = arrival{dts: au.DTS, at: p.s.cfg.Now()}
	p.next++
	p.s.metrics.ingestBytes.WithLabelValues(p.st.name, au.Kind.String()).Add(float64(n))
	p.s.metrics.frames.WithLabelValues(p.st.name, au.Kind.String()).Inc()
	return p.pkg.WriteAU(au)
}

func (p *Publish) superseded() bool {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return p.st.pub != p
}

// End finishes the publish: held samples are flushed (unless the publish was
// taken over) and the epoch is marked ended.
func (p *Publish) End(cause error) {
	p.endOnce.Do(func() {
		current := !p.superseded()
		if current && p.pkg != nil {
			if err := p.pkg.Flush(); err != nil && !errors.Is(err, cmaf.ErrFlushed) {
				p.s.log.Warn("flush at end of publish", "stream", p.st.name, "err", err)
			}
		}
		p.s.mu.Lock()
		if p.st.pub == p {
			p.st.pub = nil
		}
		p.s.mu.Unlock()
		if !current {
			return // the new publish owns the stream now
		}
		p.st.window.EndEpoch()
		p.s.log.Info("publish ended", "stream", p.st.name, "protocol", p.protocol, "after", time.Since(p.started).Round(time.Millisecond), "err", cause)
		p.s.emit(Event{Kind: PublishEnded, Stream: p.st.name, Protocol: p.protocol, Err: cause, Keys: keysOf(p.st.keys)})
	})
}

// EpochBlock is how many epoch numbers a publish reserves at a time.
const EpochBlock = 64

func (p *Publish) onInit(in cmaf.Init) error {
	if p.reservedEnd != 0 && in.Epoch >= p.reservedEnd {
		// Past the block: reserve from this epoch on. Nothing else
		// reserves for this stream meanwhile, so the store answers
		// in.Epoch; anything else would reuse a number.
		f, err := p.s.cfg.ReserveEpochs(p.st.name, in.Epoch, EpochBlock)
		if err == nil && f != in.Epoch {
			err = fmt.Errorf("store reserved %d, not %d", f, in.Epoch)
		}
		if err != nil {
			return fmt.Errorf("reserve epoch %d: %w", in.Epoch, err)
		}
		p.reservedEnd = f + EpochBlock
	}
	h := chunk.Header{Flags: chunk.FlagInit, Epoch: in.Epoch, Seq: 0}
	sealed, err := p.st.sealer.Seal(h, in.Data)
	if err != nil {
		return fmt.Errorf("seal init of epoch %d: %w", in.Epoch, err)
	}
	now := p.s.cfg.Now()
	e := &Entry{Epoch: in.Epoch, Seq: 0, Sealed: sealed, Plain: in.Data, Added: now}
	p.s.mu.Lock()
	p.st.lastEpoch = in.Epoch
	p.s.mu.Unlock()
	p.st.window.StartEpoch(EpochInfo{Epoch: in.Epoch, Codecs: in.Codecs, Width: in.Width, Height: in.Height, Init: e})
	p.s.log.Info("new epoch", "stream", p.st.name, "epoch", in.Epoch, "codecs", in.Codecs, "width", in.Width, "height", in.Height)
	p.s.emit(Event{Kind: EpochStarted, Stream: p.st.name, Protocol: p.protocol, Epoch: in.Epoch, Codecs: in.Codecs, Keys: keysOf(p.st.keys)})
	if p.s.cfg.Root != nil {
		p.s.cfg.Root(p.st.name, e)
	}
	return nil
}

func (p *Publish) onChunk(c cmaf.Chunk) error {
	now := p.s.cfg.Now()
	p.rotateKeys(now)
	var flags chunk.Flags
	if c.Keyframe {
		flags |= chunk.FlagKeyframe
	}
	if c.Discontinuity {
		flags |= chunk.FlagDiscontinuity
	}
	h := chunk.Header{
		Flags: flags, Epoch: c.Epoch, Seq: c.Seq,
		MediaTime: uint64(c.MediaTime / time.Microsecond), Duration: uint32(c.Duration / time.Microsecond),
	}
	sealed, err := p.st.sealer.Seal(h, c.Data)
	if err != nil {
		return fmt.Errorf("seal chunk %d/%d: %w", c.Epoch, c.Seq, err)
	}
	e := &Entry{Epoch: c.Epoch, Seq: c.Seq, Keyframe: c.Keyframe, MediaTime: c.MediaTime, Duration: c.Duration, Sealed: sealed, Plain: c.Data, Added: now}
	if !p.st.window.Add(e) {
		return fmt.Errorf("chunk %d/%d out of order", c.Epoch, c.Seq)
	}
	m := p.s.metrics
	if at, ok := p.arrivedAt(c.MediaTime); ok {
		m.chunkLatency.Observe(now.Sub(at).Seconds())
	}
	m.chunks.WithLabelValues(p.st.name).Inc()
	m.chunkBytes.WithLabelValues(p.st.name).Add(float64(len(sealed)))
	if c.Keyframe {
		iv, advice := p.gop.noteKeyframe(c.Epoch, c.MediaTime)
		if iv > 0 {
			m.keyInterval.WithLabelValues(p.st.name).Set(iv.Seconds())
		}
		if advice != "" {
			p.s.log.Warn("long keyframe interval", "stream", p.st.name, "protocol", p.protocol, "interval", iv.Round(time.Millisecond), "advice", advice)
		}
	}
	if p.s.cfg.Root != nil {
		p.s.cfg.Root(p.st.name, e)
	}
	return nil
}

// arrivedAt finds when the access unit with decode time dts came in. The
// packager's media time is the ingest DTS (to a tick) unless it shifted a
// negative start, in which case no latency is recorded.
func (p *Publish) arrivedAt(dts time.Duration) (time.Time, bool) {
	// The packager rounds to its 90 kHz clock: WHIP's nanosecond
	// timestamps come back within one tick, not exactly.
	const tick = time.Second / 90000
	for i := range p.arrivals {
		if a := p.arrivals[i]; (a.dts-dts).Abs() <= tick && !a.at.IsZero() {
			return a.at, true
		}
	}
	return time.Time{}, false
}

// rotateKeys runs the content-key schedule on the publish's own goroutine:
// a new key is added and announced, activated KeyGrace later (viewers have
// it by then), and keys older than the previous one are dropped.
func (p *Publish) rotateKeys(now time.Time) {
	st, cfg := p.st, p.s.cfg
	if cfg.KeyRotation < 0 {
		return
	}
	if st.pendingKey != 0 && now.Sub(st.pendingSince) >= cfg.KeyGrace {
		if err := st.sealer.SetActiveKey(st.pendingKey); err != nil {
			p.s.log.Error("activate content key", "stream", st.name, "err", err)
			return
		}
		for _, id := range st.keys.IDs() {
			if id != st.pendingKey && id != st.keyID {
				st.keys.Remove(id)
			}
		}
		st.keyID, st.keySince, st.pendingKey = st.pendingKey, now, 0
		p.s.log.Info("content key rotated", "stream", st.name, "key_id", st.keyID)
		return
	}
	if st.pendingKey == 0 && now.Sub(st.keySince) >= cfg.KeyRotation {
		mk, err := chunk.NewMasterKey(st.keyID+1, rand.Reader)
		if err == nil {
			err = st.keys.Add(mk)
		}
		if err != nil {
			p.s.log.Error("new content key", "stream", st.name, "err", err)
			return
		}
		st.pendingKey, st.pendingSince = mk.ID, now
		p.s.emit(Event{Kind: KeysChanged, Stream: st.name, Protocol: p.protocol, Keys: keysOf(st.keys)})
	}
}
