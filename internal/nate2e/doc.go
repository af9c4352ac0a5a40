// Package nate2e holds the end-to-end test of TURN fallback across real
// NATs: it builds the banyan binary, makes network namespaces joined by
// veth pairs (an "internet" with `banyan up` on it, and two hosts, each
// behind its own Linux router doing MASQUERADE --random-fully, a NAT that
// gives every flow a new port, so hole punching cannot work), publishes
// with ffmpeg and checks that the two NATed `banyan peer`s exchange chunks
// through the bundled TURN server. It needs root (CAP_NET_ADMIN), ip and
// iptables; without them it skips, or fails under BANYAN_E2E=1. Everything
// it makes lives inside its own namespaces, which it deletes when done.
// There is no non-test code here.
package nate2e
