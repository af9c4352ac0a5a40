package mse

import "time"

// Visibility is what the player does about the page being hidden (another
// tab in front, a minimised window) and shown again. While hidden the
// browser throttles timers to one a second and may pause a muted video;
// the player keeps taking chunks (appends run on updateend events, not
// timers, and the peer engine forwards pieces to its children as they
// arrive, so relaying does not wait for the page's timers). On return
// playback must come back to the live edge at once, not after Edge's slow
// catch-up or a jump a second later, and play again if the browser, not
// the user, paused it. It is not safe for concurrent use.
type Visibility struct {
	hidden  bool
	since   time.Time
	playing bool // playback was running when the page was hidden
}

// showSlack: on return, playback more than this behind Edge's target
// seeks to the live edge instead of catching up by speed.
const showSlack = 0.5

// Hide records that the page was hidden at now, with playback running or
// not.
func (s *Visibility) Hide(now time.Time, playing bool) {
	if s.hidden {
		return
	}
	s.hidden, s.since, s.playing = true, now, playing
}

// Hidden reports whether the page is hidden, and since when.
func (s *Visibility) Hidden() (bool, time.Time) { return s.hidden, s.since }

// Show says what to do when the page is shown again: seek to target
// seconds behind the newest buffered media when playback fell further
// behind than that (plus a little), and play when playback was running
// when the page was hidden and stands paused now. A Show without a Hide
// does nothing.
func (s *Visibility) Show(v View, target float64) Action {
	a := Action{Rate: v.Rate}
	if a.Rate <= 0 {
		a.Rate = 1
	}
	if !s.hidden {
		return a
	}
	s.hidden = false
	if !s.playing || len(v.Buffered) == 0 {
		return a
	}
	last := v.Buffered[len(v.Buffered)-1]
	if live := last.End - target; v.Current < live-showSlack || rangeAt(v.Buffered, v.Current) < 0 {
		a.Seek, a.SeekTo, a.Rate = true, max(last.Start, live), 1
	}
	a.Play = v.Paused
	return a
}
