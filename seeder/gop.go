package seeder

import (
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"
)

// LongGOP is the keyframe interval past which the broadcaster is warned.
// Every joiner starts at a keyframe, so it waits or pulls catch-up for up
// to a keyframe interval; a lost chunk makes players skip to the next
// keyframe; LL-HLS segments (and the target duration) are a GOP long.
// OBS's Advanced output defaults to "0" (250 frames: 8.3 s at 30 fps).
const LongGOP = 2 * time.Second

// KeyframeAdvice is the setting the warning recommends.
const KeyframeAdvice = "Keyframe Interval 1 s"

// gopAdvice is the warning for a measured keyframe interval, "" when it
// is short enough.
func gopAdvice(interval time.Duration) string {
	if interval <= LongGOP {
		return ""
	}
	s := math.Round(interval.Seconds()*10) / 10
	return fmt.Sprintf("keyframe interval %.1f s: viewers join up to %.1f s late and a lost chunk skips up to %.1f s of video; "+
		"set %s (OBS: Settings → Output → Output Mode Advanced → Streaming → %s)", s, s, s, KeyframeAdvice, KeyframeAdvice)
}

// noteKeyframe records a keyframe chunk's media time and returns the
// measured interval when it is new advice to give (once per publish and
// epoch, so an encoder restarted with the same setting is warned again,
// but a long GOP is not logged every few seconds).
func (g *gopWatch) noteKeyframe(epoch uint32, media time.Duration) (time.Duration, string) {
	defer func() { g.last, g.epoch, g.have = media, epoch, true }()
	if !g.have || epoch != g.epoch || media <= g.last {
		return 0, ""
	}
	iv := media - g.last
	g.interval.Store(int64(iv))
	adv := gopAdvice(iv)
	if adv == "" || g.warned == epoch {
		return iv, ""
	}
	g.warned = epoch
	return iv, adv
}

// KeyframeInterval is the newest measured keyframe interval of a stream's
// publish (0 before two keyframes, or when not publishing), and the
// advice for the broadcaster when it is too long or a track's codec is
// dropped (Publish.Unsupported); "" otherwise.
func (s *Seeder) KeyframeInterval(name string) (time.Duration, string) {
	p, _ := s.publishOf(name)
	if p == nil {
		return 0, ""
	}
	iv := time.Duration(p.gop.interval.Load())
	adv := gopAdvice(iv)
	if ca := p.codecAdvice.Load(); ca != nil {
		// The codec first: it is why viewers see nothing.
		adv = strings.TrimSuffix(*ca+"; also a "+adv, "; also a ")
	}
	return iv, adv
}

// gopWatch measures a publish's keyframe interval. Written by the
// publish's goroutine; interval is read by KeyframeInterval.
type gopWatch struct {
	have     bool
	epoch    uint32
	last     time.Duration
	warned   uint32 // the epoch last warned about (epochs start at 1)
	interval atomic.Int64
}
