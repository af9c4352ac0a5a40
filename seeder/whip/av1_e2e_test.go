package whip

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	pmedia "github.com/pion/webrtc/v4/pkg/media"

	"github.com/banyan-live/banyan/internal/av1test"
	"github.com/banyan-live/banyan/internal/e2e"
)

// streamTUs paces AV1 temporal units at 30 fps, with numbered 20 ms Opus
// frames alongside when the client has audio, as a WebRTC encoder would.
func streamTUs(t *testing.T, c *client, tus [][]byte) {
	t.Helper()
	const vdur, adur = time.Second / 30, 20 * time.Millisecond
	start := time.Now()
	total := time.Duration(len(tus)) * vdur
	nv, na := 0, 0
	for nv < len(tus) || (c.audio != nil && time.Duration(na)*adur < total) {
		nextV := start.Add(time.Duration(nv) * vdur)
		nextA := start.Add(time.Duration(na) * adur)
		audioDue := c.audio != nil && time.Duration(na)*adur < total && (nv >= len(tus) || nextA.Before(nextV))
		if audioDue {
			time.Sleep(time.Until(nextA))
			if err := c.audio.WriteSample(pmedia.Sample{Data: []byte{0xf8, byte(na >> 8), byte(na)}, Duration: adur}); err != nil {
				t.Fatalf("write audio: %v", err)
			}
			na++
			continue
		}
		time.Sleep(time.Until(nextV))
		if err := c.video.WriteSample(pmedia.Sample{Data: tus[nv], Duration: vdur}); err != nil {
			t.Fatalf("write video: %v", err)
		}
		nv++
	}
}

// TestAV1Publish: a WHIP publisher that offers only AV1 (OBS's WHIP
// output with an AV1 encoder) publishes; its temporal units, packetised
// by pion as the AV1 RTP spec says, come out of the real packager as av01
// samples that ffprobe decodes, and a changed sequence header (a new
// resolution) starts a new epoch.
func TestAV1Publish(t *testing.T) {
	ffprobe := e2e.Require(t, "ffprobe")
	big, small := av1test.TUs(t), av1test.FileTUs(t, av1test.Small)
	ps, env := newPackagerEnv(t)
	pkg := ps.Packager
	c := newClient(t, clientOpts{videoMime: webrtc.MimeTypeAV1})
	c.publish(t, env.web.URL, "av1", "key-av1", true)
	c.waitConnected(t)
	// The 320x180 stream twice (its repeated sequence header is no new
	// epoch), then the 160x90 one (a new sequence header is).
	streamTUs(t, c, append(append(append([][]byte(nil), big...), big...), small...))
	time.Sleep(200 * time.Millisecond)
	if d := do(t, http.MethodDelete, env.web.URL+c.location, "key-av1", "", nil); d.status != http.StatusOK {
		t.Fatalf("DELETE: %d", d.status)
	}
	<-ps.ended
	ps.mu.Lock()
	defer ps.mu.Unlock()

	type want struct {
		codec    string
		w, h     int
		minVideo int
	}
	// All of the small stream must arrive (it starts with its key frame);
	// of the first, the frames before the first key frame the session
	// saw may be missing if the first packets raced the track setup.
	wants := []want{{"av01.0.00M.08", 320, 180, 2*len(big) - av1test.KeyEvery}, {"av01.0.00M.08", 160, 90, len(small)}}
	if len(ps.inits) != len(wants) {
		t.Fatalf("%d inits, want %d: %+v", len(ps.inits), len(wants), ps.inits)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	for i, w := range wants {
		in := ps.inits[i]
		if in.VideoCodec != w.codec || in.Width != w.w || in.Height != w.h || in.AudioCodec != "Opus" {
			t.Fatalf("epoch %d init: video %q %dx%d audio %q", i, in.VideoCodec, in.Width, in.Height, in.AudioCodec)
		}
		var file bytes.Buffer
		file.Write(in.Data)
		for _, ch := range ps.chunks {
			if ch.Epoch == in.Epoch {
				file.Write(ch.Data)
			}
		}
		out := filepath.Join(dir, "epoch"+strconv.Itoa(i)+".mp4")
		if err := os.WriteFile(out, file.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		got := e2e.FrameCounts(t, ctx, ffprobe, out)
		n, err := strconv.Atoi(got["video/av1"])
		if err != nil || n < w.minVideo {
			t.Fatalf("epoch %d: ffprobe decoded %v, want at least %d AV1 frames", i, got, w.minVideo)
		}
		t.Logf("epoch %d: %s %dx%d, ffprobe frame counts %v", i, in.VideoCodec, in.Width, in.Height, got)
	}
	if st := pkg.Stats(); st.Discontinuities != 0 {
		t.Errorf("packager stats %+v", st)
	}
}
