package cluster

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/hashicorp/raft"
	"github.com/keyzone/keyzone/fsm"
)

// A removed node id stays out of its zone for good, whichever node leads:
// the leader records the removal in the log (fsm.CmdRemoveNode) before it
// removes the voter, every leader's reconcile loop skips the ids of that
// set, and a node learns that it was removed either from its own state or,
// when it was stopped before the record reached it (the usual case), from
// a live node of its zone. A node counts as removed when its id is in the
// set and is not a voter of the configuration: an id in the set that is
// still a voter (a removal a leader change cut short, or a state restored
// from another zone's backup that names a current voter) is left alone.
// See DESIGN.md, "Removed nodes".

const (
	// internalRemovedNode answers whether a node id was removed from the
	// zone (GET ?id=), with the removal record; a POST tells the node
	// served that it was just removed, so that it looks now.
	internalRemovedNode = "/v1/internal/removed-node"

	// removedCheckInterval is how often a node looks for its own removal.
	removedCheckInterval = time.Second
	// removedAskTimeout bounds the question to one peer, and the leader's
	// notice to the node it removed.
	removedAskTimeout = time.Second
)

// removedNodeResponse is a node's answer to internalRemovedNode: the
// removal record of the id asked about, nil when its state has none or
// the id is still a voter of its configuration.
type removedNodeResponse struct {
	Removed *fsm.RemovedNode `json:"removed,omitempty"`
}

// recordRemoval commits the removal of id to the log, on the leader. The
// record comes before RemoveServer so that no leader, this one or a
// later one, ever sees the id out of the configuration but not in the
// set: reconcile would add it back.
func (n *Node) recordRemoval(id string) error {
	cmd, err := fsm.NewCommand(fsm.CmdRemoveNode, fsm.RemoveNodeV1{
		NodeID: id, Zone: n.cfg.Zone, RemovedAt: time.Now().UnixNano(),
	})
	if err != nil {
		return err
	}
	data, err := cmd.Encode()
	if err != nil {
		return err
	}
	res, _, err := n.applyLocal(data)
	if err != nil {
		return fmt.Errorf("record removal of %s: %w", id, err)
	}
	if res.Err != nil {
		return fmt.Errorf("record removal of %s: %w", id, res.Err)
	}
	return nil
}

// isVoter reports whether id is a voter of this node's latest
// configuration. When the configuration cannot be read (Raft stopped) it
// answers true: nobody is declared removed on that basis.
func (n *Node) isVoter(id string) bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return true
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == raft.ServerID(id) && s.Suffrage == raft.Voter {
			return true
		}
	}
	return false
}

// removedSet returns the ids of the zone's removed nodes.
func (n *Node) removedSet() map[raft.ServerID]bool {
	out := map[raft.ServerID]bool{}
	for _, r := range n.fsm.RemovedNodes() {
		out[raft.ServerID(r.NodeID)] = true
	}
	return out
}

// removedReason says why this node is out of its zone, or "" while it is
// not known to be removed.
func (n *Node) removedReason() string {
	r := n.removal.Load()
	if r == nil {
		return ""
	}
	return fmt.Sprintf("node %s was removed from %s at %s: it cannot rejoin under this id; wipe its data dir and start it under a new node id",
		r.NodeID, r.Zone, time.Unix(0, r.RemovedAt).UTC().Format(time.RFC3339))
}

// Removed returns the record of this node's removal from its zone, once
// the node knows of it.
func (n *Node) Removed() (fsm.RemovedNode, bool) {
	if r := n.removal.Load(); r != nil {
		return *r, true
	}
	return fsm.RemovedNode{}, false
}

// removalLoop looks for this node's removal: at start, then every
// removedCheckInterval, in its own state (its id in the set, itself out of
// its configuration) and, while it knows no leader, in the state of each
// live node of its zone. A removed node stopped before the record reached
// it has only stale state, in which it is still a voter, and nobody sends
// it entries any more: without a leader it asks. A member of the zone that
// knows its leader is a voter, and learns a later removal of its own from
// its log, or asks once it stops hearing from the leader.
func (n *Node) removalLoop() {
	ticker := time.NewTicker(removedCheckInterval)
	defer ticker.Stop()
	for n.removal.Load() == nil {
		if r, ok := n.findRemoval(false); ok {
			n.refuse(r)
			return
		}
		select {
		case <-n.ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// findRemoval looks for this node's removal in its own state, then, while
// it knows no leader or when force is set, asks the live nodes of its zone.
func (n *Node) findRemoval(force bool) (fsm.RemovedNode, bool) {
	if r, ok := n.fsm.RemovedNode(n.cfg.NodeID); ok && !n.isVoter(n.cfg.NodeID) {
		return r, true
	}
	if _, leader := n.raft.LeaderWithID(); leader != "" && !force {
		return fsm.RemovedNode{}, false
	}
	p := n.pool.Load()
	if p == nil {
		return fsm.RemovedNode{}, false
	}
	path := internalRemovedNode + "?id=" + url.QueryEscape(n.cfg.NodeID)
	for _, m := range p.zoneMembers(n.cfg.Zone) {
		if m.ID == n.cfg.NodeID {
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, removedAskTimeout)
		var out removedNodeResponse
		err := n.callPeer(ctx, m, http.MethodGet, path, nil, &out)
		cancel()
		if err != nil {
			n.logger.Debug("cannot ask peer about removal", "node", m.ID, "error", err)
			continue
		}
		if out.Removed != nil && out.Removed.NodeID == n.cfg.NodeID {
			return *out.Removed, true
		}
	}
	return fsm.RemovedNode{}, false
}

// refuse takes this node out of the zone for good: it stops its Raft
// instance, so it neither campaigns with a stale configuration nor
// answers votes, and stays up only to say why (health, log). Removed
// peers are already refused by the voters' own vote checks; stopping
// spares them a stream of refused pre-votes.
func (n *Node) refuse(r fsm.RemovedNode) {
	if !n.removal.CompareAndSwap(nil, &r) {
		return // refused already
	}
	n.logger.Error("this node was removed from its zone and will not rejoin it; wipe its data dir and start it under a new node id",
		"node", r.NodeID, "zone", r.Zone, "removed_at", time.Unix(0, r.RemovedAt).UTC().Format(time.RFC3339))
	if err := n.raft.Shutdown().Error(); err != nil {
		n.logger.Warn("stopping raft of a removed node", "error", err)
	}
}

// notifyRemoved tells node id, just removed by this leader, to look for its
// removal now rather than at its next check: a node removed while running
// still believes it has a leader (raft stops replicating to it at once, so
// it may have neither the record nor the configuration without it) until
// its heartbeat timeout. A stopped node does not answer; that is fine.
func (n *Node) notifyRemoved(id string) {
	p := n.pool.Load()
	if p == nil {
		return
	}
	m, ok := p.member(id)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, removedAskTimeout)
	defer cancel()
	if err := n.callPeer(ctx, m, http.MethodPost, internalRemovedNode, nil, &struct{}{}); err != nil {
		n.logger.Debug("removed node not told", "node", id, "error", err)
	}
}

func (n *Node) handleRemovedNode(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		// Asked of every live node of the zone, whatever this node
		// believes about its leader; a positive answer needs a committed
		// record and a committed configuration without this node.
		if rec, ok := n.findRemoval(true); ok {
			n.refuse(rec)
		}
		writeInternal(w, http.StatusOK, struct{}{})
		return
	}
	if r.Method != http.MethodGet {
		writeInternal(w, http.StatusMethodNotAllowed, internalError{Code: "bad_request"})
		return
	}
	id := r.URL.Query().Get("id")
	if id == "" {
		writeInternal(w, http.StatusBadRequest, internalError{Code: "bad_request"})
		return
	}
	var out removedNodeResponse
	if rec, ok := n.fsm.RemovedNode(id); ok && !n.isVoter(id) {
		out.Removed = &rec
	}
	writeInternal(w, http.StatusOK, out)
}
