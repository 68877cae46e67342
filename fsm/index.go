package fsm

import (
	"slices"
	"sort"
)

// maxChunk bounds the ids held by one chunk of an idIndex. Inserting or
// deleting moves at most this many ids plus one slice header per chunk,
// instead of the whole set as a flat sorted slice would (random key ids
// land anywhere).
const maxChunk = 512

// idIndex is an ordered set of key ids: a sorted list of non-empty sorted
// chunks, each chunk's ids all smaller than the next chunk's. It gives
// ListKeys an O(log n) seek to a page token and an in-order walk, and is
// maintained incrementally by Apply. It is not safe for concurrent
// mutation; the FSM guards it with its lock.
type idIndex struct {
	chunks [][]string
}

// buildIndex returns an index holding ids, which must be sorted and
// unique. Chunks start half full so later inserts rarely split.
func buildIndex(ids []string) *idIndex {
	x := &idIndex{}
	for len(ids) > 0 {
		n := min(len(ids), maxChunk/2)
		x.chunks = append(x.chunks, slices.Clone(ids[:n]))
		ids = ids[n:]
	}
	return x
}

// chunkFor returns the chunk that holds id or would hold it: the last one
// whose first id is not after id (or the first chunk).
func (x *idIndex) chunkFor(id string) int {
	i := sort.Search(len(x.chunks), func(i int) bool { return x.chunks[i][0] > id })
	if i > 0 {
		i--
	}
	return i
}

// insert adds id; it reports false when id was already present.
func (x *idIndex) insert(id string) bool {
	if len(x.chunks) == 0 {
		x.chunks = [][]string{{id}}
		return true
	}
	ci := x.chunkFor(id)
	c := x.chunks[ci]
	j, found := slices.BinarySearch(c, id)
	if found {
		return false
	}
	c = slices.Insert(c, j, id)
	if len(c) <= maxChunk {
		x.chunks[ci] = c
		return true
	}
	// Split; the right half gets its own array so that appends to the
	// left half can never write into it.
	half := len(c) / 2
	right := slices.Clone(c[half:])
	clear(c[half:])
	x.chunks[ci] = c[:half]
	x.chunks = slices.Insert(x.chunks, ci+1, right)
	return true
}

// remove deletes id; it reports false when id was absent.
func (x *idIndex) remove(id string) bool {
	if len(x.chunks) == 0 {
		return false
	}
	ci := x.chunkFor(id)
	c := x.chunks[ci]
	j, found := slices.BinarySearch(c, id)
	if !found {
		return false
	}
	c = slices.Delete(c, j, j+1)
	if len(c) == 0 {
		x.chunks = slices.Delete(x.chunks, ci, ci+1)
	} else {
		x.chunks[ci] = c
	}
	return true
}

// len returns the number of ids.
func (x *idIndex) len() int {
	n := 0
	for _, c := range x.chunks {
		n += len(c)
	}
	return n
}

// ascendAfter calls fn for every id greater than after, in order, until
// fn returns false. An empty after starts at the first id.
func (x *idIndex) ascendAfter(after string, fn func(id string) bool) {
	if len(x.chunks) == 0 {
		return
	}
	ci, j := 0, 0
	if after != "" {
		ci = x.chunkFor(after)
		j = sort.SearchStrings(x.chunks[ci], after)
		if j < len(x.chunks[ci]) && x.chunks[ci][j] == after {
			j++
		}
	}
	for ; ci < len(x.chunks); ci, j = ci+1, 0 {
		for _, id := range x.chunks[ci][j:] {
			if !fn(id) {
				return
			}
		}
	}
}
