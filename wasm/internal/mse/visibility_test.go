package mse

import (
	"testing"
	"time"
)

// TestVisibility: on return from a hidden tab playback comes back to the
// live edge at once and plays again if the browser paused it (issue 22 #9).
func TestVisibility(t *testing.T) {
	t0 := time.Unix(0, 0)
	for _, tc := range []struct {
		name    string
		hide    bool
		playing bool // when hidden
		v       View
		want    Action
	}{
		{"shown without a hide", false, true, View{Current: 10, Buffered: []Range{{0, 30}}, Paused: true}, Action{Rate: 1}},
		{"paused by the user before hiding", true, false, View{Current: 10, Buffered: []Range{{0, 30}}, Paused: true}, Action{Rate: 1}},
		{"still near the edge", true, true, View{Current: 28.6, Buffered: []Range{{0, 30}}, Rate: 1}, Action{Rate: 1}},
		{"fell behind: jump to the edge", true, true, View{Current: 20, Buffered: []Range{{0, 30}}, Rate: 1.15}, Action{Seek: true, SeekTo: 29, Rate: 1}},
		{"paused by the browser: jump and play", true, true, View{Current: 12, Buffered: []Range{{0, 30}}, Paused: true, Rate: 1}, Action{Seek: true, SeekTo: 29, Rate: 1, Play: true}},
		{"paused at the edge: play", true, true, View{Current: 28.9, Buffered: []Range{{0, 30}}, Paused: true, Rate: 1}, Action{Rate: 1, Play: true}},
		{"in a hole", true, true, View{Current: 28.7, Buffered: []Range{{0, 28.5}, {28.9, 30}}, Rate: 1}, Action{Seek: true, SeekTo: 29, Rate: 1}},
		{"new range shorter than the target", true, true, View{Current: 10, Buffered: []Range{{0, 12}, {29.5, 30}}, Rate: 1}, Action{Seek: true, SeekTo: 29.5, Rate: 1}},
		{"nothing buffered", true, true, View{Paused: true}, Action{Rate: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s Visibility
			if tc.hide {
				s.Hide(t0, tc.playing)
				s.Hide(t0.Add(time.Second), !tc.playing) // a repeat changes nothing
				if h, since := s.Hidden(); !h || !since.Equal(t0) {
					t.Fatalf("Hidden() = %v %v", h, since)
				}
			}
			if got := s.Show(tc.v, 1); got != tc.want {
				t.Fatalf("Show: %+v, want %+v", got, tc.want)
			}
			if h, _ := s.Hidden(); h {
				t.Fatal("still hidden after Show")
			}
			if got := s.Show(tc.v, 1); got.Seek || got.Play {
				t.Fatalf("second Show acted: %+v", got)
			}
		})
	}
}
