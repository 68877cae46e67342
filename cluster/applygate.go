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
	// handed and abandoned are decided under the gate's lock, and only
	// one of them ever becomes true: handed before raft.Apply is called
	// (raft may have the entry from then on, whatever the proposer sees),
	// abandoned when the proposer gave up first (raft never gets it).
	handed, abandoned bool
	future            raft.ApplyFuture
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

// abandon withdraws p, a proposal whose proposer stops waiting, if it is
// still queued, and reports whether it was: false means raft may have
// its entry, so its outcome is unknown.
func (g *applyGate) abandon(p *proposal) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if p.handed {
		return false
	}
	p.abandoned = true
	return true
}

// runApplyBatches hands batch to raft, waits until raft answered each of
// its entries, then does the same with what queued meanwhile, until
// nothing waits.
func (n *Node) runApplyBatches(batch []*proposal) {
	g := &n.gate
	for {
		g.mu.Lock()
		if n.ctx.Err() != nil {
			// The proposers stop waiting and withdraw (abandon): raft
			// must not get what they were told it never saw.
			g.queue, g.inFlight = nil, false
			g.mu.Unlock()
			return
		}
		g.batches++
		handed := batch[:0]
		for _, p := range batch {
			if !p.abandoned {
				p.handed = true
				handed = append(handed, p)
			}
		}
		g.mu.Unlock()
		batch = handed
		for _, p := range batch {
			// Raft's apply channel holds MaxAppendEntries entries, so a
			// batch goes in without waiting for the leader loop. The
			// timeout bounds only the wait for room in that channel.
			p.future = n.raft.Apply(p.data, n.cfg.ApplyTimeout)
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
