// Package x265test gives tests the parameter sets of media/hevc's libx265
// testdata. It is apart from internal/e2e (browsers, processes) so that
// packages built for the browser can use it in their tests.
package x265test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/banyan-live/banyan/media"
)

// Config reads the VPS, SPS and PPS of file in media/hevc/testdata,
// real libx265 streams (Annex B) that the H.265 unit tests of several
// packages share.
func Config(tb testing.TB, file string) media.VideoConfig {
	tb.Helper()
	_, self, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(self), "..", "..", "media", "hevc", "testdata", file))
	if err != nil {
		tb.Fatal(err)
	}
	var au h264.AnnexB // the same framing for H.265
	if err := au.Unmarshal(b); err != nil {
		tb.Fatal(err)
	}
	v := media.VideoConfig{Codec: media.H265}
	for _, n := range au {
		// nal_unit_type; media/hevc's tests use this helper, so it
		// cannot import that package.
		switch (n[0] >> 1) & 0x3f {
		case 32:
			v.VPS = n
		case 33:
			v.SPS = n
		case 34:
			v.PPS = n
		}
	}
	if v.VPS == nil || v.SPS == nil || v.PPS == nil {
		tb.Fatalf("%s lacks a parameter set", file)
	}
	return v
}
