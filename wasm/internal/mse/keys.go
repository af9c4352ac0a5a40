package mse

import "slices"

// maxKeys bounds the keyframe index: at one keyframe a second it spans
// more than an hour, far beyond what stays buffered.
const maxKeys = 4096

// keyEpsilon: an eviction ends this far before the keyframe it keeps, so
// that rounding (media times in microseconds, the offset in float
// seconds) never puts the keyframe itself inside the removed range.
const keyEpsilon = 0.001

// Keys records where the random access points of the appended media
// (chunks that begin with a keyframe; every audio-only chunk) land on the
// presentation timeline. SourceBuffer.remove(start, end) also removes
// every frame after end up to the next random access point (the frames
// that depend on removed ones), so removing up to an arbitrary time
// deletes the rest of the GOP there: with currentTime − 2 s as the end,
// the GOP being played, or all of the buffer with an 8 s GOP. Ending a
// removal at a random access point removes exactly what was asked. It is
// not safe for concurrent use.
type Keys struct {
	at []float64 // ascending
}

// Add records op's start if op is a media append that begins with a
// random access point.
func (k *Keys) Add(op Op) {
	if op.Kind != OpAppend || op.Init || !op.Key {
		return
	}
	i, found := slices.BinarySearch(k.at, op.Start)
	if found {
		return
	}
	k.at = slices.Insert(k.at, i, op.Start)
	if len(k.at) > maxKeys {
		k.at = slices.Delete(k.at, 0, len(k.at)-maxKeys)
	}
}

// Reset forgets every key (a new MediaSource holds nothing).
func (k *Keys) Reset() { k.at = k.at[:0] }

// Prune forgets the keys before t (media removed from the buffer).
func (k *Keys) Prune(t float64) {
	i, _ := slices.BinarySearch(k.at, t)
	k.at = slices.Delete(k.at, 0, i)
}

// AtOrBefore returns the latest random access point at or before t.
func (k *Keys) AtOrBefore(t float64) (float64, bool) {
	i, found := slices.BinarySearch(k.at, t)
	if found {
		return k.at[i], true
	}
	if i == 0 {
		return 0, false
	}
	return k.at[i-1], true
}

// Len is the number of keys recorded.
func (k *Keys) Len() int { return len(k.at) }

// EvictTo is Evict with the end moved back to the latest random access
// point at or before keepFrom, so that the removal takes nothing from
// keepFrom on. Without a known random access point there, nothing can be
// removed safely.
func EvictTo(buffered []Range, keys *Keys, keepFrom, minSpan float64) (Range, bool) {
	key, ok := keys.AtOrBefore(keepFrom)
	if !ok {
		return Range{}, false
	}
	return Evict(buffered, key-keyEpsilon, minSpan)
}

// DropDependents is what follows a media append that was lost (the
// SourceBuffer refused it and there is nothing old to evict): the queued
// media appends of the same epoch up to the next random access point
// reference the lost frames and cannot decode, so they go too. resume
// says the queue held no random access point of that epoch, so the
// planner must skip what comes next until a keyframe
// (Planner.ResumeAtKeyframe). A new MediaSource, a new type or a new
// init ends the dependents: each starts at a keyframe anyway.
func DropDependents[T any](lost Op, queue []T, opOf func(T) Op) (rest []T, resume bool) {
	rest = make([]T, 0, len(queue))
	for i, q := range queue {
		op := opOf(q)
		if op.Kind != OpAppend || op.Init || op.Epoch != lost.Epoch || op.Key {
			return append(rest, queue[i:]...), false
		}
		// A dependent: dropped.
	}
	return rest, true
}

// ResumeAtKeyframe makes the planner skip the chunks of epoch that follow
// until a keyframe, after a chunk it planned was lost on the way into the
// SourceBuffer. Audio needs no keyframe.
func (p *Planner) ResumeAtKeyframe(epoch uint32) {
	if p.haveInit && epoch == p.epoch && p.info.VideoCodec != "" {
		// Not filled: the buffer is full, and the keyframe is large.
		p.needKey, p.fill = true, false
	}
}

// QuotaKeep is how much media behind currentTime an eviction after a
// QuotaExceededError leaves at least.
const QuotaKeep = 2.0

// QuotaEvict is the removal to try after appendBuffer threw
// QuotaExceededError: the media before the latest random access point at
// or before currentTime − QuotaKeep, if at least half a second. Without
// one the chunk must be dropped (DropDependents).
func QuotaEvict(buffered []Range, keys *Keys, current float64) (Range, bool) {
	return EvictTo(buffered, keys, current-QuotaKeep, 0.5)
}
