package rtmpingest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/banyan-live/banyan/internal/av1test"
	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/av1"
	"github.com/banyan-live/banyan/media/flv"
)

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("config without callbacks accepted")
	}
}

func TestPublishFlowAndKick(t *testing.T) {
	h := newHarness(t, nil)
	c := dialClient(t, h.addr())
	code, err := c.publish("live", "k-cam")
	if err != nil || code != "NetStream.Publish.Start" {
		t.Fatalf("publish: %q, %v", code, err)
	}
	if live := h.srv.Live(); len(live) != 1 || live[0] != "cam" {
		t.Fatalf("Live() = %v", live)
	}
	// Metadata, headers, then media starting just below the point where
	// RTMP timestamps need the extended field, with frames big enough to
	// span many chunks: the extended timestamp is then repeated on every
	// continuation chunk, as ffmpeg writes it.
	meta := amf(nil).str("@setDataFrame").str("onMetaData")
	meta = append(meta, 0x08, 0, 0, 0, 1)
	meta = append(meta, 0, 5, 'w', 'i', 'd', 't', 'h')
	meta = meta.num(1280)
	meta = append(meta, 0, 0, 9)
	if err := c.cw.write(4, 0, 18, c.sid, meta); err != nil {
		t.Fatal(err)
	}
	const base = 0xffffff - 40
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.video(base, avcSeqHeader()))
	must(c.audio(base, aacSeqHeader()))
	for i := 0; i < 6; i++ {
		ts := uint32(base + i*33)
		must(c.video(ts, avcFrame(i == 0, 66, 20000)))
		must(c.audio(ts, aacRawFrame()))
	}
	var sink *recSink
	waitFor(t, 3*time.Second, "12 access units", func() bool {
		s := h.sinkList()
		if len(s) != 1 {
			return false
		}
		sink = s[0]
		v, a := sink.snapshot()
		return len(v) == 6 && len(a) == 6
	})
	if sink.pub.Stream != "cam" || sink.pub.ID == 0 || sink.pub.RemoteAddr == nil {
		t.Fatalf("publish info %+v", sink.pub)
	}
	v, a := sink.snapshot()
	for i := range v {
		want := time.Duration(i*33) * time.Millisecond
		if v[i].DTS != want || v[i].PTS != want+66*time.Millisecond || v[i].Key != (i == 0) || a[i].DTS != want {
			t.Fatalf("AU %d: video dts %v pts %v key %v, audio dts %v; want dts %v", i, v[i].DTS, v[i].PTS, v[i].Key, a[i].DTS, want)
		}
		if len(v[i].NALUs) != 1 || len(v[i].NALUs[0]) != 20000 || v[i].NALUs[0][19999] != byte(19999%256) {
			t.Fatalf("AU %d: NAL unit corrupted", i)
		}
	}
	sink.mu.Lock()
	if len(sink.vcfg) != 1 || !bytes.Equal(sink.vcfg[0].SPS, testSPS) || len(sink.acfg) != 1 || sink.acfg[0].SampleRate != 48000 ||
		len(sink.meta) != 1 || sink.meta[0].Width != 1280 {
		t.Fatalf("configs %+v %+v meta %+v", sink.vcfg, sink.acfg, sink.meta)
	}
	sink.mu.Unlock()

	// Revoking the key ends the publish from outside.
	if !h.srv.Kick("cam") {
		t.Fatal("Kick found no publish")
	}
	select {
	case err := <-sink.done:
		if !errors.Is(err, ErrKicked) {
			t.Fatalf("done(%v), want ErrKicked", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("done not called after Kick")
	}
	if !closedByServer(c.nc, 3*time.Second) {
		t.Fatal("kicked connection still open")
	}
	if h.srv.Kick("cam") || len(h.srv.Live()) != 0 {
		t.Fatal("stream still live after Kick")
	}
	waitFor(t, 2*time.Second, "connection log line", func() bool { return h.logs.count("rtmp: connection closed") == 1 })
	if h.logs.count("k-cam") != 0 {
		t.Fatal("the stream key appears in the log")
	}
}

func TestWrongKeyIsRefusedBeforeMedia(t *testing.T) {
	h := newHarness(t, nil)
	c := dialClient(t, h.addr())
	start := time.Now()
	code, err := c.publish("live", "wrong-secret")
	if err != nil || code != "NetStream.Publish.BadName" {
		t.Fatalf("publish with a bad key: %q, %v", code, err)
	}
	// Media sent anyway is never accepted, and the server hangs up.
	_ = c.video(0, avcSeqHeader())
	if !closedByServer(c.nc, 3*time.Second) {
		t.Fatal("connection left open after a refused key")
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("refusal took %v", time.Since(start))
	}
	if len(h.sinkList()) != 0 {
		t.Fatal("a sink was created for a refused key")
	}
	waitFor(t, 2*time.Second, "log line", func() bool { return h.logs.count("rtmp: connection closed") == 1 })
	if h.logs.count("stream key refused") != 1 || h.logs.count("wrong-secret") != 0 {
		t.Fatalf("log:\n%s", h.logs.String())
	}
}

func TestWrongAppIsRefused(t *testing.T) {
	h := newHarness(t, nil)
	c := dialClient(t, h.addr())
	if _, err := c.publish("admin", "k-cam"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("connect to app admin: %v", err)
	}
	if !closedByServer(c.nc, 3*time.Second) {
		t.Fatal("connection left open")
	}
	if len(h.sinkList()) != 0 {
		t.Fatal("sink created")
	}
}

func TestTakeOver(t *testing.T) {
	h := newHarness(t, nil)
	a := dialClient(t, h.addr())
	if code, err := a.publish("live", "k-cam"); code != "NetStream.Publish.Start" {
		t.Fatalf("first publish: %q %v", code, err)
	}
	waitFor(t, 2*time.Second, "first sink", func() bool { return len(h.sinkList()) == 1 })
	b := dialClient(t, h.addr())
	if code, err := b.publish("live", "k-cam"); code != "NetStream.Publish.Start" {
		t.Fatalf("second publish: %q %v", code, err)
	}
	sinks := h.sinkList()
	if len(sinks) != 2 {
		t.Fatalf("%d sinks", len(sinks))
	}
	// The old publish ended (ErrTakenOver) before the new sink existed.
	select {
	case err := <-sinks[0].done:
		if !errors.Is(err, ErrTakenOver) {
			t.Fatalf("old publish done(%v)", err)
		}
	default:
		t.Fatal("old publish still running when the new sink was created")
	}
	if sinks[1].pub.ID <= sinks[0].pub.ID {
		t.Fatalf("publish ids %d then %d", sinks[0].pub.ID, sinks[1].pub.ID)
	}
	if !closedByServer(a.nc, 3*time.Second) {
		t.Fatal("old connection still open")
	}
	if err := b.video(0, avcSeqHeader()); err != nil {
		t.Fatal(err)
	}
	if err := b.video(0, avcFrame(true, 0, 100)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "media on the new publish", func() bool {
		v, _ := sinks[1].snapshot()
		return len(v) == 1
	})
	if live := h.srv.Live(); len(live) != 1 {
		t.Fatalf("Live() = %v", live)
	}
}

func TestHostileConnections(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.HandshakeTimeout = 500 * time.Millisecond })
	dial := func() net.Conn {
		nc, err := net.DialTimeout("tcp", h.addr(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		return nc
	}
	garbage := make([]byte, 4096)
	_, _ = rand.Read(garbage)
	handshaken := func() *testClient {
		c := dialClient(t, h.addr())
		if err := c.handshake(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	cases := []struct {
		name string
		run  func() net.Conn
	}{
		{"random bytes", func() net.Conn {
			nc := dial()
			g := append([]byte{0x16}, garbage[1:]...) // a TLS ClientHello starts like this
			_, _ = nc.Write(g)
			return nc
		}},
		{"random bytes after a valid version byte", func() net.Conn {
			nc := dial()
			_, _ = nc.Write(append([]byte{3}, garbage[1:]...))
			return nc
		}},
		{"half handshake, then stall", func() net.Conn {
			nc := dial()
			_, _ = nc.Write(append([]byte{3}, make([]byte, 500)...))
			return nc
		}},
		{"nothing at all", dial},
		{"oversized chunk size", func() net.Conn {
			c := handshaken()
			_ = c.cw.write(2, 0, 1, 0, setChunkSizeMsg(0x7fffffff))
			return c.nc
		}},
		{"AMF bomb in connect", func() net.Conn {
			c := handshaken()
			_ = c.cw.write(3, 0, 20, 0, append(amf(nil).str("connect").num(1), 0x0a, 0x7f, 0xff, 0xff, 0xff))
			return c.nc
		}},
		{"connect, then never publish", func() net.Conn {
			c := handshaken()
			_, _ = c.command(3, 0, amf(nil).str("connect").num(1).obj("app", "live"), "_result")
			return c.nc
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			nc := tc.run()
			if !closedByServer(nc, 3*time.Second) {
				t.Fatal("server kept the connection")
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("closed after %v", d)
			}
		})
	}
	waitFor(t, 2*time.Second, "one log line per connection", func() bool {
		return h.logs.count("rtmp: connection closed") == len(cases)
	})
	if n := h.logs.count("level=WARN"); n != len(cases) {
		t.Fatalf("%d warnings for %d hostile connections:\n%s", n, len(cases), h.logs.String())
	}
	// The server is still serving.
	c := dialClient(t, h.addr())
	if code, err := c.publish("live", "k-cam"); code != "NetStream.Publish.Start" {
		t.Fatalf("publish after the attacks: %q %v", code, err)
	}
}

func TestPerIPLimit(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxConnsPerIP = 2 })
	var conns []net.Conn
	for i := 0; i < 3; i++ {
		nc, err := net.Dial("tcp", h.addr())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		conns = append(conns, nc)
	}
	start := time.Now()
	if !closedByServer(conns[2], time.Second) || time.Since(start) > 500*time.Millisecond {
		t.Fatal("third connection from one address not refused at once")
	}
	_ = conns[0].SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := conns[0].Read(make([]byte, 1)); err == nil || !isTimeout(err) {
		t.Fatalf("first connection: %v", err)
	}
	if h.logs.count("too many connections from this address") != 1 {
		t.Fatalf("log:\n%s", h.logs.String())
	}
	// A slot frees when a connection goes.
	conns[0].Close()
	waitFor(t, 2*time.Second, "slot freed", func() bool {
		h.srv.mu.Lock()
		defer h.srv.mu.Unlock()
		return h.srv.perIP.Count("127.0.0.1") == 1
	})
	c := dialClient(t, h.addr())
	if code, _ := c.publish("live", "k-x"); code != "NetStream.Publish.Start" {
		t.Fatalf("publish in the freed slot: %q", code)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestCloseEndsEverything(t *testing.T) {
	base := runtime.NumGoroutine()
	h := newHarness(t, nil)
	pub := dialClient(t, h.addr())
	if code, _ := pub.publish("live", "k-cam"); code != "NetStream.Publish.Start" {
		t.Fatalf("publish: %q", code)
	}
	idle := dialClient(t, h.addr())
	_ = idle.handshake()
	raw, err := net.Dial("tcp", h.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	waitFor(t, 2*time.Second, "3 connections", func() bool {
		h.srv.mu.Lock()
		defer h.srv.mu.Unlock()
		return len(h.srv.conns) == 3
	})
	start := time.Now()
	if err := h.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v", d)
	}
	select {
	case err := <-h.sinkList()[0].done:
		if !errors.Is(err, ErrServerClosed) {
			t.Fatalf("done(%v)", err)
		}
	default:
		t.Fatal("publish not ended by Close")
	}
	for _, nc := range []net.Conn{pub.nc, idle.nc, raw} {
		if !closedByServer(nc, time.Second) {
			t.Fatal("connection open after Close")
		}
	}
	if _, err := net.DialTimeout("tcp", h.addr(), 200*time.Millisecond); err == nil {
		t.Fatal("still accepting after Close")
	}
	pub.close()
	idle.close()
	// Every goroutine the server started is gone.
	waitFor(t, 2*time.Second, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= base+1 })
}

func TestServeStopsOnContextCancel(t *testing.T) {
	srv, err := New(Config{
		Addr:      "127.0.0.1:0",
		Authorize: func(context.Context, string) (Grant, error) { return Grant{}, errors.New("no") },
		NewSink: func(context.Context, Publish) (media.Sink, func(error), error) {
			return nil, nil, errors.New("no")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	waitFor(t, 2*time.Second, "listening", func() bool { return srv.Addr() != nil })
	nc, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve did not return")
	}
	if !closedByServer(nc, time.Second) {
		t.Fatal("connection open after shutdown")
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(context.Background()); err == nil {
		t.Fatal("Serve after Close succeeded")
	}
}

func TestIdleTimeoutEndsPublish(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.IdleTimeout = 300 * time.Millisecond })
	c := dialClient(t, h.addr())
	if code, _ := c.publish("live", "k-cam"); code != "NetStream.Publish.Start" {
		t.Fatalf("publish: %q", code)
	}
	waitFor(t, 2*time.Second, "sink", func() bool { return len(h.sinkList()) == 1 })
	select {
	case err := <-h.sinkList()[0].done:
		if err == nil || !strings.Contains(err.Error(), "timeout") {
			t.Fatalf("done(%v), want a timeout", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("stalled publish not ended")
	}
}

// TestUnsupportedAudioGoesOnVideoOnly: OBS sends MP3 (classic FLV) or Opus
// (enhanced RTMP) when its audio encoder is set so. That used to end the
// publish ("unsupported audio codec") and OBS reconnected in a loop. Now,
// as for AV1 video, the audio is dropped, the H.264 video flows and is
// packaged as a video-only CMAF stream, the connection stays open and the
// sink (the seeder: dashboard, publish page) is told once however many
// audio packets come.
func TestUnsupportedAudioGoesOnVideoOnly(t *testing.T) {
	for _, tc := range []struct {
		name, codec string
		header, raw []byte // header nil: none
	}{
		{name: "MP3", codec: "audio MP3", raw: []byte{0x2f, 0xff, 0xfb, 0x90, 0x64, 0x00}},
		{name: "enhanced Opus", codec: "audio Opus (enhanced RTMP)",
			// SequenceStart with an OpusHead, then CodedFrames.
			header: append([]byte{0x90}, "OpusOpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00"...),
			raw:    append([]byte{0x91}, "Opus\xf8\xff\xfe"...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			c := dialClient(t, h.addr())
			if code, _ := c.publish("live", "k-cam"); code != "NetStream.Publish.Start" {
				t.Fatalf("publish: %q", code)
			}
			if err := c.video(0, avcSeqHeader()); err != nil {
				t.Fatal(err)
			}
			if tc.header != nil {
				if err := c.audio(0, tc.header); err != nil {
					t.Fatal(err)
				}
			}
			const frames = 150 // 5 s at 30 fps, a keyframe a second; 2 audio packets a frame
			for i := range frames {
				ts := uint32(i * 1000 / 30)
				if err := c.video(ts, avcFrame(i%30 == 0, 0, 200)); err != nil {
					t.Fatal(err)
				}
				for j := range 2 {
					if err := c.audio(ts+uint32(j*16), tc.raw); err != nil {
						t.Fatal(err)
					}
				}
			}
			s := h.waitForAUs(media.Video, frames, 5*time.Second)
			stillPublishing(t, s, c)
			v, a := s.snapshot()
			s.mu.Lock()
			unsupported, vcfg, acfg := s.unsupported, s.vcfg, s.acfg
			s.mu.Unlock()
			if len(a) != 0 || len(acfg) != 0 || len(vcfg) != 1 {
				t.Fatalf("%d audio frames, %d audio and %d video configs", len(a), len(acfg), len(vcfg))
			}
			if len(unsupported) != 1 || unsupported[0] != tc.codec {
				t.Fatalf("reported %q, want once %q", unsupported, tc.codec)
			}
			if n := h.logs.count("unsupported audio codec"); n != 1 {
				t.Fatalf("%d log lines about the codec, want 1:\n%s", n, h.logs.String())
			}

			// What the sink got packages as a video-only CMAF stream.
			inits, chunks, _ := packageCMAF(t, &vcfg[0], nil, v)
			if len(inits) != 1 || inits[0].AudioCodec != "" || !strings.HasPrefix(inits[0].VideoCodec, "avc1.") {
				t.Fatalf("inits %+v, want one video-only", inits)
			}
			var dur time.Duration
			keys := 0
			for _, ch := range chunks {
				dur += ch.Duration
				if ch.Keyframe {
					keys++
				}
			}
			if keys != frames/30 || dur < 4900*time.Millisecond {
				t.Fatalf("%d chunks, %d starting at a keyframe, %v of video; want %d, ~5 s", len(chunks), keys, dur, frames/30)
			}
		})
	}
}

// TestNothingPlayableEndsPublish: VP9 video and MP3 audio leave nothing to
// play: the publish ends with both codecs named (the broadcaster sees the
// error, as before the unsupported tracks were dropped one by one).
func TestNothingPlayableEndsPublish(t *testing.T) {
	h := newHarness(t, nil)
	c := dialClient(t, h.addr())
	if code, _ := c.publish("live", "k-cam"); code != "NetStream.Publish.Start" {
		t.Fatalf("publish: %q", code)
	}
	if err := c.video(0, append([]byte{0x90}, "vp09\x01\x00\x00\x00"...)); err != nil {
		t.Fatal(err)
	}
	if err := c.audio(0, []byte{0x2f, 0xff, 0xfb, 0x90}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "sink", func() bool { return len(h.sinkList()) == 1 })
	select {
	case err := <-h.sinkList()[0].done:
		if !errors.Is(err, flv.ErrNothingPlayable) || !strings.Contains(err.Error(), "VP9") || !strings.Contains(err.Error(), "MP3") {
			t.Fatalf("done(%v), want nothing playable naming VP9 and MP3", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("publish not ended")
	}
	if !closedByServer(c.nc, 2*time.Second) {
		t.Fatal("connection left open")
	}
}

// TestVP9PublishGoesOnAudioOnly: enhanced RTMP can carry VP9, which the
// packager does not take. It used to end the publish ("unsupported video
// codec"), and the encoder reconnected every few seconds for ever. Now the
// video is dropped, the audio flows, the connection stays open and the
// sink (the seeder, which shows it on the dashboard) is told once.
func TestVP9PublishGoesOnAudioOnly(t *testing.T) {
	h := newHarness(t, nil)
	c := dialClient(t, h.addr())
	if code, _ := c.publish("live", "k-cam"); code != "NetStream.Publish.Start" {
		t.Fatalf("publish: %q", code)
	}
	// vpcC version 1, then an arbitrary coded frame.
	vp9Start := append([]byte{0x90}, "vp09\x01\x00\x00\x00\x00\x0a\x80\x02\x02\x02\x00\x00"...)
	vp9Frame := append([]byte{0x91}, "vp09\x82\x49\x83\x42\x00"...)
	if err := c.video(0, vp9Start); err != nil {
		t.Fatal(err)
	}
	if err := c.audio(0, aacSeqHeader()); err != nil {
		t.Fatal(err)
	}
	const frames = 50
	for i := range frames {
		ts := uint32(i * 21)
		if err := c.video(ts, vp9Frame); err != nil {
			t.Fatal(err)
		}
		if err := c.audio(ts, aacRawFrame()); err != nil {
			t.Fatal(err)
		}
	}
	s := h.waitForAUs(media.Audio, frames, 3*time.Second)
	v, _ := s.snapshot()
	s.mu.Lock()
	unsupported := s.unsupported
	s.mu.Unlock()
	if len(v) != 0 || len(unsupported) != 1 || !strings.Contains(unsupported[0], "VP9") {
		t.Fatalf("%d video AUs, reported %q", len(v), unsupported)
	}
	stillPublishing(t, s, c)
	if n := h.logs.count("unsupported video codec"); n != 1 {
		t.Fatalf("%d log lines about the codec, want 1:\n%s", n, h.logs.String())
	}
}

// TestAV1PublishIsCarried: OBS 30+ sends AV1 over enhanced RTMP. It used
// to be dropped (the publish went on audio-only, with advice). Now a real
// SVT-AV1 stream, sent as OBS sends it (an av1C sequence start, then one
// temporal unit per message), reaches the sink whole beside its audio.
func TestAV1PublishIsCarried(t *testing.T) {
	h := newHarness(t, nil)
	c := dialClient(t, h.addr())
	if code, _ := c.publish("live", "k-cam"); code != "NetStream.Publish.Start" {
		t.Fatalf("publish: %q", code)
	}
	cfg := av1test.Config(t)
	rec := av1.AppendSample([]byte{0x81, 0x00, 0x0c, 0x00}, [][]byte{cfg.SeqHeader})
	if err := c.video(0, append(append([]byte{0x90}, "av01"...), rec...)); err != nil {
		t.Fatal(err)
	}
	if err := c.audio(0, aacSeqHeader()); err != nil {
		t.Fatal(err)
	}
	tus := av1test.TUs(t)
	for i, tu := range tus {
		head := byte(0xa1) // inter frame, coded frames
		if i%av1test.KeyEvery == 0 {
			head = 0x91
		}
		if err := c.video(uint32(i*33), append(append([]byte{head}, "av01"...), tu...)); err != nil {
			t.Fatal(err)
		}
		if err := c.audio(uint32(i*33), aacRawFrame()); err != nil {
			t.Fatal(err)
		}
	}
	s := h.waitForAUs(media.Video, len(tus), 3*time.Second)
	v, _ := s.snapshot()
	keys := 0
	for _, au := range v {
		if au.Key {
			keys++
		}
	}
	s.mu.Lock()
	unsupported := s.unsupported
	s.mu.Unlock()
	if len(v) != len(tus) || keys != len(tus)/av1test.KeyEvery || len(unsupported) != 0 {
		t.Fatalf("%d video AUs (%d key), reported %q", len(v), keys, unsupported)
	}
	stillPublishing(t, s, c)
}

func TestHealthCheckProbeLogsAtDebug(t *testing.T) {
	h := newHarness(t, nil)
	nc, err := net.Dial("tcp", h.addr())
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	waitFor(t, 2*time.Second, "log line", func() bool { return h.logs.count("rtmp: connection closed") == 1 })
	if h.logs.count("level=DEBUG") != 1 || h.logs.count("level=WARN") != 0 {
		t.Fatalf("log:\n%s", h.logs.String())
	}
}

func TestPublishStopEndsOnlyThatPublish(t *testing.T) {
	h := newHarness(t, nil)
	a := dialClient(t, h.addr())
	if code, _ := a.publish("live", "k-one"); code != "NetStream.Publish.Start" {
		t.Fatalf("publish: %q", code)
	}
	b := dialClient(t, h.addr())
	if code, _ := b.publish("live", "k-two"); code != "NetStream.Publish.Start" {
		t.Fatalf("publish: %q", code)
	}
	waitFor(t, 2*time.Second, "sinks", func() bool { return len(h.sinkList()) == 2 })
	s := h.sinkList()
	s[0].pub.Stop()
	s[0].pub.Stop()
	select {
	case err := <-s[0].done:
		if !errors.Is(err, ErrKicked) {
			t.Fatalf("done(%v)", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Stop did not end the publish")
	}
	if live := h.srv.Live(); len(live) != 1 || live[0] != "two" {
		t.Fatalf("Live() = %v", live)
	}
	if closedByServer(b.nc, 200*time.Millisecond) {
		t.Fatal("the other publish was closed too")
	}
}

// v6Conn is one end of a pipe that claims to come from addr.
type v6Conn struct {
	net.Conn
	addr net.Addr
}

func (c v6Conn) RemoteAddr() net.Addr { return c.addr }

// TestPerIPLimitGroupsIPv6 (issue 18 #7): RTMP connections from addresses
// of one IPv6 /64 share MaxConnsPerIP. Before the fix the third address
// of the /64 got its own budget and was served.
func TestPerIPLimitGroupsIPv6(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxConnsPerIP = 2 })
	var clients []net.Conn
	for _, a := range []string{"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3", "2001:db8:1:3::1"} {
		server, client := net.Pipe()
		defer client.Close()
		clients = append(clients, client)
		h.srv.handle(v6Conn{Conn: server, addr: &net.TCPAddr{IP: net.ParseIP(a), Port: 1935}})
	}
	if !closedByServer(clients[2], time.Second) {
		t.Fatal("third connection from one /64 not refused")
	}
	for _, i := range []int{0, 1, 3} {
		_ = clients[i].SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := clients[i].Read(make([]byte, 1)); !isTimeout(err) {
			t.Fatalf("connection %d: %v, want it open", i, err)
		}
	}
	if n := h.srv.perIP.Count("2001:db8:1:2::/64"); n != 2 {
		t.Fatalf("/64 holds %d, want 2", n)
	}
}
