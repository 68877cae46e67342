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

// KnownZones returns every zone a node of which the pool has ever shown
// this node, live or not, sorted: a zone cut off for a while is still a
// zone of the deployment.
func (n *Node) KnownZones() []string {
	p := n.pool.Load()
	if p == nil {
		return nil
	}
	return p.knownZones()
}
