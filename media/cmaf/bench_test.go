package cmaf_test

import (
	"testing"
	"time"

	"github.com/banyan-live/banyan/media/cmaf"
)

// BenchmarkPackager packages 10 s of 6 Mbit/s-like H.264 (30 fps, B-frames,
// 2 s GOP) plus 128 kbit/s-like AAC per iteration; MB/s counts AU payload.
func BenchmarkPackager(b *testing.B) {
	// 6 Mbit/s at 30 fps is 25 kB a frame on average.
	o := genOpts{dur: 10 * time.Second, fps: 30, bframes: true, gop: 60, audioRate: 48000, payloadSize: 25000}
	video, audio := genVideo(o), genAudio(o)
	for i := range audio {
		audio[i].au.Frame = make([]byte, 340) // 128 kbit/s at 46.9 frames/s
	}
	aus := interleave(video, audio, 0)
	var payload int64
	for _, au := range aus {
		payload += int64(len(au.Frame))
		for _, n := range au.NALUs {
			payload += int64(len(n))
		}
	}
	b.SetBytes(payload)
	b.ReportAllocs()
	var chunks int
	for b.Loop() {
		p, err := cmaf.New(cmaf.Config{
			OnInit:  func(cmaf.Init) error { return nil },
			OnChunk: func(cmaf.Chunk) error { chunks++; return nil },
			Logger:  quietLogger(),
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := p.VideoConfig(videoHigh); err != nil {
			b.Fatal(err)
		}
		if err := p.AudioConfig(audioAAC); err != nil {
			b.Fatal(err)
		}
		for _, au := range aus {
			if err := p.WriteAU(au); err != nil {
				b.Fatal(err)
			}
		}
		if err := p.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(chunks)/float64(b.N), "chunks/op")
}
