package rtmpingest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	rtmp "github.com/yutopp/go-rtmp"
	"github.com/yutopp/go-rtmp/message"

	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/cmaf"
	"github.com/banyan-live/banyan/media/flv"
)

// ---- AMF0 encoding for handcrafted commands ----

type amf []byte

func (a amf) str(s string) amf {
	a = append(a, 0x02, byte(len(s)>>8), byte(len(s)))
	return append(a, s...)
}
func (a amf) num(f float64) amf {
	a = append(a, 0x00)
	return binary.BigEndian.AppendUint64(a, math.Float64bits(f))
}
func (a amf) null() amf { return append(a, 0x05) }

// obj appends an object of string properties given as key, value pairs.
func (a amf) obj(kv ...string) amf {
	a = append(a, 0x03)
	for i := 0; i+1 < len(kv); i += 2 {
		a = append(a, byte(len(kv[i])>>8), byte(len(kv[i])))
		a = append(a, kv[i]...)
		a = a.str(kv[i+1])
	}
	return append(a, 0, 0, 0x09)
}

// ---- chunk encoding, the way ffmpeg and librtmp write it ----

// chunkWriter writes messages as a type-0 chunk plus type-3 continuations,
// repeating an extended timestamp on continuations like ffmpeg does.
type chunkWriter struct {
	w         io.Writer
	chunkSize int
}

func basicHeader(fmtType byte, csid uint32) []byte {
	switch {
	case csid < 64:
		return []byte{fmtType<<6 | byte(csid)}
	case csid < 320:
		return []byte{fmtType << 6, byte(csid - 64)}
	}
	return []byte{fmtType<<6 | 1, byte((csid - 64) & 0xff), byte((csid - 64) >> 8)}
}

func (cw *chunkWriter) message(csid, ts uint32, typ byte, msid uint32, payload []byte) []byte {
	var b []byte
	b = append(b, basicHeader(0, csid)...)
	tsField := min(ts, 0xffffff)
	b = append(b, byte(tsField>>16), byte(tsField>>8), byte(tsField),
		byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload)), typ)
	b = binary.LittleEndian.AppendUint32(b, msid)
	if tsField == 0xffffff {
		b = binary.BigEndian.AppendUint32(b, ts)
	}
	cs := cw.chunkSize
	if cs == 0 {
		cs = 128
	}
	for off := 0; off < len(payload); off += cs {
		if off > 0 {
			b = append(b, basicHeader(3, csid)...)
			if tsField == 0xffffff {
				b = binary.BigEndian.AppendUint32(b, ts)
			}
		}
		b = append(b, payload[off:min(off+cs, len(payload))]...)
	}
	return b
}

func (cw *chunkWriter) write(csid, ts uint32, typ byte, msid uint32, payload []byte) error {
	_, err := cw.w.Write(cw.message(csid, ts, typ, msid, payload))
	return err
}

func setChunkSizeMsg(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

// ---- media test vectors ----

var (
	testSPS = []byte{0x67, 0x4d, 0x40, 0x1e, 0xec, 0xa0, 0x50, 0x17, 0xfc, 0xb8, 0x08, 0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x1e, 0x07, 0x8b, 0x16, 0xcb}
	testPPS = []byte{0x68, 0xeb, 0xe3, 0xcb, 0x20}
)

func avcSeqHeader() []byte {
	b := []byte{0x17, 0, 0, 0, 0, 1, 0x4d, 0x40, 0x1e, 0xff, 0xe1, 0, byte(len(testSPS))}
	b = append(b, testSPS...)
	b = append(b, 1, 0, byte(len(testPPS)))
	return append(b, testPPS...)
}

// avcFrame is a video tag with one NAL unit of size n (IDR when key).
func avcFrame(key bool, cts int32, n int) []byte {
	ft, nt := byte(0x27), byte(0x41)
	if key {
		ft, nt = 0x17, 0x65
	}
	b := []byte{ft, 1, byte(cts >> 16), byte(cts >> 8), byte(cts)}
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	nal := make([]byte, n)
	nal[0] = nt
	for i := 1; i < n; i++ {
		nal[i] = byte(i)
	}
	return append(b, nal...)
}

func aacSeqHeader() []byte { return []byte{0xaf, 0, 0x11, 0x90} }
func aacRawFrame() []byte  { return []byte{0xaf, 1, 0x21, 0x10, 0x04, 0x60, 0x8c, 0x1c} }

// ---- a recording sink and the callbacks that create it ----

type recSink struct {
	mu    sync.Mutex
	pub   Publish
	vcfg  []media.VideoConfig
	acfg  []media.AudioConfig
	aus   []media.AccessUnit
	meta  []flv.Metadata
	done  chan error
	endAt time.Time

	unsupported []string
}

func (s *recSink) Unsupported(kind media.Kind, codec string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unsupported = append(s.unsupported, kind.String()+" "+codec)
}

func (s *recSink) VideoConfig(c media.VideoConfig) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vcfg = append(s.vcfg, c)
	return nil
}
func (s *recSink) AudioConfig(c media.AudioConfig) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acfg = append(s.acfg, c)
	return nil
}
func (s *recSink) WriteAU(au media.AccessUnit) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.aus = append(s.aus, au)
	return nil
}
func (s *recSink) Metadata(m flv.Metadata) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.meta = append(s.meta, m)
	return nil
}

func (s *recSink) snapshot() (v, a []media.AccessUnit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, au := range s.aus {
		if au.Kind == media.Video {
			v = append(v, au)
		} else {
			a = append(a, au)
		}
	}
	return v, a
}

// harness runs a Server on 127.0.0.1:0 whose keys map "k-<name>" to
// "<name>" and whose sinks are recorded.
type harness struct {
	t     *testing.T
	srv   *Server
	logs  *logBuffer
	mu    sync.Mutex
	sinks []*recSink
	serve chan error
}

func newHarness(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, logs: &logBuffer{}, serve: make(chan error, 1)}
	cfg := Config{
		Addr: "127.0.0.1:0",
		Authorize: func(ctx context.Context, key string) (Grant, error) {
			if name, ok := strings.CutPrefix(key, "k-"); ok && name != "" {
				return Grant{Stream: name}, nil
			}
			return Grant{}, errors.New("unknown key")
		},
		NewSink: func(ctx context.Context, p Publish) (media.Sink, func(error), error) {
			s := &recSink{pub: p, done: make(chan error, 1)}
			h.mu.Lock()
			h.sinks = append(h.sinks, s)
			h.mu.Unlock()
			return s, func(err error) {
				s.mu.Lock()
				s.endAt = time.Now()
				s.mu.Unlock()
				s.done <- err
			}, nil
		},
		Logger:           slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		HandshakeTimeout: 2 * time.Second,
		IdleTimeout:      5 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	go func() { h.serve <- srv.Serve(context.Background()) }()
	t.Cleanup(func() {
		_ = srv.Close()
		select {
		case err := <-h.serve:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", h.logs.String())
		}
	})
	return h
}

func (h *harness) addr() string { return h.srv.Addr().String() }

func (h *harness) sinkList() []*recSink {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*recSink(nil), h.sinks...)
}

// waitForAUs waits up to d for the one sink to have n access units of
// kind and returns it.
func (h *harness) waitForAUs(kind media.Kind, n int, d time.Duration) *recSink {
	h.t.Helper()
	waitFor(h.t, d, fmt.Sprintf("%d %v access units", n, kind), func() bool {
		s := h.sinkList()
		if len(s) != 1 {
			return false
		}
		v, a := s[0].snapshot()
		if kind == media.Video {
			return len(v) == n
		}
		return len(a) == n
	})
	return h.sinkList()[0]
}

// endedCleanly returns the one sink once its publish has ended, failing
// unless it ended without an error within 3 s.
func (h *harness) endedCleanly() *recSink {
	h.t.Helper()
	sinks := h.sinkList()
	if len(sinks) != 1 {
		h.t.Fatalf("%d sinks", len(sinks))
	}
	select {
	case err := <-sinks[0].done:
		if err != nil {
			h.t.Fatalf("the publish ended with %v", err)
		}
	case <-time.After(3 * time.Second):
		h.t.Fatal("publish not ended after the client left")
	}
	return sinks[0]
}

// stillPublishing fails if s's publish ended or the server closed c.
func stillPublishing(t *testing.T, s *recSink, c *testClient) {
	t.Helper()
	select {
	case err := <-s.done:
		t.Fatalf("publish ended: %v", err)
	default:
	}
	if closedByServer(c.nc, 200*time.Millisecond) {
		t.Fatal("the server closed the connection")
	}
}

// packageCMAF runs what a sink got through the CMAF packager (as the
// seeder does) and returns its inits, chunks and the whole fragmented MP4.
func packageCMAF(t *testing.T, vcfg *media.VideoConfig, acfg *media.AudioConfig, aus []media.AccessUnit) ([]cmaf.Init, []cmaf.Chunk, []byte) {
	t.Helper()
	var inits []cmaf.Init
	var chunks []cmaf.Chunk
	var mp4 []byte
	pkg, err := cmaf.New(cmaf.Config{
		OnInit:  func(i cmaf.Init) error { inits = append(inits, i); mp4 = append(mp4, i.Data...); return nil },
		OnChunk: func(c cmaf.Chunk) error { chunks = append(chunks, c); mp4 = append(mp4, c.Data...); return nil },
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err == nil && vcfg != nil {
		err = pkg.VideoConfig(*vcfg)
	}
	if err == nil && acfg != nil {
		err = pkg.AudioConfig(*acfg)
	}
	for _, au := range aus {
		if err == nil {
			err = pkg.WriteAU(au)
		}
	}
	if err == nil {
		err = pkg.Flush()
	}
	if err != nil {
		t.Fatal(err)
	}
	return inits, chunks, mp4
}

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
func (l *logBuffer) count(sub string) int { return strings.Count(l.String(), sub) }

// ---- a minimal RTMP publisher for tests that need no ffmpeg ----

type testClient struct {
	t   *testing.T
	nc  net.Conn
	cw  *chunkWriter
	cs  *rtmp.ChunkStreamer
	sid uint32
}

func dialClient(t *testing.T, addr string) *testClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := &testClient{t: t, nc: nc, cw: &chunkWriter{w: nc, chunkSize: 128}}
	t.Cleanup(func() { c.close() })
	return c
}

func (c *testClient) close() {
	_ = c.nc.Close()
	if c.cs != nil {
		_ = c.cs.Close()
		c.cs = nil
	}
}

func (c *testClient) handshake() error {
	_ = c.nc.SetDeadline(time.Now().Add(3 * time.Second))
	c0c1 := make([]byte, 1+1536)
	c0c1[0] = 3
	if _, err := c.nc.Write(c0c1); err != nil {
		return err
	}
	s := make([]byte, 1+1536+1536)
	if _, err := io.ReadFull(c.nc, s); err != nil {
		return fmt.Errorf("read S0S1S2: %w", err)
	}
	if _, err := c.nc.Write(s[1 : 1+1536]); err != nil { // C2 echoes S1
		return err
	}
	c.cs = rtmp.NewChunkStreamer(c.nc, io.Discard, nil)
	return nil
}

// command sends an AMF0 command and returns the values of the first
// reply named want (e.g. "_result", "onStatus").
func (c *testClient) command(csid, msid uint32, body amf, want string) ([]any, error) {
	if err := c.cw.write(csid, 0, 20, msid, body); err != nil {
		return nil, err
	}
	if want == "" {
		return nil, nil
	}
	return c.await(want)
}

func (c *testClient) await(want string) ([]any, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	for i := 0; i < 50; i++ {
		var cm rtmp.ChunkMessage
		if _, _, err := c.cs.Read(&cm); err != nil {
			return nil, err
		}
		cmd, ok := cm.Message.(*message.CommandMessage)
		if !ok {
			if sc, ok := cm.Message.(*message.SetChunkSize); ok {
				_ = c.cs.PeerState().SetChunkSize(sc.ChunkSize)
			}
			continue
		}
		body, _ := io.ReadAll(cmd.Body)
		vals, err := flv.DecodeAMF0(body)
		if err != nil {
			return nil, fmt.Errorf("reply %s: %w", cmd.CommandName, err)
		}
		if cmd.CommandName == want || cmd.CommandName == "_error" {
			return append([]any{cmd.CommandName}, vals...), nil
		}
	}
	return nil, errors.New("no reply")
}

// statusCode digs the "code" out of an onStatus or _result reply.
func statusCode(vals []any) string {
	for _, v := range vals {
		if m, ok := v.(map[string]any); ok {
			if code, ok := m["code"].(string); ok {
				return code
			}
		}
	}
	return ""
}

// publish runs connect, createStream and publish; it returns the onStatus
// code of the publish.
func (c *testClient) publish(app, key string) (string, error) {
	if err := c.handshake(); err != nil {
		return "", err
	}
	res, err := c.command(3, 0, amf(nil).str("connect").num(1).obj("app", app, "type", "nonprivate", "tcUrl", "rtmp://127.0.0.1/"+app), "_result")
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	if res[0] != "_result" {
		return statusCode(res), fmt.Errorf("connect refused: %v", res)
	}
	res, err = c.command(3, 0, amf(nil).str("createStream").num(2).null(), "_result")
	if err != nil {
		return "", fmt.Errorf("createStream: %w", err)
	}
	id, ok := res[len(res)-1].(float64)
	if !ok {
		return "", fmt.Errorf("createStream reply %v", res)
	}
	c.sid = uint32(id)
	res, err = c.command(8, c.sid, amf(nil).str("publish").num(0).null().str(key).str("live"), "onStatus")
	if err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	return statusCode(res), nil
}

func (c *testClient) video(ts uint32, body []byte) error { return c.cw.write(6, ts, 9, c.sid, body) }
func (c *testClient) audio(ts uint32, body []byte) error { return c.cw.write(4, ts, 8, c.sid, body) }

// closedByServer reports whether the server closes the connection within d.
func closedByServer(nc net.Conn, d time.Duration) bool {
	_ = nc.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 4096)
	for {
		_, err := nc.Read(buf)
		if err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
	}
}
