// Package tracker is Banyan's control plane: it owns each stream's overlay
// (which viewer feeds which), relays signaling between paired peers, serves
// the stream-key admin API and the operators' dashboard, and exports
// metrics.
package tracker
