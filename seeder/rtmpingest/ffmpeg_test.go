package rtmpingest

import (
	"context"
	"crypto/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/banyan-live/banyan/internal/e2e"
	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/avc"
)

func ffmpegPublish(ctx context.Context, bin, url string) *exec.Cmd {
	return ffmpegPublishAudio(ctx, bin, url, "-c:a", "aac", "-b:a", "128k")
}

// ffmpegPublishAudio publishes 4 s of H.264 and a sine tone encoded with
// the given audio options.
func ffmpegPublishAudio(ctx context.Context, bin, url string, audio ...string) *exec.Cmd {
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "4", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-profile:v", "main", "-bf", "2", "-g", "30"}
	args = append(append(args, audio...), "-f", "flv", url)
	return exec.CommandContext(ctx, bin, args...)
}

// TestFFmpegPublish: garbage and a stalled half handshake on the port, then
// a real ffmpeg publish with B-frames and AAC, checked frame by frame.
func TestFFmpegPublish(t *testing.T) {
	bin := e2e.Require(t, "ffmpeg")
	h := newHarness(t, func(c *Config) { c.HandshakeTimeout = time.Second })

	junk := make([]byte, 4096)
	_, _ = rand.Read(junk)
	junk[0] = 0x16
	g, err := net.Dial("tcp", h.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	_, _ = g.Write(junk)
	half, err := net.Dial("tcp", h.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	_, _ = half.Write(append([]byte{3}, junk[:700]...)) // and then nothing

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := ffmpegPublish(ctx, bin, "rtmp://"+h.addr()+"/live/k-e2e")
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	t.Logf("ffmpeg ran %v", time.Since(start).Round(time.Millisecond))
	if !closedByServer(g, time.Second) || !closedByServer(half, time.Second) {
		t.Fatal("hostile connections still open")
	}

	s := h.endedCleanly()
	if s.pub.Stream != "e2e" {
		t.Fatalf("stream %q", s.pub.Stream)
	}

	s.mu.Lock()
	vcfg, acfg, meta := s.vcfg, s.acfg, s.meta
	s.mu.Unlock()
	if len(vcfg) != 1 || len(acfg) != 1 {
		t.Fatalf("%d video and %d audio configs", len(vcfg), len(acfg))
	}
	var sps h264.SPS
	if err := sps.Unmarshal(vcfg[0].SPS); err != nil || sps.Width() != 640 || sps.Height() != 360 {
		t.Fatalf("SPS: %v %dx%d", err, sps.Width(), sps.Height())
	}
	if cs, _ := avc.CodecString(vcfg[0].SPS); !strings.HasPrefix(cs, "avc1.4D") {
		t.Fatalf("codec %s, want main profile", cs)
	}
	if acfg[0].Codec != media.AAC || acfg[0].SampleRate != 48000 || acfg[0].Channels != 1 {
		t.Fatalf("audio config %+v", acfg[0])
	}
	if len(meta) == 0 || meta[0].Width != 640 || meta[0].Height != 360 || meta[0].FrameRate != 30 {
		t.Fatalf("metadata %+v", meta)
	}

	v, a := s.snapshot()
	t.Logf("%d video AUs, %d audio frames; video DTS %v..%v, audio DTS %v..%v",
		len(v), len(a), v[0].DTS, v[len(v)-1].DTS, a[0].DTS, a[len(a)-1].DTS)
	if len(v) < 118 || len(v) > 121 {
		t.Fatalf("%d video AUs, want ~120", len(v))
	}
	if len(a) < 184 || len(a) > 191 {
		t.Fatalf("%d AAC frames, want ~187", len(a))
	}
	var keys []int
	bframes := 0
	for i, au := range v {
		if au.Key {
			keys = append(keys, i)
		}
		if au.PTS > au.DTS {
			bframes++
		}
		if i > 0 && au.DTS <= v[i-1].DTS {
			t.Fatalf("video DTS not increasing at %d: %v after %v", i, au.DTS, v[i-1].DTS)
		}
		if au.PTS < au.DTS {
			t.Fatalf("video %d: PTS %v before DTS %v", i, au.PTS, au.DTS)
		}
		if len(au.NALUs) == 0 {
			t.Fatalf("video %d has no NAL units", i)
		}
	}
	for i := 1; i < len(a); i++ {
		if a[i].DTS <= a[i-1].DTS {
			t.Fatalf("audio DTS not increasing at %d", i)
		}
	}
	if len(keys) != 4 || keys[0] != 0 || keys[1] != 30 || keys[2] != 60 || keys[3] != 90 {
		t.Fatalf("keyframes at %v, want every 30 frames from 0", keys)
	}
	if bframes == 0 {
		t.Fatal("no PTS > DTS: B-frames lost their composition offsets")
	}
	// A/V alignment: both tracks start and end together.
	for _, d := range []time.Duration{v[0].DTS - a[0].DTS, v[len(v)-1].PTS - a[len(a)-1].DTS} {
		if d < -100*time.Millisecond || d > 100*time.Millisecond {
			t.Fatalf("A/V misaligned by %v", d)
		}
	}
	// Audio frames are 1024 samples at 48 kHz: 21.33 ms apart on average.
	if span := a[len(a)-1].DTS - a[0].DTS; span < time.Duration(len(a)-2)*21*time.Millisecond || span > time.Duration(len(a))*22*time.Millisecond {
		t.Fatalf("audio span %v for %d frames", span, len(a))
	}
	if n := h.logs.count("rtmp: connection closed"); n != 3 {
		t.Fatalf("%d connection log lines, want 3 (junk, half handshake, ffmpeg)", n)
	}
}

// TestFFmpegMP3PublishPlaysVideoOnly: ffmpeg's FLV output with MP3 audio
// (what OBS sends with an MP3 audio encoder): the publish runs to its end
// with the audio refused once, and the video it carried packages into a
// video-only fragmented MP4 that ffmpeg decodes frame for frame.
func TestFFmpegMP3PublishPlaysVideoOnly(t *testing.T) {
	bin := e2e.Require(t, "ffmpeg")
	ffprobe := e2e.Require(t, "ffprobe")
	h := newHarness(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := ffmpegPublishAudio(ctx, bin, "rtmp://"+h.addr()+"/live/k-mp3", "-c:a", "libmp3lame", "-ar", "44100", "-b:a", "128k")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	s := h.endedCleanly()
	v, a := s.snapshot()
	s.mu.Lock()
	vcfg, unsupported := s.vcfg, s.unsupported
	s.mu.Unlock()
	if len(v) < 118 || len(a) != 0 || len(vcfg) != 1 || len(unsupported) != 1 || unsupported[0] != "audio MP3" {
		t.Fatalf("%d video AUs, %d audio frames, %d video configs, reported %q", len(v), len(a), len(vcfg), unsupported)
	}

	inits, _, mp4 := packageCMAF(t, &vcfg[0], nil, v)
	if len(inits) != 1 || inits[0].AudioCodec != "" || inits[0].Width != 640 {
		t.Fatalf("inits %+v, want one video-only 640x360", inits)
	}
	out := filepath.Join(t.TempDir(), "video-only.mp4")
	if err := os.WriteFile(out, mp4, 0o644); err != nil {
		t.Fatal(err)
	}
	got := e2e.FrameCounts(t, ctx, ffprobe, out)
	if len(got) != 1 || got["video/h264"] != strconv.Itoa(len(v)) {
		t.Fatalf("ffprobe read %v, want only video/h264: %d", got, len(v))
	}
	if msg, err := exec.CommandContext(ctx, bin, "-v", "error", "-nostdin", "-i", out, "-f", "null", "-").CombinedOutput(); err != nil || len(msg) != 0 {
		t.Fatalf("ffmpeg decode: %v %s", err, msg)
	}
	t.Logf("%d video frames decoded from the video-only MP4 (%s)", len(v), inits[0].MIME())
}

func TestFFmpegWrongKey(t *testing.T) {
	bin := e2e.Require(t, "ffmpeg")
	h := newHarness(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	out, err := ffmpegPublish(ctx, bin, "rtmp://"+h.addr()+"/live/not-a-key").CombinedOutput()
	took := time.Since(start)
	if err == nil {
		t.Fatalf("ffmpeg succeeded with a wrong key:\n%s", out)
	}
	if ctx.Err() != nil || took > 5*time.Second {
		t.Fatalf("ffmpeg took %v to fail", took)
	}
	t.Logf("ffmpeg failed in %v: %s", took.Round(time.Millisecond), strings.TrimSpace(string(out)))
	if len(h.sinkList()) != 0 {
		t.Fatal("sink created for a wrong key")
	}
}
