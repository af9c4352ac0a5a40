// Package turne2e holds the end-to-end tests of the TURN path on one
// machine: two native peer engines linked over pion data channels whose
// ICE is forced through the bundled TURN server (turnserver), on loopback.
// They check that chunks flow through the relay and are counted as TURN
// bytes, that the server refuses expired and forged credentials and relays
// to refused addresses, and that a peer whose link cannot be made falls
// back to the HTTP origin. They also measure what the relay costs in chunk
// latency against a direct link. There is no non-test code here.
package turne2e
