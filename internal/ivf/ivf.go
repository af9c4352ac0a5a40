// Package ivf reads the IVF container that ffmpeg writes AV1 (and VP8/VP9)
// into: a 32-byte file header, then frames of a 12-byte header and the
// frame data. The tests use it to feed real encoder output to the ingest.
package ivf

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Frame is one IVF frame: for AV1, one temporal unit.
type Frame struct {
	PTS  uint64 // in the file's timebase
	Data []byte // aliases the input
}

// File is a parsed IVF file.
type File struct {
	FourCC                   string
	Width, Height            int
	TimebaseNum, TimebaseDen uint32
	Frames                   []Frame
}

// MaxFrames bounds what Parse reads.
const MaxFrames = 1 << 16

// Parse reads a whole IVF file.
func Parse(b []byte) (File, error) {
	var f File
	if len(b) < 32 || string(b[:4]) != "DKIF" {
		return f, errors.New("ivf: no DKIF header")
	}
	hl := int(binary.LittleEndian.Uint16(b[6:8]))
	if hl < 32 || hl > len(b) {
		return f, fmt.Errorf("ivf: header length %d", hl)
	}
	f.FourCC = string(b[8:12])
	f.Width = int(binary.LittleEndian.Uint16(b[12:14]))
	f.Height = int(binary.LittleEndian.Uint16(b[14:16]))
	f.TimebaseDen = binary.LittleEndian.Uint32(b[16:20])
	f.TimebaseNum = binary.LittleEndian.Uint32(b[20:24])
	b = b[hl:]
	for len(b) > 0 {
		if len(f.Frames) >= MaxFrames {
			return f, fmt.Errorf("ivf: more than %d frames", MaxFrames)
		}
		if len(b) < 12 {
			return f, errors.New("ivf: truncated frame header")
		}
		n := binary.LittleEndian.Uint32(b[:4])
		if uint64(n) > uint64(len(b)-12) {
			return f, fmt.Errorf("ivf: frame of %d bytes, %d left", n, len(b)-12)
		}
		f.Frames = append(f.Frames, Frame{PTS: binary.LittleEndian.Uint64(b[4:12]), Data: b[12 : 12+n]})
		b = b[12+n:]
	}
	return f, nil
}
