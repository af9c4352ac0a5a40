package mse

// sameTracks reports whether two init segments have the same set of
// tracks (video or not, audio or not). SourceBuffer.changeType may change
// a track's codec but not the number or kinds of tracks: MSE's init
// segment received algorithm fails an init with a different track set
// (Chromium ends the MediaSource with a decode error). A change of track
// set, such as an audio-only epoch followed by audio and video, needs a
// new MediaSource.
func sameTracks(a, b InitInfo) bool {
	return (a.VideoCodec != "") == (b.VideoCodec != "") && (a.AudioCodec != "") == (b.AudioCodec != "")
}
