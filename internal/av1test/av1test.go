// Package av1test gives tests the temporal units and sequence header of
// media/av1's testdata: real low-delay SVT-AV1 encodes (30 fps, a key frame
// every 15 frames), as ffmpeg wrote them to IVF. Like
// x265test it is apart from internal/e2e so that packages built for the
// browser can use it in their tests.
package av1test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/banyan-live/banyan/internal/ivf"
	"github.com/banyan-live/banyan/media"
	"github.com/banyan-live/banyan/media/av1"
)

// KeyEvery is the test stream's key frame interval, in frames.
const KeyEvery = 15

// Files in media/av1/testdata.
const (
	Main  = "ld.ivf"        // 320x180, 45 frames
	Small = "ld-160x90.ivf" // 160x90, 15 frames, the same encoder settings
)

// TUs returns the temporal units of the Main test stream in the
// low-overhead format, each starting with a temporal delimiter.
func TUs(tb testing.TB) [][]byte {
	tb.Helper()
	return FileTUs(tb, Main)
}

// FileTUs returns the temporal units of a file in media/av1/testdata.
func FileTUs(tb testing.TB, file string) [][]byte {
	tb.Helper()
	_, self, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(self), "..", "..", "media", "av1", "testdata", file))
	if err != nil {
		tb.Fatal(err)
	}
	f, err := ivf.Parse(b)
	if err != nil {
		tb.Fatal(err)
	}
	tus := make([][]byte, len(f.Frames))
	for i, fr := range f.Frames {
		tus[i] = fr.Data
	}
	return tus
}

// Config is the Main test stream's decoder configuration.
func Config(tb testing.TB) media.VideoConfig {
	tb.Helper()
	return FileConfig(tb, Main)
}

// FileConfig is the decoder configuration of a file in media/av1/testdata.
func FileConfig(tb testing.TB, file string) media.VideoConfig {
	tb.Helper()
	obus, err := av1.Split(nil, FileTUs(tb, file)[0])
	if err != nil {
		tb.Fatal(err)
	}
	sh := av1.SequenceHeader(obus)
	if sh == nil {
		tb.Fatal("av1test: no sequence header in the first TU")
	}
	return media.VideoConfig{Codec: media.AV1, SeqHeader: sh}
}
