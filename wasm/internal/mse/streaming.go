package mse

// HoldAhead is how much media must be buffered ahead of playback before
// a ManagedMediaSource's endstreaming hint holds appends.
const HoldAhead = 3.0

// Streaming follows ManagedMediaSource's hints (Safari on iPhone, which
// has no plain MediaSource): the browser fires endstreaming when it has
// enough media and would rather the page stopped appending (to save power
// and memory), and startstreaming when it wants more. A live player cannot
// stop fetching (media it does not take now is gone), but it can hold its
// appends while the browser has said "enough" and the buffer ahead of
// playback is comfortably full. The hint never starves playback: below
// HoldAhead seconds ahead, appends go on. With a plain MediaSource there
// are no hints and appends always go.
//
// The zero value is a plain MediaSource's.
type Streaming struct {
	managed bool
	// streaming is ManagedMediaSource.streaming: false until the browser
	// first asks with startstreaming.
	streaming bool
}

// NewStreaming starts following the hints of a new media source.
func NewStreaming(managed bool) Streaming { return Streaming{managed: managed} }

// Start records startstreaming.
func (s *Streaming) Start() { s.streaming = true }

// End records endstreaming.
func (s *Streaming) End() { s.streaming = false }

// Managed reports whether the media source gives hints at all.
func (s *Streaming) Managed() bool { return s.managed }

// AllowAppend says whether an append may start with ahead seconds of
// media buffered ahead of currentTime.
func (s *Streaming) AllowAppend(ahead float64) bool {
	return !s.managed || s.streaming || ahead < HoldAhead
}
