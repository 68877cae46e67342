package cluster

import (
	"sync"

	"github.com/hashicorp/raft"
)

// applyGate groups a leader's proposals into batches, one batch between
// raft.Apply and commit at a time. The proposals that arrive meanwhile
// wait, and go to raft together once it is answered. Raft's leader loop
// writes what it finds in its (buffered) apply channel in one BoltDB
// transaction, and followers receive it in one AppendEntries: a batch
// costs each node one commit, with its two fsyncs, where proposals
// handed over one by one cost one for every few entries. The commits
// were a quarter of the CPU of a key creation.
//
// A proposal on an idle leader goes to raft at once; under load it waits
// for at most the commit of the batch ahead of it.
type applyGate struct {
	mu       sync.Mutex
	queue    []*proposal
	inFlight bool // a batch is in raft's hands
	// batches counts the batches handed to raft (tests).
	batches uint64
}

// proposal is one entry on its way through the gate.
type proposal struct {
	data []byte
	// future is set, under the gate's lock, once the entry is handed to
	// raft: nil means raft never saw it.
	future raft.ApplyFuture
	// err is the future's error, and done is closed once it is known.
	err  error
	done chan struct{}
}

// applyGated hands data to raft through the gate and returns once raft
// answered it (done closed) or the node shut down.
func (n *Node) applyGated(data []byte) *proposal {
	p := &proposal{data: data, done: make(chan struct{})}
	g := &n.gate
	g.mu.Lock()
	g.queue = append(g.queue, p)
	var batch []*proposal
	if !g.inFlight {
		batch, g.queue = g.queue, nil
		g.inFlight = true
	}
	g.mu.Unlock()
	if batch != nil {
		go n.runApplyBatches(batch)
	}
	select {
	case <-p.done:
	case <-n.ctx.Done():
	}
	return p
}

// handedToRaft reports whether raft got p's entry (when p is not done:
// a proposal abandoned at shutdown).
func (g *applyGate) handedToRaft(p *proposal) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return p.future != nil
}

// runApplyBatches hands batch to raft, waits until raft answered each of
// its entries, then does the same with what queued meanwhile, until
// nothing waits.
func (n *Node) runApplyBatches(batch []*proposal) {
	g := &n.gate
	for {
		g.mu.Lock()
		g.batches++
		g.mu.Unlock()
		for _, p := range batch {
			// Raft's apply channel holds MaxAppendEntries entries, so a
			// batch goes in without waiting for the leader loop. The
			// timeout bounds only the wait for room in that channel.
			f := n.raft.Apply(p.data, n.cfg.ApplyTimeout)
			g.mu.Lock()
			p.future = f
			g.mu.Unlock()
		}
		for _, p := range batch {
			// Raft may never answer a future in flight at shutdown
			// (hashicorp/raft#498): this goroutine then stays, and the
			// proposers have returned already (applyGated).
			p.err = p.future.Error()
			close(p.done)
		}
		g.mu.Lock()
		batch, g.queue = g.queue, nil
		if len(batch) == 0 {
			g.inFlight = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
	}
}
