package cluster

// Members returns every live node of the gossip pool, of every zone,
// sorted by id. Cross-zone replication finds remote zones through it.
func (n *Node) Members() []Member {
	p := n.pool.Load()
	if p == nil {
		return nil
	}
	return p.members()
}
