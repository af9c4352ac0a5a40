// Package whip accepts WebRTC publishes over WHIP (RFC 9725) at
// /whip/<stream> and turns their RTP into media.Sink calls: H.264 access
// units (SPS/PPS taken in-band) or AV1 temporal units (the sequence header
// taken in-band) and Opus frames, timestamped on one timeline that RTCP
// sender reports keep in sync.
//
// The HTTP side: POST an application/sdp offer with
// "Authorization: Bearer <stream key>" → 201 Created with the answer, a
// Location naming the session and the ICE servers in Link headers; PATCH
// the session with application/trickle-ice-sdpfrag; DELETE it to stop;
// OPTIONS and CORS for browser publishers. The answer accepts H.264 or
// AV1 video (required; H.264 preferred) and Opus audio, nothing else; an
// offer without either video codec is refused with a 422 that names the
// offered and the accepted codecs.
//
// The media side, per session: a reorder buffer per track that waits a
// bounded time for NACKed packets, H.264 depacketisation (pion's codecs,
// behind a guard that bounds fragments) or AV1's (this package's), frames dropped after a loss until
// the next keyframe, a PLI at start, after a loss and whenever a keyframe
// is overdue (joining viewers need keyframes), and audio/video sync from
// RTCP sender reports. Every session is owned by one goroutine that the
// Server waits for in Close.
package whip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/banyan-live/banyan/media"
)

// Session is what a publish feeds: the media of one WHIP session, then End
// once with why it ended (nil for a clean DELETE). *seeder.Publish
// satisfies it.
type Session interface {
	media.Sink
	End(cause error)
}

// Grant is what a stream key check established.
type Grant struct {
	// Stream is the stream the key belongs to.
	Stream string
	// Public says whether the stream may be served as clear LL-HLS.
	Public bool
	// KeyGen is the key generation the key was checked at. The offer is
	// read (up to the HTTP read timeout) and answered after the check, so
	// the Publisher re-checks it when the publish starts.
	KeyGen uint64
}

// Publisher starts publishes. StartPublish takes over a live publish of
// the same stream (whatever its protocol) by calling that publish's stop;
// stop, which this package passes, ends the WHIP session and may be called
// from any goroutine, any number of times. It must refuse a grant whose
// key was revoked or rotated since Authorize.
type Publisher interface {
	StartPublish(g Grant, stop func()) (Session, error)
}

// PublisherFunc adapts a function to Publisher.
type PublisherFunc func(g Grant, stop func()) (Session, error)

// StartPublish implements Publisher.
func (f PublisherFunc) StartPublish(g Grant, stop func()) (Session, error) {
	return f(g, stop)
}

// Errors a Session's End receives (nil is a clean DELETE).
var (
	ErrStopped          = errors.New("whip: publish stopped by the seeder (taken over, key revoked or shutting down)")
	ErrNoMedia          = errors.New("whip: no usable media from the publisher in time")
	ErrConnectionFailed = errors.New("whip: WebRTC connection failed or closed")
	ErrServerClosed     = errors.New("whip: server closed")
)

// ErrKeyRevoked, wrapped by a StartPublish error, answers 401: the key
// was revoked or rotated after Authorize accepted it.
var ErrKeyRevoked = errors.New("whip: stream key revoked or rotated")

// ErrUnavailable, wrapped by an Authorize error, answers 503 instead of 401
// (the key store is down, not the key wrong).
var ErrUnavailable = errors.New("whip: authorization unavailable")

// Defaults of Config.
const (
	DefaultPathPrefix       = "/whip/"
	DefaultMaxBody          = 64 << 10
	DefaultMaxSessions      = 256
	DefaultNoMediaTimeout   = 10 * time.Second
	DefaultKeyframeInterval = 2 * time.Second
	DefaultReorderWait      = 200 * time.Millisecond
	DefaultVideoWait        = 3 * time.Second
	DefaultGatherTimeout    = 5 * time.Second
	DefaultMaxCandidates    = 64
)

// Config configures a Server. Authorize and Publisher are required.
type Config struct {
	// Authorize maps a stream key to its Grant, or refuses it. It runs
	// before the offer is read. An error answers 401 (503 when it wraps
	// ErrUnavailable).
	Authorize func(ctx context.Context, key string) (Grant, error)
	// Publisher receives each accepted publish.
	Publisher Publisher
	// OnRefused, when set, is told of every refused request with a short
	// reason ("bad_key", "wrong_stream", "bad_offer", "no_video_codec", …); the
	// seeder counts them (Seeder.Refused("whip", reason)).
	OnRefused func(reason string)
	// ICEServers returns the STUN/TURN servers advertised to the publisher
	// of stream in Link headers (on 201 and on an authorized OPTIONS). It
	// may mint short-lived TURN credentials. Nil advertises none.
	ICEServers func(stream string) []webrtc.ICEServer
	// ServerICEServers are used by the server's own ICE agent (a STUN
	// server to learn its public address behind NAT). Usually none.
	ServerICEServers []webrtc.ICEServer
	// Configure adjusts the WebRTC setting engine: a single UDP port
	// (SetICEUDPMux), NAT 1:1 addresses, loopback candidates in tests.
	Configure func(*webrtc.SettingEngine)
	// PathPrefix is where Handler is mounted; DefaultPathPrefix when empty.
	PathPrefix string
	// AllowOrigin is the CORS Access-Control-Allow-Origin value ("*" when
	// empty: requests carry a bearer key, never cookies).
	AllowOrigin string
	// MaxBody bounds an offer or a PATCH body (DefaultMaxBody).
	MaxBody int64
	// MaxSessions bounds live and negotiating sessions (DefaultMaxSessions).
	MaxSessions int
	// MaxCandidates bounds the remote ICE candidates of a session, offer
	// and PATCHes together (DefaultMaxCandidates).
	MaxCandidates int
	// NoMediaTimeout ends a session that has produced no usable media (an
	// audio frame or a decodable video frame) for this long, from its
	// start: a publisher that never connects, never sends, or sends
	// garbage. DefaultNoMediaTimeout.
	NoMediaTimeout time.Duration
	// KeyframeInterval: when no keyframe has arrived for this long, a PLI
	// asks the publisher for one (DefaultKeyframeInterval).
	KeyframeInterval time.Duration
	// ReorderWait is how long a sequence gap is waited for (a NACKed
	// retransmission) before it is declared lost (DefaultReorderWait).
	ReorderWait time.Duration
	// VideoWait is how long audio is held back, after the first packet,
	// waiting for the video configuration, so that the packager's first
	// epoch has both tracks (DefaultVideoWait).
	VideoWait time.Duration
	// GatherTimeout bounds the server's ICE gathering before it answers.
	GatherTimeout time.Duration
	Logger        *slog.Logger
	// Registerer takes the package's metrics (none when nil).
	Registerer prometheus.Registerer
	// Now is the clock for session timing (time.Now when nil).
	Now func() time.Time
}

// Server is a WHIP endpoint. Create it with New, mount Handler, and Close
// it to end every session.
type Server struct {
	cfg     Config
	log     *slog.Logger
	api     *webrtc.API
	metrics *metrics

	baseCtx    context.Context
	baseCancel context.CancelFunc

	mu       sync.Mutex
	sessions map[string]*session
	reserved int // negotiating + live
	closing  bool
	wg       sync.WaitGroup // POST handlers in flight and session goroutines

	closeOnce sync.Once
}

// New validates cfg and builds the WebRTC stack (H.264, AV1 and Opus only, with
// NACK, RTCP reports and TWCC feedback).
func New(cfg Config) (*Server, error) {
	if cfg.Authorize == nil || cfg.Publisher == nil {
		return nil, errors.New("whip: Config.Authorize and Config.Publisher are required")
	}
	if cfg.PathPrefix == "" {
		cfg.PathPrefix = DefaultPathPrefix
	}
	if cfg.PathPrefix[len(cfg.PathPrefix)-1] != '/' {
		cfg.PathPrefix += "/"
	}
	if cfg.AllowOrigin == "" {
		cfg.AllowOrigin = "*"
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.MaxCandidates <= 0 {
		cfg.MaxCandidates = DefaultMaxCandidates
	}
	if cfg.NoMediaTimeout <= 0 {
		cfg.NoMediaTimeout = DefaultNoMediaTimeout
	}
	if cfg.KeyframeInterval <= 0 {
		cfg.KeyframeInterval = DefaultKeyframeInterval
	}
	if cfg.ReorderWait <= 0 {
		cfg.ReorderWait = DefaultReorderWait
	}
	if cfg.VideoWait <= 0 {
		cfg.VideoWait = DefaultVideoWait
	}
	if cfg.GatherTimeout <= 0 {
		cfg.GatherTimeout = DefaultGatherTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	api, err := newAPI(cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		api:      api,
		metrics:  newMetrics(cfg.Registerer),
		sessions: make(map[string]*session),
	}
	s.baseCtx, s.baseCancel = context.WithCancel(context.Background())
	return s, nil
}

// newAPI registers exactly what the answer may accept.
func newAPI(cfg Config) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	pt := webrtc.PayloadType(96)
	const opusPT, av1PT = 111, 45 // pion's and Chromium's numbers
	// Browsers and OBS offer baseline, constrained baseline, main and
	// high; pion matches on profile_idc and the constraint byte.
	for _, profile := range []string{"42001f", "42e01f", "42c01f", "4d001f", "4d401f", "64001f", "640c1f"} {
		for _, mode := range []string{"1", "0"} {
			if pt == opusPT || pt+1 == opusPT {
				pt = opusPT + 1
			}
			c := webrtc.RTPCodecParameters{
				RTPCodecCapability: webrtc.RTPCodecCapability{
					MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
					SDPFmtpLine:  "level-asymmetry-allowed=1;packetization-mode=" + mode + ";profile-level-id=" + profile,
					RTCPFeedback: fb,
				},
				PayloadType: pt,
			}
			rtx := webrtc.RTPCodecParameters{
				RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: fmt.Sprintf("apt=%d", pt)},
				PayloadType:        pt + 1,
			}
			if err := m.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
				return nil, fmt.Errorf("whip: register H.264: %w", err)
			}
			if err := m.RegisterCodec(rtx, webrtc.RTPCodecTypeVideo); err != nil {
				return nil, fmt.Errorf("whip: register RTX: %w", err)
			}
			pt += 2
		}
	}
	// AV1's main profile (pion matches on the profile; the high and
	// professional profiles are 4:4:4 and 4:2:2, which browsers do not
	// decode). H.264 stays first in the answer: see videoRank.
	av1c := webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000, SDPFmtpLine: "level-idx=5;profile=0;tier=0", RTCPFeedback: fb},
		PayloadType:        av1PT,
	}
	av1rtx := webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: fmt.Sprintf("apt=%d", av1PT)},
		PayloadType:        av1PT + 1,
	}
	if err := m.RegisterCodec(av1c, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, fmt.Errorf("whip: register AV1: %w", err)
	}
	if err := m.RegisterCodec(av1rtx, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, fmt.Errorf("whip: register RTX: %w", err)
	}
	opus := webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType:        opusPT,
	}
	if err := m.RegisterCodec(opus, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("whip: register Opus: %w", err)
	}
	ir := &interceptor.Registry{}
	logs := pionLogs{log: cfg.Logger}
	// NACKs go out every 50 ms (pion's default is 100): a repair then
	// fits well within the reorder wait. pion's generator does not see
	// packets repaired over RTX and would NACK them again until they
	// leave its window, so each packet is NACKed at most 4 times.
	if err := webrtc.RegisterDefaultInterceptorsWithOptions(m, ir,
		webrtc.WithInterceptorLoggerFactory(logs),
		webrtc.WithNackGeneratorOptions(nack.GeneratorInterval(50*time.Millisecond), nack.GeneratorMaxNacksPerPacket(4)),
	); err != nil {
		return nil, fmt.Errorf("whip: interceptors: %w", err)
	}
	se := webrtc.SettingEngine{LoggerFactory: logs}
	if cfg.Configure != nil {
		cfg.Configure(&se)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// Sessions returns how many sessions are live (negotiated and not ended).
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Close ends every session (End receives ErrServerClosed), refuses new
// ones with 503 and waits for all of them.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		live := make([]*session, 0, len(s.sessions))
		for _, se := range s.sessions {
			live = append(live, se)
		}
		s.mu.Unlock()
		for _, se := range live {
			se.cancel(ErrServerClosed)
		}
		s.baseCancel() // negotiating sessions, and any that raced the list
		s.wg.Wait()
	})
	return nil
}

// reserve takes a session slot for a POST; false when full or closing.
func (s *Server) reserve() (ok, closing bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false, true
	}
	if s.reserved >= s.cfg.MaxSessions {
		return false, false
	}
	s.reserved++
	s.wg.Add(1)
	return true, false
}

// release gives back a slot taken by reserve (the POST failed, or the
// session ended).
func (s *Server) release() {
	s.mu.Lock()
	s.reserved--
	s.mu.Unlock()
	s.wg.Done()
}

// register makes a negotiated session reachable by PATCH and DELETE.
func (s *Server) register(se *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.sessions[se.id] = se
	s.metrics.live.Set(float64(len(s.sessions)))
	return true
}

func (s *Server) unregister(se *session) {
	s.mu.Lock()
	if s.sessions[se.id] == se {
		delete(s.sessions, se.id)
	}
	s.metrics.live.Set(float64(len(s.sessions)))
	s.mu.Unlock()
}

func (s *Server) lookup(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}

func (s *Server) refused(reason string) {
	s.metrics.refusals.WithLabelValues(reason).Inc()
	if s.cfg.OnRefused != nil {
		s.cfg.OnRefused(reason)
	}
}
