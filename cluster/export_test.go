package cluster

// Test-only views of unexported state, for the external test package.

// BootstrapCount returns how many times n bootstrapped Raft.
func BootstrapCount(n *Node) int { return int(n.bootstraps.Load()) }

// LeaderReady reports whether n leads and has passed its term's Barrier.
func LeaderReady(n *Node) bool { return n.isLeaderReady() }

// ApplyBatches returns how many batches n's apply gate handed to raft.
func ApplyBatches(n *Node) uint64 {
	n.gate.mu.Lock()
	defer n.gate.mu.Unlock()
	return n.gate.batches
}
