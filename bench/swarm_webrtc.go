package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/overlay"
	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/peer/httporigin"
	"github.com/banyan-live/banyan/peer/node"
	"github.com/banyan-live/banyan/peer/rtc"
	"github.com/banyan-live/banyan/protocol"
)

// Broadcast is a running tracker, seeder and origin that a webrtc run
// joins: cmd/banyan starts `banyan up` in process on loopback.
type Broadcast struct {
	Stream     string
	TrackerURL string // ws://host/ws
	OriginURL  string // http://host
	PublishURL string // RTMP URL, stream key included
	// SeederSent reports the bytes the stream's root peer has sent into
	// the trees so far.
	SeederSent func() uint64
	Close      func() error
}

// BroadcastConfig is what a webrtc run asks of its broadcast.
type BroadcastConfig struct {
	// Stripes is K; RootCapacity the seeder's children per stripe
	// (overlay.DefaultRootCapacity when 0, as `banyan up`).
	Stripes, RootCapacity int
	// OnSealed is called with every chunk the seeder seals, as it seals it
	// (publish → play latency starts there), with its CMAF in the clear
	// (what viewers must play, byte for byte). It must not block, and
	// must not change plain.
	OnSealed func(epoch uint32, seq uint64, plain []byte)
}

// WebRTCModel configures the webrtc transport.
type WebRTCModel struct {
	// Start starts the broadcast side; required.
	Start func(ctx context.Context, c BroadcastConfig) (*Broadcast, error)
	// FFmpeg is the encoder (default "ffmpeg" on PATH).
	FFmpeg string
	// Size is the test picture (default 1280x720 at 30 fps).
	Size string
}

// wrtcViewer is one native node in a webrtc run.
type wrtcViewer struct {
	r      *wrtcRun
	cancel context.CancelFunc
	done   chan struct{}
	start  time.Time

	// node is the session's node once it exists. Engine and node methods
	// are called only with no bench lock held: the engine calls into the
	// bench (Intern) under its own lock, and the node calls the engine
	// under the node's.
	node atomic.Pointer[node.Node]

	// Under r.mu:
	id         protocol.PeerID
	first      time.Time
	parent     []protocol.PeerID // per stripe, as assigned
	depth      []int
	doneAt     [doneRing]doneRec // verified chunks, by seq
	inKill     bool
	killStalls uint64
	counted    bool
}

// wrtcRun is the state of one webrtc run.
type wrtcRun struct {
	cfg SwarmConfig
	bc  *Broadcast
	t0  time.Time
	k   int
	// rootCap is the seeder's children per stripe (--root-capacity).
	rootCap int

	mu       sync.Mutex
	col      *collector
	sealedAt map[uint64]sealedRec // current epoch's chunks, init (0) included
	epoch    uint32
	sealedN  uint64 // media bytes sealed (for the measured bitrate)
	firstAt  time.Time
	lastAt   time.Time
	byID     map[protocol.PeerID]*wrtcViewer
	alive    map[*wrtcViewer]bool
	all      []*wrtcViewer
	joined   int
	left     int
	killed   int
	reps     int // node-measured re-parents
	peakHeap uint64
}

// swarmWebRTC runs the swarm over real nodes: pion data channels on
// loopback, the real tracker and seeder (cfg.WebRTC.Start) and real media
// from ffmpeg. Viewers share this process (one Go runtime for the seeder,
// tracker and every node), so the CPU profile of the run covers all of it.
func swarmWebRTC(ctx context.Context, cfg SwarmConfig) (SwarmResult, error) {
	m := cfg.WebRTC
	switch {
	case m.Start == nil:
		return SwarmResult{}, fmt.Errorf("bench swarm: --transport webrtc needs a broadcast to join: %w", ErrNotAvailable)
	case cfg.Mode != ModeMesh:
		return SwarmResult{}, errors.New("bench swarm: --mode origin runs on --transport mem (over webrtc every byte would come from the origin: offload 0 by definition)")
	case cfg.Source != SourceFFmpeg:
		return SwarmResult{}, errors.New("bench swarm: --transport webrtc publishes real media: --source ffmpeg")
	}
	if m.FFmpeg == "" {
		m.FFmpeg = "ffmpeg"
	}
	if m.Size == "" {
		m.Size = "1280x720"
	}
	ffmpeg, err := exec.LookPath(m.FFmpeg)
	if err != nil {
		return SwarmResult{}, fmt.Errorf("bench swarm: --transport webrtc needs ffmpeg: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rootCap := cfg.Mem.RootCapacity
	if rootCap == 0 {
		rootCap = overlay.DefaultRootCapacity
	}
	r := &wrtcRun{cfg: cfg, k: cfg.Stripes, rootCap: rootCap, col: newCollector(), sealedAt: make(map[uint64]sealedRec),
		byID: make(map[protocol.PeerID]*wrtcViewer), alive: make(map[*wrtcViewer]bool)}
	r.bc, err = m.Start(ctx, BroadcastConfig{Stripes: cfg.Stripes, RootCapacity: r.rootCap, OnSealed: r.sealed})
	if err != nil {
		return SwarmResult{}, fmt.Errorf("bench swarm: starting the broadcast: %w", err)
	}
	defer r.bc.Close()

	// The encoder runs a little longer than the audience so the last
	// viewers are not cut off by the end of the publish.
	enc := encoder(ctx, ffmpeg, m.Size, cfg.Bitrate, cfg.Duration+20*time.Second, r.bc.PublishURL)
	var encErr bytes.Buffer
	enc.Stderr = &encErr
	if err := enc.Start(); err != nil {
		return SwarmResult{}, fmt.Errorf("bench swarm: starting ffmpeg: %w", err)
	}
	defer func() { cancel(); enc.Wait() }()
	if err := r.waitLive(ctx, 30*time.Second); err != nil {
		return SwarmResult{}, fmt.Errorf("bench swarm: %w (ffmpeg said: %q)", err, tail(encErr.String(), 400))
	}

	wall := time.Now()
	res, err := r.run(ctx)
	res.WallS = math.Round(time.Since(wall).Seconds()*100) / 100
	res.SimSpeed = 1
	return res, err
}

// encoder publishes a test picture and tone over RTMP in real time, at a
// constant bitrate (filler included) so the stream is as heavy as asked.
func encoder(ctx context.Context, ffmpeg, size string, bps float64, d time.Duration, url string) *exec.Cmd {
	v := strconv.Itoa(int(bps - 96e3)) // the audio takes 96 kbit/s of it
	return exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size="+size+":rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", strconv.Itoa(int(d.Seconds())),
		"-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30",
		"-b:v", v, "-minrate", v, "-maxrate", v, "-bufsize", v, "-x264-params", "nal-hrd=cbr:force-cfr=1",
		"-c:a", "aac", "-b:a", "96k", "-f", "flv", url)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// sealed is BroadcastConfig.OnSealed.
func (r *wrtcRun) sealed(epoch uint32, seq uint64, plain []byte) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if epoch != r.epoch {
		r.epoch, r.sealedAt = epoch, make(map[uint64]sealedRec)
	}
	r.sealedAt[seq] = sealedRec{now, plain}
	if seq == 0 {
		return
	}
	if seq > 512 {
		delete(r.sealedAt, seq-512) // keep about two minutes
	}
	if r.firstAt.IsZero() {
		r.firstAt = now
	} else {
		r.sealedN += uint64(len(plain))
	}
	r.lastAt = now
}

// sealedRec is one chunk as the seeder sealed it.
type sealedRec struct {
	at    time.Time
	plain []byte
}

func (r *wrtcRun) waitLive(ctx context.Context, limit time.Duration) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	deadline := time.After(limit)
	for {
		r.mu.Lock()
		n := len(r.sealedAt)
		r.mu.Unlock()
		if n >= 4 { // a second of media: the stream is running
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("the stream did not go live within %v", limit)
		case <-t.C:
		}
	}
}

func (r *wrtcRun) run(ctx context.Context) (SwarmResult, error) {
	cfg := r.cfg
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x57a7))
	r.t0 = time.Now()
	end := r.t0.Add(cfg.Duration)
	// The schedule: evenly spread initial joins, then Poisson churn.
	nextJoin := r.t0
	joinEvery := time.Duration(0)
	if cfg.Peers > 1 {
		joinEvery = cfg.Ramp / time.Duration(cfg.Peers)
	}
	initial := 0
	var nextChurn time.Time
	churnGap := func() time.Duration {
		return time.Duration(rng.ExpFloat64() / cfg.ChurnPerMin * float64(time.Minute))
	}
	if cfg.ChurnPerMin > 0 {
		nextChurn = r.t0.Add(cfg.Ramp + churnGap())
	}
	killAt := r.t0.Add(cfg.KillAt)
	killed := cfg.Kill == 0
	progress := r.t0.Add(cfg.ProgressEvery)

	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			break loop
		case now := <-tick.C:
			if !now.Before(end) {
				break loop
			}
			for initial < cfg.Peers && !now.Before(nextJoin) {
				r.join(ctx)
				initial++
				nextJoin = nextJoin.Add(joinEvery)
			}
			if !nextChurn.IsZero() && !now.Before(nextChurn) {
				if v := r.pick(rng, 1); len(v) == 1 {
					r.leave(v[0], false)
				}
				r.join(ctx)
				nextChurn = now.Add(churnGap())
			}
			if !killed && !now.Before(killAt) {
				killed = true
				r.massKill(rng)
			}
			r.learnIDs()
			if cfg.Progress != nil && !now.Before(progress) {
				progress = now.Add(cfg.ProgressEvery)
				r.progress(now)
			}
		}
	}
	r.sampleHeap()
	if cfg.OnEnd != nil {
		cfg.OnEnd()
	}
	return r.finish(), err
}

// join starts one viewer node.
func (r *wrtcRun) join(ctx context.Context) {
	vctx, cancel := context.WithCancel(ctx)
	v := &wrtcViewer{r: r, cancel: cancel, done: make(chan struct{}), start: time.Now(),
		parent: make([]protocol.PeerID, r.k), depth: make([]int, r.k)}
	r.mu.Lock()
	r.all = append(r.all, v)
	r.alive[v] = true
	r.joined++
	r.mu.Unlock()
	origin := httporigin.New(r.bc.OriginURL, r.bc.Stream)
	cfg := node.ClientConfig{
		TrackerURL: r.bc.TrackerURL,
		Join:       protocol.Join{Stream: r.bc.Stream, Kind: protocol.KindNative, Client: "banyan-bench"},
		OnNode:     v.onNode,
		Node: node.Config{
			API:      rtc.LoopbackAPI(),
			Origin:   origin,
			Player:   (*wrtcPlayer)(v),
			OnAssign: v.onAssign,
			Engine:   v.engineConfig,
		},
	}
	go func() {
		defer close(v.done)
		node.Run(vctx, cfg)
	}()
}

func (v *wrtcViewer) onNode(n *node.Node) { v.node.Store(n) }

// engine is the viewer's engine (nil before its welcome).
func (v *wrtcViewer) engine() *peer.Engine {
	if n := v.node.Load(); n != nil {
		return n.Engine()
	}
	return nil
}

func (v *wrtcViewer) onAssign(a protocol.Assign) {
	if a.Child != 0 || a.Stripe < 0 || a.Stripe >= len(v.parent) {
		return
	}
	r := v.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if a.Remove {
		if v.parent[a.Stripe] == a.Parent {
			v.parent[a.Stripe], v.depth[a.Stripe] = 0, 0
		}
		return
	}
	v.parent[a.Stripe], v.depth[a.Stripe] = a.Parent, a.Depth
	r.col.maxDepth = max(r.col.maxDepth, a.Depth)
}

// engineConfig hooks the engine's Intern, which sees every chunk as it is
// verified and kept: its completion, which times the hop from the
// parent's own completion. (Verify would miss the chunks the engine opens
// for playing: Open verifies them itself.)
func (v *wrtcViewer) engineConfig(c *peer.Config) {
	c.Intern = func(h chunk.Header, b []byte) ([]byte, [][]byte) {
		if h.Seq > 0 {
			v.completed(h)
		}
		return b, nil
	}
}

func (v *wrtcViewer) completed(h chunk.Header) {
	r := v.r
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	v.doneAt[h.Seq%doneRing] = doneRec{h.Seq, now}
	stripe := int(h.Seq % uint64(r.k))
	par, d := v.parent[stripe], v.depth[stripe]
	switch {
	case par == 0 || h.Epoch != r.epoch:
	case d == 1: // the root: the seeder sealed it
		if rec, ok := r.sealedAt[h.Seq]; ok {
			r.col.hop.add(now.Sub(rec.at))
		}
	default:
		if p := r.byID[par]; p != nil {
			if rec := p.doneAt[h.Seq%doneRing]; rec.seq == h.Seq && !rec.at.After(now) {
				r.col.hop.add(now.Sub(rec.at))
			}
		}
	}
}

// wrtcPlayer is a viewer's Player: it times joins and publish → play.
type wrtcPlayer wrtcViewer

func (pl *wrtcPlayer) Init(epoch uint32, init []byte) {
	r := pl.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if rec, ok := r.sealedAt[0]; ok && epoch == r.epoch && rec.plain != nil && !bytes.Equal(init, rec.plain) {
		r.col.badPlayed++
	}
}

func (pl *wrtcPlayer) Chunk(h chunk.Header, payload []byte) {
	v := (*wrtcViewer)(pl)
	r := v.r
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if v.first.IsZero() {
		v.first = now
		r.col.join.add(now.Sub(v.start))
		if v.start.Sub(r.t0) >= r.cfg.Ramp {
			r.col.joinLate.add(now.Sub(v.start))
		}
	}
	rec, ok := r.sealedAt[h.Seq]
	if h.Epoch != r.epoch || !ok {
		return
	}
	if rec.plain != nil && !bytes.Equal(payload, rec.plain) {
		r.col.badPlayed++ // not what the seeder packaged
	}
	if rec.at.Before(v.first) {
		return // the catch-up burst a joiner starts with is not live delivery
	}
	depth := r.col.viewerDepthKey(r.k, func(s int) (int, bool) { return v.depth[s], v.parent[s] != 0 })
	r.col.playAt(depth, now.Sub(rec.at))
}

// pick chooses up to n live viewers at random.
func (r *wrtcRun) pick(rng *rand.Rand, n int) []*wrtcViewer {
	live := r.live()
	rng.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
	return live[:min(n, len(live))]
}

// leave stops a viewer. Stopping its context closes the node: it says
// goodbye to the tracker and its peer connections close, as when a viewer
// closes the page (a kill -9 also closes the websocket at once; only the
// data channels would then be left to time out).
func (r *wrtcRun) leave(v *wrtcViewer, kill bool) {
	v.cancel()
	<-v.done
	r.account(v, time.Now())
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.alive, v)
	if kill {
		r.killed++
	} else {
		r.left++
	}
}

func (r *wrtcRun) massKill(rng *rand.Rand) {
	live := r.live()
	stalls := make([]uint64, len(live))
	for i, v := range live {
		if e := v.engine(); e != nil {
			stalls[i] = e.Counters().Stalls
		}
	}
	r.mu.Lock()
	for i, v := range live {
		v.inKill, v.killStalls = true, stalls[i]
	}
	r.mu.Unlock()
	n := int(math.Round(r.cfg.Kill * float64(len(live))))
	victims := r.pick(rng, n)
	var wg sync.WaitGroup
	for _, v := range victims {
		v.cancel() // all at once, then wait
	}
	for _, v := range victims {
		wg.Add(1)
		go func() { defer wg.Done(); r.leave(v, true) }()
	}
	wg.Wait()
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, "bench swarm: killed %d of %d viewers at once\n", len(victims), len(live))
	}
}

// live lists the viewers alive now, in join order.
func (r *wrtcRun) live() []*wrtcViewer {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*wrtcViewer, 0, len(r.alive))
	for _, v := range r.all { // r.all, not the map: a seed gives one order
		if r.alive[v] {
			out = append(out, v)
		}
	}
	return out
}

// learnIDs registers the peer ids of nodes welcomed since the last call
// (hop latency looks parents up by id).
func (r *wrtcRun) learnIDs() {
	r.mu.Lock()
	var todo []*wrtcViewer
	for v := range r.alive {
		if v.id == 0 {
			todo = append(todo, v)
		}
	}
	r.mu.Unlock()
	for _, v := range todo {
		n := v.node.Load()
		if n == nil {
			continue
		}
		if id := n.Self(); id != 0 {
			r.mu.Lock()
			v.id, r.byID[id] = id, v
			r.mu.Unlock()
		}
	}
}

// account adds a departed (or final) viewer's engine totals, once.
func (r *wrtcRun) account(v *wrtcViewer, now time.Time) {
	var (
		reps []time.Duration
		t    peer.Traffic
		c    peer.Counters
		e    *peer.Engine
	)
	if n := v.node.Load(); n != nil {
		reps, e = n.Reparents(), n.Engine()
	}
	if e != nil {
		t, c = e.Traffic(), e.Counters()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if v.counted {
		return
	}
	v.counted = true
	for _, d := range reps {
		r.col.reparent.add(d)
	}
	if e == nil {
		r.col.neverPlayed++
		return
	}
	r.col.engine(t, c, now, !v.first.IsZero())
	r.col.originBytes += t.Origin
}

func (r *wrtcRun) progress(now time.Time) {
	live := r.live()
	var up, origin uint64
	for _, v := range live {
		if e := v.engine(); e != nil {
			t := e.Traffic()
			up, origin = up+t.Up, origin+t.Origin
		}
	}
	r.mu.Lock()
	c := *r.col
	r.mu.Unlock()
	c.peerBytes += up
	c.originBytes += origin
	alive := len(live)
	c.seederBytes = r.bc.SeederSent()
	r.sampleHeap()
	fmt.Fprintf(r.cfg.Progress, "bench swarm: %5.0fs  viewers %d (joined %d)  offload %.1f%%  heap %.0f MiB\n",
		now.Sub(r.t0).Seconds(), alive, r.joined, 100*c.offload(), float64(r.peakHeap)/(1<<20))
}

func (r *wrtcRun) sampleHeap() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.mu.Lock()
	r.peakHeap = max(r.peakHeap, ms.HeapInuse)
	r.mu.Unlock()
}

// finish stops every viewer and turns the run into a SwarmResult.
func (r *wrtcRun) finish() SwarmResult {
	cfg := r.cfg
	live := r.live()
	now := time.Now()
	// Read the survivors before any of them leaves: a departure
	// re-parents the rest.
	res := SwarmResult{}
	free := 0
	for _, v := range live {
		r.mu.Lock()
		inKill, before := v.inKill, v.killStalls
		r.mu.Unlock()
		if inKill {
			res.KillSurvivors++
			if e := v.engine(); e != nil && e.Counters().Stalls == before {
				free++
			}
		}
		r.account(v, now)
	}
	for _, v := range live {
		v.cancel()
	}
	for _, v := range live {
		<-v.done
	}
	r.col.seederBytes = r.bc.SeederSent()

	r.mu.Lock()
	defer r.mu.Unlock()
	res.Transport, res.Mode, res.Source = cfg.Transport, cfg.Mode, cfg.Source
	res.Peers, res.Stripes, res.BitrateBps, res.RootCapacity = cfg.Peers, r.k, cfg.Bitrate, r.rootCap
	if d := r.lastAt.Sub(r.firstAt).Seconds(); d > 0 {
		res.MediaBps = math.Round(float64(r.sealedN) * 8 / d)
	}
	res.DurationS = math.Round(now.Sub(r.t0).Seconds()*100) / 100
	res.ChurnPerMin, res.ChurnMode, res.Kill, res.Seed = cfg.ChurnPerMin, cfg.ChurnMode, cfg.Kill, cfg.Seed
	res.Engine = "default"
	res.Joined, res.Left, res.Killed = r.joined, r.left, r.killed
	res.PeakHeapMB = math.Round(float64(r.peakHeap)/1e5) / 10
	if res.KillSurvivors > 0 {
		res.KillStallFree = round6(float64(free) / float64(res.KillSurvivors))
	}
	r.col.fill(&res)
	return res
}
