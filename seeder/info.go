package seeder

import (
	"sync"
	"sync/atomic"
	"time"
)

// infoSpan is how much recent media Info measures the bitrate over.
const infoSpan = 3 * time.Second

// rateSpan is the shortest interval Info measures the frame rate over.
const rateSpan = 2 * time.Second

// Info describes a stream's publish for the dashboard: the ingest protocol
// ("rtmp", "whip"), the bitrate of the sealed chunks over the last few
// seconds of media (kbit/s), the video frame rate over the last few
// seconds between calls (0 until two seconds of publish), and whether it
// is live. A stream that is not being published reports zeros and live
// false. It changes nothing but its own estimate.
func (s *Seeder) Info(name string) (protocol string, kbps, fps float64, live bool) {
	p, st := s.publishOf(name)
	if p == nil {
		return "", 0, 0, false
	}
	fps = p.rate.fps(s.cfg.Now(), p.started)
	return p.protocol, windowKbps(st), fps, true
}

// windowKbps is the bitrate of a stream's last few seconds of sealed
// chunks.
func windowKbps(st *stream) (kbps float64) {
	if _, chunks, ok := st.window.Current(); ok {
		var bytes int
		var media time.Duration
		for i := len(chunks) - 1; i >= 0 && media < infoSpan; i-- {
			bytes += len(chunks[i].Sealed)
			media += chunks[i].Duration
		}
		if media > 0 {
			kbps = float64(bytes) * 8 / 1000 / media.Seconds()
		}
	}
	return kbps
}

// Load is what the seeder carries: its live streams and their summed
// ingest bitrate (kbit/s), for the cluster's stream manager.
func (s *Seeder) Load() (live []string, ingestKbps float64) {
	s.mu.Lock()
	var sts []*stream
	for name, st := range s.streams {
		if st.pub != nil {
			live = append(live, name)
			sts = append(sts, st)
		}
	}
	s.mu.Unlock()
	for _, st := range sts {
		ingestKbps += windowKbps(st)
	}
	return live, ingestKbps
}

// infoRate is what a publish keeps for Info's frame rate: a count of video
// frames, and the rate over the interval between Info calls at least
// rateSpan apart.
type infoRate struct {
	videoFrames atomic.Uint64 // counted by WriteAU

	mu     sync.Mutex
	at     time.Time // start of the current interval
	frames uint64    // videoFrames then
	rate   float64
}

func (r *infoRate) fps(now, started time.Time) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.at.IsZero() {
		r.at = started
	}
	if dt := now.Sub(r.at); dt >= rateSpan {
		n := r.videoFrames.Load()
		r.rate = float64(n-r.frames) / dt.Seconds()
		r.at, r.frames = now, n
	}
	return r.rate
}
