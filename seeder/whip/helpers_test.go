package whip

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/seeder"
)

// The seeder's publish is what the lead adapts to Publisher.
var _ Session = (*seeder.Publish)(nil)

func iceServer(url, user, cred string) webrtc.ICEServer {
	s := webrtc.ICEServer{URLs: []string{url}, Username: user}
	if cred != "" {
		s.Credential = cred
	}
	return s
}

// loopbackOnly keeps pion on 127.0.0.1 over UDP: tests use loopback only.
func loopbackOnly(se *webrtc.SettingEngine) {
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("WHIP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// recAU is an AU as the recording sink saw it, with when.
type recAU struct {
	media.AccessUnit
	at time.Time
}

// recSession is a recording Session.
type recSession struct {
	stream string
	public bool
	stop   func()

	mu     sync.Mutex
	vcfg   []media.VideoConfig
	acfg   []media.AudioConfig
	aus    []recAU
	ended  chan struct{}
	endErr error
	once   sync.Once
}

func (r *recSession) VideoConfig(c media.VideoConfig) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.vcfg = append(r.vcfg, media.VideoConfig{Codec: c.Codec, SPS: bytes.Clone(c.SPS), PPS: bytes.Clone(c.PPS), SeqHeader: bytes.Clone(c.SeqHeader)})
	return nil
}

func (r *recSession) AudioConfig(c media.AudioConfig) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.acfg = append(r.acfg, c)
	return nil
}

func (r *recSession) WriteAU(au media.AccessUnit) error {
	now := time.Now()
	c := au
	c.Frame = bytes.Clone(au.Frame)
	c.NALUs = nil
	for _, n := range au.NALUs {
		c.NALUs = append(c.NALUs, bytes.Clone(n))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.aus = append(r.aus, recAU{AccessUnit: c, at: now})
	return nil
}

func (r *recSession) End(err error) {
	r.once.Do(func() {
		r.mu.Lock()
		r.endErr = err
		r.mu.Unlock()
		close(r.ended)
	})
}

func (r *recSession) snapshot() ([]media.VideoConfig, []media.AudioConfig, []recAU) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]media.VideoConfig(nil), r.vcfg...), append([]media.AudioConfig(nil), r.acfg...), append([]recAU(nil), r.aus...)
}

func (r *recSession) waitEnd(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case <-r.ended:
	case <-time.After(within):
		t.Fatalf("session of %s not ended within %v", r.stream, within)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.endErr
}

// recPublisher records publishes and applies the seeder's take-over rule:
// a new publish of a stream stops the live one.
type recPublisher struct {
	mu   sync.Mutex
	live map[string]*recSession
	all  []*recSession
	fail error
}

func (p *recPublisher) StartPublish(g Grant, stop func()) (Session, error) {
	stream, public := g.Stream, g.Public
	p.mu.Lock()
	if p.fail != nil {
		p.mu.Unlock()
		return nil, p.fail
	}
	if p.live == nil {
		p.live = make(map[string]*recSession)
	}
	old := p.live[stream]
	s := &recSession{stream: stream, public: public, stop: stop, ended: make(chan struct{})}
	p.live[stream] = s
	p.all = append(p.all, s)
	p.mu.Unlock()
	if old != nil {
		old.stop()
	}
	return s, nil
}

func (p *recPublisher) sessions() []*recSession {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*recSession(nil), p.all...)
}

func (p *recPublisher) last(t *testing.T) *recSession {
	t.Helper()
	all := p.sessions()
	if len(all) == 0 {
		t.Fatal("no publish started")
	}
	return all[len(all)-1]
}

// Test stream keys: key-<stream> is the key of <stream>; "private" keys
// make non-public streams.
func testAuthorize(_ context.Context, key string) (Grant, error) {
	switch {
	case key == "down":
		return Grant{}, ErrUnavailable
	case strings.HasPrefix(key, "key-"):
		return Grant{Stream: strings.TrimPrefix(key, "key-"), Public: true}, nil
	}
	return Grant{}, errors.New("unknown key")
}

type testEnv struct {
	srv *Server
	pub *recPublisher
	web *httptest.Server
}

func newTestEnv(t *testing.T, mod func(*Config)) *testEnv {
	t.Helper()
	pub := &recPublisher{}
	cfg := Config{
		Authorize: testAuthorize,
		Publisher: pub,
		Configure: loopbackOnly,
		ICEServers: func(stream string) []webrtc.ICEServer {
			return []webrtc.ICEServer{
				iceServer("stun:127.0.0.1:3478", "", ""),
				iceServer("turn:127.0.0.1:3478?transport=udp", "1700000000:"+stream, "secret"),
			}
		},
		Logger: testLogger(t),
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/whip/", srv.Handler())
	web := httptest.NewServer(mux)
	t.Cleanup(func() {
		web.Close()
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return &testEnv{srv: srv, pub: pub, web: web}
}

// client is a Go WHIP publisher: a pion PeerConnection with an H.264 and
// an Opus track, sending only.
type client struct {
	pc       *webrtc.PeerConnection
	video    *webrtc.TrackLocalStaticSample
	raw      *webrtc.TrackLocalStaticRTP // with clientOpts.rawVideo
	audio    *webrtc.TrackLocalStaticSample
	vsender  *webrtc.RTPSender
	location string

	mu   sync.Mutex
	plis []time.Time
	wg   sync.WaitGroup
}

type clientOpts struct {
	videoMime string // default H.264
	noAudio   bool
	rawVideo  bool // an RTP track (write packets) instead of a sample track
}

func newClient(t *testing.T, o clientOpts) *client {
	t.Helper()
	return newClientWith(t, o)
}

// newClientWith adds interceptors nearest the wire (before pion's).
func newClientWith(t *testing.T, o clientOpts, wire ...interceptor.Factory) *client {
	t.Helper()
	if o.videoMime == "" {
		o.videoMime = webrtc.MimeTypeH264
	}
	m := &webrtc.MediaEngine{}
	if o.videoMime == webrtc.MimeTypeH264 {
		// Browser-like: every codec pion knows is offered.
		if err := m.RegisterDefaultCodecs(); err != nil {
			t.Fatal(err)
		}
	} else {
		// Only the given video codec (and Opus) is offered.
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: o.videoMime, ClockRate: 90000}, PayloadType: 96}, webrtc.RTPCodecTypeVideo); err != nil {
			t.Fatal(err)
		}
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
			t.Fatal(err)
		}
	}
	ir := &interceptor.Registry{}
	for _, f := range wire {
		ir.Add(f)
	}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	loopbackOnly(&se)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	c := &client{pc: pc}
	t.Cleanup(c.close)
	vcap := webrtc.RTPCodecCapability{MimeType: o.videoMime, ClockRate: 90000}
	if o.videoMime == webrtc.MimeTypeH264 {
		vcap.SDPFmtpLine = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
	}
	var vt webrtc.TrackLocal
	if o.rawVideo {
		c.raw, err = webrtc.NewTrackLocalStaticRTP(vcap, "video", "whip-test")
		vt = c.raw
	} else {
		c.video, err = webrtc.NewTrackLocalStaticSample(vcap, "video", "whip-test")
		vt = c.video
	}
	if err != nil {
		t.Fatal(err)
	}
	tr, err := pc.AddTransceiverFromTrack(vt, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		t.Fatal(err)
	}
	c.vsender = tr.Sender()
	c.wg.Add(1)
	go func() { // read RTCP: counts PLIs, and lets the interceptors work
		defer c.wg.Done()
		for {
			pkts, _, err := c.vsender.ReadRTCP()
			if err != nil {
				return
			}
			for _, p := range pkts {
				if _, ok := p.(*rtcp.PictureLossIndication); ok {
					c.mu.Lock()
					c.plis = append(c.plis, time.Now())
					c.mu.Unlock()
				}
			}
		}
	}()
	if !o.noAudio {
		c.audio, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "whip-test")
		if err != nil {
			t.Fatal(err)
		}
		atr, err := pc.AddTransceiverFromTrack(c.audio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			t.Fatal(err)
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for {
				if _, _, err := atr.Sender().ReadRTCP(); err != nil {
					return
				}
			}
		}()
	}
	return c
}

func (c *client) close() {
	_ = c.pc.Close()
	c.wg.Wait()
}

func (c *client) pliTimes() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.plis...)
}

// offer makes the client's offer, with every candidate (gathered) or
// none (for trickle).
func (c *client) offer(t *testing.T, gathered bool) string {
	t.Helper()
	o, err := c.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	done := webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(o); err != nil {
		t.Fatal(err)
	}
	if !gathered {
		return o.SDP
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("client gathering timed out")
	}
	return c.pc.LocalDescription().SDP
}

type whipReply struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, url, key, ctype string, body []byte, hdr ...string) whipReply {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return whipReply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// publish POSTs the client's offer and applies the answer.
func (c *client) publish(t *testing.T, base, stream, key string, gathered bool) whipReply {
	t.Helper()
	r := do(t, http.MethodPost, base+"/whip/"+stream, key, typeSDP, []byte(c.offer(t, gathered)))
	if r.status != http.StatusCreated {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	c.location = r.header.Get("Location")
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: r.body}); err != nil {
		t.Fatalf("apply answer: %v", err)
	}
	return r
}

func (c *client) waitConnected(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.pc.ConnectionState() != webrtc.PeerConnectionStateConnected {
		if time.Now().After(deadline) {
			t.Fatalf("client not connected: %s", c.pc.ConnectionState())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed+1)) }

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
