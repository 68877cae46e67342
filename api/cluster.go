package api

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/cluster"
)

func (s *server) clusterStatus(c *gin.Context) {
	st, err := s.cluster.Status(c.Request.Context())
	if err != nil {
		c.Error(err)
		return
	}
	c.JSON(http.StatusOK, wireStatus(st))
}

func (s *server) zones(c *gin.Context) {
	zs, err := s.cluster.Zones(c.Request.Context())
	if err != nil {
		c.Error(err)
		return
	}
	c.JSON(http.StatusOK, wireZones(zs))
}

// clusterDigest lists every key of every organization: its policy admits
// the cluster operator's token alone.
func (s *server) clusterDigest(c *gin.Context) {
	r, err := s.cluster.Digests(c.Request.Context())
	if err != nil {
		c.Error(err)
		return
	}
	c.JSON(http.StatusOK, wireDigests(r))
}

// health needs no token, so load balancers and orchestrators can probe
// it: 200 when the node is ready to serve (degraded or not: the body says
// which and why), 503 otherwise.
func (s *server) health(c *gin.Context) {
	h := s.cluster.Health(c.Request.Context())
	status := http.StatusOK
	if !h.Ready {
		status = http.StatusServiceUnavailable
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(status, wireHealth(h))
}

// live is the liveness probe: 200 while the process serves HTTP, whatever
// the state of its zone. An orchestrator restarts a node that fails it;
// one that is only not ready must be left alone to catch up.
func (s *server) live(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, wire.Health{Status: wire.HealthLive, Live: true, NodeID: s.nodeID, Zone: s.zone})
}

func wireHealth(h cluster.Health) wire.Health {
	out := wire.Health{
		Live: h.Live, Ready: h.Ready, Degraded: h.Degraded, Reason: h.Reason, Reasons: h.Reasons,
		NodeID: h.NodeID, Zone: h.Zone, RaftState: h.State, Leader: h.Leader, Term: h.Term,
		AppliedIndex: h.AppliedIndex, CommitIndex: h.CommitIndex, LeaderIndex: h.LeaderIndex,
	}
	if len(out.Reasons) == 0 && out.Reason != "" {
		out.Reasons = []string{out.Reason}
	}
	if out.Reason == "" && len(out.Reasons) > 0 {
		out.Reason = out.Reasons[0]
	}
	switch {
	case !h.Ready:
		out.Status = wire.HealthNotReady
	case h.Degraded:
		out.Status = wire.HealthDegraded
	default:
		out.Status = wire.HealthReady
	}
	return out
}

func (s *server) clusterPeers(c *gin.Context) {
	ps, err := s.cluster.Peers(c.Request.Context())
	if err != nil {
		c.Error(err)
		return
	}
	c.JSON(http.StatusOK, wirePeers(ps))
}

// removePeer answers 204 once the voter is out of the configuration.
func (s *server) removePeer(c *gin.Context) {
	if err := s.cluster.RemovePeer(c.Request.Context(), c.Param("id")); err != nil {
		c.Error(err)
		return
	}
	c.Status(http.StatusNoContent)
}

// transferLeadership answers 204 once the old leader has stepped down;
// an empty body or node_id lets the leader choose.
func (s *server) transferLeadership(c *gin.Context) {
	var req wire.TransferLeadershipRequest
	if err := s.bindJSON(c, &req, true); err != nil {
		c.Error(err)
		return
	}
	if err := s.cluster.TransferLeadership(c.Request.Context(), req.NodeID); err != nil {
		c.Error(err)
		return
	}
	c.Status(http.StatusNoContent)
}

// errNodeRemoved: this node was removed from its zone; its state is
// stale from then on.
var errNodeRemoved = errors.New("this node was removed from its zone and serves no keys: send requests to another node of the zone")

// refuseIfRemoved keeps a removed node from answering key reads and
// crypto from its stale state (a key disabled or deleted since would
// still work there). Lifecycle writes fail on their own: its Raft is
// stopped.
func (s *server) refuseIfRemoved(c *gin.Context) {
	if _, removed := s.cluster.Removed(); removed {
		c.Error(errNodeRemoved)
		c.Abort()
		return
	}
	c.Next()
}
