package whip

import (
	"errors"
	"fmt"
	"slices"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// Random bytes parse as H.264 more often than one would like (the exp-
// Golomb syntax accepts nearly anything), so a garbage stream could give
// the packager a "keyframe". The checks here make that improbable: an SPS
// must name a real profile and level, a PPS must parse to its trailing
// bits with every field in range and name that SPS, and a keyframe's slice
// header must name that PPS.

var (
	knownProfiles = []uint8{66, 77, 88, 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}
	knownLevels   = []uint8{9, 10, 11, 12, 13, 20, 21, 22, 30, 31, 32, 40, 41, 42, 50, 51, 52, 60, 61, 62}
	errRBSP       = errors.New("truncated or malformed RBSP")
)

// rbsp reads the bits of a NAL unit payload with emulation prevention
// removed (ITU-T H.264 7.2 descriptors).
type rbsp struct {
	b   []byte
	pos int // in bits
}

func newRBSP(nalu []byte) *rbsp {
	return &rbsp{b: h264.EmulationPreventionRemove(nalu[1:])}
}

func (r *rbsp) bit() (uint32, bool) {
	if r.pos >= len(r.b)*8 {
		return 0, false
	}
	v := uint32(r.b[r.pos/8]>>(7-r.pos%8)) & 1
	r.pos++
	return v, true
}

func (r *rbsp) bits(n int) (uint32, bool) {
	var v uint32
	for i := 0; i < n; i++ {
		b, ok := r.bit()
		if !ok {
			return 0, false
		}
		v = v<<1 | b
	}
	return v, true
}

// ue reads an unsigned exp-Golomb value; more than 31 leading zeros is
// malformed.
func (r *rbsp) ue() (uint32, bool) {
	zeros := 0
	for {
		b, ok := r.bit()
		if !ok {
			return 0, false
		}
		if b == 1 {
			break
		}
		if zeros++; zeros > 31 {
			return 0, false
		}
	}
	v, ok := r.bits(zeros)
	return (1<<zeros - 1) + v, ok
}

func (r *rbsp) se() (int32, bool) {
	v, ok := r.ue()
	if v%2 == 1 {
		return int32((v + 1) / 2), ok
	}
	return -int32(v / 2), ok
}

// lastOne is the bit position of the rbsp_stop_one_bit (-1: none).
func (r *rbsp) lastOne() int {
	for i := len(r.b) - 1; i >= 0; i-- {
		if c := r.b[i]; c != 0 {
			tz := 0
			for c&1 == 0 {
				c >>= 1
				tz++
			}
			return i*8 + 7 - tz
		}
	}
	return -1
}

// moreData is more_rbsp_data(): is there syntax before the stop bit?
func (r *rbsp) moreData() bool { return r.pos < r.lastOne() }

// trailing reports whether exactly rbsp_trailing_bits remain.
func (r *rbsp) trailing() bool { return r.pos == r.lastOne() }

// checkSPS refuses a sequence parameter set the packager would refuse or
// that names no real profile or level, and returns its id.
func checkSPS(b []byte) (uint32, error) {
	if len(b) < 4 || len(b) > maxParamSetSize {
		return 0, fmt.Errorf("SPS of %d bytes", len(b))
	}
	if !slices.Contains(knownProfiles, b[1]) {
		return 0, fmt.Errorf("SPS profile_idc %d", b[1])
	}
	if b[2]&3 != 0 {
		return 0, errors.New("SPS reserved_zero_2bits set")
	}
	if !slices.Contains(knownLevels, b[3]) {
		return 0, fmt.Errorf("SPS level_idc %d", b[3])
	}
	r := newRBSP(b)
	r.pos = 24
	id, ok := r.ue()
	if !ok || id > 31 {
		return 0, errors.New("SPS seq_parameter_set_id out of range")
	}
	var sps h264.SPS
	if err := sps.Unmarshal(b); err != nil {
		return 0, fmt.Errorf("parse SPS: %w", err)
	}
	if w, h := sps.Width(), sps.Height(); w <= 0 || h <= 0 || w > maxPictureSide || h > maxPictureSide {
		return 0, fmt.Errorf("SPS picture size %dx%d out of range", w, h)
	}
	return id, nil
}

// checkPPS parses a picture parameter set to its trailing bits and
// returns its id and the id of the SPS it uses. Slice groups (FMO) are
// refused: no WebRTC encoder uses them and the packager would not either.
func checkPPS(b []byte) (ppsID, spsID uint32, err error) {
	if len(b) < 2 || len(b) > maxParamSetSize {
		return 0, 0, fmt.Errorf("PPS of %d bytes", len(b))
	}
	r := newRBSP(b)
	fail := func(what string) (uint32, uint32, error) { return 0, 0, fmt.Errorf("PPS %s", what) }
	var ok bool
	if ppsID, ok = r.ue(); !ok || ppsID > 255 {
		return fail("pic_parameter_set_id")
	}
	if spsID, ok = r.ue(); !ok || spsID > 31 {
		return fail("seq_parameter_set_id")
	}
	if _, ok = r.bits(2); !ok {
		return fail("flags")
	}
	if g, ok := r.ue(); !ok || g != 0 {
		return fail("slice groups")
	}
	for range 2 { // num_ref_idx_l0/l1_default_active_minus1
		if n, ok := r.ue(); !ok || n > 31 {
			return fail("num_ref_idx")
		}
	}
	if _, ok = r.bit(); !ok { // weighted_pred_flag
		return fail("weighted_pred_flag")
	}
	if w, ok := r.bits(2); !ok || w > 2 {
		return fail("weighted_bipred_idc")
	}
	for _, lim := range [][2]int32{{-26 - 48, 25}, {-26, 25}, {-12, 12}} { // pic_init_qp, pic_init_qs, chroma_qp_index_offset
		if v, ok := r.se(); !ok || v < lim[0] || v > lim[1] {
			return fail("QP fields")
		}
	}
	if _, ok = r.bits(3); !ok {
		return fail("flags")
	}
	if r.moreData() {
		t8, ok := r.bit() // transform_8x8_mode_flag
		if !ok {
			return fail("transform_8x8_mode_flag")
		}
		scaling, ok := r.bit()
		if !ok {
			return fail("pic_scaling_matrix_present_flag")
		}
		at := r.pos
		// The number of lists depends on the SPS's chroma format: 4:4:4
		// has 6 8x8 lists, the others 2. Try the common case first.
		for _, n8 := range []int{2, 6} {
			r.pos = at
			if scaling == 1 && !r.scalingLists(6+n8*int(t8)) {
				continue
			}
			if v, ok := r.se(); !ok || v < -12 || v > 12 {
				continue // second_chroma_qp_index_offset
			}
			if r.trailing() {
				return ppsID, spsID, nil
			}
			if scaling == 0 || t8 == 0 {
				break
			}
		}
		return fail("range extension fields")
	}
	if !r.trailing() {
		return fail("trailing bits")
	}
	return ppsID, spsID, nil
}

// scalingLists skips n scaling_list() structures (7.3.2.1.1.1), checking
// each delta_scale's range.
func (r *rbsp) scalingLists(n int) bool {
	for i := 0; i < n; i++ {
		present, ok := r.bit()
		if !ok {
			return false
		}
		if present == 0 {
			continue
		}
		size := 16
		if i >= 6 {
			size = 64
		}
		last, next := int32(8), int32(8)
		for j := 0; j < size; j++ {
			if next != 0 {
				d, ok := r.se()
				if !ok || d < -128 || d > 127 {
					return false
				}
				next = (last + d + 256) % 256
			}
			if next != 0 {
				last = next
			}
		}
	}
	return true
}

// checkIDRSlice checks the start of an IDR slice header: an I or SI slice
// that names PPS ppsID.
func checkIDRSlice(nalu []byte, ppsID uint32) error {
	if len(nalu) < 2 {
		return errRBSP
	}
	r := newRBSP(nalu[:min(len(nalu), 64)])
	if _, ok := r.ue(); !ok { // first_mb_in_slice
		return errRBSP
	}
	st, ok := r.ue()
	if !ok || st > 9 || st%5 != 2 && st%5 != 4 {
		return fmt.Errorf("IDR slice_type %d", st)
	}
	if id, ok := r.ue(); !ok || id != ppsID {
		return fmt.Errorf("IDR slice names PPS %d, not %d", id, ppsID)
	}
	return nil
}
